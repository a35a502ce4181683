"""PyTorch eager: the framework as users run it, no compiler."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from canao.modeling import build_module
from canao.profiling.backends._base import Artifact, Backend, Spec


class TorchArtifact(Artifact):
    def __init__(self, module: torch.nn.Module, inputs: tuple[torch.Tensor, ...]) -> None:
        self.module, self.inputs = module, inputs

    def run(self) -> None:
        with torch.inference_mode():
            self.module(*self.inputs)

    def output(self) -> np.ndarray:
        with torch.inference_mode():
            return self.module(*self.inputs).float().numpy()


class EagerBackend(Backend):
    name = "eager"
    label = "PyTorch eager (no compiler)"

    def __init__(self, threads: int = 2) -> None:
        super().__init__(threads)
        torch.set_num_threads(threads)

    def _build(self, spec: Spec, workdir: Path) -> Artifact:
        module = build_module(spec)
        return TorchArtifact(module, module.example_inputs())

    def target(self) -> str:
        return f"torch-cpu-{torch.backends.cpu.get_cpu_capability().lower()}"

    @staticmethod
    def versions() -> dict[str, str]:
        return {"torch": torch.__version__}
