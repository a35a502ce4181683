"""The latency predictor: XGBoost on block features, composed to whole models.

Target: log latency, optionally relative to an analytic base (a non-negative linear model of
the per-sub-operation FLOPs and bytes, fitted first), which keeps predictions sensible for
blocks larger than any seen in training, where trees alone cannot extrapolate. On tuned TVM
the base may instead be the device's own tuning records (``base="records"``: each block's
summed record times per kind, ``records.py``), which carry each shape's schedule, large
blocks' included.

Model latency = sum of block predictions + a fitted per-device overhead (embeddings, pooler,
head, per-call costs, weight traffic past the device's caches, a scale of the blocks' sum),
fitted on whole models measured end to end.

Persistence: XGBoost's own ``model.ubj`` plus ``meta.json`` (feature schema, device, backend,
dataset hash, library versions, metrics). Loading parses data only; it never runs code from
the files, and refuses a schema, backend or format mismatch with one clear message.
"""

from __future__ import annotations

import itertools
import json
import shutil
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pandas as pd
from scipy.optimize import nnls
from sklearn.base import BaseEstimator, RegressorMixin

from canao.predictors.features import (
    DIMS,
    FEATURE_NAMES,
    FEATURE_SCHEMA_HASH,
    BlockArrays,
    feature_frame,
    weights_mb,
)
from canao.predictors.records import (
    RECORD_KINDS,
    RECORDS_FORMAT,
    RecordsError,
    RecordsSource,
    RecordsTable,
    load_table,
    save_table,
)
from canao.predictors.transfer import (
    BOOSTED_PARAMS,
    MIN_BOOSTED_BLOCKS,
    MIN_RESIDUAL_BLOCKS,
    BoostedResidual,
    SmoothResidual,
    log_activations,
    log_attn_elems,
    read_booster,
    residual_design,
)
from canao.space import SUB_OPS, ArchSpec


class Source(Protocol):
    """What a transfer's other source offers: another device's ``LatencyPredictor``, or the
    target device's own tuning records (``records.RecordsSource``)."""

    def _check_fitted(self) -> None: ...

    def predict(self, X: Any) -> np.ndarray: ...

    def save(
        self, path: Path, meta: dict[str, Any] | None = None, overwrite: bool = False
    ) -> Path: ...


FORMAT = "canao-latency-predictor"
FORMAT_VERSION = 1
#: features of the analytic base: per-sub-operation work and traffic
BASE_FEATURES = tuple(f"{op}_{k}" for op in SUB_OPS for k in ("gflop", "mb"))
#: features of the records base (tuned TVM): a block's summed tuning-record times per kind
RECORDS_BASE_FEATURES = tuple(f"records_{k}_ms" for k in RECORD_KINDS)
#: what a predictor's log ratio is learnt to: the analytic base, the records base, nothing
BASES = ("nnls", "records", "none")
#: the folder of a saved predictor that holds its records base's table
BASE_RECORDS_FOLDER = "base-records"
#: features of the per-model overhead (whole model minus its blocks): per-call and embedding,
#: pooler and head costs, weight traffic, and the blocks' own sum. A block timed alone runs
#: again and again with its weights in the caches; in a whole model each layer's weights have
#: been evicted by the other layers' by the time it runs again, so the model pays for reading
#: its weights from further away: its encoder weights in MB, the part of each layer's weights
#: up to a layer cache size (what a lone block keeps in cache), and what exceeds a model cache
#: size. ``blocks_ms`` scales the sum of the lone blocks (a device that runs whole models
#: faster or slower than it ran their blocks alone). ``attention_scores_m`` (batch x heads x
#: seq_len^2 summed over the layers, in millions) is the work on the attention scores that a
#: whole model's attention mask adds and a lone block, timed without one, does not do (ONNX
#: Runtime's whole models on the Intel host: 92.6% within ±10% without it, 99.5% with it, in
#: ``benchmarks/predictors.py`` at commit 26b98b6). ``layer_tokens_k`` (batch x seq_len, in
#: thousands) and ``layer_activations_m`` (batch x seq_len x hidden, in millions), both summed
#: over the layers, are the per-layer work on the hidden states that a lone block does not
#: do: the mask applied in every layer, the hidden states handed from layer to layer through
#: the caches (Intel eager whole models: 98.7% within ±10% without them, 99.7% with them; the
#: Zen 5's MAPE 2.42% -> 2.11%, the Intel ONNX Runtime models' ±5% 91.5% -> 93.3%).
OVERHEAD_FEATURES = (
    "one",
    "num_layers",
    "tokens_x_hidden_m",
    "hidden_sq_m",
    "tokens",
    "attention_scores_m",
    "weights_mb",
    "layer_weights_cached_mb",
    "weights_beyond_cache_mb",
    "blocks_ms",
    "layer_tokens_k",
    "layer_activations_m",
)
#: the two cache sizes (MB) are the device's, chosen by ``fit_overhead`` from these grids
LAYER_CACHE_GRID_MB = (0.5, 1.0, 2.0, 4.0, 8.0, 16.0)
MODEL_CACHE_GRID_MB = (2.0, 3.0, 4.0, 6.0, 8.0, 12.0, 16.0, 24.0, 32.0, 48.0, 64.0)


#: fewer whole models than this: a transferred predictor's overhead is not rescaled
MIN_RESCALE_MODELS = 3
#: fewer than this: nor adjusted (``transfer_overhead``): leave-one-out on so few models is a
#: poor judge between fourteen ridged weights and two
MIN_ADJUST_MODELS = 10
#: the ridge penalties an adjusted overhead's departures from the rescaled one are tried with
#: (``adjust_overhead``; times each column's sum of squares, as ``_press_fit`` weighs them)
ADJUST_RIDGES = (1e-3, 1e-2, 0.1, 1.0, 10.0, 100.0, 1e4)
#: where a transferred predictor keeps the other sources of its remix (a predictor folder each)
OTHERS_FOLDER = "sources"
#: where a transferred predictor keeps its boosted residual (XGBoost's own format)
BOOSTED_FILE = "boosted-residual.ubj"
#: the descriptive fields of a predictor's meta.json that travel with it as another source
DESCRIBED = ("device", "backend", "threads", "dataset", "canary_ms", "metrics", "transfer")
#: what ``meta.json`` says of a tuning-records source (``canao train --records``)
RECORDS_DESCRIBED = ("source", "records", "table", "device")


