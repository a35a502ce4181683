"""Predictor accuracy on the shipped datasets: every figure of the README's predictor section.

    .venv/bin/python benchmarks/predictors.py [--data datasets_latency] [--quick]

1. Block level, two held-out splits (random 80/20; out-of-range: train on hidden, FFN and
   seq_len all <= their 90th percentile, test on the rest), XGBoost vs the baselines.
2. Whole models: sum of block predictions + fitted overhead, on held-out measured models.
3. Adaptive vs random sampling: held-out ±10% accuracy against the number of measured blocks
   (the pool is the measured dataset, so no new measurement is needed).
4. Transfer to a new device/backend from a few blocks, against training from scratch.
5. Throughput of batched whole-model prediction.

Writes benchmarks/results/predictors.md and PNGs beside it.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd

from canao.predictors.adaptive import select
from canao.predictors.baselines import BASELINES
from canao.predictors.evaluation import (
    blocks_xy,
    compare,
    format_table,
    load_rows,
    model_rows,
    random_split,
    scatter_png,
)
from canao.predictors.features import features_from_specs
from canao.predictors.metrics import error_metrics
from canao.predictors.predictor import LatencyPredictor
from canao.profiling.samplers import ModelSpace, random_archs
from canao.space import BlockSpec

OUT = Path(__file__).parent / "results"


def specs_of(df: pd.DataFrame) -> list[BlockSpec]:
    cols = ["hidden", "heads", "head_dim", "ffn", "seq_len", "batch"]
    return [BlockSpec(*map(int, r)) for r in df[cols].to_numpy()]


def block_tables(data: Path, backends: list[str], lines: list[str]) -> dict:
    frames = {}
    for backend in backends:
        df = load_rows(data, backend)
        X, y = blocks_xy(df)
        frames[backend] = (df, X, y)
        makers = {"xgboost": LatencyPredictor, **BASELINES}
        table, preds = compare(X, y, makers)
        device = str(df["device"].iloc[0])
        png = scatter_png(
            preds,
            "xgboost",
            OUT / f"scatter-{backend}.png",
            f"XGBoost, {device} / {backend}, held-out blocks",
        )
        lines += [
            f"### Blocks: {device} / {backend} ({len(y)} rows)",
            "",
            format_table(table),
            "",
            f"![scatter]({png.name})",
            "",
            by_range(preds["random"]),
            "",
        ]
        print(format_table(table), flush=True)
    return frames


def by_range(p: dict[str, np.ndarray]) -> str:
    """XGBoost's held-out accuracy by measured latency (random split)."""
    y, yhat = p["measured"], p["xgboost"]
    rel = np.abs(yhat / y - 1)
    bins = pd.cut(y, [0, 0.1, 0.3, 1, 3, 10, 30, 1e9])
    rows = ["| measured latency (ms) | n | within ±5% | within ±10% |", "|---|---:|---:|---:|"]
    for b, r in pd.DataFrame({"bin": bins, "rel": rel}).groupby("bin", observed=True)["rel"]:
        rows.append(f"| {b} | {len(r)} | {(r <= 0.05).mean():.1%} | {(r <= 0.10).mean():.1%} |")
    return "\n".join(rows)


def model_level(frames: dict, lines: list[str]) -> None:
    lines += [
        "### Whole models (held-out 50% of the measured models)",
        "",
        "| backend | models | overhead | MAPE | ±5% | ±10% | max err |",
        "|---|---:|---|---:|---:|---:|---:|",
    ]
    for backend, (df, X, y) in frames.items():
        archs, ms, threads = model_rows(df)
        if len(archs) < 10:
            continue
        tr, te = random_split(len(archs), test_frac=0.5)
        model = LatencyPredictor().fit(X, y)
        for label in ("none (sum of blocks)", "fitted"):
            if label == "fitted":
                model.fit_overhead([archs[i] for i in tr], ms[tr], threads)
            m = error_metrics(ms[te], model.predict_archs([archs[i] for i in te], threads))
            lines.append(
                f"| {backend} | {len(te)} | {label} | {m['mape']:.2f}% | {m['acc5']:.1%} | "
                f"{m['acc10']:.1%} | {m['max_err']:.1f}% |"
            )
    lines.append("")


def adaptive_vs_random(frames: dict, lines: list[str], steps: list[int], batch: int) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(frames), figsize=(5.5 * len(frames), 4.2), squeeze=False)
    lines += [
        "### Adaptive vs random sampling (held-out ±10% accuracy)",
        "",
        "| backend | blocks measured | random | adaptive |",
        "|---|---:|---:|---:|",
    ]
    params = {"n_estimators": 300}
    for ax, (backend, (df, X, y)) in zip(axes[0], frames.items(), strict=True):
        pool_idx, test_idx = random_split(len(y), seed=7)
        specs = specs_of(df[df["kind"] == "block"].reset_index(drop=True))
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
                f"| {backend} | {n} | {curves['random'][-1]:.1%} | {curves['adaptive'][-1]:.1%} |"
            )
            print(backend, n, curves["random"][-1], curves["adaptive"][-1], flush=True)
        for name, c in curves.items():
            ax.plot(sizes, c, marker="o", label=name)
        ax.axhline(0.99, color="grey", ls="--", lw=0.8)
        ax.set_title(f"{backend}: held-out {len(yt)} blocks")
        ax.set_xlabel("measured blocks used for training")
        ax.set_ylabel("share within ±10%")
        ax.legend()
    fig.tight_layout()
    fig.savefig(OUT / "adaptive.png", dpi=120)
    lines += ["", "![adaptive](adaptive.png)", ""]


