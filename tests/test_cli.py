from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from canao.cli import main
from canao.profiling.fingerprint import cpu_identity
from canao.profiling.store import read_all_rows, read_rows

SMALL = (
    '{"hidden": [32, 96], "heads": [1, 4], "head_dim": [8, 32], "ffn": [32, 192], '
    '"seq_len": [4, 24], "batch": [1, 2]}'
)


def _one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith("canao: error: ")
    return err[0]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["profile", "--backend", "tflite"], "unknown backend 'tflite'"),
        (["profile", "--backend", "eager", "--samples", "0"], "--samples must be >= 1"),
        (["profile", "--backend", "eager", "--repeat", "1"], "repeat must be >= 3"),
        (["profile", "--backend", "eager", "--device", "../x"], "must be letters"),
        (["profile", "--backend", "eager", "--rpc-tracker", "h:1"], "needs --rpc-key"),
        (["profile", "--backend", "eager", "--tuned-only"], "--tuned-only applies to"),
        (
            ["profile", "--backend", "eager", "--remeasure", "all", "--max-median-error", "0"],
            "--max-median-error must be > 0",
        ),
        (["measure", "--arch", "gpt-9", "--backend", "eager"], "neither a known architecture"),
        (["measure", "--arch", "bert-base", "--backend", "x"], "unknown backend"),
        (
            ["measure", "--arch", "bert-base", "--backend", "eager", "--seq-len", "4096"],
            "seq_len must be <= max_position",
        ),
    ],
)
def test_bad_input_one_line_exit_2_nothing_written(argv, message, capsys, tmp_path) -> None:
    out = tmp_path / "out"
    extra = ["--out", str(out)] if argv[0] == "profile" else []
    assert main(argv + extra) == 2
    assert message in _one_error_line(capsys)
    assert not out.exists()


def test_malformed_arch_file(capsys, tmp_path) -> None:
    f = tmp_path / "arch.json"
    f.write_text('{"hidden": 64, "layers": [{"heads": 2, "head_dim": 32}]}')
    assert main(["measure", "--arch", str(f), "--backend", "eager"]) == 2
    assert "arch.json: ArchSpec.layers[0] must be an object" in _one_error_line(capsys)
    f.write_text("[1, 2")
    assert main(["measure", "--arch", str(f), "--backend", "eager"]) == 2
    assert "not valid JSON" in _one_error_line(capsys)


def test_bad_space_config(capsys, tmp_path) -> None:
    f = tmp_path / "space.json"
    f.write_text('{"hidden": [1, 2], "depth": 3}')
    argv = ["profile", "--backend", "eager", "--space-config", str(f), "--out", str(tmp_path / "o")]
    assert main(argv) == 2
    assert "unknown BlockSpace field(s): depth" in _one_error_line(capsys)
    assert not (tmp_path / "o").exists()


def test_dataset_info_rejects_non_datasets(capsys, tmp_path) -> None:
    assert main(["dataset", "info", str(tmp_path / "missing")]) == 2
    assert "no such file" in _one_error_line(capsys)
    assert main(["dataset", "info", str(tmp_path)]) == 2
    assert "no shards found" in _one_error_line(capsys)
    (tmp_path / "part-x.parquet").write_text("not parquet")
    assert main(["dataset", "info", str(tmp_path)]) == 2
    assert "not a canao latency dataset" in _one_error_line(capsys)


