"""MetaSchedule tuning: one database of tuned operator workloads per device and target.

A BERT block imported to Relax fuses into a handful of operator workloads (the QKV and FFN
matmuls with their bias/GELU epilogues, the batched attention matmuls, softmax, layer norms).
A workload is identified by the structural hash of its TIR, so every block that shares a
shape shares its tuned schedule. The planner enumerates the distinct workloads of a grid of
blocks, says how long tuning them will take, and tunes each one once; records are committed to
the JSON database as they are found, so a killed run keeps what it had and the next run skips
the workloads that have records. A block whose workloads all have records compiles in about a
second; one that lacks any is reported untuned (never silently mixed into a tuned dataset).

Traps of apache-tvm 0.27 handled here (see DESIGN notes): tasks come only after the ``zero``
pipeline; the target needs ``num-cores``; the default builder's 30 s import of
``tvm.s_tir.tensor_intrin`` makes every build time out, so builds use :func:`build_func`.
"""

from __future__ import annotations

import itertools
import json
import os
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from canao.space import ArchSpec, BlockSpec, LayerSpec

#: seconds one trial costs on this machine kind (MetaSchedule, 2 cores; measured: 15 tasks x 64
#: trials in 398 s), used for the estimate printed before tuning starts
SECONDS_PER_TRIAL = 0.42


@dataclass(frozen=True)
class WorkloadGrid:
    """The quantised block grid the search uses: every block of it has tuned workloads.

    Written down once: hidden and attention width in steps of 64 (head width 32 or 64), FFN in
    steps of 128, seq_len from a short list, batch 1. Attention is never wider than the hidden
    size (``heads * head_dim <= hidden``): combinations beyond it are left out of the grid.
    """

    hidden: tuple[int, ...] = (384,)
    heads: tuple[int, ...] = tuple(range(1, 13))
    head_dim: tuple[int, ...] = (32,)
    ffn: tuple[int, ...] = tuple(range(128, 1537, 128))
    seq_len: tuple[int, ...] = (128,)
    batch: tuple[int, ...] = (1,)
    #: depths of the grid's whole models (every layer a grid block)
    layers: tuple[int, ...] = (1, 2, 3, 4, 5, 6)

    def blocks(self) -> list[BlockSpec]:
        return [
            BlockSpec(h, n, d, f, s, b)
            for h, n, d, f, s, b in itertools.product(
                self.hidden, self.heads, self.head_dim, self.ffn, self.seq_len, self.batch
            )
            if n * d <= h
        ]

    def contains(self, spec: BlockSpec) -> bool:
        return (
            spec.hidden in self.hidden
            and spec.heads in self.heads
            and spec.head_dim in self.head_dim
            and spec.ffn in self.ffn
            and spec.seq_len in self.seq_len
            and spec.batch in self.batch
            and spec.attn_width <= spec.hidden
        )

    def head_specs(self) -> list[ArchSpec]:
        """Small models, one per (hidden, heads, head_dim, seq_len, batch) and depth 1 and 2 (of
        those in ``layers``): what whole models add to the blocks (embeddings, pooler,
        classifier; with the attention mask, as deployed by ``canao compile`` and profiled, the
        mask's preparation and the masked scores of each head count, which fuse differently
        when one layer or several use the mask), so that ``canao tune`` covers the grid's
        whole models too."""
        depths = [d for d in (1, 2) if d in self.layers] or [2]
        return [
            ArchSpec(
                hidden=h,
                layers=(LayerSpec(n, d, self.ffn[0]),) * depth,
                seq_len=s,
                batch=b,
                name=f"grid-head-L{depth}-h{h}-n{n}-d{d}-s{s}-b{b}",
            )
            for depth in depths
            for h, n, d, s, b in itertools.product(
                self.hidden, self.heads, self.head_dim, self.seq_len, self.batch
            )
            if n * d <= h
        ]

    def contains_arch(self, arch: ArchSpec) -> bool:
        return all(self.contains(b) for b in arch.blocks())

    @classmethod
    def from_json(cls, text: str) -> WorkloadGrid:
        d = json.loads(text)
        return cls(**{k: tuple(int(x) for x in v) for k, v in d.items()})


