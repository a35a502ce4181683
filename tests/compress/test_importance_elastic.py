from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from canao.compress.checkpoint import CheckpointError, save_model
from canao.compress.elastic import ElasticBase
from canao.compress.importance import Importance, compute_importance, rewire
from canao.modeling import BertClassifier
from canao.space import LayerSpec, SpecError
from tests.compress.conftest import logits_of, random_encoded


def test_importance_shapes_and_rewiring_keeps_the_function(small_model: BertClassifier) -> None:
    enc = random_encoded(40)
    before = logits_of(small_model, enc)
    imp = compute_importance(small_model, enc, batch_size=16)
    assert imp.heads.shape == (3, 4) and [f.shape for f in imp.ffn] == [(64,)] * 3
    assert imp.layers.shape == (3,) and (imp.heads > 0).all()
    rewire(small_model, imp)
    assert torch.allclose(logits_of(small_model, enc), before, atol=1e-5)
    # after rewiring, the same importance comes out sorted: most important first
    again = compute_importance(small_model, enc, batch_size=16)
    np.testing.assert_allclose(again.heads, -np.sort(-imp.heads, axis=1), rtol=1e-3, atol=1e-7)
    for f_new, f_old in zip(again.ffn, imp.ffn, strict=True):
        np.testing.assert_allclose(f_new, -np.sort(-f_old), rtol=1e-3, atol=1e-7)


def test_layer_importance_is_the_loss_increase_of_skipping_it(small_model: BertClassifier) -> None:
    enc = random_encoded(24)
    imp = compute_importance(small_model, enc, batch_size=8)
    ids, mask, labels = enc.batch(np.arange(len(enc)))
    with torch.no_grad():
        full = torch.nn.functional.cross_entropy(small_model(ids, mask), labels)
        skip1, _ = small_model.run_plan(ids, mask, [(0, None, None), (2, None, None)])
        dropped = torch.nn.functional.cross_entropy(skip1, labels)
    assert imp.layers[1] == pytest.approx(float(dropped - full), abs=1e-5)
    assert sorted(imp.layer_order()) == [0, 1, 2]


def _elastic(model: BertClassifier, order: tuple[int, ...] = (2, 0, 1)) -> ElasticBase:
    return ElasticBase(model, order, {"task": "mr"})


def test_extracted_subnet_equals_the_shared_weight_forward(small_model: BertClassifier) -> None:
    base = _elastic(small_model)
    arch = dataclasses.replace(
        small_model.spec, layers=(LayerSpec(2, 8, 32), LayerSpec(3, 8, 64)), name=None
    )
    assert base.plan(arch) == [(0, 2, 32), (2, 3, 64)]  # the two most important, in order
    enc = random_encoded(12)
    ids, mask, _ = enc.batch(np.arange(len(enc)))
    sub = base.extract(arch)
    assert sub.spec == arch and sum(p.numel() for p in sub.parameters()) < sum(
        p.numel() for p in small_model.parameters()
    )
    with torch.no_grad():
        shared, _ = small_model.run_plan(ids, mask, base.plan(arch))
        assert torch.allclose(sub(ids, mask), shared, atol=1e-5)
        # the full architecture is the base itself
        assert torch.allclose(
            base.extract(small_model.spec)(ids, mask), small_model(ids, mask), atol=1e-6
        )


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"hidden": 48}, "hidden must equal"),
        ({"layers": (LayerSpec(5, 8, 64),)}, "exceeds base layer"),
        ({"layers": (LayerSpec(2, 16, 64),)}, "head_dim must be 8"),
        ({"layers": (LayerSpec(1, 8, 64),) * 4}, "at most 3 layers"),
        ({"num_labels": 3}, "num_labels must equal"),
    ],
)
def test_archs_outside_the_base_are_refused(small_model: BertClassifier, change, match) -> None:
    arch = dataclasses.replace(small_model.spec, **change)
    with pytest.raises(SpecError, match=match):
        _elastic(small_model).plan(arch)


def test_elastic_base_round_trip_and_clear_errors(small_model: BertClassifier, tmp_path) -> None:
    base = _elastic(small_model)
    base.save(tmp_path / "e")
    back = ElasticBase.load(tmp_path / "e")
    assert back.layer_order == (2, 0, 1) and back.meta["task"] == "mr"
    for (k, a), b in zip(
        small_model.state_dict().items(), back.model.state_dict().values(), strict=True
    ):
        assert torch.equal(a, b), k
    save_model(tmp_path / "plain", small_model, {"task": "mr"})
    with pytest.raises(CheckpointError, match="not an elastic base"):
        ElasticBase.load(tmp_path / "plain")
    with pytest.raises(CheckpointError, match="not a permutation"):
        _elastic(small_model, (0, 0, 1))
    (tmp_path / "e" / "model.safetensors").write_bytes(b"garbage")
    with pytest.raises(CheckpointError, match="not a readable safetensors"):
        ElasticBase.load(tmp_path / "e")
    with pytest.raises(CheckpointError, match="not a model folder"):
        ElasticBase.load(tmp_path / "missing")


def test_importance_dataclass_orders_layers() -> None:
    imp = Importance(np.ones((3, 2)), (np.ones(4),) * 3, np.array([0.1, 0.5, 0.1]))
    assert imp.layer_order() == (1, 0, 2)
