"""What a search gives: the trials table, the feasible Pareto front, finalists, a plot."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd


def trials_frame(study: Any) -> pd.DataFrame:
    import optuna

    rows = []
    for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)):
        a = t.user_attrs
        rows.append(
            {
                "number": t.number,
                "accuracy": a["accuracy"],
                "accuracy_kind": a["accuracy_kind"],
                "predicted_ms": a["predicted_ms"],
                "feasible": a["constraint"] <= 0,
                "gflops": a["flops"] / 1e9,
                "params_m": a["params"] / 1e6,
                "layers": len(json.loads(a["arch"])["layers"]),
                "arch": a["arch"],
            }
        )
    return pd.DataFrame(rows)


def pareto_mask(acc: np.ndarray, ms: np.ndarray) -> np.ndarray:
    """True where no other point has accuracy >= and latency <= with one strictly better."""
    order = np.lexsort((-acc, ms))  # by latency, then accuracy descending
    mask = np.zeros(len(acc), dtype=bool)
    best = -np.inf
    for i in order:
        if acc[i] > best:
            mask[i] = True
            best = acc[i]
    return mask


def front(df: pd.DataFrame) -> pd.DataFrame:
    feas = df[df["feasible"]].drop_duplicates("arch")
    if feas.empty:
        return feas
    m = pareto_mask(feas["accuracy"].to_numpy(), feas["predicted_ms"].to_numpy())
    return feas[m].sort_values("predicted_ms")


def finalists(df: pd.DataFrame, k: int) -> pd.DataFrame:
    """The ``k`` most accurate distinct feasible architectures (faster first on ties)."""
    feas = df[df["feasible"]].drop_duplicates("arch")
    return feas.sort_values(["accuracy", "predicted_ms"], ascending=[False, True]).head(k)


def write_outputs(df: pd.DataFrame, out: Path, k: int, budget_ms: float, title: str) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    df.to_csv(out / "trials.csv", index=False)
    fin = finalists(df, k)
    fdir = out / "finalists"
    fdir.mkdir(exist_ok=True)
    paths = []
    for i, (_, r) in enumerate(fin.iterrows()):
        arch = json.loads(r["arch"])
        arch = {"name": f"finalist-{i:02d}", **arch}
        p = fdir / f"finalist-{i:02d}.json"
        p.write_text(json.dumps(arch, indent=1))
        paths.append(str(p))
    kind = str(df["accuracy_kind"].iloc[0]) if len(df) else "?"
    label = "accuracy" if kind == "real" else "capacity PROXY (not accuracy)"
    lines = [
        f"| # | {label} | predicted ms | GFLOPs | params (M) | layers | file |",
        "|---:|---:|---:|---:|---:|---:|---|",
    ]
    for i, ((_, r), file) in enumerate(zip(fin.iterrows(), paths, strict=True)):
        lines.append(
            f"| {i} | {r['accuracy']:.4f} | {r['predicted_ms']:.3f} | {r['gflops']:.2f} | "
            f"{r['params_m']:.1f} | {r['layers']} | {Path(file).name} |"
        )
    table = "\n".join(lines)
    (out / "finalists.md").write_text(f"# {title}\n\nBudget {budget_ms} ms.\n\n{table}\n")
    png = pareto_png(df, out / "pareto.png", budget_ms, title, label)
    return {"finalists": paths, "table": table, "pareto_png": str(png)}


def pareto_png(df: pd.DataFrame, path: Path, budget_ms: float, title: str, label: str) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.6))
    feas = df[df["feasible"]]
    ax.scatter(
        df.loc[~df["feasible"], "predicted_ms"],
        df.loc[~df["feasible"], "accuracy"],
        s=6,
        color="lightgrey",
        label="over budget",
    )
    ax.scatter(feas["predicted_ms"], feas["accuracy"], s=6, alpha=0.6, label="within budget")
    f = front(df)
    if len(f):
        ax.plot(
            f["predicted_ms"],
            f["accuracy"],
            color="tab:red",
            marker="o",
            ms=3,
            label="Pareto front",
        )
    ax.axvline(budget_ms, color="black", ls="--", lw=0.8, label=f"budget {budget_ms} ms")
    ax.set_xlabel("predicted latency (ms)")
    ax.set_ylabel(label)
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
