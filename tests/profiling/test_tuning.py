from __future__ import annotations

import os

import pytest

from canao.space import BlockSpec

pytest.importorskip("tvm")


@pytest.mark.slow
def test_plan_tune_and_resume_from_the_database(tmp_path) -> None:
    """Distinct workloads are shared between blocks; a tuned workload is kept in the JSON
    database and found again by a fresh database object (a new process would do the same)."""
    from canao.profiling.backends.tvm import host_target
    from canao.profiling.tuning import (
        TuningDatabase,
        WorkloadGrid,
        compile_tuned,
        plan,
        tune_workload,
    )

    os.environ.setdefault("TVM_NUM_THREADS", "2")
    target = host_target(2)
    a, b = BlockSpec(64, 2, 32, 128, 16), BlockSpec(64, 2, 32, 256, 16)
    db = TuningDatabase(tmp_path / "db")
    todo, done = plan([a], target, db)
    both, _ = plan([a, b], target, db)
    assert not done and 10 <= len(todo) < len(both) < 2 * len(todo)  # FFN width changes a few
    matmul = next(w for w in todo if "matmul" in w.name and w.blocks == [a])
    tune_workload(matmul, db, target, trials=4, work_dir=tmp_path / "work")
    assert 1 <= len(db) <= 3  # only the best records reach the shared database
    again = TuningDatabase(tmp_path / "db")
    todo2, done2 = plan([a], target, again)
    assert [w.key for w in done2] == [matmul.key] and len(todo2) == len(todo) - 1
    assert again.max_trials() == {matmul.key: 4}  # what --retune-above-us resumes from
    best = again.best_us(matmul, target)
    assert best is not None and 0 < best < 1e5 and again.best_us(todo2[0], target) is None
    _, _, missing = compile_tuned(a, target, again)
    assert matmul.name not in missing and len(missing) == len(todo) - 1
    grid = WorkloadGrid()
    assert len(grid.blocks()) == 144 and grid.contains(BlockSpec(384, 7, 32, 640, 128))
    assert not grid.contains(BlockSpec(384, 7, 32, 650, 128))
    log = [x for x in (tmp_path / "db" / "tuning-log.jsonl").read_text().splitlines() if x]
    assert len(log) == 1 and '"trials": 4' in log[0]
    # a reader (create=False) finds the records on disk, and on a new device writes nothing
    assert TuningDatabase(tmp_path / "db", create=False).tuned(matmul, target)
    empty = TuningDatabase(tmp_path / "new-device" / "tuning", create=False)
    assert not empty.tuned(matmul, target) and not (tmp_path / "new-device").exists()


@pytest.mark.slow
def test_extracted_workloads_are_cached_per_block_and_still_find_their_records(
    tmp_path, monkeypatch
) -> None:
    """A block's workloads come back from the cache with the same keys, and the TIR read back
    still finds its tuning record; a corrupt entry is extracted again, not trusted."""
    from canao.profiling import tuning
    from canao.profiling.backends.tvm import host_target

    monkeypatch.setenv("CANAO_CACHE_DIR", str(tmp_path / "cache"))
    target = host_target(2)
    spec = BlockSpec(64, 2, 32, 128, 16)
    first = tuning.extract_workloads(spec, target)
    folder = tuning.extract_cache_dir(target)
    assert folder is not None and (folder / "specs" / f"{spec.key}.json").is_file()
    calls = []
    real = tuning._extract
    monkeypatch.setattr(tuning, "_extract", lambda o, t: calls.append(o) or real(o, t))
    again = tuning.extract_workloads(spec, target)
    assert not calls  # served from the cache
    assert [(w.key, w.name, w.weight) for w in again] == [(w.key, w.name, w.weight) for w in first]
    db = tuning.TuningDatabase(tmp_path / "db")
    matmul = next(w for w in first if "matmul" in w.name)
    tuning.tune_workload(matmul, db, target, trials=2, work_dir=tmp_path / "work")
    _, done = tuning.plan([spec], target, db)
    assert not calls and [w.key for w in done] == [matmul.key]
    (folder / "tir" / f"{matmul.key}.json").write_text("{not json")
    third = tuning.extract_workloads(spec, target)
    assert calls == [spec] and [w.key for w in third] == [w.key for w in first]
    monkeypatch.setenv("CANAO_CACHE_DIR", "")
    assert tuning.extract_cache_dir(target) is None


