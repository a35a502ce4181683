"""Predictor accuracy on the shipped datasets: every figure of the README's predictor section.

    .venv/bin/python benchmarks/predictors.py [--data datasets_latency] [--datasets D/B,...]
        [--median D/B,...] [--quick] [--sections blocks,cv,models,...] [--out DIR]

Every (device, backend, thread count) dataset under ``--data`` with at least 300 block rows,
unless ``--datasets`` names them (``intel-xeon-amx-2c/onnxruntime/2t,...``); ``--median D,...``
adds those datasets again with each block's repeated measurements (``canao profile
--remeasure all`` rounds) combined by their median (``D/median``) and by their median after
dividing each by the host's speed when it was taken (``D/drift-median``), beside the latest
one.

1. Block level, two held-out splits (random 80/20; out-of-range: train on hidden, FFN and
   seq_len all <= their 90th percentile, test on the rest), XGBoost vs the baselines.
   Then every block held out once: 5-fold cross-validation, three fold assignments.
2. Whole models: sum of block predictions + fitted overhead, on held-out measured models.
3. Adaptive vs random sampling: held-out ±10% accuracy against the number of measured blocks
   (the pool is the measured dataset, so no new measurement is needed), each dataset read as
   the drift-corrected median of its rounds where it has several; and the number of blocks
   each needs to reach 99%.
4. Transfer to a new device or backend from a few blocks, against training from scratch:
   every ordered pair of datasets (a real second device where one is measured: e.g. the same
   ONNX Runtime design on an Intel and an AMD host).
5. Throughput of batched whole-model prediction.

A tuned-TVM dataset with its device's tuning records (``<device>/tvm/tuning/records.parquet``,
``canao records``) is also scored with them: as the base of its XGBoost predictor (``canao
train --records``: ``xgboost+records`` in 1-3) and, as a transfer target, mixed into the
transfer (``canao train --transfer-from P --records``).

Writes benchmarks/results/predictors.md and PNGs beside it, or into ``--out`` (a run of some
datasets or ``--sections`` only, e.g. a new device's, kept apart from the full run's).
"""

from __future__ import annotations

import argparse
import copy
import timeit
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from canao.predictors.adaptive import select
from canao.predictors.baselines import BASELINES
from canao.predictors.evaluation import (
    block_specs,
    blocks_xy,
    compare,
    cross_validated,
    format_table,
    load_dataset,
    model_rows,
    parse_dataset_name,
    pooled,
    random_split,
    scatter_png,
    transfer_score,
)
from canao.predictors.features import features_from_specs
from canao.predictors.metrics import LATENCY_BINS_MS, error_metrics
from canao.predictors.predictor import TRANSFER_METHODS, LatencyPredictor, Source
from canao.predictors.records import read_records, records_sources
from canao.predictors.transfer import pick_design, transfer_picks
from canao.profiling.samplers import ModelSpace, random_archs
from canao.profiling.store import read_rows

OUT = Path(__file__).parent / "results"
#: the XGBoost predictor with a tuned-TVM dataset's own tuning records as its base
RECORDS_MODEL = "xgboost+records"
SECTIONS = ("blocks", "cv", "models", "adaptive", "transfer", "throughput")


def datasets_in(data: Path, min_blocks: int = 300) -> list[str]:
    """``device/backend/<threads>t`` of every dataset under ``data`` with at least
    ``min_blocks`` valid block rows, largest first."""
    df = read_rows(data)
    df = df[(df["kind"] == "block") & df["error"].isna()]
    counts = df.groupby(["device", "backend", "threads"]).size().sort_values(ascending=False)
    return [f"{d}/{b}/{t}t" for d, b, t in counts[counts >= min_blocks].index.tolist()]


