"""Adaptive sampling: measure where the predictor is unsure or wrong (nn-Meter's method).

Two sources, half of the batch each:

- *wrong*: out-of-fold predictions of the measured rows; rows off by more than ``threshold``
  (nn-Meter: 10%) are the seeds, and the unmeasured candidates nearest to them (in log
  dimensions) are picked;
- *unsure*: the spread (std of log predictions) of a small bootstrap ensemble over the
  candidates; the most disputed candidates are picked.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from sklearn.model_selection import KFold

from canao.predictors.features import DIMS, features_from_specs
from canao.predictors.predictor import LatencyPredictor
from canao.space import BlockSpec


def out_of_fold(X: pd.DataFrame, y: np.ndarray, params: dict, folds: int = 4) -> np.ndarray:
    pred = np.empty_like(y)
    for tr, va in KFold(folds, shuffle=True, random_state=0).split(X):
        pred[va] = LatencyPredictor(**params).fit(X.iloc[tr], y[tr]).predict(X.iloc[va])
    return pred


def ensemble_spread(
    X: pd.DataFrame, y: np.ndarray, Xc: pd.DataFrame, params: dict, members: int = 4
) -> np.ndarray:
    rng = np.random.default_rng(0)
    logs = []
    for m in range(members):
        idx = rng.integers(0, len(y), len(y))
        model = LatencyPredictor(**{**params, "random_state": m}).fit(X.iloc[idx], y[idx])
        logs.append(np.log(model.predict(Xc)))
    return np.std(logs, axis=0)


def _log_dims(X: pd.DataFrame) -> np.ndarray:
    return np.log(X[list(DIMS)].to_numpy(dtype=np.float64))


def select(
    X: pd.DataFrame,
    y: np.ndarray,
    candidates: Sequence[BlockSpec],
    k: int,
    threads: int,
    params: dict | None = None,
    threshold: float = 0.10,
) -> list[BlockSpec]:
    """``k`` candidates to measure next (distinct; half near wrong rows, half most unsure)."""
    params = params or {"n_estimators": 300}
    cand = list(candidates)
    Xc = features_from_specs(cand, threads)
    chosen: list[int] = []
    wrong = np.flatnonzero(np.abs(out_of_fold(X, y, params) / y - 1) > threshold)
    if len(wrong):
        dist = np.linalg.norm(_log_dims(Xc)[:, None, :] - _log_dims(X.iloc[wrong])[None], axis=2)
        nearest = np.argsort(dist.min(axis=1))
        chosen.extend(int(i) for i in nearest[: k // 2])
    spread = ensemble_spread(X, y, Xc, params)
    for i in np.argsort(-spread):
        if len(chosen) >= k:
            break
        if int(i) not in chosen:
            chosen.append(int(i))
    return [cand[i] for i in chosen]
