"""The typed records of canao — one source of truth for shapes and analytic cost.

``BlockSpec`` is one encoder layer as it runs, ``LayerSpec`` one layer inside an ``ArchSpec``
(a whole model). Analytic cost (FLOPs, parameters, bytes moved) is computed per sub-operation
here and nowhere else.

FLOP conventions: a matmul ``(M, K) x (K, N)`` costs ``2*M*N*K``; a bias add ``M*N``; softmax
5 per element (max, subtract, exp, sum, divide); layer norm 8 per element; GELU 8 per element;
a residual add 1 per element. Bytes moved assume every operand is read once and every result
written once, at the dtype's width.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

DTYPE_BYTES = {"float32": 4, "float16": 2, "bfloat16": 2}

SOFTMAX_FLOPS_PER_ELEM = 5
LAYERNORM_FLOPS_PER_ELEM = 8
GELU_FLOPS_PER_ELEM = 8

# The sub-operations of one encoder layer, in execution order.
SUB_OPS = (
    "qkv",
    "attn_scores",
    "softmax",
    "attn_context",
    "attn_out",
    "attn_layernorm",
    "ffn1_gelu",
    "ffn2",
    "ffn_layernorm",
)


class SpecError(ValueError):
    """A spec field holds an impossible value; the message names the field and why."""


def _check_int(obj: object, name: str, lo: int, hi: int | None = None) -> None:
    value = getattr(obj, name)
    if isinstance(value, bool) or not isinstance(value, int):
        raise SpecError(f"{type(obj).__name__}.{name} must be an integer, got {value!r}")
    if value < lo:
        raise SpecError(f"{type(obj).__name__}.{name} must be >= {lo}, got {value}")
    if hi is not None and value > hi:
        raise SpecError(f"{type(obj).__name__}.{name} must be <= {hi}, got {value}")


@dataclass(frozen=True)
class OpCost:
    """Analytic cost of one sub-operation."""

    flops: int
    params: int
    bytes: int


class _CostTotals:
    """Totals over ``costs()``, shared by blocks and whole models."""

    def costs(self) -> dict[str, OpCost]:
        raise NotImplementedError

    @property
    def flops(self) -> int:
        return sum(c.flops for c in self.costs().values())

    @property
    def params(self) -> int:
        return sum(c.params for c in self.costs().values())

    @property
    def bytes_moved(self) -> int:
        return sum(c.bytes for c in self.costs().values())


def _linear_cost(tokens: int, n_in: int, n_out: int, width: int) -> OpCost:
    """A dense layer with bias on ``tokens`` rows."""
    params = n_in * n_out + n_out
    return OpCost(
        flops=2 * tokens * n_in * n_out + tokens * n_out,
        params=params,
        bytes=width * (tokens * n_in + params + tokens * n_out),
    )


@dataclass(frozen=True, order=True)
class BlockSpec(_CostTotals):
    """One BERT encoder layer as it runs.

    ``heads * head_dim`` (the attention width) need not equal ``hidden`` (pruned heads).
    """

    hidden: int
    heads: int
    head_dim: int
    ffn: int
    seq_len: int
    batch: int = 1
    dtype: str = "float32"

    def __post_init__(self) -> None:
        _check_int(self, "hidden", 1, 16384)
        _check_int(self, "heads", 1, 256)
        _check_int(self, "head_dim", 1, 1024)
        _check_int(self, "ffn", 1, 65536)
        _check_int(self, "seq_len", 1, 16384)
        _check_int(self, "batch", 1, 1024)
        if self.dtype not in DTYPE_BYTES:
            raise SpecError(
                f"BlockSpec.dtype must be one of {sorted(DTYPE_BYTES)}, got {self.dtype!r}"
            )

    @property
    def attn_width(self) -> int:
        return self.heads * self.head_dim

    @property
    def tokens(self) -> int:
        """Token rows each linear layer multiplies: batch x seq_len."""
        return self.batch * self.seq_len

    @property
    def attn_elems(self) -> int:
        """Attention scores the layer computes: batch x heads x seq_len^2."""
        return self.batch * self.heads * self.seq_len**2

    @property
    def key(self) -> str:
        """A stable, human-readable identity, used as the dataset key."""
        return (
            f"block:h{self.hidden}-a{self.heads}x{self.head_dim}-f{self.ffn}"
            f"-s{self.seq_len}-b{self.batch}-{self.dtype}"
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def costs(self) -> dict[str, OpCost]:
        """Analytic cost per sub-operation (see the module docstring for conventions)."""
        return block_costs(self)


class BlockDims(Protocol):
    """What ``block_costs`` reads: a BlockSpec, or the same fields as NumPy arrays."""

    @property
    def hidden(self) -> Any: ...
    @property
    def heads(self) -> Any: ...
    @property
    def head_dim(self) -> Any: ...
    @property
    def ffn(self) -> Any: ...
    @property
    def seq_len(self) -> Any: ...
    @property
    def batch(self) -> Any: ...
    @property
    def dtype(self) -> str: ...
    @property
    def attn_width(self) -> Any: ...
    @property
    def tokens(self) -> Any: ...
    @property
    def attn_elems(self) -> Any: ...


def block_costs(b: BlockDims) -> dict[str, OpCost]:
    """FLOPs, parameter count and bytes moved for each sub-operation of one layer.

    Works element-wise when ``b``'s fields are NumPy arrays (see ``canao.predictors``)."""
    w = DTYPE_BYTES[b.dtype]
    t = b.tokens
    h, a, f = b.hidden, b.attn_width, b.ffn
    score_elems = b.attn_elems

    def linear(n_in: int, n_out: int) -> OpCost:
        return _linear_cost(t, n_in, n_out, w)

    qkv = linear(h, 3 * a)
    scores = OpCost(
        flops=2 * score_elems * b.head_dim + score_elems,  # matmul + scale
        params=0,
        bytes=w * (2 * t * a + score_elems),
    )
    softmax = OpCost(
        flops=SOFTMAX_FLOPS_PER_ELEM * score_elems, params=0, bytes=w * 2 * score_elems
    )
    context = OpCost(
        flops=2 * score_elems * b.head_dim,
        params=0,
        bytes=w * (score_elems + 2 * t * a),
    )
    attn_out = linear(a, h)
    ffn1 = linear(h, f)
    ffn1_gelu = OpCost(
        flops=ffn1.flops + GELU_FLOPS_PER_ELEM * t * f, params=ffn1.params, bytes=ffn1.bytes
    )
    ffn2 = linear(f, h)

    def layernorm() -> OpCost:  # residual add + normalisation
        return OpCost(
            flops=t * h * (1 + LAYERNORM_FLOPS_PER_ELEM),
            params=2 * h,
            bytes=w * (3 * t * h + 2 * h),
        )

    return {
        "qkv": qkv,
        "attn_scores": scores,
        "softmax": softmax,
        "attn_context": context,
        "attn_out": attn_out,
        "attn_layernorm": layernorm(),
        "ffn1_gelu": ffn1_gelu,
        "ffn2": ffn2,
        "ffn_layernorm": layernorm(),
    }


