"""An emulated aarch64 board: an aarch64 Python with the aarch64 apache-tvm wheels, run under
``qemu-aarch64-static``, serving ``tvm.exec.rpc_server`` to a tracker like a real Arm board.

It stands in for a phone or a Linux board in tests: cross-compiled libraries are uploaded to it,
run there and their numerics checked. Its timings are an emulator's, never a device's: ``canao
profile`` refuses RPC keys that start with ``emulated-`` (:data:`EMULATED_PREFIX`).

``python -m canao.profiling.board setup [DIR]`` (``make board``) builds it in ``DIR`` (default
``.board``) from Debian's arm64 packages (python3.11 and the C libraries it needs, unpacked with
``dpkg -x``, nothing installed system-wide but ``qemu-user-static``) and PyPI's aarch64 wheels
of the versions this host runs; ``ready.json`` marks a finished setup, ``setup.log`` says why
one failed.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import zipfile
from importlib import metadata
from pathlib import Path

from canao.profiling.farm import LocalFarm

#: RPC keys of emulated devices start with this: their timings are never stored as latency
EMULATED_PREFIX = "emulated-"
DEFAULT_DIR = Path(".board")
#: Debian (bookworm) arm64 packages that python3.11 and the TVM runtime need
DEBS = (
    "python3.11-minimal libpython3.11-minimal libpython3.11-stdlib libc6 zlib1g libexpat1 libffi8 "
    "libssl3 libstdc++6 libgcc-s1 libbz2-1.0 liblzma5 libsqlite3-0 libncursesw6 libtinfo6 "
    "libuuid1 libcrypt1 libgomp1"
).split()
#: aarch64 wheels: these at the host's versions, then their small pure or abi3 dependencies
PINNED = ("apache-tvm", "apache-tvm-ffi", "numpy", "ml_dtypes")
EXTRA = ("typing_extensions", "psutil", "cloudpickle", "tornado")
PLATFORMS = ("manylinux2014_aarch64", "manylinux_2_17_aarch64", "manylinux_2_27_aarch64",
             "manylinux_2_28_aarch64", "any")  # fmt: skip


class BoardError(RuntimeError):
    """The emulated board is not set up here (the message says why and how)."""


def qemu() -> str | None:
    return shutil.which("qemu-aarch64-static") or shutil.which("qemu-aarch64")


def python_command(root: Path = DEFAULT_DIR) -> list[str]:
    """The command that starts the board's aarch64 Python, or :class:`BoardError`."""
    root = Path(root).resolve()
    ready = root / "ready.json"
    if not ready.is_file():
        why = (root / "setup.log").read_text()[-600:] if (root / "setup.log").exists() else ""
        raise BoardError(
            f"no emulated aarch64 board in {root} (run `make board`)" + (f": {why}" if why else "")
        )
    return python_command_unchecked(root)


def board_env(root: Path = DEFAULT_DIR) -> dict[str, str]:
    return {"PYTHONPATH": str(Path(root).resolve() / "site"), "PYTHONNOUSERSITE": "1"}


class EmulatedFarm(LocalFarm):
    """A tracker (host Python) and the emulated board's RPC server registered as ``key``."""

    def __init__(
        self, key: str = EMULATED_PREFIX + "aarch64", root: Path = DEFAULT_DIR, **kw: object
    ) -> None:
        if not key.startswith(EMULATED_PREFIX):
            raise ValueError(f"an emulated board's key starts with {EMULATED_PREFIX!r}")
        super().__init__(key, **kw)  # type: ignore[arg-type]
        self.server_python = python_command(root)
        self.server_env = board_env(root)
        self.register_timeout = 300.0  # TVM takes ~20 s to import under qemu, more when busy


def _run(cmd: list[str], log: Path) -> None:
    with open(log, "a") as f:
        f.write("$ " + " ".join(cmd) + "\n")
        f.flush()
        subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, check=True)


