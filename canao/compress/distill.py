"""Knowledge distillation from the teacher: of one finalist, and of the whole supernet.

Loss (TinyBERT/DynaBERT style): soft cross-entropy between student and teacher logits at
temperature ``T`` (scaled by T^2) + ``hidden_weight`` x the mean squared error between each
student layer's output and the output of the teacher layer it was taken from (same hidden
size, so no projection) + ``hard_weight`` x cross-entropy with the labels.

Supernet mode (DynaBERT): every step trains several sub-networks over the shared weights of the
elastic base: the largest, the smallest and ``random_subnets`` random ones (the sandwich
rule), so that any sub-network the search ranks has been trained to work on its own.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.nn import functional as F

from canao.compress.checkpoint import save_model
from canao.compress.data import TaskData
from canao.compress.elastic import ElasticBase, Plan
from canao.compress.larger_teacher import LogitTeacher
from canao.compress.pretrained import load_tokenizer
from canao.compress.teacher import prepare_out, provenance
from canao.compress.train import (
    Encoded,
    TrainConfig,
    accuracy,
    encode_split,
    evaluate_splits,
    finish,
    train,
)
from canao.modeling import BertClassifier
from canao.space import ArchSpec, LayerSpec


@dataclass(frozen=True)
class DistillConfig:
    temperature: float = 2.0
    hidden_weight: float = 1.0
    hard_weight: float = 0.5
    random_subnets: int = 2  # supernet mode: random sub-networks per step (plus min and max)
    min_layers: int = 1

    def __post_init__(self) -> None:
        if self.temperature <= 0 or min(self.hidden_weight, self.hard_weight) < 0:
            raise ValueError("temperature must be > 0 and the loss weights >= 0")


def kd_loss(
    logits: torch.Tensor,
    hidden: Sequence[torch.Tensor],
    labels: torch.Tensor,
    t_logits: torch.Tensor,
    t_hidden: Sequence[torch.Tensor],
    mask: torch.Tensor,
    cfg: DistillConfig,
) -> torch.Tensor:
    """The distillation loss of one student forward pass against the teacher's."""
    t = cfg.temperature
    soft = F.kl_div(
        F.log_softmax(logits / t, -1),
        F.log_softmax(t_logits / t, -1),
        reduction="batchmean",
        log_target=True,
    ) * (t * t)
    loss = soft
    if cfg.hard_weight:
        loss = loss + cfg.hard_weight * F.cross_entropy(logits, labels)
    if cfg.hidden_weight and hidden:
        m = mask[..., None].to(logits.dtype)
        per_layer = [
            ((h - th) ** 2 * m).sum() / (m.sum() * h.shape[-1])
            for h, th in zip(hidden, t_hidden, strict=True)
        ]
        loss = loss + cfg.hidden_weight * torch.stack(per_layer).mean()
    return loss


def sample_plan(
    base: ElasticBase, rng: np.random.Generator, kind: str, min_layers: int, ffn_step: int = 128
) -> Plan:
    """A sub-network of the elastic base: ``max``, ``min`` or ``random`` (uniform per layer,
    FFN widths in steps of ``ffn_step`` as in the search space)."""
    spec = base.spec
    if kind == "max":
        n = spec.num_layers
    elif kind == "min":
        n = min_layers
    else:
        n = int(rng.integers(min_layers, spec.num_layers + 1))
    plan: Plan = []
    for i in base.kept_layers(n):
        b = spec.layers[i]
        widths = list(range(ffn_step, b.ffn + 1, ffn_step)) or [b.ffn]
        if kind == "max":
            plan.append((i, b.heads, b.ffn))
        elif kind == "min":
            plan.append((i, 1, widths[0]))
        else:
            plan.append((i, int(rng.integers(1, b.heads + 1)), int(rng.choice(widths))))
    return plan


