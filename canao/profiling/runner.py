"""Runners measure specs and return rows; a failure is a row with an error, never a crash.

``LocalRunner`` builds and times each spec in a worker process (kept warm between specs) and
waits for it with a timeout: a hang or a crash of one spec becomes an error row, the worker is
replaced, and the run goes on. ``RPCRunner`` builds here and times on a device registered with
a TVM RPC tracker.
"""

from __future__ import annotations

import abc
import multiprocessing as mp
import os
import shutil
import tempfile
import time
import traceback
from dataclasses import asdict, dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import numpy as np

from canao import quiet_library_warnings
from canao.profiling.backends import Backend, backend_class, get_backend
from canao.profiling.fingerprint import fingerprint
from canao.profiling.measurement import EvalConfig, Measurement, measure_steady
from canao.space import ArchSpec, BlockSpec

Spec = BlockSpec | ArchSpec

#: measured at the start of a run and every ``--canary-every`` specs: a MiniLM-L6 layer; its
#: latency over the run shows whether the host's speed moved (rows record the latest value)
CANARY = BlockSpec(hidden=384, heads=12, head_dim=32, ffn=1536, seq_len=128)

#: numerics tolerance by dtype, recorded with every row (outputs are of order 1)
ATOL = {"float32": 1e-3, "float16": 2e-2, "bfloat16": 1e-1}


def spec_to_payload(spec: Spec) -> dict[str, Any]:
    if isinstance(spec, BlockSpec):
        return {"kind": "block", "spec": spec.to_dict()}
    return {"kind": "model", "spec": spec.to_dict()}


def spec_from_payload(payload: dict[str, Any]) -> Spec:
    if payload["kind"] == "block":
        return BlockSpec(**payload["spec"])
    return ArchSpec.from_dict(payload["spec"])


def row_key(spec: Spec, threads: int) -> str:
    return f"{spec.key}|t{threads}"


def measure_artifact(backend: Backend, spec: Spec, cfg: EvalConfig, workdir: Path) -> dict:
    """Build, check numerics and time one spec in this process; errors come back as data."""
    result: dict[str, Any] = {
        "samples_ms": None,
        "number": None,
        "attempts": 0,
        "noisy": None,
        "build_s": None,
        "max_abs_err": None,
        "error": None,
        "loadavg_1m": os.getloadavg()[0],
    }
    built = backend.build(spec, workdir)
    result["build_s"] = built.build_s
    if built.artifact is None:
        result["error"] = f"build failed: {built.error}"
        return result
    try:
        art = built.artifact
        ref = reference_output(backend, spec)
        if ref is not None:
            result["max_abs_err"] = float(np.max(np.abs(art.output() - ref)))
        m, noisy = measure_steady(art.time, cfg)
        result.update(
            samples_ms=list(m.samples_ms), number=m.number, attempts=m.attempts, noisy=noisy
        )
    except Exception as e:
        result["error"] = (
            "run failed: " + "".join(traceback.format_exception_only(type(e), e)).strip()[-2000:]
        )
    return result


def reference_output(backend: Backend, spec: Spec) -> np.ndarray | None:
    """PyTorch's output for the spec's seeded weights and inputs (None for eager itself)."""
    if backend.name == "eager":
        return None
    import torch

    from canao.modeling import build_module

    module = build_module(spec)
    with torch.inference_mode():
        return module(*module.example_inputs()).float().numpy()


def _worker_main(conn: Connection, backend_name: str, threads: int) -> None:
    quiet_library_warnings()  # a spawned worker starts with Python's default filters
    os.environ["TVM_NUM_THREADS"] = str(threads)
    os.environ["OMP_NUM_THREADS"] = str(threads)
    backend = get_backend(backend_name, threads=threads)
    conn.send({"target": backend.target(), "versions": backend.versions()})
    while True:
        try:
            msg = conn.recv()
        except EOFError:
            return
        if msg is None:
            return
        spec = spec_from_payload(msg["payload"])
        cfg = EvalConfig(**msg["cfg"])
        workdir = Path(tempfile.mkdtemp(prefix="canao-build-"))
        try:
            conn.send(measure_artifact(backend, spec, cfg, workdir))
        finally:
            shutil.rmtree(workdir, ignore_errors=True)


