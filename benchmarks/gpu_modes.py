"""Side by side on one CUDA GPU: what the timing of a compiled BERT block measures.

For a spread of blocks of the shipped block design (the same seeded specs as every dataset),
in one process and one after another, each block is timed

- ``inductor``: ``torch.compile`` default mode, one Python call and a dozen launches per run;
- ``cudagraphs #1`` and ``#2``: ``mode="reduce-overhead"`` (canao's ``inductor-cudagraphs``),
  compiled twice from scratch, so that a difference between the two is the compile's, not the
  block's;
- ``graph-only``: the default-mode compiled block captured ``--unroll`` times into one
  ``torch.cuda.CUDAGraph`` and replayed: no Python between the runs, so the GPU's own time.

All with CUDA events around calibrated batches of runs (``canao.profiling`` defaults). On a
machine without CUDA only the ``inductor`` column is filled (a smoke run of the script itself)::

    python3 benchmarks/gpu_modes.py [--specs 12] [--seconds 150] [--out FILE.md]
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

from canao.profiling.backends import get_backend
from canao.profiling.backends.inductor import cuda_time
from canao.profiling.measurement import EvalConfig
from canao.profiling.samplers import BlockSpace, block_samples
from canao.space import BlockSpec


def pick(n: int, pool: int) -> list[BlockSpec]:
    """``n`` of the design's first ``pool`` blocks, evenly spaced in FLOPs."""
    ranked = sorted(block_samples(BlockSpace(), pool, seed=0), key=lambda s: s.flops)
    idx = sorted({round(i * (len(ranked) - 1) / max(n - 1, 1)) for i in range(n)})
    return [ranked[i] for i in idx]


def graph_only(fn, inputs, unroll: int, cfg: EvalConfig) -> float:
    """ms per run of ``fn`` captured ``unroll`` times in one CUDA graph."""
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.inference_mode():
        with torch.cuda.stream(stream):
            for _ in range(3):
                fn(*inputs)
        torch.cuda.current_stream().wait_stream(stream)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            for _ in range(unroll):
                fn(*inputs)
    samples, _ = cuda_time(graph.replay, cfg, torch.device("cuda"))
    return statistics.median(samples) / unroll


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--specs", type=int, default=12, help="blocks to time (default 12)")
    ap.add_argument("--pool", type=int, default=134, help="chosen from the design's first N")
    ap.add_argument("--seconds", type=float, default=150.0, help="stop starting blocks after")
    ap.add_argument("--unroll", type=int, default=20, help="runs per captured graph")
    ap.add_argument("--out", type=Path, help="also write the table here (markdown)")
    args = ap.parse_args(argv)
    cuda = torch.cuda.is_available()
    cfg = EvalConfig()
    name = torch.cuda.get_device_name() if cuda else "no CUDA: inductor on the CPU only"
    lines = [
        f"{name}; torch {torch.__version__}; ms per run, median of {cfg.repeat} samples",
        "",
        "| block | GFLOP | inductor | cudagraphs #1 | cudagraphs #2 | graph-only |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    rows: list[list[float]] = []
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory() as tmp:
        for spec in pick(args.specs, args.pool):
            if time.monotonic() - t0 > args.seconds:
                break
            row: list[float] = []
            base = get_backend("inductor", device="cuda" if cuda else "cpu").build(spec, Path(tmp))
            if base.error:
                print(f"{spec.key}: {base.error}", file=sys.stderr)
                continue
            row.append(statistics.median(base.artifact.time(cfg)[0]))
            if cuda:
                for _ in range(2):  # compiled twice from scratch
                    res = get_backend("inductor-cudagraphs", device="cuda").build(spec, Path(tmp))
                    ok = res.error is None
                    row.append(statistics.median(res.artifact.time(cfg)[0]) if ok else math.nan)
                art = base.artifact
                row.append(graph_only(art.fn, art.inputs, args.unroll, cfg))  # type: ignore[attr-defined]
            else:
                row += [math.nan] * 3
            rows.append(row)
            cells = " | ".join(f"{v:.4f}" for v in row)
            lines.append(f"| `{spec.key}` | {spec.flops / 1e9:.3f} | {cells} |")
            print(lines[-1], flush=True)
    if cuda and rows:

        def ratio(i: int, j: int) -> str:
            r = sorted(a[i] / a[j] for a in rows if not math.isnan(a[i] / a[j]))
            return f"median {statistics.median(r):.2f}x (range {r[0]:.2f}-{r[-1]:.2f}x)"

        lines += [
            "",
            f"- inductor / cudagraphs #1: {ratio(0, 1)}",
            f"- cudagraphs #2 / #1 (the same block compiled again): {ratio(2, 1)}",
            f"- cudagraphs #1 / graph-only: {ratio(1, 3)}",
        ]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        args.out.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