class _Teacher:
    """The frozen teacher's logits and per-layer outputs for a batch (no gradients)."""

    def __init__(self, model: BertClassifier) -> None:
        self.model = model.eval()
        for p in self.model.parameters():
            p.requires_grad_(False)

    @torch.no_grad()
    def __call__(
        self, ids: torch.Tensor, mask: torch.Tensor
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        return self.model.run_plan(ids, mask, None, keep_hidden=True)


def distill_finalist(
    elastic: ElasticBase,
    teacher: BertClassifier | LogitTeacher,
    arch: ArchSpec,
    task: TaskData,
    out: Path,
    cfg: TrainConfig,
    dcfg: DistillConfig,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Extract ``arch`` from the elastic base, distil it from ``teacher``, write a model folder
    with its dev and test accuracy (before and after). A :class:`LogitTeacher` (another
    architecture, e.g. the larger MPNet) teaches by logits only: no hidden-state term."""
    prepare_out(out, overwrite)
    tok = load_tokenizer()
    student = elastic.extract(arch)
    kept = elastic.kept_layers(arch.num_layers)
    before = evaluate_splits(student, tok, task, cfg.max_length, ("dev",))
    t = teacher if isinstance(teacher, LogitTeacher) else _Teacher(teacher)

    def loss_fn(
        model: BertClassifier, ids: torch.Tensor, mask: torch.Tensor, labels: torch.Tensor, _s: int
    ) -> torch.Tensor:
        t_logits, t_hidden = t(ids, mask)
        logits, hidden = model.run_plan(ids, mask, None, keep_hidden=bool(t_hidden))
        t_kept = [t_hidden[i] for i in kept] if t_hidden else []
        return kd_loss(logits, hidden if t_hidden else [], labels, t_logits, t_kept, mask, dcfg)

    enc = encode_split(tok, task.train, cfg.max_length)
    summary = train(student, loss_fn, enc, cfg, out / "_train_state", "distill")
    after = evaluate_splits(student, tok, task, cfg.max_length, ("dev", "test"))
    meta = {
        "kind": "distilled",
        "task": task.name,
        "label_names": list(task.label_names),
        "teacher": t.name if isinstance(t, LogitTeacher) else elastic.meta.get("teacher"),
        "elastic_base": elastic.meta.get("path"),
        "inherited_dev_accuracy": before["dev_accuracy"],
        **after,
        "flops": arch.flops,
        "params": arch.params,
        "train": asdict(cfg),
        "distill": asdict(dcfg),
        **summary,
        "provenance": provenance(),
    }
    save_model(out, student, meta)
    finish(out / "_train_state")
    return meta


def train_supernet(
    elastic: ElasticBase,
    teacher: BertClassifier,
    task: TaskData,
    out: Path,
    cfg: TrainConfig,
    dcfg: DistillConfig,
    overwrite: bool = False,
) -> dict[str, Any]:
    """DynaBERT-style supernet training of the elastic base (sandwich rule, distilled from the
    teacher); writes a new elastic base at ``out``."""
    prepare_out(out, overwrite)
    tok = load_tokenizer()
    t = _Teacher(teacher)
    kinds = ["max", "min"] + ["random"] * dcfg.random_subnets

    def loss_fn(
        model: BertClassifier,
        ids: torch.Tensor,
        mask: torch.Tensor,
        labels: torch.Tensor,
        step: int,
    ) -> torch.Tensor:
        rng = np.random.default_rng((cfg.seed, step))
        t_logits, t_hidden = t(ids, mask)
        total = torch.zeros(())
        for kind in kinds:
            plan = sample_plan(elastic, rng, kind, dcfg.min_layers)
            logits, hidden = model.run_plan(ids, mask, plan, keep_hidden=True)
            th = [t_hidden[i] for i, _, _ in plan]
            total = total + kd_loss(logits, hidden, labels, t_logits, th, mask, dcfg)
        return total / len(kinds)

    enc: Encoded = encode_split(tok, task.train, cfg.max_length)
    summary = train(elastic.model, loss_fn, enc, cfg, out / "_train_state", "supernet")
    dev = encode_split(tok, task.dev, cfg.max_length)

    probes = {
        "full": elastic.spec,
        "smallest": dataclasses.replace(
            elastic.spec,
            layers=tuple(
                LayerSpec(h or 1, elastic.spec.layers[i].head_dim, f or 1)
                for i, h, f in sample_plan(elastic, np.random.default_rng(), "min", dcfg.min_layers)
            ),
            name=None,
        ),
    }
    metrics = {
        f"{name}_dev_accuracy": accuracy(elastic.extract(a), dev) for name, a in probes.items()
    }
    meta = {
        **elastic.meta,
        "kind": "supernet",
        "supernet_train": asdict(cfg),
        "distill": asdict(dcfg),
        **summary,
        **metrics,
        "provenance": provenance(),
    }
    elastic.meta = meta
    elastic.save(out)
    finish(out / "_train_state")
    return meta
