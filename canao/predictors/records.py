"""A tuned-TVM device's own tuning records as a transfer source.

MetaSchedule's tuning database holds, for every tuned workload of a device, the time of its
best schedule. A block's compiled latency on tuned TVM depends on how good the schedules found
for its shapes happen to be, which no other device or backend predicts: from 50 blocks a
transfer from another predictor alone reaches about 68% within ±10% on the Intel host's
tuned-TVM blocks. The same luck is in the records, so the summed record times of a block's
workloads, by kind, are given to the transfer's remix as other sources beside the primary
predictor (``canao records`` writes the table, ``canao train --transfer-from P --records
FILE`` uses it). The times are those of each workload's best schedule timed again on one
thread, in rounds whose median is used (``tuning.retime_workload``), not the records' own.

Two kinds, which the remix weighs apart: ``linear`` (the dense matmuls with their bias
epilogue: QKV, attention output, FFN) and ``rest`` (attention's batched matmuls, softmax, GELU,
layer norms, data movement). A record is timed alone with its inputs in cache, so it is a
device's view of a shape's schedule, not the block's latency: the remix and the smooth residual
map one to the other.

A table is plain data (Parquet in, JSON in a predictor folder); nothing in it is executed.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from canao.errors import UsageError
from canao.predictors.features import DIMS

#: the kinds of workload whose record times are summed apart (:func:`workload_kind`)
RECORD_KINDS = ("linear", "rest")
#: a records table's columns: the block's dims, then the summed record times (ms) per kind
RECORDS_COLUMNS = (*DIMS, *(f"{k}_ms" for k in RECORD_KINDS))
#: the file a records source is saved in, inside a predictor's ``sources/<i>`` folder
RECORDS_FILE = "records.json"
RECORDS_FORMAT = "canao-tuning-records"


class RecordsError(UsageError, ValueError):
    """A records table that is malformed, or lacks blocks it is asked for (a ``UsageError``:
    every ``canao`` command reports it in one line, a search or a verify included)."""


def workload_kind(name: str) -> str:
    """``linear`` for a dense matmul with its bias epilogue (Relax fuses them into
    ``fused_matmul<i>_add<j>``), ``rest`` for every other workload."""
    return "linear" if name.startswith("fused_matmul") else "rest"


def records_table(
    blocks: Iterable[Any],
    tuning_dir: Path,
    target: Any,
    progress: bool = False,
    retime_threads: int | None = 1,
    rounds: int = 2,
) -> tuple[pd.DataFrame, list[Any]]:
    """Per BlockSpec, its workloads' times (ms, times each workload's count in the block)
    summed by kind; and the blocks left out because a workload has no record. With
    ``retime_threads``, each workload's best schedule is timed again on that many threads
    (``tuning.retime_workload``) until it has ``rounds`` re-timings, each round in its own
    shuffled order so that a slow spell of the host falls on other workloads each time, and
    their median is used. The re-timings are kept in the database's ``retimed.jsonl`` and
    reused: this is a measurement, to be run on a quiet host. None: the records' own times
    (``benchmarks/transfer_records.py`` compares them)."""
    from tqdm import tqdm

    from canao.profiling.tuning import (
        TuningDatabase,
        extract_workloads,
        read_retimed,
        retime_workload,
    )

    if rounds < 1:
        raise ValueError("rounds must be >= 1")
    db = TuningDatabase(Path(tuning_dir), create=False)
    tuned: list[tuple[Any, list[Any]]] = []  # (spec, its workloads)
    untuned: list[Any] = []
    for spec in tqdm(list(blocks), desc="workloads", unit="block", disable=not progress):
        ws = extract_workloads(spec, target)
        if all(db.tuned(w, target) for w in ws):
            tuned.append((spec, ws))
        else:
            untuned.append(spec)
    distinct = {w.key: w for _, ws in tuned for w in ws}
    if retime_threads is None:
        us = {k: db.best_us(w, target) or 0.0 for k, w in distinct.items()}
    else:
        times = read_retimed(Path(tuning_dir), retime_threads)
        for r in range(rounds):
            todo = [w for k, w in distinct.items() if len(times.get(k, ())) <= r]
            order = np.random.default_rng(r).permutation(len(todo))
            desc = f"re-timing, round {r + 1}/{rounds}"
            for i in tqdm(order, desc=desc, unit="workload", disable=not progress):
                w = todo[i]
                times.setdefault(w.key, []).append(retime_workload(w, db, target, retime_threads))
        us = {k: float(np.median(times[k])) for k in distinct}
    rows = []
    for spec, ws in tuned:
        sums = dict.fromkeys(RECORD_KINDS, 0.0)
        for w in ws:
            sums[workload_kind(w.name)] += w.weight * us[w.key] / 1e3
        rows.append([*(getattr(spec, d) for d in DIMS), *sums.values()])
    table = _checked(pd.DataFrame(rows, columns=list(RECORDS_COLUMNS)), "records")
    return table, untuned


def _checked(table: pd.DataFrame, where: str) -> pd.DataFrame:
    """``table`` with its dims as integers, one row per block; RecordsError if malformed."""
    missing = [c for c in RECORDS_COLUMNS if c not in table.columns]
    if missing:
        raise RecordsError(f"{where}: not a records table (no {', '.join(missing)} column)")
    out = table[list(RECORDS_COLUMNS)].copy()
    try:
        dims = out[list(DIMS)].to_numpy(dtype=np.float64)
        times = out[[f"{k}_ms" for k in RECORD_KINDS]].to_numpy(dtype=np.float64)
    except (TypeError, ValueError):
        raise RecordsError(f"{where}: a records table holds numbers only") from None
    if not np.all(np.isfinite(dims)) or np.any(dims < 1) or np.any(dims != np.round(dims)):
        raise RecordsError(f"{where}: block dims must be positive integers")
    if not np.all(np.isfinite(times)) or np.any(times < 0):
        raise RecordsError(f"{where}: record times must be finite and >= 0")
    out[list(DIMS)] = dims.astype(np.int64)
    if out.duplicated(list(DIMS)).any():
        raise RecordsError(f"{where}: a block appears twice")
    return out.reset_index(drop=True)


def read_records(path: Path) -> pd.DataFrame:
    """A records table written by ``canao records`` (Parquet)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(Path(path)).to_pandas()
    except (OSError, pa.ArrowException) as e:
        raise RecordsError(f"{path}: not a records table ({e})") from None
    return _checked(table, str(path))


