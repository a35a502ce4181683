"""Is a GPU block's latency level its own? The dataset's rows against the side-by-side run.

``benchmarks/gpu_modes.py`` timed a spread of blocks in one process on the card; the dataset
(``canao profile`` through ``benchmarks/gpu_profile.sh``) timed the same specs earlier, in
another process. A level that belongs to the block (the kernels picked for its shape) reads the
same in both; a level that belongs to the run (the card's or the process's state) does not.
Runs anywhere (no GPU needed): it reads the results file and the stored rows::

    python benchmarks/gpu_levels.py [--modes benchmarks/results/gpu-modes-nvidia-h200.md]
        [--dataset datasets_latency/nvidia-h200/inductor-cudagraphs] [--out FILE.md]
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

from canao.profiling.store import read_rows

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks/results"
DATA = ROOT / "datasets_latency"


def modes_table(path: Path) -> dict[str, tuple[float, float, float]]:
    """Block key -> (cudagraphs #1, cudagraphs #2, graph-only) ms from a gpu_modes results file."""
    out: dict[str, tuple[float, float, float]] = {}
    for line in path.read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 6 and cells[0].startswith("`block:"):
            try:
                out[cells[0].strip("`")] = (float(cells[3]), float(cells[4]), float(cells[5]))
            except ValueError:  # a cell left empty ("-") on a machine without CUDA
                continue
    if not out:
        sys.exit(f"gpu_levels: no CUDA-graph timings in {path} (want gpu_modes.py's from a GPU)")
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--modes", type=Path, default=RESULTS / "gpu-modes-nvidia-h200.md")
    ap.add_argument("--dataset", type=Path, default=DATA / "nvidia-h200/inductor-cudagraphs")
    ap.add_argument("--split", type=float, default=0.12, help="ms between the floor's levels")
    ap.add_argument(
        "--floor",
        type=float,
        default=0.2,
        help="ms under which (both runs) a block is in the floor",
    )
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)
    modes = modes_table(args.modes)
    rows = read_rows(args.dataset)
    # the stored key ends in the thread count ("|t2"); the results file's does not
    stored_ms = dict(zip(rows.key.str.split("|").str[0], rows.median_ms.astype(float), strict=True))
    keys = [k for k in modes if k in stored_ms]
    if not keys:
        sys.exit(f"gpu_levels: no block of {args.modes} is stored in {args.dataset}")
    where = args.dataset.relative_to(ROOT) if args.dataset.is_relative_to(ROOT) else args.dataset
    lines = [
        f"Dataset rows (`{where}`) against the side-by-side run (`{args.modes.name}`); ms per run",
        "",
        "| block | dataset | side by side #1 | #2 | graph-only | dataset / #1 | level:"
        " dataset, side by side |",
        "|---|---:|---:|---:|---:|---:|---|",
    ]
    moved = kept = 0
    ratios = []
    for key in keys:
        stored = stored_ms[key]
        first, second, graph = modes[key]
        ratios.append(stored / first)
        level = ""
        if max(stored, first) < args.floor:
            a, b = ("upper" if v > args.split else "lower" for v in (stored, first))
            level = f"{a}, {b}"
            moved += a != b
            kept += a == b
        lines.append(
            f"| `{key}` | {stored:.4f} | {first:.4f} | {second:.4f} | {graph:.4f}"
            f" | {stored / first:.2f}x | {level} |"
        )
    lines += [
        "",
        f"- dataset / side by side: median {statistics.median(ratios):.2f}x"
        f" (range {min(ratios):.2f}-{max(ratios):.2f}x) over {len(keys)} blocks",
        f"- floor blocks (under {args.floor} ms in both; levels split at {args.split} ms):"
        f" {kept} read the same level in both runs, {moved} a different one",
    ]
    text = "\n".join(lines) + "\n"
    print(text, end="")
    if args.out:
        args.out.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
