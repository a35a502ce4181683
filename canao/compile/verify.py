"""``canao verify``: compiled finalists measured on the device, against their prediction.

Per compiled folder: the TVM module's latency on the device (this host, or any device on the
RPC tracker), the same model in ONNX Runtime and PyTorch eager (host only, side by side, as
ratios), the test-split accuracy computed *through the compiled module*, and the predictor's
latency for the ArchSpec. A prediction more than 10% off the measured latency is flagged.
Rows are appended to ``verify.jsonl`` (one per finalist and run), never overwritten.
"""

from __future__ import annotations

import json
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from canao.compile.export import read_compiled
from canao.compile.runtime import Classifier, OrtModel, TvmModel
from canao.profiling.measurement import EvalConfig, measure_steady, time_callable

#: a prediction further than this from the measurement is flagged
FLAG_ERROR = 0.10


def eager_ms(folder: Path, info: dict[str, Any], cfg: EvalConfig) -> tuple[float, float]:
    """The source model in PyTorch eager (median ms, CV), same inputs as the compiled one."""
    import torch

    from canao.compile.export import example_inputs
    from canao.compress.checkpoint import load_model

    model, _ = load_model(Path(info["source"]))
    ids, mask = example_inputs(int(info["seq_len"]), n_tokens=int(info["seq_len"]) // 2)
    torch.set_num_threads(cfg.threads)

    def run() -> None:
        with torch.inference_mode():
            model(ids, mask)

    m, _ = measure_steady(lambda c: time_callable(run, c), cfg)
    return m.median_ms, m.cv


def compiled_accuracy(clf: Classifier, task: str, split: str, limit: int | None) -> float:
    """Accuracy of the compiled module on the task's split (batch 1, fixed seq_len)."""
    from canao.compress.data import load_task

    data = load_task(task).split(split)
    if limit:
        data = data.head(limit)
    texts, labels = list(data.texts), np.asarray(data.labels)
    pred = np.argmax(clf.logits(texts), axis=1)
    return float(np.mean(pred == labels))


def verify_one(
    folder: Path,
    predictor: Any,
    cfg: EvalConfig,
    model: TvmModel,
    *,
    remote: str | None = None,
    split: str = "test",
    limit: int | None = None,
    baselines: bool = True,
    canary_ms: float | None = None,
) -> dict[str, Any]:
    """Measure one compiled finalist (see the module doc). ``canary_ms``: the canary block's
    time on the device now; a predictor trained with drift correction predicts at its dataset's
    canary time, and the prediction is rescaled to today's host speed."""
    from canao.space import ArchSpec

    info = read_compiled(folder)
    arch = ArchSpec.from_dict(info["arch"])
    seq = int(info["seq_len"])
    t0 = time.perf_counter()
    m, noisy = measure_steady(lambda c: model.time(c, seq), cfg)
    row: dict[str, Any] = {
        "name": arch.name or folder.name,
        "folder": str(folder),
        "device": remote or info["device"],
        "threads": cfg.threads,
        "seq_len": seq,
        "gflops": round(arch.flops / 1e9, 4),
        "params": arch.params,
        "tvm_ms": round(m.median_ms, 4),
        "tvm_cv": round(m.cv, 4),
        "noisy": noisy,
        "samples_ms": [round(s, 4) for s in m.samples_ms],
    }
    if Path(info["source"]).is_dir():  # numerics on the device, against PyTorch here
        from canao.compile.export import ATOL, check_numerics
        from canao.compress.checkpoint import load_model

        torch_model, _ = load_model(Path(info["source"]))
        row["max_abs_err"] = check_numerics(torch_model, model.logits, seq)
        row["numerics_ok"] = bool(row["max_abs_err"] <= ATOL)
    row["tuned"] = info.get("tuned", True)
    if baselines:  # ONNX Runtime and eager run here: with an RPC device, only if it is this host
        if info.get("onnx") and (folder / "model.onnx").is_file():
            ort = OrtModel(folder / "model.onnx", cfg.threads)
            mo, _ = measure_steady(lambda c: ort.time(c, seq), cfg)
            row["ort_ms"] = round(mo.median_ms, 4)
        row["eager_ms"] = round(eager_ms(folder, info, cfg)[0], 4)
    if predictor is not None:
        backend = predictor.meta_.get("backend")
        pred = predictor.predict_arch(replace(arch, seq_len=seq, batch=1), cfg.threads)
        measured = {
            "tvm": row["tvm_ms"],
            "onnxruntime": row.get("ort_ms"),
            "eager": row.get("eager_ms"),
        }.get(backend)
        row["predictor"] = {"backend": backend, "device": predictor.meta_.get("device")}
        ref = predictor.meta_.get("canary_ms")
        if canary_ms and ref:
            row["predicted_raw_ms"] = round(float(pred), 4)
            row["canary_ms"] = {"dataset": round(float(ref), 4), "now": round(canary_ms, 4)}
            pred = pred * canary_ms / float(ref)
        row["predicted_ms"] = round(float(pred), 4)
        if measured:
            err = (pred - measured) / measured
            row["measured_ms"] = measured
            row["error"] = round(float(err), 4)
            row["flagged"] = bool(abs(err) > FLAG_ERROR)
    task = info.get("task")
    if task and split != "none":
        clf = Classifier(folder, model)
        row["task"] = task
        row[f"{split}_accuracy"] = round(compiled_accuracy(clf, task, split, limit), 5)
        row["source_test_accuracy"] = info.get("test_accuracy")
        row["eval_limit"] = limit
    row["verify_s"] = round(time.perf_counter() - t0, 1)
    row["time"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    return row


def append_rows(path: Path, rows: list[dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as f:
        for r in rows:
            f.write(json.dumps(r) + "\n")


def read_rows(path: Path) -> list[dict[str, Any]]:
    """The latest row per compiled folder."""
    latest: dict[str, dict[str, Any]] = {}
    for line in path.read_text().splitlines():
        if line.strip():
            r = json.loads(line)
            latest[r["folder"]] = r
    return list(latest.values())


def table(rows: list[dict[str, Any]]) -> str:
    head = "| finalist | GFLOPs | TVM ms | ORT ms | eager ms | predicted ms | error | accuracy |"
    out = [head, "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        err = r.get("error")
        acc = r.get("test_accuracy")

        def f(x: Any, spec: str = ".3f") -> str:
            return "-" if x is None else format(x, spec)

        out.append(
            f"| {r['name']} | {r['gflops']:.3f} | {f(r['tvm_ms'])} | {f(r.get('ort_ms'))} | "
            f"{f(r.get('eager_ms'))} | {f(r.get('predicted_ms'))} | "
            f"{'-' if err is None else f'{err:+.1%}'}{' FLAG' if r.get('flagged') else ''} | "
            f"{'-' if acc is None else f'{acc:.2%}'} |"
        )
    return "\n".join(out)


def measure_reference(
    name: str,
    seq_len: int,
    cfg: EvalConfig,
    backends: tuple[str, ...] = ("tvm", "onnxruntime", "eager"),
) -> dict[str, Any]:
    """A well-known model (``bert-base``, the base) measured end to end on this host with
    each backend (random weights; latency does not depend on them). TVM needs the model's
    workloads in the tuning database (``canao tune --arch NAME``): otherwise an error entry."""
    from canao.profiling.runner import LocalRunner
    from canao.space import load_arch

    arch = load_arch(name, seq_len=seq_len)
    row: dict[str, Any] = {
        "kind": "reference",
        "name": name,
        "folder": f"reference:{name}:{seq_len}",
        "seq_len": seq_len,
        "threads": cfg.threads,
        "gflops": round(arch.flops / 1e9, 4),
        "params": arch.params,
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    for backend in backends:
        with LocalRunner(backend, "host", cfg) as runner:
            res = runner.run(arch)
        key = {"onnxruntime": "ort"}.get(backend, backend)
        if res.ok and res.measurement is not None:
            row[f"{key}_ms"] = round(res.measurement.median_ms, 4)
        else:
            row[f"{key}_error"] = (res.error or "failed")[:300]
    return row
