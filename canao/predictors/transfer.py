"""Few-shot transfer helpers: which blocks to measure on a new device, and a smooth correction.

``transfer_picks`` chooses the blocks: the medoids of k-means clusters over candidate blocks,
in the source predictor's view of them (its latency, the weights' size, tokens, FLOPs,
intensity), so that 50 blocks cover it evenly rather than by chance. ``cover_picks`` chooses
the whole models that carry the source's overhead over (``transfer_overhead``): ones that span
their view, its extremes first.

``SmoothResidual`` is a Gaussian process (scikit-learn's, RBF with one length scale per feature
plus white noise) fitted to what the linear transfer forms leave: log(measured / transferred)
on those features and the activations' and attention scores' sizes (what the ONNX Runtime,
eager and tuned-TVM backends of one host differ by most). It follows what a few scale terms
cannot (a device's cache boundary, its thread scaling) while its length scales, at least one
standard deviation of each feature, keep it smooth enough for 50 points. It is stored as plain
numbers (the points and their weights) and evaluated with NumPy, so a saved predictor holds no
pickled object.

``BoostedResidual`` follows, from ``MIN_BOOSTED_BLOCKS`` blocks on, what the smooth residual
leaves on them: XGBoost stumps (few, damped) over every block feature, which sees what the smooth
residual's seven features do not (the FFN and attention widths, the dims' alignments: where a
new backend's kernels change). It is saved in XGBoost's own format beside the predictor."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from canao.predictors.features import FEATURE_NAMES
from canao.space import ArchSpec

#: features of the transfer picks (computed by ``pick_design``): the source predictor's view
PICK_FEATURES = (
    "log_pred_ms",
    "log1p_weights_mb",
    "log_tokens",
    "log_total_flop",
    "log_intensity",
)
#: features of the smooth residual (computed by ``residual_design``): the picks' view, and the
#: activations' and attention scores' sizes, along which backends on one host differ most
RESIDUAL_FEATURES = (*PICK_FEATURES, "log_activations", "log_attn_elems")
#: fewer measured blocks than this: no smooth residual (nothing to learn it from)
MIN_RESIDUAL_BLOCKS = 10
#: fewer than this: no boosted residual (from 10 blocks it follows their noise:
#: ``benchmarks/boosted_residual.py``, seven source -> target pairs of the shipped datasets,
#: reads -0.6 points within ±10% on their mean from 10 blocks, +0.1 from 20, +0.5 from 30 and
#: +0.8 from 50)
MIN_BOOSTED_BLOCKS = 30
#: the boosted residual's trees: stumps, few, a slow rate and a strong L2 penalty, so that 30-50
#: blocks move it only where several of them agree
BOOSTED_PARAMS: dict[str, Any] = {
    "n_estimators": 100,
    "max_depth": 1,
    "learning_rate": 0.05,
    "reg_lambda": 5.0,
}


def pick_design(X: pd.DataFrame, pred_ms: np.ndarray) -> np.ndarray:
    """One row of ``PICK_FEATURES`` per block (``X``: block features; ``pred_ms``: a prediction
    of its latency)."""
    return np.c_[
        np.log(pred_ms),
        np.log1p(X["weights_mb"].to_numpy(dtype=np.float64)),
        np.log(X["tokens"].to_numpy(dtype=np.float64)),
        X["log_total_flop"].to_numpy(dtype=np.float64),
        np.log(X["intensity"].to_numpy(dtype=np.float64)),
    ]


def log_activations(X: pd.DataFrame) -> np.ndarray:
    """log of a block's activation elements (tokens x hidden)."""
    return np.log(X["tokens"].to_numpy(dtype=np.float64) * X["hidden"].to_numpy(dtype=np.float64))


def log_attn_elems(X: pd.DataFrame) -> np.ndarray:
    """log of a block's attention score elements (batch x heads x seq_len²)."""
    return np.log(X["attn_elems"].to_numpy(dtype=np.float64))


def residual_design(X: pd.DataFrame, pred_ms: np.ndarray) -> np.ndarray:
    """One row of ``RESIDUAL_FEATURES`` per block."""
    return np.c_[pick_design(X, pred_ms), log_activations(X), log_attn_elems(X)]


