"""The device fingerprint recorded with every latency row."""

from __future__ import annotations

import functools
import os
import platform
import re
import sys

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


def slug(text: str) -> str:
    text = re.sub(r"\((r|tm|c)\)", "", text.lower())
    text = re.sub(r"\b(cpu|processor|\d+-core)\b", "", text)
    return re.sub(r"[^a-z0-9]+", "-", text).strip("-")


def host_device_name() -> str:
    """A folder name for this machine, e.g. ``intel-xeon-amx-2c``."""
    return f"{slug(cpu_model())}-{isa_level()}-{os.cpu_count()}c"


def resolve_device(name: str) -> str:
    """``host`` becomes this machine's name; any other name is checked and kept."""
    if name == "host":
        return host_device_name()
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
