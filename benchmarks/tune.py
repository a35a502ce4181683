"""Does ``canao train --tune`` beat the default trees on blocks it never saw?

    .venv/bin/python benchmarks/tune.py [--datasets D/B/2t/drift-median,...] [--splits 3]
        [--trials 30] [--out benchmarks/results/tune.md]

For each dataset and each of ``--splits`` random 80/20 splits: Optuna tunes the XGBoost
predictor on the 80% (``canao.predictors.tuning.tune``, as ``canao train --tune`` does: 3-fold
CV, the defaults tried first), once minimising RMSPE and once MAPE; then the defaults and both
tuned parameter sets are fitted on the same 80% and scored on the 20% that the tuning never saw.
Run it alone (XGBoost on 2 cores).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import pandas as pd

from canao.predictors.evaluation import blocks_xy, load_dataset, random_split
from canao.predictors.metrics import error_metrics
from canao.predictors.predictor import LatencyPredictor
from canao.predictors.tuning import METRICS, tune

OUT = Path(__file__).parent / "results" / "tune.md"
DATASETS = (
    "intel-xeon-amx-2c/onnxruntime/2t/drift-median",
    "intel-xeon-amx-2c/eager/2t/drift-median",
    "amd-epyc-avx512-2c/onnxruntime/1t/drift-median",
)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=Path("datasets_latency"))
    ap.add_argument("--datasets", default=",".join(DATASETS))
    ap.add_argument("--splits", type=int, default=3)
    ap.add_argument("--trials", type=int, default=30)
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()
    rows = []
    for name in args.datasets.split(","):
        X, y = blocks_xy(load_dataset(args.data, name))
        for seed in range(args.splits):
            tr, te = random_split(len(y), seed=seed)
            variants: dict[str, dict] = {"defaults": {}}
            for metric in METRICS:
                t0 = time.perf_counter()
                params, _ = tune(X.iloc[tr], y[tr], n_trials=args.trials, metric=metric)
                minutes = (time.perf_counter() - t0) / 60
                print(f"{name} split {seed}: tuned by {metric} in {minutes:.1f} min: {params}")
                variants[f"tuned by {metric}"] = params
            for label, params in variants.items():
                model = LatencyPredictor(**params).fit(X.iloc[tr], y[tr])
                m = error_metrics(y[te], model.predict(X.iloc[te]))
                fitted = model.get_params()
                rows.append(
                    {
                        "dataset": name,
                        "split": seed,
                        "parameters": label,
                        **m,
                        "depth": fitted["max_depth"],
                        "trees": fitted["n_estimators"],
                    }
                )
                print(f"  {label}: ±5% {m['acc5']:.1%}, ±10% {m['acc10']:.1%}", flush=True)
    df = pd.DataFrame(rows)
    lines = [
        "# `canao train --tune` against the defaults (benchmarks/tune.py)",
        "",
        f"{args.splits} random 80/20 splits per dataset; Optuna ({args.trials} trials, 3-fold "
        "CV on the 80%, the defaults tried first) tunes on it; every variant is fitted on the "
        "80% and scored on the 20%. Mean over the splits; depth and trees of each split's pick.",
        "",
        "| dataset | parameters | MAPE | within ±5% | within ±10% | max error | depth / trees |",
        "|---|---|---:|---:|---:|---:|---|",
    ]
    for (dataset, variant), g in df.groupby(["dataset", "parameters"], sort=False):
        picks = ", ".join(f"{d}/{t}" for d, t in zip(g["depth"], g["trees"], strict=True))
        lines.append(
            f"| {dataset} | {variant} | {g['mape'].mean():.2f}% | {g['acc5'].mean():.1%} "
            f"| {g['acc10'].mean():.1%} | {g['max_err'].max():.1f}% | {picks} |"
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