def grid_samples(grid: WorkloadGrid, n: int, seed: int = 0) -> list[BlockSpec]:
    """The first ``n`` blocks of the grid in a seeded order (prefix-stable)."""
    import numpy as np

    blocks = grid.blocks()
    order = np.random.default_rng(seed).permutation(len(blocks))
    return [blocks[i] for i in order[:n]]


def relax_program(obj: Any) -> tuple[Any, tuple]:
    """``(IRModule, inputs)`` of a BlockSpec/ArchSpec (random weights), or the pair itself (a
    model imported with its own weights, see :func:`canao.compile.export.import_model`)."""
    if isinstance(obj, tuple):
        return obj
    from canao.profiling.backends.tvm import import_relax

    return import_relax(obj)


def grid_archs(grid: WorkloadGrid, n: int, seed: int = 0) -> list[ArchSpec]:
    """``n`` distinct whole models on the grid (prefix-stable): depth from ``grid.layers``, every
    layer's heads and FFN drawn from the grid (heterogeneous), so each compiles from the tuning
    database alone."""
    import numpy as np

    rng = np.random.default_rng(seed)
    out: list[ArchSpec] = []
    seen: set[str] = set()
    for _ in range(100 * n + 100):
        if len(out) == n:
            break
        layers = tuple(
            LayerSpec(
                int(rng.choice(grid.heads)),
                int(rng.choice(grid.head_dim)),
                int(rng.choice(grid.ffn)),
            )
            for _ in range(int(rng.choice(grid.layers)))
        )
        arch = ArchSpec(
            hidden=int(rng.choice(grid.hidden)),
            layers=layers,
            seq_len=int(rng.choice(grid.seq_len)),
            batch=int(rng.choice(grid.batch)),
            name=f"grid-model-{len(out)}",
        )
        if arch.key not in seen and grid.contains_arch(arch):
            seen.add(arch.key)
            out.append(arch)
    return out


def fused_module(mod: Any, target: Any) -> Any:
    """A Relax module after the ``zero`` pipeline (where tasks can be extracted)."""
    from tvm import relax

    with target:
        return relax.get_pipeline("zero")(mod)


@dataclass
class Workload:
    key: str  # structural hash of the TIR
    name: str
    mod: Any  # the task's IRModule (dispatched)
    weight: float
    blocks: list[BlockSpec] = field(default_factory=list)


#: bump when the Relax import of a block changes (it changes the workloads a block has); part of
#: the extraction cache's folder name, so a stale cache is never read
EXTRACT_VERSION = 1


def extract_cache_dir(target: Any) -> Path | None:
    """Where the workloads extracted from BlockSpecs are cached for ``target``:
    ``$CANAO_CACHE_DIR/workloads/<tag>`` (default ``~/.cache/canao``), or None when
    ``CANAO_CACHE_DIR`` is empty (no cache). The tag hashes the TVM version, the target and
    :data:`EXTRACT_VERSION`."""
    import hashlib

    import tvm

    root = os.environ.get("CANAO_CACHE_DIR", str(Path.home() / ".cache" / "canao"))
    if not root:
        return None
    tag = f"{tvm.__version__}|{target}|{EXTRACT_VERSION}"
    digest = hashlib.sha256(tag.encode()).hexdigest()[:16]
    return Path(root).expanduser() / "workloads" / digest


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def _cached_workloads(spec: BlockSpec, folder: Path) -> list[Workload] | None:
    """The cached workloads of ``spec``, or None when any part is missing or unreadable. The
    TIR is read with ``tvm.ir.load_json`` (TVM's node format: data, no code)."""
    import tvm

    try:
        entries = json.loads((folder / "specs" / f"{spec.key}.json").read_text())
        return [
            Workload(
                e["key"],
                e["name"],
                tvm.ir.load_json((folder / "tir" / f"{e['key']}.json").read_text()),
                float(e["weight"]),
            )
            for e in entries
        ]
    except Exception:  # a partial or corrupt cache entry is re-extracted, never trusted
        return None