def matmul_flops(b: BlockDims) -> Any:
    """FLOPs of the six matrix products alone (``2*M*N*K`` each), the usual hand count."""
    t, h, a, f = b.tokens, b.hidden, b.attn_width, b.ffn
    attention = 2 * (2 * b.attn_elems * b.head_dim)
    return 2 * t * (h * 3 * a + a * h + h * f + f * h) + attention


@dataclass(frozen=True)
class LayerSpec:
    """One layer inside an ArchSpec: its attention heads, head width and FFN width."""

    heads: int
    head_dim: int
    ffn: int

    def __post_init__(self) -> None:
        _check_int(self, "heads", 1, 256)
        _check_int(self, "head_dim", 1, 1024)
        _check_int(self, "ffn", 1, 65536)


_ARCH_FIELDS = ("vocab_size", "max_position", "seq_len", "batch", "hidden", "num_labels")


@dataclass(frozen=True)
class ArchSpec(_CostTotals):
    """A whole BERT classifier: embeddings, encoder layers (may differ) and a task head."""

    hidden: int
    layers: tuple[LayerSpec, ...]
    seq_len: int = 128
    batch: int = 1
    vocab_size: int = 30522
    max_position: int = 512
    num_labels: int = 2
    type_vocab_size: int = 2
    dtype: str = "float32"
    name: str | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        if isinstance(self.layers, list):
            object.__setattr__(self, "layers", tuple(self.layers))
        if not isinstance(self.layers, tuple) or not self.layers:
            raise SpecError("ArchSpec.layers must be a non-empty list of layers")
        for i, layer in enumerate(self.layers):
            if not isinstance(layer, LayerSpec):
                raise SpecError(f"ArchSpec.layers[{i}] must be a LayerSpec, got {layer!r}")
        _check_int(self, "hidden", 1, 16384)
        _check_int(self, "vocab_size", 1, 10_000_000)
        _check_int(self, "max_position", 1, 65536)
        _check_int(self, "seq_len", 1, 65536)
        _check_int(self, "batch", 1, 1024)
        _check_int(self, "num_labels", 1, 100_000)
        _check_int(self, "type_vocab_size", 1, 1024)
        if self.seq_len > self.max_position:
            raise SpecError(
                f"ArchSpec.seq_len must be <= max_position ({self.max_position}), "
                f"got {self.seq_len}"
            )
        if self.dtype not in DTYPE_BYTES:
            raise SpecError(f"ArchSpec.dtype must be one of {sorted(DTYPE_BYTES)}")

    # -- structure ---------------------------------------------------------------------------
    @property
    def num_layers(self) -> int:
        return len(self.layers)

    @property
    def tokens(self) -> int:
        """Token rows each linear layer multiplies: batch x seq_len."""
        return self.batch * self.seq_len

    @property
    def is_uniform(self) -> bool:
        first = self.layers[0]
        return all(layer == first for layer in self.layers) and (
            first.heads * first.head_dim == self.hidden
        )

    def blocks(self) -> Iterator[BlockSpec]:
        """The BlockSpecs this model is made of, one per layer."""
        for layer in self.layers:
            yield BlockSpec(
                hidden=self.hidden,
                heads=layer.heads,
                head_dim=layer.head_dim,
                ffn=layer.ffn,
                seq_len=self.seq_len,
                batch=self.batch,
                dtype=self.dtype,
            )

    @property
    def key(self) -> str:
        layers = "_".join(f"{x.heads}x{x.head_dim}f{x.ffn}" for x in self.layers)
        return (
            f"model:h{self.hidden}-L{self.num_layers}-s{self.seq_len}-b{self.batch}"
            f"-v{self.vocab_size}-p{self.max_position}-c{self.num_labels}-{self.dtype}-{layers}"
        )

    # -- analytic cost -----------------------------------------------------------------------
    def costs(self) -> dict[str, OpCost]:
        """Cost per part: embeddings, each sub-operation summed over layers, pooler, head."""
        w = DTYPE_BYTES[self.dtype]
        t, h = self.tokens, self.hidden
        emb_params = (self.vocab_size + self.max_position + self.type_vocab_size + 2) * h
        out: dict[str, OpCost] = {
            "embeddings": OpCost(
                flops=t * h * (2 + 1 + LAYERNORM_FLOPS_PER_ELEM),  # two adds + layer norm
                params=emb_params,
                bytes=w * (3 * t * h + t * h + 2 * h),
            )
        }
        for name in SUB_OPS:
            out[name] = OpCost(0, 0, 0)
        for b in self.blocks():
            for name, c in block_costs(b).items():
                o = out[name]
                out[name] = OpCost(o.flops + c.flops, o.params + c.params, o.bytes + c.bytes)
        pooler = _linear_cost(self.batch, h, h, w)
        out["pooler"] = OpCost(pooler.flops + self.batch * h, pooler.params, pooler.bytes)  # tanh
        out["classifier"] = _linear_cost(self.batch, h, self.num_labels, w)
        return out

    # -- interchange -------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {}
        if self.name:
            d["name"] = self.name
        d.update({k: getattr(self, k) for k in _ARCH_FIELDS})
        if self.type_vocab_size != 2:
            d["type_vocab_size"] = self.type_vocab_size
        if self.dtype != "float32":
            d["dtype"] = self.dtype
        d["layers"] = [asdict(layer) for layer in self.layers]
        return d

    def to_json(self, indent: int | None = None) -> str:
        return json.dumps(self.to_dict(), indent=indent)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ArchSpec:
        if not isinstance(d, Mapping):
            raise SpecError(f"an ArchSpec must be a JSON object, got {type(d).__name__}")
        allowed = set(_ARCH_FIELDS) | {"name", "layers", "type_vocab_size", "dtype"}
        unknown = sorted(set(d) - allowed)
        if unknown:
            raise SpecError(f"unknown ArchSpec field(s): {', '.join(unknown)}")
        for required in ("hidden", "layers"):
            if required not in d:
                raise SpecError(f"ArchSpec is missing the field {required!r}")
        raw_layers = d["layers"]
        if not isinstance(raw_layers, list) or not raw_layers:
            raise SpecError("ArchSpec.layers must be a non-empty list of layers")
        layers = []
        for i, layer in enumerate(raw_layers):
            if not isinstance(layer, Mapping) or set(layer) != {"heads", "head_dim", "ffn"}:
                raise SpecError(
                    f"ArchSpec.layers[{i}] must be an object with exactly heads, head_dim, ffn"
                )
            layers.append(LayerSpec(**layer))
        kwargs = {k: d[k] for k in allowed - {"layers"} if k in d}
        return cls(layers=tuple(layers), **kwargs)

    @classmethod
    def from_json(cls, text: str) -> ArchSpec:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise SpecError(f"not valid JSON: {e}") from None
        return cls.from_dict(data)

    def to_hf_config(self) -> Any:
        """A ``transformers.BertConfig`` for a uniform spec (the transformers model cannot
        express per-layer widths)."""
        from transformers import BertConfig

        if not self.is_uniform:
            raise SpecError(
                "to_hf_config needs a uniform spec (same layer everywhere, heads*head_dim=hidden)"
            )
        layer = self.layers[0]
        return BertConfig(  # type: ignore[call-arg]
            vocab_size=self.vocab_size,
            hidden_size=self.hidden,
            num_hidden_layers=self.num_layers,
            num_attention_heads=layer.heads,
            intermediate_size=layer.ffn,
            max_position_embeddings=self.max_position,
            type_vocab_size=self.type_vocab_size,
            num_labels=self.num_labels,
            hidden_act="gelu",
            layer_norm_eps=1e-12,
        )

    # -- constructors ------------------------------------------------------------------------
    @classmethod
    def uniform(
        cls,
        layers: int,
        hidden: int,
        heads: int,
        ffn: int,
        head_dim: int | None = None,
        **kwargs: Any,
    ) -> ArchSpec:
        if head_dim is None:
            if hidden % heads:
                raise SpecError(f"hidden ({hidden}) is not divisible by heads ({heads})")
            head_dim = hidden // heads
        layer = LayerSpec(heads=heads, head_dim=head_dim, ffn=ffn)
        return cls(hidden=hidden, layers=(layer,) * layers, **kwargs)

    @classmethod
    def named(cls, name: str, **kwargs: Any) -> ArchSpec:
        """A published architecture by name (see ``KNOWN_ARCHS``)."""
        key = name.lower()
        if key not in KNOWN_ARCHS:
            raise SpecError(
                f"unknown architecture {name!r}; known: {', '.join(sorted(KNOWN_ARCHS))}"
            )
        layers, hidden, heads, ffn = KNOWN_ARCHS[key]
        return cls.uniform(layers, hidden, heads, ffn, name=key, **kwargs)