def write_records(table: pd.DataFrame, path: Path) -> None:
    """Write ``table`` to ``path`` (Parquet) atomically: a crash leaves the old file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    _checked(table, str(path)).to_parquet(tmp, index=False)
    os.replace(tmp, path)


class RecordsTable:
    """A checked records table indexed by its blocks' dims: ``times`` looks blocks up, every
    kind at once (RecordsError for a block that is not in it: its shapes were not tuned on the
    device, so tuned TVM could not compile it either)."""

    def __init__(self, table: pd.DataFrame):
        self.table = _checked(table, "records")
        self._index = pd.MultiIndex.from_frame(self.table[list(DIMS)])
        self._ms = self.table[[f"{k}_ms" for k in RECORD_KINDS]].to_numpy(dtype=np.float64)

    def times(self, X: pd.DataFrame) -> np.ndarray:
        """The blocks' summed record times (ms), one column per kind of :data:`RECORD_KINDS`."""
        keys = pd.MultiIndex.from_frame(X[list(DIMS)].astype(np.int64))
        at = self._index.get_indexer(keys)
        if np.any(at < 0):
            lost = X[list(DIMS)].astype(np.int64).to_numpy()[at < 0]
            raise RecordsError(
                f"blocks without tuning records in this table: {len(lost)} (first: "
                f"{dict(zip(DIMS, lost[0].tolist(), strict=True))}); tune their grid "
                "(canao tune --grid) and rebuild it (canao records)"
            )
        return self._ms[at]


