"""Whole models on a new device after a block transfer: the source's overhead, or carried.

    .venv/bin/python benchmarks/transfer_models.py [--datasets NAME,...] [--few 50] [--seeds 3]

Every dataset with whole models (read as the drift-corrected median of its rounds) is a target
in turn and every other one a source (its predictor trained on all its blocks and models). The
source is transferred from ``--few`` covering blocks (``canao train --transfer-from``), and the
target's whole models are predicted with the source's overhead as it stands, and with it
carried over from K of the target's whole models: rescaled (``rescale_overhead``), or rescaled
or adjusted, whichever reads those K better by leave-one-out (``transfer_overhead``, as
``canao train --few-models K`` does), the K picked to span the models (``cover_picks``, ``canao
train``'s default ``--pick cover``) or at random. Each is scored on the same held-out models
(all but the ones any of them used), beside the target's own predictor (trained on all its
blocks and models: not a transfer) and the block sums alone. Mean over ``--seeds`` seeds (block
picks and model picks). Writes ``results/transfer-models.md`` and
``results/transfer-models.png``.
"""

from __future__ import annotations

import copy
import time

import numpy as np
from transfer_sources import INTEL, dataset_args, label, short, write_results

from canao.predictors.evaluation import blocks_xy, load_dataset, model_rows
from canao.predictors.metrics import error_metrics
from canao.predictors.predictor import LatencyPredictor
from canao.predictors.transfer import cover_picks, model_pick_design, pick_design, transfer_picks

DATASETS = (
    f"{INTEL}/onnxruntime/2t/drift-median",
    f"{INTEL}/eager/2t/drift-median",
    "amd-epyc-avx512-2c/onnxruntime/1t/drift-median",
    "amd-epyc-avx512-2c-f25m17/onnxruntime/1t/drift-median",
    "amd-epyc-avx2-2c/onnxruntime/1t/drift-median",
)
#: (column, whole models of the target that carry the overhead, how picked, how fitted)
CARRIED = (
    ("rescaled, 10", 10, "cover", "rescale_overhead"),
    ("either, 10", 10, "cover", "transfer_overhead"),
    ("either, 20 random", 20, "random", "transfer_overhead"),
    ("either, 20", 20, "cover", "transfer_overhead"),
    ("either, 30", 30, "cover", "transfer_overhead"),
    ("either, 50", 50, "cover", "transfer_overhead"),
)
#: canao train's --few-models
DEFAULT = 50
#: the most whole models any column uses, and picks at random
K = max(k for _, k, _, _ in CARRIED)
RANDOM = max(k for _, k, how, _ in CARRIED if how == "random")


