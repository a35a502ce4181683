from __future__ import annotations

import copy
import dataclasses

import numpy as np
import pytest
import torch

from canao.compress.checkpoint import load_model
from canao.compress.distill import (
    DistillConfig,
    distill_finalist,
    kd_loss,
    sample_plan,
    train_supernet,
)
from canao.compress.elastic import ElasticBase
from canao.compress.pretrained import load_tokenizer
from canao.compress.train import TrainConfig, accuracy, encode_split
from canao.modeling import BertClassifier
from canao.search.accuracy import InheritedAccuracy
from canao.space import LayerSpec


def test_kd_loss_is_zero_only_when_the_student_matches() -> None:
    g = torch.Generator().manual_seed(0)
    logits, hidden = torch.randn(4, 2, generator=g), [torch.randn(4, 5, 8, generator=g)]
    mask, labels = torch.ones(4, 5), torch.tensor([0, 1, 1, 0])
    cfg = DistillConfig(hard_weight=0.0)
    same = kd_loss(logits, hidden, labels, logits, hidden, mask, cfg)
    assert float(same) == pytest.approx(0.0, abs=1e-6)
    off = kd_loss(
        logits,
        [hidden[0] + 0.1],
        labels,
        logits + 1.0 * torch.tensor([1.0, -1.0]),
        hidden,
        mask,
        cfg,
    )
    assert float(off) > 0.01
    # padded positions do not count
    mask2 = mask.clone()
    mask2[:, -1] = 0
    h2 = hidden[0].clone()
    h2[:, -1] += 100.0
    assert float(kd_loss(logits, [h2], labels, logits, hidden, mask2, cfg)) == pytest.approx(
        0.0, abs=1e-6
    )


def test_sample_plan_sandwich(small_model: BertClassifier) -> None:
    base = ElasticBase(small_model, (1, 2, 0), {})
    rng = np.random.default_rng(0)
    assert sample_plan(base, rng, "max", 1) == [(0, 4, 64), (1, 4, 64), (2, 4, 64)]
    assert sample_plan(base, rng, "min", 2) == [(1, 1, 64), (2, 1, 64)]
    for _ in range(20):
        plan = sample_plan(base, rng, "random", 1)
        assert 1 <= len(plan) <= 3 and [i for i, _, _ in plan] == base.kept_layers(len(plan))
        assert all(1 <= h <= 4 and f == 64 for _, h, f in plan)


def test_distilled_finalist_is_written_and_loads(
    small_model: BertClassifier, mr_small, tmp_path
) -> None:
    base = ElasticBase(small_model, (0, 2, 1), {"task": "mr", "teacher": "t"})
    arch = dataclasses.replace(small_model.spec, layers=(LayerSpec(2, 8, 32),) * 2, name="f1")
    cfg = TrainConfig(epochs=1, batch_size=16, lr=1e-3, max_length=32)
    meta = distill_finalist(
        base, copy.deepcopy(small_model), arch, mr_small, tmp_path / "d", cfg, DistillConfig()
    )
    model, saved = load_model(tmp_path / "d")
    assert model.spec == arch and saved["kind"] == "distilled" and saved["steps"] == 4
    assert {"inherited_dev_accuracy", "dev_accuracy", "test_accuracy"} <= set(meta)
    enc = encode_split(load_tokenizer(), mr_small.test, 32)
    assert accuracy(model, enc) == pytest.approx(saved["test_accuracy"])
    with pytest.raises(FileExistsError, match="--overwrite"):
        distill_finalist(base, small_model, arch, mr_small, tmp_path / "d", cfg, DistillConfig())


def test_supernet_training_updates_the_shared_weights(
    small_model: BertClassifier, mr_small, tmp_path
) -> None:
    teacher = copy.deepcopy(small_model)
    base = ElasticBase(small_model, (0, 1, 2), {"task": "mr", "max_length": 32})
    before = copy.deepcopy(small_model.state_dict())
    cfg = TrainConfig(epochs=1, batch_size=32, lr=1e-3, max_length=32)
    meta = train_supernet(base, teacher, mr_small, tmp_path / "s", cfg, DistillConfig(min_layers=2))
    back = ElasticBase.load(tmp_path / "s")
    assert back.meta["kind"] == "supernet" and back.layer_order == (0, 1, 2)
    assert 0.0 <= meta["smallest_dev_accuracy"] <= 1.0 and meta["steps"] == 2
    changed = [k for k, v in back.model.state_dict().items() if not torch.equal(v, before[k])]
    assert "bert.encoder.layer.0.attention.self.query.weight" in changed


def test_inherited_accuracy_is_real_and_cached_on_disk(
    small_model: BertClassifier, mr, tmp_path, monkeypatch
) -> None:
    ElasticBase(small_model, (2, 0, 1), {"task": "mr", "max_length": 32}).save(tmp_path / "e")
    est = InheritedAccuracy(tmp_path / "e")
    assert est.kind == "real"
    arch = dataclasses.replace(small_model.spec, layers=(LayerSpec(3, 8, 48),), name=None)
    acc = est.estimate(arch)
    want = accuracy(est.base.extract(arch), encode_split(load_tokenizer(), mr.dev, 32))
    assert acc == pytest.approx(want)
    # same layers at another sequence length: the same accuracy, from the cache
    assert est.estimate(dataclasses.replace(arch, seq_len=32)) == acc and est.hits == 1
    again = InheritedAccuracy(tmp_path / "e")
    monkeypatch.setattr(again, "_estimate", lambda a: pytest.fail("recomputed"))
    assert again.estimate(arch) == acc
    (tmp_path / "e" / "accuracy-dev.jsonl").open("a").write('{"key": "torn')  # a crash mid-line
    assert InheritedAccuracy(tmp_path / "e").estimate(arch) == acc