def test_profile_tuned_only_keeps_the_blocks_whose_workloads_all_have_records(
    tmp_path, monkeypatch
) -> None:
    """``canao profile --tuned-only``: a block is kept only when every one of its workloads is
    in the database (here: the workloads of ``a``; ``b`` differs in FFN width)."""
    from canao.cli import _tuned_specs
    from canao.profiling.backends.tvm import host_target
    from canao.profiling.tuning import TuningDatabase, extract_workloads

    monkeypatch.setenv("CANAO_TVM_DB", str(tmp_path / "db"))
    a, b = BlockSpec(64, 2, 32, 128, 16), BlockSpec(64, 2, 32, 256, 16)
    have = {w.key for w in extract_workloads(a, host_target(2))}
    asked = []

    def tuned(self, w, target) -> bool:
        asked.append(w.key)
        return w.key in have

    monkeypatch.setattr(TuningDatabase, "tuned", tuned)
    assert _tuned_specs([a, b, a], "host", 2) == [a, a]
    assert len(asked) == len(set(asked))  # each workload looked up once


def test_grid_models_are_on_the_grid_and_prefix_stable() -> None:
    from canao.profiling.tuning import WorkloadGrid, grid_archs

    grid = WorkloadGrid()
    archs = grid_archs(grid, 50, seed=3)
    assert len({a.key for a in archs}) == 50 and grid_archs(grid, 20, seed=3) == archs[:20]
    assert all(grid.contains_arch(a) for a in archs)
    assert {a.num_layers for a in archs} <= set(grid.layers) and len(
        {a.num_layers for a in archs}
    ) > 3
    assert any(len({(x.heads, x.ffn) for x in a.layers}) > 1 for a in archs)  # heterogeneous
    heads = grid.head_specs()
    assert [a.layers[0].heads for a in heads] == 2 * list(grid.heads)  # one per head count
    assert [a.num_layers for a in heads] == [1] * 12 + [2] * 12  # the mask alone, and shared
    small = WorkloadGrid(hidden=(64,), heads=(1, 2), ffn=(128,), seq_len=(16, 32), layers=(2,))
    assert len(small.head_specs()) == 4 and all(a.num_layers == 2 for a in grid_archs(small, 3))
    assert all(a.num_layers == 2 for a in small.head_specs())


def test_grid_leaves_out_attention_wider_than_hidden() -> None:
    from canao.profiling.tuning import WorkloadGrid, grid_archs

    grid = WorkloadGrid(hidden=(128,), heads=(1, 2, 3, 4), head_dim=(32, 64), ffn=(128, 256))
    widths = {(b.heads, b.head_dim) for b in grid.blocks()}
    assert widths == {(1, 32), (2, 32), (3, 32), (4, 32), (1, 64), (2, 64)}
    assert not grid.contains(BlockSpec(128, 3, 64, 128, 128))
    assert {(a.layers[0].heads, a.layers[0].head_dim) for a in grid.head_specs()} == widths
    assert all(grid.contains_arch(a) for a in grid_archs(grid, 30, seed=0))


def test_fast_math_replaces_gelu_and_softmax_and_keeps_numerics() -> None:
    """The libm erf/exp of the default lowering are replaced by TOPI's fast forms; the
    compiled block still matches PyTorch (an untuned build is enough for numerics)."""
    import numpy as np
    import torch
    import tvm
    from tvm import relax
    from tvm.relax.frontend.torch import from_exported_program

    from canao.modeling import build_module
    from canao.profiling.backends.tvm import fast_math

    spec = BlockSpec(64, 2, 32, 128, 16)
    module = build_module(spec, 0)
    inputs = module.example_inputs()
    mod = from_exported_program(torch.export.export(module, inputs), unwrap_unit_return_tuple=True)
    before, after = mod.script(), fast_math(mod).script()
    assert "R.nn.gelu" in before and "R.nn.softmax" in before
    assert "R.nn.gelu" not in after and "R.nn.softmax" not in after
    assert "fast_gelu" in after and "fast_softmax" in after
    ex = tvm.compile(fast_math(mod), target="llvm")
    vm = relax.VirtualMachine(ex, tvm.cpu())
    out = vm["main"](*[tvm.runtime.tensor(t.numpy()) for t in inputs]).numpy()
    with torch.inference_mode():
        ref = module(*inputs).numpy()
    assert np.abs(out - ref).max() < 1e-4


def test_completion_order_finishes_blocks_earlier_than_extraction_order() -> None:
    """Two seq_lens x 2 attention configs x 3 FFN widths, workloads in extraction order (seq
    innermost): the reordered list completes at least as many blocks at every prefix, and
    more at some, so a stopped tuning run leaves more blocks to measure."""
    from canao.profiling.tuning import Workload, completion_order

    heads, ffns, seqs = (1, 2), (128, 256, 384), (64, 128)
    blocks = [BlockSpec(128, n, 32, f, s) for n in heads for f in ffns for s in seqs]
    todo: dict[str, Workload] = {}
    for b in blocks:  # as plan() sees them: a block's workloads, first appearance kept
        parts = [f"qkv{b.heads}-{b.seq_len}", f"sm{b.heads}-{b.seq_len}"]
        for key in [*parts, f"ffn{b.ffn}-{b.seq_len}"]:
            todo.setdefault(key, Workload(key, key, None, 1.0)).blocks.append(b)
    todo["model"] = Workload("model", "take", None, 1.0)  # a whole model's gather: last
    natural = list(todo.values())
    order = completion_order(natural)
    assert sorted(w.key for w in order) == sorted(todo) and order[-1].key == "model"

    def completed(seq: list[Workload]) -> list[int]:
        need = {b: {w.key for w in natural if b in w.blocks} for b in blocks}
        done: set[str] = set()
        out = []
        for w in seq:
            done.add(w.key)
            out.append(sum(need[b] <= done for b in blocks))
        return out

    ours, theirs = completed(order), completed(natural)
    assert all(a >= b for a, b in zip(ours, theirs, strict=True)) and sum(ours) > sum(theirs)
    assert ours[-1] == len(blocks)


