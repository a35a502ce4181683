"""torch.compile (inductor): compiled PyTorch, on the CPU here and on CUDA GPUs where present.

On a GPU the timing uses CUDA events around ``number`` runs after a synchronisation, so that
asynchronous launches are not mistaken for finished work. A BERT block at batch 1 launches a few
dozen small kernels, and on a fast GPU their launch cost, not the GPU, sets the time (0.25-0.72
ms whatever the block on an H100); ``inductor-cudagraphs`` (``mode="reduce-overhead"``) captures
the block in a CUDA graph, replayed with one launch, so that the GPU's own time is measured.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import torch

from canao.modeling import build_module
from canao.profiling.backends._base import Artifact, Backend, Spec
from canao.profiling.measurement import EvalConfig, time_callable


class InductorArtifact(Artifact):
    def __init__(self, fn: Any, inputs: tuple[torch.Tensor, ...], device: torch.device) -> None:
        self.fn, self.inputs, self.device = fn, inputs, device

    def run(self) -> None:
        with torch.inference_mode():
            self.fn(*self.inputs)

    def output(self) -> np.ndarray:
        with torch.inference_mode():
            out = self.fn(*self.inputs)
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        return out.float().cpu().numpy()

    def time(self, cfg: EvalConfig) -> tuple[list[float], int]:
        if self.device.type != "cuda":
            return time_callable(self.run, cfg)
        return cuda_time(self.run, cfg, self.device)


def cuda_time(fn: Any, cfg: EvalConfig, device: torch.device) -> tuple[list[float], int]:
    """Samples (ms) from CUDA events; runs per sample calibrated like ``time_callable``."""
    for _ in range(cfg.warmup):
        fn()
    torch.cuda.synchronize(device)

    def timed(n: int) -> float:
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        for _ in range(n):
            fn()
        end.record()
        end.synchronize()
        return float(start.elapsed_time(end)) / n

    number = cfg.number or max(1, math.ceil(cfg.min_repeat_ms / max(timed(1), 1e-3)))
    return [timed(number) for _ in range(cfg.repeat)], number


class InductorBackend(Backend):
    name = "inductor"
    label = "PyTorch torch.compile (inductor); CUDA where a GPU is present"

    #: torch.compile's mode (None: the default)
    mode: str | None = None

    def __init__(self, threads: int = 2, device: str | None = None) -> None:
        super().__init__(threads)
        torch.set_num_threads(threads)
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))

    def _build(self, spec: Spec, workdir: Path) -> Artifact:
        torch._dynamo.reset()  # one spec, one graph: no stale guards from earlier specs
        module = build_module(spec).to(self.device)
        inputs = tuple(t.to(self.device) for t in module.example_inputs())
        fn = torch.compile(module, backend="inductor", dynamic=False, mode=self.mode)
        art = InductorArtifact(fn, inputs, self.device)
        art.run()  # compile now, so that the build time is the compile time
        return art

    def target(self) -> str:
        if self.device.type == "cuda":
            return f"inductor-cuda-{torch.cuda.get_device_name(self.device)}"
        return f"inductor-cpu-{torch.backends.cpu.get_cpu_capability().lower()}"

    @staticmethod
    def versions() -> dict[str, str]:
        return {"torch": torch.__version__}


class InductorGraphsBackend(InductorBackend):
    """torch.compile with CUDA graphs (``mode="reduce-overhead"``): a GPU-only backend."""

    name = "inductor-cudagraphs"
    label = "PyTorch torch.compile (inductor) with CUDA graphs, on a CUDA GPU"
    mode = "reduce-overhead"

    def __init__(self, threads: int = 2, device: str | None = None) -> None:
        super().__init__(threads, device)
        if self.device.type != "cuda":
            raise ValueError(f"{self.name}: device {self.device.type}: {self._why}")

    _why = "CUDA graphs need a CUDA GPU; on a CPU use --backend inductor"

    @classmethod
    def unavailable(cls) -> str | None:
        return None if torch.cuda.is_available() else f"{cls.name}: no CUDA GPU here ({cls._why})"

    def target(self) -> str:
        return f"{super().target()}-cudagraphs"
