"""The latency store: append-only Parquet shards under ``<root>/<device>/<backend>/``.

Every measured row is first appended to a journal (``_journal.jsonl``, flushed and fsynced
per row); every ``flush_every`` rows, and on close, the journal is folded into a new
compressed Parquet shard (written to a temporary name, fsynced, renamed) and removed. A run
killed at any moment therefore loses at most the spec in flight: the next open folds what the
journal holds, skipping keys that a shard already has, so no row is lost or duplicated.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import time
import warnings
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

JOURNAL = "_journal.jsonl"
LOCK = ".lock"
#: a store folder's retirements (:func:`retire`): rows measured before a cutoff, kept on disk,
#: that no reader sees
RETIRED = "retired.jsonl"
#: a compaction in progress (:meth:`LatencyStore.compact`): its shard and the shards it replaces
COMPACTING = ".compact.json"
#: the store's shards (``part-<time>-<pid>-<rows>.parquet``); other Parquet files are not rows
SHARD_GLOB = "part-*.parquet"

_INT, _F, _S, _B = pa.int32(), pa.float64(), pa.string(), pa.bool_()

#: the row schema of every shard; a row is a dict with these keys
SCHEMA = pa.schema(
    [
        ("key", _S),
        ("kind", _S),  # "block" or "model"
        ("backend", _S),
        ("compiled", _B),  # False for latency that must not pass for compiled code
        ("hidden", _INT),
        ("heads", _INT),  # block rows only (models: see arch)
        ("head_dim", _INT),
        ("ffn", _INT),
        ("seq_len", _INT),
        ("batch", _INT),
        ("num_layers", _INT),
        ("dtype", _S),
        ("arch", _S),  # model rows: the ArchSpec JSON
        ("samples_ms", pa.list_(_F)),
        ("number", _INT),
        ("attempts", _INT),
        ("median_ms", _F),
        ("iqr_ms", _F),
        ("cv", _F),
        ("noisy", _B),
        ("build_s", _F),
        ("max_abs_err", _F),
        ("atol", _F),
        ("error", _S),
        ("threads", _INT),
        ("warmup", _INT),
        ("repeat", _INT),
        ("min_repeat_ms", _F),
        ("max_cv", _F),
        ("loadavg_1m", _F),
        ("canary_ms", _F),  # latest median of the run's canary block (host drift), if any
        ("timestamp", _S),
        ("device", _S),
        ("cpu_model", _S),
        ("isa", _S),
        ("cpu_count", _INT),
        ("affinity", _S),
        ("os", _S),
        ("python", _S),
        ("canao", _S),
        ("target", _S),
        ("torch", _S),
        ("onnxruntime", _S),
        ("tvm", _S),
    ]
)
COLUMNS = tuple(SCHEMA.names)


class StoreError(RuntimeError):
    pass


class StoreLockedError(StoreError):
    pass


def _compaction(manifest: Path) -> tuple[Path, list[Path]]:
    """The shard a compaction (:meth:`LatencyStore.compact`) writes and the shards it replaces."""
    m = json.loads(manifest.read_text())
    return manifest.parent / m["shard"], [manifest.parent / n for n in m["replaces"]]


def shard_files(path: Path) -> list[Path]:
    """Parquet shards below ``path`` (one store folder, a device folder, or the root): the
    files the store writes (``part-*.parquet``), not other Parquet files kept beside them (a
    tuning folder's records tables); not the shards a compaction cut short has already
    replaced (its shard in place, theirs not yet removed)."""
    path = Path(path)
    if path.is_file() and path.suffix == ".parquet":
        return [path]
    replaced: set[Path] = set()
    for manifest in path.rglob(COMPACTING):
        shard, old = _compaction(manifest)
        if shard.exists():
            replaced.update(old)
    return sorted(p for p in path.rglob(SHARD_GLOB) if p not in replaced)


def _utc(stamp: str) -> pd.Timestamp:
    t = pd.Timestamp(stamp)
    return t.tz_localize("UTC") if t.tzinfo is None else t.tz_convert("UTC")


# the columns a retirement can narrow itself to (``retire(..., where=...)``): integers, then text
RETIRE_INT = ("hidden", "heads", "head_dim", "ffn", "seq_len", "batch", "num_layers", "threads")
RETIRE_TEXT = ("kind", "dtype")


def _where(where: Any) -> dict[str, str]:
    """A retirement's ``where`` checked: column -> value, every column one it can name and every
    integer column's value an integer (kept as its canonical text)."""
    if not isinstance(where, dict):
        raise ValueError("where is not a mapping")
    out: dict[str, str] = {}
    for col, value in where.items():
        if col in RETIRE_INT:
            try:
                out[col] = str(int(str(value), 10))
            except ValueError:
                raise ValueError(f"{col}={value}: {col} takes an integer") from None
        elif col in RETIRE_TEXT:
            out[col] = str(value)
        else:
            raise ValueError(
                f"{col!r} is not a column a retirement can name "
                f"({', '.join(RETIRE_INT + RETIRE_TEXT)})"
            )
    return out


def where_text(where: dict[str, str]) -> str:
    """A retirement's ``where`` as people write it: ``kind=block and hidden=512``."""
    return " and ".join(f"{c}={v}" for c, v in where.items())


def retirements(folder: Path) -> list[dict[str, Any]]:
    """The retirements of one store folder (:func:`retire`), oldest first."""
    path = Path(folder) / RETIRED
    if not path.exists():
        return []
    out = []
    with open(path) as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                entry = json.loads(line)
                _utc(entry["before"])
                if "after" in entry:
                    _utc(entry["after"])
                if "where" in entry:
                    entry["where"] = _where(entry["where"])
            except (json.JSONDecodeError, KeyError, TypeError, ValueError):
                raise StoreError(
                    f"{path}, line {n}: not a retirement ({line.strip()[:80]!r})"
                ) from None
            out.append(entry)
    return out


def _matches(rows: pd.DataFrame, where: dict[str, str]) -> np.ndarray:
    """Which of ``rows`` have every column of ``where`` at its value."""
    hit = np.ones(len(rows), dtype=bool)
    for col, value in where.items():
        if col in RETIRE_INT:
            hit &= (pd.to_numeric(rows[col], errors="coerce") == int(value)).to_numpy(dtype=bool)
        else:
            hit &= (rows[col].astype(str) == value).to_numpy(dtype=bool)
    return hit


def retired_mask(rows: pd.DataFrame, entries: list[dict[str, Any]]) -> np.ndarray:
    """Which of one store folder's ``rows`` its retirements ``entries`` retire: each retires the
    rows measured before its cutoff (and at or after its ``after``, where it has one) that
    match its ``where`` (all of them if it has none); a row with no timestamp is never
    retired."""
    out = np.zeros(len(rows), dtype=bool)
    if not entries or not len(rows):
        return out
    t = pd.to_datetime(rows["timestamp"], utc=True, errors="coerce")
    for e in entries:
        hit = (t < _utc(e["before"])).fillna(False).to_numpy(dtype=bool)
        if "after" in e:
            hit = hit & (t >= _utc(e["after"])).fillna(False).to_numpy(dtype=bool)
        out |= hit & _matches(rows, e.get("where", {}))
    return out


def _retirement_columns(entries: list[dict[str, Any]]) -> list[str]:
    """The columns :func:`retired_mask` reads for ``entries``."""
    return ["timestamp", *dict.fromkeys(c for e in entries for c in e.get("where", {}))]


def store_folders(path: Path) -> list[Path]:
    """The store folders (``<device>/<backend>``) that hold the shards below ``path``."""
    return sorted({p.parent for p in shard_files(path)})


def marked_rows(path: Path) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """Every row under ``path`` (shards and unfolded journals), re-measurements and retired rows
    included; for each, whether its store folder retired it (:func:`retire`), and that folder."""
    path = Path(path)
    frames = [(p.parent, pq.read_table(p).to_pandas()) for p in shard_files(path)]
    journals = [path] if path.name == JOURNAL else sorted(path.rglob(JOURNAL))
    for j in journals:
        rows = list(_read_journal(j))
        if rows:
            frames.append((j.parent, pa.Table.from_pylist(rows, schema=SCHEMA).to_pandas()))
    frames = [(f, df) for f, df in frames if len(df)]
    if not frames:
        empty = pd.DataFrame({c: pd.Series(dtype=object) for c in COLUMNS})
        return empty, np.zeros(0, dtype=bool), np.zeros(0, dtype=object)
    entries = {folder: retirements(folder) for folder in {f for f, _ in frames}}
    gone = np.concatenate([retired_mask(df, entries[f]) for f, df in frames])
    folders = np.concatenate([np.full(len(df), f, dtype=object) for f, df in frames])
    rows = pd.concat([df for _, df in frames], ignore_index=True).reindex(columns=list(COLUMNS))
    return rows, gone, folders


def read_all_rows(path: Path, retired: bool = False) -> pd.DataFrame:
    """Every row under ``path`` (shards and unfolded journals), re-measurements included, but not
    the rows their store folder retired (:func:`retire`) unless ``retired``."""
    rows, gone, _ = marked_rows(path)
    return rows if retired else rows[~gone].reset_index(drop=True)


def given_time(stamp: str) -> pd.Timestamp:
    """A time a person gave (:func:`_utc`), or StoreError saying it is not one."""
    try:
        return _utc(stamp)
    except ValueError:
        raise StoreError(f"{stamp!r} is not an ISO 8601 time (e.g. 2026-11-22T15:09:00Z)") from None


def retire(
    folder: Path,
    before: str,
    reason: str,
    where: dict[str, str] | None = None,
    after: str | None = None,
) -> tuple[int, int]:
    """Retire the rows of one store folder measured before ``before`` (an ISO 8601 time; UTC if
    it names no zone), or only those measured from ``after`` on (a sitting on a degraded host),
    or only those of them that match ``where`` (column -> value, e.g.
    ``{"hidden": "512"}``: the blocks of one grid whose tuning records changed): they stay on
    disk, and a line appended to the folder's ``retired.jsonl`` says which and why, but no
    reader sees them (:func:`read_all_rows`), and a key left with no other row counts as
    unmeasured, so ``canao profile`` measures it again. For rows that no longer describe the
    backend (its build settings changed since they were measured): unlike a re-measurement,
    which only :func:`latest` lets supersede them, they would otherwise stay in every median.
    Returns the rows this retirement covers (some may have been retired already) and the rows
    in the folder."""
    folder = Path(folder)
    if store_folders(folder) != [folder]:
        raise StoreError(f"{folder}: not a store folder (one <device>/<backend> folder of shards)")
    if not reason.strip():
        raise StoreError("say why the rows are retired (a reason)")
    cutoff = given_time(before)
    now = pd.Timestamp.now(tz="UTC")
    if cutoff > now:
        raise StoreError(f"{before} is in the future: only rows already measured can be retired")
    stamp = cutoff.strftime("%Y-%m-%dT%H:%M:%SZ")
    entry: dict[str, Any] = {"before": stamp, "reason": reason.strip()}
    if after is not None:
        start = given_time(after)
        if start >= cutoff:
            raise StoreError(f"--after {after} is not before --before {before}: an empty window")
        entry["after"] = start.strftime("%Y-%m-%dT%H:%M:%SZ")
    rows = read_all_rows(folder, retired=True)  # writing the entry leaves the rows as they are
    if where:
        try:
            entry["where"] = _where(where)
        except ValueError as e:
            raise StoreError(str(e)) from None
        if not _matches(rows, entry["where"]).any():
            said = where_text(entry["where"])
            raise StoreError(f"{folder}: no row has {said}; nothing to retire")
    entry["at"] = now.strftime("%Y-%m-%dT%H:%M:%SZ")
    with open(folder / RETIRED, "a") as f:
        f.write(json.dumps(entry) + "\n")
        f.flush()
        os.fsync(f.fileno())
    return int(retired_mask(rows, [entry]).sum()), len(rows)


def read_rows(path: Path, combine: str = "latest") -> pd.DataFrame:
    """All rows under ``path`` as one DataFrame, one per (device, backend, key): see
    :func:`latest`, :func:`median_of_repeats` and :func:`drift_median` (``combine``)."""
    if combine not in COMBINE:
        raise ValueError(f"combine must be one of {', '.join(COMBINE)}, not {combine!r}")
    df = read_all_rows(path)
    return COMBINE[combine](df) if len(df) else df


def latest(df: pd.DataFrame) -> pd.DataFrame:
    """One row per (device, backend, key): the latest successful measurement (a re-measurement,
    ``canao profile --remeasure``, supersedes the row it repeats; older rows stay on disk), or
    the latest error row where none succeeded. Row order otherwise kept."""
    if df.empty:
        return df.reset_index(drop=True)
    rank = pd.DataFrame(
        {"ok": df["error"].isna(), "t": df["timestamp"].fillna(""), "i": range(len(df))}
    )
    best = (
        rank.sort_values(["ok", "t", "i"])
        .groupby([df["device"], df["backend"], df["key"]], sort=False)["i"]
        .last()
    )
    keep = sorted(int(i) for i in best)
    return df.iloc[keep].reset_index(drop=True)


def median_of_repeats(df: pd.DataFrame) -> pd.DataFrame:
    """Like :func:`latest`, but ``median_ms`` is the median over every successful measurement
    of the key (``canao profile --remeasure all`` rounds of the same artifacts, taken minutes
    or hours apart): a single measurement's host noise is damped. The row's other fields are
    the latest measurement's."""
    out = latest(df)
    ok = df[df["error"].isna()]
    med = ok.groupby(["device", "backend", "key"], sort=False)["median_ms"].median()
    idx = pd.MultiIndex.from_frame(out[["device", "backend", "key"]])
    combined = med.reindex(idx).to_numpy()
    out["median_ms"] = np.where(np.isnan(combined), out["median_ms"], combined)
    return out


#: rows measured on each side of a row whose ratios to their keys' medians estimate the host's
#: speed when it was measured (:func:`host_speed`)
DRIFT_WINDOW = 25

#: passes of :func:`host_speed`, each with the keys' medians recomputed from the last
DRIFT_ITERATIONS = 3

#: the degree of the polynomial, in the log of a key's latency, that gives the exponent with
#: which the host's speed reaches the key (:func:`host_speed`): 1, a straight line
DRIFT_EXPONENT_DEGREE = 1

#: the rows of one group that measure the host's speed alike (:func:`host_speed`)
DRIFT_GROUP = ["device", "backend", "threads", "kind"]


def _drift_exponent(
    y: np.ndarray, keys: np.ndarray, factor: np.ndarray, degree: int | None
) -> np.ndarray:
    """Per row, the exponent with which the host's speed ``factor`` reached it: the least
    squares fit of each row's log latency over its key's median on ``log(factor)`` times a
    polynomial of degree ``degree`` in the log of the key's median (centred), over the keys
    measured at least three times; clipped to 0.25..4, and ones where too few rows fit or the
    host never moved."""
    if degree is None:
        return np.ones(len(y))
    lf = np.log(factor)
    by_key = pd.Series(y / factor).groupby(keys)
    med = by_key.transform("median").to_numpy()
    fit = by_key.transform("size").to_numpy() >= 3  # a median of fewer rows tells nothing
    if fit.sum() < 10 * (degree + 1) or float(np.sum(lf[fit] ** 2)) < 1e-12:
        return np.ones(len(y))
    z = np.log(med) - np.median(np.log(med))
    basis = np.stack([z**k for k in range(degree + 1)], axis=1)
    coef, *_ = np.linalg.lstsq(basis[fit] * lf[fit, None], np.log(y / med)[fit], rcond=None)
    return np.clip(basis @ coef, 0.25, 4.0)


def _host_drift(
    df: pd.DataFrame, window: int, iterations: int, degree: int | None
) -> Iterator[tuple[Any, pd.Index, np.ndarray, np.ndarray]]:
    """Per group of successful rows (:data:`DRIFT_GROUP`): its name, the rows' index in time
    order, the host's speed at each row and the exponent with which it reached the row."""
    ok = df[df["error"].isna()].sort_values("timestamp", kind="stable")
    for name, g in ok.groupby(DRIFT_GROUP, sort=False):
        y = g["median_ms"].to_numpy(dtype=np.float64)
        keys = g["key"].to_numpy()
        # a key measured once is its own median: its ratio of 1 says nothing of the host, so
        # each row's neighbours are the rows nearest it in time among the others
        told = g["key"].map(g["key"].value_counts()).to_numpy() > 1
        at: np.ndarray = np.cumsum(told) - told  # per row, the informative rows before it
        factor, beta = np.ones(len(y)), np.ones(len(y))
        for _ in range(iterations if told.any() else 0):
            med = pd.Series(y / factor**beta).groupby(keys).transform("median").to_numpy()
            ratio = (np.log(y / med) / beta)[told]  # padded for rows after the last of them:
            ratio = np.pad(ratio, (window, window + 1), constant_values=np.nan)
            near = np.lib.stride_tricks.sliding_window_view(ratio, 2 * window + 1)[at].copy()
            near[told, window] = np.nan  # not the row itself
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)  # a group of one row
                factor = np.exp(np.nanmedian(near, axis=1))
            factor = np.where(np.isfinite(factor) & (factor > 0), factor, 1.0)
            beta = _drift_exponent(y, keys, factor, degree)
        yield name, g.index, factor, beta