@dataclass
class RunResult:
    """One measured spec: a Measurement, or an error; ``row()`` gives the store row."""

    spec: Spec
    backend: str
    compiled: bool
    cfg: EvalConfig
    measurement: Measurement | None
    noisy: bool
    error: str | None
    build_s: float | None
    max_abs_err: float | None
    loadavg_1m: float
    fingerprint: dict[str, object]
    canary_ms: float | None = None

    @property
    def atol(self) -> float:
        return ATOL[self.spec.dtype]

    @property
    def ok(self) -> bool:
        return self.error is None and self.measurement is not None

    @property
    def key(self) -> str:
        return row_key(self.spec, self.cfg.threads)

    def row(self) -> dict[str, Any]:
        s = self.spec
        m = self.measurement
        block = isinstance(s, BlockSpec)
        return {
            "key": self.key,
            "kind": "block" if block else "model",
            "backend": self.backend,
            "compiled": self.compiled,
            "hidden": s.hidden,
            "heads": s.heads if isinstance(s, BlockSpec) else None,
            "head_dim": s.head_dim if isinstance(s, BlockSpec) else None,
            "ffn": s.ffn if isinstance(s, BlockSpec) else None,
            "seq_len": s.seq_len,
            "batch": s.batch,
            "num_layers": 1 if isinstance(s, BlockSpec) else s.num_layers,
            "dtype": s.dtype,
            "arch": None if isinstance(s, BlockSpec) else s.to_json(),
            "samples_ms": list(m.samples_ms) if m else None,
            "number": m.number if m else None,
            "attempts": m.attempts if m else None,
            "median_ms": m.median_ms if m else None,
            "iqr_ms": m.iqr_ms if m else None,
            "cv": m.cv if m else None,
            "noisy": self.noisy if m else None,
            "build_s": self.build_s,
            "max_abs_err": self.max_abs_err,
            "atol": self.atol,
            "error": self.error,
            "threads": self.cfg.threads,
            "warmup": self.cfg.warmup,
            "repeat": self.cfg.repeat,
            "min_repeat_ms": self.cfg.min_repeat_ms,
            "max_cv": self.cfg.max_cv,
            "loadavg_1m": self.loadavg_1m,
            "canary_ms": self.canary_ms,
            "timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            **self.fingerprint,
        }


def _result(
    spec: Spec,
    backend: str,
    compiled: bool,
    cfg: EvalConfig,
    raw: dict[str, Any],
    fp: dict[str, object],
) -> RunResult:
    m = None
    if raw.get("samples_ms"):
        m = Measurement(tuple(raw["samples_ms"]), raw["number"], raw["attempts"])
    error = raw.get("error")
    atol = ATOL[spec.dtype]
    if error is None and raw.get("max_abs_err") is not None:
        if not raw["max_abs_err"] <= atol:
            error = f"numerics: max abs error {raw['max_abs_err']:.3g} > atol {atol}"
    return RunResult(
        spec=spec,
        backend=backend,
        compiled=compiled,
        cfg=cfg,
        measurement=m,
        noisy=bool(raw.get("noisy")),
        error=error,
        build_s=raw.get("build_s"),
        max_abs_err=raw.get("max_abs_err"),
        loadavg_1m=float(raw.get("loadavg_1m") or os.getloadavg()[0]),
        fingerprint=fp,
    )


class Runner(abc.ABC):
    """Measures specs on one device with one backend.

    Contract: ``run`` never raises for a spec that fails to build, crashes, hangs or gives
    wrong numbers: it returns a :class:`RunResult` whose ``error`` says what happened.
    """

    backend: str
    device: str

    @abc.abstractmethod
    def run(self, spec: Spec) -> RunResult: ...

    def close(self) -> None:  # noqa: B027 (optional hook)
        pass

    def __enter__(self) -> Runner:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class LocalRunner(Runner):
    """Measures on this machine, one spec at a time, in a worker process with a timeout."""

    def __init__(self, backend: str, device: str, cfg: EvalConfig | None = None) -> None:
        self.backend = backend
        self.device = device
        self.cfg = cfg or EvalConfig()
        self._klass = backend_class(backend)  # fails early on an unknown backend
        why = self._klass.unavailable()
        if why:
            raise ValueError(why)
        self._ctx = mp.get_context("spawn")
        self._proc: Any = None
        self._conn: Connection | None = None
        self._fp: dict[str, object] = {}

    def _start(self) -> Connection:
        if self._proc is not None and self._proc.is_alive() and self._conn is not None:
            return self._conn
        self._stop()
        parent, child = self._ctx.Pipe()
        self._proc = self._ctx.Process(
            target=_worker_main, args=(child, self.backend, self.cfg.threads), daemon=True
        )
        self._proc.start()
        child.close()
        if not parent.poll(self.cfg.timeout_s):
            self._stop()
            raise RuntimeError(f"backend {self.backend!r} did not start in the worker")
        try:
            hello = parent.recv()
        except EOFError:
            code = self._proc.exitcode
            self._stop()
            raise RuntimeError(
                f"the {self.backend!r} worker died while starting (exit code {code})"
            ) from None
        self._fp = fingerprint(self.device, hello["versions"], hello["target"])
        self._conn = parent
        return parent

    def _stop(self) -> None:
        if self._proc is not None and self._proc.pid is not None:  # started
            if self._proc.is_alive():
                self._proc.kill()
            self._proc.join(5)
        if self._conn is not None:
            self._conn.close()
        self._proc, self._conn = None, None

    def close(self) -> None:
        if self._conn is not None and self._proc is not None and self._proc.is_alive():
            try:
                self._conn.send(None)
                self._proc.join(5)
            except (BrokenPipeError, OSError):
                pass
        self._stop()

    def run(self, spec: Spec) -> RunResult:
        conn = self._start()
        conn.send({"payload": spec_to_payload(spec), "cfg": asdict(self.cfg)})
        raw: dict[str, Any]
        try:
            if conn.poll(self.cfg.timeout_s):
                raw = conn.recv()
            else:
                self._stop()
                raw = {"error": f"timeout: no result after {self.cfg.timeout_s:g} s"}
        except (EOFError, ConnectionResetError):
            code = self._proc.exitcode if self._proc is not None else None
            if self._proc is not None:
                self._proc.join(5)
                code = self._proc.exitcode
            self._stop()
            raw = {"error": f"worker crashed (exit code {code})"}
        return _result(spec, self.backend, self._klass.compiled, self.cfg, raw, self._fp)