def block_tables(
    data: Path, datasets: list[str], lines: list[str], tables: dict, out: Path = OUT
) -> tuple[dict, list[str]]:
    """Per dataset, XGBoost against the baselines on both splits; also the summary rows (one
    per dataset and split: XGBoost and the best baseline by ±10%)."""
    frames, summary = {}, []
    for name in datasets:
        device, backend, threads, combine = parse_dataset_name(name)
        df = load_dataset(data, name)
        X, y = blocks_xy(df)
        frames[name] = (df, X, y)
        makers: dict[str, Callable[[], Any]] = {"xgboost": LatencyPredictor, **BASELINES}
        if tables[name] is not None:
            makers[RECORDS_MODEL] = records_model(tables[name])
        table, preds = compare(X, y, makers)
        png = scatter_png(
            preds,
            "xgboost",
            out / f"scatter-{name.replace('/', '-')}.png",
            f"XGBoost, {name}, held-out blocks",
        )
        lines += [
            f"### Blocks: {device} / {backend}, {threads} threads"
            + (f", repeated measurements combined by {combine}" if combine else "")
            + f" ({len(y)} rows)",
            "",
            format_table(table),
            "",
            f"![scatter]({png.name})",
            "",
            by_range(preds["random"]),
            "",
        ]
        print(format_table(table), flush=True)
        for split, g in table.groupby("split", sort=False):
            base = g[~g["model"].str.startswith("xgboost")].sort_values("acc10").iloc[-1]
            for model, label in (("xgboost", name), (RECORDS_MODEL, f"{name} + tuning records")):
                if model not in makers:
                    continue
                xgb = g[g["model"] == model].iloc[0]
                summary.append(
                    f"| {label} | {split} | {int(xgb['n'])} | {xgb['mape']:.2f}% "
                    f"| {xgb['acc5']:.1%} | {xgb['acc10']:.1%} | {xgb['max_err']:.1f}% "
                    f"| {xgb['kendall_tau']:.3f} | {base['model']} {base['acc10']:.1%} |"
                )
    return frames, summary


def by_range(p: dict[str, np.ndarray]) -> str:
    """XGBoost's held-out accuracy by measured latency (random split)."""
    y, yhat = p["measured"], p["xgboost"]
    rel = np.abs(yhat / y - 1)
    bins = pd.cut(y, LATENCY_BINS_MS)
    rows = ["| measured latency (ms) | n | within ±5% | within ±10% |", "|---|---:|---:|---:|"]
    for b, r in pd.DataFrame({"bin": bins, "rel": rel}).groupby("bin", observed=True)["rel"]:
        rows.append(f"| {b} | {len(r)} | {(r <= 0.05).mean():.1%} | {(r <= 0.10).mean():.1%} |")
    return "\n".join(rows)


