from __future__ import annotations

import numpy as np
import pandas as pd

from canao.predictors.features import (
    FEATURE_NAMES,
    BlockArrays,
    block_features,
    features_from_rows,
    features_from_specs,
)
from canao.space import BlockSpec


def test_names_are_derived_from_the_function() -> None:
    one = BlockArrays.from_specs([BlockSpec(128, 2, 64, 512, 32)])
    assert tuple(block_features(one, 2.0)) == FEATURE_NAMES
    assert len(set(FEATURE_NAMES)) == len(FEATURE_NAMES)


def test_vectorised_features_equal_the_analytic_cost() -> None:
    specs = [BlockSpec(768, 12, 64, 3072, 128), BlockSpec(312, 12, 26, 1200, 64, batch=3)]
    f = features_from_specs(specs, threads=2)
    for i, s in enumerate(specs):
        c = s.costs()
        assert f["total_gflop"][i] * 1e9 == s.flops
        assert f["qkv_gflop"][i] * 1e9 == c["qkv"].flops
        assert f["softmax_mb"][i] * 1e6 == c["softmax"].bytes
        assert f["attn_elems"][i] == s.attn_elems == s.batch * s.heads * s.seq_len**2
        assert f["tokens"][i] == s.tokens == s.batch * s.seq_len
        assert f["weights_mb"][i] == s.params * 4 / 1e6
    assert list(f["hidden_align"]) == [64, 8]
    assert list(f["head_dim_align"]) == [64, 2]
    assert (f["threads"] == 2).all()


def test_rows_and_specs_agree() -> None:
    specs = [BlockSpec(96, 3, 40, 200, 12, batch=2), BlockSpec(64, 1, 64, 128, 8)]
    rows = pd.DataFrame([{**s.to_dict(), "threads": 1} for s in specs])
    a, b = features_from_rows(rows), features_from_specs(specs, threads=1)
    np.testing.assert_array_equal(a.to_numpy(), b.to_numpy())
