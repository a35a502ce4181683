"""Cross-compilation for Arm devices: aarch64 Linux boards and Android phones.

TVM generates the code (LLVM, ``mtriple``); linking the shared library needs the device's
toolchain: Debian's ``gcc-aarch64-linux-gnu`` for Linux boards, the Android NDK's clang for
phones (``TVM_NDK_CC``, e.g. ``$NDK/toolchains/llvm/prebuilt/linux-x86_64/bin/
aarch64-linux-android28-clang``). The library goes to the device through the RPC tracker.
"""

from __future__ import annotations

import os
import shutil
import struct
from pathlib import Path
from typing import Any

#: cross targets: LLVM target and how to find the linker
CROSS_TARGETS: dict[str, dict[str, Any]] = {
    "aarch64-linux-gnu": {
        "target": {"kind": "llvm", "mtriple": "aarch64-linux-gnu", "mattr": ["+neon"]},
        "cc": "aarch64-linux-gnu-gcc",
        "install": "apt-get install gcc-aarch64-linux-gnu  (or: make cross)",
    },
    "aarch64-linux-android": {
        "target": {"kind": "llvm", "mtriple": "aarch64-linux-android", "mattr": ["+neon"]},
        "cc": None,  # the NDK, through TVM_NDK_CC
        "install": "install the Android NDK and set TVM_NDK_CC to its aarch64 clang",
    },
}

#: ELF ``e_machine`` values
ELF_MACHINES = {62: "x86_64", 183: "aarch64", 40: "arm"}


class CrossCompileError(Exception):
    """The cross target is unknown or its toolchain is missing."""


def cross_target(name: str, threads: int | None = None) -> Any:
    import tvm

    if name not in CROSS_TARGETS:
        raise CrossCompileError(
            f"unknown cross target {name!r}; choose one of: {', '.join(CROSS_TARGETS)}"
        )
    cfg = dict(CROSS_TARGETS[name]["target"])
    if threads is not None:
        cfg["num-cores"] = threads
    return tvm.target.Target(cfg)


def cross_fcompile(name: str) -> Any:
    """The function ``export_library`` links with, or a clear error if the toolchain is absent."""
    from tvm.support import cc, ndk

    info = CROSS_TARGETS.get(name)
    if info is None:
        raise CrossCompileError(f"unknown cross target {name!r}")
    if info["cc"] is None:
        ndk_cc = os.environ.get("TVM_NDK_CC")
        if not ndk_cc or not shutil.which(ndk_cc):
            raise CrossCompileError(
                f"{name}: TVM_NDK_CC is not set to a compiler; {info['install']}"
            )
        return ndk.create_shared
    if not shutil.which(info["cc"]):
        raise CrossCompileError(f"{name}: {info['cc']} not found; {info['install']}")
    return cc.cross_compiler(info["cc"])


def export_cross(ex: Any, path: Path, name: str) -> Path:
    """Link a compiled executable for the cross target into ``path`` (a ``.so``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    ex.export_library(str(path), fcompile=cross_fcompile(name))
    return path


def elf_machine(path: Path) -> str:
    """The architecture an ELF file is built for (``aarch64``, ``x86_64``, ...)."""
    head = Path(path).read_bytes()[:20]
    if len(head) < 20 or head[:4] != b"\x7fELF":
        raise ValueError(f"{path} is not an ELF file")
    endian = "<" if head[5] == 1 else ">"
    (machine,) = struct.unpack(endian + "H", head[18:20])
    return ELF_MACHINES.get(machine, f"machine-{machine}")
