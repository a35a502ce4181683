from __future__ import annotations

import json

import pytest

from canao.cli import main
from canao.compress.elastic import ElasticBase
from canao.modeling import BertClassifier


def test_compress_data_lists_the_tasks(capsys) -> None:
    assert main(["compress", "data", "mr", "bbc", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert [t["task"] for t in out["tasks"]] == ["mr", "bbc"] and out["tasks"][1]["labels"][
        3
    ] == "sports"


def test_bad_input_is_one_line_and_exit_2(small_model: BertClassifier, tmp_path, capsys) -> None:
    ElasticBase(small_model, (0, 1, 2), {"task": "mr"}).save(tmp_path / "e")
    cases = [
        (
            [
                "compress",
                "rewire",
                "--teacher",
                str(tmp_path / "none"),
                "--out",
                str(tmp_path / "x"),
            ],
            "not a model folder",
        ),
        (
            ["compress", "distill", "--arch", "bert-base", "--elastic", str(tmp_path / "e")],
            "hidden must equal",
        ),
        (["compress", "accuracy"], "give --model DIR"),
        (
            [
                "compress",
                "supernet",
                "--elastic",
                str(tmp_path / "e"),
                "--teacher",
                str(tmp_path / "none"),
            ],
            "not a model folder",
        ),
    ]
    for argv, message in cases:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1, err


@pytest.mark.slow
def test_teacher_to_search_with_real_accuracy(tmp_path, predictor, capsys) -> None:
    """The compress chain on a real slice of MR with the real pretrained base, then a search
    scored by inherited dev accuracy."""
    t, e, d = tmp_path / "teacher", tmp_path / "elastic", tmp_path / "distilled"
    quick = ["--limit", "32", "--batch-size", "16", "--epochs", "1", "--json"]
    assert main(["compress", "finetune", "--out", str(t), *quick]) == 0
    teacher = json.loads(capsys.readouterr().out)
    assert teacher["steps"] == 2 and 0.3 < teacher["dev_accuracy"] < 1.0
    assert main(["compress", "finetune", "--out", str(t), *quick]) == 2
    assert "--overwrite" in capsys.readouterr().err

    assert (
        main(["compress", "rewire", "--teacher", str(t), "--out", str(e), "--examples", "32"]) == 0
    )
    capsys.readouterr()
    full = ["compress", "accuracy", "--elastic", str(e), "--json"]
    assert main([*full, "--arch", "minilm-l6-h384"]) == 0
    # the full sub-network is the teacher: rewiring kept its function
    assert json.loads(capsys.readouterr().out)["accuracy"] == pytest.approx(teacher["dev_accuracy"])

    arch = tmp_path / "small.json"
    base = json.loads((e / "arch.json").read_text())
    arch.write_text(
        json.dumps(
            {**base, "name": "small", "layers": [{"heads": 4, "head_dim": 32, "ffn": 512}] * 2}
        )
    )
    assert (
        main(
            [
                "compress",
                "distill",
                "--arch",
                str(arch),
                "--elastic",
                str(e),
                "--out",
                str(d),
                *quick,
            ]
        )
        == 0
    )
    distilled = json.loads(capsys.readouterr().out)
    assert distilled["kind"] == "distilled" and distilled["teacher"] == str(t)
    assert main(["compress", "accuracy", "--model", str(d), "--split", "test", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["accuracy"] == pytest.approx(
        distilled["test_accuracy"]
    )

    argv = ["search", "--predictor", str(predictor), "--budget-ms", "10", "--trials", "6"]
    argv += ["--accuracy", "inherited", "--elastic", str(e), "--out", str(tmp_path / "s"), "--json"]
    assert main(argv) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["accuracy_kind"] == "real" and res["accuracy"] == "inherited"
    assert len((e / "accuracy-dev.jsonl").read_text().splitlines()) >= 1
