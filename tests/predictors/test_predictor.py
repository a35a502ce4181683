from __future__ import annotations

import json

import numpy as np
import pytest

from canao.predictors.baselines import BASELINES
from canao.predictors.evaluation import (
    cross_validated,
    out_of_range_split,
    pooled,
    random_split,
)
from canao.predictors.features import features_from_specs
from canao.predictors.metrics import error_metrics
from canao.predictors.predictor import (
    OVERHEAD_FEATURES,
    LatencyPredictor,
    NotFittedError,
    PredictorFileError,
    overhead_features,
)
from canao.profiling.samplers import ModelSpace, random_archs
from tests.conftest import cli_option, synthetic_ms


def test_metrics_by_hand() -> None:
    m = error_metrics(np.array([1.0, 2.0, 4.0, 10.0]), np.array([1.04, 2.0, 4.6, 9.0]))
    assert m["acc5"] == 0.5 and m["acc10"] == 0.75
    assert m["mape"] == pytest.approx((4 + 0 + 15 + 10) / 4)
    assert m["max_err"] == pytest.approx(15.0)
    assert m["kendall_tau"] == pytest.approx(1.0)
    with pytest.raises(ValueError):
        error_metrics(np.array([0.0]), np.array([1.0]))


def test_learns_a_device_and_beats_flops(synthetic_blocks) -> None:
    _, X, y = synthetic_blocks
    tr, te = random_split(len(y), seed=1)
    xgb = LatencyPredictor(n_estimators=400).fit(X.iloc[tr], y[tr])
    ours = error_metrics(y[te], xgb.predict(X.iloc[te]))
    flops = error_metrics(
        y[te], BASELINES["flops-linear"]().fit(X.iloc[tr], y[tr]).predict(X.iloc[te])
    )
    assert ours["acc10"] >= 0.97, ours
    assert ours["mape"] < flops["mape"] / 2


def test_cross_validation_holds_every_row_out(synthetic_blocks) -> None:
    _, X, y = synthetic_blocks
    # a 1-nearest-neighbour lookup is exact on its own training rows: were any row scored by
    # a model that saw it, the shares would rise towards 100%
    lookup = BASELINES["nearest"]
    assert error_metrics(y, lookup().fit(X, y).predict(X))["acc10"] == 1.0
    passes = cross_validated(X, y, lookup, folds=4, seeds=(0, 1))
    assert [m["n"] for m in passes] == [len(y), len(y)]
    assert all(m["acc10"] < 0.5 for m in passes), passes
    assert passes[0]["mape"] != passes[1]["mape"]  # another fold assignment, other neighbours
    both = pooled(passes)
    assert both["mape"] == pytest.approx((passes[0]["mape"] + passes[1]["mape"]) / 2)
    assert both["max_err"] == max(m["max_err"] for m in passes)  # the worst pass, not the mean


def test_analytic_base_extrapolates(synthetic_blocks) -> None:
    _, X, y = synthetic_blocks
    tr, te, limits = out_of_range_split(X)
    assert (X.iloc[te][list(limits)] > list(limits.values())).any(axis=1).all()
    with_base = LatencyPredictor(n_estimators=400).fit(X.iloc[tr], y[tr])
    trees_only = LatencyPredictor(n_estimators=400, base="none").fit(X.iloc[tr], y[tr])
    a = error_metrics(y[te], with_base.predict(X.iloc[te]))
    b = error_metrics(y[te], trees_only.predict(X.iloc[te]))
    assert a["mape"] < b["mape"]
    assert a["acc10"] >= 0.9, a


def test_unfitted_and_bad_input() -> None:
    with pytest.raises(NotFittedError):
        LatencyPredictor().predict(np.zeros((1, 38)))
    with pytest.raises(ValueError, match="feature columns"):
        LatencyPredictor().fit(np.zeros((3, 2)), [1, 2, 3])
    with pytest.raises(ValueError, match="base must be"):
        LatencyPredictor(base="magic").fit(np.ones((3, 38)), [1.0, 2.0, 3.0])