def main() -> None:
    import matplotlib.pyplot as plt

    args = dataset_args(__doc__, DATASETS, 3)
    names = args.datasets.split(",")
    if len(names) < 2:
        raise SystemExit("--datasets: at least 2 (a target and a source)")
    start = time.time()
    frames, models, fitted = {}, {}, {}
    for n in names:
        df = load_dataset(args.data, n)
        frames[n], models[n] = blocks_xy(df), model_rows(df)
        if len(models[n][0]) <= K + RANDOM:
            raise SystemExit(f"{n}: {len(models[n][0])} whole models, needs more than {K + RANDOM}")
        fitted[n] = LatencyPredictor().fit(*frames[n])
        fitted[n].fit_overhead(*models[n])
    cols = ["own predictor", "block sums", "source's overhead"]
    cols += [c for c, *_ in CARRIED]
    #: what `canao train` prints of its fit: the K models each predicted without it
    loo = f"either, {DEFAULT}: its leave-one-out"
    cols.append(loo)
    #: the transferred block sums against the target's own predictor's (not a measurement)
    agree = "block sums vs own"
    lines = [
        "# Whole models on a new device after a block transfer",
        "",
        f"`.venv/bin/python benchmarks/transfer_models.py --few {args.few} --seeds {args.seeds}`."
        f" Each source transferred from {args.few} covering blocks of the target (`canao train "
        "--transfer-from`); the target's whole models predicted with the source's overhead, "
        "and with it carried over from K of them: rescaled (`rescale_overhead`), or rescaled or "
        "adjusted, whichever reads those K better by leave-one-out (`transfer_overhead`, what "
        '`canao train --few-models K` does: "either"), the K picked to span the models '
        "(`cover_picks`, `canao train`'s default `--pick cover`) or at random. Within ±10% on "
        f"the held-out models (all but the {K} covering and {RANDOM} random picks), mean over "
        f"{args.seeds} seeds; the target's own predictor (all its blocks and models, these "
        "included: an in-sample reference, not a transfer) and the transferred block sums "
        "without any overhead for reference; the last column: the transferred block sums within "
        "±10% of the target's own predictor's (what the transfer's block error alone costs the "
        f'models). "Its leave-one-out": the {DEFAULT} models of "either, {DEFAULT}" each '
        "predicted by the fit without it, within ±10% (`metrics.models_cv`, what `canao train` "
        "prints before any other model is measured).",
        "",
        "| target | source | " + " | ".join([*cols, agree]) + " |",
        "|---|---|" + "---:|" * (len(cols) + 1),
    ]
    results: dict[str, dict[str, list[float]]] = {}
    for target in names:
        Xd, yd = frames[target]
        archs, ms, threads = models[target]
        own = fitted[target].predict_archs(archs, threads)
        own_sums = fitted[target].predict_archs(archs, threads, overhead=False)
        results[target] = {c: [] for c in [*cols, agree]}
        for source in names:
            if source == target:
                continue
            view = pick_design(Xd, fitted[source].predict(Xd))
            acc: dict[str, list[float]] = {c: [] for c in [*cols, agree]}
            for seed in range(args.seeds):
                pick = transfer_picks(view, args.few, seed)
                model = copy.deepcopy(fitted[source]).fit_transfer(Xd.iloc[pick], yd[pick])
                sums = model.predict_archs(archs, threads, overhead=False)
                few = {
                    "cover": cover_picks(model_pick_design(archs, sums), K, seed),
                    "random": np.random.default_rng(seed).permutation(len(archs))[:RANDOM],
                }
                rest = np.setdiff1d(np.arange(len(archs)), np.r_[few["cover"], few["random"]])
                preds = {cols[0]: own, cols[1]: sums, cols[2]: model.predict_archs(archs, threads)}
                for col, k, how, fit in CARRIED:
                    carried = copy.deepcopy(model)
                    used = few[how][:k]
                    getattr(carried, fit)([archs[i] for i in used], ms[used], threads)
                    preds[col] = carried.predict_archs(archs, threads)
                    if col == f"either, {DEFAULT}":
                        acc[loo].append(float(np.mean(np.abs(carried.overhead_loo_) <= 0.1)))
                for col, p in preds.items():
                    acc[col].append(error_metrics(ms[rest], p[rest])["acc10"])
                acc[agree].append(error_metrics(own_sums[rest], sums[rest])["acc10"])
            lines.append(
                f"| {short(target)} | {short(source)} | "
                + " | ".join(f"{np.mean(acc[c]):.1%}" for c in [*cols, agree])
                + " |"
            )
            print(lines[-1], flush=True)
            for c in [*cols, agree]:
                results[target][c].append(float(np.mean(acc[c])))
    lines += [
        "",
        "Mean over the sources per target:",
        "",
        "| target | " + " | ".join([*cols, agree]) + " |",
        "|---|" + "---:|" * (len(cols) + 1),
    ]
    for target, by in results.items():
        means = " | ".join(f"{np.mean(by[c]):.1%}" for c in [*cols, agree])
        lines.append(f"| {short(target)} | {means} |")
    lines += ["", f"{time.time() - start:.0f} s.", "", "![transfer models](transfer-models.png)"]
    fig, ax = plt.subplots(figsize=(8.5, 4.2))
    x = np.arange(len(names))
    scored = [c for c in cols if c != loo]  # held-out models only
    width = 0.8 / len(scored)
    for i, c in enumerate(scored):
        means = [np.mean(results[t][c]) for t in names]
        ax.bar(x + (i - (len(scored) - 1) / 2) * width, means, width, label=c)
    ax.axhline(0.99, color="grey", ls="--", lw=0.8)
    ax.set_xticks(x, [label(t) for t in names], fontsize=8)
    ax.set_ylabel("whole models within ±10% (mean over sources)", fontsize=8)
    ax.set_ylim(0.0, 1.0)
    ax.legend(fontsize=7, loc="lower left", ncol=2)
    ax.set_title(f"target's whole models after a transfer from {args.few} blocks", fontsize=9)
    write_results(fig, lines, args.out, "transfer-models")


if __name__ == "__main__":
    main()
