"""Held-out block accuracy against the number of training blocks: is a dataset's predictor
limited by how many blocks it was trained on?

    .venv/bin/python benchmarks/learning_curve.py [--data datasets_latency]
        [--datasets D/B/Nt[/combine],...] [--test-blocks 2000] [--sizes 400,800,1200,1600]
        [--seeds 2] [--out DIR]

The test rows are a dataset's blocks among the first ``--test-blocks`` of the block design
(``block_samples(BlockSpace(), n, seed=0)``, the design every CPU dataset here measured in
order), each held out once: 5-fold cross-validation, ``--seeds`` fold assignments. Each fold
trains ``LatencyPredictor`` (its defaults) on a random subset of every other block of the
dataset, of each size in ``--sizes`` and of all of them: the other folds' blocks and, where a
dataset measured the design further, its blocks past the first ``--test-blocks``. So the test
rows stay the same at every size, and a size past 4/5 of ``--test-blocks`` reads what the
blocks measured beyond them add. Writes ``learning-curve.md`` and ``learning-curve.png`` into
``--out`` (default ``benchmarks/results``). Run it alone (XGBoost on 2 cores).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from sklearn.model_selection import KFold
from transfer_sources import write_results

from canao.predictors.evaluation import block_specs, blocks_xy, load_dataset
from canao.predictors.metrics import error_metrics
from canao.predictors.predictor import LatencyPredictor
from canao.profiling.samplers import BlockSpace, block_samples

DATASETS = (
    "intel-xeon-amx-2c/eager/1t/drift-median",
    "amd-epyc-avx512-2c-f25m17/eager/1t/drift-median",
    "intel-xeon-amx-2c/onnxruntime/1t/drift-median",
    "amd-epyc-avx512-2c-f25m17/onnxruntime/1t/drift-median",
)
FOLDS = 5


def curve(
    name: str, data: Path, test_blocks: int, sizes: list[int], seeds: int
) -> tuple[int, int, dict[int, dict[str, float]]]:
    """(test rows, blocks beyond them, {training size: mean metrics over the seeds}) of one
    dataset; the largest size is every block but the held-out fold."""
    df = load_dataset(data, name)
    X, y = blocks_xy(df)
    specs = block_specs(df[df["kind"] == "block"])
    first = set(block_samples(BlockSpace(), test_blocks, seed=0))
    test = np.flatnonzero([s in first for s in specs])
    extra = np.setdiff1d(np.arange(len(y)), test)
    if len(test) < 2 * FOLDS:
        raise SystemExit(f"{name}: {len(test)} blocks of the first {test_blocks} of the design")
    full = len(test) - len(test) // FOLDS + len(extra)  # the smallest fold's complement
    out: dict[int, list[dict[str, float]]] = {}
    for seed in range(seeds):
        rng = np.random.default_rng(seed)
        preds = {n: np.empty(len(test)) for n in [*sizes, full] if n <= full}
        for tr, te in KFold(FOLDS, shuffle=True, random_state=seed).split(test):
            pool = np.r_[test[tr], extra]
            for n in preds:
                pick = pool if n >= len(pool) else rng.choice(pool, n, replace=False)
                model = LatencyPredictor().fit(X.iloc[pick], y[pick])
                preds[n][te] = model.predict(X.iloc[test[te]])
        for n, p in preds.items():
            out.setdefault(n, []).append(error_metrics(y[test], p))
    means = {n: {k: float(np.mean([m[k] for m in ms])) for k in ms[0]} for n, ms in out.items()}
    return len(test), len(extra), means


def main() -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=Path("datasets_latency"))
    ap.add_argument("--datasets", default=",".join(DATASETS))
    ap.add_argument("--test-blocks", type=int, default=2000)
    ap.add_argument("--sizes", default="400,800,1200,1600")
    ap.add_argument("--seeds", type=int, default=2)
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = ap.parse_args()
    sizes = sorted(int(s) for s in args.sizes.split(","))
    start = time.time()
    lines = [
        "# Held-out block accuracy against the number of training blocks",
        "",
        f"`.venv/bin/python benchmarks/learning_curve.py --test-blocks {args.test_blocks} "
        f"--sizes {args.sizes} --seeds {args.seeds}`. Test rows: each dataset's blocks among "
        f"the first {args.test_blocks} of the design, each held out once ({FOLDS}-fold, "
        f"{args.seeds} fold assignments, mean); training: a random subset of that size of "
        "every other block of the dataset (the last size of each: all of them).",
        "",
        "| dataset | test blocks | blocks beyond them | training blocks | within ±5% "
        "| within ±10% | MAPE | max error |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    ticks: set[int] = set()
    for name in args.datasets.split(","):
        n_test, n_extra, res = curve(name, args.data, args.test_blocks, sizes, args.seeds)
        ticks |= set(res)
        for n, m in res.items():
            lines.append(
                f"| {name} | {n_test} | {n_extra} | {n} | {m['acc5']:.1%} | {m['acc10']:.1%} "
                f"| {m['mape']:.2f}% | {m['max_err']:.1f}% |"
            )
            print(lines[-1], flush=True)
        for ax, key in zip(axes, ("acc5", "acc10"), strict=True):
            ax.plot(list(res), [100 * m[key] for m in res.values()], "o-", label=name)
    for ax, goal, title in zip(axes, (95, 99.5), ("within ±5%", "within ±10%"), strict=True):
        ax.axhline(goal, color="grey", ls="--", lw=1, label=f"goal {goal}%")
        ax.set_xscale("log", base=2)
        ax.set_xticks(sorted(ticks), [str(n) for n in sorted(ticks)])
        ax.minorticks_off()
        ax.set_xlabel("training blocks")
        ax.set_ylabel(f"held-out blocks {title} (%)")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    lines += ["", f"{time.time() - start:.0f} s.", "", "![learning curve](learning-curve.png)"]
    write_results(fig, lines, args.out, "learning-curve")


if __name__ == "__main__":
    main()
