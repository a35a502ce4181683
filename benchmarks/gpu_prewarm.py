"""Fill inductor's on-disk compile caches for the block design's next specs, in parallel.

    python3 benchmarks/gpu_prewarm.py --samples 3000 --procs 14 --store OUT/CARD/inductor

Compiling is CPU work (about 3 s a block) and timing is GPU work; ``canao profile`` does both
in one worker, one spec after the other. Run first, this compiles the specs that the store does
not hold yet in ``--procs`` processes at once, through the backend's own build, so that the
profile run that follows finds every graph in inductor's FX-graph and Triton caches and spends
its time measuring. Nothing is timed or stored here.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import tempfile
import time
from pathlib import Path


def _work(job: tuple[int, int, int, str, int]) -> int:
    part, parts, samples, store, threads = job
    from canao.profiling.backends.inductor import InductorBackend
    from canao.profiling.runner import row_key
    from canao.profiling.samplers import BlockSpace, block_samples
    from canao.profiling.store import LatencyStore

    folder = Path(store)
    stored = LatencyStore(folder.parent.parent, folder.parent.name, folder.name).keys()
    backend = InductorBackend(threads=threads)
    done = 0
    with tempfile.TemporaryDirectory() as tmp:
        for spec in block_samples(BlockSpace(), samples)[part::parts]:
            if row_key(spec, threads) not in stored:
                backend.build(spec, Path(tmp))
                done += 1
    return done


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--samples", type=int, default=3000)
    ap.add_argument("--procs", type=int, default=8)
    ap.add_argument("--store", required=True, help="the <out>/<device>/inductor folder")
    ap.add_argument("--threads", type=int, default=2, help="as canao profile --threads")
    args = ap.parse_args()
    t0 = time.perf_counter()
    jobs = [(i, args.procs, args.samples, args.store, args.threads) for i in range(args.procs)]
    with mp.get_context("spawn").Pool(args.procs) as pool:
        n = sum(pool.map(_work, jobs))
    print(f"compiled {n} specs in {time.perf_counter() - t0:.0f} s with {args.procs} processes")


if __name__ == "__main__":
    main()