def host_speed(
    df: pd.DataFrame,
    window: int = DRIFT_WINDOW,
    iterations: int = DRIFT_ITERATIONS,
    degree: int | None = DRIFT_EXPONENT_DEGREE,
) -> pd.Series:
    """Per successful row, how much slower than usual the host made it, from the rows measured
    around it (same device, backend, thread count and kind, in time order; the row itself left
    out). The host's speed f at a row is the median, over the ``window`` rows before and the
    ``window`` after it, of each one's latency over its key's median (taken to the power of one
    over that row's exponent, below), iterated with the medians recomputed from the corrected
    latencies. Every row serves as a canary for its neighbours, so this needs repeated rounds
    (``--remeasure all``) visited in shuffled orders (``--shuffle``), where the neighbours of a
    key differ from round to round. A key measured once is left out of its neighbours' medians
    (its ratio to its own median is 1 and says nothing), and every row's neighbours are the
    ``window`` informative rows nearest it on either side, so new keys mixed into a round of
    stored ones (``--with-new``) are read against as many stored ones as any other row.

    The host's speed does not reach every key alike: on the shipped Intel VM a sitting that ran
    25% fast sped its small eager blocks up by more and its slow ones by less. So a row's
    factor is f ** beta, where the exponent beta is a polynomial of degree ``degree`` in the
    log of the key's latency, fitted per group by least squares of the rows' log latency over
    their keys' medians on log f (``degree=None``: beta is 1, one factor for every key)."""
    out = pd.Series(1.0, index=df.index[df["error"].isna()])
    for _, index, factor, beta in _host_drift(df, window, iterations, degree):
        out[index] = factor**beta
    return out


