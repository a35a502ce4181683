"""RPC round trip on 127.0.0.1: a tracker, a server registered with a key, the RPCRunner."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from canao.profiling.measurement import EvalConfig
from canao.profiling.runner import RPCRunner


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _spawn(module: str, *args: str, log: Path) -> subprocess.Popen:
    out = open(log, "w")  # noqa: SIM115 (closed with the process)
    cmd = [sys.executable, "-m", module, *args]
    # a session of its own, so that its worker processes die with it (see the fixture)
    return subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


@pytest.fixture(scope="module")
def tracker(tmp_path_factory):
    logs = tmp_path_factory.mktemp("rpc")
    port, sport = _free_port(), _free_port()
    procs = [
        _spawn(
            "tvm.exec.rpc_tracker",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--port-end",
            str(port + 1),
            log=logs / "tracker.log",
        )
    ]
    try:
        _wait_port(port)
        procs.append(
            _spawn(
                "tvm.exec.rpc_server",
                "--tracker",
                f"127.0.0.1:{port}",
                "--key",
                "test-board",
                "--host",
                "127.0.0.1",
                "--port",
                str(sport),
                "--port-end",
                str(sport + 50),
                log=logs / "server.log",
            )
        )
        _wait_registered(port, "test-board", logs / "server.log")
        yield f"127.0.0.1:{port}"
    finally:
        for p in procs:
            os.killpg(p.pid, signal.SIGKILL)  # the server's popen workers too
            p.wait(10)


def _wait_port(port: int, timeout: float = 60) -> None:
    end = time.time() + timeout
    while time.time() < end:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port}")


def _wait_registered(port: int, key: str, log: Path, timeout: float = 60) -> None:
    from tvm import rpc

    end = time.time() + timeout
    while time.time() < end:
        summary = rpc.connect_tracker("127.0.0.1", port).summary()
        if any(key in str(s) for s in summary.get("server_info", [])):
            return
        time.sleep(0.3)
    raise TimeoutError(f"no server registered as {key}; server log:\n{log.read_text()[-3000:]}")


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
