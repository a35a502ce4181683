"""TVM Relax, imported through ``torch.export``.

This issue's ``tvm-untuned`` backend schedules nothing (LegalizeOps + default lowering): its
latency is NOT compiled latency (about 100x slower than ONNX Runtime on a BERT-base layer) and
is labelled so everywhere. Tuned builds (MetaSchedule records) come with the ``tvm`` backend.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from canao.profiling.backends._base import Artifact, Backend, Spec
from canao.profiling.measurement import EvalConfig


def host_target(threads: int | None = None) -> Any:
    """The host's LLVM target (CPU detected), with ``num-cores`` when ``threads`` is given."""
    import tvm

    cfg = dict(tvm.target.Target.from_device(tvm.cpu()).export())
    if threads is not None:
        cfg["num-cores"] = threads
    return tvm.target.Target(cfg)


def target_string(target: Any) -> str:
    d = {k: v for k, v in dict(target.export()).items() if v not in ("", [], None)}
    return json.dumps(d, sort_keys=True, default=str)


def import_relax(spec: Spec, seed: int = 0) -> tuple[Any, tuple[np.ndarray, ...]]:
    """Relax IRModule for the spec (weights as constants, :func:`fast_math` applied) and its
    inputs."""
    import torch
    from tvm.relax.frontend.torch import from_exported_program

    from canao.modeling import build_module

    module = build_module(spec, seed)
    inputs = module.example_inputs()
    ep = torch.export.export(module, inputs)
    mod = from_exported_program(ep, unwrap_unit_return_tuple=True)
    return fast_math(mod), tuple(t.numpy() for t in inputs)


def _fast_gelu(x: Any) -> Any:
    """GELU (erf form, as BERT uses it) with TOPI's vectorisable rational ``fast_erf``."""
    from tvm import topi

    erf = topi.fast_erf(topi.multiply(x, 0.7071067811865476))
    return topi.multiply(x, topi.add(topi.multiply(erf, 0.5), 0.5))


def fast_math(mod: Any) -> Any:
    """GELU and softmax lowered through TOPI's fast approximations (``fast_erf``,
    ``fast_softmax`` with ``fast_exp``), as ONNX Runtime's kernels do: the libm ``erff``/``expf``
    calls of the default lowering are scalar and made GELU alone cost as much as the FFN GEMM
    before it. Max error about 1e-6 on the logits (checked against PyTorch on every artifact).
    Applied to every module canao imports, so tuning, profiling and ``canao compile`` agree."""
    import tvm
    from tvm import topi
    from tvm.relax import PyExprMutator, expr_functor

    @expr_functor.mutator
    class _FastMath(PyExprMutator):  # type: ignore[misc]
        def visit_call_(self, call: Any) -> Any:
            if isinstance(call.op, tvm.ir.Op):
                if call.op.name == "relax.nn.gelu":
                    return self.builder_.call_te(_fast_gelu, call.args[0])
                if call.op.name == "relax.nn.softmax":
                    return self.builder_.call_te(
                        topi.nn.fast_softmax, call.args[0], int(call.attrs.axis)
                    )
            return super().visit_call_(call)

    m = _FastMath(mod)
    for gv, func in mod.functions_items():
        if isinstance(func, tvm.relax.Function):
            m.builder_.update_func(gv, m.visit_expr(func))
    return m.builder_.get()


class TvmArtifact(Artifact):
    """A Relax executable on a (local or remote) device, run through the Relax VM."""

    def __init__(self, lib: Any, dev: Any, inputs: tuple[np.ndarray, ...]) -> None:
        import tvm
        from tvm import relax

        self.vm = relax.VirtualMachine(lib, dev)
        self.dev = dev
        self.args = [tvm.runtime.tensor(x, dev) for x in inputs]

    def run(self) -> None:
        self.vm["main"](*self.args)

    def output(self) -> np.ndarray:
        return np.asarray(self.vm["main"](*self.args).numpy())

    def time(self, cfg: EvalConfig) -> tuple[list[float], int]:
        return vm_time(self.vm, self.dev, self.args, cfg)


def vm_time(vm: Any, dev: Any, args: list[Any], cfg: EvalConfig) -> tuple[list[float], int]:
    """Time ``vm["main"](*args)`` on its device with TVM's evaluator, as ``cfg`` says: samples
    in ms (each at least ``min_repeat_ms`` when ``cfg.number`` is 0) and runs per sample."""
    for _ in range(cfg.warmup):
        vm["main"](*args)
    number = cfg.number or 1
    f = vm.time_evaluator(
        "main",
        dev,
        number=number,
        repeat=cfg.repeat,
        min_repeat_ms=int(cfg.min_repeat_ms) if cfg.number == 0 else 0,
    )
    res = f(*args)
    return [float(s) * 1e3 for s in res.results], number


