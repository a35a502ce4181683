"""Backends: build a spec into something that runs. ``get_backend`` is the factory."""

from __future__ import annotations

import importlib
from typing import Any

from canao.profiling.backends._base import Artifact, Backend, BuildResult, Spec

#: name -> "module:Class"; imported lazily so that ``import canao`` stays light
BACKENDS: dict[str, str] = {
    "eager": "canao.profiling.backends.eager:EagerBackend",
    "onnxruntime": "canao.profiling.backends.onnxruntime:OnnxRuntimeBackend",
    "tvm": "canao.profiling.backends.tvm:TvmBackend",
    "tvm-untuned": "canao.profiling.backends.tvm:TvmUntunedBackend",
    "inductor": "canao.profiling.backends.inductor:InductorBackend",
    "inductor-cudagraphs": "canao.profiling.backends.inductor:InductorGraphsBackend",
}


class UnknownBackendError(ValueError):
    pass


def resolve_backend(name: str) -> str:
    """The import path for a backend name, or a ``module:Class`` path given directly."""
    if name in BACKENDS:
        return BACKENDS[name]
    if ":" in name:
        return name
    raise UnknownBackendError(
        f"unknown backend {name!r}; choose one of: {', '.join(sorted(BACKENDS))}"
    )


def backend_class(name: str) -> type[Backend]:
    module, _, cls = resolve_backend(name).partition(":")
    klass = getattr(importlib.import_module(module), cls)
    if not (isinstance(klass, type) and issubclass(klass, Backend)):
        raise UnknownBackendError(f"{name!r} is not a Backend")
    return klass


def get_backend(name: str, **kwargs: Any) -> Backend:
    """A backend instance from its name (``eager``, ``onnxruntime``, ``tvm-untuned``)."""
    return backend_class(name)(**kwargs)


__all__ = [
    "BACKENDS",
    "Artifact",
    "Backend",
    "BuildResult",
    "Spec",
    "UnknownBackendError",
    "backend_class",
    "get_backend",
    "resolve_backend",
]