def setup(root: Path = DEFAULT_DIR) -> Path:
    """Build the board in ``root`` (idempotent; see the module doc)."""
    root = Path(root).resolve()
    if (root / "ready.json").is_file():
        return root
    root.mkdir(parents=True, exist_ok=True)
    log = root / "setup.log"
    log.write_text("")
    try:
        if qemu() is None:
            if not shutil.which("apt-get"):
                raise BoardError("qemu-aarch64-static missing and no apt-get to install it")
            _run(["apt-get", "install", "-y", "-q", "qemu-user-static"], log)
        apt = root / "apt"
        (apt / "lists" / "partial").mkdir(parents=True, exist_ok=True)
        debs = root / "debs"
        debs.mkdir(exist_ok=True)
        opts = ["-oAPT::Architecture=arm64", "-oAPT::Architectures=arm64",
                f"-oDir::State::Lists={apt / 'lists'}"]  # fmt: skip
        _run(["apt-get", *opts, "update", "-q"], log)
        subprocess.run(
            ["apt-get", *opts, "download", "-q", *DEBS], cwd=debs, check=True,
            stdout=open(log, "a"), stderr=subprocess.STDOUT,  # noqa: SIM115
        )  # fmt: skip
        sysroot = root / "sysroot"
        for deb in sorted(debs.glob("*.deb")):
            _run(["dpkg", "-x", str(deb), str(sysroot)], log)
        wheels = root / "wheels"
        pins = [f"{name}=={metadata.version(name)}" for name in PINNED]
        plat = [x for p in PLATFORMS for x in ("--platform", p)]
        _run(
            [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:",
             "--python-version", "3.11", *plat, "-d", str(wheels), *pins, *EXTRA],
            log,
        )  # fmt: skip
        site = root / "site"
        for whl in sorted(wheels.glob("*.whl")):
            with zipfile.ZipFile(whl) as z:
                z.extractall(site)
        cmd = [*python_command_unchecked(root), "-c", "import tvm, numpy; print(tvm.__version__)"]
        out = subprocess.run(
            cmd, env=board_env(root), capture_output=True, text=True, timeout=600, check=True
        )
        info = {"tvm": out.stdout.strip(), "wheels": sorted(p.name for p in wheels.glob("*"))}
        (root / "ready.json").write_text(json.dumps(info, indent=1) + "\n")
    except (OSError, subprocess.SubprocessError, BoardError) as e:
        with open(log, "a") as f:
            f.write(f"setup failed: {e}\n")
        raise BoardError(f"emulated board setup failed ({e}); see {log}") from None
    return root


#: ``DIR/python3.11``: starts the aarch64 Python under qemu with itself as ``argv[0]``, so that
#: ``sys.executable`` is this script and the subprocesses Python starts (TVM's RPC server runs
#: in one) are emulated too, without binfmt_misc
WRAPPER = """#!/bin/sh
d=$(dirname "$(readlink -f "$0")")
q=$(command -v qemu-aarch64-static || command -v qemu-aarch64) || exit 127
exec "$q" -L "$d/sysroot" -0 "$0" "$d/sysroot/usr/bin/python3.11" "$@"
"""


def python_command_unchecked(root: Path) -> list[str]:
    if qemu() is None:
        raise BoardError("qemu-aarch64-static not found (apt-get install qemu-user-static)")
    wrapper = Path(root).resolve() / "python3.11"
    if not wrapper.is_file():
        wrapper.write_text(WRAPPER)
        wrapper.chmod(0o755)
    return [str(wrapper)]


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] != "setup":
        print("usage: python -m canao.profiling.board setup [DIR]", file=sys.stderr)
        return 2
    try:
        root = setup(Path(args[1]) if len(args) > 1 else DEFAULT_DIR)
    except BoardError as e:
        print(f"canao board: {e}", file=sys.stderr)
        return 1
    print(f"canao board: emulated aarch64 board ready in {root}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
