"""Evaluator settings and measurements that keep their raw samples."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class EvalConfig:
    """How one spec is timed: one frozen record, handed whole to every backend's timer.

    ``number`` runs make one sample (0: calibrated so that a sample lasts at least
    ``min_repeat_ms``); ``repeat`` samples make a measurement. A measurement whose coefficient
    of variation exceeds ``max_cv`` is taken again up to ``retries`` times; the steadiest
    attempt is kept and flagged ``noisy`` if it is still over the threshold.
    """

    warmup: int = 2
    number: int = 0
    repeat: int = 7
    min_repeat_ms: float = 40.0
    max_cv: float = 0.05
    retries: int = 2
    threads: int = 2
    timeout_s: float = 300.0

    def __post_init__(self) -> None:
        for name in ("warmup", "number", "retries"):
            if getattr(self, name) < 0:
                raise ValueError(f"EvalConfig.{name} must be >= 0")
        if self.repeat < 3:
            raise ValueError("EvalConfig.repeat must be >= 3 (spread needs samples)")
        if self.threads < 1:
            raise ValueError("EvalConfig.threads must be >= 1")
        if self.max_cv <= 0 or self.timeout_s <= 0 or self.min_repeat_ms < 0:
            raise ValueError("EvalConfig.max_cv and timeout_s must be > 0, min_repeat_ms >= 0")


@dataclass(frozen=True)
class Measurement:
    """Raw per-sample times in milliseconds; statistics are derived on demand."""

    samples_ms: tuple[float, ...]
    number: int = 1
    attempts: int = 1
    extra: dict[str, float] = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        if len(self.samples_ms) == 0:
            raise ValueError("a Measurement needs at least one sample")

    @property
    def median_ms(self) -> float:
        return float(np.median(self.samples_ms))

    @property
    def mean_ms(self) -> float:
        return float(np.mean(self.samples_ms))

    @property
    def iqr_ms(self) -> float:
        q1, q3 = np.percentile(self.samples_ms, [25, 75])
        return float(q3 - q1)

    @property
    def cv(self) -> float:
        """Coefficient of variation (std / mean) of the samples."""
        mean = self.mean_ms
        return float(np.std(self.samples_ms) / mean) if mean > 0 else math.inf

    def meets_confidence(self, max_cv: float) -> bool:
        return self.cv <= max_cv


def time_callable(fn: Callable[[], object], cfg: EvalConfig) -> tuple[list[float], int]:
    """Time ``fn`` as ``cfg`` says; returns (samples in ms, runs per sample)."""
    for _ in range(cfg.warmup):
        fn()
    number = cfg.number
    if number == 0:
        t0 = time.perf_counter()
        fn()
        once_ms = (time.perf_counter() - t0) * 1e3
        number = max(1, math.ceil(cfg.min_repeat_ms / max(once_ms, 1e-3)))
    samples = []
    for _ in range(cfg.repeat):
        t0 = time.perf_counter()
        for _ in range(number):
            fn()
        samples.append((time.perf_counter() - t0) * 1e3 / number)
    return samples, number


def measure_steady(
    timer: Callable[[EvalConfig], tuple[Sequence[float], int]], cfg: EvalConfig
) -> tuple[Measurement, bool]:
    """Measure, re-measure while too noisy; returns the steadiest attempt and a noisy flag."""
    best: Measurement | None = None
    for attempt in range(1, cfg.retries + 2):
        samples, number = timer(cfg)
        m = Measurement(tuple(float(x) for x in samples), number=number, attempts=attempt)
        if best is None or m.cv < best.cv:
            best = m
        if m.meets_confidence(cfg.max_cv):
            break
    assert best is not None
    best = Measurement(best.samples_ms, best.number, attempts=attempt)
    return best, not best.meets_confidence(cfg.max_cv)
