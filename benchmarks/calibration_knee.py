"""The knee of the transfer calibration's hinge on the attention scores' size.

    .venv/bin/python benchmarks/calibration_knee.py [--knees none,12.5,13,13.5,14,14.5]
        [--few 50] [--seeds 8]

The ridge calibration of a transfer (``predictor.CALIBRATION_FEATURES``) has a hinge,
max(0, log(attention score elements) - knee): one backend's ratio to another's can turn where
the scores outgrow a cache. For each knee (``none``: the hinge left out) and each source ->
target pair of ``boosted_residual.PAIRS``, plus ONNX Runtime -> tuned TVM with the target's
tuning records as a helper source (as ``transfer_records.py``), the source predictor (trained on
all its blocks) is transferred with the target's covering blocks (``transfer_picks``) as
``canao train --transfer-from`` does, and scored on all the target's other blocks, averaged
over ``--seeds`` k-means seeds. Writes ``results/calibration-knee.md`` and ``.png``.
"""

from __future__ import annotations

import time

import numpy as np
from boosted_residual import ORT, PAIRS, short
from transfer_records import RECORDS
from transfer_sources import INTEL, Transfers, label, write_results

import canao.predictors.predictor as predictor
from canao.predictors.records import read_records, records_sources

TVM = f"{INTEL}/tvm/2t/drift-median"


def main() -> None:
    import argparse
    from pathlib import Path

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=Path("datasets_latency"))
    ap.add_argument("--knees", default="none,12.5,13,13.5,14,14.5")
    ap.add_argument("--few", type=int, default=50, help="measured blocks on the target")
    ap.add_argument("--seeds", type=int, default=8)
    ap.add_argument("--records", type=Path, default=RECORDS, help="the TVM target's records")
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = ap.parse_args()
    try:
        knees = {k: np.inf if k == "none" else float(k) for k in args.knees.split(",")}
    except ValueError:
        ap.error("--knees: numbers (log elements) or none, comma-separated")
    start = time.time()
    records = records_sources(read_records(args.records), {"table": str(args.records)})
    pairs = [(s, t, []) for s, t in PAIRS] + [(ORT, TVM, records)]
    names = [n for s, t, _ in pairs for n in (s, t)]
    bench = Transfers(args.data, names, (s for s, _, _ in pairs))
    acc = np.zeros((len(pairs), len(knees)))
    shipped = predictor.CALIBRATION_KNEE
    try:
        for i, (src, dst, helpers) in enumerate(pairs):
            for j, knee in enumerate(knees.values()):
                predictor.CALIBRATION_KNEE = knee  # read by the calibration at each fit
                scores = [
                    bench.score(src, dst, args.few, seed, helpers) for seed in range(args.seeds)
                ]
                acc[i, j] = np.mean([e["acc10"] for e in scores])
            print(short(src), "->", short(dst), np.round(100 * acc[i], 1), flush=True)
    finally:
        predictor.CALIBRATION_KNEE = shipped
    head = " | ".join(f"knee {k}" if k != "none" else "no hinge" for k in knees)
    lines = [
        "# The knee of the transfer calibration's hinge",
        "",
        f"`.venv/bin/python benchmarks/calibration_knee.py --knees {args.knees} --few "
        f"{args.few} --seeds {args.seeds}`. The hinge is max(0, log(attention score elements) "
        f"- knee), a column of the ridge calibration; canao ships knee {shipped}. Each source "
        f"predictor is transferred with {args.few} covering blocks of the target, as `canao "
        "train --transfer-from` does (ONNX Runtime -> tuned TVM with the target's tuning "
        "records as a helper source); within ±10% on all the target's other blocks, mean over "
        f"{args.seeds} k-means seeds.",
        "",
        f"| source -> target | {head} |",
        "|---|" + "---:|" * len(knees),
        *(
            f"| {short(s)} -> {short(t)} | " + " | ".join(f"{a:.1%}" for a in acc[i]) + " |"
            for i, (s, t, _) in enumerate(pairs)
        ),
        "| **mean** | " + " | ".join(f"**{a:.2%}**" for a in acc.mean(axis=0)) + " |",
        "",
        f"{time.time() - start:.0f} s.",
        "",
        "![calibration knee](calibration-knee.png)",
    ]
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    x = np.arange(len(knees))
    for i, (s, t, _) in enumerate(pairs):
        name = " -> ".join(f"{label(n)} {n.split('/')[2]}" for n in (s, t))
        ax.plot(x, 100 * (acc[i] - acc[i, 0]), marker="o", lw=1, label=name)
    ax.plot(x, 100 * (acc.mean(axis=0) - acc[:, 0].mean()), color="black", lw=2.5, label="mean")
    ax.axhline(0, color="grey", lw=0.8)
    ax.set_xticks(x, list(knees))
    ax.set_xlabel("knee, log of the attention scores' elements")
    ax.set_ylabel(f"points within ±10% against {list(knees)[0]}, {args.few} blocks")
    ax.legend(fontsize=7)
    write_results(fig, lines, args.out, "calibration-knee")


if __name__ == "__main__":
    main()