# name -> (layers, hidden, heads, ffn); head_dim = hidden / heads
KNOWN_ARCHS: dict[str, tuple[int, int, int, int]] = {
    "bert-base": (12, 768, 12, 3072),
    "bert-large": (24, 1024, 16, 4096),
    "bert-tiny": (2, 128, 2, 512),
    "bert-mini": (4, 256, 4, 1024),
    "bert-small": (4, 512, 8, 2048),
    "bert-medium": (8, 512, 8, 2048),
    "tinybert-4": (4, 312, 12, 1200),
    "tinybert-6": (6, 768, 12, 3072),
    "minilm-l6-h384": (6, 384, 12, 1536),
    "minilm-l12-h384": (12, 384, 12, 1536),
    "distilbert": (6, 768, 12, 3072),
}


def load_arch(value: str | Path, **overrides: Any) -> ArchSpec:
    """An ArchSpec from a published name or a JSON file path (``--arch FILE|NAME``)."""
    text = str(value)
    if text.lower() in KNOWN_ARCHS:
        return ArchSpec.named(text, **overrides)
    path = Path(text)
    if not path.is_file():
        raise SpecError(
            f"--arch {text!r} is neither a known architecture "
            f"({', '.join(sorted(KNOWN_ARCHS))}) nor an existing JSON file"
        )
    try:
        spec = ArchSpec.from_json(path.read_text())
    except SpecError as e:
        raise SpecError(f"{path}: {e}") from None
    if overrides:
        d = spec.to_dict()
        d.update(overrides)
        spec = ArchSpec.from_dict(d)
    return spec
