"""``canao report``: the verification as Markdown + PNGs.

Reads ``verify.jsonl`` (finalists and reference models, latest row each) and, if given, the
search folder (``trials.csv``). Writes ``report.md``, ``pareto.png`` (the search's predicted
front with the finalists' measured points) and ``latency.png`` (every model on every runtime).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from canao.compile.verify import read_rows


def _teacher_accuracy(rows: list[dict[str, Any]]) -> float | None:
    for r in rows:
        info_path = Path(r["folder"]) / "compiled.json"
        if not info_path.is_file():
            continue
        teacher = json.loads(info_path.read_text()).get("teacher")
        meta = Path(teacher or "") / "meta.json"
        if teacher and meta.is_file():
            acc = json.loads(meta.read_text()).get("test_accuracy")
            return float(acc) if acc is not None else None
    return None


def _fmt(x: Any, spec: str = ".2f", suffix: str = "") -> str:
    return "-" if x is None else f"{format(x, spec)}{suffix}"


def _ratio(a: Any, b: Any) -> float | None:
    return float(a) / float(b) if a and b else None


def _fastest(ref: dict[str, Any]) -> float | None:
    """A reference model's latency on its fastest runtime (TVM, ONNX Runtime or eager)."""
    ms = [ref[k] for k in ("tvm_ms", "ort_ms", "eager_ms") if ref.get(k)]
    return min(ms) if ms else None


def build_report(verify_dir: Path, out: Path, search_dir: Path | None = None) -> Path:
    path = verify_dir / "verify.jsonl"
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: run `canao verify` first")
    rows = read_rows(path)
    fins = [r for r in rows if r.get("kind") != "reference"]
    refs = {r["name"]: r for r in rows if r.get("kind") == "reference"}
    teacher_acc = _teacher_accuracy(fins)
    bert = refs.get("bert-base", {})
    base = refs.get("minilm-l6-h384", {})
    out.mkdir(parents=True, exist_ok=True)

    lines = ["# canao verification report", ""]
    if fins:
        r0 = fins[0]
        lines += [
            f"Device `{r0['device']}`, {r0['threads']} threads, seq_len {r0['seq_len']}, batch 1. "
            "TVM = the compiled finalist (Relax + the device's MetaSchedule database); ORT = the "
            "same weights in ONNX Runtime; eager = PyTorch. Accuracy is measured through the "
            "compiled module on the task's test split.",
            "",
        ]
    lines += [
        "| finalist | GFLOPs | TVM ms | predicted ms | error | vs ORT | vs eager | "
        "vs bert-base (TVM / fastest) | vs base (TVM / fastest) | accuracy | vs teacher |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in fins:
        acc = r.get("test_accuracy")
        err = r.get("error")
        flag = " **>10%**" if r.get("flagged") else ""
        gap = None if acc is None or teacher_acc is None else 100 * (acc - teacher_acc)
        lines.append(
            f"| {r['name']} | {r['gflops']:.3f} | {r['tvm_ms']:.3f} | "
            f"{_fmt(r.get('predicted_ms'), '.3f')} | "
            f"{'-' if err is None else f'{err:+.1%}'}{flag} | "
            f"{_fmt(_ratio(r.get('ort_ms'), r['tvm_ms']), '.2f', 'x')} | "
            f"{_fmt(_ratio(r.get('eager_ms'), r['tvm_ms']), '.2f', 'x')} | "
            f"{_fmt(_ratio(bert.get('tvm_ms'), r['tvm_ms']), '.1f', 'x')} / "
            f"{_fmt(_ratio(_fastest(bert), r['tvm_ms']), '.1f', 'x')} | "
            f"{_fmt(_ratio(base.get('tvm_ms'), r['tvm_ms']), '.2f', 'x')} / "
            f"{_fmt(_ratio(_fastest(base), r['tvm_ms']), '.2f', 'x')} | "
            f"{_fmt(None if acc is None else 100 * acc, '.2f', '%')} | "
            f"{_fmt(gap, '+.2f', ' pt')} |"
        )
    if refs:
        lines += ["", "Reference models (random weights), end to end on the same device:", ""]
        lines += ["| model | GFLOPs | TVM ms | ORT ms | eager ms |", "|---|---:|---:|---:|---:|"]
        for name, r in refs.items():
            tvm = _fmt(r.get("tvm_ms"), ".3f") if "tvm_error" not in r else "not tuned"
            lines.append(
                f"| {name} | {r['gflops']:.3f} | {tvm} | {_fmt(r.get('ort_ms'), '.3f')} | "
                f"{_fmt(r.get('eager_ms'), '.3f')} |"
            )
    lines += [
        "",
        "Speedups are against the reference compiled by TVM the same way on the same device, "
        "and against the reference on its fastest runtime (a reference that TVM's tuning "
        "serves badly would flatter the first).",
    ]
    if teacher_acc is not None:
        lines += ["", f"Teacher test accuracy: {100 * teacher_acc:.2f}%."]
    flagged = [r["name"] for r in fins if r.get("flagged")]
    if flagged:
        lines += ["", f"Prediction off by more than 10%: {', '.join(flagged)}."]
    png = _pareto_png(fins, search_dir, out / "pareto.png")
    lat = _latency_png(fins, refs, out / "latency.png")
    lines += ["", f"![Pareto front]({png.name})", "", f"![Latency per runtime]({lat.name})", ""]
    md = out / "report.md"
    md.write_text("\n".join(lines))
    return md


def _pareto_png(fins: list[dict[str, Any]], search_dir: Path | None, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import pandas as pd

    from canao.search.results import front

    fig, ax = plt.subplots(figsize=(6.4, 4.6))
    trials = search_dir / "trials.csv" if search_dir else None
    if trials is not None and trials.is_file():
        df = pd.read_csv(trials)
        ax.scatter(df["predicted_ms"], df["accuracy"], s=5, color="lightgrey", label="trials")
        f = front(df)
        ax.plot(
            f["predicted_ms"],
            f["accuracy"],
            "o-",
            ms=3,
            color="tab:blue",
            label="Pareto front (predicted ms, dev estimate)",
        )
    meas = [r for r in fins if r.get("test_accuracy") is not None]
    if meas:
        ax.scatter(
            [r["tvm_ms"] for r in meas],
            [r["test_accuracy"] for r in meas],
            marker="*",
            s=90,
            color="tab:red",
            zorder=3,
            label="finalists (measured ms, test accuracy)",
        )
        for r in meas:
            if r.get("predicted_ms"):
                ax.annotate(
                    "",
                    (r["tvm_ms"], r["test_accuracy"]),
                    (r["predicted_ms"], r["test_accuracy"]),
                    arrowprops={"arrowstyle": "->", "color": "tab:red", "lw": 0.8},
                )
    ax.set_xlabel("latency (ms)")
    ax.set_ylabel("accuracy")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def _latency_png(fins: list[dict[str, Any]], refs: dict[str, dict[str, Any]], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    models = [*fins, *refs.values()]
    names = [r["name"] for r in models]
    keys = (("tvm_ms", "TVM (tuned)"), ("ort_ms", "ONNX Runtime"), ("eager_ms", "PyTorch eager"))
    x = np.arange(len(models))
    fig, ax = plt.subplots(figsize=(max(6.4, 1.1 * len(models)), 4.2))
    for i, (k, label) in enumerate(keys):
        v = [r.get(k) or 0.0 for r in models]
        ax.bar(x + (i - 1) * 0.27, v, 0.27, label=label)
    ax.set_xticks(x, names, rotation=20, ha="right", fontsize=8)
    ax.set_yscale("log")
    ax.set_ylabel("latency (ms, log)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
