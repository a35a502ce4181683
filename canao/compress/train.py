"""Training loops (fine-tuning, distillation, supernet): resumable, with a progress bar.

One loop serves every kind of training: it takes a model, a loss function and the encoded
train split. State (weights, AdamW moments, schedule position, data order by epoch seed) is
saved as safetensors every ``save_every`` steps under ``<out>/_train_state``; a killed run
started again with the same command continues from the last save. The finished model folder
is written last and the state removed.
"""

from __future__ import annotations

import math
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.nn import functional as F

from canao.compress.checkpoint import (
    load_tensors,
    optimizer_tensors,
    restore_optimizer,
    save_tensors,
    write_json,
)
from canao.compress.data import Split, TaskData
from canao.compress.pretrained import encode, pad_batch
from canao.modeling import BertClassifier


@dataclass(frozen=True)
class TrainConfig:
    """How to train; written next to every output."""

    epochs: float = 2.0
    lr: float = 5e-5
    batch_size: int = 32
    max_length: int = 64
    warmup: float = 0.1
    weight_decay: float = 0.01
    seed: int = 0
    save_every: int = 50
    limit: int | None = None  # use only the first N training examples (tests, quick runs)

    def __post_init__(self) -> None:
        if self.epochs <= 0 or self.lr <= 0 or self.batch_size < 1 or self.max_length < 8:
            raise ValueError("epochs and lr must be > 0, batch_size >= 1, max_length >= 8")
        if not 0 <= self.warmup < 1:
            raise ValueError("warmup is a fraction of the steps, in [0, 1)")


@dataclass(frozen=True)
class Encoded:
    """A split as token ids (unpadded) and labels."""

    ids: list[list[int]]
    labels: np.ndarray

    def __len__(self) -> int:
        return len(self.ids)

    def batch(self, idx: np.ndarray) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        input_ids, mask = pad_batch([self.ids[i] for i in idx])
        return input_ids, mask, torch.as_tensor(self.labels[idx])


def encode_split(tokenizer: Any, split: Split, max_length: int) -> Encoded:
    return Encoded(encode(tokenizer, split.texts, max_length), split.labels)


def length_batches(enc: Encoded, batch_size: int) -> list[np.ndarray]:
    """Index batches of similar length (for fast inference); covers every row once."""
    order = np.argsort([len(x) for x in enc.ids], kind="stable")
    return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]


@torch.inference_mode()
def predict_logits(model: torch.nn.Module, enc: Encoded, batch_size: int = 128) -> np.ndarray:
    """Logits of every row of ``enc`` (in order), batched by length; ``model`` is any
    ``(ids, mask) -> logits`` module (a canao BERT or the larger teacher's wrapper)."""
    if len(enc) == 0:
        raise ValueError("no rows to score")
    was_training = model.training
    model.eval()
    out: np.ndarray | None = None
    for idx in length_batches(enc, batch_size):
        ids, mask, _ = enc.batch(idx)
        logits = model(ids, mask).float().numpy()
        if out is None:
            out = np.zeros((len(enc), logits.shape[1]), dtype=np.float32)
        out[idx] = logits
    model.train(was_training)
    assert out is not None
    return out


def accuracy(model: BertClassifier, enc: Encoded, batch_size: int = 128) -> float:
    logits = predict_logits(model, enc, batch_size)
    return float((logits.argmax(1) == enc.labels).mean())


LossFn = Callable[[BertClassifier, torch.Tensor, torch.Tensor, torch.Tensor, int], torch.Tensor]
"""``loss(model, input_ids, mask, labels, step)``: the training loss of one batch."""


def cross_entropy_loss(
    model: BertClassifier, ids: torch.Tensor, mask: torch.Tensor, labels: torch.Tensor, step: int
) -> torch.Tensor:
    return F.cross_entropy(model(ids, mask), labels)


def _schedule(total: int, warmup: int) -> Callable[[int], float]:
    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / max(1, warmup)
        return max(0.0, (total - step) / max(1, total - warmup))

    return factor


