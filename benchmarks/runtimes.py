"""Whole-model latency of published BERTs, every backend side by side, interleaved.

    .venv/bin/python benchmarks/runtimes.py [--archs bert-base,minilm-l6-h384] [--rounds 3]

Each round measures every (arch, backend) pair once, in turn, so that host noise spreads over
all of them; the table reports the median over rounds of each measurement's median, and the
ratios to bert-base on ONNX Runtime. Untuned TVM is measured on one layer only (a whole model
takes minutes) and is marked: it is not compiled latency. Writes benchmarks/results/runtimes.md.
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

from canao.profiling.fingerprint import resolve_device
from canao.profiling.measurement import EvalConfig
from canao.profiling.runner import LocalRunner
from canao.space import ArchSpec

OUT = Path(__file__).parent / "results" / "runtimes.md"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--archs", default="bert-base,minilm-l6-h384,bert-mini,bert-tiny")
    ap.add_argument("--backends", default="onnxruntime,eager")
    ap.add_argument("--seq-len", type=int, default=128)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    cfg = EvalConfig(threads=args.threads, repeat=7)
    device = resolve_device("host")
    archs = [ArchSpec.named(a, seq_len=args.seq_len) for a in args.archs.split(",")]
    backends = args.backends.split(",")
    runners = {b: LocalRunner(b, device, cfg) for b in backends}
    results: dict[tuple[str, str], list[float]] = {}
    try:
        for r in range(args.rounds):
            for arch in archs:
                for b, runner in runners.items():
                    res = runner.run(arch)
                    if not res.ok or res.measurement is None:
                        raise SystemExit(f"{arch.name} / {b}: {res.error}")
                    results.setdefault((str(arch.name), b), []).append(res.measurement.median_ms)
                    ms = res.measurement.median_ms
                    print(f"round {r + 1}: {arch.name:>16} {b:>12} {ms:9.3f} ms")
        layer = ArchSpec.named("bert-base", seq_len=args.seq_len)
        block = next(layer.blocks())
        with LocalRunner("tvm-untuned", device, cfg) as tvm:
            tvm_res = tvm.run(block)
        ort_block = runners["onnxruntime"].run(block) if "onnxruntime" in runners else None
    finally:
        for runner in runners.values():
            runner.close()
    ref = (
        statistics.median(results[("bert-base", backends[0])])
        if ("bert-base", backends[0]) in results
        else None
    )
    lines = [
        f"# Whole-model latency on {device} (seq_len {args.seq_len}, batch 1, "
        f"{args.threads} threads; median of {args.rounds} interleaved rounds)",
        "",
        "| model | GFLOPs | params (M) | "
        + " | ".join(f"{b} ms" for b in backends)
        + f" | speedup vs bert-base ({backends[0]}) |",
        "|---|---:|---:|" + "---:|" * len(backends) + "---:|",
    ]
    for arch in archs:
        ms = [statistics.median(results[(str(arch.name), b)]) for b in backends]
        speed = f"{ref / ms[0]:.1f}x" if ref else ""
        lines.append(
            f"| {arch.name} | {arch.flops / 1e9:.2f} | {arch.params / 1e6:.1f} | "
            + " | ".join(f"{m:.2f}" for m in ms)
            + f" | {speed} |"
        )
    if tvm_res.ok and tvm_res.measurement and ort_block and ort_block.measurement:
        t, o = tvm_res.measurement.median_ms, ort_block.measurement.median_ms
        lines += [
            "",
            f"One bert-base layer: ONNX Runtime {o:.2f} ms; TVM untuned (no schedules, NOT "
            f"compiled latency) {t:.1f} ms = {t / o:.0f}x slower.",
        ]
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    print(f"\nwritten to {OUT}")


if __name__ == "__main__":
    main()