def _cache_workloads(spec: BlockSpec, folder: Path, workloads: list[Workload]) -> None:
    import tvm

    (folder / "tir").mkdir(parents=True, exist_ok=True)
    (folder / "specs").mkdir(parents=True, exist_ok=True)
    for w in workloads:  # (re)written: this is only reached when the entry was unreadable
        _write_atomic(folder / "tir" / f"{w.key}.json", tvm.ir.save_json(w.mod))
    entries = [{"key": w.key, "name": w.name, "weight": w.weight} for w in workloads]
    _write_atomic(folder / "specs" / f"{spec.key}.json", json.dumps(entries))


def extract_workloads(obj: Any, target: Any) -> list[Workload]:
    """The operator workloads of a spec or ``(IRModule, inputs)`` pair. A BlockSpec's are
    cached on disk (:func:`extract_cache_dir`): extraction costs about a second per block,
    which a grid of 1,500 blocks pays on every resumed ``canao tune``."""
    folder = extract_cache_dir(target) if isinstance(obj, BlockSpec) else None
    if folder is not None:
        cached = _cached_workloads(obj, folder)
        if cached is not None:
            return cached
    out = _extract(obj, target)
    if folder is not None:
        try:
            _cache_workloads(obj, folder, out)
        except OSError:
            pass  # a read-only home only costs the cache
    return out


def _extract(obj: Any, target: Any) -> list[Workload]:
    import tvm_ffi
    from tvm.s_tir import meta_schedule as ms

    mod, _ = relax_program(obj)
    tasks = ms.relax_integration.extract_tasks(fused_module(mod, target), target)
    out = []
    for t in tasks:
        mod = t.dispatched[0]
        key = f"{tvm_ffi.structural_hash(mod) & 0xFFFFFFFFFFFFFFFF:016x}"
        out.append(Workload(key, t.task_name, mod, float(t.weight)))
    return out


class TuningDatabase:
    """MetaSchedule's JSON database in ``folder`` (workloads + tuning records, append-only).

    ``create=False`` is for readers: a missing database is then an empty one in memory, and
    nothing is written to disk (a lookup on a new device leaves no empty folder behind).
    """

    def __init__(self, folder: Path, create: bool = True) -> None:
        from tvm.s_tir import meta_schedule as ms

        self.folder = folder
        if not create and not (folder / "database_workload.json").exists():
            self.db = ms.database.MemoryDatabase()
            return
        folder.mkdir(parents=True, exist_ok=True)
        self.db = ms.database.JSONDatabase(
            path_workload=str(folder / "database_workload.json"),
            path_tuning_record=str(folder / "database_tuning_record.json"),
            allow_missing=True,
        )

    def tuned(self, w: Workload, target: Any) -> bool:
        return bool(self.db.query_tuning_record(w.mod, target, w.name) is not None)

    def best_us(self, w: Workload, target: Any) -> float | None:
        """The workload's best recorded time (µs), or None if it has no record."""
        rec = self.db.query_tuning_record(w.mod, target, w.name)
        if rec is None or not rec.run_secs:
            return None
        return 1e6 * sum(float(x) for x in rec.run_secs) / len(rec.run_secs)

    def max_trials(self) -> dict[str, int]:
        """Per workload key, the most trials it was tuned with (from ``tuning-log.jsonl``)."""
        out: dict[str, int] = {}
        path = self.folder / "tuning-log.jsonl"
        if path.exists():
            for line in path.read_text().splitlines():
                try:
                    e = json.loads(line)
                    out[e["key"]] = max(out.get(e["key"], 0), int(e["trials"]))
                except (ValueError, KeyError, TypeError):
                    continue
        return out

    def __len__(self) -> int:
        return len(self.db)


def plan(
    specs: Iterable[Any], target: Any, db: TuningDatabase | None = None, progress: bool = False
) -> tuple[list[Workload], list[Workload]]:
    """Distinct workloads of ``specs``: ``(to_tune, already_tuned)``."""
    from tqdm import tqdm

    seen: dict[str, Workload] = {}
    specs = list(specs)
    for spec in tqdm(specs, desc="extracting workloads", unit="spec", disable=not progress):
        for w in extract_workloads(spec, target):
            if w.key not in seen:
                seen[w.key] = w
            if isinstance(spec, BlockSpec):
                seen[w.key].blocks.append(spec)
    todo: list[Workload] = []
    done: list[Workload] = []
    for w in seen.values():
        (done if db is not None and db.tuned(w, target) else todo).append(w)
    return completion_order(todo), done


