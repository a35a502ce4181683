from __future__ import annotations

import os

import pytest

os.environ.setdefault("TVM_NUM_THREADS", "2")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from canao.space import ArchSpec, BlockSpec, LayerSpec  # noqa: E402


@pytest.fixture
def tiny_block() -> BlockSpec:
    return BlockSpec(hidden=64, heads=2, head_dim=32, ffn=128, seq_len=16)


@pytest.fixture
def tiny_arch() -> ArchSpec:
    """A heterogeneous two-layer model (attention width differs from hidden in layer 1)."""
    return ArchSpec(
        hidden=64,
        layers=(LayerSpec(2, 32, 128), LayerSpec(3, 16, 96)),
        seq_len=16,
        vocab_size=500,
        max_position=64,
        name="tiny-hetero",
    )
