"""Elastic sub-networks: any ArchSpec inside the base becomes a model with inherited weights.

An elastic base is a rewired model (heads and FFN neurons ordered by importance) plus a layer
order (most important first). An ArchSpec with ``L`` layers keeps the ``L`` most important
layers, in their original order; its layer ``j`` keeps the first ``heads_j`` heads and the
first ``ffn_j`` neurons of that base layer. :meth:`ElasticBase.plan` runs the sub-network over
the shared weights (for accuracy estimates and supernet training, no copy);
:meth:`ElasticBase.extract` copies them into a standalone ``BertClassifier`` (for distillation
and compilation).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from canao.compress.checkpoint import CheckpointError, load_model, save_model
from canao.modeling import BertClassifier
from canao.space import ArchSpec, SpecError

Plan = list[tuple[int, int | None, int | None]]


@dataclass
class ElasticBase:
    model: BertClassifier
    layer_order: tuple[int, ...]  # base layer indices, most important first
    meta: dict[str, Any]

    def __post_init__(self) -> None:
        if sorted(self.layer_order) != list(range(self.model.spec.num_layers)):
            raise CheckpointError(
                f"layer_order {self.layer_order} is not a permutation of the base's layers"
            )

    @property
    def spec(self) -> ArchSpec:
        return self.model.spec

    def kept_layers(self, n: int) -> list[int]:
        return sorted(self.layer_order[:n])

    def check(self, arch: ArchSpec) -> None:
        """Raise SpecError naming the field if ``arch`` is not inside the base."""
        base = self.spec
        for field in ("hidden", "vocab_size", "num_labels", "type_vocab_size"):
            if getattr(arch, field) != getattr(base, field):
                raise SpecError(
                    f"{field} must equal the base's ({getattr(base, field)}), "
                    f"got {getattr(arch, field)}"
                )
        if arch.num_layers > base.num_layers:
            raise SpecError(f"at most {base.num_layers} layers, got {arch.num_layers}")
        if arch.seq_len > base.max_position:
            raise SpecError(f"seq_len must be <= {base.max_position}")
        for j, (layer, i) in enumerate(
            zip(arch.layers, self.kept_layers(arch.num_layers), strict=True)
        ):
            b = base.layers[i]
            if layer.head_dim != b.head_dim:
                raise SpecError(f"layers[{j}].head_dim must be {b.head_dim}, got {layer.head_dim}")
            if layer.heads > b.heads or layer.ffn > b.ffn:
                raise SpecError(
                    f"layers[{j}] ({layer.heads} heads, FFN {layer.ffn}) exceeds base layer {i} "
                    f"({b.heads} heads, FFN {b.ffn})"
                )

    def plan(self, arch: ArchSpec) -> Plan:
        self.check(arch)
        return [
            (i, layer.heads, layer.ffn)
            for layer, i in zip(arch.layers, self.kept_layers(arch.num_layers), strict=True)
        ]

    @torch.no_grad()
    def extract(self, arch: ArchSpec) -> BertClassifier:
        """A standalone model of ``arch`` with the inherited (copied) weights: every tensor is
        the leading slice of the base tensor it comes from (rewiring put the best first)."""
        plan = self.plan(arch)
        sub = BertClassifier(arch)
        src = self.model.state_dict()
        prefix = "bert.encoder.layer."
        state = {}
        for key, dst in sub.state_dict().items():
            name = key
            if key.startswith(prefix):
                j, rest = key[len(prefix) :].split(".", 1)
                name = f"{prefix}{plan[int(j)][0]}.{rest}"
            state[key] = src[name][tuple(slice(0, n) for n in dst.shape)].clone()
        sub.load_state_dict(state)
        return sub.eval()

    def save(self, folder: Path) -> None:
        save_model(folder, self.model, {**self.meta, "layer_order": list(self.layer_order)})

    @classmethod
    def load(cls, folder: Path | str) -> ElasticBase:
        model, meta = load_model(folder)
        if "layer_order" not in meta:
            raise CheckpointError(
                f"{folder} is not an elastic base (no layer_order); make one with "
                "`canao compress rewire`"
            )
        meta["path"] = str(folder)
        return cls(model, tuple(int(i) for i in meta["layer_order"]), meta)


def make_elastic(
    teacher_dir: Path,
    task: Any,
    out: Path,
    max_examples: int = 2048,
    max_length: int = 64,
    overwrite: bool = False,
) -> ElasticBase:
    """Rewire a fine-tuned teacher into an elastic base: importance on training data, heads
    and neurons reordered, layers ranked; the result computes the teacher's function."""
    from canao.compress.importance import compute_importance, rewire
    from canao.compress.pretrained import load_tokenizer
    from canao.compress.teacher import prepare_out
    from canao.compress.train import encode_split

    prepare_out(out, overwrite)
    model, meta = load_model(teacher_dir)
    if meta.get("task") != task.name:
        raise CheckpointError(
            f"{teacher_dir} was trained on {meta.get('task')!r}, not {task.name!r}"
        )
    enc = encode_split(load_tokenizer(), task.train, max_length)
    imp = compute_importance(model, enc, max_examples=max_examples)
    rewire(model, imp)
    elastic = ElasticBase(
        model,
        imp.layer_order(),
        {
            "kind": "elastic",
            "task": task.name,
            "label_names": meta["label_names"],
            "teacher": str(teacher_dir),
            "teacher_dev_accuracy": meta.get("dev_accuracy"),
            "teacher_test_accuracy": meta.get("test_accuracy"),
            "importance_examples": min(max_examples, len(enc)),
            "layer_importance": [round(float(x), 6) for x in imp.layers],
            "max_length": max_length,
        },
    )
    elastic.save(out)
    return elastic
