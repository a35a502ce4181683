"""Baselines kept for comparison, on the same features and the same log-latency target:
FLOPs-linear, random forest (nn-Meter's choice), MLP (HAT's 3x400), nearest neighbour."""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.ensemble import RandomForestRegressor
from sklearn.linear_model import LinearRegression
from sklearn.neighbors import KNeighborsRegressor
from sklearn.neural_network import MLPRegressor
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from canao.predictors.features import FEATURE_NAMES
from canao.predictors.predictor import NotFittedError, _as_frame

#: the dims a nearest-neighbour lookup matches on (in log space)
LOOKUP_DIMS = ("hidden", "heads", "head_dim", "ffn", "seq_len", "batch", "threads")


class _LogTarget(RegressorMixin, BaseEstimator):
    """Fits ``make()`` on (selected features, log latency); predicts milliseconds."""

    columns: tuple[str, ...] = FEATURE_NAMES
    log_inputs: bool = False

    def make(self) -> Any:
        raise NotImplementedError

    def _x(self, X: Any) -> np.ndarray:
        x = _as_frame(X)[list(self.columns)].to_numpy(dtype=np.float64)
        return np.log(np.maximum(x, 1e-9)) if self.log_inputs else x

    def fit(self, X: Any, y: Any) -> _LogTarget:
        self.model_ = self.make().fit(self._x(X), np.log(np.asarray(y, dtype=np.float64)))
        return self

    def predict(self, X: Any) -> np.ndarray:
        if not hasattr(self, "model_"):
            raise NotFittedError(f"{type(self).__name__} is not fitted")
        return np.exp(self.model_.predict(self._x(X)))


class FlopsLinear(_LogTarget):
    """latency = a * FLOPs^b (a straight line in log-log): the FLOPs proxy."""

    columns = ("total_gflop",)
    log_inputs = True

    def make(self) -> Any:
        return LinearRegression()


class RandomForest(_LogTarget):
    """nn-Meter's predictor family."""

    def __init__(self, n_estimators: int = 300, random_state: int = 0, n_jobs: int = 2) -> None:
        self.n_estimators = n_estimators
        self.random_state = random_state
        self.n_jobs = n_jobs

    def make(self) -> Any:
        return RandomForestRegressor(
            n_estimators=self.n_estimators, random_state=self.random_state, n_jobs=self.n_jobs
        )


class MLP(_LogTarget):
    """HAT's predictor: 3 hidden layers of 400, on standardised log features."""

    log_inputs = True

    def __init__(self, random_state: int = 0, max_iter: int = 600) -> None:
        self.random_state = random_state
        self.max_iter = max_iter

    def make(self) -> Any:
        return make_pipeline(
            StandardScaler(),
            MLPRegressor(
                hidden_layer_sizes=(400, 400, 400),
                max_iter=self.max_iter,
                early_stopping=True,
                random_state=self.random_state,
            ),
        )


class NearestNeighbour(_LogTarget):
    """Lookup: the latency of the closest measured block (log dims)."""

    columns = LOOKUP_DIMS
    log_inputs = True

    def make(self) -> Any:
        return KNeighborsRegressor(n_neighbors=1)


BASELINES: dict[str, type[_LogTarget]] = {
    "flops-linear": FlopsLinear,
    "random-forest": RandomForest,
    "mlp-hat": MLP,
    "nearest": NearestNeighbour,
}
