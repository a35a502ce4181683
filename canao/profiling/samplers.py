"""Which specs to measure: space-filling designs, compiler-friendly grid points, random models.

Every sampler is prefix-stable: the first ``n`` specs for a seed are the same whatever larger
``n`` is asked later, so ``canao profile --samples 3000`` after ``--samples 500`` measures only
the 2,500 new specs.
"""

from __future__ import annotations

import json
import math
import warnings
from collections.abc import Iterator
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
from scipy.stats import qmc

from canao.space import ArchSpec, BlockSpec, LayerSpec, SpecError

BLOCK_DIMS = ("hidden", "heads", "head_dim", "ffn", "seq_len", "batch")


@dataclass(frozen=True)
class BlockSpace:
    """Bounds (inclusive) of the block space; the defaults cover BERT-tiny to BERT-large.

    Sobol points are spread log-uniformly in every dimension (relative error is what the
    predictors are judged on, so small blocks need as many points as large ones).
    """

    hidden: tuple[int, int] = (64, 1024)
    heads: tuple[int, int] = (1, 16)
    head_dim: tuple[int, int] = (16, 128)
    ffn: tuple[int, int] = (128, 4096)
    seq_len: tuple[int, int] = (8, 512)
    batch: tuple[int, int] = (1, 4)
    #: every ``aligned_every``-th spec is an aligned grid point (multiples of 8..64)
    aligned_every: int = 4

    def __post_init__(self) -> None:
        for name in BLOCK_DIMS:
            lo, hi = getattr(self, name)
            if not (isinstance(lo, int) and isinstance(hi, int) and 1 <= lo <= hi):
                raise SpecError(f"BlockSpace.{name} must be [lo, hi] with 1 <= lo <= hi")
        if self.aligned_every < 0:
            raise SpecError("BlockSpace.aligned_every must be >= 0 (0: no grid points)")

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> BlockSpace:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise SpecError(f"unknown BlockSpace field(s): {', '.join(unknown)}")
        kwargs: dict[str, Any] = {k: (tuple(v) if isinstance(v, list) else v) for k, v in d.items()}
        return cls(**kwargs)

    @classmethod
    def from_file(cls, path: Path) -> BlockSpace:
        try:
            return cls.from_dict(json.loads(Path(path).read_text()))
        except (OSError, json.JSONDecodeError, TypeError) as e:
            raise SpecError(f"{path}: not a valid block space config: {e}") from None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def contains(self, spec: BlockSpec) -> bool:
        return all(
            getattr(self, d)[0] <= getattr(spec, d) <= getattr(self, d)[1] for d in BLOCK_DIMS
        )


def _block(dims: dict[str, int]) -> BlockSpec:
    return BlockSpec(**dims)  # type: ignore[arg-type]


def _log_scale(u: np.ndarray, lo: int, hi: int) -> np.ndarray:
    v = np.exp(np.log(lo) + u * (np.log(hi + 1) - np.log(lo)))
    return np.clip(np.floor(v), lo, hi).astype(int)


