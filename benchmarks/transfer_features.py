"""What a transfer's correction has to see: how much of the gap between a source predictor and a
target dataset each set of features explains, with every target row to learn from.

    .venv/bin/python benchmarks/transfer_features.py [--pairs SRC:DST,...]

For each pair, the source predictor (XGBoost on all the source's blocks) predicts the target's
blocks, and an XGBoost model of log(measured / source prediction) is cross-validated (5 folds)
on the target's rows: on the picks' view alone (``transfer.PICK_FEATURES``), on the smooth
residual's features (``transfer.RESIDUAL_FEATURES``: the view and the activations' and attention
scores' sizes), and on every block feature. The share of target rows then within ±10% is the
most a correction on those features could reach from many blocks, not from the 50 of a
transfer (``benchmarks/predictors.py`` scores those). Writes
``results/transfer-features.md``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from canao.predictors.evaluation import blocks_xy, load_dataset
from canao.predictors.metrics import error_metrics
from canao.predictors.predictor import LatencyPredictor
from canao.predictors.transfer import PICK_FEATURES, RESIDUAL_FEATURES, pick_design, residual_design

INTEL = "intel-xeon-amx-2c"
PAIRS = (
    f"{INTEL}/eager/2t/drift-median:{INTEL}/onnxruntime/2t/drift-median",
    f"{INTEL}/onnxruntime/2t/drift-median:{INTEL}/eager/2t/drift-median",
    f"{INTEL}/onnxruntime/2t/drift-median:{INTEL}/tvm/2t/drift-median",
    f"amd-epyc-avx512-2c-f25m17/onnxruntime/1t/drift-median:{INTEL}/onnxruntime/2t/drift-median",
    "amd-epyc-avx512-2c/onnxruntime/1t/drift-median:"
    "amd-epyc-avx512-2c-f25m17/onnxruntime/1t/drift-median",
)


def within10(y: np.ndarray, source_ms: np.ndarray, log_ratio: np.ndarray) -> float:
    """Share of ``y`` within ±10% of the source prediction corrected by ``log_ratio``."""
    return error_metrics(y, source_ms * np.exp(log_ratio))["acc10"]


def main() -> None:
    import xgboost as xgb
    from sklearn.model_selection import KFold, cross_val_predict

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=Path("datasets_latency"))
    ap.add_argument("--pairs", default=",".join(PAIRS), help="SOURCE:TARGET dataset names, ...")
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = ap.parse_args()
    pairs = [p.split(":") for p in args.pairs.split(",")]
    if any(len(p) != 2 for p in pairs):
        ap.error("--pairs takes SOURCE:TARGET,... (dataset names as in benchmarks/predictors.py)")
    lines = [
        "# What a transfer's correction has to see (benchmarks/transfer_features.py)",
        "",
        "Share of the target's blocks within ±10% after a correction of the source predictor "
        "learnt by 5-fold cross-validation on all the target's rows (XGBoost, 300 trees of "
        "depth 4) from each feature set. Picks' view: "
        f"{', '.join(PICK_FEATURES)}; smooth residual's: adds "
        f"{', '.join(RESIDUAL_FEATURES[len(PICK_FEATURES) :])}.",
        "",
        "| source -> target | rows | source alone | picks' view | smooth residual's | "
        "every block feature |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    folds = KFold(5, shuffle=True, random_state=0)
    for src, dst in pairs:
        source = LatencyPredictor().fit(*blocks_xy(load_dataset(args.data, src)))
        X, y = blocks_xy(load_dataset(args.data, dst))
        p = source.predict(X)
        r = np.log(y / p)
        # the source alone, scaled by its median ratio (what any correction starts from)
        row = [within10(y, p, np.full(len(y), np.median(r)))]
        for design in (pick_design(X, p), residual_design(X, p), X.to_numpy(dtype=np.float64)):
            model = xgb.XGBRegressor(n_estimators=300, max_depth=4, learning_rate=0.05)
            row.append(within10(y, p, cross_val_predict(model, design, r, cv=folds)))
        lines.append(f"| {src} -> {dst} | {len(y)} | " + " | ".join(f"{v:.1%}" for v in row) + " |")
        print(lines[-1], flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "transfer-features.md").write_text("\n".join(lines) + "\n")
    print(f"written to {args.out / 'transfer-features.md'}")


if __name__ == "__main__":
    main()
