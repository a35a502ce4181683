"""Head, FFN-neuron and layer importance, and rewiring (DynaBERT's network rewiring).

- Heads and neurons (Michel et al. 2019): a mask of ones multiplies each head's context and
  each FFN neuron's activation; importance = the accumulated |dLoss/dmask| over batches of
  labelled data (the gradient of the loss with respect to switching the unit off).
- Layers: the increase of the loss when the layer is skipped (its input passed through).
- Rewiring reorders the weights so that heads and neurons run from most to least important:
  the model computes the same function, and every width prefix keeps the most important part.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch.nn import functional as F

from canao.compress.train import Encoded, length_batches
from canao.modeling import BertClassifier


@dataclass(frozen=True)
class Importance:
    heads: np.ndarray  # (layers, heads)
    ffn: tuple[np.ndarray, ...]  # per layer, (ffn,)
    layers: np.ndarray  # (layers,): loss increase when the layer is skipped

    def layer_order(self) -> tuple[int, ...]:
        """Layer indices, most important first (ties keep the lower index first)."""
        return tuple(int(i) for i in np.argsort(-self.layers, kind="stable"))


def _mask_hook(mask: torch.Tensor, repeat: int) -> Callable[..., tuple[torch.Tensor]]:
    def hook(module: torch.nn.Module, args: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor]:
        return (args[0] * mask.repeat_interleave(repeat),)

    return hook


def compute_importance(
    model: BertClassifier, enc: Encoded, max_examples: int = 2048, batch_size: int = 32
) -> Importance:
    """Importance of every head, FFN neuron and layer of ``model`` on ``enc`` (labelled)."""
    model.eval()
    rows = np.arange(min(max_examples, len(enc)))
    sub = Encoded([enc.ids[i] for i in rows], enc.labels[rows])
    batches = length_batches(sub, batch_size)
    layers = model.layers
    head_masks = [torch.ones(x.attention.self.heads, requires_grad=True) for x in layers]
    ffn_masks = [torch.ones(x.intermediate.dense.out_features, requires_grad=True) for x in layers]
    handles = []
    for layer, hm, fm in zip(layers, head_masks, ffn_masks, strict=True):
        d = layer.attention.self.head_dim
        handles.append(layer.attention.output.dense.register_forward_pre_hook(_mask_hook(hm, d)))
        handles.append(layer.output.dense.register_forward_pre_hook(_mask_hook(fm, 1)))
    head_imp = np.zeros((len(layers), layers[0].attention.self.heads))
    ffn_imp = [np.zeros(m.shape[0]) for m in ffn_masks]
    try:
        for idx in batches:
            ids, mask, labels = sub.batch(idx)
            loss = F.cross_entropy(model(ids, mask), labels, reduction="sum")
            grads = torch.autograd.grad(loss, head_masks + ffn_masks)
            for i in range(len(layers)):
                head_imp[i] += grads[i].abs().numpy()
                ffn_imp[i] += grads[len(layers) + i].abs().numpy()
    finally:
        for h in handles:
            h.remove()

    @torch.inference_mode()
    def loss_without(skip: int | None) -> float:
        plan = [(i, None, None) for i in range(len(layers)) if i != skip]
        total = 0.0
        for idx in batches:
            ids, mask, labels = sub.batch(idx)
            logits, _ = model.run_plan(ids, mask, plan)
            total += float(F.cross_entropy(logits, labels, reduction="sum"))
        return total / len(sub)

    full = loss_without(None)
    layer_imp = np.array([loss_without(i) - full for i in range(len(layers))])
    return Importance(head_imp, tuple(ffn_imp), layer_imp)


def _reorder_rows(lin: torch.nn.Linear, index: torch.Tensor) -> None:
    lin.weight.copy_(lin.weight[index])
    if lin.bias is not None:
        lin.bias.copy_(lin.bias[index])


@torch.no_grad()
def rewire(model: BertClassifier, imp: Importance) -> BertClassifier:
    """Reorder heads and FFN neurons of every layer, most important first (in place).

    The function the model computes is unchanged (checked in the tests)."""
    for i, layer in enumerate(model.layers):
        sa = layer.attention.self
        head_order = torch.as_tensor(np.argsort(-imp.heads[i], kind="stable"))
        cols = (head_order[:, None] * sa.head_dim + torch.arange(sa.head_dim)).reshape(-1)
        for lin in (sa.query, sa.key, sa.value):
            _reorder_rows(lin, cols)
        out = layer.attention.output.dense
        out.weight.copy_(out.weight[:, cols])
        neuron_order = torch.as_tensor(np.argsort(-imp.ffn[i], kind="stable"))
        _reorder_rows(layer.intermediate.dense, neuron_order)
        layer.output.dense.weight.copy_(layer.output.dense.weight[:, neuron_order])
    return model
