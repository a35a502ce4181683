from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from canao.cli import main
from canao.predictors.adaptive import select
from canao.predictors.evaluation import random_split
from canao.predictors.metrics import error_metrics
from canao.predictors.predictor import LatencyPredictor, PredictorFileError
from canao.profiling.samplers import BlockSpace, block_samples


def test_transfer_from_few_blocks(synthetic_blocks, tmp_path) -> None:
    _, X, y = synthetic_blocks
    # the target device: 1.8x slower overall and relatively slower on big token counts
    target = y * 1.8 * (X["tokens"].to_numpy() / 64) ** 0.08
    source = LatencyPredictor(n_estimators=300).fit(X, y)
    raw = error_metrics(target, source.predict(X))
    pick = np.random.default_rng(0).permutation(len(y))[:30]
    rest = np.setdiff1d(np.arange(len(y)), pick)
    source.fit_transfer(X.iloc[pick], target[pick])
    adapted = error_metrics(target[rest], source.predict(X.iloc[rest]))
    assert raw["acc10"] < 0.1
    assert adapted["acc10"] >= 0.95, adapted
    loaded = LatencyPredictor.load(source.save(tmp_path / "t"))
    np.testing.assert_allclose(loaded.predict(X), source.predict(X), rtol=1e-6)


def test_transfer_follows_a_shift_between_sub_operations(synthetic_blocks, tmp_path) -> None:
    """A device whose attention scores cost far more (relative to the rest) than on the
    source: the ridge scale correction cannot follow it, the remix of the source prediction
    with the per-sub-operation costs can, and ``auto`` picks a remix by leave-one-out."""
    _, X, y = synthetic_blocks
    target = 0.6 * y + 50 * X["attn_scores_gflop"].to_numpy()
    source = LatencyPredictor(n_estimators=300).fit(X, y)
    pick = np.random.default_rng(1).permutation(len(y))[:50]
    rest = np.setdiff1d(np.arange(len(y)), pick)
    acc = {}
    for method in ("ridge", "remix", "auto"):
        model = LatencyPredictor.load(source.save(tmp_path / "src", overwrite=True))
        model.fit_transfer(X.iloc[pick], target[pick], method=method)
        acc[method] = error_metrics(target[rest], model.predict(X.iloc[rest]))["acc10"]
    assert acc["remix"] >= 0.95 and acc["ridge"] < acc["remix"] - 0.05, acc
    assert model.transfer_method_.startswith("remix") and acc["auto"] >= 0.95
    loaded = LatencyPredictor.load(model.save(tmp_path / "t"))
    np.testing.assert_allclose(loaded.predict(X), model.predict(X), rtol=1e-6)
    meta = json.loads((tmp_path / "t" / "meta.json").read_text())
    meta["remix"]["coef"][0] = -1.0  # a remix is non-negative by construction
    (tmp_path / "t" / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(PredictorFileError, match="remix is malformed"):
        LatencyPredictor.load(tmp_path / "t")


def test_select_returns_distinct_unmeasured_candidates(synthetic_blocks) -> None:
    _, X, y = synthetic_blocks
    tr, _ = random_split(len(y))
    pool = block_samples(BlockSpace(hidden=(64, 768), seq_len=(8, 256)), 300, seed=11)
    picked = select(
        X.iloc[tr[:200]], y[tr[:200]], pool, 40, threads=2, params={"n_estimators": 100}
    )
    assert len(picked) == 40 and len(set(picked)) == 40
    assert set(picked) <= set(pool)


def test_cli_adaptive_profiles_and_retrains(tmp_path, capsys) -> None:
    space = tmp_path / "space.json"
    space.write_text(
        '{"hidden": [32, 128], "heads": [1, 4], "head_dim": [8, 32], '
        '"ffn": [32, 256], "seq_len": [4, 32], "batch": [1, 1]}'
    )
    data = tmp_path / "data"
    common = [
        "--backend",
        "eager",
        "--out",
        str(data),
        "--space-config",
        str(space),
        "--device",
        "unit",
        "--repeat",
        "3",
        "--min-repeat-ms",
        "2",
    ]
    assert main(["profile", "--samples", "30", *common]) == 0
    pred = tmp_path / "pred"
    assert main(["train", "--data", str(data), "--backend", "eager", "--out", str(pred)]) == 0
    # the starting predictor was fitted on another device: the retrained one is this device's
    src = json.loads((pred / "meta.json").read_text())
    (pred / "meta.json").write_text(json.dumps({**src, "device": "another-device"}))
    capsys.readouterr()
    argv = ["profile", "--adaptive", "--predictor", str(pred), "--samples", "6", *common]
    assert main(argv) == 2  # would retrain in place without --overwrite
    assert "--overwrite" in capsys.readouterr().err
    new = tmp_path / "pred2"
    assert main([*argv, "--predictor-out", str(new)]) == 0
    err = capsys.readouterr().err
    assert "adaptive: choosing 6 of" in err and "(30 rows known)" in err and "6 to measure" in err
    meta = json.loads((new / "meta.json").read_text())
    assert meta["dataset"]["block_rows"] == 36 and meta["adaptive"]["from"] == str(pred)
    assert meta["device"] == "unit" and meta["backend"] == "eager" and meta["threads"] == [2]
    shutil.rmtree(data)
