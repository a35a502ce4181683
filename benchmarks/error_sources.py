"""Where a block predictor misses: the model, or the measurements? Per band of one block
dimension, the predictor's share within ±5% (every block held out once) beside the share of
blocks whose own measurements agree with themselves within ±5% (split halves).

    .venv/bin/python benchmarks/error_sources.py [--data datasets_latency]
        [--datasets D/B/Nt,...] [--by seq_len] [--bands 16,32,128,256] [--out DIR]

For each dataset (a device, backend and thread count; read as drift-corrected medians, as
``--combine drift-median`` does), two columns per band:

- **predictor**: 5-fold cross-validation of the default XGBoost predictor (one fold
  assignment, seed 0): the share of the band's blocks predicted within ±5%;
- **halves**: each block's drift-corrected measurements, in time order, split into the odd and
  the even ones; the share of the band's blocks whose two halves' medians agree within ±5%
  (blocks measured at least twice). Each half holds half the rounds, so this is stricter than
  the full median's own repeatability.

Where the halves agree far more often than the predictor hits, the band is short of blocks or
of features (more rounds will not help); where the halves disagree about as often, it is short
of rounds. Writes ``results/error-sources.md``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

from canao.predictors.evaluation import blocks_xy, load_dataset, out_of_fold, parse_dataset_name
from canao.profiling.store import drift_corrected_ms, read_all_rows

DATASETS = (
    "intel-xeon-amx-2c/eager/1t",
    "amd-epyc-avx512-2c-f25m17/eager/1t",
    "intel-xeon-amx-2c/onnxruntime/1t",
    "amd-epyc-avx512-2c-f25m17/onnxruntime/1t",
)


def predictor_hits(data: Path, name: str, within: float = 0.05) -> pd.Series:
    """Per block key: whether the cross-validated prediction is within ``within``."""
    from canao.predictors.predictor import LatencyPredictor

    df = load_dataset(data, f"{name}/drift-median")
    X, y = blocks_xy(df)
    keys = df.loc[df["kind"] == "block", "key"].to_numpy()
    pred = out_of_fold(X, y, LatencyPredictor)
    return pd.Series(np.abs(pred / y - 1) <= within, index=keys)


def halves_agree(data: Path, name: str, within: float = 0.05) -> tuple[pd.Series, pd.DataFrame]:
    """Per block key measured at least twice: whether the medians of its odd and even
    drift-corrected measurements agree within ``within``; and each key's value of every
    block dimension (one row per key)."""
    device, backend, threads, _ = parse_dataset_name(f"{name}/latest")
    rows = read_all_rows(data / device / backend)
    rows = rows[
        (rows["threads"] == threads) & (rows["kind"] == "block") & rows["error"].isna()
    ].reset_index(drop=True)
    ms = drift_corrected_ms(rows)
    r = rows.loc[ms.index].assign(fixed=ms.to_numpy()).sort_values("timestamp", kind="stable")
    nth = r.groupby("key").cumcount()
    odd = r[nth % 2 == 1].groupby("key")["fixed"].median()
    even = r[nth % 2 == 0].groupby("key")["fixed"].median().reindex(odd.index)
    return (odd / even - 1).abs() <= within, r.drop_duplicates("key").set_index("key")


def table(data: Path, names: list[str], by: str, edges: list[float]) -> str:
    bounds = [0.0, *edges, np.inf]
    labels = [
        f"{by} {lo:g}-{hi:g}" if np.isfinite(hi) else f"{by} > {lo:g}"
        for lo, hi in zip(bounds[:-1], bounds[1:], strict=True)
    ]
    head = "| dataset | " + " | ".join(["all", *labels]) + " |"
    lines = [head, "|---|" + "---:|" * (len(labels) + 1)]
    for name in names:
        hits = predictor_hits(data, name)
        agree, dims = halves_agree(data, name)
        value = dims[by].reindex(hits.index).to_numpy(dtype=np.float64)
        band = np.digitize(value, edges, right=True)
        for label, series in (("predictor", hits), ("halves", agree.reindex(hits.index))):
            cells = [f"{series.mean():.1%}"]
            for b in range(len(labels)):
                part = series[band == b].dropna()
                cells.append(f"{part.mean():.1%} ({len(part)})" if len(part) else "")
            lines.append(f"| {name}, {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=Path("datasets_latency"))
    ap.add_argument("--datasets", default=",".join(DATASETS), help="device/backend/Nt,...")
    ap.add_argument("--by", default="seq_len", help="the block dimension to band by")
    ap.add_argument("--bands", default="16,32,128,256", help="the bands' upper edges")
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = ap.parse_args(argv)
    edges = [float(v) for v in args.bands.split(",")]
    text = (
        "# Error sources (benchmarks/error_sources.py)\n\n"
        "Share of blocks within ±5%, per band: the predictor held out 5-fold, and the block's "
        "split halves of its drift-corrected measurements against each other (blocks in "
        "brackets).\n\n" + table(args.data, args.datasets.split(","), args.by, edges)
    )
    print(text)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "error-sources.md").write_text(text)
    print(f"written to {args.out / 'error-sources.md'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
