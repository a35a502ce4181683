"""Where the out-of-range split's errors are: the mean signed error of XGBoost and FLOPs-linear
per held-out shape group, on one dataset.

    .venv/bin/python benchmarks/oor_errors.py [--dataset intel-xeon-amx-2c/tvm/2t]
        [--by seq_len,ffn]

Trained on the blocks whose hidden, FFN and seq_len are all at or below their 90th percentile
(as ``benchmarks/predictors.py``), scored on the rest. A group whose error both models share is
a shape that differs from the trend of every shape seen in training (e.g. a tuned-TVM workload
whose schedule came out slower than its neighbours'), not a fault of the tree model's
extrapolation alone.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import pandas as pd

from canao.predictors.baselines import BASELINES
from canao.predictors.evaluation import blocks_xy, load_dataset, out_of_range_split
from canao.predictors.metrics import error_metrics
from canao.predictors.predictor import LatencyPredictor


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=Path("datasets_latency"))
    ap.add_argument("--dataset", default="intel-xeon-amx-2c/tvm/2t")
    ap.add_argument("--by", default="seq_len,ffn", help="feature columns to group the rows by")
    args = ap.parse_args()
    X, y = blocks_xy(load_dataset(args.data, args.dataset))
    train, test, limits = out_of_range_split(X)
    models: dict[str, Any] = {
        "xgboost": LatencyPredictor(),
        "flops-linear": BASELINES["flops-linear"](),
    }
    by = args.by.split(",")
    table = X.iloc[test][by].copy()
    table["measured_ms"] = y[test]
    print(f"{args.dataset}: train {len(train)}, test {len(test)}, limits {limits}")
    for name, model in models.items():
        pred = model.fit(X.iloc[train], y[train]).predict(X.iloc[test])
        table[name] = pred / y[test] - 1
        m = error_metrics(y[test], pred)
        print(f"{name}: within ±10% {m['acc10']:.1%}, MAPE {m['mape']:.2f}%")
    cols = ["measured_ms", *models]
    groups = table.groupby(by)[cols].mean()
    groups.insert(0, "n", table.groupby(by).size())
    print(groups.round(3).to_string())


if __name__ == "__main__":
    pd.set_option("display.width", 160)
    main()