def test_model_level_composition_recovers_overhead(synthetic_blocks) -> None:
    _, X, y = synthetic_blocks
    model = LatencyPredictor(n_estimators=300).fit(X, y)
    archs = random_archs(ModelSpace(hidden=(128, 256, 384, 512), seq_len=(32, 64, 128)), 60)
    blocks = np.array(
        [model.predict(features_from_specs(list(a.blocks()), 2)).sum() for a in archs]
    )
    np.testing.assert_allclose(model.predict_archs(archs, 2), blocks, rtol=1e-5)
    # the weight traffic terms, computed here from the specs one layer at a time
    layer_mb = [[b.params * 4 / 1e6 for b in a.blocks()] for a in archs]
    F = dict(zip(OVERHEAD_FEATURES, overhead_features(archs, blocks, 4.0, 16.0).T, strict=True))
    np.testing.assert_allclose(F["weights_mb"], [sum(w) for w in layer_mb])
    cached = np.array([sum(min(x, 4.0) for x in w) for w in layer_mb])
    np.testing.assert_allclose(F["layer_weights_cached_mb"], cached)
    beyond = np.array([max(sum(w) - 16.0, 0) for w in layer_mb])
    np.testing.assert_allclose(F["weights_beyond_cache_mb"], beyond)
    np.testing.assert_allclose(F["blocks_ms"], blocks)
    scores = [sum(b.batch * b.heads * b.seq_len**2 for b in a.blocks()) / 1e6 for a in archs]
    np.testing.assert_allclose(F["attention_scores_m"], scores)
    layer_tokens = np.array([sum(b.batch * b.seq_len for b in a.blocks()) for a in archs])
    np.testing.assert_allclose(F["layer_tokens_k"], layer_tokens / 1e3)
    np.testing.assert_allclose(
        F["layer_activations_m"], [a.num_layers * a.seq_len * a.hidden / 1e6 for a in archs]
    )
    assert 0 < min(cached) < max(beyond)
    assert sum(beyond == 0) > 5
    # a device that runs whole models 10% slower than their blocks alone and adds 0.2 ms,
    # 0.5 ns per token x hidden, 4 us per token in every layer, the time to read again, at
    # 20 GB/s, each layer's weights that a lone block kept in its 4 MB cache, and at 10 GB/s
    # the model's weights beyond 16 MB
    truth = np.array([synthetic_ms(list(a.blocks())).sum() for a in archs])
    tokens_x_hidden = np.array([a.seq_len * a.hidden for a in archs])
    measured = (
        1.1 * truth + 0.2 + 0.5e-6 * tokens_x_hidden + 4e-3 * layer_tokens + cached / 20
    ) + beyond / 10
    model.fit_overhead(archs[:40], measured[:40], threads=2)
    assert model.overhead_cache_mb_ == (4.0, 16.0)
    pred = model.predict_archs(archs[40:], 2)
    assert error_metrics(measured[40:], pred)["acc10"] >= 0.95
    assert model.predict_arch(archs[45], 2) == pytest.approx(pred[5])
    # without the weight terms and the scale the same device is out of reach
    model.overhead_coef_ = None
    short = OVERHEAD_FEATURES.index("weights_mb")
    residual = measured[:40] - blocks[:40]
    A = overhead_features(archs, blocks, 4.0, 16.0)[:, :short]
    coef, *_ = np.linalg.lstsq(A[:40] / measured[:40, None], residual / measured[:40], rcond=None)
    old_pred = blocks[40:] + A[40:] @ coef
    with_weights, without = (
        error_metrics(measured[40:], pred),
        error_metrics(measured[40:], old_pred),
    )
    assert with_weights["max_err"] < 2 < 10 < without["max_err"]
    assert with_weights["mape"] < without["mape"] / 4
    # and without the per-layer token terms, so is the 4 us per token in every layer
    per_layer = {"layer_tokens_k", "layer_activations_m"}
    keep = [i for i, name in enumerate(OVERHEAD_FEATURES) if name not in per_layer]
    A = overhead_features(archs, blocks, 4.0, 16.0)[:, keep]
    coef, *_ = np.linalg.lstsq(A[:40] / measured[:40, None], residual / measured[:40], rcond=None)
    no_layer = error_metrics(measured[40:], blocks[40:] + A[40:] @ coef)
    assert with_weights["mape"] < no_layer["mape"] / 4
    with pytest.raises(ValueError, match="finite and > 0"):
        model.fit_overhead(archs[:3], [1.0, 0.0, 2.0], threads=2)


