"""The emulated aarch64 board (``make board``): a cross-compiled block uploaded through the RPC
tracker, run under qemu by the aarch64 TVM runtime, numerics checked against PyTorch."""

from __future__ import annotations

from pathlib import Path

import pytest

from canao.cli import main
from canao.profiling.measurement import EvalConfig

pytest.importorskip("tvm")
ROOT = Path(__file__).resolve().parents[2] / ".board"


@pytest.mark.slow
def test_emulated_board_runs_a_cross_compiled_block(tiny_block, tmp_path) -> None:
    from canao.profiling.board import BoardError, EmulatedFarm
    from canao.profiling.cross import CrossCompileError, cross_fcompile, cross_target
    from canao.profiling.runner import RPCRunner

    try:
        farm = EmulatedFarm(root=ROOT, logs=tmp_path / "farm")
        fcompile = cross_fcompile("aarch64-linux-gnu")
    except (BoardError, CrossCompileError) as e:
        pytest.skip(str(e))
    cfg = EvalConfig(warmup=0, repeat=3, min_repeat_ms=1, retries=0, threads=1, timeout_s=600)
    with farm:
        runner = RPCRunner(
            "tvm-untuned",
            farm.key,
            farm.tracker,
            farm.key,
            cfg,
            target=cross_target("aarch64-linux-gnu", threads=1),
            fcompile=fcompile,
        )
        res = runner.run(tiny_block)
    assert res.ok, res.error
    assert res.max_abs_err is not None and res.max_abs_err < 1e-4  # aarch64 code, right answer
    assert "aarch64" in res.row()["target"] and res.row()["cpu_model"] == f"rpc:{farm.key}"


def test_emulated_timings_are_never_stored(tmp_path, capsys) -> None:
    argv = ["profile", "--backend", "tvm-untuned", "--rpc-tracker", "127.0.0.1:9",
            "--rpc-key", "emulated-aarch64", "--out", str(tmp_path)]  # fmt: skip
    assert main(argv) == 2
    assert "never stored as latency" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())
