from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from canao.compress.data import TaskData, load_task
from canao.compress.train import Encoded
from canao.modeling import BertClassifier, build_module
from canao.space import ArchSpec, LayerSpec


@pytest.fixture(scope="session")
def mr() -> TaskData:
    return load_task("mr")


@pytest.fixture(scope="session")
def mr_small(mr: TaskData) -> TaskData:
    """A real slice of MR: 64 train, 48 dev, 48 test sentences."""
    return dataclasses.replace(
        mr, train=mr.train.head(64), dev=mr.dev.head(48), test=mr.test.head(48)
    )


def small_spec(vocab: int = 30522) -> ArchSpec:
    """Small enough for fast tests, real vocabulary so the real tokenizer's ids fit."""
    return ArchSpec(
        hidden=32,
        layers=(LayerSpec(4, 8, 64), LayerSpec(4, 8, 64), LayerSpec(4, 8, 64)),
        vocab_size=vocab,
        max_position=128,
        seq_len=64,
        name="small",
    )


@pytest.fixture
def small_model() -> BertClassifier:
    model = build_module(small_spec(), seed=3)
    assert isinstance(model, BertClassifier)
    return model


def random_encoded(n: int = 40, vocab: int = 30522, seed: int = 0) -> Encoded:
    rng = np.random.default_rng(seed)
    ids = [
        [101, *rng.integers(1000, vocab, int(rng.integers(4, 20))).tolist(), 102] for _ in range(n)
    ]
    return Encoded(ids, rng.integers(0, 2, n).astype(np.int64))


def logits_of(model: BertClassifier, enc: Encoded) -> torch.Tensor:
    ids, mask, _ = enc.batch(np.arange(len(enc)))
    with torch.no_grad():
        return model.eval()(ids, mask)
