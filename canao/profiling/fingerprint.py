"""The device fingerprint recorded with every latency row."""

from __future__ import annotations

import functools
import json
import os
import platform
import re
import sys
from pathlib import Path

import canao


@functools.cache
def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


@functools.cache
def isa_level() -> str:
    """The widest vector extension the CPU offers (amx, avx512, avx2, neon, ...)."""
    try:
        with open("/proc/cpuinfo") as f:
            text = f.read()
    except OSError:
        return platform.machine()
    flags = set(re.findall(r"\b[a-z0-9_]+\b", text.split("flags", 1)[-1].split("\n", 1)[0]))
    for level in ("amx_tile", "avx512f", "avx2", "avx", "asimd", "neon"):
        if level in flags or (level in ("asimd", "neon") and "Features" in text):
            return level.replace("_tile", "").replace("avx512f", "avx512")
    return platform.machine()


@functools.cache
def cpu_identity() -> dict[str, object]:
    """What tells this CPU from another whose model name is the same (under a hypervisor an
    AMD Zen 4 and a Zen 5 both read ``AMD EPYC``): vendor, family and model numbers, the model
    name, the ISA level and the core count. Fields the OS does not report are left out."""
    ident: dict[str, object] = {}
    try:
        with open("/proc/cpuinfo") as f:
            first = f.read().split("\n\n", 1)[0]
    except OSError:
        first = ""
    fields = dict(
        (k.strip(), v.strip()) for k, _, v in (line.partition(":") for line in first.splitlines())
    )
    if fields.get("vendor_id"):
        ident["vendor"] = fields["vendor_id"]
    for key, name in (("cpu family", "family"), ("model", "model")):
        if fields.get(key, "").isdigit():
            ident[name] = int(fields[key])
    ident["model_name"] = cpu_model()
    ident["isa"] = isa_level()
    ident["cpu_count"] = os.cpu_count() or 0
    return ident


DEVICE_FILE = "device.json"


class DeviceMismatchError(ValueError):
    """A device folder's rows were measured on another CPU than this host's."""


def identity_conflicts(recorded: dict[str, object], host: dict[str, object]) -> list[str]:
    """The fields on which a device folder's recorded CPU and this host's disagree (a field
    only one of them knows is no conflict)."""
    return [
        f"{k} {recorded[k]!r} there, {host[k]!r} here"
        for k in recorded
        if k in host and recorded[k] != host[k]
    ]


def read_identity(folder: Path) -> dict[str, object] | None:
    """The CPU identity recorded in a device folder, or None where none is."""
    path = Path(folder) / DEVICE_FILE
    if not path.exists():
        return None
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise DeviceMismatchError(f"{path}: unreadable device record ({e})") from None
    if not isinstance(data, dict) or not isinstance(data.get("cpu"), dict):
        raise DeviceMismatchError(f"{path}: a device record is a JSON object with a 'cpu' object")
    return dict(data["cpu"])


def claim_device_folder(folder: Path) -> None:
    """Check that this host is the CPU a device folder was measured on, and record it there.

    The first local measurement in a folder writes ``device.json`` with :func:`cpu_identity`;
    later ones must agree with it on every field it has (fields it lacks are added, nothing is
    changed). Raises :class:`DeviceMismatchError` when they do not: the folder's rows would mix
    two CPUs."""
    folder = Path(folder)
    host = cpu_identity()
    recorded = read_identity(folder)
    if recorded is not None:
        conflicts = identity_conflicts(recorded, host)
        if conflicts:
            raise DeviceMismatchError(
                f"{folder} was measured on another CPU than this host ({'; '.join(conflicts)}): "
                "its rows would mix two devices. Profile this host under its own name: "
                f"--device host (here: {host_device_name(folder.parent)}) or --device NAME"
            )
        if all(k in recorded for k in host):
            return
    merged = {**host, **(recorded or {})}
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f".{DEVICE_FILE}.tmp"
    tmp.write_text(json.dumps({"cpu": merged}, indent=1, sort_keys=True) + "\n")
    tmp.replace(folder / DEVICE_FILE)


def slug(text: str) -> str:
    """A CPU model name as a folder name: trademarks, 'CPU'/'Processor' and the clock dropped
    (``Intel(R) Xeon(R) Processor @ 2.00GHz`` -> ``intel-xeon``; a VM's reported clock is not
    the CPU's identity, its family and model numbers are)."""
    text = re.sub(r"\((r|tm|c)\)", "", text.lower())
    text = re.sub(r"@?\s*\d+(\.\d+)?\s*[gm]hz\b", "", text)
    text = re.sub(r"\b(cpu|processor|\d+-core)\b", "", text)
    return re.sub(r"[^a-z0-9]+", "-", text).strip("-")


def host_device_name(root: Path | None = None) -> str:
    """A folder name for this machine, e.g. ``intel-xeon-amx-2c``.

    Where ``root`` (a dataset root) already holds that folder for another CPU with the same
    model name, ISA and core count, the name gets the family and model numbers, e.g.
    ``amd-epyc-avx512-2c-f25m17``, so that two CPUs never share a folder; a root that holds
    only that longer name's folder, recorded by this CPU (a copy of it), resolves to it too."""
    name = f"{slug(cpu_model())}-{isa_level()}-{os.cpu_count()}c"
    if root is None:
        return name
    host = cpu_identity()
    if "family" in host and "model" in host:
        own = f"{name}-f{host['family']}m{host['model']}"
    else:
        own = f"{name}-{slug(str(host.get('vendor', 'other')))}"
    recorded = read_identity(Path(root) / name)
    if recorded is None:
        mine = read_identity(Path(root) / own)
        return own if mine is not None and not identity_conflicts(mine, host) else name
    return name if not identity_conflicts(recorded, host) else own


def resolve_device(name: str, root: Path | None = Path("datasets_latency")) -> str:
    """``host`` becomes this machine's name (:func:`host_device_name` in the dataset root);
    any other name is checked and kept."""
    if name == "host":
        return host_device_name(root)
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}", name):
        raise ValueError(
            f"device name {name!r} must be letters, digits, '.', '_' or '-' (a folder name)"
        )
    return name


def fingerprint(device: str, backend_versions: dict[str, str], target: str) -> dict[str, object]:
    """Where and with what a row was measured."""
    try:
        affinity = sorted(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        affinity = []
    fp: dict[str, object] = {
        "device": device,
        "cpu_model": cpu_model(),
        "isa": isa_level(),
        "cpu_count": os.cpu_count() or 0,
        "affinity": ",".join(map(str, affinity)),
        "os": platform.platform(),
        "python": sys.version.split()[0],
        "canao": canao.__version__,
        "target": target,
        "torch": "",
        "onnxruntime": "",
        "tvm": "",
    }
    fp.update(backend_versions)
    return fp
