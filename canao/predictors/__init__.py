"""Predictors: features, the XGBoost latency predictor, baselines, evaluation."""

from canao.predictors.features import FEATURE_NAMES, block_features, features_from_specs
from canao.predictors.metrics import error_metrics
from canao.predictors.predictor import LatencyPredictor, NotFittedError, PredictorFileError

__all__ = [
    "FEATURE_NAMES",
    "LatencyPredictor",
    "NotFittedError",
    "PredictorFileError",
    "block_features",
    "error_metrics",
    "features_from_specs",
]
