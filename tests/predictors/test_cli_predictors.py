"""`canao train | predict | evaluate` on a small synthetic dataset written through the store."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from canao.cli import main
from canao.profiling.fingerprint import fingerprint
from canao.profiling.measurement import EvalConfig, Measurement
from canao.profiling.runner import RunResult
from canao.profiling.samplers import ModelSpace, random_archs
from canao.profiling.store import LatencyStore
from canao.space import ArchSpec
from tests.conftest import synthetic_ms


def _result(spec, ms: float, threads: int = 2) -> RunResult:
    samples = tuple(ms * f for f in (0.99, 1.0, 1.01))
    return RunResult(
        spec=spec,
        backend="onnxruntime",
        compiled=True,
        cfg=EvalConfig(threads=threads),
        measurement=Measurement(samples),
        noisy=False,
        error=None,
        build_s=0.1,
        max_abs_err=1e-7,
        loadavg_1m=0.1,
        fingerprint=fingerprint("synthetic-dev", {"onnxruntime": "x"}, "cpu"),
    )


@pytest.fixture(scope="module")
def dataset(synthetic_blocks, tmp_path_factory) -> Path:
    specs, _, y = synthetic_blocks
    root = tmp_path_factory.mktemp("data")
    archs = random_archs(ModelSpace(hidden=(128, 256, 384), seq_len=(32, 64)), 60, seed=2)
    model_ms = [synthetic_ms(list(a.blocks())).sum() + 0.1 for a in archs]
    with LatencyStore(root, "synthetic-dev", "onnxruntime") as store:
        store.extend(_result(s, float(ms)).row() for s, ms in zip(specs, y, strict=True))
        store.extend(_result(a, float(ms)).row() for a, ms in zip(archs, model_ms, strict=True))
    return root


def test_train_predict_evaluate(dataset, tmp_path, capsys) -> None:
    pred = tmp_path / "pred"
    argv = [
        "train",
        "--data",
        str(dataset),
        "--backend",
        "onnxruntime",
        "--out",
        str(pred),
        "--json",
    ]
    assert main(argv) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["device"] == "synthetic-dev" and info["dataset"]["block_rows"] == 700
    assert info["metrics"]["blocks_heldout"]["acc10"] > 0.95
    assert info["metrics"]["models_heldout"]["acc10"] > 0.9
    assert main(argv) == 2  # refuses to overwrite
    assert "--overwrite" in capsys.readouterr().err
    assert main([*argv, "--overwrite", "--tune-metric", "mape"]) == 2  # without --tune
    assert "--tune-metric applies to --tune" in capsys.readouterr().err
    assert main(["predict", "--predictor", str(pred), "--arch", "bert-mini", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    truth = synthetic_ms(list(ArchSpec.named("bert-mini").blocks())).sum() + 0.1
    assert out["predicted_ms"] == pytest.approx(truth, rel=0.15)
    assert out["backend"] == "onnxruntime" and out["overhead_fitted"]
    assert (
        main(
            [
                "evaluate",
                "--data",
                str(dataset),
                "--backend",
                "onnxruntime",
                "--models",
                "xgboost,flops-linear",
                "--cv",
                "3",
                "--out",
                str(tmp_path),
                "--json",
            ]
        )
        == 0
    )
    ev = json.loads(capsys.readouterr().out)
    rows = {(r["split"], r["model"]): r for r in ev["table"]}
    assert rows[("random", "xgboost")]["mape"] < rows[("random", "flops-linear")]["mape"]
    cv = rows[("3-fold cv", "xgboost")]
    assert cv["n"] == 700 and cv["train"] == 700 - 700 // 3
    assert cv["mape"] < rows[("3-fold cv", "flops-linear")]["mape"]
    png = Path(ev["scatter"])
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["train", "--backend", "eager", "--out", "X"], "no rows for backend 'eager'"),
        (["evaluate", "--backend", "onnxruntime", "--models", "gpt"], "unknown model"),
        (["evaluate", "--backend", "onnxruntime", "--models", "nearest", "--cv", "1"], "--cv"),
        (["predict", "--predictor", "NOPE", "--arch", "bert-base"], "not a canao predictor"),
    ],
)
def test_bad_input(argv, message, dataset, tmp_path, capsys) -> None:
    argv = [a.replace("X", str(tmp_path / "p")) for a in argv]
    if argv[0] != "predict":
        argv += ["--data", str(dataset)]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]
    assert not (tmp_path / "p").exists()


def test_one_thread_count_per_predictor(dataset, synthetic_blocks, tmp_path, capsys) -> None:
    """Rows of one device at two thread counts: train refuses to mix them (a predictor is for
    one thread count) and says how to pick; --threads picks."""
    import shutil

    specs, _, y = synthetic_blocks
    root = tmp_path / "data"
    shutil.copytree(dataset, root)
    with LatencyStore(root, "synthetic-dev", "onnxruntime") as store:
        store.extend(_result(s, 1.7 * float(ms), 1).row() for s, ms in zip(specs, y, strict=True))
    argv = ["train", "--data", str(root), "--backend", "onnxruntime", "--json"]
    assert main([*argv, "--out", str(tmp_path / "mixed")]) == 2
    err = capsys.readouterr().err
    assert "several thread counts (1, 2); pick one with --threads" in err
    assert not (tmp_path / "mixed").exists()
    assert main([*argv, "--threads", "1", "--out", str(tmp_path / "one")]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["threads"] == [1] and info["dataset"]["block_rows"] == len(y)


def test_drift_correction_by_canary(synthetic_blocks, tmp_path, capsys) -> None:
    """Rows measured while the host ran 30% slower (their canary says so) are brought back to
    the reference speed; predictions refer to the dataset's canary and rescale to today's."""
    specs, _, y = synthetic_blocks
    root = tmp_path / "data"
    archs = random_archs(ModelSpace(hidden=(128, 256, 384), seq_len=(32, 64)), 40, seed=2)
    model_ms = [synthetic_ms(list(a.blocks())).sum() + 0.1 for a in archs]
    rows = []
    for i, (s, ms) in enumerate([*zip(specs, y, strict=True), *zip(archs, model_ms, strict=True)]):
        slow = 1.3 if i % 3 == 0 else 1.0  # a third of the rows on a slow host
        r = _result(s, float(ms) * slow)
        r.canary_ms = 2.0 * slow
        rows.append(r.row())
    with LatencyStore(root, "synthetic-dev", "onnxruntime") as store:
        store.extend(rows)
    metrics = {}
    for drift in ("canary", "none"):
        out = tmp_path / f"pred-{drift}"
        argv = ["train", "--data", str(root), "--backend", "onnxruntime", "--out", str(out)]
        assert main([*argv, "--drift", drift, "--json"]) == 0
        info = json.loads(capsys.readouterr().out)
        metrics[drift] = info["metrics"]["blocks_heldout"]["acc10"]
        assert info["canary_ms"] == (2.0 if drift == "canary" else None)  # the median canary
    assert metrics["canary"] > 0.95 > metrics["none"]
    truth = synthetic_ms(list(ArchSpec.named("bert-mini").blocks())).sum() + 0.1
    base = ["predict", "--predictor", str(tmp_path / "pred-canary"), "--arch", "bert-mini"]
    assert main([*base, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["predicted_ms"] == pytest.approx(truth, rel=0.15)
    assert main([*base, "--canary-ms", "3.0", "--json"]) == 0  # the host is 1.5x slower today
    out = json.loads(capsys.readouterr().out)
    assert out["predicted_ms"] == pytest.approx(1.5 * truth, rel=0.15) and out["canary_ms"] == 3.0
    base[2] = str(tmp_path / "pred-none")
    assert main([*base, "--canary-ms", "3.0"]) == 2
    assert "trained without drift correction" in capsys.readouterr().err
