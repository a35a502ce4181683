"""Host drift during a measurement campaign, seen in the data itself.

    .venv/bin/python benchmarks/drift.py [--data datasets_latency] [--device D] [--threads 2]
        [--bin 4min] [--backends onnxruntime,eager] [--out DIR]

For each backend, out-of-fold XGBoost predictions (5 folds) of every block row; the median
ratio measured/predicted over time bins shows whether the host's speed moved while the rows
were measured (the spec order is random with respect to time, so a trend is the machine, not
the specs). Where the blocks were measured in several rounds, the same over every round from the
rows themselves: each row's latency over its key's median over the rounds, and canao's estimate
of the host's speed at each row (``canao.profiling.store.host_speed``, what ``--combine
drift-median`` divides out). Writes benchmarks/results/drift.md and drift.png (or into
``--out``: another device's run, kept apart from the README's).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import pandas as pd

from canao.predictors.adaptive import out_of_fold
from canao.predictors.evaluation import blocks_xy, load_rows
from canao.profiling.store import host_speed, read_all_rows

OUT = Path(__file__).parent / "results"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=Path("datasets_latency"))
    ap.add_argument("--device", default="intel-xeon-amx-2c", help="whose datasets")
    ap.add_argument(
        "--threads",
        type=int,
        default=2,
        help="the rows' thread count (the Intel host's datasets: 2; the AMD VMs': 1)",
    )
    ap.add_argument("--backends", default="onnxruntime,eager")
    ap.add_argument("--bin", default="4min")
    ap.add_argument("--out", type=Path, default=OUT, help="folder for drift.md and drift.png")
    args = ap.parse_args()
    out = args.out
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    lines = ["# Host drift during the measurement of the shipped blocks", ""]
    fig, (ax, ax_all) = plt.subplots(1, 2, figsize=(13, 4))
    for backend in args.backends.split(","):
        df = load_rows(args.data, backend, args.device, args.threads)
        X, y = blocks_xy(df)
        blocks = df[df["kind"] == "block"].reset_index(drop=True)
        ratio = pd.Series(
            y / out_of_fold(X, y, {"n_estimators": 400}, folds=5),
            index=pd.to_datetime(blocks["timestamp"]),
        ).sort_index()
        g = ratio.resample(args.bin).agg(["median", "size"]).dropna()
        lo, hi = g["median"].min(), g["median"].max()
        lines += [
            f"## {backend}: {len(y)} blocks, {g.index[0]:%H:%M} to {g.index[-1]:%H:%M} UTC",
            "",
            f"Median measured/predicted per {args.bin} bin ranges {lo:.3f} .. {hi:.3f} "
            f"(a spread of {hi / lo - 1:.0%}).",
            "",
            "| bin (UTC) | rows | measured / predicted |",
            "|---|---:|---:|",
        ]
        lines += [f"| {t:%H:%M} | {int(r['size'])} | {r['median']:.3f} |" for t, r in g.iterrows()]
        lines.append("")
        ax.plot(g.index, g["median"], marker="o", label=backend)
        lines += every_round(
            args.data / args.device / backend, backend, args.threads, args.bin, ax_all
        )
    ax.set_title("each block's latest row", fontsize=9)
    ax.set_ylabel("median measured / out-of-fold predicted")
    ax_all.set_title("every round: row / its key's median over the rounds", fontsize=9)
    ax_all.set_ylabel("median per bin")
    for a in (ax, ax_all):
        a.set_xlabel("time of measurement (UTC)")
        a.axhline(1.0, color="grey", lw=0.8)
        a.legend(fontsize=8)
    fig.autofmt_xdate()
    fig.tight_layout()
    out.mkdir(parents=True, exist_ok=True)
    fig.savefig(out / "drift.png", dpi=120)
    lines.append("![drift](drift.png)")
    backends = [*args.backends.split(","), "tvm"]
    lines += ["", *canary_correction(args.data, args.device, args.threads, backends)]
    (out / "drift.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def every_round(path: Path, backend: str, threads: int, bin: str, ax: Any) -> list[str]:
    """The host's speed over every round of the blocks under ``path`` at ``threads``, per time
    bin: the median of each row's latency over its key's median over all rounds (model-free;
    damped towards 1 where a key has few rounds), and of canao's drift estimate at each row.
    Nothing where no block was measured twice."""
    df = read_all_rows(path)
    df = df[(df["kind"] == "block") & df["error"].isna() & (df["threads"] == threads)]
    if df.empty or df.groupby("key").size().max() < 2:
        return []
    df = df.assign(
        raw=df["median_ms"] / df.groupby("key")["median_ms"].transform("median"),
        speed=host_speed(df),
        t=pd.to_datetime(df["timestamp"]),
    )
    bins = df.set_index("t").sort_index()[["raw", "speed"]].resample(bin)
    med = bins.median()  # empty bins NaN: the drawn line breaks between rounds
    g = med.assign(rows=bins.size()).dropna()
    rounds = df["key"].value_counts()
    (curve,) = ax.plot(g.index, g["raw"], marker=".", ls="", label=f"{backend} {threads}t")
    ax.plot(med.index, med["speed"], color=curve.get_color(), lw=0.8, label="drift estimate")
    return [
        f"### {backend}, {threads} thread(s), every round: {len(df)} rows of {len(rounds)} "
        f"blocks ({rounds.min()}-{rounds.max()} rounds each), {g.index[0]:%m-%d %H:%M} to "
        f"{g.index[-1]:%m-%d %H:%M} UTC",
        "",
        f"Median row / key median per {bin} bin: {g['raw'].min():.3f} .. "
        f"{g['raw'].max():.3f}; drift estimate {g['speed'].min():.3f} .. "
        f"{g['speed'].max():.3f}.",
        "",
        "| bin (UTC) | rows | row / key median | drift estimate |",
        "|---|---:|---:|---:|",
        *(
            f"| {t:%m-%d %H:%M} | {int(r['rows'])} | {r['raw']:.3f} | {r['speed']:.3f} |"
            for t, r in g.iterrows()
        ),
        "",
    ]


def canary_correction(data: Path, device: str, threads: int, backends: list[str]) -> list[str]:
    """Held-out accuracy with and without dividing every row by its canary
    (``canao train --drift canary``): 80/20 random split of the blocks, and of the whole models
    on top of a predictor trained on every block, as ``canao train`` reports them."""
    from canao.predictors.evaluation import canary_reference, model_rows, random_split
    from canao.predictors.metrics import error_metrics
    from canao.predictors.predictor import LatencyPredictor

    lines = [
        "## Dividing out the canary (`canao train --drift canary`)",
        "",
        "| backend | rows with a canary | drift | blocks within ±10% | blocks MAPE "
        "| models within ±10% | models MAPE |",
        "|---|---:|---|---:|---:|---:|---:|",
    ]
    for backend in dict.fromkeys(backends):
        try:
            df = load_rows(data, backend, device, threads)
        except ValueError:
            continue
        has = float(df["canary_ms"].notna().mean())
        for drift, ref in (("none", None), ("canary", canary_reference(df))):
            X, y = blocks_xy(df, ref)
            tr, te = random_split(len(y))
            b = error_metrics(y[te], LatencyPredictor().fit(X.iloc[tr], y[tr]).predict(X.iloc[te]))
            archs, ms, threads = model_rows(df, ref)
            m = {"acc10": float("nan"), "mape": float("nan")}
            if len(archs) >= 10:
                full = LatencyPredictor().fit(X, y)
                mtr, mte = random_split(len(archs))
                full.fit_overhead([archs[i] for i in mtr], ms[mtr], threads)
                m = error_metrics(ms[mte], full.predict_archs([archs[i] for i in mte], threads))
            lines.append(
                f"| {backend} | {has:.0%} | {drift} | {b['acc10']:.1%} | {b['mape']:.2f}% "
                f"| {m['acc10']:.1%} | {m['mape']:.2f}% |"
            )
    return lines


if __name__ == "__main__":
    main()
