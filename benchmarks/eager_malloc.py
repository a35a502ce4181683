"""Eager PyTorch on Linux: what glibc's mmap threshold costs the blocks with large attention.

glibc's malloc serves an allocation above its mmap threshold (dynamic, at most 32 MiB on 64-bit
Linux) with a fresh ``mmap`` and returns it with ``munmap`` when freed, so a tensor that large,
allocated again on every run (eager's attention scores: batch x heads x seq_len^2 floats), page-
faults its memory in again on every run. Raising the threshold (``MALLOC_MMAP_THRESHOLD_``, read
by glibc at process start) keeps it in the heap. This times the same blocks in two worker
processes, alternately, one with glibc's defaults (as the shipped eager datasets were measured)
and one with the threshold at 2 GiB::

    .venv/bin/python benchmarks/eager_malloc.py [--threads 1] [--rounds 2] [--out FILE.md]

The blocks: eight of the design's first 2,000, spread over attention scores of 16-32 MiB (four)
and 32-64 MiB (four), and two controls (a long sequence with small scores, and the canary block).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from canao.profiling.samplers import BlockSpace, block_samples
from canao.space import BlockSpec

#: glibc's environment for the second worker: no mmap below 2 GiB, no trimming of the heap
RAISED = {"MALLOC_MMAP_THRESHOLD_": "2147483647", "MALLOC_TRIM_THRESHOLD_": "4294967295"}


def scores_mib(s: BlockSpec) -> float:
    return s.batch * s.heads * s.seq_len**2 * 4 / 2**20


def pick(pool: int = 2000) -> list[BlockSpec]:
    design = block_samples(BlockSpace(), pool, seed=0)
    spread = []
    for low, high in ((16, 32), (32, 65)):  # four each side of glibc's largest threshold
        band = sorted((s for s in design if low <= scores_mib(s) < high), key=scores_mib)
        spread += [band[round(i * (len(band) - 1) / 3)] for i in range(4)]
    under = [s for s in design if s.seq_len >= 256 and 2 <= scores_mib(s) < 8]
    return spread + under[:1] + [BlockSpec(384, 12, 32, 1536, 128)]


def worker(keys: list[str], threads: int) -> None:
    """Time each block (canao's eager backend and timing) and print {key: ms} as JSON."""
    from canao.profiling.backends import get_backend
    from canao.profiling.measurement import EvalConfig

    specs = {s.key: s for s in pick()}
    backend = get_backend("eager", threads=threads)
    cfg = EvalConfig(threads=threads)
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        for key in keys:
            built = backend.build(specs[key], Path(tmp))
            if built.artifact is None:
                sys.exit(f"eager_malloc: {key} did not build: {built.error}")
            samples, _ = built.artifact.time(cfg)
            out[key] = statistics.median(samples)
    print(json.dumps(out))


def run(keys: list[str], threads: int, env: dict[str, str]) -> dict[str, float]:
    cmd = [sys.executable, __file__, "--worker", ",".join(keys), "--threads", str(threads)]
    done = subprocess.run(cmd, env={**os.environ, **env}, capture_output=True, text=True)
    if done.returncode:
        sys.exit(f"eager_malloc: the worker failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=2, help="alternations of the two workers")
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        worker(args.worker.split(","), args.threads)
        return 0
    specs = pick()
    keys = [s.key for s in specs]
    runs: dict[str, list[dict[str, float]]] = {"default": [], "raised": []}
    for _ in range(args.rounds):
        runs["default"].append(run(keys, args.threads, {}))
        runs["raised"].append(run(keys, args.threads, RAISED))
    best = {k: {key: min(r[key] for r in v) for key in keys} for k, v in runs.items()}
    lines = [
        f"Eager PyTorch {args.threads} thread(s), glibc's defaults against MALLOC_MMAP_THRESHOLD_"
        f" = 2 GiB; ms per run, the faster of {args.rounds} alternating worker processes each",
        "",
        "| block | attention scores (MiB) | default | threshold raised | default / raised |",
        "|---|---:|---:|---:|---:|",
    ]
    for s in specs:
        a, b = best["default"][s.key], best["raised"][s.key]
        lines.append(f"| `{s.key}` | {scores_mib(s):.1f} | {a:.2f} | {b:.2f} | {a / b:.2f}x |")
    text = "\n".join(lines) + "\n"
    print(text, end="")
    if args.out:
        args.out.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
