"""``canao compile``, ``canao verify``, ``canao report`` and ``canao classify``."""

from __future__ import annotations

import argparse
import functools
import json
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from canao.errors import UsageError


def _resolve_model(value: str, task: str) -> Path:
    """A model folder, or an ArchSpec JSON whose distilled folder exists."""
    from canao.compress.checkpoint import is_model_dir
    from canao.compress.teacher import default_dir
    from canao.space import SpecError, load_arch

    path = Path(value)
    if path.is_dir():
        if not is_model_dir(path):
            raise UsageError(
                f"{path} is not a model folder (model.safetensors, arch.json, meta.json)"
            )
        return path
    try:
        arch = load_arch(value)
    except SpecError as e:
        raise UsageError(f"{value}: neither a model folder nor an ArchSpec ({e})") from None
    name = arch.name or path.stem
    folder = default_dir(task, "distilled") / name
    if not is_model_dir(folder):
        raise UsageError(
            f"{value} is an architecture without trained weights; distil it first: "
            f"canao compress distill --arch {value} --task {task}  (writes {folder})"
        )
    return folder


def cmd_compile(args: argparse.Namespace) -> int:
    from canao.compile.export import CompileError, compile_model
    from canao.compress.checkpoint import CheckpointError

    model_dir = _resolve_model(args.model, args.task)
    out = Path(args.out) if args.out else Path("runs/compiled") / model_dir.name
    if args.tune_trials < 0:
        raise UsageError("--tune-trials must be >= 0")
    log = functools.partial(print, file=sys.stderr)
    try:
        info = compile_model(
            model_dir,
            out,
            seq_len=args.seq_len,
            device=args.device,
            threads=args.threads,
            tune_trials=args.tune_trials,
            tuning_dir=Path(args.db) if args.db else None,
            onnx=not args.no_onnx,
            overwrite=args.overwrite,
            cross=args.cross,
            allow_untuned=args.allow_untuned,
            log=log,
        )
    except (CompileError, CheckpointError) as e:
        raise UsageError(str(e)) from None
    if args.json:
        print(json.dumps({"out": str(out), **info}))
    else:
        print(out)
    return 0


def cmd_classify(args: argparse.Namespace) -> int:
    import numpy as np

    from canao.compile.export import CompileError
    from canao.compile.runtime import Classifier

    texts = list(args.text)
    if args.file:
        lines = (
            Path(args.file).read_text().splitlines()
            if args.file != "-"
            else sys.stdin.read().splitlines()
        )
        texts += [x for x in (line.strip() for line in lines) if x]
    if not texts:
        raise UsageError("give sentences to classify (arguments, or --file F / --file -)")
    try:
        clf = Classifier(Path(args.model))
    except CompileError as e:
        raise UsageError(str(e)) from None
    clf.logits(texts[:1])  # warm-up (first call pays for page faults and thread start)
    rows = []
    for text in texts:
        t0 = time.perf_counter()
        logits = clf.logits([text])[0]
        ms = (time.perf_counter() - t0) * 1e3
        p = np.exp(logits - logits.max())
        p /= p.sum()
        k = int(np.argmax(p))
        rows.append(
            {"text": text, "label": clf.label(k), "p": round(float(p[k]), 4), "ms": round(ms, 3)}
        )
    if args.json:
        for r in rows:
            print(json.dumps(r))
    else:
        for r in rows:
            print(f"{r['label']:>10s} {r['p']:.2f}  {r['ms']:7.2f} ms  {r['text']}")
        med = float(np.median([r["ms"] for r in rows]))
        print(
            f"{len(rows)} sentences, median {med:.2f} ms each "
            f"(tokenizer + compiled model, seq_len {clf.seq_len}, {clf.info['threads']} threads)",
            file=sys.stderr,
        )
    return 0


def _canary_now(args: argparse.Namespace, meta: dict, cfg: Any, device: str) -> float | None:
    """The canary block's time on the verified device now, on the predictor's backend (for
    drift-corrected predictions), or None where it cannot run there."""
    from canao.profiling.runner import CANARY, LocalRunner, RPCRunner

    backend = str(meta.get("backend"))
    if args.rpc_tracker and backend != "tvm":
        return None  # only TVM runs on an RPC device
    try:
        runner = (
            RPCRunner(backend, device, args.rpc_tracker, args.rpc_key, cfg)
            if args.rpc_tracker
            else LocalRunner(backend, device, cfg)
        )
        with runner:
            res = runner.run(CANARY)
        error = res.error
    except (ValueError, RuntimeError, OSError) as e:
        res, error = None, str(e)
    if res is None or not res.ok or res.measurement is None:
        print(f"canao verify: canary not measured ({error}); raw predictions", file=sys.stderr)
        return None
    ms = float(res.measurement.median_ms)
    print(
        f"canao verify: canary {ms:.3f} ms now vs {float(meta['canary_ms']):.3f} ms in the "
        "predictor's dataset: predictions rescaled by the ratio",
        file=sys.stderr,
    )
    return ms


