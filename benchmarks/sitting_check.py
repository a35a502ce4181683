"""Does one sitting of a block dataset read like the rest of it? A check of new rows before
they are mixed in (and the figures behind a ``canao dataset retire --after``).

    .venv/bin/python benchmarks/sitting_check.py --folder datasets_latency/DEVICE/BACKEND
        --after TIME [--before TIME] [--threads 1] [--retired] [--out FILE]

The sitting is the folder's block rows measured from ``--after`` on (and before ``--before``);
the reference is its rows measured before ``--after``, read as drift-corrected medians
(``--combine drift-median``). Two readings:

- keys the reference has (a sitting's ``--remeasure`` rounds, or ``--check-host``'s specs
  stored): each sitting row over its key's reference median, raw and with the canary's
  drift correction (the reference's median canary over the row's);
- keys new in the sitting: the median of their sitting rows over the prediction of an XGBoost
  predictor (the default one, analytic base) fitted on every reference block, so a sitting of
  new blocks is checked against what the blocks measured before say about them.

Both also drift-corrected: each row over the host's speed that the rows measured around it
read (``--combine drift-median``'s correction, over the reference and the sitting together),
which takes a slow sitting out where known keys were measured among the new ones
(``canao profile --remeasure all --with-new``).

Each as the median ratio, its 5th-95th percentile, the share within ±5% / ±10%, and the
median ratio per latency band. ``--retired`` reads the folder's retired rows too (a retired
sitting). Prints Markdown; ``--out`` also writes it.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from canao.predictors.evaluation import blocks_xy, canary_reference
from canao.predictors.predictor import LatencyPredictor
from canao.profiling.store import drift_corrected_ms, drift_median, given_time, read_all_rows

BANDS = [(0.0, 1.0), (1.0, 5.0), (5.0, 20.0), (20.0, np.inf)]


def _summary(label: str, ratio: np.ndarray, ms: np.ndarray) -> str:
    """The table row of one set of ratios: overall, then the median per reference latency
    band."""
    if not len(ratio):
        return f"| {label} | 0 | | | | | |"
    p5, med, p95 = np.percentile(ratio, [5, 50, 95])
    err = np.abs(ratio - 1)
    bands = ", ".join(
        f"{lo:g}-{hi:g} ms: {np.median(ratio[(ms >= lo) & (ms < hi)]):.3f}"
        for lo, hi in BANDS
        if np.any((ms >= lo) & (ms < hi))
    )
    return (
        f"| {label} | {len(ratio)} | {med:.3f} | {p5:.3f}-{p95:.3f} | "
        f"{np.mean(err <= 0.05):.1%} | {np.mean(err <= 0.10):.1%} | {bands} |"
    )


def check(folder: Path, after: str, before: str | None, threads: int, retired: bool) -> str:
    rows = read_all_rows(folder, retired=retired)
    if rows.empty:
        raise SystemExit(f"sitting_check: {folder} holds no rows")
    rows = rows[rows["error"].isna() & (rows["kind"] == "block") & (rows["threads"] == threads)]
    t = pd.to_datetime(rows["timestamp"], utc=True)
    start = given_time(after)
    in_sitting = (t >= start) & ((t < given_time(before)) if before else True)
    ref_rows, sit = rows[t < start], rows[in_sitting]
    if ref_rows.empty or sit.empty:
        raise SystemExit(
            f"sitting_check: {len(ref_rows)} reference rows and {len(sit)} sitting rows; "
            "both must have some"
        )
    ref = drift_median(ref_rows.reset_index(drop=True))
    ref_ms = ref.set_index("key")["median_ms"]
    canary_ref = canary_reference(ref_rows) or float("nan")  # nan: measured without a canary
    sit_canary = pd.to_numeric(sit["canary_ms"], errors="coerce").to_numpy(dtype=np.float64)

    old = sit["key"].isin(ref_ms.index).to_numpy()
    old_ms = ref_ms.reindex(sit["key"][old]).to_numpy()
    raw = sit["median_ms"].to_numpy(dtype=np.float64)[old] / old_ms
    by_canary = raw * canary_ref / sit_canary[old]
    # each sitting row divided by the host's speed that the rows measured around it read
    # (--combine drift-median's correction, over the reference and the sitting together)
    fixed = drift_corrected_ms(pd.concat([ref_rows, sit])).reindex(sit.index).to_numpy()

    new = sit[~old]
    lines = [
        f"# Sitting check: {folder}, {threads} thread(s), from {after}"
        + (f" before {before}" if before else ""),
        "",
        f"Reference: {len(ref_rows)} rows ({ref_ms.size} keys) before {after}, median canary "
        f"{canary_ref:.3f} ms. Sitting: {len(sit)} rows ({sit['key'].nunique()} keys), canary "
        f"{np.nanmin(sit_canary):.3f}-{np.nanmax(sit_canary):.3f} ms (median "
        f"{np.nanmedian(sit_canary):.3f}).",
        "",
        "| rows | n | median ratio | 5th-95th pct | within ±5% | within ±10% | median by band |",
        "|---|---:|---:|---:|---:|---:|---|",
    ]
    lines.append(_summary("known keys, sitting row / reference median", raw, old_ms))
    lines.append(_summary("the same, canary-corrected", by_canary, old_ms))
    lines.append(_summary("the same, drift-corrected", fixed[old] / old_ms, old_ms))
    if len(new):
        X, y = blocks_xy(ref)
        model = LatencyPredictor().fit(X, y)
        per_key = new.groupby("key", sort=False)
        first = per_key.head(1).reset_index(drop=True)
        med_ms = per_key["median_ms"].median().reindex(first["key"]).to_numpy()
        new_fixed = pd.Series(fixed[~old], index=new["key"]).groupby(level=0).median()
        Xn, _ = blocks_xy(first)
        pred = model.predict(Xn)
        lines.append(
            _summary(
                f"new keys, median of their rows / predicted from the reference "
                f"({int(per_key.size().median())} rows a key)",
                med_ms / pred,
                pred,
            )
        )
        lines.append(
            _summary("the same, drift-corrected", new_fixed[first["key"]].to_numpy() / pred, pred)
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--folder", type=Path, required=True, help="a store folder: ROOT/DEVICE/BACKEND"
    )
    ap.add_argument("--after", required=True, help="the sitting's start (ISO 8601, UTC)")
    ap.add_argument("--before", help="the sitting's end (default: the last row)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--retired", action="store_true", help="read retired rows too")
    ap.add_argument("--out", type=Path, help="also write the Markdown here")
    args = ap.parse_args(argv)
    text = check(args.folder, args.after, args.before, args.threads, args.retired)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)
        print(f"written to {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