class TvmUntunedBackend(Backend):
    name = "tvm-untuned"
    compiled = False
    label = "TVM Relax, UNTUNED (no schedules): not compiled latency, never report it as such"

    def __init__(self, threads: int = 2, target: Any = None) -> None:
        super().__init__(threads)
        os.environ.setdefault("TVM_NUM_THREADS", str(threads))
        self._target = target

    @property
    def tvm_target(self) -> Any:
        if self._target is None:
            self._target = host_target(self.threads)
        return self._target

    def compile(self, spec: Spec) -> tuple[Any, tuple[np.ndarray, ...]]:
        """Compile for this backend's target; returns (executable, inputs)."""
        import tvm

        mod, inputs = import_relax(spec)
        return tvm.compile(mod, target=self.tvm_target), inputs

    def export(self, spec: Spec, path: Path, fcompile: Any = None) -> tuple[Path, tuple]:
        """Compile and export a loadable library (``.so``, or ``.tar`` with no linker)."""
        ex, inputs = self.compile(spec)
        path.parent.mkdir(parents=True, exist_ok=True)
        if fcompile is None:
            ex.export_library(str(path))
        else:
            ex.export_library(str(path), fcompile=fcompile)
        return path, inputs

    def _build(self, spec: Spec, workdir: Path) -> Artifact:
        import tvm

        ex, inputs = self.compile(spec)
        return TvmArtifact(ex, tvm.cpu(), inputs)

    def target(self) -> str:
        return target_string(self.tvm_target)

    @staticmethod
    def versions() -> dict[str, str]:
        import tvm

        return {"tvm": tvm.__version__}


class UntunedWorkloadError(RuntimeError):
    """A spec needs workloads that the tuning database does not have."""


def default_tuning_dir(device: str | None = None) -> Path:
    """``$CANAO_TVM_DB``, else ``datasets_latency/<device>/tvm/tuning`` (this host by default)."""
    env = os.environ.get("CANAO_TVM_DB")
    if env:
        return Path(env)
    from canao.profiling.fingerprint import resolve_device

    return Path("datasets_latency") / resolve_device(device or "host") / "tvm" / "tuning"


class TvmBackend(TvmUntunedBackend):
    """TVM Relax compiled with the device's MetaSchedule tuning database.

    A spec whose workloads are all in the database compiles in about a second. One that is
    missing any is tuned first when ``tune_trials`` > 0 (``$CANAO_TVM_TUNE_TRIALS``), and
    otherwise fails with :class:`UntunedWorkloadError` (an error row): an untuned build is never
    mixed into a tuned dataset.
    """

    name = "tvm"
    compiled = True
    label = "TVM Relax + MetaSchedule tuning records"

    def __init__(
        self,
        threads: int = 2,
        target: Any = None,
        tuning_dir: Path | None = None,
        tune_trials: int | None = None,
    ) -> None:
        super().__init__(threads, target)
        self.tuning_dir = tuning_dir or default_tuning_dir()
        env_trials = os.environ.get("CANAO_TVM_TUNE_TRIALS", "0")
        self.tune_trials = int(env_trials) if tune_trials is None else tune_trials
        self._db: Any = None

    @property
    def db(self) -> Any:
        from canao.profiling.tuning import TuningDatabase

        if self._db is None:
            self._db = TuningDatabase(self.tuning_dir, create=self.tune_trials > 0)
        return self._db

    def compile(self, spec: Spec) -> tuple[Any, tuple[np.ndarray, ...]]:
        from canao.profiling.tuning import compile_tuned, plan, tune_workload

        ex, inputs, missing = compile_tuned(spec, self.tvm_target, self.db)
        if missing and self.tune_trials > 0:
            todo, _ = plan([spec], self.tvm_target, self.db)
            for w in todo:
                work = Path(tempfile.mkdtemp(prefix="canao-tune-"))
                tune_workload(w, self.db, self.tvm_target, self.tune_trials, work)
                shutil.rmtree(work, ignore_errors=True)
            ex, inputs, missing = compile_tuned(spec, self.tvm_target, self.db)
        if missing:
            raise UntunedWorkloadError(
                f"untuned: {len(missing)} workloads not in {self.tuning_dir} "
                f"({', '.join(missing[:3])}{', ...' if len(missing) > 3 else ''}); "
                "run `canao tune` for this spec's grid"
            )
        return ex, inputs
