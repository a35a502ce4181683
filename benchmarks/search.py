"""Search methods compared at an equal number of trials, judged by *measured* latency.

    .venv/bin/python benchmarks/search.py --predictor runs/pred-ort [--trials 300]
                                          [--budget-ms X] [--task mr] [--top-k 5]

Needs a latency predictor (``canao train``) and an elastic base (``canao compress rewire`` /
``supernet``): accuracy is the inherited dev accuracy, cached on disk, shared by the methods.

Methods (same space, same accuracy estimator, same number of trials, same seed):

- ``predictor``: TPE, the budget a constraint on predicted latency (canao's search);
- ``random``: random sampling, the same constraint applied to pick finalists;
- ``flops``: TPE with a FLOPs budget instead: latency taken as proportional to FLOPs,
  scaled so that the base model's measured latency maps to itself (what one does without a
  latency predictor).

Each method's top-k finalists (by accuracy, within its own budget) are measured end to end on
this machine; the table reports the best accuracy among finalists whose *measured* latency is
within the budget, the predicted-vs-measured error, and the wall-clock per 1,000 trials with
accuracy evaluation (cold cache) and without (a second run on the warm cache).
Writes benchmarks/results/search-TASK.md and search-TASK.png. Run it on a quiet machine.
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from canao.compress.checkpoint import is_model_dir
from canao.compress.teacher import default_dir
from canao.predictors.predictor import LatencyPredictor
from canao.search.accuracy import InheritedAccuracy
from canao.search.results import trials_frame
from canao.search.space import SearchSpace
from canao.search.study import Objective, SearchConfig, make_sampler
from canao.space import ArchSpec

OUT = Path(__file__).parent / "results"


class FlopsLatency:
    """Latency proportional to FLOPs, anchored at the base model's measured latency."""

    def __init__(self, base: ArchSpec, base_ms: float) -> None:
        self.ms_per_flop = base_ms / base.flops

    def predict_arch(self, arch: ArchSpec, threads: int) -> float:
        return arch.flops * self.ms_per_flop


def run(method: str, space: SearchSpace, est: Any, latency: Any, cfg: SearchConfig) -> Any:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    sampler_cfg = dataclasses.replace(cfg, sampler="random" if method == "random" else "tpe")
    study = optuna.create_study(direction="maximize", sampler=make_sampler(sampler_cfg))
    study.optimize(Objective(space, est, latency, cfg), n_trials=cfg.trials)
    return study


def measure(archs: list[ArchSpec], backend: str) -> list[float]:
    from canao.profiling.fingerprint import resolve_device
    from canao.profiling.measurement import EvalConfig
    from canao.profiling.runner import LocalRunner

    out = []
    with LocalRunner(backend, resolve_device("host"), EvalConfig()) as runner:
        for a in archs:
            res = runner.run(a)
            out.append(res.measurement.median_ms if res.ok and res.measurement else float("nan"))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--predictor", required=True, type=Path)
    ap.add_argument("--task", default="mr")
    ap.add_argument("--trials", type=int, default=300)
    ap.add_argument("--budget-ms", type=float, help="default: a third of the base's measured ms")
    ap.add_argument("--top-k", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()

    predictor = LatencyPredictor.load(args.predictor)
    backend = str(predictor.meta_.get("backend"))
    elastic = default_dir(args.task, "supernet")
    if not is_model_dir(elastic):
        elastic = default_dir(args.task, "elastic")
    est = InheritedAccuracy(elastic)
    base = dataclasses.replace(est.base.spec, name=None)
    space = SearchSpace(base)
    base_ms = measure([base], backend)[0]
    budget = args.budget_ms or base_ms / 3
    cfg = SearchConfig(budget_ms=budget, trials=args.trials, seed=args.seed)
    latency = {"predictor": predictor, "random": predictor, "flops": FlopsLatency(base, base_ms)}
    rows, frames = [], {}
    for method in ("predictor", "random", "flops"):
        t0 = time.perf_counter()
        study = run(method, space, est, latency[method], cfg)
        cold = time.perf_counter() - t0
        t0 = time.perf_counter()
        run(method, space, est, latency[method], cfg)  # same seed: every accuracy is cached now
        warm = time.perf_counter() - t0
        df = trials_frame(study)
        feas = df[df["feasible"]].drop_duplicates("arch")
        top = feas.sort_values("accuracy", ascending=False).head(args.top_k).copy()
        archs = [ArchSpec.from_json(a) for a in top["arch"]]
        top["measured_ms"] = measure(archs, backend)
        top["predicted_ms"] = [predictor.predict_arch(a, 2) for a in archs]
        top["error"] = top["predicted_ms"] / top["measured_ms"] - 1
        top["method"] = method
        frames[method] = top
        ok = top[top["measured_ms"] <= budget]
        rows.append(
            {
                "method": method,
                "best_acc_within_measured_budget": ok["accuracy"].max() if len(ok) else np.nan,
                "finalists_within_budget": f"{len(ok)}/{len(top)}",
                "max_abs_error": float(top["error"].abs().max()),
                "s_per_1000_cold": cold / args.trials * 1000,
                "s_per_1000_warm": warm / args.trials * 1000,
            }
        )
    write(pd.DataFrame(rows), pd.concat(frames.values()), args, budget, base_ms, backend)


def write(
    table: pd.DataFrame, fin: pd.DataFrame, args: Any, budget: float, base_ms: float, backend: str
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    args.out.mkdir(parents=True, exist_ok=True)
    lines = [
        f"# Search methods at {args.trials} trials "
        f"({args.task}, {backend}, budget {budget:.2f} ms)",
        "",
        f"Base model measured {base_ms:.2f} ms; accuracy = inherited dev accuracy.",
        "",
        "| method | best dev acc, measured <= budget | finalists in budget | max pred. error "
        "| s / 1,000 trials (cold) | s / 1,000 trials (cached) |",
        "|---|---|---|---|---|---|",
    ]
    for _, r in table.iterrows():
        lines.append(
            f"| {r['method']} | {r['best_acc_within_measured_budget']:.2%} | "
            f"{r['finalists_within_budget']} | {r['max_abs_error']:.1%} | "
            f"{r['s_per_1000_cold']:.0f} | {r['s_per_1000_warm']:.1f} |"
        )
    (args.out / f"search-{args.task}.md").write_text("\n".join(lines) + "\n")
    fig, ax = plt.subplots(figsize=(6, 4.5))
    for method, g in fin.groupby("method"):
        ax.scatter(g["measured_ms"], g["accuracy"], label=str(method), alpha=0.8)
    ax.axvline(budget, color="r", ls="--", label="budget")
    ax.set_xlabel(f"measured ms ({backend})")
    ax.set_ylabel("dev accuracy (inherited)")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(args.out / f"search-{args.task}.png", dpi=120)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
