"""The shipped latency datasets: integrity of whatever is committed under datasets_latency/."""

from __future__ import annotations

from pathlib import Path

import pytest

from canao.profiling.store import COLUMNS, read_rows, shard_files

ROOT = Path(__file__).resolve().parents[1] / "datasets_latency"
SHARDS = shard_files(ROOT) if ROOT.exists() else []

pytestmark = pytest.mark.skipif(not SHARDS, reason="no shipped datasets")


def test_size_budget() -> None:
    assert sum(p.stat().st_size for p in SHARDS) < 30 * 2**20


def test_rows_are_whole_and_unique() -> None:
    df = read_rows(ROOT)
    assert list(df.columns) == list(COLUMNS)
    assert not df.duplicated(["device", "backend", "key"]).any()
    ok = df[df["error"].isna()]
    assert len(ok) >= 0.99 * len(df)
    assert (ok["median_ms"] > 0).all()
    assert (ok["samples_ms"].map(len) >= 3).all()
    assert ok["cpu_model"].astype(bool).all() and ok["threads"].ge(1).all()
    # compiled flag matches the backend: untuned TVM never passes for compiled latency
    assert not ok.loc[ok["backend"] == "tvm-untuned", "compiled"].any()


def test_every_device_has_a_card() -> None:
    for device in {p.relative_to(ROOT).parts[0] for p in SHARDS}:
        card = ROOT / device / "README.md"
        assert card.exists(), f"{device} has no dataset card"
        assert "canao profile" in card.read_text()
