"""Real PyTorch models built from the records in :mod:`canao.space`.

Parameter names follow transformers' ``BertModel`` / ``BertForSequenceClassification``
(``embeddings.word_embeddings.weight``, ``encoder.layer.0.attention.self.query.weight``, ...),
so a pretrained checkpoint loads into a uniform spec unchanged, and a pruned one into a
heterogeneous spec (per-layer heads and FFN widths; attention width may differ from hidden).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import cast

import torch
from torch import nn
from torch.nn import functional as F

from canao.space import ArchSpec, BlockSpec

LAYER_NORM_EPS = 1e-12
TORCH_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


class _Dense(nn.Module):
    """A linear layer named like transformers' ``*.dense`` (+ optional LayerNorm)."""

    def __init__(self, n_in: int, n_out: int, norm: bool) -> None:
        super().__init__()
        self.dense = nn.Linear(n_in, n_out)
        self.LayerNorm = nn.LayerNorm(n_out, eps=LAYER_NORM_EPS) if norm else None


class _SelfAttention(nn.Module):
    def __init__(self, hidden: int, heads: int, head_dim: int) -> None:
        super().__init__()
        width = heads * head_dim
        self.heads, self.head_dim = heads, head_dim
        self.query = nn.Linear(hidden, width)
        self.key = nn.Linear(hidden, width)
        self.value = nn.Linear(hidden, width)

    def forward(
        self, x: torch.Tensor, mask: torch.Tensor | None, heads: int | None = None
    ) -> torch.Tensor:
        """``heads``: use only the first ``heads`` heads (elastic width; weights shared)."""
        b, s, _ = x.shape
        h = self.heads if heads is None else heads

        def split(lin: nn.Linear) -> torch.Tensor:
            t = lin(x) if heads is None else _rows(lin, x, h * self.head_dim)
            return t.view(b, s, h, self.head_dim).transpose(1, 2)

        q, k, v = split(self.query), split(self.key), split(self.value)
        scores = torch.matmul(q, k.transpose(-1, -2)) * (1.0 / math.sqrt(self.head_dim))
        if mask is not None:
            scores = scores + mask
        probs = torch.softmax(scores, dim=-1)
        ctx = torch.matmul(probs, v)
        return ctx.transpose(1, 2).reshape(b, s, h * self.head_dim)


def _rows(lin: nn.Linear, x: torch.Tensor, n: int) -> torch.Tensor:
    """``lin(x)`` keeping only the first ``n`` outputs."""
    bias = None if lin.bias is None else lin.bias[:n]
    return F.linear(x, lin.weight[:n], bias)


def _cols(lin: nn.Linear, x: torch.Tensor) -> torch.Tensor:
    """``lin`` applied to an input narrower than it: only the first ``x.shape[-1]`` inputs."""
    return F.linear(x, lin.weight[:, : x.shape[-1]], lin.bias)


class _Attention(nn.Module):
    def __init__(self, hidden: int, heads: int, head_dim: int) -> None:
        super().__init__()
        self.self = _SelfAttention(hidden, heads, head_dim)
        self.output = _Dense(heads * head_dim, hidden, norm=True)


class EncoderLayer(nn.Module):
    """One BERT encoder layer (post-LN, GELU-erf) of any shape a BlockSpec allows."""

    def __init__(self, hidden: int, heads: int, head_dim: int, ffn: int) -> None:
        super().__init__()
        self.attention = _Attention(hidden, heads, head_dim)
        self.intermediate = _Dense(hidden, ffn, norm=False)
        self.output = _Dense(ffn, hidden, norm=True)

    def forward(
        self,
        x: torch.Tensor,
        mask: torch.Tensor | None = None,
        heads: int | None = None,
        ffn: int | None = None,
    ) -> torch.Tensor:
        """``heads``/``ffn``: run only the first heads and FFN neurons (elastic width)."""
        att = self.attention
        assert att.output.LayerNorm is not None and self.output.LayerNorm is not None
        ctx = att.self(x, mask, heads)
        a = att.output.dense(ctx) if heads is None else _cols(att.output.dense, ctx)
        x = att.output.LayerNorm(a + x)
        if ffn is None:
            y = self.output.dense(F.gelu(self.intermediate.dense(x)))
        else:
            y = _cols(self.output.dense, F.gelu(_rows(self.intermediate.dense, x, ffn)))
        return self.output.LayerNorm(y + x)


class BlockModel(nn.Module):
    """A BlockSpec as a module: ``(batch, seq_len, hidden) -> (batch, seq_len, hidden)``."""

    def __init__(self, spec: BlockSpec) -> None:
        super().__init__()
        self.spec = spec
        self.layer = EncoderLayer(spec.hidden, spec.heads, spec.head_dim, spec.ffn)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layer(x)

    def example_inputs(self, seed: int = 0) -> tuple[torch.Tensor, ...]:
        g = torch.Generator().manual_seed(seed)
        s = self.spec
        x = torch.randn(s.batch, s.seq_len, s.hidden, generator=g)
        return (x.to(TORCH_DTYPES[s.dtype]),)


