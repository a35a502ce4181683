"""Accuracy estimators: what the search maximises.

Contract: ``estimate(arch)`` returns a number in [0, 1], the same for the same ArchSpec, and
may be called from several threads. ``kind`` is ``"real"`` for an accuracy measured on a task's
dev split, ``"proxy"`` for a stand-in that is not an accuracy; every output of a search says
which one it used.
"""

from __future__ import annotations

import abc
import json
import math
import threading
from pathlib import Path
from typing import Any, ClassVar

from canao.space import ArchSpec


class AccuracyEstimator(abc.ABC):
    name: ClassVar[str]
    kind: ClassVar[str]

    def __init__(self) -> None:
        self._cache: dict[str, float] = {}
        self._lock = threading.Lock()
        self.hits = 0

    @abc.abstractmethod
    def _estimate(self, arch: ArchSpec) -> float: ...

    def cache_key(self, arch: ArchSpec) -> str:
        return arch.key

    def _stored(self, key: str, value: float) -> None:  # noqa: B027 (optional hook)
        """Called once per newly estimated architecture (for persistent caches)."""

    def estimate(self, arch: ArchSpec) -> float:
        """Cached per architecture."""
        key = self.cache_key(arch)
        with self._lock:
            if key in self._cache:
                self.hits += 1
                return self._cache[key]
        value = float(self._estimate(arch))
        with self._lock:
            if key not in self._cache:
                self._cache[key] = value
                self._stored(key, value)
        return value


class CapacityProxy(AccuracyEstimator):
    """NOT an accuracy: the share of the base model's encoder parameters kept, on a log scale
    (1.0 for the base). Monotone in capacity, which is all a search can use until a real
    estimator (fine-tuned teacher + inherited weights) is plugged in."""

    name = "capacity-proxy"
    kind = "proxy"

    def __init__(self, base: ArchSpec) -> None:
        super().__init__()
        self.base_params = sum(b.params for b in base.blocks())

    def _estimate(self, arch: ArchSpec) -> float:
        kept = sum(b.params for b in arch.blocks())
        return max(0.0, 1.0 + math.log(kept / self.base_params) / 10.0)


class InheritedAccuracy(AccuracyEstimator):
    """A real accuracy: the sub-network runs with weights inherited from an elastic base (a
    rewired, optionally supernet-trained teacher) on the task's dev split.

    Sequence length and batch do not change accuracy, so the cache key is the layer shapes.
    Results persist in ``<elastic>/accuracy-<split>.jsonl`` (one JSON object a line,
    appended), so later searches on the same base reuse them.
    """

    name = "inherited"
    kind = "real"

    def __init__(self, elastic_dir: str | Path, split: str = "dev") -> None:
        super().__init__()
        from canao.compress.data import load_task
        from canao.compress.elastic import ElasticBase
        from canao.compress.pretrained import load_tokenizer
        from canao.compress.train import encode_split

        self.dir = Path(elastic_dir)
        self.base = ElasticBase.load(self.dir)
        self.task = load_task(self.base.meta["task"])
        max_length = int(self.base.meta.get("max_length", 64))
        self.data = encode_split(load_tokenizer(), self.task.split(split), max_length)
        self.cache_path = self.dir / f"accuracy-{split}.jsonl"
        if self.cache_path.is_file():
            for line in self.cache_path.read_text().splitlines():
                try:
                    row = json.loads(line)
                    self._cache[row["key"]] = float(row["accuracy"])
                except (ValueError, KeyError, TypeError):
                    continue  # a torn last line after a crash

    def cache_key(self, arch: ArchSpec) -> str:
        return json.dumps([[x.heads, x.head_dim, x.ffn] for x in arch.layers])

    def _stored(self, key: str, value: float) -> None:
        with open(self.cache_path, "a") as f:
            f.write(json.dumps({"key": key, "accuracy": value}) + "\n")

    def _estimate(self, arch: ArchSpec) -> float:
        import torch

        from canao.compress.train import length_batches

        plan = self.base.plan(arch)
        correct = 0
        with torch.inference_mode():
            for idx in length_batches(self.data, 256):
                ids, mask, labels = self.data.batch(idx)
                logits, _ = self.base.model.run_plan(ids, mask, plan)
                correct += int((logits.argmax(1) == labels).sum())
        return correct / len(self.data)


def make_estimator(name: str, base: ArchSpec, elastic_dir: str | None = None) -> Any:
    """An estimator by name: ``capacity-proxy`` or ``inherited`` (needs ``elastic_dir``)."""
    if name == "capacity-proxy":
        return CapacityProxy(base)
    if name == "inherited":
        if not elastic_dir:
            raise ValueError("the inherited accuracy needs an elastic base (--elastic DIR)")
        est = InheritedAccuracy(elastic_dir)
        est.base.check(base)
        return est
    raise ValueError(f"unknown accuracy estimator {name!r}; choose one of: {', '.join(ESTIMATORS)}")


ESTIMATORS: dict[str, type[AccuracyEstimator]] = {
    "capacity-proxy": CapacityProxy,
    "inherited": InheritedAccuracy,
}
