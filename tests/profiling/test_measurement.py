from __future__ import annotations

import itertools
import time

import pytest

from canao.profiling.measurement import EvalConfig, Measurement, measure_steady, time_callable


def test_statistics_from_raw_samples() -> None:
    m = Measurement((1.0, 2.0, 3.0, 4.0, 100.0))
    assert m.median_ms == 3.0
    assert m.iqr_ms == 2.0
    assert m.mean_ms == 22.0
    assert m.cv == pytest.approx(39.0 / 22.0, rel=1e-3)
    assert not m.meets_confidence(0.05)
    assert Measurement((5.0, 5.0, 5.0)).meets_confidence(0.01)
    with pytest.raises(ValueError):
        Measurement(())


def test_eval_config_validation() -> None:
    with pytest.raises(ValueError, match="repeat must be >= 3"):
        EvalConfig(repeat=1)
    with pytest.raises(ValueError, match="threads"):
        EvalConfig(threads=0)


def test_time_callable_calibrates_number() -> None:
    calls = itertools.count()

    def fn() -> None:
        next(calls)
        time.sleep(0.001)

    cfg = EvalConfig(warmup=2, repeat=3, min_repeat_ms=10)
    samples, number = time_callable(fn, cfg)
    assert 3 <= number <= 10
    assert len(samples) == 3 and all(0.9 < s < 5 for s in samples)
    assert next(calls) == 2 + 1 + 3 * number


def test_noisy_measurement_is_retaken_then_flagged() -> None:
    attempts = []

    def noisy_timer(cfg: EvalConfig):
        attempts.append(1)
        return [1.0, 1.0, 3.0], 1

    m, noisy = measure_steady(noisy_timer, EvalConfig(retries=2, max_cv=0.05))
    assert len(attempts) == 3 and noisy and m.attempts == 3


def test_steady_after_retry_is_kept() -> None:
    results = iter([([1.0, 1.0, 3.0], 1), ([2.0, 2.0, 2.01], 1)])
    m, noisy = measure_steady(lambda cfg: next(results), EvalConfig(retries=3, max_cv=0.05))
    assert not noisy and m.attempts == 2 and m.median_ms == 2.0
