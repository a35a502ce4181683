"""TVM Relax, imported through ``torch.export``.

This issue's ``tvm-untuned`` backend schedules nothing (LegalizeOps + default lowering): its
latency is NOT compiled latency (about 100x slower than ONNX Runtime on a BERT-base layer) and
is labelled so everywhere. Tuned builds (MetaSchedule records) come with the ``tvm`` backend.
"""

from __future__ import annotations

import json
import os
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
    """Relax IRModule for the spec (weights as constants) and its inputs."""
    import torch
    from tvm.relax.frontend.torch import from_exported_program

    from canao.modeling import build_module

    module = build_module(spec, seed)
    inputs = module.example_inputs()
    ep = torch.export.export(module, inputs)
    mod = from_exported_program(ep, unwrap_unit_return_tuple=True)
    return mod, tuple(t.numpy() for t in inputs)


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
        for _ in range(cfg.warmup):
            self.run()
        number = cfg.number or 1
        f = self.vm.time_evaluator(
            "main",
            self.dev,
            number=number,
            repeat=cfg.repeat,
            min_repeat_ms=int(cfg.min_repeat_ms) if cfg.number == 0 else 0,
        )
        res = f(*self.args)
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