@pytest.mark.slow
def test_records_table_sums_each_blocks_record_times_by_kind(tmp_path, monkeypatch, capsys) -> None:
    """A block whose workloads all have records gets their times (each times its count in the
    block) summed by kind; one with a workload left untuned is left out and reported. By
    default each best schedule is timed again, once per workload (kept in retimed.jsonl).
    `canao records` writes the table for a grid and resumes it."""
    import json

    import numpy as np

    from canao.cli import main
    from canao.predictors.records import read_records, records_table, workload_kind
    from canao.profiling.backends.tvm import host_target
    from canao.profiling.tuning import (
        TuningDatabase,
        default_record,
        extract_workloads,
        read_retimed,
    )

    monkeypatch.setenv("CANAO_CACHE_DIR", str(tmp_path / "cache"))
    target = host_target(2)
    a, b = BlockSpec(64, 2, 32, 128, 16), BlockSpec(64, 2, 32, 256, 16)
    db = TuningDatabase(tmp_path / "db")
    ws = extract_workloads(a, target)
    for w in ws:  # recorded as 1 s each (not built nor timed)
        default_record(w, db, target, db.db.commit_workload(w.mod), measure=False)
    table, untuned = records_table([a, b], tmp_path / "db", target, retime_threads=None)
    assert untuned == [b] and len(table) == 1  # b's FFN workloads have no record
    linear = sum(w.weight for w in ws if workload_kind(w.name) == "linear")
    assert linear >= 5  # Q, K, V, attention output, FFN 1 and 2 (some fused by shape)
    assert table["linear_ms"][0] == pytest.approx(1000.0 * linear)
    assert table["rest_ms"][0] == pytest.approx(1000.0 * (sum(w.weight for w in ws) - linear))
    assert not (tmp_path / "db" / "retimed.jsonl").exists()
    # re-timed: each distinct workload's schedule built and timed twice, each round in its
    # own order, and the median used (a tiny block: microseconds, not the 1 s records)
    table, _ = records_table([a, b], tmp_path / "db", target)
    times = read_retimed(tmp_path / "db")  # on one thread
    assert read_retimed(tmp_path / "db", threads=2) == {}
    assert sorted(times) == sorted({w.key for w in ws})
    assert all(len(t) == 2 and 0 < min(t) and max(t) < 1e4 for t in times.values())
    median = {k: float(np.median(t)) for k, t in times.items()}
    lin = sum(w.weight * median[w.key] for w in ws if workload_kind(w.name) == "linear") / 1e3
    assert table["linear_ms"][0] == pytest.approx(lin) and table["linear_ms"][0] < 1.0
    lines = (tmp_path / "db" / "retimed.jsonl").read_text().splitlines()
    assert len(lines) == 2 * len(times) and '"threads": 1, "record_us": 1000000.0' in lines[0]
    first = [json.loads(x)["key"] for x in lines[: len(times)]]
    assert first != [json.loads(x)["key"] for x in lines[len(times) :]]  # shuffled apart
    grid = tmp_path / "grid.json"
    grid.write_text(json.dumps(dict(hidden=[64], heads=[2], head_dim=[32], ffn=[128, 256],
                                    seq_len=[16], batch=[1], layers=[1])))  # fmt: skip
    out = tmp_path / "records.parquet"
    argv = ["records", "--db", str(tmp_path / "db"), "--grid", str(grid), "--out", str(out)]
    assert main([*argv, "--json"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["untuned"] == 1 and summary["retimed_threads"] == 1
    assert read_records(out)[["ffn", "linear_ms"]].values.tolist() == [[128, pytest.approx(lin)]]
    assert len((tmp_path / "db" / "retimed.jsonl").read_text().splitlines()) == len(lines)
    assert main(argv) == 0  # resumed: the block in the table is not read again
    err = capsys.readouterr().err
    assert "2 grid blocks, 1 in" in err and "1 to read" in err
    assert main([*argv, "--no-retime", "--overwrite"]) == 0
    assert read_records(out)["linear_ms"].tolist() == [1000.0 * linear]
    assert main(["records", "--db", str(tmp_path / "none")]) == 2
    assert "no tuning database" in capsys.readouterr().err