def cmd_verify(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from canao.cli import _load_predictor
    from canao.compile.export import CompileError, read_compiled
    from canao.compile.runtime import load_local, load_remote
    from canao.compile.verify import append_rows, table, verify_one
    from canao.profiling.measurement import EvalConfig
    from canao.profiling.runner import parse_tracker

    folders = [Path(x) for x in args.compiled]
    try:
        for f in folders:
            read_compiled(f)
        cfg = EvalConfig(repeat=args.repeat, threads=args.threads, min_repeat_ms=args.min_repeat_ms)
    except (CompileError, ValueError) as e:
        raise UsageError(str(e)) from None
    if bool(args.rpc_tracker) != bool(args.rpc_key):
        raise UsageError("--rpc-tracker and --rpc-key go together")
    tracker = parse_tracker(args.rpc_tracker) if args.rpc_tracker else None
    predictor = _load_predictor(args.predictor) if args.predictor else None
    canary_ms = None
    here = str(read_compiled(folders[0])["device"])  # compiled for (an RPC key is an alias)
    if predictor is not None and predictor.meta_.get("canary_ms") and not args.no_canary:
        canary_ms = _canary_now(args, predictor.meta_, cfg, here)
    if predictor is not None:
        fitted = predictor.meta_.get("device")
        if fitted and fitted != here:
            print(
                f"canao verify: warning: the predictor was fitted on {fitted}, the finalists are "
                f"compiled for {here}: predicted vs measured compares two devices (train a "
                f"predictor on {here}'s rows, or adapt one: canao train --transfer-from)",
                file=sys.stderr,
            )
    rows = []
    for folder in tqdm(folders, desc="verifying", unit="model", disable=len(folders) < 2):
        if tracker is not None:
            model = load_remote(folder, tracker, args.rpc_key)
        else:
            model = load_local(folder)
        rows.append(
            verify_one(
                folder,
                predictor,
                cfg,
                model,
                remote=args.rpc_key if tracker else None,
                split=args.split,
                limit=args.limit,
                baselines=not args.no_baselines and (tracker is None or args.local_baselines),
                canary_ms=canary_ms,
            )
        )
    if args.references:
        from canao.compile.verify import measure_reference

        seq = int(read_compiled(folders[0])["seq_len"])
        for name in tqdm(args.references.split(","), desc="references", unit="model"):
            rows.append(measure_reference(name.strip(), seq, replace(cfg, timeout_s=900)))
    out = Path(args.out)
    append_rows(out / "verify.jsonl", rows)
    if args.json:
        for r in rows:
            print(json.dumps(r))
    else:
        print(table([r for r in rows if r.get("kind") != "reference"]))
        flagged = [r["name"] for r in rows if r.get("flagged")]
        print(
            f"\n{sum(r.get('kind') != 'reference' for r in rows)} finalists verified; "
            + (f"FLAGGED (prediction off by > 10%): {', '.join(flagged)}; " if flagged else "")
            + f"rows appended to {out / 'verify.jsonl'}",
            file=sys.stderr,
        )
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from canao.compile.report import build_report

    try:
        md = build_report(
            Path(args.verify), Path(args.out), Path(args.search) if args.search else None
        )
    except FileNotFoundError as e:
        raise UsageError(str(e)) from None
    print(md)
    return 0


def add_parsers(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("compile", help="compile a trained finalist with TVM (+ ONNX export)")
    p.add_argument("model", help="a model folder (canao compress distill), or its ArchSpec JSON")
    p.add_argument("--task", default="mr", help="task, to find a distilled ArchSpec's weights")
    p.add_argument("--out", help="compiled folder (default runs/compiled/NAME)")
    p.add_argument("--device", default="host")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seq-len", type=int, help="fixed input length (default: the ArchSpec's)")
    p.add_argument(
        "--tune-trials",
        type=int,
        default=64,
        help="MetaSchedule trials for workloads missing from the database (0: refuse)",
    )
    p.add_argument("--db", help="tuning database (default datasets_latency/DEVICE/tvm/tuning)")
    p.add_argument(
        "--cross",
        choices=("aarch64-linux-gnu", "aarch64-linux-android"),
        help="build for an Arm device named by --device (Android: set TVM_NDK_CC)",
    )
    p.add_argument(
        "--allow-untuned",
        action="store_true",
        help="with --cross: build workloads missing from the device's database untuned (marked so)",
    )
    p.add_argument("--no-onnx", action="store_true", help="skip the ONNX export")
    p.add_argument("--overwrite", action="store_true")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_compile)

    p = sub.add_parser("verify", help="measure compiled finalists on the device vs prediction")
    p.add_argument("compiled", nargs="+", help="compiled folders (canao compile)")
    p.add_argument("--predictor", help="latency predictor folder (canao train)")
    p.add_argument("--split", default="test", help="task split for accuracy (none: skip)")
    p.add_argument("--limit", type=int, help="first N examples of the split only")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeat", type=int, default=7)
    p.add_argument("--min-repeat-ms", type=float, default=40.0)
    p.add_argument("--no-baselines", action="store_true", help="skip ONNX Runtime and eager")
    p.add_argument(
        "--no-canary",
        action="store_true",
        help="do not time the canary block: raw predictions, not rescaled to today's host speed",
    )
    p.add_argument(
        "--local-baselines",
        action="store_true",
        help="with --rpc-tracker: the RPC device is this host, so measure ONNX Runtime and "
        "eager here too",
    )
    p.add_argument("--rpc-tracker", metavar="HOST:PORT", help="measure on an RPC device")
    p.add_argument("--rpc-key", help="the device key registered with the tracker")
    p.add_argument(
        "--references",
        help="also measure these models end to end, e.g. bert-base,minilm-l6-h384 (TVM: after "
        "`canao tune --arch NAME`)",
    )
    p.add_argument("--out", default="runs/verify", help="where verify.jsonl is appended")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_verify)

    p = sub.add_parser("report", help="Markdown + PNG report of the verified finalists")
    p.add_argument("--verify", default="runs/verify", help="folder with verify.jsonl")
    p.add_argument("--search", help="search folder (trials.csv) for the predicted front")
    p.add_argument("--out", default="runs/report")
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("classify", help="classify sentences with a compiled model")
    p.add_argument("text", nargs="*", help="sentences")
    p.add_argument("--model", required=True, help="a compiled folder (canao compile)")
    p.add_argument("--file", help="one sentence per line ('-': stdin)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_classify)