def drift_exponents(df: pd.DataFrame, degree: int | None = DRIFT_EXPONENT_DEGREE) -> pd.DataFrame:
    """Per group of successful rows (device, backend, threads, kind): its rows, and the
    exponent with which the host's speed reached its fastest row, its slowest row, and the
    median over its rows (:func:`host_speed`). Compare the fastest with the slowest: the
    level is partly the speed's own damping (each neighbour's ratio is to a median that holds
    some of the same drift), so a host that reaches every key alike can read above 1 for all
    of them (1.2-1.3 on the tests' synthetic host)."""
    out = []
    for name, index, _, beta in _host_drift(df, DRIFT_WINDOW, DRIFT_ITERATIONS, degree):
        ms = df.loc[index, "median_ms"].astype(np.float64).to_numpy()
        order = np.argsort(ms, kind="stable")
        out.append(
            dict(
                zip(DRIFT_GROUP, name, strict=True),
                rows=len(index),
                fastest=float(beta[order[0]]),
                median=float(np.median(beta)),
                slowest=float(beta[order[-1]]),
            )
        )
    return pd.DataFrame(out)


def drift_corrected_ms(df: pd.DataFrame, degree: int | None = DRIFT_EXPONENT_DEGREE) -> pd.Series:
    """Each successful row's ``median_ms`` divided by how much slower than usual the host made
    it when it was measured (:func:`host_speed`, ``degree``), indexed like those rows."""
    ok = df[df["error"].isna()]
    return ok["median_ms"].astype(np.float64) / host_speed(df, degree=degree)


