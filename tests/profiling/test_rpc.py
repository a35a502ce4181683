"""RPC round trip on 127.0.0.1: a tracker, a server registered with a key (the ``tracker``
fixture, a :class:`canao.profiling.farm.LocalFarm`), the RPCRunner."""

from __future__ import annotations

import time

from canao.profiling.measurement import EvalConfig
from canao.profiling.runner import RPCRunner


def test_rpc_round_trip(tracker, tiny_block) -> None:
    cfg = EvalConfig(warmup=1, repeat=3, min_repeat_ms=2, retries=0, timeout_s=120)
    runner = RPCRunner("tvm-untuned", "test-board", tracker, "test-board", cfg)
    res = runner.run(tiny_block)
    assert res.ok, res.error
    assert res.max_abs_err is not None and res.max_abs_err < 1e-4
    assert res.measurement is not None and len(res.measurement.samples_ms) == 3
    row = res.row()
    assert row["compiled"] is False and row["cpu_model"] == "rpc:test-board"
    assert row["tvm"] and "llvm" in row["target"]


def test_rpc_unknown_key_is_an_error_row(tracker, tiny_block) -> None:
    cfg = EvalConfig(warmup=1, repeat=3, min_repeat_ms=2, retries=0, timeout_s=5)
    runner = RPCRunner("tvm-untuned", "nobody", tracker, "no-such-key", cfg)
    t0 = time.time()
    res = runner.run(tiny_block)
    assert not res.ok and res.error.startswith("rpc:")
    assert time.time() - t0 < 120