def test_rescaled_overhead_carries_whole_models_to_a_slower_device(synthetic_blocks) -> None:
    """A new device that runs everything, blocks and the whole-model overhead alike, 2x slower
    than the source: a transfer from blocks alone carries the blocks, the source's overhead
    stays in its milliseconds; rescaled from 5 whole models of the new device, it follows."""
    _, X, y = synthetic_blocks
    archs = random_archs(ModelSpace(hidden=(128, 256, 384, 512), seq_len=(32, 64, 128)), 60)
    truth = np.array([synthetic_ms(list(a.blocks())).sum() for a in archs])
    layer_tokens = np.array([a.num_layers * a.seq_len for a in archs])
    source_ms = 1.1 * truth + 0.3 + 8e-3 * layer_tokens
    model = LatencyPredictor(n_estimators=300).fit(X, y)
    model.fit_overhead(archs[:40], source_ms[:40], threads=2)
    assert error_metrics(source_ms[40:], model.predict_archs(archs[40:], 2))["acc10"] >= 0.95
    pick = np.random.default_rng(0).permutation(len(y))[:30]
    model.fit_transfer(X.iloc[pick], 2.0 * y[pick])
    target_ms = 2.0 * source_ms
    kept = error_metrics(target_ms[40:], model.predict_archs(archs[40:], 2))
    before = model.overhead_coef_.copy()
    cache = model.overhead_cache_mb_

    def restore() -> None:  # the transferred source's overhead, as it was before any fit
        model.overhead_coef_, model.overhead_cache_mb_ = before, cache

    model.rescale_overhead(archs[:5], target_ms[:5], threads=2)
    rescaled = error_metrics(target_ms[40:], model.predict_archs(archs[40:], 2))
    assert rescaled["acc10"] >= 0.95 and rescaled["mape"] < kept["mape"] / 2, (kept, rescaled)
    b = OVERHEAD_FEATURES.index("blocks_ms")
    rest = np.arange(len(before)) != b
    ratio = model.overhead_coef_[rest][before[rest] != 0] / before[rest][before[rest] != 0]
    assert np.allclose(ratio, ratio[0]) and 1.5 < ratio[0] < 2.5  # one factor, about 2
    # a device whose overhead has another shape (a cost per layer token alone): rescaling
    # cannot follow it, adjusting can; transfer_overhead adjusts from 10 models on, not from 9
    other = 2.0 * truth + 4e-2 * layer_tokens
    restore()
    model.rescale_overhead(archs[:20], other[:20], threads=2)
    rescaled = error_metrics(other[40:], model.predict_archs(archs[40:], 2))
    restore()
    assert model.transfer_overhead(archs[:9], other[:9], threads=2) == "rescaled"  # too few
    restore()
    assert model.transfer_overhead(archs[:20], other[:20], threads=2) == "adjusted"
    adjusted_ms = model.predict_archs(archs[40:], 2)
    adjusted = error_metrics(other[40:], adjusted_ms)
    assert adjusted["acc10"] >= 0.95 and adjusted["mape"] < rescaled["mape"] / 2, (
        rescaled,
        adjusted,
    )
    # what transfer_overhead chose is adjust_overhead's, by a smaller leave-one-out error
    loo = model.overhead_loo_  # each of the 20 predicted without it: relative residuals
    assert loo.shape == (20,) and np.mean(np.abs(loo) <= 0.1) >= 0.95
    restore()
    press = model.adjust_overhead(archs[:20], other[:20], threads=2)
    np.testing.assert_allclose(model.predict_archs(archs[40:], 2), adjusted_ms)
    assert press == pytest.approx(np.mean(loo**2))
    restore()
    assert press < model.rescale_overhead(archs[:20], other[:20], threads=2)
    with pytest.raises(ValueError, match=">= 3"):
        model.rescale_overhead(archs[:2], target_ms[:2], threads=2)
    with pytest.raises(ValueError, match=">= 10"):
        model.adjust_overhead(archs[:9], other[:9], threads=2)
    model.overhead_coef_ = None
    with pytest.raises(ValueError, match="no whole-model overhead"):
        model.rescale_overhead(archs[:5], target_ms[:5], threads=2)


