"""The search space: ArchSpecs inside a base model, encoded so every sampled point is valid.

Every trial samples the same fixed-size set of parameters (the layer count and, for *every*
layer slot of the base, its heads and FFN width), each from a range that depends on nothing
else; slots past the sampled layer count are ignored. NSGA-II and TPE therefore never see a
range that depends on an earlier parameter.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from canao.space import ArchSpec, LayerSpec, SpecError


@dataclass(frozen=True)
class SearchSpace:
    """Sub-architectures of ``base``: fewer layers, fewer heads and FFN neurons per layer.

    Heads keep the base's head width; the FFN width moves in steps of ``ffn_step``; hidden and
    sequence length are the base's (the task fixes seq_len).
    """

    base: ArchSpec
    min_layers: int = 1
    min_heads: int = 1
    ffn_step: int = 128

    def __post_init__(self) -> None:
        widest = max(layer.ffn for layer in self.base.layers)
        if not 1 <= self.min_layers <= self.base.num_layers:
            raise SpecError(f"min_layers must be in 1..{self.base.num_layers}")
        if self.ffn_step < 1 or self.ffn_step > widest:
            raise SpecError(f"ffn_step must be in 1..{widest}")

    @property
    def max_heads(self) -> int:
        return max(layer.heads for layer in self.base.layers)

    @property
    def ffn_choices(self) -> int:
        return max(layer.ffn for layer in self.base.layers) // self.ffn_step

    def suggest(self, trial: Any) -> ArchSpec:
        """Sample an ArchSpec through an Optuna trial (fixed-size encoding)."""
        params = {"layers": trial.suggest_int("layers", self.min_layers, self.base.num_layers)}
        for i, layer in enumerate(self.base.layers):
            params[f"heads_{i}"] = trial.suggest_int(f"heads_{i}", self.min_heads, layer.heads)
            params[f"ffn_{i}"] = trial.suggest_int(f"ffn_{i}", 1, layer.ffn // self.ffn_step)
        return self.decode(params)

    def decode(self, params: Mapping[str, int]) -> ArchSpec:
        """The ArchSpec of a parameter set (as stored with a trial)."""
        n = int(params["layers"])
        head_dim = self.base.layers[0].head_dim
        layers = tuple(
            LayerSpec(
                heads=int(params[f"heads_{i}"]),
                head_dim=head_dim,
                ffn=int(params[f"ffn_{i}"]) * self.ffn_step,
            )
            for i in range(n)
        )
        d = self.base.to_dict()
        d["layers"] = [{"heads": x.heads, "head_dim": x.head_dim, "ffn": x.ffn} for x in layers]
        d.pop("name", None)
        return ArchSpec.from_dict(d)

    def size(self) -> int:
        """Number of distinct encodings (layer slots past the depth count as distinct)."""
        per_layer = (self.max_heads - self.min_heads + 1) * self.ffn_choices
        return (self.base.num_layers - self.min_layers + 1) * per_layer**self.base.num_layers