def drift_median(df: pd.DataFrame, degree: int | None = DRIFT_EXPONENT_DEGREE) -> pd.DataFrame:
    """Like :func:`median_of_repeats`, each measurement first divided by how much slower than
    usual the host made it when it was taken (:func:`host_speed`; ``degree=None``: one factor
    for every key): the slow drift of a shared host, which a median of a few rounds only damps,
    is taken out of every round."""
    if df.empty:
        return latest(df)
    fixed = df.copy()
    corrected = drift_corrected_ms(df, degree)
    fixed.loc[corrected.index, "median_ms"] = corrected
    return median_of_repeats(fixed)


#: the standard error of the median of n draws is about 1.2533 sigma / sqrt(n) (normal
#: draws), and sigma is estimated robustly as the interquartile range over 1.349
MEDIAN_SE_PER_IQR = 1.2533 / 1.349


def unsettled_keys(df: pd.DataFrame, max_error: float, min_count: int = 3) -> set[str]:
    """Keys whose drift-corrected median (:func:`drift_median`) is not pinned down yet: measured
    successfully fewer than ``min_count`` times, or whose median's relative standard error is
    above ``max_error``. That error is estimated from the interquartile range of the key's
    measurements, each divided by the host's speed when it was taken
    (:func:`drift_corrected_ms`), over the square root of their count: it shrinks as rounds
    are added, so repeated rounds of the unsettled keys converge. Read raw, the host's slow
    drift between rounds makes nearly every key look unsettled; corrected, only the keys whose
    own rounds disagree do."""
    ms = drift_corrected_ms(df)
    fixed = ms.groupby(df.loc[ms.index, "key"])
    n = fixed.size()
    iqr = (fixed.quantile(0.75) - fixed.quantile(0.25)) / fixed.median()
    error: pd.Series = MEDIAN_SE_PER_IQR * iqr / np.sqrt(n)
    settled = error.index[(n >= min_count) & (error <= max_error)]
    return set(df["key"]) - set(settled)


