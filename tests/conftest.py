from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

os.environ.setdefault("TVM_NUM_THREADS", "2")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
# the workload-extraction cache of a test session is its own (never the user's ~/.cache)
os.environ["CANAO_CACHE_DIR"] = tempfile.mkdtemp(prefix="canao-test-cache-")

from canao.predictors.features import features_from_specs  # noqa: E402
from canao.profiling.samplers import BlockSpace, block_samples  # noqa: E402
from canao.space import ArchSpec, BlockSpec, LayerSpec  # noqa: E402


def cli_option(command: str, dest: str) -> argparse.Action:
    """The option ``dest`` of ``canao COMMAND``, as the CLI's parser declares it (for the tests
    that twin its literal choices or help with the constants they stand for)."""
    from canao.cli import build_parser

    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return next(a for a in sub.choices[command]._actions if a.dest == dest)


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


def synthetic_ms(specs: list[BlockSpec], seed: int = 0) -> np.ndarray:
    """A made-up device: matmuls at 60 GFLOP/s (slower when hidden is not a multiple of 16),
    memory at 8 GB/s, 30 us per call, 1% multiplicative noise."""
    rng = np.random.default_rng(seed)
    out = []
    for s in specs:
        c = s.costs()
        mm = sum(
            c[k].flops
            for k in ("qkv", "attn_scores", "attn_context", "attn_out", "ffn1_gelu", "ffn2")
        )
        other = sum(c[k].bytes for k in ("softmax", "attn_layernorm", "ffn_layernorm"))
        penalty = 1.0 if s.hidden % 16 == 0 else 1.25
        out.append(mm / 60e9 * 1e3 * penalty + other / 8e9 * 1e3 + 0.03)
    return np.asarray(out) * rng.lognormal(0, 0.01, len(out))


@pytest.fixture(scope="session")
def synthetic_blocks() -> tuple[list[BlockSpec], pd.DataFrame, np.ndarray]:
    space = BlockSpace(hidden=(64, 768), ffn=(128, 3072), seq_len=(8, 256), batch=(1, 2))
    specs = block_samples(space, 700, seed=5)
    return specs, features_from_specs(specs, threads=2), synthetic_ms(specs)


@pytest.fixture(scope="session")
def predictor(synthetic_blocks, tmp_path_factory) -> Path:
    """A latency predictor folder trained on the synthetic device."""
    from canao.predictors.predictor import LatencyPredictor

    _, X, y = synthetic_blocks
    path = tmp_path_factory.mktemp("pred") / "p"
    LatencyPredictor(n_estimators=200).fit(X, y).save(
        path, {"backend": "synthetic", "device": "synthetic-dev", "threads": [2]}
    )
    return path


@pytest.fixture(scope="session")
def tracker(tmp_path_factory):
    """A device farm on 127.0.0.1: RPC tracker + a server registered as ``test-board``."""
    from canao.profiling.farm import LocalFarm

    with LocalFarm("test-board", tmp_path_factory.mktemp("rpc")) as farm:
        yield farm.tracker
