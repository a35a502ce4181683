from __future__ import annotations

import pytest

from canao.profiling.samplers import (
    BlockSpace,
    ModelSpace,
    aligned_grid,
    block_samples,
    random_archs,
    sobol_blocks,
)
from canao.space import SpecError


def test_sobol_within_bounds_and_prefix_stable() -> None:
    space = BlockSpace()
    a, b = sobol_blocks(space, 50, seed=3), sobol_blocks(space, 120, seed=3)
    assert b[:50] == a
    assert all(space.contains(s) for s in b)
    assert sobol_blocks(space, 50, seed=4) != a
    # log-uniform spread: small and large blocks alike
    hidden = sorted(s.hidden for s in b)
    assert hidden[0] < 128 and hidden[-1] > 700


def test_block_samples_mix_distinct_prefix_stable() -> None:
    space = BlockSpace()
    a, b = block_samples(space, 100), block_samples(space, 400)
    assert b[:100] == a and len(set(b)) == 400

    def on_grid(value: int, step: int) -> bool:
        return value % step == 0 or value & (value - 1) == 0  # a multiple or a power of two

    steps = {"hidden": 64, "heads": 4, "head_dim": 32, "ffn": 256, "seq_len": 64}
    aligned = [s for s in b if all(on_grid(getattr(s, d), k) for d, k in steps.items())]
    assert len(aligned) >= 100  # every 4th spec is a grid point (some Sobol points align too)
    assert len(aligned) < 0.4 * len(b)
    assert all(space.contains(s) for s in b)


def test_aligned_grid_values() -> None:
    space = BlockSpace(hidden=(128, 256), heads=(4, 8), seq_len=(64, 128), batch=(1, 1))
    grid = aligned_grid(space, 1000)
    assert {s.hidden for s in grid} == {128, 192, 256}
    assert {s.heads for s in grid} == {4, 8}
    assert len(grid) == len(set(grid))


def test_space_config_errors(tmp_path) -> None:
    with pytest.raises(SpecError, match="unknown BlockSpace field"):
        BlockSpace.from_dict({"width": [1, 2]})
    with pytest.raises(SpecError, match="lo <= hi"):
        BlockSpace.from_dict({"hidden": [512, 64]})
    f = tmp_path / "s.json"
    f.write_text("{not json")
    with pytest.raises(SpecError, match="not a valid block space config"):
        BlockSpace.from_file(f)


def test_random_archs_valid_and_heterogeneous() -> None:
    space = ModelSpace()
    archs = random_archs(space, 60, seed=1)
    assert len({a.key for a in archs}) == 60
    assert random_archs(space, 20, seed=1) == archs[:20]
    hetero = [a for a in archs if not a.is_uniform]
    assert 25 <= len(hetero) <= 55
    assert any(len({layer for layer in a.layers}) > 1 for a in hetero)
    for a in archs:
        assert space.layers[0] <= a.num_layers <= space.layers[1]
        assert a.seq_len in space.seq_len
        assert all(x.ffn <= 4 * a.hidden for x in a.layers)
