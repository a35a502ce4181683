"""Held-out evaluation of predictors on a latency dataset: splits, table, scatter plot."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from canao.predictors.features import DIMS, features_from_rows
from canao.predictors.metrics import error_metrics
from canao.profiling.store import StoreError, read_rows
from canao.space import ArchSpec, BlockSpec

#: dims whose top values are held out in the out-of-range split
OOR_DIMS = ("hidden", "ffn", "seq_len")


class DatasetError(ValueError):
    pass


def load_rows(
    path: Path,
    backend: str,
    device: str | None = None,
    threads: int | None = None,
    combine: str = "latest",
) -> pd.DataFrame:
    """Valid rows (no error) of one backend (and device, and thread count) under ``path``.
    Rows of several devices or thread counts are refused unless one is picked: a predictor
    is fitted for one device at one thread count. ``combine``: how repeated measurements of a
    key become one row (``latest`` or ``median``, see :func:`canao.profiling.store.read_rows`)."""
    try:
        df = read_rows(Path(path), combine)
    except StoreError as e:  # e.g. a retired.jsonl that is not one
        raise DatasetError(str(e)) from None
    if df.empty:
        raise DatasetError(f"{path}: no latency rows found")
    sel = (df["backend"] == backend) & df["error"].isna()
    if device is not None:
        sel &= df["device"] == device
    if threads is not None:
        sel &= df["threads"] == threads
    out = df[sel].reset_index(drop=True)
    if out.empty:
        have = df.groupby(["device", "backend", "threads"]).size()
        raise DatasetError(
            f"{path}: no rows for backend {backend!r}"
            + (f" on device {device!r}" if device else "")
            + (f" at {threads} threads" if threads is not None else "")
            + "; the dataset has "
            + ", ".join(f"{d}/{b} ({t} threads)" for d, b, t in have.index)
        )
    devices = out["device"].unique()
    if len(devices) > 1:
        raise DatasetError(
            f"{path}: rows from several devices ({', '.join(devices)}); pick one with --device"
        )
    counts = sorted(int(t) for t in out["threads"].unique())
    if len(counts) > 1:
        raise DatasetError(
            f"{path}: {devices[0]}/{backend} rows at several thread counts "
            f"({', '.join(map(str, counts))}); pick one with --threads"
        )
    return out


def parse_dataset_name(name: str) -> tuple[str, str, int, str | None]:
    """``(device, backend, threads, combine or None)`` of a dataset named
    ``device/backend/<threads>t[/combine]`` (as the benchmarks name them, e.g.
    ``intel-xeon-amx-2c/onnxruntime/2t/drift-median``)."""
    parts = name.split("/")
    if len(parts) not in (3, 4) or not parts[2].endswith("t") or not parts[2][:-1].isdigit():
        raise DatasetError(f"{name!r}: expected device/backend/<threads>t[/combine]")
    device, backend, threads, *combine = parts
    return device, backend, int(threads[:-1]), combine[0] if combine else None


def load_dataset(path: Path, name: str) -> pd.DataFrame:
    """:func:`load_rows` of a dataset named as :func:`parse_dataset_name` reads it."""
    device, backend, threads, combine = parse_dataset_name(name)
    return load_rows(path, backend, device, threads, combine or "latest")


def dataset_hash(df: pd.DataFrame) -> str:
    """A content hash of the rows a predictor was trained on (keys and medians)."""
    h = hashlib.sha256()
    for key, ms in sorted(zip(df["key"], df["median_ms"], strict=True)):
        h.update(f"{key}={ms:.6g};".encode())
    return h.hexdigest()[:16]


def canary_reference(df: pd.DataFrame) -> float | None:
    """The median canary time of the rows that carry one (ms), or None: the host speed that
    drift-corrected latencies refer to."""
    c = pd.to_numeric(df["canary_ms"], errors="coerce").dropna()
    c = c[c > 0]
    return float(c.median()) if len(c) else None


def drift_factors(df: pd.DataFrame, canary_ms: float | None) -> np.ndarray:
    """Per row, ``canary_ms / row canary``: the factor that brings a latency measured while the
    host ran at the row's canary speed to the reference speed (1 where the row has no canary,
    or with no reference)."""
    if canary_ms is None:
        return np.ones(len(df))
    c = pd.to_numeric(df["canary_ms"], errors="coerce").to_numpy(dtype=np.float64)
    return np.where(np.isfinite(c) & (c > 0), canary_ms / np.where(c > 0, c, 1.0), 1.0)


def blocks_xy(df: pd.DataFrame, canary_ms: float | None = None) -> tuple[pd.DataFrame, np.ndarray]:
    """Features and latencies (ms) of the block rows; with ``canary_ms``, latencies corrected
    for host drift to that canary speed (:func:`drift_factors`)."""
    blocks = df[df["kind"] == "block"].reset_index(drop=True)
    y = blocks["median_ms"].to_numpy(dtype=np.float64) * drift_factors(blocks, canary_ms)
    return features_from_rows(blocks), y


def block_specs(df: pd.DataFrame) -> list[BlockSpec]:
    """The BlockSpec of each row of ``df`` (block rows), in row order, at the row's ``dtype``
    where the frame has that column."""
    rows = df[list(DIMS)].to_numpy(dtype=np.int64).tolist()
    dtypes = df["dtype"].astype(str).tolist() if "dtype" in df else ["float32"] * len(rows)
    return [
        BlockSpec(h, n, d, f, s, b, dtype=t)
        for (h, n, d, f, s, b), t in zip(rows, dtypes, strict=True)
    ]


def model_rows(
    df: pd.DataFrame, canary_ms: float | None = None
) -> tuple[list[ArchSpec], np.ndarray, int]:
    """Whole-model rows: specs, latencies (ms, drift-corrected as in :func:`blocks_xy`),
    threads."""
    models = df[df["kind"] == "model"].reset_index(drop=True)
    archs = [ArchSpec.from_json(a) for a in models["arch"]]
    threads = int(models["threads"].iloc[0]) if len(models) else 2
    y = models["median_ms"].to_numpy(dtype=np.float64) * drift_factors(models, canary_ms)
    return archs, y, threads


def random_split(n: int, test_frac: float = 0.2, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    perm = rng.permutation(n)
    k = int(round(n * test_frac))
    return np.sort(perm[k:]), np.sort(perm[:k])


def out_of_range_split(
    X: pd.DataFrame, quantile: float = 0.9
) -> tuple[np.ndarray, np.ndarray, dict[str, float]]:
    """Train on rows whose hidden, FFN and seq_len are all at or below their ``quantile``;
    test on the rest (at least one dim larger than any seen in training)."""
    limits = {d: float(np.quantile(X[d], quantile)) for d in OOR_DIMS}
    inside = np.all([X[d].to_numpy() <= v for d, v in limits.items()], axis=0)
    return np.flatnonzero(inside), np.flatnonzero(~inside), limits


def cross_validated(
    X: pd.DataFrame,
    y: np.ndarray,
    make: Callable[[], Any],
    folds: int = 5,
    seeds: tuple[int, ...] = (0, 1, 2),
) -> list[dict[str, float]]:
    """Every row held out once: ``folds``-fold cross-validation, once per fold assignment
    (``seeds``); the metrics of each pass over all rows. A single held-out split of a few
    hundred rows reads a share within ±10% to about half a point either way; this uses all
    of them, several times over."""
    return [error_metrics(y, out_of_fold(X, y, make, folds, seed)) for seed in seeds]


def out_of_fold(
    X: pd.DataFrame, y: np.ndarray, make: Callable[[], Any], folds: int = 5, seed: int = 0
) -> np.ndarray:
    """Each row's prediction by a model (``make()``) fitted on the other folds' rows
    (``folds``-fold, the fold assignment shuffled by ``seed``)."""
    from sklearn.model_selection import KFold

    pred = np.empty(len(y))
    for tr, te in KFold(folds, shuffle=True, random_state=seed).split(X):
        pred[te] = make().fit(X.iloc[tr], y[tr]).predict(X.iloc[te])
    return pred


def transfer_score(
    source: Any,
    X: pd.DataFrame,
    y: np.ndarray,
    pick: np.ndarray,
    helpers: Sequence[Any] = (),
    boost: bool | None = None,
) -> tuple[np.ndarray, dict[str, float]]:
    """(the other rows, metrics on them) of ``source`` (a fitted ``LatencyPredictor``, left
    as it is) transferred, as ``canao train --transfer-from`` does, with the rows ``pick`` of
    ``X``, ``y`` and ``helpers`` (other sources) and ``boost`` as ``fit_transfer`` takes them."""
    import copy

    rest = np.setdiff1d(np.arange(len(y)), pick)
    model = copy.deepcopy(source).fit_transfer(X.iloc[pick], y[pick], helpers=helpers, boost=boost)
    return rest, error_metrics(y[rest], model.predict(X.iloc[rest]))


#: folds of :func:`cross_validated_transfer` (fewer where there are fewer blocks)
TRANSFER_CV_FOLDS = 10


def cross_validated_transfer(
    source: Any,
    X: pd.DataFrame,
    y: np.ndarray,
    folds: int = TRANSFER_CV_FOLDS,
    helpers: Sequence[Any] = (),
    boost: bool | None = None,
) -> dict[str, float] | None:
    """How well a transfer from ``source`` (a fitted ``LatencyPredictor``) to the device of the
    blocks ``X``, ``y`` predicts blocks it has not seen: each block predicted by a transfer
    fitted, as ``fit_transfer`` does, on the other folds' blocks (``folds``-fold). None below
    5 blocks (a fold's transfer needs at least 3). It is what the few blocks can say about
    the transfer's error before any other block is measured. ``helpers`` (other sources) and
    ``boost`` as ``fit_transfer`` takes them."""
    import copy

    if len(y) < 5:
        return None

    class _Transfer:
        def fit(self, Xt: pd.DataFrame, yt: np.ndarray) -> Any:
            return copy.deepcopy(source).fit_transfer(Xt, yt, helpers=helpers, boost=boost)

    return cross_validated(X, y, _Transfer, min(folds, len(y)), seeds=(0,))[0]


def pooled(passes: Sequence[Mapping[str, float]]) -> dict[str, float]:
    """The metrics of several :func:`cross_validated` passes as one: each one's mean, but the
    largest error is the worst pass's (a row badly predicted in one pass is not averaged away
    by the others)."""
    out = {k: float(np.mean([p[k] for p in passes])) for k in passes[0]}
    out["max_err"] = max(p["max_err"] for p in passes)
    return out


def cv_table(
    X: pd.DataFrame, y: np.ndarray, makers: Mapping[str, Callable[[], Any]], folds: int = 5
) -> pd.DataFrame:
    """Rows like :func:`compare`'s (split ``<folds>-fold cv``): each model's metrics with every
    row held out once, over three fold assignments (:func:`cross_validated`, :func:`pooled`;
    scikit-learn's ``KFold`` refuses fewer than 2 folds or more folds than rows)."""
    rows = []
    for name, make in makers.items():
        metrics = pooled(cross_validated(X, y, make, folds))
        train = len(y) - len(y) // folds
        rows.append({"split": f"{folds}-fold cv", "model": name, "train": train, **metrics})
    return pd.DataFrame(rows)


def compare(
    X: pd.DataFrame,
    y: np.ndarray,
    makers: Mapping[str, Callable[[], Any]],
    seed: int = 0,
) -> tuple[pd.DataFrame, dict[str, dict[str, np.ndarray]]]:
    """Fit every model on each split's training rows and score it on the held-out rows.

    Returns the metrics table (one row per split and model) and the held-out predictions.
    """
    tr, te = random_split(len(y), seed=seed)
    otr, ote, _ = out_of_range_split(X)
    splits = {"random": (tr, te), "out-of-range": (otr, ote)}
    rows, preds = [], {}
    for split, (a, b) in splits.items():
        preds[split] = {"measured": y[b]}
        for name, make in makers.items():
            model = make().fit(X.iloc[a], y[a])
            p = model.predict(X.iloc[b])
            preds[split][name] = p
            rows.append({"split": split, "model": name, "train": len(a), **error_metrics(y[b], p)})
    return pd.DataFrame(rows), preds


def format_table(table: pd.DataFrame) -> str:
    """A Markdown table of the metrics."""
    cols = [
        "split",
        "model",
        "train",
        "n",
        "rmspe",
        "mape",
        "acc5",
        "acc10",
        "max_err",
        "kendall_tau",
    ]
    head = "| " + " | ".join(cols) + " |"
    lines = [head, "|" + "---|" * len(cols)]
    for _, r in table.iterrows():
        lines.append(
            f"| {r['split']} | {r['model']} | {int(r['train'])} | {int(r['n'])} | "
            f"{r['rmspe']:.2f}% | {r['mape']:.2f}% | {r['acc5']:.1%} | {r['acc10']:.1%} | "
            f"{r['max_err']:.1f}% | {r['kendall_tau']:.3f} |"
        )
    return "\n".join(lines)


def scatter_png(
    preds: dict[str, dict[str, np.ndarray]], model: str, path: Path, title: str
) -> Path:
    """Predicted vs measured, log-log, one panel per split, with the ±10% band."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(preds), figsize=(5.2 * len(preds), 5), squeeze=False)
    for ax, (split, p) in zip(axes[0], preds.items(), strict=True):
        y, yhat = p["measured"], p[model]
        lo, hi = float(min(y.min(), yhat.min())) * 0.8, float(max(y.max(), yhat.max())) * 1.25
        grid = np.geomspace(lo, hi, 50)
        ax.fill_between(grid, grid * 0.9, grid * 1.1, color="tab:green", alpha=0.15, label="±10%")
        ax.plot(grid, grid, color="tab:green", lw=0.8)
        inside = np.abs(yhat / y - 1) <= 0.10
        ax.scatter(y[inside], yhat[inside], s=6, alpha=0.6, label="within ±10%")
        ax.scatter(y[~inside], yhat[~inside], s=14, color="tab:red", label="outside ±10%")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("measured latency (ms)")
        ax.set_ylabel("predicted latency (ms)")
        ax.set_title(f"{split}: {inside.mean():.1%} within ±10% (n={len(y)})")
        ax.legend(loc="upper left", fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
