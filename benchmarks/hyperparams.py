"""XGBoost's tree depth and number of trees against block accuracy, every block held out once.

    .venv/bin/python benchmarks/hyperparams.py [--datasets D/B/Nt[/drift-median],...]

For each dataset (read as ``benchmarks/predictors.py`` reads it), 5-fold cross-validation over
three fold assignments of ``LatencyPredictor`` with its default parameters (depth 4, 2,000
trees), with deeper trees in smaller number (depth 6 with 800 was the default before) and with
shallower ones in greater number; the mean share within ±5% / ±10% and the largest error of
the three passes. Writes benchmarks/results/hyperparams.md. Run it alone: two XGBoost jobs side
by side on 2 cores slow each other by an order of magnitude.
"""

from __future__ import annotations

import argparse
import functools
from pathlib import Path
from typing import Any

from canao.predictors.evaluation import blocks_xy, cross_validated, load_dataset, pooled
from canao.predictors.predictor import LatencyPredictor

OUT = Path(__file__).parent / "results" / "hyperparams.md"
DATASETS = (
    "intel-xeon-amx-2c/onnxruntime/2t/drift-median",
    "intel-xeon-amx-2c/eager/2t/drift-median",
    "intel-xeon-amx-2c/tvm/2t",
    "amd-epyc-avx512-2c/onnxruntime/1t/drift-median",
    "amd-epyc-avx512-2c-f25m17/onnxruntime/1t/drift-median",
)
VARIANTS: dict[str, dict[str, Any]] = {
    "depth 6, 800 trees (the default before)": {"max_depth": 6, "n_estimators": 800},
    "depth 5, 1,200 trees": {"max_depth": 5, "n_estimators": 1200},
    "default (depth 4, 2,000 trees)": {},
    "depth 3, 3,000 trees": {"max_depth": 3, "n_estimators": 3000},
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=Path("datasets_latency"))
    ap.add_argument("--datasets", default=",".join(DATASETS))
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()
    lines = [
        "# XGBoost depth and trees (benchmarks/hyperparams.py)",
        "",
        "Every block held out once: 5-fold cross-validation, three fold assignments (mean; "
        "largest error of the three passes).",
        "",
        "| dataset | parameters | within ±5% | within ±10% | max error |",
        "|---|---|---:|---:|---:|",
    ]
    for name in args.datasets.split(","):
        X, y = blocks_xy(load_dataset(args.data, name))
        for label, params in VARIANTS.items():
            m = pooled(cross_validated(X, y, functools.partial(LatencyPredictor, **params)))
            row = f"| {name} | {label} | {m['acc5']:.1%} | {m['acc10']:.1%} | {m['max_err']:.1f}% |"
            print(row, flush=True)
            lines.append(row)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