def test_dataset_retire(capsys, tmp_path) -> None:
    """canao dataset retire: the folder's older rows stop being read and dataset info says so;
    a bad folder or time is one clear error."""
    from canao.profiling.store import LatencyStore
    from tests.profiling.test_store import make_row

    with LatencyStore(tmp_path, "dev", "eager") as store:
        store.extend({**make_row(i), "timestamp": f"2026-01-0{i + 1}T00:00:00Z"} for i in range(4))
    folder = str(tmp_path / "dev" / "eager")
    argv = ["dataset", "retire", folder, "--before", "2026-01-03", "--reason", "old build"]
    assert main(argv) == 0
    assert "2 of 4 rows measured before 2026-01-03 retired" in capsys.readouterr().out
    assert sorted(read_rows(tmp_path)["hidden"]) == [66, 67]
    assert main(["dataset", "info", str(tmp_path), "--json"]) == 0
    (info,) = json.loads(capsys.readouterr().out)
    assert info["rows"] == 2 and info["retired_rows"] == 2
    assert info["retired"][0]["before"] == "2026-01-03T00:00:00Z"
    assert main(["dataset", "info", folder]) == 0
    out = capsys.readouterr().out
    assert "retired (kept on disk, not read): 2 rows" in out
    assert "measured before 2026-01-03T00:00:00Z: old build" in out
    assert main([*argv[:2], str(tmp_path), *argv[3:]]) == 2
    assert "not a store folder" in _one_error_line(capsys)
    # every row retired: info still lists the folder, with what was retired
    assert main([*argv[:4], "2026-01-05", *argv[5:]]) == 0
    assert "4 of 4 rows" in capsys.readouterr().out
    assert main(["dataset", "info", folder, "--json"]) == 0
    (info,) = json.loads(capsys.readouterr().out)
    assert (info["backend"], info["rows"], info["retired_rows"]) == ("eager", 0, 4)
    assert info["measured"] is None and len(info["retired"]) == 2
    assert main(["dataset", "info", folder]) == 0
    out = capsys.readouterr().out
    assert "rows 0: every row is retired" in out and "measured before 2026-01-05T00" in out
    assert "not read): 4 rows" in out
    # --where: only the matching rows (here none left to retire, since all are), said so
    assert main([*argv, "--where", "hidden=65"]) == 0
    assert "with hidden=65 retired" in capsys.readouterr().out
    assert main(["dataset", "info", folder]) == 0
    assert "measured before 2026-01-03T00:00:00Z with hidden=65: old build" in (
        capsys.readouterr().out
    )
    assert main([*argv, "--where", "kind=block", "--where", "hidden=66"]) == 0
    assert "before 2026-01-03 with kind=block and hidden=66 retired" in capsys.readouterr().out
    assert main([*argv, "--where", "kind=block", "--where", "hidden=9"]) == 2
    assert "no row has kind=block and hidden=9; nothing to retire" in _one_error_line(capsys)
    assert main([*argv, "--where", "hidden"]) == 2
    assert "say COLUMN=VALUE" in _one_error_line(capsys)
    assert main([*argv, "--where", "flops=3"]) == 2
    assert "'flops' is not a column a retirement can name" in _one_error_line(capsys)
    assert main([*argv[:4], "soon", *argv[5:]]) == 2
    assert "'soon' is not an ISO 8601 time" in _one_error_line(capsys)
    assert main([*argv, "--after", "2026-01-03"]) == 2
    assert "an empty window" in _one_error_line(capsys)
    assert main([*argv, "--after", "later"]) == 2
    assert "'later' is not an ISO 8601 time" in _one_error_line(capsys)
    # --after: one sitting (a window), not what came before it
    (tmp_path / "dev" / "eager" / "retired.jsonl").unlink()
    window = [*argv[:4], "2026-01-04", "--after", "2026-01-02T00:00:00Z", *argv[5:]]
    assert main(window) == 0
    out = capsys.readouterr().out
    assert "2 of 4 rows measured from 2026-01-02T00:00:00Z before 2026-01-04 retired" in out
    assert sorted(read_rows(tmp_path)["hidden"]) == [64, 67]
    assert main(["dataset", "info", folder]) == 0
    assert "measured from 2026-01-02T00:00:00Z before 2026-01-04T00:00:00Z: old build" in (
        capsys.readouterr().out
    )
    # a second window counts its own rows, not every row retired so far
    assert main([*argv[:4], "2026-01-05", "--after", "2026-01-04", *argv[5:]]) == 0
    assert "1 of 4 rows measured from 2026-01-04 before 2026-01-05" in capsys.readouterr().out
    assert sorted(read_rows(tmp_path)["hidden"]) == [64]
    (tmp_path / "dev" / "eager" / "retired.jsonl").write_text("oops\n")  # edited by hand
    assert (
        main(["train", "--data", str(tmp_path), "--backend", "eager", "--out", str(tmp_path / "p")])
        == 2
    )
    assert "retired.jsonl, line 1: not a retirement" in _one_error_line(capsys)


