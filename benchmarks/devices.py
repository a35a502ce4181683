"""The shipped devices against one another, over the blocks and models they share.

    .venv/bin/python benchmarks/devices.py [--data datasets_latency] [--backend onnxruntime]
        [--threads 1] [--combine latest|median|drift-median] [--out FILE]

Per device (every device folder with rows of the backend at the thread count): rows, rounds
per row, the share flagged noisy and the canary's range. Per ordered pair of devices: the
latency of the same key (the same block or model, measured with the same design) on the
slower one over the faster one, as the median and 5th-95th percentile over the shared keys,
and the two devices' rank agreement (Kendall tau). One factor would do if the percentiles
sat close to the median: the wider they are, the more a transfer between the two needs than a
scale. Writes ``benchmarks/results/devices-<backend>-<threads>t.md``, ``...t-<combine>.md``
for a combine other than ``latest`` (or ``--out``); the README's dataset table and the device
cards quote it.
"""

from __future__ import annotations

import argparse
import itertools
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import kendalltau

from canao.profiling.fingerprint import read_identity
from canao.profiling.store import COMBINE, read_all_rows

OUT = Path(__file__).parent / "results"


def device_rows(
    data: Path, backend: str, threads: int, combine: str
) -> dict[str, tuple[pd.DataFrame, pd.Series]]:
    """Per device with rows of ``backend`` at ``threads``: its valid rows, one per key
    (``combine``), and how many successful measurements each key has (``--remeasure``
    rounds); each device's shards read once."""
    frames = {}
    for folder in sorted(p for p in data.iterdir() if (p / backend).is_dir()):
        rows = read_all_rows(folder / backend)
        if rows.empty:
            continue
        ok = (rows["threads"] == threads) & rows["error"].isna()
        if ok.any():  # combined over every row, as read_rows does, then the thread count picked
            one = COMBINE[combine](rows)
            one = one[(one["threads"] == threads) & one["error"].isna()]
            frames[folder.name] = (one, rows[ok].groupby("key").size())
    return frames


def pair_table(frames: dict[str, pd.DataFrame], kind: str) -> list[str]:
    lines = [
        f"| slower / faster ({kind}s) | shared | median ratio | 5th-95th percentile "
        "| Kendall tau |",
        "|---|---:|---:|---:|---:|",
    ]
    for a, b in itertools.combinations(frames, 2):
        ma = frames[a][frames[a]["kind"] == kind].set_index("key")["median_ms"]
        mb = frames[b][frames[b]["kind"] == kind].set_index("key")["median_ms"]
        shared = ma.index.intersection(mb.index)
        if len(shared) < 10:
            continue
        ra, rb = ma[shared].to_numpy(), mb[shared].to_numpy()
        slow, fast, ratio = (a, b, ra / rb) if np.median(ra / rb) >= 1 else (b, a, rb / ra)
        lo, mid, hi = np.percentile(ratio, [5, 50, 95])
        tau = kendalltau(ra, rb).statistic
        lines.append(
            f"| {slow} / {fast} | {len(shared):,} | {mid:.2f}x | {lo:.2f}x-{hi:.2f}x | {tau:.3f} |"
        )
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=Path("datasets_latency"))
    ap.add_argument("--backend", default="onnxruntime")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--combine", default="latest", choices=["latest", "median", "drift-median"])
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    if not args.data.is_dir():
        ap.error(f"{args.data}: no such folder")
    frames = device_rows(args.data, args.backend, args.threads, args.combine)
    if len(frames) < 2:
        ap.error(
            f"{args.data}: {len(frames)} device(s) with {args.backend} rows at "
            f"{args.threads} thread(s); a comparison needs two"
        )
    lines = [
        f"# Devices against one another: {args.backend}, {args.threads} thread(s) "
        "(benchmarks/devices.py)",
        "",
        f"Each key read as `--combine {args.combine}`.",
        "",
        "| device | CPU | blocks | models | rounds per row (min-max) | flagged noisy "
        "| canary (ms) |",
        "|---|---|---:|---:|---|---:|---|",
    ]
    for name, (df, rounds) in frames.items():
        canary = df["canary_ms"].dropna()
        span = (
            f"{canary.min():.2f}-{canary.max():.2f} ({canary.max() / canary.min() - 1:.0%})"
            if len(canary)
            else "-"
        )
        counts = df["kind"].value_counts()
        cpu = read_identity(args.data / name) or {}
        lines.append(
            f"| {name} | {df['cpu_model'].iloc[-1]} ({df['isa'].iloc[-1]}, family "
            f"{cpu.get('family', '?')} model {cpu.get('model', 'not recorded')}) "
            f"| {counts.get('block', 0):,} | {counts.get('model', 0):,} "
            f"| {rounds.min()}-{rounds.max()} | {df['noisy'].fillna(False).mean():.1%} | {span} |"
        )
    for kind in ("block", "model"):
        lines += ["", *pair_table({d: rows for d, (rows, _) in frames.items()}, kind)]
    suffix = "" if args.combine == "latest" else f"-{args.combine}"
    out = args.out or OUT / f"devices-{args.backend}-{args.threads}t{suffix}.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    print(f"written to {out}")


if __name__ == "__main__":
    main()