def cross_validation(frames: dict, lines: list[str], tables: dict) -> None:
    """XGBoost with every block held out once (5-fold CV, three fold assignments); on a
    tuned-TVM dataset also with its tuning records as the base (``canao train --records``)."""
    lines += [
        "### Every block held out once (XGBoost, 5-fold cross-validation, 3 fold assignments)",
        "",
        "Mean over the three passes, (lowest-highest) for the shares.",
        "",
        "| dataset | rows | MAPE | within ±5% | within ±10% | max error |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name, (_, X, y) in frames.items():
        makers: dict[str, Callable[[], Any]] = {name: LatencyPredictor}
        if tables[name] is not None:
            makers[f"{name} + tuning records"] = records_model(tables[name])
        for label, make in makers.items():
            passes = cross_validated(X, y, make)
            m, acc5 = pooled(passes), [p["acc5"] for p in passes]
            acc10 = [p["acc10"] for p in passes]
            lines.append(
                f"| {label} | {len(y)} | {m['mape']:.2f}% | {m['acc5']:.1%} "
                f"({min(acc5):.1%}-{max(acc5):.1%}) | {m['acc10']:.1%} "
                f"({min(acc10):.1%}-{max(acc10):.1%}) | {m['max_err']:.1f}% |"
            )
            print(lines[-1], flush=True)
    lines.append("")


def model_level(frames: dict, lines: list[str], tables: dict, splits: int = 10) -> None:
    """Sum of block predictions, then with the fitted overhead, on held-out measured models
    (a tuned-TVM dataset's also with its tuning records as the blocks' base)."""
    lines += [
        f"### Whole models (half of the measured models held out, {splits} random halves pooled)",
        "",
        "| dataset | held out | overhead | MAPE | ±5% | ±10% | max err |",
        "|---|---:|---|---:|---:|---:|---:|",
    ]
    for name, (df, X, y) in frames.items():
        archs, ms, threads = model_rows(df)
        if len(archs) < 10:
            continue
        models = {name: LatencyPredictor().fit(X, y)}
        if tables[name] is not None:
            models[f"{name} + tuning records"] = records_model(tables[name])().fit(X, y)
        for label_name, model in models.items():
            blocks = model.predict_archs(archs, threads)
            held, fitted, caches = [], [], []
            for seed in range(splits):
                tr, te = random_split(len(archs), test_frac=0.5, seed=seed)
                model.fit_overhead([archs[i] for i in tr], ms[tr], threads)
                held.append(te)
                fitted.append(model.predict_archs([archs[i] for i in te], threads))
                caches.append(model.overhead_cache_mb_)
            te = np.concatenate(held)
            picked = ", ".join(f"{a:g}/{b:g}" for a, b in sorted(set(caches)))
            for label, pred in (
                ("none (sum of blocks)", blocks[te]),
                (f"fitted (cache MB layer/model: {picked})", np.concatenate(fitted)),
            ):
                m = error_metrics(ms[te], pred)
                lines.append(
                    f"| {label_name} | {len(te) // splits} x {splits} | {label} "
                    f"| {m['mape']:.2f}% | {m['acc5']:.1%} | {m['acc10']:.1%} "
                    f"| {m['max_err']:.1f}% |"
                )
    lines.append("")


def _panels(plt: Any, n: int, height: float, cols: int = 4) -> tuple[Any, list[Any]]:
    """A figure of ``n`` panels, up to ``cols`` per row (the spare ones hidden), and the n axes."""
    cols = min(cols, n)
    rows = -(-n // cols)
    fig, grid = plt.subplots(rows, cols, figsize=(5.5 * cols, height * rows), squeeze=False)
    for ax in grid.flat[n:]:
        ax.set_visible(False)
    return fig, list(grid.flat[:n])


def best_readings(frames: dict) -> dict[str, str]:
    """Each dataset's best reading here: the drift-corrected median of its rounds where it is
    read so, else its latest round (the plain median keeps the host's drift between rounds)."""
    bases = [n for n in frames if n.count("/") == 2]
    return {b: f"{b}/drift-median" if f"{b}/drift-median" in frames else b for b in bases}


def first_reaching(sizes: list[int], curve: list[float], goal: float = 0.99) -> str:
    """The smallest size whose accuracy reaches ``goal``, or why none does."""
    return next((f"{n:,}" for n, a in zip(sizes, curve, strict=True) if a >= goal), "not reached")


def adaptive_vs_random(
    frames: dict, lines: list[str], steps: list[int], batch: int, out: Path = OUT
) -> None:
    """Each dataset read as its best reading (``best_readings``): on a single round, the noise
    of that round caps either curve below the 99% goal whatever the sampling."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = _panels(plt, len(frames), 4.2)
    lines += [
        "### Adaptive vs random sampling (held-out ±10% accuracy)",
        "",
        "Each dataset as its best reading: the drift-corrected median of its rounds where it "
        "has several (then a block measured means a block measured in as many rounds), else "
        "its latest round. The pool is 80% of the blocks, the rest is held out.",
        "",
        "| dataset | blocks measured | random | adaptive |",
        "|---|---:|---:|---:|",
    ]
    params = {"n_estimators": 300}
    reached: list[str] = []
    for ax, (name, (df, X, y)) in zip(axes, frames.items(), strict=True):
        pool_idx, test_idx = random_split(len(y), seed=7)
        specs = block_specs(df[df["kind"] == "block"].reset_index(drop=True))
        Xt, yt = X.iloc[test_idx], y[test_idx]
        rng = np.random.default_rng(0)
        order = rng.permutation(pool_idx)
        sizes = [n for n in steps if n <= len(pool_idx)]  # a smaller dataset stops earlier
        start = list(order[: sizes[0]])
        curves: dict[str, list[float]] = {"random": [], "adaptive": []}
        chosen = list(start)
        for n in sizes:
            rnd = order[:n]
            curves["random"].append(
                error_metrics(yt, LatencyPredictor().fit(X.iloc[rnd], y[rnd]).predict(Xt))["acc10"]
            )
            while len(chosen) < n:
                remaining = np.setdiff1d(pool_idx, chosen)
                cand = [specs[i] for i in remaining]
                pick = select(
                    X.iloc[chosen],
                    y[chosen],
                    cand,
                    min(batch, n - len(chosen)),
                    threads=int(df["threads"].iloc[0]),
                    params=params,
                )
                lookup = {specs[i]: i for i in remaining}
                chosen += [lookup[s] for s in pick]
            ch = np.asarray(chosen)
            curves["adaptive"].append(
                error_metrics(yt, LatencyPredictor().fit(X.iloc[ch], y[ch]).predict(Xt))["acc10"]
            )
            lines.append(
                f"| {name} | {n} | {curves['random'][-1]:.1%} | {curves['adaptive'][-1]:.1%} |"
            )
            print(name, n, curves["random"][-1], curves["adaptive"][-1], flush=True)
        reached.append(
            f"| {name} | {len(pool_idx):,} | {first_reaching(sizes, curves['random'])} "
            f"| {first_reaching(sizes, curves['adaptive'])} |"
        )
        for method, c in curves.items():
            ax.plot(sizes, c, marker="o", label=method)
        ax.axhline(0.99, color="grey", ls="--", lw=0.8)
        ax.set_title(f"{name}\nheld-out {len(yt)} blocks", fontsize=9)
        ax.set_xlabel("measured blocks used for training")
        ax.set_ylabel("share within ±10%")
        ax.legend()
    fig.tight_layout()
    fig.savefig(out / "adaptive.png", dpi=120)
    lines += [
        "",
        "Blocks measured until the held-out share within ±10% first reaches 99% "
        f"(sizes tried: {', '.join(f'{n:,}' for n in steps)}):",
        "",
        "| dataset | pool | random | adaptive |",
        "|---|---:|---:|---:|",
        *reached,
        "",
        "![adaptive](adaptive.png)",
        "",
    ]


def tuning_records(data: Path, name: str) -> pd.DataFrame | None:
    """A tuned-TVM dataset's own tuning records per block (``canao records`` wrote
    ``<device>/<backend>/tuning/records.parquet``), as ``canao train --records`` reads them;
    None for a dataset without them."""
    device, backend, _, _ = parse_dataset_name(name)
    path = data / device / backend / "tuning" / "records.parquet"
    return read_records(path) if path.exists() else None


def records_model(table: pd.DataFrame) -> Callable[[], LatencyPredictor]:
    """The maker of XGBoost with ``table`` as its base (``canao train --records``)."""
    return partial(LatencyPredictor, base="records", records=table)


def transfer(
    frames: dict,
    lines: list[str],
    ns: list[int],
    seeds: int,
    tables: dict,
    out: Path = OUT,
) -> None:
    """Every dataset is a source, read as the best it is read here (the drift-corrected median
    of its rounds where there is one: the source predictor is built once, from all its rounds);
    every other dataset a target, read as its latest round and as the drift-corrected median of
    its rounds (then the few blocks are measured in as many rounds); not as the plain median,
    which keeps the host's drift between rounds (it is scored in the other sections). A target
    with its own tuning records (tuned TVM) is transferred with them, as ``canao train
    --records`` does, and also without them."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(frames)
    sources = best_readings(frames)
    bases = list(sources)
    readings = [n for n in names if not n.endswith("/median")]
    pairs = [(sources[a], b) for a in bases for b in readings if b.split("/")[:3] != a.split("/")]
    if not pairs:
        return
    targets = list(dict.fromkeys(b for _, b in pairs))
    fig, axes = _panels(plt, len(targets), 4.4)
    panel = dict(zip(targets, axes, strict=True))
    lines += [
        "### Transfer to a new device or backend from a few measured blocks "
        "(±10% on all other rows)",
        "",
        "Blocks picked to cover the source predictor's view of the target's blocks "
        "(`transfer_picks`, as `canao profile --transfer-from` measures them), and at random; "
        "from scratch: trained on the covering picks alone. A tuned-TVM target is "
        "transferred with its own tuning records (`canao train --records`); the last column "
        "is the transfer without them.",
        "",
        "| source -> target | blocks | transfer ±10% | transfer MAPE | random picks ±10% "
        "| from scratch ±10% | without tuning records ±10% |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    drawn: set[str] = set()
    fitted: dict[str, LatencyPredictor] = {}  # each source predictor built once
    for src, dst in pairs:
        _, Xd, yd = frames[dst]
        if src not in fitted:
            fitted[src] = LatencyPredictor().fit(*frames[src][1:])
        source = fitted[src]
        table = tables[dst]
        records: list[Source] = [] if table is None else list(records_sources(table))
        view = pick_design(Xd, source.predict(Xd))
        acc, mape, scratch, bare = [], [], [], []
        for n in ns:
            a, m, r, s, w = [], [], [], [], []
            for seed in range(seeds):
                random_pick = np.random.default_rng(seed).permutation(len(yd))[:n]
                r.append(transfer_score(source, Xd, yd, random_pick, records)[1]["acc10"])
                pick = transfer_picks(view, n, seed)
                rest, e = transfer_score(source, Xd, yd, pick, records)
                a.append(e["acc10"])
                m.append(e["mape"])
                if records:
                    w.append(transfer_score(source, Xd, yd, pick)[1]["acc10"])
                fresh = (
                    BASELINES["flops-linear"]() if n < 30 else LatencyPredictor(n_estimators=200)
                )
                s.append(
                    error_metrics(
                        yd[rest], fresh.fit(Xd.iloc[pick], yd[pick]).predict(Xd.iloc[rest])
                    )["acc10"]
                )
            acc.append(np.mean(a))
            mape.append(np.mean(m))
            scratch.append(np.mean(s))
            bare.append(float(np.mean(w)) if w else np.nan)
            lines.append(
                f"| {src} -> {dst} | {n} | {acc[-1]:.1%} | {mape[-1]:.2f}% "
                f"| {np.mean(r):.1%} | {scratch[-1]:.1%} | " + (f"{bare[-1]:.1%} |" if w else "|")
            )
            print(src, dst, n, acc[-1], scratch[-1], flush=True)
        # the linear forms' own ceiling: each fitted on every target row (no smooth residual,
        # whose Gaussian process would take minutes on thousands of rows), scored on them
        fits = {
            m: error_metrics(
                yd,
                copy.deepcopy(source)
                .fit_transfer(Xd, yd, method=m, residual=False, helpers=records)
                .predict(Xd),
            )
            for m in TRANSFER_METHODS
        }
        best, e = max(fits.items(), key=lambda kv: kv[1]["acc10"])
        lines.append(
            f"| {src} -> {dst} | all {len(yd)}, in-sample ({best}, linear) | {e['acc10']:.1%} "
            f"| {e['mape']:.2f}% | | | |"
        )
        ax = panel[dst]
        if dst not in drawn:
            drawn.add(dst)
            ax.plot(ns, scratch, marker="x", ls=":", color="black", label="from scratch")
        (curve,) = ax.plot(
            ns, acc, marker="o", label=f"from {src}" + (" + tuning records" if records else "")
        )
        ax.axhline(e["acc10"], color=curve.get_color(), ls=":", lw=0.8)
        if records:
            ax.plot(ns, bare, marker=".", ls="--", lw=0.8, color=curve.get_color())
    for dst, ax in panel.items():
        ax.axhline(0.95, color="grey", ls="--", lw=0.8)
        ax.set_title(f"target {dst}", fontsize=9)
        ax.set_xlabel("measured blocks on the target")
        ax.set_ylabel("share within ±10% (other rows; dotted: best linear form on all rows)")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "transfer.png", dpi=120)
    lines += [
        "",
        f"Mean over {seeds} draws per point (k-means seeds for the covering picks). "
        "Transfer: the linear form chosen by leave-one-out, then (10 blocks or more) the "
        "smooth residual. From scratch: FLOPs-linear below 30 "
        "blocks, XGBoost from 30. A target ending in /drift-median is read as the "
        "drift-corrected median of its "
        "rounds, the few measured blocks included (each measured in as many rounds). A source "
        "with repeated rounds is read as their drift-corrected median (its predictor is built "
        "once, from all it has). Dashed (tuned TVM): the same transfer without the target's "
        "tuning records.",
        "",
        "![transfer](transfer.png)",
        "",
    ]


def throughput(frames: dict, lines: list[str]) -> None:
    _, X, y = next(iter(frames.values()))
    model = LatencyPredictor().fit(X, y)
    archs = random_archs(ModelSpace(seq_len=(128,)), 10_000, seed=3)
    model.predict_archs(archs[:100], 2)
    blocks = [b for a in archs[:1000] for b in a.blocks()]
    # the best of 5 (timeit's convention): one 2-core VM's hiccup is not the code's speed
    dt = min(timeit.repeat(lambda: model.predict_archs(archs, 2), number=1, repeat=5))
    dt1 = min(
        timeit.repeat(lambda: model.predict(features_from_specs(blocks, 2)), number=1, repeat=5)
    )
    n_blocks = sum(a.num_layers for a in archs)
    lines += [
        "### Throughput",
        "",
        f"Batched whole-model prediction: {len(archs):,} random "
        f"ArchSpecs ({n_blocks:,} blocks) in {dt:.2f} s = {len(archs) / dt:,.0f} ArchSpecs/s "
        f"(2 threads, best of 5). Without block deduplication, 1,000 ArchSpecs in {dt1:.2f} s.",
        "",
    ]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=Path("datasets_latency"))
    ap.add_argument(
        "--datasets",
        help="device/backend/<threads>t,... (default: every dataset with >= 300 blocks)",
    )
    ap.add_argument(
        "--median", default="", help="datasets also scored with the (drift-)median of repeats"
    )
    ap.add_argument("--quick", action="store_true", help="fewer steps (a smoke run)")
    ap.add_argument(
        "--sections",
        default=",".join(SECTIONS),
        help=f"the parts to run, of {','.join(SECTIONS)} (blocks always runs: the others use it)",
    )
    ap.add_argument(
        "--out",
        type=Path,
        default=OUT,
        help="folder for predictors.md and the PNGs (a partial run: not the README's default)",
    )
    args = ap.parse_args()
    sections = set(filter(None, args.sections.split(",")))
    if unknown := sections - set(SECTIONS):
        ap.error(f"unknown --sections {sorted(unknown)}; choose from {','.join(SECTIONS)}")
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    lines = ["# Predictor accuracy (benchmarks/predictors.py)", ""]
    datasets = args.datasets.split(",") if args.datasets else datasets_in(args.data)
    for name in filter(None, args.median.split(",")):
        at = datasets.index(name) + 1 if name in datasets else 0
        datasets[at:at] = [f"{name}/median", f"{name}/drift-median"]
    # each tuned-TVM dataset's own tuning records, read once (None for the others)
    tables = {name: tuning_records(args.data, name) for name in datasets}
    frames, summary = block_tables(args.data, datasets, lines, tables, out)
    if "cv" in sections:
        cross_validation(frames, lines, tables)
    if "models" in sections:
        model_level(frames, lines, tables)
    if "adaptive" in sections:
        steps = [100, 200, 400] if args.quick else [100, 200, 400, 700, 1000, 1500, 2000]
        best = {k: frames[k] for k in best_readings(frames).values()}
        adaptive_vs_random(best, lines, steps, 100 if args.quick else 150, out)
    if "transfer" in sections:
        transfer(
            frames,
            lines,
            [5, 10, 20, 50] if args.quick else [5, 10, 20, 30, 50],
            2 if args.quick else 8,
            tables,
            out,
        )
    if "throughput" in sections:
        throughput(frames, lines)
    head = [
        lines[0],
        "",
        "## Summary: XGBoost on held-out blocks, and the best baseline by ±10%",
        "",
        "| dataset | split | held out | MAPE | within ±5% | within ±10% | max error | Kendall tau "
        "| best baseline (±10%) |",
        "|---|---|---:|---:|---:|---:|---:|---:|---|",
        *summary,
        "",
    ]
    (out / "predictors.md").write_text("\n".join(head + lines[2:]) + "\n")
    print(f"written to {out / 'predictors.md'}")


if __name__ == "__main__":
    main()