def train(
    model: BertClassifier,
    loss_fn: LossFn,
    enc: Encoded,
    cfg: TrainConfig,
    state_dir: Path,
    desc: str = "train",
    on_step: Callable[[int, float], None] | None = None,
) -> dict[str, Any]:
    """Train ``model`` in place; resumes from ``state_dir`` if a previous run saved there.

    Returns a summary: steps, final loss (mean of the last 50 steps), seconds.
    """
    from tqdm import tqdm

    n = len(enc) if cfg.limit is None else min(cfg.limit, len(enc))
    per_epoch = math.ceil(n / cfg.batch_size)
    total = max(1, int(round(cfg.epochs * per_epoch)))
    no_decay = ("bias", "LayerNorm.weight")
    params = [
        {
            "params": [p for k, p in model.named_parameters() if not k.endswith(no_decay)],
            "weight_decay": cfg.weight_decay,
        },
        {
            "params": [p for k, p in model.named_parameters() if k.endswith(no_decay)],
            "weight_decay": 0.0,
        },
    ]
    opt = torch.optim.AdamW(params, lr=cfg.lr)
    factor = _schedule(total, int(cfg.warmup * total))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, factor)
    step, losses, elapsed = 0, [], 0.0
    meta_path = state_dir / "state.json"
    if meta_path.is_file():
        import json

        saved = json.loads(meta_path.read_text())
        if saved["config"] != asdict(cfg) or saved["total"] != total:
            raise ValueError(
                f"{state_dir} holds a run with another configuration; remove it or pass the "
                f"same options ({saved['config']})"
            )
        model.load_state_dict(load_tensors(state_dir / "model.safetensors"))
        restore_optimizer(opt, load_tensors(state_dir / "optimizer.safetensors"), saved["groups"])
        step, losses, elapsed = saved["step"], saved["losses"], saved["elapsed_s"]
        sched.last_epoch = step
        for group, lr in zip(opt.param_groups, sched.base_lrs, strict=True):
            group["lr"] = lr * factor(step)

    def save() -> None:
        state_dir.mkdir(parents=True, exist_ok=True)
        save_tensors(state_dir / "model.safetensors", model.state_dict())
        tensors, groups = optimizer_tensors(opt)
        save_tensors(state_dir / "optimizer.safetensors", tensors)
        write_json(
            meta_path,
            {
                "config": asdict(cfg),
                "total": total,
                "step": step,
                "groups": groups,
                "losses": losses[-50:],
                "elapsed_s": elapsed,
            },
        )

    model.train()
    t0 = time.perf_counter() - elapsed
    bar = tqdm(total=total, initial=step, desc=desc, unit="step", dynamic_ncols=True)
    while step < total:
        epoch, pos = divmod(step, per_epoch)
        order = np.random.default_rng(cfg.seed + epoch).permutation(n)
        idx = order[pos * cfg.batch_size : (pos + 1) * cfg.batch_size]
        ids, mask, labels = enc.batch(idx)
        loss = loss_fn(model, ids, mask, labels, step)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        step += 1
        losses.append(loss.item())
        bar.update(1)
        bar.set_postfix(loss=f"{np.mean(losses[-50:]):.4f}")
        if on_step is not None:
            on_step(step, losses[-1])
        if step % cfg.save_every == 0 and step < total:
            elapsed = time.perf_counter() - t0
            save()
    bar.close()
    model.eval()
    return {
        "steps": total,
        "final_loss": float(np.mean(losses[-50:])),
        "train_s": round(time.perf_counter() - t0, 1),
    }


def finish(state_dir: Path) -> None:
    """Remove the resumable state once the model folder is written."""
    shutil.rmtree(state_dir, ignore_errors=True)


def evaluate_splits(
    model: BertClassifier, tokenizer: Any, task: TaskData, max_length: int, splits: tuple[str, ...]
) -> dict[str, float]:
    return {
        f"{s}_accuracy": accuracy(model, encode_split(tokenizer, task.split(s), max_length))
        for s in splits
    }
