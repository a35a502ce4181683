"""Model folders and resumable training state, as safetensors + JSON (never pickle).

A model folder holds ``model.safetensors`` (a ``BertClassifier`` state dict), ``arch.json``
(the ArchSpec, DESIGN's interchange format) and ``meta.json`` (task, labels, how it was made,
metrics). Loading one reads tensors and JSON only; it runs no code from the files.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch

from canao.modeling import BertClassifier
from canao.space import ArchSpec, SpecError


class CheckpointError(Exception):
    """A model folder is missing, incomplete or does not match its ArchSpec."""


def _atomic_write_bytes(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def write_json(path: Path, obj: Any) -> None:
    _atomic_write_bytes(path, (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode())


def save_tensors(path: Path, tensors: dict[str, torch.Tensor]) -> None:
    from safetensors.torch import save

    data = save({k: v.detach().contiguous().cpu() for k, v in tensors.items()})
    _atomic_write_bytes(path, data)


def load_tensors(path: Path) -> dict[str, torch.Tensor]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(str(path))
    except (SafetensorError, OSError) as e:
        raise CheckpointError(f"{path}: not a readable safetensors file ({e})") from None


def save_model(folder: Path, model: BertClassifier, meta: dict[str, Any]) -> None:
    """Write a model folder; ``meta.json`` last, so a folder with it is complete."""
    folder.mkdir(parents=True, exist_ok=True)
    save_tensors(folder / "model.safetensors", model.state_dict())
    write_json(folder / "arch.json", model.spec.to_dict())
    write_json(folder / "meta.json", meta)


def is_model_dir(folder: Path | str) -> bool:
    folder = Path(folder)
    return all((folder / f).is_file() for f in ("model.safetensors", "arch.json", "meta.json"))


def load_model(folder: Path | str) -> tuple[BertClassifier, dict[str, Any]]:
    """A model folder back as an eval-mode ``BertClassifier`` and its meta."""
    folder = Path(folder)
    if not is_model_dir(folder):
        raise CheckpointError(
            f"{folder} is not a model folder (needs model.safetensors, arch.json, meta.json)"
        )
    try:
        spec = ArchSpec.from_dict(json.loads((folder / "arch.json").read_text()))
        meta = json.loads((folder / "meta.json").read_text())
    except (json.JSONDecodeError, SpecError) as e:
        raise CheckpointError(f"{folder}: bad arch.json/meta.json ({e})") from None
    model = BertClassifier(spec)
    try:
        model.load_state_dict(load_tensors(folder / "model.safetensors"))
    except RuntimeError as e:
        first = str(e).splitlines()[0]
        raise CheckpointError(f"{folder}: weights do not match arch.json ({first})") from None
    return model.eval(), meta


# -- optimizer state -----------------------------------------------------------------------------
def optimizer_tensors(opt: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], list[Any]]:
    """Flatten an optimizer state dict into named tensors + JSON-able param groups."""
    sd = opt.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    for idx, st in sd["state"].items():
        for name, value in st.items():
            t = value if isinstance(value, torch.Tensor) else torch.tensor(value)
            tensors[f"{idx}.{name}"] = t
    return tensors, sd["param_groups"]


def restore_optimizer(
    opt: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], groups: list[Any]
) -> None:
    state: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in tensors.items():
        idx, name = key.split(".", 1)
        state.setdefault(int(idx), {})[name] = value
    opt.load_state_dict({"state": state, "param_groups": groups})