COMBINE = {"latest": latest, "median": median_of_repeats, "drift-median": drift_median}


def _read_journal(path: Path) -> Iterator[dict[str, Any]]:
    with open(path) as f:
        for line in f:
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line cut by a crash: the spec that was in flight
            if isinstance(row, dict) and "key" in row:
                yield row


class LatencyStore:
    """Append-only rows for one (device, backend), resumable by key.

    One writer at a time (an exclusive lock on the folder); readers need no lock.
    """

    def __init__(self, root: Path, device: str, backend: str, flush_every: int = 200) -> None:
        self.path = Path(root) / device / backend
        self.flush_every = flush_every
        self._keys: set[str] | None = None
        self._pending = 0
        self._lock_fd: int | None = None
        self._journal: Any = None

    # -- lifecycle -----------------------------------------------------------------------------
    def open(self) -> LatencyStore:
        self.path.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path / LOCK, os.O_CREAT | os.O_RDWR, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise StoreLockedError(f"another process is writing to {self.path}") from None
        self._lock_fd = fd
        self._recover()
        self._journal = open(self.path / JOURNAL, "a")
        return self

    def close(self) -> None:
        if self._journal is not None:
            self._journal.close()
            self._journal = None
            self.flush()
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def __enter__(self) -> LatencyStore:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- reading -------------------------------------------------------------------------------
    def keys(self) -> set[str]:
        """Keys already stored (shards and journal), less those whose every row is retired
        (:func:`retire`)."""
        if self._keys is None:
            entries = retirements(self.path)
            columns = ["key", *_retirement_columns(entries)]
            keys: set[str] = set()
            for p in shard_files(self.path):
                t = pq.read_table(p, columns=columns).to_pandas()
                keys.update(t["key"][~retired_mask(t, entries)])
            if (self.path / JOURNAL).exists():
                keys.update(r["key"] for r in _read_journal(self.path / JOURNAL))
            self._keys = keys
        return self._keys

    def __contains__(self, key: str) -> bool:
        return key in self.keys()

    def __len__(self) -> int:
        return len(self.keys())

    def read(self) -> pd.DataFrame:
        return read_rows(self.path)

    # -- writing -------------------------------------------------------------------------------
    def append(self, row: dict[str, Any], remeasure: bool = False) -> bool:
        """Append one row durably; returns False (and writes nothing) if its key is stored,
        unless ``remeasure``: then the row is added beside the stored one and supersedes it
        when read (see :func:`latest`)."""
        if self._journal is None:
            raise StoreError("the store is not open (use it as a context manager)")
        missing = set(COLUMNS) - set(row)
        extra = set(row) - set(COLUMNS)
        if missing or extra:
            raise StoreError(f"row does not match the schema: missing {missing}, extra {extra}")
        if row["key"] in self.keys() and not remeasure:
            return False
        self._journal.write(json.dumps(row) + "\n")
        self._journal.flush()
        os.fsync(self._journal.fileno())
        self.keys().add(row["key"])
        self._pending += 1
        if self._pending >= self.flush_every:
            self._fold_journal()
        return True

    def fold(self) -> None:
        """Fold the rows appended so far into a shard; the store stays open for more."""
        if self._journal is None:
            raise StoreError("the store is not open (use it as a context manager)")
        self._fold_journal()

    def _fold_journal(self) -> None:
        """Fold the open journal into a shard and start a new one."""
        self._journal.close()
        self.flush()
        self._journal = open(self.path / JOURNAL, "a")

    def extend(self, rows: Iterable[dict[str, Any]]) -> int:
        return sum(self.append(r) for r in rows)

    def flush(self) -> Path | None:
        """Fold the journal into a new shard; returns the shard path (None if empty)."""
        journal = self.path / JOURNAL
        if not journal.exists():
            return None
        # a row is identified by (key, timestamp): re-measurements share the key
        shard_rows: set[tuple[str, str | None]] = set()
        for p in shard_files(self.path):
            t = pq.read_table(p, columns=["key", "timestamp"])
            keys, stamps = t.column("key").to_pylist(), t.column("timestamp").to_pylist()
            shard_rows.update(zip(keys, stamps, strict=True))
        rows, seen = [], set(shard_rows)
        for r in _read_journal(journal):
            ident = (r["key"], r.get("timestamp"))
            if ident not in seen:
                seen.add(ident)
                rows.append(r)
        shard = None
        if rows:
            stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
            n = len(shard_rows)
            shard = self.path / f"part-{stamp}-{os.getpid()}-{n:06d}.parquet"
            while shard.exists():  # never replace a shard (two flushes in one second)
                n += 1
                shard = self.path / f"part-{stamp}-{os.getpid()}-{n:06d}.parquet"
            tmp = _write_unnamed(pa.Table.from_pylist(rows, schema=SCHEMA), shard)
            os.replace(tmp, shard)
            _fsync_dir(self.path)
        journal.unlink()
        _fsync_dir(self.path)
        self._pending = 0
        return shard

    def compact(self) -> tuple[int, int, int, int]:
        """Fold every shard of the folder (retired rows included) into one, row for row: the
        same rows in the same order, read back and compared before the old shards go, which
        compresses far better than many shards of 200 rows. A crash leaves either the old
        shards or the new one to be read, never both (a manifest names what the new shard
        replaces; the next open finishes the job). Returns the shards and bytes before, the
        bytes after, and the rows."""
        self.fold()
        old = shard_files(self.path)
        before = sum(p.stat().st_size for p in old)
        tables = []
        for p in old:
            t = pq.read_table(p)
            for name in SCHEMA.names:  # shards written before a column existed
                if name not in t.column_names:
                    t = t.append_column(name, pa.nulls(t.num_rows, SCHEMA.field(name).type))
            tables.append(t.select(SCHEMA.names).cast(SCHEMA))
        rows = sum(t.num_rows for t in tables)
        if len(old) <= 1:
            return len(old), before, before, rows
        table = pa.concat_tables(tables)
        stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
        shard = self.path / f"part-{stamp}-{os.getpid()}-compact-{rows:06d}.parquet"
        if shard.exists():
            raise StoreError(f"{shard} exists: compact again in a second")
        tmp = _write_unnamed(table, shard)
        if not pq.read_table(tmp).equals(table):
            tmp.unlink()
            raise StoreError(f"{tmp}: the compacted shard does not read back as written")
        manifest = self.path / COMPACTING
        manifest.write_text(json.dumps({"shard": shard.name, "replaces": [p.name for p in old]}))
        with open(manifest, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, shard)
        _fsync_dir(self.path)
        self._finish_compaction()
        return len(old), before, shard.stat().st_size, rows

    def _finish_compaction(self) -> None:
        manifest = self.path / COMPACTING
        if not manifest.exists():
            return
        shard, old = _compaction(manifest)
        if shard.exists():  # in place: the shards it replaces go
            for p in old:
                p.unlink(missing_ok=True)
            _fsync_dir(self.path)
        manifest.unlink()  # else the new shard was never renamed: the old ones stay
        _fsync_dir(self.path)

    def _recover(self) -> None:
        for tmp in self.path.glob(".*.parquet.tmp"):
            tmp.unlink()  # a shard that was never renamed: its rows are still in the journal
        self._finish_compaction()
        self.flush()
        self._keys = None


def _write_unnamed(table: pa.Table, shard: Path) -> Path:
    """Write ``table`` durably under a hidden temporary name beside ``shard`` (a crash leaves
    it to :meth:`LatencyStore._recover`), to be renamed to ``shard``; returns that name."""
    tmp = shard.with_name("." + shard.name + ".tmp")
    pq.write_table(table, tmp, compression="zstd", compression_level=9)
    with open(tmp, "rb") as f:
        os.fsync(f.fileno())
    return tmp


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    with contextlib.suppress(OSError):
        os.fsync(fd)
    os.close(fd)