def parse_tracker(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise ValueError(f"--rpc-tracker must be HOST:PORT, got {value!r}")
    return host, int(port)


class RPCRunner(Runner):
    """Builds here (TVM backends only), uploads to a device from a TVM RPC tracker, times it
    there with ``time_evaluator`` and checks numerics against PyTorch.

    ``target`` is the device's TVM target (default: this host's); ``fcompile`` links the
    exported library for it (e.g. a cross compiler; default: the host toolchain).
    """

    def __init__(
        self,
        backend: str,
        device: str,
        tracker: str,
        key: str,
        cfg: EvalConfig | None = None,
        target: Any = None,
        fcompile: Any = None,
        lib_suffix: str = ".so",
    ) -> None:
        from canao.profiling.backends.tvm import TvmUntunedBackend

        klass = backend_class(backend)
        if not issubclass(klass, TvmUntunedBackend):
            raise ValueError(
                f"RPC profiling needs a TVM backend; {backend!r} cannot run over TVM RPC"
            )
        self.backend, self.device = backend, device
        self.cfg = cfg or EvalConfig()
        self.host, self.port = parse_tracker(tracker)
        self.key = key
        self.fcompile, self.lib_suffix = fcompile, lib_suffix
        self._backend = klass(threads=self.cfg.threads, target=target)
        self._remote: Any = None
        self._fp = fingerprint(device, klass.versions(), self._backend.target())
        # the device's CPU is not this machine's: do not record this host's
        self._fp.update(cpu_model=f"rpc:{key}", isa="", cpu_count=0, affinity="", os="")

    def _session(self) -> Any:
        if self._remote is None:
            from tvm import rpc

            tracker = rpc.connect_tracker(self.host, self.port)
            keys = sorted(tracker.summary().get("queue_info", {}))
            if self.key not in keys:  # the tracker would queue the request forever
                raise RuntimeError(
                    f"no device registered as {self.key!r} on {self.host}:{self.port} "
                    f"(registered: {', '.join(keys) or 'none'})"
                )
            self._remote = tracker.request(
                self.key, priority=1, session_timeout=int(self.cfg.timeout_s)
            )
        return self._remote

    def run(self, spec: Spec) -> RunResult:
        from canao.profiling.backends.tvm import TvmArtifact

        raw: dict[str, Any] = {"loadavg_1m": os.getloadavg()[0]}
        workdir = Path(tempfile.mkdtemp(prefix="canao-rpc-"))
        try:
            t0 = time.perf_counter()
            path, inputs = self._backend.export(
                spec, workdir / f"{abs(hash(spec.key))}{self.lib_suffix}", self.fcompile
            )
            raw["build_s"] = time.perf_counter() - t0
            remote = self._session()
            remote.upload(str(path))
            lib = remote.load_module(path.name)
            art = TvmArtifact(lib, remote.cpu(), inputs)
            ref = reference_output(self._backend, spec)
            assert ref is not None
            raw["max_abs_err"] = float(np.max(np.abs(art.output() - ref)))
            m, noisy = measure_steady(art.time, self.cfg)
            raw.update(
                samples_ms=list(m.samples_ms), number=m.number, attempts=m.attempts, noisy=noisy
            )
        except Exception as e:
            self._remote = None  # a broken session is not reused
            raw["error"] = (
                "rpc: " + "".join(traceback.format_exception_only(type(e), e)).strip()[-2000:]
            )
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
        return _result(spec, self.backend, self._backend.compiled, self.cfg, raw, self._fp)

    def close(self) -> None:
        self._remote = None
