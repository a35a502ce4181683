"""Running a compiled folder: on this host, on an RPC device, or in ONNX Runtime.

Every runtime has ``logits(input_ids, attention_mask) -> (batch, labels)`` and
``time(cfg) -> (samples_ms, runs per sample)`` on fixed example inputs, so verification
measures TVM and the baseline runtime the same way.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from canao.compile.export import example_inputs, read_compiled
from canao.profiling.measurement import EvalConfig, time_callable


class TvmModel:
    """A compiled Relax executable on a (local or remote) device."""

    def __init__(self, lib: Any, dev: Any) -> None:
        from tvm import relax

        self.vm = relax.VirtualMachine(lib, dev)
        self.dev = dev

    def _args(self, ids: np.ndarray, mask: np.ndarray) -> list[Any]:
        import tvm

        return [
            tvm.runtime.tensor(np.ascontiguousarray(x, dtype="int64"), self.dev)
            for x in (ids, mask)
        ]

    def logits(self, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        return np.asarray(self.vm["main"](*self._args(ids, mask)).numpy())

    def time(self, cfg: EvalConfig, seq_len: int) -> tuple[list[float], int]:
        ids, mask = (t.numpy() for t in example_inputs(seq_len, n_tokens=seq_len // 2))
        from canao.profiling.backends.tvm import vm_time

        return vm_time(self.vm, self.dev, self._args(ids, mask), cfg)


class OrtModel:
    """The compiled folder's ``model.onnx`` in ONNX Runtime (the baseline)."""

    def __init__(self, path: Path, threads: int) -> None:
        from canao.profiling.backends.onnxruntime import OrtArtifact

        ids, mask = (t.numpy() for t in example_inputs(1))
        self.art = OrtArtifact(path, (ids, mask), threads)

    def logits(self, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        return np.asarray(
            self.art.session.run(
                None, {"input_ids": ids.astype(np.int64), "attention_mask": mask.astype(np.int64)}
            )[0]
        )

    def time(self, cfg: EvalConfig, seq_len: int) -> tuple[list[float], int]:
        ids, mask = (t.numpy() for t in example_inputs(seq_len, n_tokens=seq_len // 2))
        return time_callable(lambda: self.logits(ids, mask), cfg)


def load_local(folder: Path) -> TvmModel:
    import tvm

    read_compiled(folder)
    return TvmModel(tvm.runtime.load_module(str(folder / "model.so")), tvm.cpu())


def load_remote(folder: Path, tracker: tuple[str, int], key: str, timeout: int = 60) -> TvmModel:
    """Upload ``model.so`` to a device on the RPC tracker and load it there."""
    from tvm import rpc

    read_compiled(folder)
    remote = rpc.connect_tracker(*tracker).request(key, priority=1, session_timeout=timeout * 10)
    remote.upload(str(folder / "model.so"))
    lib = remote.load_module("model.so")
    model = TvmModel(lib, remote.cpu())
    model.session = remote  # type: ignore[attr-defined]  # keep the session alive
    return model


class Classifier:
    """Text in, label and latency out, through a compiled folder (the application)."""

    def __init__(self, folder: Path, model: TvmModel | None = None) -> None:
        from canao.compress.pretrained import load_tokenizer

        self.info = read_compiled(folder)
        self.model = model or load_local(folder)
        self.tokenizer = load_tokenizer()
        self.seq_len = int(self.info["seq_len"])
        labels = self.info.get("label_names") or []
        self.labels = [str(x) for x in labels]

    def encode(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        enc = self.tokenizer(
            texts,
            truncation=True,
            max_length=self.seq_len,
            padding="max_length",
            return_tensors="np",
        )
        return enc["input_ids"].astype(np.int64), enc["attention_mask"].astype(np.int64)

    def logits(self, texts: list[str]) -> np.ndarray:
        """Logits per text (the module is batch 1: one call per text)."""
        ids, mask = self.encode(texts)
        return np.concatenate(
            [self.model.logits(ids[i : i + 1], mask[i : i + 1]) for i in range(len(texts))]
        )

    def label(self, index: int) -> str:
        return self.labels[index] if index < len(self.labels) else str(index)
