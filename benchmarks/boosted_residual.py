"""The boosted residual of a transfer: with it, without it, from how many blocks.

    .venv/bin/python benchmarks/boosted_residual.py [--pairs SRC:DST,...] [--few 10,20,30,50]
        [--seeds 8]

For each source -> target pair of the shipped datasets (read as the drift-corrected medians of
their rounds), the source predictor (trained on all its blocks) is transferred with the target's
covering blocks (``transfer_picks``, as ``canao profile --transfer-from`` measures them) two
ways: up to the smooth residual alone (``fit_transfer(boost=False)``), and with the boosted
residual after it (``boost=True``; ``canao train --transfer-from`` adds it from
``MIN_BOOSTED_BLOCKS`` blocks on, the threshold this benchmark chose). Each is scored
on all the target's other blocks, averaged over ``--seeds`` k-means seeds. Writes
``results/boosted-residual.md`` and ``results/boosted-residual.png``.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from transfer_sources import INTEL, Transfers, label, write_results

from canao.predictors.transfer import MIN_BOOSTED_BLOCKS

ZEN5 = "amd-epyc-avx512-2c/onnxruntime/1t/drift-median"
ZEN4 = "amd-epyc-avx512-2c-f25m17/onnxruntime/1t/drift-median"
ZEN3 = "amd-epyc-avx2-2c/onnxruntime/1t/drift-median"
ORT = f"{INTEL}/onnxruntime/2t/drift-median"
ORT1 = f"{INTEL}/onnxruntime/1t/drift-median"
EAGER = f"{INTEL}/eager/2t/drift-median"
#: the pairs: a change of threads, of backend (both ways), of host, of host and backend
PAIRS = (
    (ORT, ORT1),
    (ORT, EAGER),
    (ZEN4, EAGER),
    (ZEN4, ORT),
    (ZEN5, ZEN4),
    (ZEN4, ZEN3),
    (EAGER, ORT),
)


def short(name: str) -> str:
    """device/backend/threads of a dataset name (two pairs differ by the threads alone)."""
    return "/".join(name.split("/")[:3])


WAYS = {"smooth residual only": False, "+ boosted residual": True}


def main() -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=Path("datasets_latency"))
    ap.add_argument(
        "--pairs",
        default=",".join(f"{s}:{t}" for s, t in PAIRS),
        help="source:target dataset names, ...",
    )
    ap.add_argument("--few", default="10,20,30,50", help="counts of measured blocks")
    ap.add_argument("--seeds", type=int, default=8)
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = ap.parse_args()
    pairs = [tuple(p.split(":")) for p in args.pairs.split(",")]
    if any(len(p) != 2 for p in pairs):
        ap.error("--pairs: source:target, ...")
    counts = [int(n) for n in args.few.split(",")]
    start = time.time()
    bench = Transfers(args.data, (n for p in pairs for n in p), (s for s, _ in pairs))
    ways = list(WAYS)
    lines = [
        "# The boosted residual of a transfer",
        "",
        f"`.venv/bin/python benchmarks/boosted_residual.py --few {args.few} --seeds "
        f"{args.seeds}`. Each source predictor is transferred with the target's covering "
        "blocks up to the smooth residual alone, and with the boosted residual after it "
        f"(stumps, `transfer.BOOSTED_PARAMS`; `canao train` adds it from {MIN_BOOSTED_BLOCKS} "
        "blocks on). Within ±10% on all the target's other blocks, mean over "
        f"{args.seeds} k-means seeds; the gain is the boosted residual's, in points.",
        "",
        "| source -> target | blocks | " + " | ".join(f"{w} ±10%" for w in ways) + " | gain |",
        "|---|---:|" + "---:|" * (len(ways) + 1),
    ]
    gains: dict[tuple[str, str], list[float]] = {}
    for src, dst in pairs:
        for n in counts:
            acc: dict[str, list[float]] = {w: [] for w in ways}
            for seed in range(args.seeds):
                for w, boost in WAYS.items():
                    acc[w].append(bench.score(src, dst, n, seed, boost=boost)["acc10"])
            mean = {w: float(np.mean(v)) for w, v in acc.items()}
            gain = 100 * (mean[ways[1]] - mean[ways[0]])
            gains.setdefault((src, dst), []).append(gain)
            lines.append(
                f"| {short(src)} -> {short(dst)} | {n} | "
                + " | ".join(f"{mean[w]:.1%}" for w in ways)
                + f" | {gain:+.1f} |"
            )
            print(lines[-1], flush=True)
    per_count = np.array(list(gains.values()))  # pairs x counts
    lines += [
        "",
        "Gain of the boosted residual over the smooth residual alone, over the pairs (points "
        "within ±10%):",
        "",
        "| blocks | mean | worst pair | best pair |",
        "|---:|---:|---:|---:|",
        *(
            f"| {n} | {per_count[:, i].mean():+.2f} | {per_count[:, i].min():+.1f} "
            f"| {per_count[:, i].max():+.1f} |"
            for i, n in enumerate(counts)
        ),
        "",
        f"{time.time() - start:.0f} s.",
        "",
        "![boosted residual](boosted-residual.png)",
    ]
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for (src, dst), g in gains.items():
        name = " -> ".join(f"{label(n)} {n.split('/')[2]}" for n in (src, dst))
        ax.plot(counts, g, marker="o", lw=1, label=name)
    ax.plot(counts, per_count.mean(axis=0), color="black", lw=2.5, label="mean over pairs")
    ax.axhline(0, color="grey", lw=0.8)
    ax.axvline(MIN_BOOSTED_BLOCKS, color="grey", ls="--", lw=0.8)
    ax.set_xlabel("measured blocks on the target (dashed: canao train's threshold)")
    ax.set_ylabel("boosted residual's gain, points within ±10%")
    ax.legend(fontsize=7)
    write_results(fig, lines, args.out, "boosted-residual")


if __name__ == "__main__":
    main()
