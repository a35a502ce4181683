"""Hyperparameters of the XGBoost predictor, tuned with Optuna by cross-validation."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sklearn.model_selection import KFold

from canao.predictors.metrics import error_metrics
from canao.predictors.predictor import LatencyPredictor

#: what ``tune`` may minimise: a key of :func:`~canao.predictors.metrics.error_metrics`
METRICS = ("rmspe", "mape")


def cv_score(
    params: dict[str, Any],
    X: pd.DataFrame,
    y: np.ndarray,
    folds: int,
    seed: int,
    metric: str = "rmspe",
) -> float:
    """Mean of ``metric`` over the held-out folds of ``folds``-fold CV (seeded)."""
    scores = []
    for tr, va in KFold(folds, shuffle=True, random_state=seed).split(X):
        model = LatencyPredictor(**params).fit(X.iloc[tr], y[tr])
        scores.append(error_metrics(y[va], model.predict(X.iloc[va]))[metric])
    return float(np.mean(scores))


def tune(
    X: pd.DataFrame,
    y: np.ndarray,
    n_trials: int = 30,
    folds: int = 3,
    seed: int = 0,
    base: str = "nnls",
    metric: str = "rmspe",
    records: pd.DataFrame | None = None,
) -> tuple[dict[str, Any], float]:
    """Best parameters by ``folds``-fold CV ``metric`` (one of ``METRICS``; TPE, seeded), the
    defaults tried first; returns (params, their CV score). ``base`` and ``records`` are
    passed on to every trial's predictor, and returned with the best parameters."""
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {METRICS}, got {metric!r}")
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)

    def objective(trial: optuna.Trial) -> float:
        params = {
            "n_estimators": trial.suggest_int("n_estimators", 200, 2000, log=True),
            "max_depth": trial.suggest_int("max_depth", 3, 10),
            "learning_rate": trial.suggest_float("learning_rate", 0.01, 0.3, log=True),
            "subsample": trial.suggest_float("subsample", 0.5, 1.0),
            "colsample_bytree": trial.suggest_float("colsample_bytree", 0.4, 1.0),
            "min_child_weight": trial.suggest_float("min_child_weight", 0.5, 20, log=True),
            "reg_lambda": trial.suggest_float("reg_lambda", 1e-3, 10, log=True),
            "base": base,
            "records": records,
        }
        return cv_score(params, X, y, folds, seed, metric)

    study = optuna.create_study(direction="minimize", sampler=optuna.samplers.TPESampler(seed=seed))
    study.enqueue_trial({k: v for k, v in LatencyPredictor().get_params().items() if k in _TUNED})
    study.optimize(objective, n_trials=n_trials, show_progress_bar=True)
    return {**study.best_params, "base": base, "records": records}, float(study.best_value)


_TUNED = (
    "n_estimators",
    "max_depth",
    "learning_rate",
    "subsample",
    "colsample_bytree",
    "min_child_weight",
    "reg_lambda",
)
