"""The shipped latency datasets: integrity of whatever is committed under datasets_latency/."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from canao.predictors.evaluation import block_specs
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


def test_host_datasets_have_the_promised_rows() -> None:
    """The foundation's datasets: >= 3,000 block and >= 300 model rows per backend."""
    df = read_rows(ROOT / "intel-xeon-amx-2c")
    ok = df[df["error"].isna()]
    for backend in ("onnxruntime", "eager"):
        rows = ok[ok["backend"] == backend]
        assert (rows["kind"] == "block").sum() >= 3000, backend
        assert (rows["kind"] == "model").sum() >= 300, backend
        models = rows[rows["kind"] == "model"]
        hetero = sum(
            len({json.dumps(x) for x in json.loads(a)["layers"]}) > 1 for a in models["arch"]
        )
        assert hetero >= 100, backend
    # the same specs on both backends, so rows pair up by key
    keys = [set(ok.loc[ok["backend"] == b, "key"]) for b in ("onnxruntime", "eager")]
    assert len(keys[0] & keys[1]) >= 3300


def test_tuned_tvm_dataset() -> None:
    """Issue 3's tuned rows: compiled from the tuning database, numerics checked in every row,
    the thread count recorded; at least 200 whole models."""
    df = read_rows(ROOT / "intel-xeon-amx-2c")
    tvm = df[(df["backend"] == "tvm") & df["error"].isna()]
    if tvm.empty:
        pytest.skip("no tuned TVM rows shipped")
    assert tvm["compiled"].all() and tvm["threads"].ge(1).all()
    assert (tvm["max_abs_err"] <= tvm["atol"]).all()
    assert (tvm["kind"] == "model").sum() >= 200 and (tvm["kind"] == "block").sum() >= 144
    # the tuning records' table (canao records) holds every tuned block, re-timed
    from canao.predictors.records import RecordsSource, read_records
    from canao.profiling.tuning import read_retimed

    folder = ROOT / "intel-xeon-amx-2c" / "tvm" / "tuning"
    blocks = tvm[tvm["kind"] == "block"]
    ms = RecordsSource(read_records(folder / "records.parquet"), "linear").predict(blocks)
    assert (ms > 0).all()
    assert min(len(t) for t in read_retimed(folder).values()) >= 2  # the default rounds


def test_second_host_pairs_with_the_first() -> None:
    """The AMD host's 1-thread ONNX Runtime blocks are the Intel host's design (same seed), so
    every spec pairs with an Intel row: the cross-device transfer pairs are real."""
    df = read_rows(ROOT)
    ok = df[(df["backend"] == "onnxruntime") & (df["kind"] == "block") & df["error"].isna()]
    amd = ok[(ok["device"] == "amd-epyc-avx512-2c") & (ok["threads"] == 1)]
    if amd.empty:
        pytest.skip("no second-host rows shipped")
    intel = ok[ok["device"] == "intel-xeon-amx-2c"]
    specs = [set(block_specs(d)) for d in (amd, intel)]
    assert len(amd) >= 1000 and specs[0] <= specs[1]
    assert amd["cpu_model"].str.contains("AMD").all()


@pytest.mark.skipif(not (ROOT / "intel-xeon-amx-2c" / "tvm").exists(), reason="no tvm dataset")
def test_load_dataset_reads_a_benchmark_name_as_load_rows_does() -> None:
    import pandas as pd

    from canao.predictors.evaluation import (
        DatasetError,
        load_dataset,
        load_rows,
        parse_dataset_name,
    )

    assert parse_dataset_name("d/b/2t/drift-median") == ("d", "b", 2, "drift-median")
    assert parse_dataset_name("d/b/12t") == ("d", "b", 12, None)
    named = load_dataset(ROOT, "intel-xeon-amx-2c/tvm/2t")
    direct = load_rows(ROOT, "tvm", "intel-xeon-amx-2c", 2)
    pd.testing.assert_frame_equal(named, direct)
    for bad in ("intel-xeon-amx-2c/tvm", "intel-xeon-amx-2c/tvm/two", "a/b/2t/median/x"):
        with pytest.raises(DatasetError, match="device/backend/<threads>t"):
            load_dataset(ROOT, bad)


def test_the_intel_onnxruntime_rows_at_one_and_two_threads_are_read_apart() -> None:
    """The 1-thread rows sit in the 2-thread dataset's folder: a reader must pick one count,
    and each count reads its own keys (the 2,000 blocks and 300 models at 1 thread)."""
    from canao.predictors.evaluation import DatasetError, load_rows

    with pytest.raises(DatasetError, match="several thread counts"):
        load_rows(ROOT, "onnxruntime", "intel-xeon-amx-2c")
    one, two = (load_rows(ROOT, "onnxruntime", "intel-xeon-amx-2c", t) for t in (1, 2))
    for df, t, blocks in ((one, 1, 2000), (two, 2, 3000)):
        assert (df["threads"] == t).all() and df["key"].str.endswith(f"|t{t}").all()
        assert (df["kind"] == "block").sum() == blocks and (df["kind"] == "model").sum() == 300
    # the same specs: the 1-thread rows are a prefix of the same designs
    only_one = {k.rsplit("|", 1)[0] for k in one["key"]} - {k.rsplit("|", 1)[0] for k in two["key"]}
    assert not only_one
