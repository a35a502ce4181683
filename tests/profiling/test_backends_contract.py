"""The contract every backend passes: build as data, numerics, timing."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from canao.modeling import build_module
from canao.profiling.backends import (
    BACKENDS,
    UnknownBackendError,
    backend_class,
    get_backend,
)
from canao.profiling.measurement import EvalConfig

FAST = EvalConfig(warmup=1, repeat=3, min_repeat_ms=1, retries=0)


@pytest.fixture(scope="session")
def tiny_tuning_db(tmp_path_factory):
    """A tuning database holding every workload of the tiny block (1 trial each: fast, and
    enough to make the build a tuned one)."""
    from canao.profiling.backends.tvm import host_target
    from canao.profiling.tuning import TuningDatabase, plan, tune_workload
    from canao.space import BlockSpec

    folder = tmp_path_factory.mktemp("tuning")
    db, target = TuningDatabase(folder), host_target(2)
    todo, _ = plan([BlockSpec(hidden=64, heads=2, head_dim=32, ffn=128, seq_len=16)], target, db)
    for w in todo:
        tune_workload(w, db, target, trials=1, work_dir=folder / "work" / w.key)
    return folder


@pytest.fixture(params=sorted(BACKENDS))
def backend(request):
    why = backend_class(request.param).unavailable()
    if why:  # a GPU-only backend on a CPU machine: its contract is checked where it runs
        pytest.skip(why)
    if request.param == "tvm":
        from canao.profiling.backends.tvm import TvmBackend

        folder = request.getfixturevalue("tiny_tuning_db")
        return TvmBackend(threads=2, tuning_dir=folder, tune_trials=0)
    return get_backend(request.param, threads=2)


def _reference(spec) -> np.ndarray:
    module = build_module(spec)
    with torch.no_grad():
        return module(*module.example_inputs()).numpy()


def test_block_numerics_and_timing(backend, tiny_block, tmp_path) -> None:
    res = backend.build(tiny_block, tmp_path)
    assert res.error is None, res.error
    assert res.artifact is not None and res.build_s > 0
    out = res.artifact.output()
    assert out.shape == (1, 16, 64)
    np.testing.assert_allclose(out, _reference(tiny_block), atol=1e-4)
    samples, number = res.artifact.time(FAST)
    assert len(samples) == 3 and number >= 1
    assert all(0 < s < 1000 for s in samples)


def test_model_numerics(backend, tiny_arch, tmp_path) -> None:
    res = backend.build(tiny_arch, tmp_path)
    if backend.name == "tvm":  # its workloads are not in the database: an error row, not a
        assert res.artifact is None and "untuned" in str(res.error)  # silently untuned build
        return
    assert res.error is None, res.error
    assert res.artifact is not None
    np.testing.assert_allclose(res.artifact.output(), _reference(tiny_arch), atol=1e-4)


def test_failed_build_is_data(backend, tmp_path) -> None:
    res = backend.build("not a spec", tmp_path)  # type: ignore[arg-type]
    assert res.artifact is None
    assert res.error and "Error" in res.error


def test_versions_and_target(backend) -> None:
    assert backend.versions() and all(isinstance(v, str) for v in backend.versions().values())
    assert isinstance(backend.target(), str) and backend.target()
    assert backend.label


def test_only_tvm_untuned_is_not_compiled() -> None:
    assert {n for n in BACKENDS if not backend_class(n).compiled} == {"tvm-untuned"}
    assert "UNTUNED" in backend_class("tvm-untuned").label


def test_unknown_backend() -> None:
    with pytest.raises(UnknownBackendError, match="choose one of"):
        get_backend("tflite")
