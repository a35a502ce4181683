"""A backend that misbehaves on purpose, by hidden size, for runner isolation tests."""

from __future__ import annotations

import os
import time
import warnings
from pathlib import Path

from canao.profiling.backends._base import Artifact, Spec
from canao.profiling.backends.eager import EagerBackend

HANG, CRASH, RAISE, WARN = 13, 17, 19, 23


class FaultyBackend(EagerBackend):
    name = "faulty"

    def _build(self, spec: Spec, workdir: Path) -> Artifact:
        if spec.hidden == HANG:
            time.sleep(3600)
        if spec.hidden == CRASH:
            os._exit(3)
        if spec.hidden == RAISE:
            raise RuntimeError("this spec does not build")
        if spec.hidden == WARN:  # torch.export's notice, as TVM's import raises it, and another
            for message in ("`isinstance(treespec, LeafSpec)` is deprecated", "canao test: shown"):
                warnings.warn(message, FutureWarning, stacklevel=2)
        return super()._build(spec, workdir)
