"""The backend contract: build a spec into something that runs, errors as data."""

from __future__ import annotations

import abc
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np

from canao.profiling.measurement import EvalConfig, time_callable
from canao.space import ArchSpec, BlockSpec

Spec = BlockSpec | ArchSpec


class Artifact(abc.ABC):
    """A built spec bound to its example inputs, ready to run on this process's device."""

    #: a file that holds the build (an exported library, an ONNX file), if any
    path: Path | None = None

    @abc.abstractmethod
    def run(self) -> None:
        """One inference on the bound inputs (what is timed)."""

    @abc.abstractmethod
    def output(self) -> np.ndarray:
        """The output for the bound inputs, as a NumPy array (for the numerics check)."""

    def time(self, cfg: EvalConfig) -> tuple[list[float], int]:
        """Samples in milliseconds and runs per sample; backends with a native timer
        override this."""
        return time_callable(self.run, cfg)


@dataclass
class BuildResult:
    """What a build gave: an artifact, or the error that stopped it (never an exception)."""

    artifact: Artifact | None
    error: str | None
    build_s: float


class Backend(abc.ABC):
    """Turns a BlockSpec or ArchSpec into an :class:`Artifact`.

    Contract: ``build`` never raises for a bad or failing spec; it returns a
    :class:`BuildResult` with ``error`` set. A backend instance lives in one worker process
    and is not shared between threads. ``compiled`` says whether its latency is the latency
    of compiled, tuned code that may be reported as such.
    """

    name: ClassVar[str]
    compiled: ClassVar[bool] = True
    #: one line shown wherever this backend's numbers are shown
    label: ClassVar[str] = ""

    def __init__(self, threads: int = 2) -> None:
        self.threads = threads

    @classmethod
    def unavailable(cls) -> str | None:
        """Why this backend cannot run on this machine (checked before a run starts), or None."""
        return None

    @abc.abstractmethod
    def _build(self, spec: Spec, workdir: Path) -> Artifact:
        """Build or raise; ``build`` turns exceptions into data."""

    def build(self, spec: Spec, workdir: Path) -> BuildResult:
        t0 = time.perf_counter()
        try:
            art = self._build(spec, workdir)
        except Exception as e:  # errors are data in batch work
            tb = traceback.format_exception_only(type(e), e)
            return BuildResult(None, "".join(tb).strip()[-2000:], time.perf_counter() - t0)
        return BuildResult(art, None, time.perf_counter() - t0)

    def target(self) -> str:
        """The target string recorded with every row."""
        return "cpu"

    @staticmethod
    def versions() -> dict[str, str]:
        """Versions of the libraries this backend runs on."""
        return {}