def test_dataset_compact(capsys, tmp_path) -> None:
    """canao dataset compact: one shard per backend folder, every row kept; a folder being
    written is refused with one clear error."""
    from canao.profiling.store import LatencyStore, shard_files
    from tests.profiling.test_store import make_row

    for backend in ("eager", "onnxruntime"):
        with LatencyStore(tmp_path, "dev", backend, flush_every=2) as store:
            store.extend(make_row(i, backend=backend) for i in range(5))
    before = read_all_rows(tmp_path)
    assert main(["dataset", "compact", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert out.count("3 shards") == 2 and out.count("5 rows kept") == 2
    assert len(shard_files(tmp_path)) == 2
    pd.testing.assert_frame_equal(read_all_rows(tmp_path), before)
    with LatencyStore(tmp_path, "dev", "eager"):  # a profile run writing to it
        assert main(["dataset", "compact", str(tmp_path / "dev" / "eager")]) == 2
    assert "another process is writing" in _one_error_line(capsys)
    assert main(["dataset", "compact", str(tmp_path / "none")]) == 2
    assert "no such folder" in _one_error_line(capsys)


def test_profile_refuses_a_folder_measured_on_another_cpu(capsys, tmp_path) -> None:
    from canao.profiling.fingerprint import DEVICE_FILE

    folder = tmp_path / "data" / "unit"
    folder.mkdir(parents=True)
    other = {**cpu_identity(), "family": -1}
    (folder / DEVICE_FILE).write_text(json.dumps({"cpu": other}))
    argv = ["profile", "--backend", "eager", "--device", "unit", "--out", str(tmp_path / "data")]
    assert main(argv) == 2
    assert "would mix two devices" in _one_error_line(capsys)
    assert [p.name for p in folder.iterdir()] == [DEVICE_FILE]  # nothing measured or written


def test_profile_resumes_and_info_describes(capsys, tmp_path) -> None:
    space = tmp_path / "space.json"
    space.write_text(SMALL)
    out = tmp_path / "data"
    argv = [
        "profile",
        "--backend",
        "eager",
        "--samples",
        "6",
        "--out",
        str(out),
        "--space-config",
        str(space),
        "--device",
        "unit",
        "--repeat",
        "3",
        "--min-repeat-ms",
        "2",
    ]
    assert main(argv) == 0
    assert "0 already stored, 6 to measure" in capsys.readouterr().err
    argv[argv.index("6")] = "8"
    assert main(argv) == 0
    assert "6 already stored, 2 to measure" in capsys.readouterr().err
    df = read_rows(out)
    assert len(df) == 8 and df["key"].is_unique and df["error"].isna().all()
    assert df["canary_ms"].notna().all()  # host drift is tracked from the first row on
    argv[argv.index("8")] = "3"
    assert main([*argv, "--remeasure", "all"]) == 0
    assert "re-measuring 3 of 3 specs" in capsys.readouterr().err
    again = read_rows(out)
    assert len(again) == 8 and again["key"].is_unique
    both = df.merge(again, on="key", suffixes=("", "_new"))
    assert (both["median_ms"] != both["median_ms_new"]).sum() == 3  # three rows superseded
    assert sum(len(pd.read_parquet(p)) for p in (out / "unit" / "eager").glob("*.parquet")) == 11
    canary = (out / "unit" / "eager" / "canary.jsonl").read_text().splitlines()
    assert len(canary) == 3 and json.loads(canary[0])["median_ms"] > 0  # one per run here
    runs = (out / "unit" / "eager" / "runs.jsonl").read_text().splitlines()
    assert len(runs) == 3 and json.loads(runs[0])["space"]["hidden"] == [32, 96]
    # unsettled: measured fewer than 3 times (all 8 now), or a median not pinned down (none
    # can be at --max-median-error 1e6, even on a loaded machine): one round more each time,
    # until every key has 3
    argv[argv.index("3")] = "8"
    unsettled = [*argv, "--remeasure", "unsettled", "--max-median-error", "1e6"]
    assert main(unsettled) == 0
    assert "re-measuring 8 of 8 specs (unsettled" in capsys.readouterr().err
    # --rounds: the rest in one run, the specs chosen again before each round; it stops once
    # none is left (5 keys measured twice, then none), each round a shard of its own
    shards = len(list((out / "unit" / "eager").glob("*.parquet")))
    assert main([*unsettled, "--rounds", "4", "--shuffle", "3"]) == 0
    err = capsys.readouterr().err
    assert "(round 1 of up to 4): re-measuring 5 of 8 specs (unsettled" in err
    assert "(round 2 of up to 4): re-measuring 0 of 8" in err
    assert "no unsettled rows left after 1 rounds" in err
    assert read_all_rows(out)["key"].value_counts().tolist() == [3] * 8
    assert len(list((out / "unit" / "eager").glob("*.parquet"))) == shards + 1
    # --shuffle: a round in another order than the design's (the same specs); with --rounds 2,
    # two rounds in two orders (seeds 1 and 2), a shard and a run-log entry each
    design = read_all_rows(out)["key"].tolist()[:8]
    assert main([*argv, "--remeasure", "all", "--shuffle", "1", "--rounds", "2"]) == 0
    assert "no all rows left" not in capsys.readouterr().err
    keys = read_all_rows(out)["key"].tolist()
    first, second = keys[-16:-8], keys[-8:]
    assert sorted(first) == sorted(second) == sorted(design)
    assert first != design and second != first
    assert len(list((out / "unit" / "eager").glob("*.parquet"))) == shards + 3
    logged = [
        json.loads(r) for r in (out / "unit" / "eager" / "runs.jsonl").read_text().splitlines()
    ]
    assert [(r["round"], r["shuffle"]) for r in logged[-2:]] == [(1, 1), (2, 2)]
    assert main([*argv, "--remeasure", "all", "--rounds", "2"]) == 2  # no order to vary
    assert "give --remeasure and --shuffle SEED" in _one_error_line(capsys)
    assert main(["dataset", "info", str(out), "--json"]) == 0
    (info,) = json.loads(capsys.readouterr().out)
    assert info["device"] == "unit" and info["block_rows"] == 8 and info["error_rows"] == 0
    assert info["cpu"] == cpu_identity()  # recorded by the first measurement in the folder
    for below in (out / "unit", out / "unit" / "eager"):  # found from a device or backend folder
        assert main(["dataset", "info", str(below), "--json"]) == 0
        assert json.loads(capsys.readouterr().out)[0]["cpu"] == cpu_identity()
    assert info["coverage"]["hidden"]["min"] >= 32 and info["coverage"]["hidden"]["max"] <= 96
    assert main(["dataset", "info", str(out)]) == 0
    text = capsys.readouterr().out
    assert "unit / eager" in text and "rows 8: 8 blocks" in text and "host drift: canary" in text
    assert f"{cpu_identity()['cpu_count']} cores" in text


def _unit_profile(tmp_path: Path) -> tuple[list[str], Path]:
    """``canao profile`` arguments for quick eager blocks of the small space on device
    ``unit``, and the dataset root they write to."""
    space = tmp_path / "space.json"
    space.write_text(SMALL)
    out = tmp_path / "data"
    base = ["profile", "--backend", "eager", "--out", str(out), "--space-config", str(space)]
    return [*base, "--device", "unit", "--repeat", "3", "--min-repeat-ms", "2"], out


def test_profile_check_host_gates_new_rows(capsys, tmp_path) -> None:
    """--check-host N: N stored, settled specs measured again (not stored) against their
    drift-corrected medians; the round's new rows are measured only if the ratio is within
    --host-tolerance, and every check is logged."""
    base, out = _unit_profile(tmp_path)
    check = ["--samples", "6", "--check-host", "4"]
    assert main([*base, *check]) == 2  # nothing stored to compare with
    assert "compares with stored rows" in _one_error_line(capsys)
    assert main([*base, "--samples", "4"]) == 0
    capsys.readouterr()
    assert main([*base, *check]) == 2  # stored once each, so none is settled yet
    assert "holds no settled block rows at" in _one_error_line(capsys)
    settle = ["--remeasure", "all", "--rounds", "2", "--shuffle", "1"]
    assert main([*base, "--samples", "4", *settle, "--max-median-error", "1e6"]) == 0
    folder = out / "unit" / "eager"
    runs = len((folder / "runs.jsonl").read_text().splitlines())
    rows = len(read_all_rows(out))
    capsys.readouterr()
    # a host held to within 1e-9 of the dataset's medians fails: exit 3, nothing measured
    assert main([*base, *check, "--max-median-error", "1e6", "--host-tolerance", "1e-9"]) == 3
    assert "host check failed: 4 stored specs measured again" in capsys.readouterr().err
    assert len(read_all_rows(out)) == rows
    assert len((folder / "runs.jsonl").read_text().splitlines()) == runs
    # within a factor of 1,000 it passes, and the two new specs are measured
    assert main([*base, *check, "--max-median-error", "1e6", "--host-tolerance", "999"]) == 0
    assert "host check passed: 4 stored specs" in capsys.readouterr().err
    assert len(read_all_rows(out)) == rows + 2
    logged = [json.loads(r) for r in (folder / "host_checks.jsonl").read_text().splitlines()]
    assert [(e["specs"], e["passed"]) for e in logged] == [(4, False), (4, True)]
    assert all(e["p5_ratio"] <= e["median_ratio"] <= e["p95_ratio"] for e in logged)
    assert main(["dataset", "info", str(folder), "--json"]) == 0
    (info,) = json.loads(capsys.readouterr().out)
    assert (info["host_checks"]["checks"], info["host_checks"]["passed"]) == (2, 1)
    assert main(["dataset", "info", str(folder)]) == 0
    assert "host checks (--check-host): 2, 1 passed; last " in capsys.readouterr().out
    assert main([*base, *check, "--host-tolerance", "0"]) == 2
    assert "--host-tolerance > 0" in _one_error_line(capsys)


def _settled_unit_profile(tmp_path: Path) -> tuple[list[str], Path]:
    """:func:`_unit_profile`, with its first 4 blocks stored and measured twice more, so
    that ``--check-host`` (at ``--max-median-error 1e6``) has settled specs to check."""
    base, out = _unit_profile(tmp_path)
    settle = ["--remeasure", "all", "--rounds", "2", "--shuffle", "1"]
    assert main([*base, "--samples", "4"]) == 0
    assert main([*base, "--samples", "4", *settle, "--max-median-error", "1e6"]) == 0
    return base, out


def test_profile_check_host_stops_when_the_canary_moves(capsys, tmp_path, monkeypatch) -> None:
    """--check-host, during a round: once the median of the canary's last 3 readings is more
    than twice --host-tolerance off the median of its first 3, the round stops (exit 3), the
    rows so far kept; one stray reading does not stop it."""
    import canao.cli

    base, out = _settled_unit_profile(tmp_path)
    rows = len(read_all_rows(out))
    canaries = iter([1.0, 1.02, 0.99, 1.5, 1.01, 1.5, 1.5])  # a stray reading, then 50% off
    monkeypatch.setattr(canao.cli, "_host_check", lambda *a: True)
    monkeypatch.setattr(canao.cli, "_measure_canary", lambda *a: next(canaries))
    argv = [*base, "--samples", "12", "--check-host", "3", "--max-median-error", "1e6"]
    assert main([*argv, "--canary-every", "1"]) == 3
    assert "the canary reads 1.500 ms against 1.000 ms after" in capsys.readouterr().err
    assert len(read_all_rows(out)) == rows + 5  # specs 0-4; the canaries up to spec 5 moved
    (entry,) = [
        json.loads(e)
        for e in (out / "unit" / "eager" / "host_checks.jsonl").read_text().splitlines()
    ]
    assert (entry["specs_measured"], entry["first_canary_ms"], entry["passed"]) == (5, 1.0, False)


def test_profile_host_wait_checks_again_and_goes_on(capsys, tmp_path, monkeypatch) -> None:
    """--host-wait S: a failed check, before the round or by the canary during it, waits S
    seconds and checks again, and the round goes on from the spec where it stopped; after
    --host-tries failed checks it stops with exit 3."""
    import canao.cli

    base, out = _settled_unit_profile(tmp_path)
    rows = len(read_all_rows(out))
    waits: list[float] = []
    real_sleep = canao.cli.time.sleep
    monkeypatch.setattr(
        canao.cli.time, "sleep", lambda s: waits.append(s) if s == 123 else real_sleep(s)
    )
    checks = iter([False, True, True])  # the first check fails, then two pass
    canaries = iter([1.0, 1.0, 1.0, 1.5, 1.5, 1.0, 1.0])  # moved before spec 4, then back
    monkeypatch.setattr(canao.cli, "_host_check", lambda *a: next(checks))
    monkeypatch.setattr(canao.cli, "_measure_canary", lambda *a: next(canaries))
    argv = [*base, "--samples", "10", "--check-host", "3", "--max-median-error", "1e6"]
    assert main([*argv, "--canary-every", "1", "--host-wait", "123"]) == 0
    err = capsys.readouterr().err
    assert "waiting 123 s for the host before check 2 of up to 12" in err
    assert "before check 3 of up to 12" in err and waits == [123, 123]
    got = read_all_rows(out)
    new = got.iloc[rows:]
    assert len(new) == 6 and new["key"].is_unique  # each new spec once, none skipped
    monkeypatch.setattr(canao.cli, "_host_check", lambda *a: False)
    argv[argv.index("10")] = "12"
    assert main([*argv, "--host-wait", "123", "--host-tries", "2"]) == 3
    assert waits == [123, 123, 123] and len(read_all_rows(out)) == rows + 6
    capsys.readouterr()
    assert main([*base, "--samples", "12", "--host-wait", "5"]) == 2
    assert "give both" in _one_error_line(capsys)


def test_profile_with_new_mixes_new_specs_into_a_remeasure_round(capsys, tmp_path) -> None:
    """--remeasure all --with-new: the stored specs again and the design's new ones, in one
    shuffled round; without --remeasure it is refused."""
    base, out = _unit_profile(tmp_path)
    assert main([*base, "--samples", "3"]) == 0
    old = set(read_all_rows(out)["key"])
    capsys.readouterr()
    mixed = ["--samples", "6", "--remeasure", "all", "--shuffle", "2"]
    assert main([*base, *mixed, "--with-new"]) == 0
    assert "re-measuring 3 of 6 specs" in (err := capsys.readouterr().err)
    assert "and measuring the 3 not stored yet among them" in err
    rows = read_all_rows(out)
    assert len(rows) == 9 and rows["key"].value_counts().to_dict() == {
        **{k: 2 for k in old},
        **{k: 1 for k in set(rows["key"]) - old},
    }
    runs = [json.loads(r) for r in (out / "unit" / "eager" / "runs.jsonl").read_text().splitlines()]
    assert len(runs) == 2
    assert main([*base, "--samples", "6", "--with-new"]) == 2
    assert "--with-new adds" in _one_error_line(capsys)


def test_profile_anchors_mix_settled_specs_into_an_unsettled_round(capsys, tmp_path) -> None:
    """--remeasure unsettled --with-new --anchors N: the new specs, and N of the settled
    stored ones chosen at random per round; refused with a round of all or without --shuffle."""
    base, out = _settled_unit_profile(tmp_path)
    old = read_all_rows(out)["key"].value_counts()
    assert set(old) == {3}
    capsys.readouterr()
    argv = [*base, "--samples", "8", "--remeasure", "unsettled", "--max-median-error", "1e6"]
    assert main([*argv, "--with-new", "--anchors", "2", "--shuffle", "5"]) == 0
    err = capsys.readouterr().err
    assert "re-measuring 0 of 8 specs" in err and "with 2 other stored ones as anchors" in err
    counts = read_all_rows(out)["key"].value_counts()
    assert sorted(counts[old.index]) == [3, 3, 4, 4] and len(counts) == 8
    assert set(counts.drop(old.index)) == {1}
    rows = len(read_all_rows(out))
    for flags in (["--anchors", "2"], ["--anchors", "-1", "--shuffle", "5"]):
        assert main([*argv, *flags]) == 2
        assert "--anchors" in _one_error_line(capsys)
    every = ["--samples", "8", "--remeasure", "all", "--shuffle", "5", "--anchors", "2"]
    assert main([*base, *every]) == 2
    assert "--anchors N adds" in _one_error_line(capsys)
    assert len(read_all_rows(out)) == rows


def test_measure_json_prints_one_object() -> None:
    """As a user runs it: the console script, stdout is exactly one JSON object."""
    exe = Path(sys.executable).with_name("canao")
    proc = subprocess.run(
        [
            str(exe),
            "measure",
            "--arch",
            "bert-tiny",
            "--backend",
            "onnxruntime",
            "--json",
            "--seq-len",
            "32",
            "--repeat",
            "3",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["arch"] == "bert-tiny" and out["backend"] == "onnxruntime"
    assert out["median_ms"] > 0 and len(out["samples"]) == 3 and out["seq_len"] == 32
    assert out["max_abs_err"] < 1e-3
