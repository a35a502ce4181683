from __future__ import annotations

import copy
import json
import shutil

import numpy as np
import pytest

import canao.predictors.predictor as predictor_module
from canao.cli import main
from canao.errors import UsageError
from canao.predictors.adaptive import select
from canao.predictors.evaluation import cross_validated_transfer, random_split, transfer_score
from canao.predictors.features import DIMS
from canao.predictors.metrics import error_metrics
from canao.predictors.predictor import (
    BOOSTED_FILE,
    CALIBRATION_FEATURES,
    LatencyPredictor,
    PredictorFileError,
)
from canao.predictors.records import (
    RecordsError,
    RecordsSource,
    read_records,
    records_sources,
    workload_kind,
    write_records,
)
from canao.predictors.transfer import (
    MIN_BOOSTED_BLOCKS,
    MIN_RESIDUAL_BLOCKS,
    RESIDUAL_FEATURES,
    SmoothResidual,
    cover_picks,
    model_pick_design,
    pick_design,
    transfer_picks,
)
from canao.profiling.samplers import BlockSpace, ModelSpace, block_samples, random_archs
from tests.conftest import cli_option, synthetic_ms


def test_transfer_from_few_blocks(synthetic_blocks, tmp_path) -> None:
    _, X, y = synthetic_blocks
    # the target device: 1.8x slower overall and relatively slower on big token counts
    target = y * 1.8 * (X["tokens"].to_numpy() / 64) ** 0.08
    source = LatencyPredictor(n_estimators=300).fit(X, y)
    raw = error_metrics(target, source.predict(X))
    pick = np.random.default_rng(0).permutation(len(y))[:30]
    rest, adapted = transfer_score(source, X, target, pick)  # the benchmarks' score
    assert len(rest) == len(y) - 30 and not np.isin(rest, pick).any()
    assert error_metrics(target, source.predict(X)) == raw  # it left the source as it was
    source.fit_transfer(X.iloc[pick], target[pick])
    assert error_metrics(target[rest], source.predict(X.iloc[rest])) == adapted
    assert raw["acc10"] < 0.1
    assert adapted["acc10"] >= 0.95, adapted
    loaded = LatencyPredictor.load(source.save(tmp_path / "t"))
    np.testing.assert_allclose(loaded.predict(X), source.predict(X), rtol=1e-6)


def test_cross_validated_transfer_tells_a_good_transfer_from_a_bad_one(synthetic_blocks) -> None:
    """The few blocks' own estimate of a transfer's error (each predicted by a transfer fitted
    without it) is near its error on all the other blocks, and low where the few blocks carry
    no signal (their latencies shuffled among them)."""
    _, X, y = synthetic_blocks
    target = y * 1.8 * (X["tokens"].to_numpy() / 64) ** 0.08
    source = LatencyPredictor(n_estimators=300).fit(X, y)
    pick = np.random.default_rng(0).permutation(len(y))[:40]
    rest = np.setdiff1d(np.arange(len(y)), pick)
    cv = cross_validated_transfer(source, X.iloc[pick], target[pick])
    assert cv is not None and cv["n"] == 40
    other = error_metrics(target[rest], source.fit_transfer(X.iloc[pick], target[pick]).predict(
        X.iloc[rest]))["acc10"]  # fmt: skip
    assert cv["acc10"] >= 0.9 and abs(cv["acc10"] - other) <= 0.1, (cv, other)
    shuffled = np.random.default_rng(1).permutation(target[pick])
    assert cross_validated_transfer(source, X.iloc[pick], shuffled)["acc10"] < 0.3
    assert cross_validated_transfer(source, X.iloc[pick[:4]], target[pick[:4]]) is None


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


