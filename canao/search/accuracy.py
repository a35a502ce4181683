"""Accuracy estimators: what the search maximises.

Contract: ``estimate(arch)`` returns a number in [0, 1], the same for the same ArchSpec, and
may be called from several threads. ``kind`` is ``"real"`` for an accuracy measured on a task's
dev split, ``"proxy"`` for a stand-in that is not an accuracy; every output of a search says
which one it used.
"""

from __future__ import annotations

import abc
import math
import threading
from typing import ClassVar

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

    def estimate(self, arch: ArchSpec) -> float:
        """Cached per architecture."""
        with self._lock:
            if arch.key in self._cache:
                self.hits += 1
                return self._cache[arch.key]
        value = float(self._estimate(arch))
        with self._lock:
            self._cache[arch.key] = value
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


ESTIMATORS: dict[str, type[CapacityProxy]] = {"capacity-proxy": CapacityProxy}