class RecordsSource:
    """One kind's summed record times per block, as a transfer's other source: ``predict``
    looks each block up in the table (:meth:`RecordsTable.times`). ``table``: a DataFrame, or
    a :class:`RecordsTable` that several sources share."""

    def __init__(
        self, table: pd.DataFrame | RecordsTable, kind: str, meta: dict[str, Any] | None = None
    ):
        if kind not in RECORD_KINDS:
            raise RecordsError(f"kind must be one of {', '.join(RECORD_KINDS)}, not {kind!r}")
        self.records = table if isinstance(table, RecordsTable) else RecordsTable(table)
        self.kind = kind
        self.meta_ = {"source": RECORDS_FORMAT, "records": kind, **(meta or {})}

    @property
    def table(self) -> pd.DataFrame:
        return self.records.table

    def _check_fitted(self) -> None:
        """A table is always ready (the transfer asks every source)."""

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        """The blocks' summed record times of this kind (ms)."""
        return self.records.times(X)[:, RECORD_KINDS.index(self.kind)]

    def save(self, path: Path, meta: dict[str, Any] | None = None, overwrite: bool = True) -> Path:
        """Write the table and kind as ``records.json`` into the folder ``path``."""
        return save_table(self.table, path, {"kind": self.kind, **(meta or {})}, overwrite)

    @classmethod
    def load(cls, path: Path) -> RecordsSource:
        """Read a folder written by :meth:`save` (RecordsError if it is not one)."""
        table, meta = load_table(path)
        return cls(table, str(meta.pop("kind", None)), meta)


def save_table(
    table: pd.DataFrame, path: Path, meta: dict[str, Any] | None = None, overwrite: bool = True
) -> Path:
    """Write ``table`` (and ``meta``) as ``records.json`` into the folder ``path``: plain
    numbers, read back by :func:`load_table`."""
    path = Path(path)
    if (path / RECORDS_FILE).exists() and not overwrite:
        raise FileExistsError(f"{path} already holds a records table")
    path.mkdir(parents=True, exist_ok=True)
    body = {
        "format": RECORDS_FORMAT,
        "columns": list(RECORDS_COLUMNS),
        "rows": _checked(table, str(path)).to_numpy(dtype=np.float64).tolist(),
        **(meta or {}),
    }
    (path / RECORDS_FILE).write_text(json.dumps(body))
    return path


def load_table(path: Path) -> tuple[pd.DataFrame, dict[str, Any]]:
    """(table, meta) of a folder written by :func:`save_table` (RecordsError if it is not
    one); nothing in it is executed."""
    file = Path(path) / RECORDS_FILE
    try:
        body = json.loads(file.read_text())
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as e:
        raise RecordsError(f"{file}: not a records source ({e})") from None
    if not isinstance(body, dict) or body.get("format") != RECORDS_FORMAT:
        raise RecordsError(f"{file}: not a records source (format field)")
    if body.get("columns") != list(RECORDS_COLUMNS):
        raise RecordsError(f"{file}: its columns are not this canao version's")
    try:
        table = pd.DataFrame(body["rows"], columns=list(RECORDS_COLUMNS), dtype=np.float64)
    except (KeyError, TypeError, ValueError):
        raise RecordsError(f"{file}: its rows are malformed") from None
    meta = {k: v for k, v in body.items() if k not in ("format", "columns", "rows")}
    return _checked(table, str(file)), meta


def records_sources(table: pd.DataFrame, meta: dict[str, Any] | None = None) -> list[RecordsSource]:
    """One source per kind (:data:`RECORD_KINDS`) of ``table``, sharing one indexed copy."""
    shared = RecordsTable(table)
    return [RecordsSource(shared, kind, meta) for kind in RECORD_KINDS]