#: what ``_measured_models`` says is short of whole models when rescaling
_RESCALING = "rescaling the overhead"


class PredictorFileError(ValueError):
    """A predictor folder that cannot be used: missing, corrupt, or of another schema."""


class NotFittedError(RuntimeError):
    pass


def _as_frame(X: Any) -> pd.DataFrame:
    if isinstance(X, pd.DataFrame):
        missing = [c for c in FEATURE_NAMES if c not in X.columns]
        if missing:
            raise ValueError(f"feature frame lacks {missing[:5]}... (use canao's features)")
        return X[list(FEATURE_NAMES)]
    arr = np.asarray(X, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[1] != len(FEATURE_NAMES):
        raise ValueError(f"X must have {len(FEATURE_NAMES)} feature columns, got {arr.shape}")
    return pd.DataFrame(arr, columns=list(FEATURE_NAMES))


#: the knee of the transfer calibration's hinge, log of the attention scores' elements (e^13.5:
#: about 3 MB of fp32 scores): one backend's ratio to another's can turn where the scores
#: outgrow a cache, as eager PyTorch's to ONNX Runtime's on the Intel host rises again past
#: it. Fixed, by ``benchmarks/calibration_knee.py``: a knee chosen per transfer, by
#: leave-one-out on its 50 blocks, followed their noise
CALIBRATION_KNEE = 13.5
#: features of the transfer calibration (intercept first; all in log space, centred; the last
#: the hinge, zero up to the knee, whose value its name holds: a saved transfer with another
#: knee is refused)
CALIBRATION_FEATURES = (
    "one",
    "log_source_ms",
    "log_total_flop",
    "log_intensity",
    "log_tokens",
    "log_activations",
    f"log_attn_over_{CALIBRATION_KNEE}",
)


def _calibration_design(X: pd.DataFrame, source_ms: np.ndarray) -> np.ndarray:
    cols = [
        np.ones(len(X)),
        np.log(source_ms),
        X["log_total_flop"].to_numpy() - 20.0,
        np.log(X["intensity"].to_numpy()) - 3.0,
        np.log(X["tokens"].to_numpy()) - 5.0,
        log_activations(X) - 10.0,
        np.maximum(log_attn_elems(X) - CALIBRATION_KNEE, 0.0),
    ]
    return np.stack(cols, axis=1)


#: how ``fit_transfer`` adapts a source predictor (see there)
TRANSFER_METHODS = ("ridge", "remix", "remix+ridge")
#: features of the transfer remix: the source prediction, the analytic base's, a constant (then
#: those of ``remix_features``: the other sources' predictions, when there are any)
REMIX_FEATURES = ("source_ms", *BASE_FEATURES, "one")


#: which of the analytic base's terms a remix may weigh (``fit_transfer``): ``costs``, every
#: sub-operation's FLOPs and bytes; ``bytes``, only their bytes (the FLOPs terms held at zero).
#: With other sources beside the first, their predictions already carry the compute, and nine
#: FLOPs weights more, fitted to 50 blocks, can follow the blocks' noise rather than the device
REMIX_TERMS = ("costs", "bytes")
ALL_TERMS, BYTES_TERMS = REMIX_TERMS


def remix_features(others: int) -> tuple[str, ...]:
    """The remix's features with ``others`` other sources (``fit_transfer``'s helpers)."""
    return (*REMIX_FEATURES, *(f"other_source_{i}_ms" for i in range(others)))


def _remix_columns(terms: str, width: int) -> np.ndarray:
    """Which of a remix design's ``width`` columns the ``terms`` form weighs (a mask)."""
    keep = np.ones(width, dtype=bool)
    if terms == BYTES_TERMS:
        keep[[REMIX_FEATURES.index(f) for f in BASE_FEATURES if f.endswith("_gflop")]] = False
    return keep


def _remix_design(
    X: pd.DataFrame, source_ms: np.ndarray, others_ms: np.ndarray | None = None
) -> np.ndarray:
    """One row of ``remix_features`` per block (``others_ms``: one column per other source)."""
    base = X[list(BASE_FEATURES)].to_numpy(dtype=np.float64)
    cols = [source_ms, base, np.ones(len(X))]
    return np.column_stack(cols if others_ms is None else [*cols, others_ms])


def _fit_transfer(
    method: str,
    A: np.ndarray,
    X: pd.DataFrame,
    src: np.ndarray,
    y: np.ndarray,
    alpha: float,
    terms: str = ALL_TERMS,
) -> tuple[np.ndarray | None, np.ndarray | None]:
    """(remix coefficients, calibration coefficients) of one transfer method; a remix of the
    ``bytes`` terms holds the FLOPs terms' coefficients at zero (``REMIX_TERMS``)."""
    from sklearn.linear_model import Ridge

    remix = None
    p = src
    if method.startswith("remix"):
        w = 1.0 / y
        keep = _remix_columns(terms, A.shape[1])
        remix = np.zeros(A.shape[1])
        remix[keep], _ = nnls(A[:, keep] * w[:, None], y * w)
        p = np.maximum(A @ remix, 1e-6)
    calib = None
    if method.endswith("ridge"):
        D = _calibration_design(X, p)
        calib = Ridge(alpha=alpha, fit_intercept=False).fit(D, np.log(y / p)).coef_
    return remix, calib


def _apply_transfer(
    X: pd.DataFrame,
    src: np.ndarray,
    remix: np.ndarray | None,
    calib: np.ndarray | None,
    residual: SmoothResidual | None = None,
    others_ms: np.ndarray | None = None,
    boosted: BoostedResidual | None = None,
) -> np.ndarray:
    """The transfer's stages in order: remix (of ``src`` and, where the remix has them, the
    other sources' predictions ``others_ms``), calibration, smooth residual, boosted
    residual."""
    p = src if remix is None else np.maximum(_remix_design(X, src, others_ms) @ remix, 1e-6)
    p = p if calib is None else p * np.exp(_calibration_design(X, p) @ calib)
    p = p if residual is None else p * np.exp(residual(residual_design(X, p)))
    return p if boosted is None else p * np.exp(boosted(X))


#: a transfer form (``fit_transfer``): method, with the other sources, the remix's terms
Form = tuple[str, bool, str]


def _loo_score(
    form: Form, designs: dict[bool, np.ndarray], X: pd.DataFrame, y: np.ndarray, alpha: float
) -> tuple[float, float]:
    """Leave-one-out (minus share within ±10%, mean |log error|) of a transfer form
    (``designs``: the remix design without and with the other sources)."""
    method, with_others, terms = form
    A = designs[with_others]
    src = A[:, 0]
    err = np.empty(len(y))
    for i in range(len(y)):
        k = np.arange(len(y)) != i
        remix, calib = _fit_transfer(method, A[k], X.iloc[k], src[k], y[k], alpha, terms)
        others = A[[i], len(REMIX_FEATURES) :]
        pred = _apply_transfer(X.iloc[[i]], src[[i]], remix, calib, others_ms=others)[0]
        err[i] = abs(np.log(pred / y[i]))
    return -float(np.mean(err <= np.log(1.1))), float(np.mean(err))


def _layers(archs: Sequence[ArchSpec]) -> tuple[BlockArrays, np.ndarray]:
    """Every layer of every ArchSpec as one BlockArrays, and where each arch's layers start."""
    dtypes = {a.dtype for a in archs}
    if len(dtypes) > 1:
        raise ValueError(f"ArchSpecs of several dtypes in one batch: {sorted(dtypes)}")
    counts = np.fromiter((a.num_layers for a in archs), dtype=np.int64, count=len(archs))
    per_arch = np.repeat([(a.hidden, a.seq_len, a.batch) for a in archs], counts, axis=0)
    per_layer = np.fromiter(
        (v for a in archs for x in a.layers for v in (x.heads, x.head_dim, x.ffn)), np.float64
    ).reshape(-1, 3)
    cols = {"hidden": per_arch[:, 0], "seq_len": per_arch[:, 1], "batch": per_arch[:, 2]}
    cols.update(heads=per_layer[:, 0], head_dim=per_layer[:, 1], ffn=per_layer[:, 2])
    return BlockArrays.from_columns(cols, dtypes.pop()), np.r_[0, np.cumsum(counts)[:-1]]


def overhead_features(
    archs: Sequence[ArchSpec], blocks_ms: Any, layer_cache_mb: float, model_cache_mb: float
) -> np.ndarray:
    """One row of ``OVERHEAD_FEATURES`` per ArchSpec, given each one's sum of block predictions
    (ms) and the two cache sizes (encoder weights from ``block_costs``, evaluated on all layers
    of all archs at once)."""
    if not archs:
        return np.zeros((0, len(OVERHEAD_FEATURES)))
    dims, starts = _layers(archs)
    layer_mb = weights_mb(dims)
    return _overhead_rows(
        dims, starts, layer_mb, np.asarray(blocks_ms), layer_cache_mb, model_cache_mb
    )


def _overhead_rows(
    dims: BlockArrays,
    starts: np.ndarray,
    layer_mb: np.ndarray,
    blocks_ms: np.ndarray,
    layer_cache_mb: float,
    model_cache_mb: float,
) -> np.ndarray:
    """OVERHEAD_FEATURES of each arch from its layers (``dims``, arch i's from ``starts[i]``;
    ``layer_mb``: their weights, :func:`~canao.predictors.features.weights_mb`)."""
    weights = np.add.reduceat(layer_mb, starts)
    cached = np.add.reduceat(np.minimum(layer_mb, layer_cache_mb), starts)
    n_layers = np.diff(np.r_[starts, len(dims.hidden)]).astype(np.float64)
    tokens = dims.tokens[starts]
    hidden = dims.hidden[starts]
    layer_tokens = n_layers * tokens
    return np.c_[
        np.ones(len(starts)),
        n_layers,
        tokens * hidden / 1e6,
        hidden**2 / 1e6,
        tokens,
        np.add.reduceat(dims.attn_elems, starts) / 1e6,
        weights,
        cached,
        np.maximum(weights - model_cache_mb, 0.0),
        blocks_ms,
        layer_tokens / 1e3,
        layer_tokens * hidden / 1e6,
    ]


def _press_fit(
    A: np.ndarray, r: np.ndarray, ridge: float | np.ndarray = 1e-3
) -> tuple[np.ndarray, np.ndarray]:
    """Ridge regression of ``r`` on ``A`` (each coefficient penalised by ``ridge``, or its own
    entry of it, times its column's sum of squares, so that nearly collinear columns cannot
    cancel out with huge coefficients), and its leave-one-out residuals (their mean square is
    the PRESS)."""
    gram = A.T @ A
    solve = np.linalg.pinv(gram + np.diag(ridge * np.diag(gram))) @ A.T
    coef = solve @ r
    leverage = np.einsum("ij,ji->i", A, solve)
    return coef, (A @ coef - r) / np.maximum(1.0 - leverage, 1e-9)


def _mean_square(residuals: np.ndarray) -> float:
    return float(np.mean(np.square(residuals)))


class LatencyPredictor(RegressorMixin, BaseEstimator):
    """Block latency (ms) from block features, scikit-learn style.

    Parameters are XGBoost's; ``base`` is ``"nnls"`` (learn the log ratio to a fitted
    analytic model), ``"records"`` (to a fitted mix of the device's own tuning records per
    block, ``records``: a table of ``canao records``; tuned TVM; a block outside it cannot be
    predicted) or ``"none"`` (learn log latency directly). The default trees, shallow
    and many (depth 4, 2,000), were chosen by ``benchmarks/hyperparams.py`` (its results are
    in ``benchmarks/results/hyperparams.md``); ``canao train --tune`` searches them per
    dataset.
    """

    #: set by fit_transfer (None when not transferred)
    calibration_: np.ndarray | None
    remix_: np.ndarray | None
    residual_: SmoothResidual | None
    boosted_: BoostedResidual | None
    #: the other sources whose predictions the remix mixes in (``fit_transfer``'s helpers)
    others_: list[Source]
    #: set by fit_overhead (None when not fitted): coefficients, (layer, model) cache MB
    overhead_coef_: np.ndarray | None
    overhead_cache_mb_: tuple[float, float]
    #: set with them by fit_overhead, transfer_overhead and the like (not saved): each fitted
    #: whole model's leave-one-out residual, relative (predicted without it / measured - 1)
    overhead_loo_: np.ndarray

    def __init__(
        self,
        n_estimators: int = 2000,
        max_depth: int = 4,
        learning_rate: float = 0.05,
        subsample: float = 0.8,
        colsample_bytree: float = 0.8,
        min_child_weight: float = 1.0,
        reg_lambda: float = 1.0,
        base: str = "nnls",
        random_state: int = 0,
        n_jobs: int = 2,
        records: pd.DataFrame | None = None,
    ) -> None:
        self.n_estimators = n_estimators
        self.max_depth = max_depth
        self.learning_rate = learning_rate
        self.subsample = subsample
        self.colsample_bytree = colsample_bytree
        self.min_child_weight = min_child_weight
        self.reg_lambda = reg_lambda
        self.base = base
        self.random_state = random_state
        self.n_jobs = n_jobs
        self.records = records

    # -- fitting -------------------------------------------------------------------------------
    def _xgb(self) -> Any:
        from xgboost import XGBRegressor

        return XGBRegressor(
            n_estimators=self.n_estimators,
            max_depth=self.max_depth,
            learning_rate=self.learning_rate,
            subsample=self.subsample,
            colsample_bytree=self.colsample_bytree,
            min_child_weight=self.min_child_weight,
            reg_lambda=self.reg_lambda,
            random_state=self.random_state,
            n_jobs=self.n_jobs,
            tree_method="hist",
        )

    def _base_design(self, X: pd.DataFrame) -> np.ndarray:
        """The base's features of the blocks ``X`` (RecordsError, for the records base, where
        a block is not in its table)."""
        if self.base == "records":
            return self.base_records_.times(X)
        return X[list(BASE_FEATURES)].to_numpy(dtype=np.float64)

    def _base_ms(self, X: pd.DataFrame) -> np.ndarray:
        if self.base == "none":
            return np.ones(len(X))
        A = self._base_design(X)
        return np.maximum(A @ self.base_coef_ + self.base_intercept_, 1e-6)

    def fit(self, X: Any, y: Any) -> LatencyPredictor:
        if self.base not in BASES:
            raise ValueError(f"base must be one of {', '.join(BASES)}, got {self.base!r}")
        if (self.base == "records") != (self.records is not None):
            raise ValueError("records= (a table of canao records) goes with base='records'")
        X = _as_frame(X)
        y = np.asarray(y, dtype=np.float64)
        if len(X) != len(y) or len(y) < 2:
            raise ValueError("X and y must have the same length, at least 2 rows")
        if np.any(~np.isfinite(y)) or np.any(y <= 0):
            raise ValueError("latencies must be finite and > 0")
        if self.records is not None:
            self.base_records_ = RecordsTable(self.records)
        if self.base != "none":
            A = self._base_design(X)
            # relative least squares (rows weighted by 1/y), intercept as a last column
            w = 1.0 / y
            coef, _ = nnls(np.c_[A, np.ones(len(y))] * w[:, None], y * w)
            self.base_coef_ = coef[:-1]
            self.base_intercept_ = float(coef[-1])
        # a refit drops any transfer, and the overhead fitted on the old block predictions
        self.calibration_ = self.remix_ = self.residual_ = self.boosted_ = None
        self.overhead_coef_ = None
        self.others_ = []
        model = self._xgb()
        model.fit(X.to_numpy(dtype=np.float32), np.log(y / self._base_ms(X)))
        self.booster_ = model.get_booster()
        self.n_features_in_ = len(FEATURE_NAMES)
        self.feature_names_in_ = np.asarray(FEATURE_NAMES, dtype=object)
        return self

    def _base_features(self) -> tuple[str, ...]:
        return RECORDS_BASE_FEATURES if self.base == "records" else BASE_FEATURES

    def _check_fitted(self) -> None:
        if not hasattr(self, "booster_"):
            raise NotFittedError("this LatencyPredictor is not fitted: call fit() or load()")

    def predict(self, X: Any) -> np.ndarray:
        """Predicted latency in milliseconds."""
        self._check_fitted()
        import xgboost as xgb

        X = _as_frame(X)
        dm = xgb.DMatrix(X.to_numpy(dtype=np.float32))
        ms = np.exp(self.booster_.predict(dm)) * self._base_ms(X)
        others = _predict_each(self.others_, X)  # none without a remix (fit_transfer, load)
        return _apply_transfer(
            X, ms, self.remix_, self.calibration_, self.residual_, others, self.boosted_
        )

    # -- transfer to a new device --------------------------------------------------------------
    def fit_transfer(
        self,
        X: Any,
        y: Any,
        alpha: float = 1.0,
        method: str = "auto",
        residual: bool = True,
        helpers: Sequence[Source] = (),
        boost: bool | None = None,
    ) -> LatencyPredictor:
        """Adapt this (source-device) predictor to a new device from a few measured blocks.

        ``ridge``: a ridge model of log(new / source prediction) on a few scale features.
        ``remix``: a non-negative relative least-squares mix of the source prediction and the
        per-sub-operation costs (the analytic base's features), so that a change of device that
        shifts the balance between sub-operations (threads, vector width) can be followed.
        ``remix+ridge``: both, in that order. ``auto``: the one with the best leave-one-out
        share within ±10% (then mean |log error|) on the given blocks, each remix form also
        with the sub-operations' bytes alone (``REMIX_TERMS``); ``transfer_method_`` and
        ``remix_terms_`` say which was chosen. Then, with ``residual`` and at least
        ``MIN_RESIDUAL_BLOCKS`` blocks, a smooth correction of what the form leaves
        (``transfer.SmoothResidual``); after it, a boosted correction of what it leaves
        (``transfer.BoostedResidual``, ``boosted_``): with ``boost`` None from
        ``MIN_BOOSTED_BLOCKS`` blocks on, unless the device's own tuning records are among the
        ``helpers`` (they carry the per-shape detail its stumps would chase, and it cost 0.2-0.8
        points into tuned TVM from four of five sources); True with the smooth residual, False
        never.
        ``helpers``: other fitted source predictors, whose predictions a remix may mix in
        beside this one's (``others_``; a new device that sits between known ones): ``auto``
        also weighs each remix form with them against it without them, by the same
        leave-one-out; a ridge leaves them out. A helper may also be the new device's own
        tuning records (``records.records_sources``: tuned TVM).
        """
        self._check_fitted()
        X = _as_frame(X)
        y = np.asarray(y, dtype=np.float64)
        if len(y) < 3:
            raise ValueError("transfer needs at least 3 measured blocks")
        if method not in (*TRANSFER_METHODS, "auto"):
            raise ValueError(f"method must be one of {', '.join(TRANSFER_METHODS)} or auto")
        for h in helpers:
            h._check_fitted()
        self.calibration_ = self.remix_ = self.residual_ = self.boosted_ = None
        self.others_ = []
        src = self.predict(X)
        others_ms = _predict_each(helpers, X)
        # (method, with the other sources, remix terms): a remix may leave the other sources
        # out, a ridge always does; the first best wins a tie, all its terms before bytes alone
        remixes = [m for m in TRANSFER_METHODS if m.startswith("remix")]
        forms: list[Form] = [(m, False, ALL_TERMS) for m in TRANSFER_METHODS]
        forms += [(m, True, ALL_TERMS) for m in remixes if helpers]
        forms += [(m, o, BYTES_TERMS) for m, o, _ in forms if m in remixes]
        designs = {False: _remix_design(X, src)}
        if helpers:
            designs[True] = _remix_design(X, src, others_ms)
        if method == "auto":
            form = min(forms, key=lambda f: _loo_score(f, designs, X, y, alpha))
        else:
            form = (method, bool(helpers) and method.startswith("remix"), ALL_TERMS)
        method, with_others, terms = form
        remix, calib = _fit_transfer(method, designs[with_others], X, src, y, alpha, terms)
        self.remix_, self.calibration_ = remix, calib
        self.transfer_method_ = method
        self.remix_terms_ = terms if remix is not None else None
        self.others_ = list(helpers) if with_others else []
        if residual and len(y) >= MIN_RESIDUAL_BLOCKS:
            p = _apply_transfer(X, src, remix, calib, others_ms=others_ms if with_others else None)
            self.residual_ = SmoothResidual.fit(residual_design(X, p), np.log(y / p))
            records = any(isinstance(h, RecordsSource) for h in helpers)
            if boost or (boost is None and len(y) >= MIN_BOOSTED_BLOCKS and not records):
                p = p * np.exp(self.residual_(residual_design(X, p)))
                self.boosted_ = BoostedResidual.fit(X, np.log(y / p))
        return self

    # -- whole models --------------------------------------------------------------------------
    def fit_overhead(self, archs: Sequence[ArchSpec], measured_ms: Any, threads: int) -> float:
        """Fit the per-device model overhead: measured - sum of block predictions, by relative
        (lightly ridged) least squares; the two cache sizes are the grid pair with the smallest
        leave-one-out error (``overhead_cache_mb_``). Returns that error (the mean squared
        relative leave-one-out residual)."""
        measured, dims, starts, blocks = self._measured_models(
            archs, measured_ms, threads, 2, "fit_overhead"
        )
        self.overhead_coef_ = None
        layer_mb = weights_mb(dims)  # once, not once per grid pair
        w = 1.0 / measured
        fits = {
            (lc, mc): _press_fit(
                _overhead_rows(dims, starts, layer_mb, blocks, lc, mc) * w[:, None],
                (measured - blocks) * w,
            )
            for lc in LAYER_CACHE_GRID_MB
            for mc in MODEL_CACHE_GRID_MB
        }
        self.overhead_cache_mb_ = min(fits, key=lambda k: _mean_square(fits[k][1]))
        self.overhead_coef_, self.overhead_loo_ = fits[self.overhead_cache_mb_]
        return _mean_square(self.overhead_loo_)

    def transfer_overhead(self, archs: Sequence[ArchSpec], measured_ms: Any, threads: int) -> str:
        """Carry a transferred predictor's whole-model overhead (its source device's, in that
        device's milliseconds) to the new device from a few whole models measured there: the
        source's rescaled (``rescale_overhead``: two weights) or adjusted (``adjust_overhead``:
        those two and twelve ridged departures), whichever has the smaller leave-one-out error
        on them; from fewer than ``MIN_ADJUST_MODELS``, rescaled. Returns which: ``rescaled``
        or ``adjusted``."""
        fit = self._measured_models(archs, measured_ms, threads, MIN_RESCALE_MODELS, _RESCALING)
        chosen, how = self._rescaled(*fit), "rescaled"
        if len(archs) >= MIN_ADJUST_MODELS:
            adjusted = self._adjusted(*fit)
            if _mean_square(adjusted[2]) < _mean_square(chosen[2]):
                chosen, how = adjusted, "adjusted"
        self.overhead_coef_, self.overhead_cache_mb_, self.overhead_loo_ = chosen
        return how

    def rescale_overhead(self, archs: Sequence[ArchSpec], measured_ms: Any, threads: int) -> float:
        """Carry a transferred predictor's whole-model overhead (its source device's) to the
        new device from a few whole models measured there: two non-negative weights, one on
        the blocks' sum (with the share of the overhead that scales with it) and one on the rest
        of the source's overhead, fitted by relative least squares. Twelve overhead weights
        cannot be fitted to a few models (``fit_overhead``), two can; the source's overhead
        as it stands is in the source device's milliseconds. Rewrites ``overhead_coef_``;
        returns the fit's mean squared relative leave-one-out residual."""
        fit = self._measured_models(archs, measured_ms, threads, MIN_RESCALE_MODELS, _RESCALING)
        self.overhead_coef_, self.overhead_cache_mb_, self.overhead_loo_ = self._rescaled(*fit)
        return _mean_square(self.overhead_loo_)

    def adjust_overhead(self, archs: Sequence[ArchSpec], measured_ms: Any, threads: int) -> float:
        """Carry a transferred predictor's whole-model overhead to the new device from some
        whole models measured there (at least ``MIN_ADJUST_MODELS``): the rescaled one's two
        weights (``rescale_overhead``) and a departure from it on each of the twelve overhead
        features, the departures ridged (``ADJUST_RIDGES``); the penalty and the two cache sizes
        are the ones with the smallest leave-one-out error (PRESS). A heavy penalty keeps the
        source's overhead rescaled, a light one fits the new device's afresh with the source's
        shape as two more features. Rewrites ``overhead_coef_`` and ``overhead_cache_mb_``;
        returns that error (the mean squared relative leave-one-out residual)."""
        fit = self._measured_models(
            archs, measured_ms, threads, MIN_ADJUST_MODELS, "adjusting the overhead"
        )
        self.overhead_coef_, self.overhead_cache_mb_, self.overhead_loo_ = self._adjusted(*fit)
        return _mean_square(self.overhead_loo_)

    def _source_overhead(self) -> tuple[np.ndarray, np.ndarray, int]:
        """The source's overhead coefficients, those with the blocks' sum's held at zero, and
        where the blocks' sum's is."""
        if self.overhead_coef_ is None:
            raise ValueError("the source predictor has no whole-model overhead to rescale")
        b = OVERHEAD_FEATURES.index("blocks_ms")
        rest = self.overhead_coef_.copy()
        rest[b] = 0.0
        return self.overhead_coef_, rest, b

    def _rescaled(
        self, measured: np.ndarray, dims: BlockArrays, starts: np.ndarray, blocks: np.ndarray
    ) -> tuple[np.ndarray, tuple[float, float], np.ndarray]:
        """(coefficients, cache sizes, leave-one-out residuals) of ``rescale_overhead``."""
        src, rest, b = self._source_overhead()
        A = _overhead_rows(dims, starts, weights_mb(dims), blocks, *self.overhead_cache_mb_)
        D = np.c_[blocks * (1.0 + src[b]), A @ rest]
        Dw, yw = D / measured[:, None], np.ones(len(measured))  # relative: rows / measured
        loo = [
            Dw[i] @ nnls(np.delete(Dw, i, axis=0), np.delete(yw, i))[0] - 1.0
            for i in range(len(yw))
        ]
        (scale_blocks, scale_rest), _ = nnls(Dw, yw)
        coef = rest * scale_rest
        coef[b] = scale_blocks * (1.0 + src[b]) - 1.0
        return coef, self.overhead_cache_mb_, np.array(loo)

    def _adjusted(
        self, measured: np.ndarray, dims: BlockArrays, starts: np.ndarray, blocks: np.ndarray
    ) -> tuple[np.ndarray, tuple[float, float], np.ndarray]:
        """(coefficients, cache sizes, leave-one-out residuals) of ``adjust_overhead``: the
        measured latency, relative, on the rescaled overhead's two columns (all but
        unpenalised) and the twelve overhead features (penalised: the departures), for each
        cache pair and penalty."""
        src, rest, b = self._source_overhead()
        layer_mb = weights_mb(dims)
        w = 1.0 / measured
        best: tuple[np.ndarray, tuple[float, float], np.ndarray] | None = None
        for cache in itertools.product(LAYER_CACHE_GRID_MB, MODEL_CACHE_GRID_MB):
            A = _overhead_rows(dims, starts, layer_mb, blocks, *cache)
            D = np.c_[blocks * (1.0 + src[b]), A @ rest, A] * w[:, None]
            for ridge in ADJUST_RIDGES:
                penalty = np.r_[1e-6, 1e-6, np.full(A.shape[1], ridge)]
                fit, loo = _press_fit(D, np.ones(len(w)), penalty)
                if best is None or _mean_square(loo) < _mean_square(best[2]):
                    coef = fit[1] * rest + fit[2:]
                    coef[b] += fit[0] * (1.0 + src[b]) - 1.0
                    best = (coef, cache, loo)
        assert best is not None
        return best

    def _measured_models(
        self, archs: Sequence[ArchSpec], measured_ms: Any, threads: int, minimum: int, what: str
    ) -> tuple[np.ndarray, BlockArrays, np.ndarray, np.ndarray]:
        """The checked measured latencies of ``archs`` (at least ``minimum``; ValueError
        naming ``what`` otherwise), their layers, where each arch's start, and each arch's sum
        of block predictions."""
        self._check_fitted()
        measured = np.asarray(measured_ms, dtype=np.float64)
        if len(measured) != len(archs) or len(archs) < minimum:
            raise ValueError(f"{what} needs as many measured latencies as archs, >= {minimum}")
        if np.any(~np.isfinite(measured)) or np.any(measured <= 0):
            raise ValueError("measured latencies must be finite and > 0")
        dims, starts = _layers(archs)
        return measured, dims, starts, np.add.reduceat(self._layer_ms(dims, threads), starts)

    def _layer_ms(self, dims: BlockArrays, threads: int) -> np.ndarray:
        """The predicted latency of every layer in ``dims`` (each distinct block once)."""
        columns = {d: getattr(dims, d) for d in DIMS}
        owner = pd.DataFrame(columns).groupby(list(DIMS), sort=False).ngroup().to_numpy()
        _, first = np.unique(owner, return_index=True)
        unique = BlockArrays.from_columns({d: c[first] for d, c in columns.items()}, dims.dtype)
        return self.predict(feature_frame(unique, float(threads)))[owner]

    def predict_archs(
        self, archs: Sequence[ArchSpec], threads: int, overhead: bool = True
    ) -> np.ndarray:
        """Whole-model latency (ms) for many ArchSpecs at once (blocks deduplicated); without
        ``overhead``, each one's sum of block predictions alone."""
        self._check_fitted()
        if not archs:
            return np.zeros(0)
        dims, starts = _layers(archs)
        sums = np.add.reduceat(self._layer_ms(dims, threads), starts)
        if overhead and self.overhead_coef_ is not None:
            layer_mb = weights_mb(dims)
            rows = _overhead_rows(dims, starts, layer_mb, sums, *self.overhead_cache_mb_)
            sums = sums + rows @ self.overhead_coef_
        return sums

    def predict_arch(self, arch: ArchSpec, threads: int) -> float:
        return float(self.predict_archs([arch], threads)[0])

    # -- persistence ---------------------------------------------------------------------------
    def save(self, path: Path, meta: dict[str, Any] | None = None, overwrite: bool = False) -> Path:
        """Write ``model.ubj`` and ``meta.json`` into the folder ``path``."""
        self._check_fitted()
        path = Path(path)
        if (path / "meta.json").exists() and not overwrite:
            raise FileExistsError(f"{path} already holds a predictor (use --overwrite)")
        path.mkdir(parents=True, exist_ok=True)
        self.booster_.save_model(str(path / "model.ubj"))
        for folder in (OTHERS_FOLDER, BASE_RECORDS_FOLDER):  # an overwritten predictor's
            if (path / folder).is_dir():
                shutil.rmtree(path / folder)
        (path / BOOSTED_FILE).unlink(missing_ok=True)
        if self.boosted_ is not None:
            self.boosted_.save(path / BOOSTED_FILE)
        if self.base == "records":
            save_table(self.base_records_.table, path / BASE_RECORDS_FOLDER)
        others = []  # each other source a folder of its own: a predictor, or a records table
        for i, helper in enumerate(self.others_):
            keep = RECORDS_DESCRIBED if isinstance(helper, RecordsSource) else DESCRIBED
            described = {k: v for k, v in getattr(helper, "meta_", {}).items() if k in keep}
            helper.save(path / OTHERS_FOLDER / str(i), described, overwrite=True)
            others.append({"folder": f"{OTHERS_FOLDER}/{i}", **described})
        overhead = _coef_block(OVERHEAD_FEATURES, self.overhead_coef_)
        if overhead is not None:
            overhead["layer_cache_mb"], overhead["model_cache_mb"] = self.overhead_cache_mb_
        info = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "feature_names": list(FEATURE_NAMES),
            "feature_schema": FEATURE_SCHEMA_HASH,
            "params": {k: v for k, v in self.get_params().items() if k != "records"},
            "base": None
            if self.base == "none"
            else {
                "features": list(self._base_features()),
                "coef": [float(c) for c in self.base_coef_],
                "intercept": self.base_intercept_,
                **({"records": BASE_RECORDS_FOLDER} if self.base == "records" else {}),
            },
            "overhead": overhead,
            "calibration": _coef_block(CALIBRATION_FEATURES, self.calibration_),
            "remix": _coef_block(remix_features(len(self.others_)), self.remix_),
            "residual": None if self.residual_ is None else self.residual_.to_dict(),
            "boosted_residual": None
            if self.boosted_ is None
            else {"file": BOOSTED_FILE, "features": "log1p", **BOOSTED_PARAMS},
            "other_sources": others,
            "versions": _versions(),
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            **(meta or {}),
        }
        (path / "meta.json").write_text(json.dumps(info, indent=2))
        return path

    @classmethod
    def load(cls, path: Path, backend: str | None = None) -> LatencyPredictor:
        """Load a saved predictor; refuses a wrong format, feature schema or backend."""
        path = Path(path)
        meta_path = path / "meta.json"
        if not meta_path.is_file():
            raise PredictorFileError(f"{path}: not a canao predictor (no meta.json)")
        try:
            meta = json.loads(meta_path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise PredictorFileError(f"{meta_path}: corrupt ({e})") from None
        if not isinstance(meta, dict) or meta.get("format") != FORMAT:
            raise PredictorFileError(f"{path}: not a canao predictor (format field)")
        if meta.get("format_version") != FORMAT_VERSION:
            raise PredictorFileError(
                f"{path}: predictor format {meta.get('format_version')}, this canao reads "
                f"{FORMAT_VERSION}"
            )
        if meta.get("feature_names") != list(FEATURE_NAMES):
            raise PredictorFileError(
                f"{path}: feature schema {meta.get('feature_schema')} differs from this "
                f"canao's {FEATURE_SCHEMA_HASH}; retrain it with `canao train`"
            )
        if backend is not None and meta.get("backend") != backend:
            raise PredictorFileError(
                f"{path}: trained for backend {meta.get('backend')!r}, not {backend!r}"
            )
        known = set(cls().get_params()) - {"records"}
        params = {k: v for k, v in (meta.get("params") or {}).items() if k in known}
        if params.get("base", "nnls") not in BASES:
            raise PredictorFileError(f"{meta_path}: unknown base {params['base']!r}")
        self = cls(**params)
        try:
            self.booster_ = read_booster(path / "model.ubj")
        except ValueError as e:
            raise PredictorFileError(f"{path / 'model.ubj'}: corrupt ({e})") from None
        self.n_features_in_ = len(FEATURE_NAMES)
        self.feature_names_in_ = np.asarray(FEATURE_NAMES, dtype=object)
        if self.base != "none":
            base = meta.get("base") or {}
            try:
                self.base_coef_ = np.asarray(base.get("coef", []), dtype=np.float64)
                self.base_intercept_ = float(base["intercept"])
            except (KeyError, TypeError, ValueError):
                self.base_coef_ = np.zeros(0)
            if tuple(base.get("features") or ()) != self._base_features() or (
                self.base_coef_.shape != (len(self._base_features()),)
            ):
                raise PredictorFileError(f"{meta_path}: analytic base is missing or malformed")
        if self.base == "records":
            try:
                self.records, _ = load_table(path / BASE_RECORDS_FOLDER)
            except RecordsError as e:
                raise PredictorFileError(f"{meta_path}: its records base: {e}") from None
            self.base_records_ = RecordsTable(self.records)
        overhead = meta.get("overhead")
        self.overhead_coef_ = None
        if overhead is not None:
            if tuple(overhead.get("features", ())) != OVERHEAD_FEATURES:
                raise PredictorFileError(
                    f"{meta_path}: its whole-model overhead has other features than this canao "
                    f"version's ({', '.join(OVERHEAD_FEATURES)}): retrain it (canao train)"
                )
            coef = np.asarray(overhead.get("coef", []), dtype=np.float64)
            cache = (overhead.get("layer_cache_mb"), overhead.get("model_cache_mb"))
            if coef.shape != (len(OVERHEAD_FEATURES),) or not all(
                isinstance(c, int | float) and c > 0 for c in cache
            ):
                raise PredictorFileError(f"{meta_path}: whole-model overhead is malformed")
            self.overhead_coef_ = coef
            self.overhead_cache_mb_ = (float(cache[0]), float(cache[1]))
        self.calibration_ = _coef_from(meta, "calibration", CALIBRATION_FEATURES, meta_path)
        self.others_ = _others_from(meta.get("other_sources") or [], path, meta_path)
        names = remix_features(len(self.others_))
        self.remix_ = _coef_from(meta, "remix", names, meta_path)
        if self.others_ and self.remix_ is None:
            raise PredictorFileError(f"{meta_path}: other sources without a remix")
        if self.remix_ is not None and np.any(self.remix_ < 0):
            raise PredictorFileError(f"{meta_path}: transfer remix is malformed (negative)")
        self.residual_ = None
        if meta.get("residual") is not None:
            try:
                self.residual_ = SmoothResidual.from_dict(meta["residual"])
            except ValueError as e:
                raise PredictorFileError(f"{meta_path}: transfer {e}") from None
        self.boosted_ = None
        boosted = meta.get("boosted_residual")
        if boosted is not None:
            # the file's name is fixed: a meta.json edited by hand cannot point elsewhere
            if not isinstance(boosted, dict) or boosted.get("file") != BOOSTED_FILE:
                raise PredictorFileError(f"{meta_path}: boosted_residual is malformed")
            if self.residual_ is None:
                raise PredictorFileError(f"{meta_path}: a boosted residual without a smooth one")
            try:
                self.boosted_ = BoostedResidual.load(path / BOOSTED_FILE)
            except ValueError as e:
                raise PredictorFileError(f"{path}: its boosted residual's {e}") from None
        self.meta_ = meta
        return self


def _predict_each(predictors: Sequence[Source], X: pd.DataFrame) -> np.ndarray | None:
    """Each source's latencies for the blocks ``X``, one column each (None for none)."""
    return np.column_stack([p.predict(X) for p in predictors]) if predictors else None


def _others_from(sources: Any, path: Path, meta_path: Path) -> list[Source]:
    """The other sources of a saved predictor's remix, loaded from their folders."""
    if not isinstance(sources, list) or not all(isinstance(s, dict) for s in sources):
        raise PredictorFileError(f"{meta_path}: other_sources is malformed")
    others: list[Source] = []
    for i, entry in enumerate(sources):
        folder = path / OTHERS_FOLDER / str(i)
        try:
            if entry.get("source") == RECORDS_FORMAT:
                others.append(RecordsSource.load(folder))
            else:
                others.append(LatencyPredictor.load(folder))
        except (PredictorFileError, RecordsError) as e:
            raise PredictorFileError(f"{meta_path}: its other source {i}: {e}") from None
    return others


def _coef_from(
    meta: dict[str, Any], key: str, names: Sequence[str], meta_path: Path
) -> np.ndarray | None:
    """The coefficients of one transfer part of ``meta`` (as :func:`_coef_block` wrote them), or
    None where it has none; PredictorFileError when they are malformed or name other features
    than this version's."""
    block = meta.get(key)
    if block is None:
        return None
    if not isinstance(block, dict):
        raise PredictorFileError(f"{meta_path}: transfer {key} is malformed")
    if tuple(block.get("features") or ()) != tuple(names):
        raise PredictorFileError(
            f"{meta_path}: its transfer {key} has other features than this canao version's "
            f"({', '.join(names)}): transfer it again (canao train --transfer-from)"
        )
    try:
        coef = np.asarray(block["coef"], dtype=np.float64)
    except (KeyError, TypeError, ValueError):
        raise PredictorFileError(f"{meta_path}: transfer {key} is malformed") from None
    if coef.shape != (len(names),) or not np.all(np.isfinite(coef)):
        raise PredictorFileError(f"{meta_path}: transfer {key} is malformed")
    return coef


def _coef_block(names: Sequence[str], coef: np.ndarray | None) -> dict[str, Any] | None:
    if coef is None:
        return None
    return {"features": list(names), "coef": [float(c) for c in coef]}


def _versions() -> dict[str, str]:
    import sklearn
    import xgboost

    import canao

    return {
        "canao": canao.__version__,
        "xgboost": xgboost.__version__,
        "sklearn": sklearn.__version__,
    }
