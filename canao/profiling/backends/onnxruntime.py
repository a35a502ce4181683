"""ONNX Runtime: the stock runtime baseline (the role TFLite plays in the paper)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from canao.modeling import build_module
from canao.profiling.backends._base import Artifact, Backend, Spec
from canao.space import BlockSpec

ONNX_OPSET = 17


def export_onnx(spec: Spec, path: Path, seed: int = 0) -> tuple[Path, tuple[np.ndarray, ...]]:
    """Export the spec's module (random weights, seeded) to ``path``; returns the inputs."""
    module = build_module(spec, seed)
    inputs = module.example_inputs()
    names = ["hidden_states"] if isinstance(spec, BlockSpec) else ["input_ids", "attention_mask"]
    path.parent.mkdir(parents=True, exist_ok=True)
    with torch.inference_mode():
        torch.onnx.export(
            module,
            inputs,
            str(path),
            input_names=names,
            output_names=["output"],
            opset_version=ONNX_OPSET,
            dynamo=False,
        )
    return path, tuple(t.numpy() for t in inputs)


class OrtArtifact(Artifact):
    def __init__(self, path: Path, inputs: tuple[np.ndarray, ...], threads: int) -> None:
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.log_severity_level = 3
        self.path = path
        self.session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        names = [i.name for i in self.session.get_inputs()]
        self.feed = dict(zip(names, inputs, strict=True))

    def run(self) -> None:
        self.session.run(None, self.feed)

    def output(self) -> np.ndarray:
        return np.asarray(self.session.run(None, self.feed)[0])


class OnnxRuntimeBackend(Backend):
    name = "onnxruntime"
    label = "ONNX Runtime CPU (stock-runtime baseline)"

    def _build(self, spec: Spec, workdir: Path) -> Artifact:
        path, inputs = export_onnx(spec, workdir / "model.onnx")
        return OrtArtifact(path, inputs, self.threads)

    def target(self) -> str:
        return "onnxruntime-CPUExecutionProvider"

    @staticmethod
    def versions() -> dict[str, str]:
        import onnxruntime

        return {"onnxruntime": onnxruntime.__version__}
