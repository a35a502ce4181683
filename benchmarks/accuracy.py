"""Accuracy of sub-networks of the MR teacher: every accuracy figure of the README.

    .venv/bin/python benchmarks/accuracy.py [--task mr] [--distill 6] [--epochs 2]
                                            [--backend onnxruntime] [--no-measure]

Needs the teacher, the elastic base and (optionally) the supernet:
``canao compress finetune``, ``canao compress rewire``, ``canao compress supernet``.

1. A grid of sub-networks (depth 1..6 x uniform width 2..12 heads with FFN = 128 x heads, plus
   four shapes just under one third of the FLOPs):
   FLOPs, dev accuracy with inherited weights from the rewired teacher and from the supernet,
   and whole-model latency measured on this machine (seq_len 128, batch 1).
2. ``--distill K`` of them (the best inherited one under 1/3 FLOPs, the rest spread over
   FLOPs), distilled from the teacher (logits + hidden
   states): test accuracy, and how well inherited accuracy ranks them (Kendall tau).
3. The goal: a sub-network with at most one third of the teacher's FLOPs within 1.0 point of
   its test accuracy after distillation.

Resumable: distilled models live in runs/compress/TASK/distilled/ and are reused; measured
latencies in runs/compress/TASK/latency-BACKEND.json. Writes benchmarks/results/accuracy.md
and accuracy.png. Run it on a quiet machine (it measures latency).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from canao.compress.checkpoint import is_model_dir, load_model
from canao.compress.data import load_task
from canao.compress.distill import DistillConfig, distill_finalist
from canao.compress.elastic import ElasticBase
from canao.compress.teacher import default_dir
from canao.compress.train import TrainConfig
from canao.search.accuracy import InheritedAccuracy
from canao.space import ArchSpec, LayerSpec

OUT = Path(__file__).parent / "results"


def grid(base: ArchSpec) -> list[ArchSpec]:
    head_dim = base.layers[0].head_dim
    archs = []
    for depth in range(1, base.num_layers + 1):
        for heads in (2, 4, 6, 8, 12):
            layers = (LayerSpec(heads, head_dim, 128 * heads),) * depth
            name = f"L{depth}-H{heads}"
            archs.append(dataclasses.replace(base, layers=layers, name=name))
    return archs


def third_candidates(base: ArchSpec) -> list[ArchSpec]:
    """Uniform shapes at just under one third of the base's FLOPs (the goal's bound): the
    grid's 1/3 points with the last layer's FFN one step narrower."""
    head_dim = base.layers[0].head_dim
    out = []
    for depth, heads in ((2, 12), (3, 8), (4, 6), (6, 4)):
        layer = LayerSpec(heads, head_dim, 128 * heads)
        last = LayerSpec(heads, head_dim, 128 * heads - 128)
        layers = (layer,) * (depth - 1) + (last,)
        out.append(dataclasses.replace(base, layers=layers, name=f"L{depth}-H{heads}-third"))
    assert all(a.flops <= base.flops / 3 for a in out)
    return out


def measure(archs: list[ArchSpec], backend: str, cache: Path) -> dict[str, float]:
    from canao.profiling.fingerprint import resolve_device
    from canao.profiling.measurement import EvalConfig
    from canao.profiling.runner import LocalRunner

    done: dict[str, float] = json.loads(cache.read_text()) if cache.is_file() else {}
    todo = [a for a in archs if a.name not in done]
    if todo:
        with LocalRunner(backend, resolve_device("host"), EvalConfig()) as runner:
            for a in todo:
                res = runner.run(a)
                if res.ok and res.measurement is not None:
                    done[str(a.name)] = res.measurement.median_ms
                    print(f"  {a.name}: {done[str(a.name)]:.2f} ms", flush=True)
                cache.write_text(json.dumps(done, indent=1))
    return done


def spread(df: pd.DataFrame, k: int) -> list[str]:
    """``k`` grid points spread over log FLOPs (depth >= 2), always including ~1/3 FLOPs."""
    cand = df[df["layers"] >= 2].sort_values("flops_ratio")
    targets = np.geomspace(cand["flops_ratio"].min(), 0.8, k)
    targets[np.argmin(np.abs(targets - 0.33))] = 0.33
    chosen: list[str] = []
    for t in targets:
        rest = cand[~cand["name"].isin(chosen)]
        chosen.append(str(rest.iloc[int(np.argmin(np.abs(rest["flops_ratio"] - t)))]["name"]))
    return chosen


def main() -> None:
    from scipy.stats import kendalltau

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--task", default="mr")
    ap.add_argument("--distill", type=int, default=5, help="sub-networks to distil")
    ap.add_argument("--epochs", type=float, default=2.0)
    ap.add_argument("--backend", default="onnxruntime")
    ap.add_argument("--no-measure", action="store_true")
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()
    torch.set_num_threads(2)
    runs = default_dir(args.task, "")
    teacher, tmeta = load_model(default_dir(args.task, "teacher"))
    bases = {
        "rewired": default_dir(args.task, "elastic"),
        "supernet": default_dir(args.task, "supernet"),
    }
    bases = {k: v for k, v in bases.items() if is_model_dir(v)}
    elastic = ElasticBase.load(bases["rewired"])
    archs = grid(elastic.spec) + third_candidates(elastic.spec)
    rows = [
        {
            "name": a.name,
            "layers": a.num_layers,
            "heads": a.layers[0].heads,
            "ffn": a.layers[0].ffn,
            "flops_ratio": a.flops / elastic.spec.flops,
            "params_m": a.params / 1e6,
        }
        for a in archs
    ]
    df = pd.DataFrame(rows)
    for label, path in bases.items():
        est = InheritedAccuracy(path)
        df[f"inherited_{label}"] = [est.estimate(a) for a in archs]
    if not args.no_measure:
        ms = measure(archs, args.backend, runs / f"latency-{args.backend}.json")
        df["ms"] = df["name"].map(ms)
    task = load_task(args.task)
    source = ElasticBase.load(bases.get("supernet", bases["rewired"]))
    cfg = TrainConfig(epochs=args.epochs)
    last = "inherited_supernet" if "inherited_supernet" in df else "inherited_rewired"
    third = df[df["name"].str.endswith("-third")]
    goal = str(third.sort_values(last).iloc[-1]["name"])  # best inherited at <= 1/3 FLOPs
    for name in [goal, *spread(df[~df["name"].str.endswith("-third")], args.distill - 1)]:
        arch = next(a for a in archs if a.name == name)
        out = runs / "distilled" / name
        if not is_model_dir(out):
            print(f"distilling {name} ({df.set_index('name').at[name, 'flops_ratio']:.2f} FLOPs)")
            distill_finalist(source, teacher, arch, task, out, cfg, DistillConfig())
        meta = load_model(out)[1]
        df.loc[df["name"] == name, "distilled_dev"] = meta["dev_accuracy"]
        df.loc[df["name"] == name, "distilled_test"] = meta["test_accuracy"]
    write(df, tmeta, args, bases, kendalltau)


def write(df: pd.DataFrame, tmeta: dict, args: argparse.Namespace, bases: dict, kendalltau) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    args.out.mkdir(parents=True, exist_ok=True)
    t_test, t_dev = tmeta["test_accuracy"], tmeta["dev_accuracy"]
    d = df.dropna(subset=["distilled_dev"]) if "distilled_dev" in df else df.iloc[:0]
    lines = [
        f"# Accuracy of sub-networks ({args.task}, teacher = MiniLM-L6 fine-tuned)",
        "",
        f"Teacher: dev {t_dev:.2%}, test {t_test:.2%} ({tmeta['steps']} steps, "
        f"{tmeta['train_s'] / 60:.1f} min on this machine). FLOPs at seq_len 128.",
        "",
    ]
    if len(d):
        lines += ["## Distilled sub-networks", ""]
        lines += [
            "| sub-network | FLOPs | inherited dev | distilled dev | distilled test | vs teacher |"
        ]
        lines += ["|---|---|---|---|---|---|"]
        col = "inherited_supernet" if "inherited_supernet" in d else "inherited_rewired"
        for _, r in d.sort_values("flops_ratio").iterrows():
            lines.append(
                f"| {r['name']} | {r['flops_ratio']:.2f}x | {r[col]:.2%} "
                f"| {r['distilled_dev']:.2%} | {r['distilled_test']:.2%} "
                f"| {100 * (r['distilled_test'] - t_test):+.1f} pt |"
            )
        lines.append("")
        for c in [x for x in ("inherited_rewired", "inherited_supernet") if x in d]:
            tau = kendalltau(d[c], d["distilled_dev"]).statistic
            lines.append(f"- Kendall tau, {c} dev accuracy vs distilled dev accuracy: {tau:.2f}")
        third = d[d["flops_ratio"] <= 1 / 3 + 1e-9]
        if len(third):
            best = third.sort_values("distilled_test").iloc[-1]
            gap = 100 * (t_test - best["distilled_test"])
            verdict = "met" if gap <= 1.0 else "NOT met"
            lines.append(
                f"- Goal (<= 1/3 FLOPs within 1.0 pt of the teacher's test accuracy): {verdict}: "
                f"{best['name']} at {best['flops_ratio']:.3f}x FLOPs, {-gap:+.1f} pt vs the teacher"
            )
        lines.append("")
    lines += [
        "## Grid: inherited dev accuracy" + (" and measured latency" if "ms" in df else ""),
        "",
    ]
    cols = [c for c in ("inherited_rewired", "inherited_supernet", "ms") if c in df]
    lines += ["| sub-network | FLOPs | params (M) | " + " | ".join(cols) + " |"]
    lines += ["|---" * (3 + len(cols)) + "|"]
    for _, r in df.iterrows():
        vals = [f"{r[c]:.2f} ms" if c == "ms" else f"{r[c]:.2%}" for c in cols]
        lines.append(
            f"| {r['name']} | {r['flops_ratio']:.2f}x | {r['params_m']:.1f} | "
            + " | ".join(vals)
            + " |"
        )
    (args.out / f"accuracy-{args.task}.md").write_text("\n".join(lines) + "\n")

    xs = [("flops_ratio", "FLOPs / teacher FLOPs")] + (
        [("ms", f"measured ms ({args.backend})")] if "ms" in df else []
    )
    fig, axes = plt.subplots(1, len(xs), figsize=(6 * len(xs), 4.5), squeeze=False)
    for ax, (x, label) in zip(axes[0], xs, strict=True):
        for c, style in (("inherited_rewired", "o"), ("inherited_supernet", "s")):
            if c in df:
                ax.scatter(
                    df[x], df[c], marker=style, alpha=0.6, label=c.replace("_", " ") + " (dev)"
                )
        if len(d):
            ax.scatter(
                d[x], d["distilled_test"], marker="*", s=120, c="k", label="distilled (test)"
            )
        ax.axhline(t_test, color="r", ls="--", label="teacher (test)")
        ax.axhline(t_test - 0.01, color="r", ls=":", lw=0.8, label="teacher - 1 pt")
        ax.set_xscale("log")
        ax.set_xlabel(label)
        ax.set_ylabel("accuracy")
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=8)
    fig.suptitle(f"{args.task}: accuracy of sub-networks of MiniLM-L6")
    fig.tight_layout()
    fig.savefig(args.out / f"accuracy-{args.task}.png", dpi=120)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