def _standardised(Z: np.ndarray) -> np.ndarray:
    """Each column of ``Z`` centred and divided by its standard deviation (a constant one
    left at zero)."""
    return (Z - Z.mean(axis=0)) / (Z.std(axis=0) + 1e-12)


def transfer_picks(Z: np.ndarray, n: int, seed: int = 0) -> np.ndarray:
    """Indices of ``n`` rows of ``Z`` (``pick_design`` of the candidates) that cover it: the
    row nearest to each k-means centre (standardised features), each in its own cluster."""
    from sklearn.cluster import KMeans

    if n >= len(Z):
        return np.arange(len(Z))
    Zs = _standardised(Z)
    km = KMeans(n, n_init=1, random_state=seed).fit(Zs)
    d2 = ((Zs - km.cluster_centers_[km.labels_]) ** 2).sum(axis=1)
    order = np.lexsort((d2, km.labels_))  # by cluster, nearest to its centre first
    _, first = np.unique(km.labels_[order], return_index=True)
    return np.sort(order[first])


def model_pick_design(archs: Sequence[ArchSpec], blocks_ms: np.ndarray) -> np.ndarray:
    """One row per whole model of the view its picks cover: the log of its sum of block
    predictions, its layers, the log of its tokens and of its width."""
    return np.c_[
        np.log(blocks_ms),
        [a.num_layers for a in archs],
        np.log([a.seq_len * a.batch for a in archs]),
        np.log([a.hidden for a in archs]),
    ]


def cover_picks(Z: np.ndarray, n: int, seed: int = 0) -> np.ndarray:
    """Indices of ``n`` rows of ``Z`` (``model_pick_design`` of the candidates) that span it,
    in the order picked: from a random first one, each the farthest (standardised features)
    from all picked before it, so the extremes come early and any first k of them span it
    too. Whole models measured this way keep the overhead's fit from extrapolating."""
    if n >= len(Z):
        return np.arange(len(Z))
    Zs = _standardised(Z)
    picked = [int(np.random.default_rng(seed).integers(len(Z)))]
    dist = np.linalg.norm(Zs - Zs[picked[0]], axis=1)
    while len(picked) < n:
        picked.append(int(np.argmax(dist)))
        dist = np.minimum(dist, np.linalg.norm(Zs - Zs[picked[-1]], axis=1))
    return np.array(picked)


