"""Measurement repeatability: re-measure stored specs and compare with the stored medians.

    .venv/bin/python benchmarks/repeatability.py --backend onnxruntime [--n 150]

A predictor cannot be more accurate than the measurements it is scored against; this gives
that floor: the share of re-measured specs whose new median lies within ±5% / ±10% of the
stored one, by latency range. Run it on a quiet machine. Writes
benchmarks/results/repeatability-<backend>.md.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

from canao.predictors.evaluation import load_rows
from canao.profiling.measurement import EvalConfig
from canao.profiling.runner import LocalRunner
from canao.space import BlockSpec

OUT = Path(__file__).parent / "results"
BINS = [0, 0.1, 0.3, 1, 3, 10, 30, 1000]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=Path("datasets_latency"))
    ap.add_argument("--backend", default="onnxruntime")
    ap.add_argument("--n", type=int, default=150)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    df = load_rows(args.data, args.backend)
    blocks = df[df["kind"] == "block"].sample(n=args.n, random_state=args.seed)
    cols = ["hidden", "heads", "head_dim", "ffn", "seq_len", "batch"]
    threads = int(blocks["threads"].iloc[0])
    rows = []
    with LocalRunner(args.backend, str(df["device"].iloc[0]), EvalConfig(threads=threads)) as r:
        for i, (_, row) in enumerate(blocks.iterrows()):
            res = r.run(BlockSpec(*(int(row[c]) for c in cols)))
            if res.ok and res.measurement is not None:
                rows.append({"stored": row["median_ms"], "again": res.measurement.median_ms})
            if i % 25 == 0:
                print(f"{i}/{len(blocks)}", flush=True)
    t = pd.DataFrame(rows)
    t["rel"] = np.abs(t["again"] / t["stored"] - 1)
    t["range"] = pd.cut(t["stored"], BINS)
    g = t.groupby("range", observed=True)["rel"]
    lines = [
        f"# Repeatability: {len(t)} stored {args.backend} blocks measured again",
        "",
        f"Overall: {(t['rel'] <= 0.05).mean():.1%} within ±5%, {(t['rel'] <= 0.10).mean():.1%} "
        f"within ±10%; median |difference| {t['rel'].median():.2%}, "
        f"ratio new/stored median {np.median(t['again'] / t['stored']):.3f}.",
        "",
        "| stored median (ms) | n | within ±5% | within ±10% | median abs diff |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, s in g:
        lines.append(
            f"| {name} | {len(s)} | {(s <= 0.05).mean():.1%} | {(s <= 0.10).mean():.1%} | "
            f"{s.median():.2%} |"
        )
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / f"repeatability-{args.backend}.md"
    path.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