def test_smooth_residual_follows_a_cache_boundary(synthetic_blocks, tmp_path) -> None:
    """A device that slows down once a block's weights outgrow its cache (a smooth step in
    weights_mb): no linear form follows the step, the smooth residual after it does."""
    _, X, y = synthetic_blocks
    mb = X["weights_mb"].to_numpy()
    edge = np.median(mb)
    target = 1.3 * y * (1 + 0.4 / (1 + np.exp(-(mb - edge) / (0.1 * edge))))
    source = LatencyPredictor(n_estimators=300).fit(X, y)
    pick = np.random.default_rng(2).permutation(len(y))[:50]
    rest = np.setdiff1d(np.arange(len(y)), pick)
    acc = {}
    for residual in (False, True):
        model = LatencyPredictor.load(source.save(tmp_path / "src", overwrite=True))
        model.fit_transfer(X.iloc[pick], target[pick], residual=residual)
        assert (model.residual_ is not None) == residual
        acc[residual] = error_metrics(target[rest], model.predict(X.iloc[rest]))["acc10"]
    assert acc[True] >= 0.95 and acc[True] > acc[False] + 0.05, acc
    loaded = LatencyPredictor.load(model.save(tmp_path / "t"))
    np.testing.assert_allclose(loaded.predict(X), model.predict(X), rtol=1e-9)
    meta = json.loads((tmp_path / "t" / "meta.json").read_text())
    meta["residual"]["alpha"] = meta["residual"]["alpha"][:-1]
    (tmp_path / "t" / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(PredictorFileError, match="smooth residual is malformed"):
        LatencyPredictor.load(tmp_path / "t")
    few = LatencyPredictor.load(source.save(tmp_path / "src", overwrite=True))
    assert few.fit_transfer(X.iloc[pick[:9]], target[pick[:9]]).residual_ is None  # too few


def test_boosted_residual_follows_the_ffn_alignment(synthetic_blocks, tmp_path) -> None:
    """A backend whose FFN kernels run 25% faster on widths that are a multiple of 8: none of
    the smooth residual's features sees the alignment, the boosted residual's stumps over every
    block feature do (from ``MIN_BOOSTED_BLOCKS`` blocks on)."""
    _, X, y = synthetic_blocks
    fast = X["ffn_align"].to_numpy() >= 8
    target = 1.3 * y / np.where(fast, 1.25, 1.0)
    source = LatencyPredictor(n_estimators=300).fit(X, y)
    pick = np.random.default_rng(3).permutation(len(y))[:50]
    rest = np.setdiff1d(np.arange(len(y)), pick)
    assert 5 <= fast[pick].sum() <= 45 and fast[rest].any()
    acc = {}
    for boost in (False, True):
        model = LatencyPredictor.load(source.save(tmp_path / "src", overwrite=True))
        model.fit_transfer(X.iloc[pick], target[pick], boost=boost)
        assert model.residual_ is not None and (model.boosted_ is not None) == boost
        acc[boost] = error_metrics(target[rest], model.predict(X.iloc[rest]))["acc10"]
    assert acc[True] >= 0.95 and acc[True] > acc[False] + 0.05, acc
    path = model.save(tmp_path / "t")
    loaded = LatencyPredictor.load(path)
    np.testing.assert_allclose(loaded.predict(X), model.predict(X), rtol=1e-6)
    few = LatencyPredictor.load(source.save(tmp_path / "src", overwrite=True))
    k = MIN_BOOSTED_BLOCKS - 1
    few.fit_transfer(X.iloc[pick[:k]], target[pick[:k]])
    assert few.residual_ is not None and few.boosted_ is None  # too few for it, unless asked
    forced = copy.deepcopy(few).fit_transfer(X.iloc[pick[:k]], target[pick[:k]], boost=True)
    assert forced.boosted_ is not None
    few.save(path, overwrite=True)  # an overwritten predictor leaves no stale boosted file
    assert not (path / BOOSTED_FILE).exists()
    np.testing.assert_allclose(LatencyPredictor.load(path).predict(X), few.predict(X), rtol=1e-9)
    model.save(path, overwrite=True)
    meta = json.loads((path / "meta.json").read_text())
    (path / BOOSTED_FILE).write_bytes(b"not a model")
    with pytest.raises(PredictorFileError, match="boosted residual's .* corrupt"):
        LatencyPredictor.load(path)
    meta["boosted_residual"]["file"] = "../elsewhere.ubj"  # edited by hand
    (path / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(PredictorFileError, match="boosted_residual is malformed"):
        LatencyPredictor.load(path)


def test_transfer_follows_the_activations_size(synthetic_blocks, tmp_path) -> None:
    """A backend whose blocks slow down once their activations (tokens x hidden) outgrow a cache,
    as ONNX Runtime's do against eager PyTorch's on one host: the picks' view (latency, weights,
    tokens, FLOPs, intensity) does not see that size, the transfer's features do (with the
    view's features alone, 80% of the other blocks were within ±10%)."""
    _, X, y = synthetic_blocks
    act = np.log(X["tokens"].to_numpy() * X["hidden"].to_numpy())
    target = 1.2 * y * (1 + 0.5 / (1 + np.exp(-(act - np.median(act)) / 0.25)))
    source = LatencyPredictor(n_estimators=300).fit(X, y)
    pick = np.random.default_rng(5).permutation(len(y))[:50]
    rest = np.setdiff1d(np.arange(len(y)), pick)
    source.fit_transfer(X.iloc[pick], target[pick])
    assert error_metrics(target[rest], source.predict(X.iloc[rest]))["acc10"] >= 0.95
    path = source.save(tmp_path / "t")
    meta = json.loads((path / "meta.json").read_text())
    names = meta["calibration"]["features"]
    for other in (names[:-1], [*names[:-1], "log_attn_over_14.0"]):  # older canaos', other knee
        meta["calibration"]["features"] = other
        (path / "meta.json").write_text(json.dumps(meta))
        with pytest.raises(PredictorFileError, match="calibration has other features.*again"):
            LatencyPredictor.load(path)
    for broken in ("oops", {"features": list(CALIBRATION_FEATURES)}):  # edited by hand
        meta["calibration"] = broken
        (path / "meta.json").write_text(json.dumps(meta))
        with pytest.raises(PredictorFileError, match="transfer calibration is malformed"):
            LatencyPredictor.load(path)


def test_calibration_turns_where_the_attention_scores_outgrow_a_cache(
    synthetic_blocks, monkeypatch
) -> None:
    """A backend whose ratio to the source rises past the calibration's knee of the attention
    scores' size (as Intel eager's to ONNX Runtime's): the ridge calibration alone, from 50
    covering blocks, follows it with its hinge; without the hinge (its knee out of reach),
    the largest-score blocks stay low."""
    _, X, y = synthetic_blocks
    shipped = predictor_module.CALIBRATION_KNEE
    over = np.log(X["attn_elems"].to_numpy()) - shipped
    target = 1.2 * y * np.exp(0.3 * np.maximum(over, 0.0))
    source = LatencyPredictor(n_estimators=300).fit(X, y)
    pick = transfer_picks(pick_design(X, source.predict(X)), 50, 1)
    big = np.setdiff1d(np.flatnonzero(over > 0), pick)
    assert len(big) >= 15
    acc = {}
    for knee in (shipped, np.inf):
        monkeypatch.setattr(predictor_module, "CALIBRATION_KNEE", knee)
        model = copy.deepcopy(source).fit_transfer(
            X.iloc[pick], target[pick], method="ridge", residual=False
        )
        assert model.calibration_ is not None
        acc[knee] = error_metrics(target[big], model.predict(X.iloc[big]))["acc10"]
    assert model.calibration_[-1] == 0.0  # the hinge's column is zero below an infinite knee
    assert acc[shipped] >= 0.9 > 0.8 > acc[np.inf], acc


def test_transfer_reads_a_device_between_known_ones(synthetic_blocks, tmp_path) -> None:
    """A new device halfway (in log) between the primary source and another known device, which
    differs from the primary by a wave along the FFN width: 50 blocks alone cannot pin the
    wave down, the remix with the other source's predictor (``helpers``) carries it."""
    _, X, y = synthetic_blocks
    wave = np.sin(X["ffn"].to_numpy() / 150.0)
    source = LatencyPredictor(n_estimators=300).fit(X, y)
    other = LatencyPredictor(n_estimators=300).fit(X, y * np.exp(0.4 * wave))
    target = 1.3 * y * np.exp(0.2 * wave)
    pick = np.random.default_rng(3).permutation(len(y))[:50]
    rest = np.setdiff1d(np.arange(len(y)), pick)
    acc, models = {}, {}
    for helpers in ((), (other,)):
        model = LatencyPredictor.load(source.save(tmp_path / "src", overwrite=True))
        model.fit_transfer(X.iloc[pick], target[pick], helpers=helpers)
        assert len(model.others_) == len(helpers)
        acc[len(helpers)] = error_metrics(target[rest], model.predict(X.iloc[rest]))["acc10"]
        models[len(helpers)] = model
    assert acc[1] >= 0.95 and acc[1] > acc[0] + 0.1, acc
    mixed = models[1]
    assert mixed.transfer_method_.startswith("remix")
    assert 0.3 < mixed.remix_[-1] < 1.0  # the other source carries about half the target
    path = mixed.save(tmp_path / "t")
    assert (path / "sources" / "0" / "model.ubj").is_file()
    loaded = LatencyPredictor.load(path)
    np.testing.assert_allclose(loaded.predict(X), mixed.predict(X), rtol=1e-6)
    meta = json.loads((path / "meta.json").read_text())
    assert meta["other_sources"][0]["folder"] == "sources/0"
    assert meta["remix"]["features"][-1] == "other_source_0_ms"
    # a source that knows nothing of this device (latencies shuffled) is weighed and left out
    blind = LatencyPredictor(n_estimators=100).fit(X, np.random.default_rng(4).permutation(y))
    left = LatencyPredictor.load(source.save(tmp_path / "src", overwrite=True))
    assert left.fit_transfer(X.iloc[pick], target[pick], helpers=[blind]).others_ == []
    ridge = LatencyPredictor.load(source.save(tmp_path / "src", overwrite=True))
    assert (
        ridge.fit_transfer(X.iloc[pick], target[pick], method="ridge", helpers=[other]).others_
        == []
    )
    models[0].save(tmp_path / "plain")
    mixed.save(tmp_path / "plain", overwrite=True)
    models[0].save(tmp_path / "plain", overwrite=True)  # no stale other sources left behind
    assert not (tmp_path / "plain" / "sources").exists()
    (path / "sources" / "0" / "model.ubj").write_bytes(b"not a model")
    with pytest.raises(PredictorFileError, match="other source 0: .*corrupt"):
        LatencyPredictor.load(path)
    for i in (0, 1):
        other.save(path / "sources" / str(i), overwrite=True)
    meta["other_sources"] *= 2  # two other sources, a remix for one
    (path / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(PredictorFileError, match="remix has other features"):
        LatencyPredictor.load(path)


def _records(X, linear, rest):
    """A records table for the blocks ``X``: their dims and the two kinds' times (ms)."""
    import pandas as pd

    table = X[list(DIMS)].astype(int).reset_index(drop=True)
    return pd.concat([table, pd.DataFrame({"linear_ms": linear, "rest_ms": rest})], axis=1)


def test_transfer_weighs_a_remix_of_the_bytes_terms_alone(synthetic_blocks, tmp_path) -> None:
    """A device halfway between two known ones, from 30 blocks measured with 3% noise: nine
    FLOPs weights more could only follow the noise. ``auto`` weighs every form, each remix also
    with the FLOPs terms held at zero, and takes the best by leave-one-out: here the bytes-only
    remix with the other source. Its FLOPs weights are zero; it saves and loads as any remix."""
    from canao.predictors.predictor import (
        BASE_FEATURES,
        TRANSFER_METHODS,
        _loo_score,
        _remix_design,
        remix_features,
    )

    _, X, y = synthetic_blocks
    tokens = X["tokens"].to_numpy()
    source = LatencyPredictor(n_estimators=300).fit(X, y)
    other = LatencyPredictor(n_estimators=300).fit(X, y * (tokens / 64) ** 0.3)
    rng = np.random.default_rng(1)
    target = 0.5 * y * (1 + (tokens / 64) ** 0.3) * np.exp(rng.normal(0, 0.03, len(y)))
    pick = rng.permutation(len(y))[:30]
    rest = np.setdiff1d(np.arange(len(y)), pick)
    model = LatencyPredictor.load(source.save(tmp_path / "src"))
    model.fit_transfer(X.iloc[pick], target[pick], helpers=[other], residual=False)
    assert (model.transfer_method_, model.remix_terms_, len(model.others_)) == ("remix", "bytes", 1)
    assert error_metrics(target[rest], model.predict(X.iloc[rest]))["acc10"] >= 0.97
    names = remix_features(1)
    flops = [names.index(f) for f in BASE_FEATURES if f.endswith("_gflop")]
    assert len(flops) == len(BASE_FEATURES) // 2 and not np.any(model.remix_[flops])
    assert 0.3 < model.remix_[names.index("other_source_0_ms")] < 0.7  # it carries about half
    # the chosen form scores best by leave-one-out among all (ridge, remixes with and without
    # the other source, each of every term and of the bytes alone)
    Xp, yp, src = X.iloc[pick], target[pick], source.predict(X.iloc[pick])
    designs = {
        False: _remix_design(Xp, src),
        True: _remix_design(Xp, src, other.predict(Xp)[:, None]),
    }
    scores = {
        (m, o, t): _loo_score((m, o, t), designs, Xp, yp, 1.0)
        for m in TRANSFER_METHODS
        for o in (False, True)
        for t in ("costs", "bytes")
        if m != "ridge" or (not o and t == "costs")
    }
    assert len(scores) == 9 and min(scores.values()) == scores[("remix", True, "bytes")]
    assert scores[("remix", True, "bytes")] < scores[("remix", True, "costs")]
    loaded = LatencyPredictor.load(model.save(tmp_path / "t"))
    np.testing.assert_allclose(loaded.predict(X), model.predict(X), rtol=1e-9)
    explicit = LatencyPredictor.load(source.save(tmp_path / "src", overwrite=True))
    explicit.fit_transfer(X.iloc[pick], target[pick], method="remix", helpers=[other])
    assert explicit.remix_terms_ == "costs"  # a method given by name weighs every term


def test_transfer_reads_tuned_tvm_from_its_records(synthetic_blocks, tmp_path) -> None:
    """A tuned-TVM device whose every block ran as well as the schedules found for its shapes
    (a factor of 0.78-1.28 no other device predicts): 50 blocks alone cannot know it, its
    tuning records (timed alone, at another scale, so the remix maps them) carry it."""
    _, X, y = synthetic_blocks
    luck = np.exp(np.random.default_rng(7).uniform(-0.25, 0.25, len(y)))
    target = 1.2 * y * luck
    table = _records(X, 0.5 * y * luck, 0.05 * y)
    source = LatencyPredictor(n_estimators=300).fit(X, y)
    pick = np.random.default_rng(3).permutation(len(y))[:50]
    rest = np.setdiff1d(np.arange(len(y)), pick)
    acc, models = {}, {}
    for name, helpers in (("alone", []), ("records", records_sources(table, {"table": "t"}))):
        model = LatencyPredictor.load(source.save(tmp_path / "src", overwrite=True))
        model.fit_transfer(X.iloc[pick], target[pick], helpers=helpers)
        acc[name] = error_metrics(target[rest], model.predict(X.iloc[rest]))["acc10"]
        models[name] = model
    assert acc["records"] >= 0.95 and acc["records"] > acc["alone"] + 0.25, acc
    tvm = models["records"]
    # from 50 blocks the boosted residual follows the blocks alone, not beside the records
    assert models["alone"].boosted_ is not None and tvm.boosted_ is None
    assert tvm.transfer_method_.startswith("remix") and 1.5 < tvm.remix_[-2] < 3.5  # 1.2 / 0.5
    path = tvm.save(tmp_path / "t")
    meta = json.loads((path / "meta.json").read_text())
    assert [(s["source"], s["records"]) for s in meta["other_sources"]] == [
        ("canao-tuning-records", "linear"),
        ("canao-tuning-records", "rest"),
    ]
    loaded = LatencyPredictor.load(path)
    np.testing.assert_allclose(loaded.predict(X), tvm.predict(X), rtol=1e-9)
    # a block whose shapes were never tuned has no records: refused, not guessed
    with pytest.raises(RecordsError, match="without tuning records in this table: 1"):
        loaded.predict(X.iloc[:1].assign(ffn=99_999))
    (path / "sources" / "1" / "records.json").write_text('{"format": "canao-tuning-records"}')
    with pytest.raises(PredictorFileError, match="other source 1: .*columns"):
        LatencyPredictor.load(path)


def test_records_base_carries_tuned_tvm_past_its_training_range(synthetic_blocks, tmp_path):
    """Tuned TVM's per-shape schedule luck, in the device's own records: as the base the trees
    learn their ratio to, the records predict blocks larger than any trained on, which an
    analytic base with trees (constant past the range) cannot."""
    from canao.predictors.evaluation import out_of_range_split

    _, X, y = synthetic_blocks
    luck = np.exp(np.random.default_rng(7).uniform(-0.25, 0.25, len(y)))
    tvm = y * luck * (1 + 0.3 * X["hidden"].to_numpy() / 768)  # large blocks relatively slower
    table = _records(X, 0.5 * y * luck, 0.05 * y)
    tr, te, _ = out_of_range_split(X)
    plain = LatencyPredictor(n_estimators=300).fit(X.iloc[tr], tvm[tr])
    model = LatencyPredictor(n_estimators=300, base="records", records=table)
    model.fit(X.iloc[tr], tvm[tr])
    acc = {
        name: error_metrics(tvm[te], m.predict(X.iloc[te]))["acc10"]
        for name, m in (("plain", plain), ("records", model))
    }
    assert acc["records"] >= 0.9 and acc["records"] > acc["plain"] + 0.3, acc
    path = model.save(tmp_path / "p", {"backend": "tvm"})
    meta = json.loads((path / "meta.json").read_text())
    assert meta["base"]["features"] == ["records_linear_ms", "records_rest_ms"]
    assert "records" not in meta["params"]  # the table is plain numbers in its own folder
    loaded = LatencyPredictor.load(path)
    np.testing.assert_allclose(loaded.predict(X), model.predict(X), rtol=1e-9)
    with pytest.raises(RecordsError, match="without tuning records in this table: 1"):
        loaded.predict(X.iloc[:1].assign(ffn=99_999))
    plain.save(path, overwrite=True)  # no stale records base left behind
    assert not (path / "base-records").exists()
    model.save(path, overwrite=True)
    (path / "base-records" / "records.json").write_text("[1, 2")
    with pytest.raises(PredictorFileError, match="records base: .*not a records source"):
        LatencyPredictor.load(path)
    meta["base"]["features"] = ["qkv_gflop", "qkv_mb"]
    (path / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(PredictorFileError, match="analytic base is missing or malformed"):
        LatencyPredictor.load(path)
    from canao.predictors.tuning import tune  # canao train --tune --records: every trial

    params, _ = tune(X, tvm, n_trials=1, base="records", records=table)
    assert params["base"] == "records" and params["records"] is table
    with pytest.raises(ValueError, match="goes with base='records'"):
        LatencyPredictor(base="records").fit(X, y)
    with pytest.raises(ValueError, match="goes with base='records'"):
        LatencyPredictor(records=table).fit(X, y)


def test_records_tables_are_checked_and_round_trip(synthetic_blocks, tmp_path) -> None:
    _, X, y = synthetic_blocks
    table = _records(X.iloc[:20], y[:20], 0.1 * y[:20])
    write_records(table, tmp_path / "r.parquet")
    back = read_records(tmp_path / "r.parquet")
    np.testing.assert_allclose(back["linear_ms"], y[:20])
    assert back["hidden"].dtype == np.int64
    src = RecordsSource(back, "rest")
    np.testing.assert_allclose(src.predict(X.iloc[5:8]), 0.1 * y[5:8])
    for bad, match in (
        (table.drop(columns="rest_ms"), "no rest_ms column"),
        (table.assign(linear_ms=-1.0), "finite and >= 0"),
        (table.assign(ffn=0), "positive integers"),
        (table.iloc[[0, 0]], "appears twice"),
    ):
        with pytest.raises(RecordsError, match=match):
            RecordsSource(bad, "linear")
    with pytest.raises(RecordsError, match="kind must be one of"):
        RecordsSource(table, "softmax")
    assert issubclass(RecordsError, UsageError)  # one line from any canao command
    (tmp_path / "bad.parquet").write_text("not parquet")
    with pytest.raises(RecordsError, match="not a records table"):
        read_records(tmp_path / "bad.parquet")
    assert workload_kind("fused_matmul3_add1") == "linear"
    assert workload_kind("matmul1") == workload_kind("fused_fast_softmax") == "rest"


def test_smooth_residual_reproduces_a_smooth_function() -> None:
    """Its NumPy evaluation of the fitted process: near the training values on the training
    points and between them (a wrong kernel formula would miss both)."""
    rng = np.random.default_rng(0)
    Z = rng.uniform(0, 4, (60, len(RESIDUAL_FEATURES)))
    f = lambda z: 0.2 * np.sin(z[:, 0]) + 0.05 * z[:, 1]  # noqa: E731
    model = SmoothResidual.fit(Z, f(Z))
    Zq = rng.uniform(0.5, 3.5, (200, len(RESIDUAL_FEATURES)))
    assert np.abs(model(Z) - f(Z)).max() < 0.02
    assert np.abs(model(Zq) - f(Zq)).mean() < 0.02
    again = SmoothResidual.from_dict(json.loads(json.dumps(model.to_dict())))
    np.testing.assert_array_equal(again(Zq), model(Zq))


def test_transfer_picks_cover_a_small_cluster() -> None:
    """990 candidates in one place and 10 far away: 10 random picks would miss the small group
    (90% of the time), the covering picks take some of it; distinct, sorted, reproducible."""
    rng = np.random.default_rng(0)
    Z = np.r_[rng.normal(0, 1, (990, 5)), rng.normal(20, 1, (10, 5))]
    pick = transfer_picks(Z, 10, seed=3)
    assert len(pick) == 10 == len(set(pick)) and np.all(np.diff(pick) > 0)
    assert np.any(pick >= 990)
    np.testing.assert_array_equal(pick, transfer_picks(Z, 10, seed=3))
    np.testing.assert_array_equal(transfer_picks(Z[:7], 10), np.arange(7))


def test_cover_picks_span_the_whole_models_extremes_first() -> None:
    """The whole models that carry an overhead over: distinct, each first k of them the same
    for any k, the largest and smallest models among the first few, and every model nearer to
    one of them than to random picks of as many."""
    archs = random_archs(ModelSpace(hidden=(128, 256, 384, 512), seq_len=(32, 64, 128)), 80)
    blocks_ms = np.array([synthetic_ms(list(a.blocks())).sum() for a in archs])
    Z = model_pick_design(archs, blocks_ms)
    assert Z.shape == (80, 4) and np.allclose(Z[:, 0], np.log(blocks_ms))
    pick = cover_picks(Z, 12, seed=1)
    assert len(set(pick.tolist())) == 12
    np.testing.assert_array_equal(cover_picks(Z, 5, seed=1), pick[:5])
    assert {int(np.argmax(blocks_ms)), int(np.argmin(blocks_ms))} & set(pick[:4].tolist())
    Zs = (Z - Z.mean(axis=0)) / Z.std(axis=0)

    def radius(idx: np.ndarray) -> float:  # the farthest any model is from its nearest pick
        return float(np.linalg.norm(Zs[:, None] - Zs[idx][None], axis=2).min(axis=1).max())

    rng = np.random.default_rng(0)
    assert all(radius(pick) < radius(rng.permutation(80)[:12]) for _ in range(20))
    np.testing.assert_array_equal(cover_picks(Z[:7], 10), np.arange(7))


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


def test_cli_profiles_the_covering_blocks_and_transfers(tmp_path, capsys) -> None:
    space = tmp_path / "space.json"
    space.write_text(
        '{"hidden": [32, 128], "heads": [1, 4], "head_dim": [8, 32], '
        '"ffn": [32, 256], "seq_len": [4, 32], "batch": [1, 1]}'
    )
    common = ["--space-config", str(space), "--repeat", "3", "--min-repeat-ms", "2"]
    src_data, new_data = tmp_path / "src", tmp_path / "new"
    assert main(["profile", "--backend", "eager", "--device", "unit", "--samples", "30",
                 "--out", str(src_data), *common]) == 0  # fmt: skip
    pred = tmp_path / "pred"
    assert main(["train", "--data", str(src_data), "--backend", "eager", "--out", str(pred)]) == 0
    argv = ["profile", "--backend", "eager", "--device", "unit2", "--out", str(new_data)]
    argv += ["--transfer-from", str(pred), *common]
    assert main([*argv, "--samples", "12", "--space", "models"]) == 2  # --space-config
    assert "does not apply to models" in capsys.readouterr().err
    assert main([*argv, "--samples", "12", "--remeasure", "all"]) == 2
    assert "no --adaptive or --remeasure" in capsys.readouterr().err
    assert main([*argv, "--samples", "12"]) == 0
    err = capsys.readouterr().err
    assert "transfer: 12 of 480 candidate blocks cover" in err and "12 to measure" in err
    grid = tmp_path / "grid.json"  # tuned TVM measures grid blocks only: picked among them
    grid.write_text('{"hidden": [32], "heads": [1, 2], "head_dim": [8], "ffn": [32, 64, 96], '
                    '"seq_len": [4], "batch": [1], "layers": [1]}')  # fmt: skip
    gargv = ["profile", "--backend", "eager", "--device", "unit3", "--out", str(tmp_path / "g")]
    gargv += ["--transfer-from", str(pred), "--space", "grid", "--space-config", str(grid)]
    assert main([*gargv, "--samples", "3", "--repeat", "3", "--min-repeat-ms", "2"]) == 0
    assert "transfer: 3 of 6 candidate blocks cover" in capsys.readouterr().err
    # the whole models that carry a source's overhead over: the ones that span its view
    margv = ["profile", "--backend", "eager", "--device", "unit2", "--out", str(tmp_path / "m")]
    margv += ["--transfer-from", str(pred), "--space", "models", "--samples", "2"]
    assert main([*margv, "--repeat", "3", "--min-repeat-ms", "2"]) == 0
    assert "transfer: 2 of 80 candidate models span" in capsys.readouterr().err
    from canao.predictors.evaluation import load_rows, model_rows

    measured, _, _ = model_rows(load_rows(tmp_path / "m", "eager"))
    candidates = random_archs(ModelSpace(), 80)
    sums = LatencyPredictor.load(pred).predict_archs(candidates, 2, overhead=False)
    spanning = cover_picks(model_pick_design(candidates, sums), 2)
    assert {a.to_json() for a in measured} == {candidates[i].to_json() for i in spanning}
    out = tmp_path / "few"
    argv = ["train", "--transfer-from", str(pred), "--data", str(new_data), "--backend", "eager"]
    assert main([*argv, "--few", "2", "--out", str(out)]) == 2
    assert "--few must be >= 3" in capsys.readouterr().err
    assert main([*argv, "--few", "12", "--out", str(out)]) == 0
    meta = json.loads((out / "meta.json").read_text())
    assert meta["device"] == "unit2" and meta["dataset"]["block_rows"] == 12
    assert meta["transfer"]["pick"] == "cover" and meta["transfer"]["smooth_residual"]
    assert not meta["transfer"]["boosted_residual"]  # 12 blocks: too few for it
    assert meta["residual"]["features"][0] == "log_pred_ms"
    assert meta["metrics"]["blocks_cv"]["n"] == 12  # each of the 12 predicted without it
    out_line = capsys.readouterr().out
    assert "smooth residual" in out_line and "predicted without it (10-fold)" in out_line
    assert "boosted residual" not in out_line
    # asked for, it follows the smooth residual from 10 blocks on; never without a transfer
    boosted = ["--few", "12", "--boosted-residual", "on", "--out", str(tmp_path / "boosted")]
    assert main([*argv, *boosted]) == 0
    meta = json.loads((tmp_path / "boosted" / "meta.json").read_text())
    assert meta["transfer"]["boosted_residual"] and meta["boosted_residual"] is not None
    assert meta["transfer"]["boosted_residual_option"] == "on"
    assert "+ boosted residual" in capsys.readouterr().out
    assert main([*argv, *boosted, "--overwrite", "--few", "9"]) == 2
    assert "--boosted-residual on needs at least 10 blocks" in capsys.readouterr().err
    plain = ["train", "--data", str(new_data), "--backend", "eager", "--out", str(out)]
    assert main([*plain, "--boosted-residual", "off", "--overwrite"]) == 2
    assert "--boosted-residual goes with --transfer-from" in capsys.readouterr().err
    help_text = str(cli_option("train", "boosted_residual").help)
    assert f"from {MIN_BOOSTED_BLOCKS} blocks on" in help_text  # the twinned thresholds
    assert f"on from {MIN_RESIDUAL_BLOCKS} " in help_text
    also = ["--also-from", str(pred), "--out", str(tmp_path / "mixed")]
    assert main([*argv, "--few", "12", *also]) == 0
    meta = json.loads((tmp_path / "mixed" / "meta.json").read_text())
    assert meta["transfer"]["also_from"] == [str(pred)]
    used = meta["transfer"]["other_sources_used"]
    # used only in a remix; leave-one-out may also pick a remix without it
    assert used == len(meta["other_sources"]) and used <= (meta["remix"] is not None)
    # which of the remix's terms it weighs: none without a remix
    terms = meta["transfer"]["remix_terms"]
    assert terms in ("costs", "bytes") if meta["remix"] is not None else terms is None
    assert "1 other source" in capsys.readouterr().out
    assert main(["train", "--data", str(new_data), "--backend", "eager", *also]) == 2
    assert "--also-from goes with --transfer-from" in capsys.readouterr().err
    # the new device's tuning records per block (as canao records writes them)
    from canao.predictors.evaluation import blocks_xy, load_rows

    Xn, yn = blocks_xy(load_rows(new_data, "eager"))
    write_records(_records(Xn, 0.5 * yn, 0.1 * yn), tmp_path / "rec.parquet")
    rec = ["--records", str(tmp_path / "rec.parquet"), "--out", str(tmp_path / "rec")]
    assert main([*argv, "--few", "12", *rec]) == 0
    meta = json.loads((tmp_path / "rec" / "meta.json").read_text())
    assert meta["transfer"]["records"] == str(tmp_path / "rec.parquet")
    assert "the tuning records" in capsys.readouterr().out
    write_records(_records(Xn.iloc[1:], 0.5 * yn[1:], 0.1 * yn[1:]), tmp_path / "rec.parquet")
    assert main([*argv, "--few", "12", *rec, "--overwrite"]) == 2
    assert "without tuning records in this table: 1" in capsys.readouterr().err
    # without --transfer-from the records are the base of a predictor trained on --data
    base = ["train", "--data", str(src_data), "--backend", "eager", *rec[:2]]
    assert main([*base, "--out", str(tmp_path / "rb")]) == 2  # not src_data's blocks
    assert "without tuning records in this table" in capsys.readouterr().err
    Xs, ys = blocks_xy(load_rows(src_data, "eager"))
    write_records(_records(Xs, 0.5 * ys, 0.1 * ys), tmp_path / "rec.parquet")
    assert main([*base, "--out", str(tmp_path / "rb")]) == 0
    meta = json.loads((tmp_path / "rb" / "meta.json").read_text())
    assert meta["base"]["features"] == ["records_linear_ms", "records_rest_ms"]
    assert meta["records"] == str(tmp_path / "rec.parquet") and meta["params"]["base"] == "records"
    assert main([*base, "--out", str(tmp_path / "rb2"), "--base", "none"]) == 2
    assert "not with --base none" in capsys.readouterr().err
    evaluate = ["evaluate", "--data", str(src_data), "--backend", "eager", *rec[:2]]
    evaluate += ["--models", "xgboost,xgboost+records,flops-linear", "--out", str(tmp_path / "e")]
    assert main([*evaluate, "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)["table"]
    assert {r["model"] for r in rows} == {"xgboost", "xgboost+records", "flops-linear"}
    assert main([*evaluate, "--data", str(new_data)]) == 2  # blocks outside the table
    assert "--records" in (err := capsys.readouterr().err) and "without tuning records" in err
    predict = ["predict", "--predictor", str(tmp_path / "rb"), "--arch", "bert-mini"]
    assert main(predict) == 2  # bert-mini's blocks were never tuned: refused, not guessed
    assert "without tuning records in this table" in capsys.readouterr().err


def test_cli_transfer_rescales_the_whole_model_overhead(synthetic_blocks, tmp_path, capsys):
    """canao train --transfer-from with whole models of the new device in --data rescales the
    source's whole-model overhead from --few-models of them and scores the rest; with none it
    keeps the source's (in the source device's milliseconds) and says so."""
    from canao.profiling.runner import row_key
    from canao.profiling.store import LatencyStore
    from tests.profiling.test_store import make_row

    specs, X, y = synthetic_blocks
    archs = random_archs(ModelSpace(hidden=(128, 256, 384), seq_len=(32, 64, 128)), 28)
    models = np.array([1.1 * synthetic_ms(list(a.blocks())).sum() + 0.3 for a in archs])
    source = LatencyPredictor(n_estimators=200).fit(X, y)
    source.fit_overhead(archs[:20], models[:20], threads=2)
    pred = source.save(tmp_path / "pred", {"backend": "eager", "device": "unit", "threads": [2]})
    # the new device runs blocks and whole models alike 2x slower than the source
    with LatencyStore(tmp_path / "new", "unit2", "eager") as st:
        for spec, ms in zip(specs[:20], 2 * y[:20], strict=True):
            dims = {d: getattr(spec, d) for d in DIMS}
            st.append({**make_row(0, "unit2"), **dims, "key": row_key(spec, 2), "median_ms": ms})
        for arch, ms in zip(archs[20:], 2 * models[20:], strict=True):
            st.append({**make_row(0, "unit2"), "kind": "model", "hidden": arch.hidden,
                       "seq_len": arch.seq_len, "batch": arch.batch, "arch": arch.to_json(),
                       "num_layers": arch.num_layers, "key": row_key(arch, 2),
                       "median_ms": ms})  # fmt: skip
    source_overhead = json.loads((pred / "meta.json").read_text())["overhead"]
    argv = ["train", "--transfer-from", str(pred), "--data", str(tmp_path / "new")]
    argv += ["--backend", "eager", "--few", "20"]
    assert main([*argv, "--few-models", "5", "--out", str(tmp_path / "t")]) == 0
    meta = json.loads((tmp_path / "t" / "meta.json").read_text())
    assert meta["transfer"]["overhead"] == "rescaled from 5 models"
    rest = meta["metrics"]["models_rest"]
    assert rest["n"] == 3  # the other three scored
    assert meta["overhead"]["coef"] != source_overhead["coef"]
    assert meta["metrics"]["models_cv"]["n"] == 5  # each of the 5 predicted without it
    out = capsys.readouterr().out
    assert "whole-model overhead rescaled from 5 models" in out
    assert "each of them predicted without it: MAPE" in out
    assert main([*argv, "--few-models", "0", "--out", str(tmp_path / "k")]) == 0
    meta = json.loads((tmp_path / "k" / "meta.json").read_text())
    assert meta["transfer"]["overhead"] == "source's" and "models_rest" not in meta["metrics"]
    assert meta["overhead"]["coef"] == source_overhead["coef"]
    assert "keep the source device's overhead" in capsys.readouterr().err
    # rescaled, the whole models of the new device are read far better than with the source's
    # overhead kept (in the source device's milliseconds)
    mape = {
        name: error_metrics(
            2 * models[20:], LatencyPredictor.load(tmp_path / name).predict_archs(archs[20:], 2)
        )["mape"]
        for name in ("t", "k")
    }
    assert mape["t"] < mape["k"] / 2, mape
    assert main([*argv, "--few-models", "-1", "--out", str(tmp_path / "x")]) == 2
    assert "--few-models must be >= 0" in capsys.readouterr().err