def test_save_load_round_trip_and_refusals(synthetic_blocks, tmp_path) -> None:
    _, X, y = synthetic_blocks
    model = LatencyPredictor(n_estimators=50, max_depth=4).fit(X, y)
    path = model.save(tmp_path / "p", {"backend": "onnxruntime", "device": "d"})
    assert sorted(p.name for p in path.iterdir()) == ["meta.json", "model.ubj"]
    loaded = LatencyPredictor.load(path, backend="onnxruntime")
    np.testing.assert_allclose(loaded.predict(X), model.predict(X), rtol=1e-6)
    assert loaded.get_params() == model.get_params()
    with pytest.raises(FileExistsError, match="--overwrite"):
        model.save(path)
    with pytest.raises(PredictorFileError, match="trained for backend 'onnxruntime'"):
        LatencyPredictor.load(path, backend="eager")
    meta = json.loads((path / "meta.json").read_text())
    (path / "meta.json").write_text(json.dumps({**meta, "feature_names": ["a"]}))
    with pytest.raises(PredictorFileError, match="feature schema"):
        LatencyPredictor.load(path)
    model.overhead_coef_ = np.ones(len(OVERHEAD_FEATURES))
    model.overhead_cache_mb_ = (2.0, 24.0)
    meta = json.loads(
        (model.save(path, {"backend": "onnxruntime"}, True) / "meta.json").read_text()
    )
    back = LatencyPredictor.load(path)
    assert back.overhead_coef_.tolist() == [1.0] * len(OVERHEAD_FEATURES)
    assert back.overhead_cache_mb_ == (2.0, 24.0)
    (path / "meta.json").write_text(
        json.dumps({**meta, "overhead": {**meta["overhead"], "model_cache_mb": "big"}})
    )
    with pytest.raises(PredictorFileError, match="overhead is malformed"):
        LatencyPredictor.load(path)
    older = {**meta["overhead"], "features": meta["overhead"]["features"][:5]}
    (path / "meta.json").write_text(json.dumps({**meta, "overhead": older}))
    with pytest.raises(PredictorFileError, match="overhead has other features.*retrain"):
        LatencyPredictor.load(path)
    (path / "meta.json").write_text(json.dumps({**meta, "format": "pickle"}))
    with pytest.raises(PredictorFileError, match="not a canao predictor"):
        LatencyPredictor.load(path)
    (path / "meta.json").write_text("{oops")
    with pytest.raises(PredictorFileError, match="corrupt"):
        LatencyPredictor.load(path)
    (path / "meta.json").write_text(json.dumps(meta))
    (path / "model.ubj").write_bytes(b"\x00garbage")
    with pytest.raises(PredictorFileError, match="model.ubj: corrupt"):
        LatencyPredictor.load(path)
    with pytest.raises(PredictorFileError, match="no meta.json"):
        LatencyPredictor.load(tmp_path)


@pytest.mark.parametrize("name", sorted(BASELINES))
def test_baselines_fit_and_predict(name, synthetic_blocks) -> None:
    _, X, y = synthetic_blocks
    model = BASELINES[name]().fit(X.iloc[:500], y[:500])
    m = error_metrics(y[500:], model.predict(X.iloc[500:]))
    assert m["kendall_tau"] > 0.7, (name, m)
    with pytest.raises(NotFittedError):
        BASELINES[name]().predict(X)


def test_tune_tries_the_defaults_first_so_never_picks_worse(synthetic_blocks) -> None:
    from canao.predictors.tuning import cv_score, tune

    _, X, y = synthetic_blocks
    X, y = X.iloc[:300], y[:300]
    params, score = tune(X, y, n_trials=3, metric="mape")
    defaults = cv_score({}, X, y, folds=3, seed=0, metric="mape")
    assert score <= defaults + 1e-9, (score, defaults)
    assert params["base"] == "nnls" and {"max_depth", "n_estimators"} <= set(params)
    with pytest.raises(ValueError, match="metric must be one of"):
        tune(X, y, metric="acc10")


def test_cli_tune_metric_choices_are_the_tuners() -> None:
    """`canao train --tune-metric` offers exactly the metrics `tune` minimises (the CLI keeps a
    literal twin so that start-up does not import XGBoost)."""
    from canao.predictors.tuning import METRICS

    assert tuple(cli_option("train", "tune_metric").choices) == METRICS