def completion_order(todo: Sequence[Workload]) -> list[Workload]:
    """``todo`` reordered so that blocks become fully tuned as early as possible.

    Greedy: next come the untuned workloads of the block that lacks the fewest (ties: the
    block seen first). Extraction order interleaves the grid's seq_lens, so a run stopped
    after half its workloads had completed few blocks of either; in this order it finishes
    one seq_len's FFN widths and then adds a row of blocks per attention config, and what is
    tuned when it stops is measurable (``canao profile --tuned-only``). Workloads of no block
    (whole models) come last, in their original order.
    """
    missing: dict[BlockSpec, set[str]] = {}
    for w in todo:
        for b in w.blocks:
            missing.setdefault(b, set()).add(w.key)
    order: list[Workload] = []
    placed: set[str] = set()
    while missing:
        block = min(missing, key=lambda b: len(missing[b]))  # first seen wins a tie
        keys = set(missing[block])
        order.extend(w for w in todo if w.key in keys)  # in extraction order
        placed |= keys
        for b in list(missing):
            missing[b] -= keys
            if not missing[b]:
                del missing[b]
    return order + [w for w in todo if w.key not in placed]


def estimate_seconds(n_workloads: int, trials: int) -> float:
    return n_workloads * trials * SECONDS_PER_TRIAL


def build_func(mod: Any, target: Any, _params: Any) -> Any:
    """MetaSchedule's default build without its 30 s ``tensor_intrin`` import (unused on CPU
    without tensorisation), so builds finish inside the builder's timeout."""
    from tvm.driver import build as tvm_build
    from tvm.s_tir.transform import RemoveWeightLayoutRewriteBlock

    mod = RemoveWeightLayoutRewriteBlock(skip_tensor_rewrite=True)(mod)
    return tvm_build(mod, target=target)


def skip_tensor_intrin(target: Any) -> None:
    """Stand in for ``tvm.s_tir.tensor_intrin`` on CPU targets.

    ``TuneContext`` imports it to register tensor intrinsics (int8 VNNI/AMX dot products, CUDA
    MMA), which float32 CPU schedules never use; in a process that has torch loaded the import
    takes 40-100 s (each of its ~500 TVMScript functions calls ``inspect.stack``, which scans
    every loaded module). The generic ``llvm`` schedule rules used here reference no intrinsic.
    """
    import sys
    import types

    name = "tvm.s_tir.tensor_intrin"
    if str(target.kind.name) == "llvm" and name not in sys.modules:
        sys.modules[name] = types.ModuleType(name)


def tune_workload(
    w: Workload,
    db: TuningDatabase,
    target: Any,
    trials: int,
    work_dir: Path,
    seed: int = 0,
    keep: int = 3,
) -> float:
    """Tune one workload in ``work_dir`` (its own database and logs), then commit its best
    ``keep`` records to ``db``: the shared database stays small and only ever gains finished
    workloads. Returns the seconds spent."""
    import numpy as np
    from tvm.s_tir import meta_schedule as ms

    t0 = time.perf_counter()
    if w.name.startswith("take"):  # a gather: random inputs crash every trial (see below)
        best_us = default_record(w, db, target, db.db.commit_workload(w.mod))
        return _log_tuning(db, w, trials, "default", time.perf_counter() - t0, best_us)
    threads = int(target.attrs.get("num-cores", 2))
    os.environ.setdefault("TVM_NUM_THREADS", str(threads))
    skip_tensor_intrin(target)
    work_dir.mkdir(parents=True, exist_ok=True)
    scratch = ms.database.JSONDatabase(work_dir=str(work_dir))
    ctx = ms.TuneContext(
        mod=w.mod,
        target=target,
        space_generator=ms.space_generator.PostOrderApply(
            sch_rules="llvm", postprocs="llvm", mutator_probs="llvm"
        ),
        # MetaSchedule's defaults (population 512, 50 fresh candidates) below 64 trials: a
        # smaller search for a smaller budget (1 trial in seconds, not a minute)
        search_strategy=ms.search_strategy.EvolutionarySearch(
            population_size=min(512, 8 * trials),
            init_min_unmeasured=min(50, max(2, trials)),
            genetic_num_iters=4 if trials >= 16 else 1,
        ),
        task_name=w.name,
        rand_state=seed,
        num_threads=threads,
    ).clone()
    ms.tune.tune_tasks(
        tasks=[ctx],
        task_weights=[1.0],
        work_dir=str(work_dir),
        max_trials_global=trials,
        num_trials_per_iter=min(64, trials),
        builder=ms.builder.LocalBuilder(f_build=build_func, max_workers=threads, timeout_sec=60),
        runner=ms.runner.LocalRunner(
            evaluator_config=ms.runner.EvaluatorConfig(number=3, repeat=1, min_repeat_ms=20)
        ),
        database=scratch,
    )
    best = scratch.get_top_k(scratch.commit_workload(w.mod), keep)
    workload = db.db.commit_workload(w.mod)
    if best:
        for rec in best:
            db.db.commit_tuning_record(
                ms.database.TuningRecord(
                    rec.trace, workload, rec.run_secs, rec.target, rec.args_info
                )
            )
        best_us = min(float(np.mean([float(x) for x in r.run_secs])) for r in best) * 1e6
        schedule = "tuned"
    else:
        # no candidate ran: MetaSchedule's runner feeds random inputs, and a gather (the
        # embedding lookup, ``take``) reads out of bounds with random indices and crashes.
        # Such a workload is a plain copy loop; its default schedule is recorded as its record
        # (timed on in-bound zero inputs), so the database is complete and says so.
        best_us = default_record(w, db, target, workload)
        schedule = "default"
    return _log_tuning(db, w, trials, schedule, time.perf_counter() - t0, best_us)


