"""A device farm on one machine: TVM's RPC tracker and an RPC server registered with a key.

The same processes a real farm runs (``python -m tvm.exec.rpc_tracker`` and, on each board,
``python -m tvm.exec.rpc_server --tracker HOST:PORT --key KEY``), started here on 127.0.0.1:
``canao demo`` verifies its finalist through it, and the tests use it. Each process gets a
session of its own, so stopping the farm also stops the server's worker processes.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import TracebackType


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, timeout: float = 60) -> None:
    end = time.time() + timeout
    while time.time() < end:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port}")


def wait_registered(port: int, key: str, log: Path, timeout: float = 60) -> None:
    from tvm import rpc

    end = time.time() + timeout
    while time.time() < end:
        summary = rpc.connect_tracker("127.0.0.1", port).summary()
        if any(key in str(s) for s in summary.get("server_info", [])):
            return
        time.sleep(0.3)
    raise TimeoutError(f"no server registered as {key}; server log:\n{log.read_text()[-3000:]}")


class LocalFarm:
    """``with LocalFarm("host-board") as farm: ... farm.tracker`` (``"127.0.0.1:PORT"``)."""

    def __init__(self, key: str = "local-board", logs: Path | None = None) -> None:
        self.key = key
        self.logs = logs or Path(tempfile.mkdtemp(prefix="canao-farm-"))
        self.procs: list[subprocess.Popen[bytes]] = []
        self.port = 0
        #: how the RPC server's Python starts (an emulated board: qemu + an aarch64 Python)
        self.server_python: list[str] = [sys.executable]
        self.server_env: dict[str, str] = {}
        self.register_timeout = 60.0

    @property
    def tracker(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _spawn(
        self,
        module: str,
        *args: str,
        log: str,
        python: list[str] | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        self.logs.mkdir(parents=True, exist_ok=True)
        out = open(self.logs / log, "w")  # noqa: SIM115 (closed with the process)
        cmd = [*(python or [sys.executable]), "-m", module, *args]
        self.procs.append(
            subprocess.Popen(
                cmd,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                env={**os.environ, **env} if env else None,
            )
        )

    def start(self) -> LocalFarm:
        self.port, sport = free_port(), free_port()
        try:
            self._spawn(
                "tvm.exec.rpc_tracker", "--host", "127.0.0.1", "--port", str(self.port),
                "--port-end", str(self.port + 1), log="tracker.log",
            )  # fmt: skip
            wait_port(self.port)
            self._spawn(
                "tvm.exec.rpc_server", "--tracker", self.tracker, "--key", self.key,
                "--host", "127.0.0.1", "--port", str(sport), "--port-end", str(sport + 50),
                log="server.log", python=self.server_python, env=self.server_env,
            )  # fmt: skip
            wait_registered(self.port, self.key, self.logs / "server.log", self.register_timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        for p in self.procs:
            try:
                os.killpg(p.pid, signal.SIGKILL)  # the server's popen workers too
            except ProcessLookupError:
                pass
            p.wait(10)
        self.procs.clear()

    def __enter__(self) -> LocalFarm:
        return self.start()

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
