from __future__ import annotations

import pytest
import torch

from canao.profiling.measurement import EvalConfig
from canao.profiling.runner import LocalRunner, RPCRunner, parse_tracker
from canao.profiling.store import COLUMNS
from canao.space import BlockSpec
from tests.profiling.faulty import CRASH, HANG, RAISE, WARN

FAST = EvalConfig(warmup=1, repeat=3, min_repeat_ms=2, retries=0, timeout_s=60)


def _block(hidden: int) -> BlockSpec:
    return BlockSpec(hidden=hidden, heads=1, head_dim=8, ffn=16, seq_len=4)


def test_hang_and_crash_become_error_rows_and_the_run_goes_on() -> None:
    cfg = EvalConfig(warmup=1, repeat=3, min_repeat_ms=2, retries=0, timeout_s=20)
    with LocalRunner("tests.profiling.faulty:FaultyBackend", "test-dev", cfg) as runner:
        first = runner.run(_block(32))
        assert first.ok, first.error
        pid = runner._proc.pid
        # the second spec hangs: the timeout stops it; a new worker measures the next one
        runner.cfg = EvalConfig(**{**cfg.__dict__, "timeout_s": 3.0})
        hang = runner.run(_block(HANG))
        runner.cfg = cfg
        assert runner._proc is None  # the hung worker was killed
        after_hang = runner.run(_block(40))
        assert after_hang.ok and runner._proc.pid != pid  # and replaced by a new one
        crash = runner.run(_block(CRASH))
        raised = runner.run(_block(RAISE))
        last = runner.run(_block(24))
    assert not hang.ok and hang.error.startswith("timeout: no result after 3 s")
    assert not crash.ok and crash.error == "worker crashed (exit code 3)"
    assert not raised.ok and "this spec does not build" in raised.error
    assert last.ok and last.measurement is not None
    for res in (hang, crash, raised):
        row = res.row()
        assert set(row) == set(COLUMNS)
        assert row["error"] and row["median_ms"] is None and row["samples_ms"] is None


def test_worker_silences_library_chatter_only(capfd) -> None:
    # the worker is spawned: it starts with Python's default filters, not the CLI's
    with LocalRunner("tests.profiling.faulty:FaultyBackend", "test-dev", FAST) as runner:
        res = runner.run(_block(WARN))
    assert res.ok, res.error
    err = capfd.readouterr().err
    assert "canao test: shown" in err
    assert "LeafSpec" not in err


def test_row_has_schema_fingerprint_and_samples(tiny_block) -> None:
    with LocalRunner("onnxruntime", "test-dev", FAST) as runner:
        res = runner.run(tiny_block)
    assert res.ok, res.error
    row = res.row()
    assert set(row) == set(COLUMNS)
    assert row["key"] == f"{tiny_block.key}|t2"
    assert row["device"] == "test-dev" and row["threads"] == 2
    assert row["onnxruntime"] and row["torch"] == "" and row["cpu_model"]
    assert len(row["samples_ms"]) == 3 and row["median_ms"] > 0
    assert row["max_abs_err"] is not None and row["max_abs_err"] < row["atol"]
    assert row["compiled"] is True and row["kind"] == "block"


def test_model_row(tiny_arch) -> None:
    with LocalRunner("eager", "test-dev", FAST) as runner:
        res = runner.run(tiny_arch)
    row = res.row()
    assert res.ok and row["kind"] == "model" and row["num_layers"] == 2
    assert row["heads"] is None and '"heads": 3' in row["arch"]


def test_unknown_backend_fails_early() -> None:
    with pytest.raises(ValueError, match="unknown backend"):
        LocalRunner("nope", "d")


@pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA GPU is here")
def test_gpu_only_backend_refused_without_a_gpu(capsys, tmp_path) -> None:
    from canao.cli import main
    from canao.profiling.backends.inductor import InductorGraphsBackend

    with pytest.raises(ValueError, match="no CUDA GPU here"):
        LocalRunner("inductor-cudagraphs", "d")
    with pytest.raises(ValueError, match="CUDA graphs need a CUDA GPU"):
        InductorGraphsBackend(device="cpu")
    out = tmp_path / "out"
    assert main(["profile", "--backend", "inductor-cudagraphs", "--out", str(out)]) == 2
    assert "use --backend inductor" in capsys.readouterr().err and not out.exists()


def test_rpc_runner_refuses_non_tvm_backend() -> None:
    with pytest.raises(ValueError, match="needs a TVM backend"):
        RPCRunner("onnxruntime", "d", "127.0.0.1:9190", "k")


@pytest.mark.parametrize("bad", ["localhost", ":9190", "host:port", "127.0.0.1:"])
def test_parse_tracker_rejects(bad: str) -> None:
    with pytest.raises(ValueError, match="HOST:PORT"):
        parse_tracker(bad)