def sobol_blocks(space: BlockSpace, n: int, seed: int = 0) -> list[BlockSpec]:
    """The first ``n`` points of a scrambled Sobol sequence, mapped log-uniformly."""
    if n <= 0:
        return []
    sampler = qmc.Sobol(d=len(BLOCK_DIMS), scramble=True, seed=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # balance properties want powers of two
        u = sampler.random(n)
    cols = {d: _log_scale(u[:, i], *getattr(space, d)) for i, d in enumerate(BLOCK_DIMS)}
    return [_block({d: int(cols[d][i]) for d in BLOCK_DIMS}) for i in range(n)]


def _aligned_values(lo: int, hi: int, steps: tuple[int, ...]) -> list[int]:
    vals = {v for step in steps for v in range(step * math.ceil(lo / step), hi + 1, step)}
    vals |= {2**k for k in range(12) if lo <= 2**k <= hi}
    return sorted(v for v in vals if v >= 1) or [lo]


def aligned_grid(space: BlockSpace, n: int, seed: int = 0) -> list[BlockSpec]:
    """``n`` distinct points of the aligned grid compilers favour (random order, seeded)."""
    values = {
        "hidden": _aligned_values(*space.hidden, (64,)),
        "heads": _aligned_values(*space.heads, (4,)),
        "head_dim": _aligned_values(*space.head_dim, (32,)),
        "ffn": _aligned_values(*space.ffn, (256,)),
        "seq_len": _aligned_values(*space.seq_len, (64,)),
        "batch": _aligned_values(*space.batch, ()),
    }
    rng = np.random.default_rng(seed)
    total = math.prod(len(v) for v in values.values())
    out: list[BlockSpec] = []
    seen: set[BlockSpec] = set()
    while len(out) < min(n, total):
        spec = _block({d: int(rng.choice(values[d])) for d in BLOCK_DIMS})
        if spec not in seen:
            seen.add(spec)
            out.append(spec)
    return out


def block_samples(space: BlockSpace, n: int, seed: int = 0) -> list[BlockSpec]:
    """Sobol points interleaved with aligned grid points; distinct, prefix-stable."""
    k = space.aligned_every
    n_grid = n // k + 1 if k else 0
    sobol = iter(sobol_blocks(space, 2 * n + 8, seed))
    grid = iter(aligned_grid(space, n_grid, seed + 1))
    out: list[BlockSpec] = []
    seen: set[BlockSpec] = set()
    i = 0
    while len(out) < n:
        i += 1
        src: Iterator[BlockSpec] = grid if k and i % k == 0 else sobol
        spec = next(src, None)
        if spec is None:
            spec = next(sobol, None)
            if spec is None:
                break
        if spec not in seen:
            seen.add(spec)
            out.append(spec)
    return out


@dataclass(frozen=True)
class ModelSpace:
    """Random whole models: uniform and heterogeneous (per-layer heads and FFN widths)."""

    layers: tuple[int, int] = (1, 12)
    hidden: tuple[int, ...] = (128, 192, 256, 312, 384, 512, 640, 768)
    head_dim: tuple[int, ...] = (32, 64)
    max_heads: int = 16
    ffn_step: int = 64
    seq_len: tuple[int, ...] = (32, 64, 128, 256)
    batch: int = 1
    uniform_share: float = 0.3
    vocab_size: int = 30522
    num_labels: int = 2


def random_archs(space: ModelSpace, n: int, seed: int = 0) -> list[ArchSpec]:
    """``n`` distinct random ArchSpecs (prefix-stable for a seed)."""
    rng = np.random.default_rng(seed)
    out: list[ArchSpec] = []
    seen: set[str] = set()
    tries = 0
    while len(out) < n and tries < 100 * n + 100:
        tries += 1
        n_layers = int(rng.integers(space.layers[0], space.layers[1] + 1))
        hidden = int(rng.choice(space.hidden))
        seq_len = int(rng.choice(space.seq_len))
        max_ffn = 4 * hidden
        if rng.random() < space.uniform_share:
            heads = max(1, hidden // 64) if hidden % 64 == 0 else 12
            layer = LayerSpec(heads, hidden // heads, max_ffn)
            layers = (layer,) * n_layers
            kind = "uniform"
        else:
            head_dim = int(rng.choice(space.head_dim))
            full_heads = max(1, min(space.max_heads, hidden // head_dim))
            layers = tuple(
                LayerSpec(
                    heads=int(rng.integers(1, full_heads + 1)),
                    head_dim=head_dim,
                    ffn=int(rng.integers(1, max_ffn // space.ffn_step + 1)) * space.ffn_step,
                )
                for _ in range(n_layers)
            )
            kind = "hetero"
        spec = ArchSpec(
            hidden=hidden,
            layers=layers,
            seq_len=seq_len,
            batch=space.batch,
            vocab_size=space.vocab_size,
            num_labels=space.num_labels,
            name=f"random-{kind}-{len(out)}",
        )
        if spec.key not in seen:
            seen.add(spec.key)
            out.append(spec)
    return out
