"""The inductor backend on a CUDA GPU: marked, and skipped where there is none."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from canao.profiling.measurement import EvalConfig

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU on this machine"),
]


@pytest.mark.parametrize("name", ["inductor", "inductor-cudagraphs"])
def test_inductor_cuda_block(name, tiny_block, tmp_path) -> None:
    from canao.modeling import build_module
    from canao.profiling.backends import get_backend

    backend = get_backend(name, device="cuda")
    assert backend.target().startswith("inductor-cuda-")
    assert backend.target().endswith("-cudagraphs") == (name == "inductor-cudagraphs")
    res = backend.build(tiny_block, tmp_path)
    assert res.error is None, res.error
    module = build_module(tiny_block)
    with torch.no_grad():
        ref = module(*module.example_inputs()).numpy()
    np.testing.assert_allclose(res.artifact.output(), ref, atol=1e-3)
    samples, number = res.artifact.time(EvalConfig(warmup=2, repeat=3, min_repeat_ms=5))
    assert len(samples) == 3 and number >= 1 and all(s > 0 for s in samples)
