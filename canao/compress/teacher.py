"""The teacher: the pretrained base fine-tuned on a task (``canao compress finetune``)."""

from __future__ import annotations

import platform
import shutil
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from canao.compress.checkpoint import is_model_dir, save_model
from canao.compress.data import TaskData
from canao.compress.pretrained import PACKAGE, load_pretrained, load_tokenizer
from canao.compress.train import (
    TrainConfig,
    cross_entropy_loss,
    encode_split,
    evaluate_splits,
    finish,
    train,
)

DEFAULT_RUNS = Path("runs") / "compress"


def default_dir(task: str, what: str) -> Path:
    return DEFAULT_RUNS / task / what


def provenance() -> dict[str, Any]:
    import transformers

    return {
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "python": platform.python_version(),
        "threads": torch.get_num_threads(),
    }


def prepare_out(out: Path, overwrite: bool) -> None:
    """Refuse to replace a finished model folder unless ``overwrite``."""
    if is_model_dir(out):
        if not overwrite:
            raise FileExistsError(f"{out} already holds a model; pass --overwrite to replace it")
        shutil.rmtree(out)


def finetune(task: TaskData, out: Path, cfg: TrainConfig, overwrite: bool = False) -> dict:
    """Fine-tune the pretrained base on ``task``; writes a model folder at ``out``."""
    prepare_out(out, overwrite)
    tok = load_tokenizer()
    model = load_pretrained(task.num_labels, seed=cfg.seed)
    enc = encode_split(tok, task.train, cfg.max_length)
    summary = train(model, cross_entropy_loss, enc, cfg, out / "_train_state", "finetune")
    metrics = evaluate_splits(model, tok, task, cfg.max_length, ("dev", "test"))
    meta = {
        "kind": "teacher",
        "task": task.name,
        "label_names": list(task.label_names),
        "base": PACKAGE,
        "train": asdict(cfg),
        "train_examples": len(enc) if cfg.limit is None else min(cfg.limit, len(enc)),
        **summary,
        **metrics,
        "provenance": provenance(),
    }
    save_model(out, model, meta)
    finish(out / "_train_state")
    return meta
