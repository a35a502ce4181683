"""canao compile / verify / report / classify on a tiny trained-shape model.

The model is small (hidden 64, two layers, seq_len 16) but has the real vocabulary, so the
shipped tokenizer drives it; its workloads are tuned once per session at 1 trial each into a
temporary database (enough for a tuned build; these tests never report its latency)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from canao.cli import main
from canao.compile.export import CompileError, compile_model, read_compiled
from canao.compress.checkpoint import save_model
from canao.modeling import BertClassifier, init_weights
from canao.space import ArchSpec, LayerSpec

ARCH = ArchSpec(
    hidden=64,
    layers=(LayerSpec(2, 32, 128), LayerSpec(1, 32, 128)),
    seq_len=16,
    max_position=64,
    name="tiny-finalist",
)


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("model") / "tiny-finalist"
    model = init_weights(BertClassifier(ARCH), seed=3)
    with torch.no_grad():  # a head with clear margins, so labels do not flip on rounding
        model.classifier.weight.mul_(20)
    save_model(
        folder,
        model.eval(),
        {"task": "mr", "label_names": ["negative", "positive"], "test_accuracy": 0.5},
    )
    return folder


@pytest.fixture(scope="session")
def compiled(model_dir, tmp_path_factory) -> tuple[Path, Path, dict]:
    """Compiled with a database that lacks one matmul workload (tuned by ``compile_model`` at
    1 trial); the others hold their default schedule (fast to set up; no latency is reported
    from these builds)."""
    from canao.compile.export import import_model
    from canao.compress.checkpoint import load_model
    from canao.profiling.backends.tvm import host_target
    from canao.profiling.tuning import TuningDatabase, default_record, plan

    db = tmp_path_factory.mktemp("db")
    target, tdb = host_target(2), TuningDatabase(db)
    todo, _ = plan([import_model(load_model(model_dir)[0], ARCH.seq_len)], target, tdb)
    left = next(w for w in todo if w.name.startswith("fused_matmul"))
    for w in todo:
        if w is not left:
            default_record(w, tdb, target, tdb.db.commit_workload(w.mod), measure=False)
    out = tmp_path_factory.mktemp("compiled") / "tiny"
    info = compile_model(model_dir, out, tune_trials=1, tuning_dir=db, log=lambda s: None)
    return out, db, info


def test_compile_writes_a_checked_library_and_onnx(compiled, model_dir) -> None:
    out, _, info = compiled
    assert (out / "model.so").is_file() and (out / "model.onnx").is_file()
    assert read_compiled(out) == info
    assert info["tuned_now"] == 1 and info["workloads"] > 10  # the missing one was tuned
    log = (info_db := Path(info["tuning_db"])) / "tuning-log.jsonl"
    assert info_db.is_dir() and '"schedule": "tuned"' in log.read_text()
    assert 0 <= info["max_abs_err"] <= info["atol"]
    assert info["seq_len"] == 16 and ArchSpec.from_dict(info["arch"]) == ARCH
    assert info["label_names"] == ["negative", "positive"] and info["source"] == str(model_dir)


def test_compiled_and_onnx_logits_match_pytorch(compiled, model_dir) -> None:
    from canao.compile.export import example_inputs
    from canao.compile.runtime import OrtModel, load_local
    from canao.compress.checkpoint import load_model

    out, _, _ = compiled
    model, _ = load_model(model_dir)
    ids, mask = example_inputs(16, n_tokens=5, seed=9)
    with torch.inference_mode():
        ref = model(ids, mask).numpy()
    tvm_out = load_local(out).logits(ids.numpy(), mask.numpy())
    ort_out = OrtModel(out / "model.onnx", 2).logits(ids.numpy(), mask.numpy())
    np.testing.assert_allclose(tvm_out, ref, atol=2e-3)
    np.testing.assert_allclose(ort_out, ref, atol=2e-3)
    # padding is masked: changing padded tokens does not change the logits
    ids2 = ids.clone()
    ids2[0, 5:] = 7
    np.testing.assert_allclose(
        load_local(out).logits(ids2.numpy(), mask.numpy()), tvm_out, atol=1e-5
    )


def test_recompile_refuses_to_overwrite_and_reuses_the_database(compiled, model_dir) -> None:
    out, db, _ = compiled
    with pytest.raises(CompileError, match="not empty"):
        compile_model(model_dir, out, tuning_dir=db, log=lambda s: None)
    again = out.parent / "again"
    info = compile_model(
        model_dir, again, tune_trials=0, tuning_dir=db, onnx=False, log=lambda s: None
    )
    assert info["tuned_now"] == 0 and not (again / "model.onnx").exists()


def test_untuned_workloads_are_refused_without_a_tuning_budget(model_dir, tmp_path) -> None:
    with pytest.raises(CompileError, match="not tuned"):
        compile_model(
            model_dir,
            tmp_path / "out",
            tune_trials=0,
            tuning_dir=tmp_path / "db",
            log=lambda s: None,
        )


def test_cli_errors_are_one_line(tmp_path, capsys) -> None:
    arch = tmp_path / "a.json"
    arch.write_text(ARCH.to_json())
    assert main(["compile", str(arch), "--task", "mr"]) == 2
    assert "distil it first" in capsys.readouterr().err
    assert main(["classify", "--model", str(tmp_path), "hello"]) == 2
    assert "not a compiled model" in capsys.readouterr().err


def test_classify_prints_label_and_latency(compiled, capsys) -> None:
    out, _, _ = compiled
    rc = main(["classify", "--model", str(out), "--json", "a fine film", "a dull , tired mess"])
    assert rc == 0
    rows = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert [r["text"] for r in rows] == ["a fine film", "a dull , tired mess"]
    assert all(r["label"] in ("negative", "positive") and r["ms"] > 0 for r in rows)
    assert all(0.5 <= r["p"] <= 1 for r in rows)


def test_verify_locally_and_through_the_rpc_farm(
    compiled, tracker, predictor, tmp_path, capsys
) -> None:
    from canao.compile.report import build_report
    from canao.compile.verify import read_rows

    out, _, _ = compiled
    vdir = tmp_path / "verify"
    common = ["--split", "none", "--repeat", "3", "--min-repeat-ms", "5", "--out", str(vdir)]
    assert main(["verify", str(out), "--predictor", str(predictor), *common]) == 0
    # the predictor is the synthetic device's, the finalist runs here: said before any number
    assert "the predictor was fitted on synthetic-dev" in capsys.readouterr().err
    assert main(["verify", str(out), "--no-baselines", "--rpc-tracker", tracker,
                 "--rpc-key", "test-board", *common]) == 0  # fmt: skip
    lines = (vdir / "verify.jsonl").read_text().splitlines()
    assert len(lines) == 2  # appended, not overwritten
    local, remote = (json.loads(x) for x in lines)
    assert local["tvm_ms"] > 0 and local["ort_ms"] > 0 and local["eager_ms"] > 0
    assert local["predicted_ms"] > 0 and "error" not in local  # synthetic backend: no pair
    assert remote["device"] == "test-board" and remote["tvm_ms"] > 0 and "ort_ms" not in remote
    assert len(read_rows(vdir / "verify.jsonl")) == 1  # latest row per folder
    # a predictor trained with drift correction: the canary is timed now, the prediction rescaled
    drift = tmp_path / "pred-canary"
    shutil.copytree(predictor, drift)
    meta = json.loads((drift / "meta.json").read_text())
    meta.update(backend="onnxruntime", canary_ms=1.0)
    (drift / "meta.json").write_text(json.dumps(meta))
    assert main(["verify", str(out), "--predictor", str(drift), "--no-baselines", *common]) == 0
    row = json.loads((vdir / "verify.jsonl").read_text().splitlines()[-1])
    assert row["canary_ms"]["dataset"] == 1.0 and row["canary_ms"]["now"] > 0.1
    now = row["canary_ms"]["now"]
    assert row["predicted_ms"] == pytest.approx(row["predicted_raw_ms"] * now, rel=1e-3, abs=1e-3)
    md = build_report(vdir, tmp_path / "report")
    text = md.read_text()
    assert "tiny-finalist" in text and (tmp_path / "report" / "pareto.png").stat().st_size > 0


def test_cross_compiled_library_is_an_aarch64_elf(model_dir, tmp_path) -> None:
    import shutil

    from canao.profiling.cross import elf_machine

    if not shutil.which("aarch64-linux-gnu-gcc"):
        pytest.skip("aarch64-linux-gnu-gcc not installed (make cross installs it on Debian)")
    out = tmp_path / "arm"
    with pytest.raises(CompileError, match="not tuned for"):
        compile_model(model_dir, out, device="my-board", cross="aarch64-linux-gnu",
                      tuning_dir=tmp_path / "db", log=lambda s: None)  # fmt: skip
    info = compile_model(model_dir, out, device="my-board", cross="aarch64-linux-gnu",
                         allow_untuned=True, onnx=False, tuning_dir=tmp_path / "db",
                         log=lambda s: None)  # fmt: skip
    assert elf_machine(out / "model.so") == "aarch64"
    assert info["tuned"] is False and info["cross"] == "aarch64-linux-gnu"
    assert info["device"] == "my-board" and info["max_abs_err"] is None


def test_elf_machine_reads_the_host_library(compiled, tmp_path) -> None:
    import platform

    from canao.profiling.cross import elf_machine

    out, _, _ = compiled
    assert elf_machine(out / "model.so") == platform.machine().replace("amd64", "x86_64")
    (tmp_path / "x").write_text("not an elf")
    with pytest.raises(ValueError, match="not an ELF"):
        elf_machine(tmp_path / "x")


def test_cross_needs_a_device_name_and_a_known_toolchain(model_dir, tmp_path, monkeypatch) -> None:
    with pytest.raises(CompileError, match="--device NAME"):
        compile_model(model_dir, tmp_path / "a", cross="aarch64-linux-gnu", log=lambda s: None)
    with pytest.raises(CompileError, match="--cross"):
        compile_model(model_dir, tmp_path / "b", device="phone", log=lambda s: None)
    monkeypatch.delenv("TVM_NDK_CC", raising=False)
    with pytest.raises(CompileError, match="TVM_NDK_CC"):
        compile_model(model_dir, tmp_path / "c", device="phone", cross="aarch64-linux-android",
                      allow_untuned=True, onnx=False, tuning_dir=tmp_path / "db",
                      log=lambda s: None)  # fmt: skip


def test_report_computes_speedups_against_references_and_teacher(tmp_path) -> None:
    from canao.compile.report import build_report
    from canao.compile.verify import append_rows

    teacher = tmp_path / "teacher"
    teacher.mkdir()
    (teacher / "meta.json").write_text(json.dumps({"test_accuracy": 0.85}))
    fin = tmp_path / "fin"
    fin.mkdir()
    (fin / "compiled.json").write_text(json.dumps({"teacher": str(teacher)}))
    rows = [
        {"name": "f0", "folder": str(fin), "device": "d", "threads": 2, "seq_len": 128,
         "gflops": 0.4, "tvm_ms": 4.0, "ort_ms": 5.0, "eager_ms": 8.0, "predicted_ms": 4.6,
         "error": 0.15, "flagged": True, "test_accuracy": 0.84},
        {"kind": "reference", "name": "bert-base", "folder": "reference:bert-base:128",
         "gflops": 22.0, "tvm_ms": 100.0, "ort_ms": 120.0},
        {"kind": "reference", "name": "minilm-l6-h384", "folder": "reference:minilm:128",
         "gflops": 2.9, "tvm_ms": 16.0, "tvm_error": None},
    ]  # fmt: skip
    rows[2].pop("tvm_error")
    append_rows(tmp_path / "v" / "verify.jsonl", rows)
    text = build_report(tmp_path / "v", tmp_path / "r").read_text()
    line = next(x for x in text.splitlines() if x.startswith("| f0 "))
    cells = [c.strip() for c in line.strip("|").split("|")]
    assert cells[3:] == ["4.600", "+15.0% **>10%**", "1.25x", "2.00x", "25.0x / 25.0x",
                         "4.00x / 4.00x", "84.00%", "-1.00 pt"]  # fmt: skip
    assert "Teacher test accuracy: 85.00%" in text and "Prediction off by more than 10%: f0" in text
    assert (tmp_path / "r" / "latency.png").stat().st_size > 0
