"""Measurement repeatability: the floor under every predictor figure.

    .venv/bin/python benchmarks/repeatability.py --backend onnxruntime [--n 100] [--rounds 2]

A predictor cannot be more accurate than the measurements it is scored against. This samples
``--n`` stored blocks of a backend's dataset and measures them again ``--rounds`` times,
interleaved (round 1 over all specs, then round 2, ...), in one sitting, with the dataset's own
evaluator settings. It reports how often two measurements of the same block agree within ±5% /
±10%: between rounds of this sitting (raw, and with the sitting's overall drift -- the median
ratio of the two rounds -- divided out), and between this sitting and the stored row (measured
hours or days earlier). Run it on a quiet machine. Writes
benchmarks/results/repeatability-<backend>.md.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from canao.predictors.evaluation import load_rows
from canao.predictors.metrics import error_metrics
from canao.profiling.measurement import EvalConfig
from canao.profiling.runner import LocalRunner
from canao.space import BlockSpec

OUT = Path(__file__).parent / "results"
BINS = [0, 0.1, 0.3, 1, 3, 10, 30, 1000]
COLS = ["hidden", "heads", "head_dim", "ffn", "seq_len", "batch"]


def agreement(a: pd.Series, b: pd.Series) -> dict[str, float]:
    """How measurements ``a`` agree with ``b`` of the same blocks, scored as the predictors
    are (``error_metrics``, ``b`` the reference), plus the median and 95th percentile of the
    relative difference."""
    rel = np.abs(a.to_numpy() / b.to_numpy() - 1)
    return {
        **error_metrics(b.to_numpy(), a.to_numpy()),
        "median": float(np.median(rel)),
        "p95": float(np.percentile(rel, 95)),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=Path("datasets_latency"))
    ap.add_argument("--backend", default="onnxruntime")
    ap.add_argument("--n", type=int, default=100, help="stored blocks to measure again")
    ap.add_argument("--rounds", type=int, default=2, help="interleaved rounds (>= 2)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    if args.rounds < 2 or args.n < 2:
        ap.error("--rounds and --n must be >= 2")
    df = load_rows(args.data, args.backend)
    blocks = df[df["kind"] == "block"]
    blocks = blocks.sample(n=min(args.n, len(blocks)), random_state=args.seed)
    threads = int(blocks["threads"].iloc[0])
    specs = [BlockSpec(*(int(row[c]) for c in COLS)) for _, row in blocks.iterrows()]
    t0 = time.time()
    again = np.full((args.rounds, len(specs)), np.nan)
    with LocalRunner(args.backend, str(df["device"].iloc[0]), EvalConfig(threads=threads)) as r:
        for k in range(args.rounds):
            for i, spec in enumerate(tqdm(specs, desc=f"round {k + 1}/{args.rounds}")):
                res = r.run(spec)
                if res.ok and res.measurement is not None:
                    again[k, i] = res.measurement.median_ms
    minutes = (time.time() - t0) / 60
    ok = ~np.isnan(again).any(axis=0)
    t = pd.DataFrame({"stored": blocks["median_ms"].to_numpy()[ok]})
    for k in range(args.rounds):
        t[f"r{k + 1}"] = again[k, ok]
    drift = float(np.median(t["r2"] / t["r1"]))
    t["r2_flat"] = t["r2"] / drift
    t["mean"] = t[[f"r{k + 1}" for k in range(args.rounds)]].mean(axis=1)
    stored_ratio = float(np.median(t["mean"] / t["stored"]))
    comparisons = [
        ("round 2 vs round 1", t["r2"], t["r1"]),
        ("round 2 vs round 1, sitting drift divided out", t["r2_flat"], t["r1"]),
        ("this sitting (mean of rounds) vs the stored row", t["mean"], t["stored"]),
        (
            "this sitting vs the stored row, drift divided out",
            t["mean"] / stored_ratio,
            t["stored"],
        ),
    ]
    lines = [
        f"# Repeatability: {len(t)} stored {args.backend} blocks measured again",
        "",
        f"`.venv/bin/python benchmarks/repeatability.py --backend {args.backend} --n {args.n} "
        f"--rounds {args.rounds} --seed {args.seed}`: {args.rounds} interleaved rounds in "
        f"{minutes:.0f} minutes ({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}); "
        f"{int((~ok).sum())} blocks failed and are left out. Round 2 / round 1 median ratio "
        f"{drift:.3f}; this sitting / stored rows {stored_ratio:.3f}.",
        "",
        "| two measurements of the same blocks | n | within ±5% | within ±10% | median diff "
        "| 95th pct diff |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name, a, b in comparisons:
        s = agreement(a, b)
        lines.append(
            f"| {name} | {s['n']:.0f} | {s['acc5']:.1%} | {s['acc10']:.1%} | {s['median']:.2%} "
            f"| {s['p95']:.2%} |"
        )
    lines += [
        "",
        "Round 2 vs round 1 (drift divided out) by latency:",
        "",
        "| measured latency (ms) | n | within ±5% | within ±10% | median diff |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, g in t.groupby(pd.cut(t["r1"], BINS), observed=True):
        s = agreement(g["r2_flat"], g["r1"])
        lines.append(
            f"| {name} | {s['n']:.0f} | {s['acc5']:.1%} | {s['acc10']:.1%} | {s['median']:.2%} |"
        )
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / f"repeatability-{args.backend}.md"
    path.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