class _Embeddings(nn.Module):
    def __init__(self, spec: ArchSpec) -> None:
        super().__init__()
        h = spec.hidden
        self.word_embeddings = nn.Embedding(spec.vocab_size, h)
        self.position_embeddings = nn.Embedding(spec.max_position, h)
        self.token_type_embeddings = nn.Embedding(spec.type_vocab_size, h)
        self.LayerNorm = nn.LayerNorm(h, eps=LAYER_NORM_EPS)

    def forward(self, input_ids: torch.Tensor, token_type_ids: torch.Tensor | None) -> torch.Tensor:
        s = input_ids.shape[1]
        pos = self.position_embeddings.weight[:s].unsqueeze(0)
        if token_type_ids is None:
            typ = self.token_type_embeddings.weight[0].view(1, 1, -1)
        else:
            typ = self.token_type_embeddings(token_type_ids)
        return self.LayerNorm(self.word_embeddings(input_ids) + pos + typ)


class _Encoder(nn.Module):
    def __init__(self, spec: ArchSpec) -> None:
        super().__init__()
        self.layer = nn.ModuleList(
            EncoderLayer(spec.hidden, x.heads, x.head_dim, x.ffn) for x in spec.layers
        )


class BertEncoder(nn.Module):
    """Embeddings + encoder + pooler, named like ``transformers.BertModel``."""

    def __init__(self, spec: ArchSpec) -> None:
        super().__init__()
        self.embeddings = _Embeddings(spec)
        self.encoder = _Encoder(spec)
        self.pooler = _Dense(spec.hidden, spec.hidden, norm=False)

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        x, pooled, _ = self.run(input_ids, attention_mask, token_type_ids)
        return x, pooled

    def run(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        plan: Sequence[tuple[int, int | None, int | None]] | None = None,
        keep_hidden: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor]]:
        """Forward pass; ``plan`` = ``(layer index, heads, ffn)`` per layer to run (elastic
        depth and width over shared weights; ``None`` = all layers, full width). Returns the
        last hidden state, the pooled output and, if ``keep_hidden``, every layer's output."""
        x = self.embeddings(input_ids, token_type_ids)
        mask = None
        if attention_mask is not None:
            m = attention_mask[:, None, None, :].to(x.dtype)
            mask = (1.0 - m) * torch.finfo(x.dtype).min
        hidden: list[torch.Tensor] = []
        steps = (
            plan if plan is not None else [(i, None, None) for i in range(len(self.encoder.layer))]
        )
        for i, heads, ffn in steps:
            x = self.encoder.layer[i](x, mask, heads, ffn)
            if keep_hidden:
                hidden.append(x)
        pooled = torch.tanh(self.pooler.dense(x[:, 0]))
        return x, pooled, hidden


class BertClassifier(nn.Module):
    """A whole ArchSpec: ``input_ids (batch, seq_len) -> logits (batch, num_labels)``.

    State-dict compatible with ``transformers.BertForSequenceClassification``.
    """

    def __init__(self, spec: ArchSpec) -> None:
        super().__init__()
        self.spec = spec
        self.bert = BertEncoder(spec)
        self.classifier = nn.Linear(spec.hidden, spec.num_labels)

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
    ) -> torch.Tensor:
        _, pooled = self.bert(input_ids, attention_mask, token_type_ids)
        return self.classifier(pooled)

    @property
    def layers(self) -> list[EncoderLayer]:
        """The encoder layers, typed."""
        return [cast(EncoderLayer, x) for x in self.bert.encoder.layer]

    def run_plan(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None,
        plan: Sequence[tuple[int, int | None, int | None]] | None,
        keep_hidden: bool = False,
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Logits (and per-layer hidden states) of the sub-network ``plan`` selects; see
        :meth:`BertEncoder.run`."""
        _, pooled, hidden = self.bert.run(input_ids, attention_mask, None, plan, keep_hidden)
        return self.classifier(pooled), hidden

    def example_inputs(self, seed: int = 0) -> tuple[torch.Tensor, ...]:
        """``(input_ids, attention_mask)``, the deployed signature (``canao compile``): the
        mask's preparation and the masked softmax are part of a whole model's latency. The
        first half of the tokens are real, the rest padding."""
        g = torch.Generator().manual_seed(seed)
        s = self.spec
        ids = torch.randint(0, s.vocab_size, (s.batch, s.seq_len), generator=g)
        mask = torch.zeros((s.batch, s.seq_len), dtype=torch.long)
        mask[:, : max(1, s.seq_len // 2)] = 1
        return ids, mask


def init_weights(module: nn.Module, seed: int = 0, std: float = 0.02) -> nn.Module:
    """BERT's initialisation (normal(0, 0.02), zero bias, unit LayerNorm), seeded."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, nn.Linear | nn.Embedding):
                m.weight.copy_(torch.randn(m.weight.shape, generator=g) * std)
                if isinstance(m, nn.Linear) and m.bias is not None:
                    m.bias.zero_()
            elif isinstance(m, nn.LayerNorm):
                m.weight.fill_(1.0)
                m.bias.zero_()
    return module


def build_module(spec: BlockSpec | ArchSpec, seed: int = 0) -> BlockModel | BertClassifier:
    """A randomly initialised module in eval mode, in the spec's dtype."""
    module: BlockModel | BertClassifier
    module = BlockModel(spec) if isinstance(spec, BlockSpec) else BertClassifier(spec)
    init_weights(module, seed)
    return module.to(TORCH_DTYPES[spec.dtype]).eval()
