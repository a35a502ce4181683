from __future__ import annotations

import json
from pathlib import Path

import pytest

from canao.profiling.fingerprint import (
    DEVICE_FILE,
    DeviceMismatchError,
    claim_device_folder,
    cpu_identity,
    host_device_name,
    resolve_device,
    slug,
)


def record(folder: Path, **cpu: object) -> None:
    folder.mkdir(parents=True)
    (folder / DEVICE_FILE).write_text(json.dumps({"cpu": cpu}))


def other_cpu() -> dict[str, object]:
    """This host's identity with another family number (a Zen 4 beside a Zen 5)."""
    host = cpu_identity()
    return {**host, "family": int(host.get("family", 0)) + 1}


def test_first_measurement_records_the_cpu_and_later_ones_must_match(tmp_path: Path) -> None:
    folder = tmp_path / "dev"
    claim_device_folder(folder)
    assert json.loads((folder / DEVICE_FILE).read_text())["cpu"] == cpu_identity()
    claim_device_folder(folder)  # the same host again: no error
    other = tmp_path / "other"
    record(other, **other_cpu())
    with pytest.raises(DeviceMismatchError, match="would mix two devices"):
        claim_device_folder(other)
    assert json.loads((other / DEVICE_FILE).read_text())["cpu"] == other_cpu()  # untouched


def test_a_partial_record_is_completed_never_changed(tmp_path: Path) -> None:
    folder = tmp_path / "dev"
    host = cpu_identity()
    record(folder, model_name=host["model_name"], cpu_count=host["cpu_count"], extra="kept")
    claim_device_folder(folder)
    assert json.loads((folder / DEVICE_FILE).read_text())["cpu"] == {**host, "extra": "kept"}


def test_host_gets_its_own_folder_beside_another_cpu_of_the_same_name(tmp_path: Path) -> None:
    base = host_device_name()
    assert resolve_device("host", tmp_path) == base  # nothing recorded yet
    record(tmp_path / base, **cpu_identity())
    assert resolve_device("host", tmp_path) == base  # recorded by this very CPU
    (tmp_path / base / DEVICE_FILE).unlink()
    (tmp_path / base).rmdir()
    record(tmp_path / base, **other_cpu())
    own = resolve_device("host", tmp_path)
    assert own != base and own.startswith(base + "-")
    claim_device_folder(tmp_path / own)  # and that folder is this host's
    copy = tmp_path / "copy"  # a root holding a copy of that folder alone still resolves to it
    record(copy / own, **cpu_identity())
    assert resolve_device("host", copy) == own
    record(tmp_path / "copy2" / own, **other_cpu())  # but not one another CPU recorded
    assert resolve_device("host", tmp_path / "copy2") == base


@pytest.mark.parametrize(
    ("model_name", "expected"),
    [
        ("Intel(R) Xeon(R) Processor @ 2.00GHz", "intel-xeon"),
        ("Intel(R) Xeon(R) Processor", "intel-xeon"),
        ("AMD EPYC 9B14 96-Core Processor", "amd-epyc-9b14"),
        ("Intel(R) Core(TM) i7-8700 CPU @ 3.20GHz", "intel-core-i7-8700"),
    ],
)
def test_folder_names_drop_trademarks_and_the_clock(model_name: str, expected: str) -> None:
    assert slug(model_name) == expected


def test_unreadable_record_is_one_clear_error(tmp_path: Path) -> None:
    (tmp_path / "dev").mkdir()
    (tmp_path / "dev" / DEVICE_FILE).write_text("[1, 2")
    with pytest.raises(DeviceMismatchError, match="unreadable device record"):
        claim_device_folder(tmp_path / "dev")
    (tmp_path / "dev" / DEVICE_FILE).write_text("[1, 2]")
    with pytest.raises(DeviceMismatchError, match="a JSON object with a 'cpu' object"):
        claim_device_folder(tmp_path / "dev")


def test_shipped_device_records_name_their_cpus() -> None:
    root = Path(__file__).resolve().parents[2] / "datasets_latency"
    for folder in (p for p in root.iterdir() if p.is_dir()):
        cpu = json.loads((folder / DEVICE_FILE).read_text())["cpu"]
        assert {"vendor", "family", "model_name", "isa", "cpu_count"} <= set(cpu), folder.name