@dataclass
class SmoothResidual:
    """r(z) = offset + amplitude * sum_i alpha_i exp(-|(z' - p_i) / length_scale|^2 / 2), with
    z' = (z - center) / scale."""

    center: np.ndarray
    scale: np.ndarray
    length_scale: np.ndarray
    amplitude: float
    points: np.ndarray
    alpha: np.ndarray
    offset: float

    @classmethod
    def fit(cls, Z: np.ndarray, r: np.ndarray, seed: int = 0) -> SmoothResidual:
        import warnings

        from sklearn.exceptions import ConvergenceWarning
        from sklearn.gaussian_process import GaussianProcessRegressor
        from sklearn.gaussian_process.kernels import RBF, WhiteKernel
        from sklearn.gaussian_process.kernels import ConstantKernel as C

        center, scale = Z.mean(axis=0), Z.std(axis=0) + 1e-9
        offset = float(np.mean(r))
        kernel = C(1e-2, (1e-5, 1.0)) * RBF(np.ones(Z.shape[1]), (1.0, 100.0)) + WhiteKernel(
            1e-3, (1e-5, 1e-1)
        )
        gp = GaussianProcessRegressor(kernel, n_restarts_optimizer=2, random_state=seed)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            gp.fit((Z - center) / scale, r - offset)
        k = gp.kernel_.k1  # amplitude * RBF (the white noise adds nothing off the diagonal)
        return cls(
            center=center,
            scale=scale,
            length_scale=np.atleast_1d(np.asarray(k.k2.length_scale, dtype=np.float64)),
            amplitude=float(k.k1.constant_value),
            points=np.asarray(gp.X_train_, dtype=np.float64),
            alpha=np.asarray(gp.alpha_, dtype=np.float64).ravel(),
            offset=offset,
        )

    def __call__(self, Z: np.ndarray) -> np.ndarray:
        q = (Z - self.center) / self.scale / self.length_scale
        p = self.points / self.length_scale
        d2 = (q**2).sum(1)[:, None] + (p**2).sum(1)[None] - 2.0 * q @ p.T
        return self.offset + self.amplitude * np.exp(-0.5 * np.maximum(d2, 0.0)) @ self.alpha

    def to_dict(self) -> dict[str, Any]:
        return {
            "features": list(RESIDUAL_FEATURES),
            "center": self.center.tolist(),
            "scale": self.scale.tolist(),
            "length_scale": self.length_scale.tolist(),
            "amplitude": self.amplitude,
            "points": self.points.tolist(),
            "alpha": self.alpha.tolist(),
            "offset": self.offset,
        }

    @classmethod
    def from_dict(cls, d: Any) -> SmoothResidual:
        """Parse ``to_dict``'s output; ValueError when anything is missing or malformed."""
        if not isinstance(d, dict) or tuple(d.get("features", ())) != RESIDUAL_FEATURES:
            raise ValueError(
                "smooth residual has other features than this canao version's: transfer it "
                "again (canao train --transfer-from)"
            )
        try:
            k = len(RESIDUAL_FEATURES)
            out = cls(
                center=np.asarray(d["center"], dtype=np.float64),
                scale=np.asarray(d["scale"], dtype=np.float64),
                length_scale=np.asarray(d["length_scale"], dtype=np.float64),
                amplitude=float(d["amplitude"]),
                points=np.asarray(d["points"], dtype=np.float64),
                alpha=np.asarray(d["alpha"], dtype=np.float64),
                offset=float(d["offset"]),
            )
        except (KeyError, TypeError, ValueError) as e:
            raise ValueError(f"smooth residual is malformed ({e})") from None
        shapes_ok = (
            out.center.shape == out.scale.shape == out.length_scale.shape == (k,)
            and out.points.ndim == 2
            and out.points.shape[1] == k
            and out.alpha.shape == (len(out.points),)
        )
        values = [out.center, out.scale, out.length_scale, out.points, out.alpha]
        finite = all(np.all(np.isfinite(v)) for v in values)
        if not shapes_ok or not finite or np.any(out.scale <= 0) or np.any(out.length_scale <= 0):
            raise ValueError("smooth residual is malformed (shapes or values)")
        return out


def read_booster(path: Path) -> Any:
    """An XGBoost model file read as data (no code runs); ValueError with the first line of
    XGBoost's message when it is missing or corrupt."""
    import xgboost as xgb

    booster = xgb.Booster()
    try:
        booster.load_model(str(path))
    except xgb.core.XGBoostError as e:
        raise ValueError(str(e).splitlines()[0][:200]) from None
    return booster


def boosted_design(X: pd.DataFrame) -> np.ndarray:
    """The boosted residual's features: log1p of every block feature (``FEATURE_NAMES``; none
    is negative), as float32, XGBoost's own precision."""
    return np.log1p(X[list(FEATURE_NAMES)].to_numpy(dtype=np.float64)).astype(np.float32)


class BoostedResidual:
    """r(x) = the sum of ``BOOSTED_PARAMS``' stumps over ``boosted_design(x)``, fitted to a log
    ratio (measured / predicted) of a few blocks."""

    def __init__(self, booster: Any) -> None:
        self.booster = booster

    @classmethod
    def fit(cls, X: pd.DataFrame, r: np.ndarray, seed: int = 0) -> BoostedResidual:
        from xgboost import XGBRegressor

        model = XGBRegressor(**BOOSTED_PARAMS, random_state=seed, n_jobs=1, tree_method="hist")
        return cls(model.fit(boosted_design(X), r).get_booster())

    def __call__(self, X: pd.DataFrame) -> np.ndarray:
        import xgboost as xgb

        out = self.booster.predict(xgb.DMatrix(boosted_design(X)))
        return np.asarray(out, dtype=np.float64)

    def save(self, path: Path) -> None:
        self.booster.save_model(str(path))

    @classmethod
    def load(cls, path: Path) -> BoostedResidual:
        """Read ``save``'s file (XGBoost's own format; no code runs); ValueError when it is
        missing, corrupt or made for other features."""
        try:
            booster = read_booster(path)
        except ValueError as e:
            raise ValueError(f"{path.name} is missing or corrupt ({e})") from None
        if booster.num_features() != len(FEATURE_NAMES):
            raise ValueError(f"{path.name} has other features than this canao version's")
        return cls(booster)
