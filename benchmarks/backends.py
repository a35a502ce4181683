"""Tuned TVM vs ONNX Runtime vs PyTorch eager on the same blocks and whole models.

    .venv/bin/python benchmarks/backends.py [--blocks 144] [--models 24] [--archs minilm-l6-h384]

Blocks come from the tuned grid (``canao tune``'s default: hidden 384, heads 1-12 x 32,
FFN 128-1536 by 128, seq_len 128), whole models are heterogeneous models on that grid plus the
named ones; every spec is measured by the three backends one after the other (side by side:
host drift hits all three alike), 2 threads. TVM builds come from the device's tuning
database only (an untuned workload is an error, never a silent untuned build). Reports the
median ratios, the specs where TVM loses to ONNX Runtime with their shape, and the tuning
time per workload and per block from the database's tuning log.
Writes benchmarks/results/backends.md and backends.png. Run it on a quiet machine.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

import numpy as np

from canao.profiling.backends.tvm import default_tuning_dir
from canao.profiling.fingerprint import resolve_device
from canao.profiling.measurement import EvalConfig
from canao.profiling.runner import LocalRunner
from canao.profiling.tuning import WorkloadGrid, grid_archs, grid_samples
from canao.space import ArchSpec, BlockSpec

OUT = Path(__file__).parent / "results"
BACKENDS = ("tvm", "onnxruntime", "eager")


def describe(spec: BlockSpec | ArchSpec) -> str:
    if isinstance(spec, BlockSpec):
        return f"H{spec.hidden} {spec.heads}x{spec.head_dim} FFN{spec.ffn} s{spec.seq_len}"
    return f"{spec.name} ({spec.num_layers} layers)"


def tuning_log(folder: Path) -> list[dict]:
    path = folder / "tuning-log.jsonl"
    if not path.is_file():
        return []
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--blocks", type=int, default=144)
    ap.add_argument("--models", type=int, default=24)
    ap.add_argument("--archs", default="minilm-l6-h384", help="named models (comma list)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    grid = WorkloadGrid()
    cfg = EvalConfig(threads=args.threads, repeat=7, timeout_s=600)
    device = resolve_device("host")
    specs: list[BlockSpec | ArchSpec] = [*grid_samples(grid, args.blocks, args.seed)]
    specs += grid_archs(grid, args.models, args.seed)
    specs += [ArchSpec.named(a, seq_len=128) for a in args.archs.split(",") if a]
    runners = {b: LocalRunner(b, device, cfg) for b in BACKENDS}
    rows = []
    try:
        for i, spec in enumerate(specs):
            row: dict = {"spec": describe(spec), "kind": "block" if isinstance(spec, BlockSpec)
                         else "model", "gflops": spec.flops / 1e9}  # fmt: skip
            for b, runner in runners.items():
                res = runner.run(spec)
                row[b] = res.measurement.median_ms if res.ok and res.measurement else None
                if not res.ok:
                    row[f"{b}_error"] = (res.error or "")[:200]
            rows.append(row)
            print(
                f"[{i + 1}/{len(specs)}] {row['spec']:>40}: "
                + "  ".join(f"{b} {row[b]:.3f}" if row[b] else f"{b} ERR" for b in BACKENDS),
                flush=True,
            )
    finally:
        for r in runners.values():
            r.close()
    write(rows, device, args.threads, default_tuning_dir(device))


def write(rows: list[dict], device: str, threads: int, tuning_dir: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ok = [r for r in rows if all(r.get(b) for b in BACKENDS)]
    lines = [
        f"# Tuned TVM vs ONNX Runtime vs PyTorch eager on {device} ({threads} threads, batch 1, "
        "float32; every spec measured by the three backends side by side)",
        "",
        "| specs | n | median TVM/ORT | TVM faster than ORT | best TVM/ORT | worst TVM/ORT | "
        "median TVM/eager | median ORT/eager |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for kind in ("block", "model"):
        sel = [r for r in ok if r["kind"] == kind]
        if not sel:
            continue
        t_o = np.array([r["tvm"] / r["onnxruntime"] for r in sel])
        t_e = np.array([r["tvm"] / r["eager"] for r in sel])
        o_e = np.array([r["onnxruntime"] / r["eager"] for r in sel])
        lines.append(
            f"| {kind}s | {len(sel)} | {np.median(t_o):.2f} | {np.mean(t_o < 1):.0%} | "
            f"{t_o.min():.2f} | {t_o.max():.2f} | {np.median(t_e):.2f} | {np.median(o_e):.2f} |"
        )
    errors = [r for r in rows if r not in ok]
    if errors:
        lines += ["", f"{len(errors)} specs failed on some backend:"]
        for r in errors:
            errs = "; ".join(f"{b}: {r[f'{b}_error']}" for b in BACKENDS if f"{b}_error" in r)
            lines.append(f"- {r['spec']}: {errs}")
    slow = sorted((r for r in ok if r["tvm"] > r["onnxruntime"]),
                  key=lambda r: -r["tvm"] / r["onnxruntime"])  # fmt: skip
    if slow:
        lines += ["", "Where TVM is slower than ONNX Runtime (ratio, shape):", ""]
        lines += [f"- {r['tvm'] / r['onnxruntime']:.2f}x  {r['spec']}" for r in slow[:20]]
        if len(slow) > 20:
            lines.append(f"- ... and {len(slow) - 20} more")
    log = tuning_log(tuning_dir)
    if log:
        secs = [e["seconds"] for e in log]
        lines += [
            "",
            f"Tuning (from {tuning_dir / 'tuning-log.jsonl'}): {len(log)} workloads logged, "
            f"median {statistics.median(secs):.0f} s per workload at "
            f"{statistics.median([e['trials'] for e in log]):.0f} trials (the grid's "
            f"{len(WorkloadGrid().blocks())} blocks share about one workload each).",
        ]
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "backends.md").write_text("\n".join(lines) + "\n")
    (OUT / "backends.json").write_text(json.dumps(rows, indent=0))
    blocks = [r for r in ok if r["kind"] == "block"]
    if blocks:
        fig, ax = plt.subplots(figsize=(6.4, 4.4))
        g = [r["gflops"] for r in blocks]
        ax.scatter(g, [r["tvm"] / r["onnxruntime"] for r in blocks], s=10, label="TVM / ORT")
        ax.scatter(g, [r["tvm"] / r["eager"] for r in blocks], s=10, label="TVM / eager")
        ax.axhline(1.0, color="black", lw=0.8, ls="--")
        ax.set_xlabel("block GFLOPs")
        ax.set_ylabel("latency ratio (< 1: TVM faster)")
        ax.set_title(f"Tuned TVM vs runtimes, grid blocks, {device}", fontsize=10)
        ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(OUT / "backends.png", dpi=120)
        plt.close(fig)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
