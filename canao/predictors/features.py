"""Predictor features, computed from the records by one function.

``block_features`` is the only place features are defined; ``FEATURE_NAMES`` is derived by
calling it, never kept as a second list. It works element-wise on NumPy arrays, so a whole
dataset or a batch of thousands of candidate blocks is featurised in one call, and it reuses
the analytic cost of :func:`canao.space.block_costs` rather than counting again.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from canao.space import DTYPE_BYTES, SUB_OPS, BlockSpec, OpCost, block_costs

#: the block dimensions a feature row is computed from (plus threads)
DIMS = ("hidden", "heads", "head_dim", "ffn", "seq_len", "batch")


@dataclass(frozen=True)
class BlockArrays:
    """Block dimensions as float arrays (one entry per block), read by ``block_costs``."""

    hidden: np.ndarray
    heads: np.ndarray
    head_dim: np.ndarray
    ffn: np.ndarray
    seq_len: np.ndarray
    batch: np.ndarray
    dtype: str = "float32"

    @property
    def attn_width(self) -> np.ndarray:
        return self.heads * self.head_dim

    @property
    def tokens(self) -> np.ndarray:
        return self.batch * self.seq_len

    @property
    def attn_elems(self) -> np.ndarray:
        """Attention scores per block: batch x heads x seq_len^2."""
        return self.batch * self.heads * self.seq_len**2

    @classmethod
    def from_columns(
        cls, cols: Mapping[str, Any] | pd.DataFrame, dtype: str = "float32"
    ) -> BlockArrays:
        arrays = {d: np.asarray(cols[d], dtype=np.float64) for d in DIMS}
        return cls(dtype=dtype, **arrays)

    @classmethod
    def from_specs(cls, specs: Iterable[BlockSpec]) -> BlockArrays:
        specs = list(specs)
        dtypes = {s.dtype for s in specs}
        if len(dtypes) > 1:
            raise ValueError(f"blocks of several dtypes in one batch: {sorted(dtypes)}")
        cols = {d: [getattr(s, d) for s in specs] for d in DIMS}
        return cls.from_columns(cols, dtypes.pop() if dtypes else "float32")


def _alignment(x: np.ndarray) -> np.ndarray:
    """The largest power of two up to 64 that divides ``x`` (dim mod 8/16/32/64 in one)."""
    xi = x.astype(np.int64)
    out = np.ones_like(x)
    for k in (2, 4, 8, 16, 32, 64):
        out = np.where(xi % k == 0, float(k), out)
    return out


def weights_mb(b: BlockArrays, costs: Mapping[str, OpCost] | None = None) -> np.ndarray:
    """Each block's weights in MB (its parameters, from ``block_costs`` unless given)."""
    costs = block_costs(b) if costs is None else costs
    params = sum(np.asarray(c.params, dtype=np.float64) for c in costs.values())
    return np.asarray(params) * DTYPE_BYTES[b.dtype] / 1e6


def block_features(b: BlockArrays, threads: np.ndarray | float) -> dict[str, np.ndarray]:
    """Every feature of the predictors, by name: dims, per-sub-operation GFLOPs and MB moved,
    arithmetic intensity, weights in MB, alignment, sequence-squared terms, threads."""
    costs = block_costs(b)
    f: dict[str, Any] = {
        "hidden": b.hidden,
        "heads": b.heads,
        "head_dim": b.head_dim,
        "attn_width": b.attn_width,
        "ffn": b.ffn,
        "seq_len": b.seq_len,
        "batch": b.batch,
        "tokens": b.tokens,
        "seq_len_sq": b.seq_len**2,
        "attn_elems": b.attn_elems,
        "threads": np.broadcast_to(np.asarray(threads, dtype=np.float64), b.hidden.shape),
    }
    for op in SUB_OPS:
        f[f"{op}_gflop"] = np.asarray(costs[op].flops, dtype=np.float64) / 1e9
        f[f"{op}_mb"] = np.asarray(costs[op].bytes, dtype=np.float64) / 1e6
    total_flops = sum(np.asarray(c.flops, dtype=np.float64) for c in costs.values())
    total_bytes = sum(np.asarray(c.bytes, dtype=np.float64) for c in costs.values())
    f["total_gflop"] = total_flops / 1e9
    f["total_mb"] = total_bytes / 1e6
    f["log_total_flop"] = np.log(total_flops)
    f["intensity"] = total_flops / total_bytes
    # the weights' working set: whether a lone block's weights stay in the caches between runs
    f["weights_mb"] = weights_mb(b, costs)
    for dim in ("hidden", "head_dim", "attn_width", "ffn", "seq_len"):
        f[f"{dim}_align"] = _alignment(np.asarray(f[dim]))
    return f


def _names() -> tuple[str, ...]:
    one = BlockArrays.from_specs([BlockSpec(64, 1, 64, 64, 8)])
    return tuple(block_features(one, 1.0))


FEATURE_NAMES: tuple[str, ...] = _names()
FEATURE_SCHEMA_HASH = hashlib.sha256(",".join(FEATURE_NAMES).encode()).hexdigest()[:16]


def feature_frame(b: BlockArrays, threads: np.ndarray | float) -> pd.DataFrame:
    return pd.DataFrame(block_features(b, threads), columns=list(FEATURE_NAMES))


def features_from_rows(df: pd.DataFrame) -> pd.DataFrame:
    """Features of the block rows of a latency dataset (columns as in the store)."""
    dtypes = set(df["dtype"].dropna().unique()) or {"float32"}
    if len(dtypes) > 1:
        raise ValueError(f"rows of several dtypes: {sorted(dtypes)}")
    b = BlockArrays.from_columns(df, dtypes.pop())
    return feature_frame(b, df["threads"].to_numpy(dtype=np.float64))


def features_from_specs(specs: Iterable[BlockSpec], threads: int) -> pd.DataFrame:
    return feature_frame(BlockArrays.from_specs(specs), float(threads))