def transfer(frames: dict, lines: list[str], ns: list[int], seeds: int) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    backends = list(frames)
    pairs = [(a, b) for a in backends for b in backends if a != b]
    if not pairs:
        return
    fig, ax = plt.subplots(figsize=(6, 4.2))
    lines += [
        "### Transfer to a new backend from a few measured blocks (±10% on all other rows)",
        "",
        "| source -> target | blocks | transfer ±10% | transfer MAPE | from scratch ±10% |",
        "|---|---:|---:|---:|---:|",
    ]
    for src, dst in pairs:
        _, Xs, ys = frames[src]
        _, Xd, yd = frames[dst]
        source = LatencyPredictor().fit(Xs, ys)
        acc, mape, scratch = [], [], []
        for n in ns:
            a, m, s = [], [], []
            for seed in range(seeds):
                pick = np.random.default_rng(seed).permutation(len(yd))[:n]
                rest = np.setdiff1d(np.arange(len(yd)), pick)
                model = LatencyPredictor(**source.get_params())
                model.booster_, model.base_coef_, model.base_intercept_ = (
                    source.booster_,
                    source.base_coef_,
                    source.base_intercept_,
                )
                model.fit_transfer(Xd.iloc[pick], yd[pick])
                e = error_metrics(yd[rest], model.predict(Xd.iloc[rest]))
                a.append(e["acc10"])
                m.append(e["mape"])
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
            lines.append(
                f"| {src} -> {dst} | {n} | {acc[-1]:.1%} | {mape[-1]:.2f}% | {scratch[-1]:.1%} |"
            )
            print(src, dst, n, acc[-1], scratch[-1], flush=True)
        ax.plot(ns, acc, marker="o", label=f"{src} -> {dst} (transfer)")
        ax.plot(ns, scratch, marker="x", ls=":", label=f"{dst} from scratch")
    ax.axhline(0.95, color="grey", ls="--", lw=0.8)
    ax.set_xlabel("measured blocks on the target")
    ax.set_ylabel("share within ±10% (other rows)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(OUT / "transfer.png", dpi=120)
    lines += [
        "",
        f"Mean over {seeds} random draws per point. From scratch: FLOPs-linear below 30 "
        "blocks, XGBoost from 30.",
        "",
        "![transfer](transfer.png)",
        "",
    ]


def throughput(frames: dict, lines: list[str]) -> None:
    _, X, y = next(iter(frames.values()))
    model = LatencyPredictor().fit(X, y)
    archs = random_archs(ModelSpace(seq_len=(128,)), 10_000, seed=3)
    model.predict_archs(archs[:100], 2)
    t0 = time.perf_counter()
    model.predict_archs(archs, 2)
    dt = time.perf_counter() - t0
    n_blocks = sum(a.num_layers for a in archs)
    t1 = time.perf_counter()
    model.predict(features_from_specs([b for a in archs[:1000] for b in a.blocks()], 2))
    dt1 = time.perf_counter() - t1
    lines += [
        "### Throughput",
        "",
        f"Batched whole-model prediction: {len(archs):,} random "
        f"ArchSpecs ({n_blocks:,} blocks) in {dt:.2f} s = {len(archs) / dt:,.0f} ArchSpecs/s "
        f"(2 threads). Without block deduplication, 1,000 ArchSpecs in {dt1:.2f} s.",
        "",
    ]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=Path("datasets_latency"))
    ap.add_argument("--backends", default="onnxruntime,eager,tvm")
    ap.add_argument("--quick", action="store_true", help="fewer steps (a smoke run)")
    args = ap.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    lines = ["# Predictor accuracy (benchmarks/predictors.py)", ""]
    frames = block_tables(args.data, args.backends.split(","), lines)
    model_level(frames, lines)
    steps = [100, 200, 400] if args.quick else [100, 200, 400, 700, 1000, 1500, 2000]
    adaptive_vs_random(frames, lines, steps, batch=100 if args.quick else 150)
    transfer(
        frames,
        lines,
        [5, 10, 20, 50] if args.quick else [5, 10, 20, 30, 50],
        2 if args.quick else 5,
    )
    throughput(frames, lines)
    (OUT / "predictors.md").write_text("\n".join(lines) + "\n")
    print(f"written to {OUT / 'predictors.md'}")


if __name__ == "__main__":
    main()