def _log_tuning(
    db: TuningDatabase, w: Workload, trials: int, schedule: str, spent: float, best_us: float
) -> float:
    """Append the workload's tuning to ``tuning-log.jsonl``; returns the seconds spent."""
    entry = {
        "key": w.key,
        "name": w.name,
        "trials": trials,
        "schedule": schedule,
        "seconds": round(spent, 2),
        "best_us": round(best_us, 4),
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    with open(db.folder / "tuning-log.jsonl", "a") as f:
        f.write(json.dumps(entry) + "\n")
    return spent


def _args_info(mod: Any) -> Any:
    """MetaSchedule's argument info of a workload module's PrimFunc."""
    import tvm
    from tvm.s_tir import meta_schedule as ms

    func = next(f for _, f in mod.functions.items() if isinstance(f, tvm.tirx.PrimFunc))
    return ms.arg_info.ArgInfo.from_prim_func(func)


def _time_on_zeros(mod: Any, target: Any, **evaluator: Any) -> list[float]:
    """Build a workload module and time it on zero inputs (seconds per sample; ``evaluator``:
    ``time_evaluator``'s number, repeat, min_repeat_ms)."""
    import numpy as np
    import tvm

    lib = build_func(mod, target, None)
    dev = tvm.cpu()
    args = [
        tvm.runtime.tensor(np.zeros([int(d) for d in a.shape], dtype=str(a.dtype)), dev)
        for a in _args_info(mod)
    ]
    return [float(x) for x in lib.time_evaluator(lib.entry_name, dev, **evaluator)(*args).results]


def default_record(
    w: Workload, db: TuningDatabase, target: Any, workload: Any, measure: bool = True
) -> float:
    """Commit the workload's unscheduled (default) form as its record; returns its time (us)
    on zero inputs (``measure=False``: not built nor timed, recorded as 1 s)."""
    import numpy as np
    from tvm.s_tir import Schedule
    from tvm.s_tir import meta_schedule as ms

    sch = Schedule(w.mod)
    # a no-op instruction: MetaSchedule's databases ignore records whose trace is empty
    sch.get_child_blocks(sch.get_sblock("root", func_name="main"))
    args_info = _args_info(w.mod)
    secs: Any = [1.0]
    if measure:
        secs = _time_on_zeros(w.mod, target, number=10, repeat=3)
    db.db.commit_tuning_record(
        ms.database.TuningRecord(sch.trace, workload, [float(np.median(secs))], target, args_info)
    )
    return float(np.median(secs)) * 1e6


#: re-timings of tuned workloads' best schedules, one JSON line each, in the database folder
RETIMED = "retimed.jsonl"
#: how :func:`retime_workload` times a schedule: the median of REPEAT samples of at least
#: MIN_REPEAT_MS each, on RETIME_THREADS threads
RETIME_REPEAT = 15
RETIME_MIN_REPEAT_MS = 20
RETIME_THREADS = 1


def read_retimed(folder: Path, threads: int = RETIME_THREADS) -> dict[str, list[float]]:
    """Per workload key, its re-timings on ``threads`` threads in ``folder`` (us), oldest
    first; unreadable lines skipped."""
    out: dict[str, list[float]] = {}
    path = Path(folder) / RETIMED
    if path.exists():
        for line in path.read_text().splitlines():
            try:
                e = json.loads(line)
                if int(e["threads"]) == threads:
                    out.setdefault(str(e["key"]), []).append(float(e["retimed_us"]))
            except (ValueError, KeyError, TypeError):
                continue
    return out


def retime_workload(
    w: Workload, db: TuningDatabase, target: Any, threads: int = RETIME_THREADS
) -> float:
    """Build the workload's best recorded schedule and time it again on ``threads`` threads (us,
    on zero inputs), and append the time to the database's ``retimed.jsonl``. A record's own
    time is one short measurement of the fastest of many candidates taken while tuning (on a
    host that may have run at another speed that day): picked for being fast, it reads low by
    chance, more for some workloads than others. Re-timed in one sitting, the workloads compare
    as they run. One thread by default: on the Intel host, where the blocks run on two, the
    single-thread times told the blocks apart better (``benchmarks/transfer_records.py``), as
    a small kernel's two-thread time is much its threads' start and join."""
    import numpy as np
    import tvm

    if threads < 1:
        raise ValueError("threads must be >= 1")
    sch = db.db.query_schedule(w.mod, target, w.name)
    if sch is None:
        raise ValueError(f"workload {w.name} ({w.key}) has no tuning record to re-time")
    skip_tensor_intrin(target)
    pool = tvm.get_global_func("runtime.config_threadpool")
    before = int(tvm.get_global_func("runtime.NumThreads")())
    pool(0, threads)
    try:
        secs = _time_on_zeros(
            sch.mod, target, number=1, repeat=RETIME_REPEAT, min_repeat_ms=RETIME_MIN_REPEAT_MS
        )
    finally:
        pool(0, before)
    us = float(np.median(secs)) * 1e6
    entry = {
        "key": w.key,
        "name": w.name,
        "threads": threads,
        "record_us": round(db.best_us(w, target) or 0.0, 4),
        "retimed_us": round(us, 4),
        "load1": round(os.getloadavg()[0], 2),
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    with open(db.folder / RETIMED, "a") as f:
        f.write(json.dumps(entry) + "\n")
    return us


def compile_tuned(obj: Any, target: Any, db: TuningDatabase) -> tuple[Any, tuple, list[str]]:
    """Compile a spec (or ``(IRModule, inputs)``) from the database: ``(executable, inputs,
    untuned workload names)``. The executable is built whatever is missing; callers refuse it
    if the list is not empty."""
    from tvm.s_tir import meta_schedule as ms

    mod, inputs = relax_program(obj)
    missing = [w.name for w in extract_workloads((mod, inputs), target) if not db.tuned(w, target)]
    ex = ms.relax_integration.compile_relax(db.db, mod, target, params=None)
    return ex, inputs, missing


def tune_specs(
    specs: Sequence[Any],
    db: TuningDatabase,
    target: Any,
    trials: int,
    work_dir: Path,
    log: Any = print,
) -> dict[str, Any]:
    """Plan, print the estimate, tune every missing workload with a progress bar."""
    from tqdm import tqdm

    todo, done = plan(specs, target, db, progress=True)
    est = estimate_seconds(len(todo), trials)
    log(
        f"{len(todo) + len(done)} distinct workloads in {len(specs)} specs: {len(done)} tuned "
        f"already, {len(todo)} to tune at {trials} trials each: about {est / 60:.0f} min"
    )
    spent = 0.0
    for w in tqdm(todo, desc="tuning", unit="workload"):
        spent += tune_workload(w, db, target, trials, work_dir / w.key)
    return {"workloads": len(todo) + len(done), "tuned_now": len(todo), "seconds": spent}
