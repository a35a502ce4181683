"""Accuracy of latency predictions: the metrics of nn-Meter and HELP, in one table."""

from __future__ import annotations

import numpy as np
from scipy import stats

#: Measured-latency bins (ms) for accuracy by latency range: the small blocks are the hard ones.
LATENCY_BINS_MS = (0.0, 0.1, 0.3, 1.0, 3.0, 10.0, 30.0, float("inf"))


def error_metrics(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    """RMSPE, MAPE, share within ±5% / ±10% (nn-Meter's accuracy), max error, rank
    correlations. Percentages are in percent; ``acc10`` etc. are shares in [0, 1]."""
    y_true = np.asarray(y_true, dtype=np.float64)
    y_pred = np.asarray(y_pred, dtype=np.float64)
    if y_true.shape != y_pred.shape or y_true.size == 0:
        raise ValueError("y_true and y_pred must be non-empty and of one shape")
    if np.any(y_true <= 0):
        raise ValueError("measured latencies must be > 0")
    rel = (y_pred - y_true) / y_true
    tau = stats.kendalltau(y_true, y_pred).statistic if y_true.size > 1 else np.nan
    rho = stats.spearmanr(y_true, y_pred).statistic if y_true.size > 1 else np.nan
    return {
        "n": float(y_true.size),
        "rmspe": float(np.sqrt(np.mean(rel**2)) * 100),
        "mape": float(np.mean(np.abs(rel)) * 100),
        "acc5": float(np.mean(np.abs(rel) <= 0.05)),
        "acc10": float(np.mean(np.abs(rel) <= 0.10)),
        "max_err": float(np.max(np.abs(rel)) * 100),
        "kendall_tau": float(tau),
        "spearman": float(rho),
    }
