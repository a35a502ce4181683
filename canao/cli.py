"""One entry point: ``canao <command>``. Each command is a function taking parsed args.

Bad input (unknown backend, malformed spec, a path that is not a dataset) prints one line on
stderr and exits with code 2, before anything is written.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

DEFAULT_ROOT = Path("datasets_latency")


class UsageError(Exception):
    """Bad input from the user: reported in one line, exit code 2."""


def _eval_config(args: argparse.Namespace) -> Any:
    from canao.profiling.measurement import EvalConfig

    try:
        return EvalConfig(
            repeat=args.repeat,
            threads=args.threads,
            timeout_s=args.timeout,
            max_cv=args.max_cv,
            min_repeat_ms=args.min_repeat_ms,
        )
    except ValueError as e:
        raise UsageError(str(e)) from None


def _check_backend(name: str) -> str:
    from canao.profiling.backends import BACKENDS

    if name not in BACKENDS:
        raise UsageError(f"unknown backend {name!r}; choose one of: {', '.join(BACKENDS)}")
    return name


def _device(name: str) -> str:
    from canao.profiling.fingerprint import resolve_device

    try:
        return resolve_device(name)
    except ValueError as e:
        raise UsageError(str(e)) from None


def _make_runner(args: argparse.Namespace, device: str, cfg: Any) -> Any:
    from canao.profiling.runner import LocalRunner, RPCRunner

    if args.rpc_tracker:
        if not args.rpc_key:
            raise UsageError("--rpc-tracker needs --rpc-key (the key the device registered)")
        try:
            return RPCRunner(args.backend, device, args.rpc_tracker, args.rpc_key, cfg)
        except ValueError as e:
            raise UsageError(str(e)) from None
    return LocalRunner(args.backend, device, cfg)


# -- canao profile -----------------------------------------------------------------------------
def cmd_profile(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from canao.profiling.samplers import BlockSpace, ModelSpace, block_samples, random_archs
    from canao.profiling.store import LatencyStore, StoreLockedError
    from canao.space import SpecError

    _check_backend(args.backend)
    device = _device(args.device)
    cfg = _eval_config(args)
    if args.samples < 1:
        raise UsageError("--samples must be >= 1")
    try:
        space_cfg: Any
        if args.space == "blocks":
            space_cfg = (
                BlockSpace.from_file(args.space_config) if args.space_config else (BlockSpace())
            )
            specs: list[Any] = block_samples(space_cfg, args.samples, args.seed)
        else:
            space_cfg = ModelSpace()
            specs = random_archs(space_cfg, args.samples, args.seed)
    except SpecError as e:
        raise UsageError(str(e)) from None

    from canao.profiling.runner import row_key

    runner = _make_runner(args, device, cfg)  # bad runner options fail before any write
    store = LatencyStore(Path(args.out), device, args.backend, flush_every=args.flush_every)
    try:
        store.open()
    except StoreLockedError as e:
        raise UsageError(str(e)) from None
    try:
        todo = [s for s in specs if row_key(s, cfg.threads) not in store]
        print(
            f"canao profile: {device}/{args.backend}: {len(specs)} specs "
            f"({args.space}), {len(specs) - len(todo)} already stored, {len(todo)} to measure",
            file=sys.stderr,
        )
        _append_run_log(store.path, args, cfg, space_cfg)
        n_err = n_noisy = 0
        with runner:
            bar = tqdm(todo, unit="spec", dynamic_ncols=True, disable=None)
            for spec in bar:
                res = runner.run(spec)
                store.append(res.row())
                n_err += not res.ok
                n_noisy += res.ok and res.noisy
                last = f"{res.measurement.median_ms:.3f}ms" if res.ok and res.measurement else "err"
                bar.set_postfix(last=last, errors=n_err, noisy=n_noisy, refresh=False)
    except KeyboardInterrupt:
        print("canao profile: interrupted; measured rows are kept", file=sys.stderr)
        return 130
    finally:
        store.close()
    print(
        f"canao profile: done: {len(todo)} measured, {n_err} errors, {n_noisy} noisy; "
        f"{len(store)} rows in {store.path}",
        file=sys.stderr,
    )
    return 0


def _append_run_log(path: Path, args: argparse.Namespace, cfg: Any, space: Any) -> None:
    """The resolved config of every run, next to its output (append-only)."""
    entry = {
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "argv": sys.argv[1:],
        "eval": asdict(cfg),
        "space": asdict(space),
        "seed": args.seed,
        "samples": args.samples,
    }
    with open(path / "runs.jsonl", "a") as f:
        f.write(json.dumps(entry) + "\n")


# -- canao measure -----------------------------------------------------------------------------
def cmd_measure(args: argparse.Namespace) -> int:
    from canao.space import SpecError, load_arch

    _check_backend(args.backend)
    device = _device(args.device)
    cfg = _eval_config(args)
    overrides = {k: v for k, v in (("seq_len", args.seq_len), ("batch", args.batch)) if v}
    try:
        arch = load_arch(args.arch, **overrides)
    except SpecError as e:
        raise UsageError(str(e)) from None
    with _make_runner(args, device, cfg) as runner:
        res = runner.run(arch)
    if not res.ok or res.measurement is None:
        print(f"canao measure: {res.error}", file=sys.stderr)
        return 1
    m = res.measurement
    out = {
        "arch": arch.name or arch.to_dict(),
        "backend": args.backend,
        "compiled": res.compiled,
        "device": device,
        "threads": cfg.threads,
        "seq_len": arch.seq_len,
        "batch": arch.batch,
        "median_ms": round(m.median_ms, 4),
        "iqr_ms": round(m.iqr_ms, 4),
        "cv": round(m.cv, 4),
        "noisy": res.noisy,
        "max_abs_err": res.max_abs_err,
        "gflops": round(arch.flops / 1e9, 3),
        "params": arch.params,
        "samples": [round(s, 4) for s in m.samples_ms],
    }
    if args.json:
        print(json.dumps(out))
    else:
        label = "" if res.compiled else "  [NOT compiled latency]"
        print(
            f"{out['arch'] if arch.name else 'arch'} on {device} / {args.backend}{label}: "
            f"median {m.median_ms:.3f} ms (IQR {m.iqr_ms:.3f}, CV {m.cv:.1%}"
            f"{', NOISY' if res.noisy else ''}), {len(m.samples_ms)} samples, "
            f"{cfg.threads} threads, seq_len {arch.seq_len}"
        )
    return 0


# -- canao dataset info ------------------------------------------------------------------------
def dataset_summary(path: Path) -> list[dict[str, Any]]:
    """One summary per (device, backend) found under ``path``."""
    from canao.profiling.store import read_rows

    df = read_rows(path)
    out = []
    for (device, backend), g in df.groupby(["device", "backend"], sort=True):
        ok = g[g["error"].isna()]
        coverage = {}
        for dim in ("hidden", "heads", "head_dim", "ffn", "seq_len", "batch", "num_layers"):
            col = ok[dim].dropna()
            if len(col):
                coverage[dim] = {
                    "min": int(col.min()),
                    "max": int(col.max()),
                    "distinct": int(col.nunique()),
                }
        kinds = ok["kind"].value_counts().to_dict()
        out.append(
            {
                "device": device,
                "backend": backend,
                "compiled": bool(g["compiled"].iloc[0]),
                "rows": len(g),
                "block_rows": int(kinds.get("block", 0)),
                "model_rows": int(kinds.get("model", 0)),
                "error_rows": int(g["error"].notna().sum()),
                "noisy_share": round(float(ok["noisy"].astype(bool).mean()), 4) if len(ok) else 0,
                "median_ms_range": [
                    round(float(ok["median_ms"].min()), 4),
                    round(float(ok["median_ms"].max()), 4),
                ]
                if len(ok)
                else None,
                "threads": sorted(int(t) for t in ok["threads"].dropna().unique()),
                "cpu_model": str(g["cpu_model"].iloc[0]),
                "coverage": coverage,
                "measured": [str(g["timestamp"].min()), str(g["timestamp"].max())],
            }
        )
    return out


def cmd_dataset_info(args: argparse.Namespace) -> int:
    path = Path(args.path)
    if not path.exists():
        raise UsageError(f"{path}: no such file or folder")
    try:
        summary = dataset_summary(path)
    except Exception as e:  # a corrupt shard, a file that is not Parquet
        raise UsageError(f"{path}: not a canao latency dataset ({type(e).__name__}: {e})") from None
    if not summary:
        raise UsageError(f"{path}: not a canao latency dataset (no shards found)")
    if args.json:
        print(json.dumps(summary))
        return 0
    for s in summary:
        flag = "" if s["compiled"] else "  [NOT compiled latency]"
        print(f"{s['device']} / {s['backend']}{flag}  ({s['cpu_model']})")
        print(
            f"  rows {s['rows']}: {s['block_rows']} blocks, {s['model_rows']} models, "
            f"{s['error_rows']} errors; noisy {s['noisy_share']:.1%}; threads {s['threads']}"
        )
        if s["median_ms_range"]:
            lo, hi = s["median_ms_range"]
            print(
                f"  median latency {lo:.3f} .. {hi:.1f} ms; measured {s['measured'][0]} .. "
                f"{s['measured'][1]}"
            )
        for dim, c in s["coverage"].items():
            print(f"  {dim:>10}: {c['min']:>6} .. {c['max']:<6} ({c['distinct']} distinct)")
    return 0


# -- canao demo --------------------------------------------------------------------------------
def cmd_demo(args: argparse.Namespace) -> int:
    """Runs what exists: the shipped datasets' summary, a small profile, two whole models."""
    out = Path(args.out)
    steps: list[tuple[str, list[str]]] = []
    if DEFAULT_ROOT.exists() and any(DEFAULT_ROOT.rglob("*.parquet")):
        steps.append(("the shipped latency datasets", ["dataset", "info", str(DEFAULT_ROOT)]))
    demo_space = out / "demo-space.json"
    out.mkdir(parents=True, exist_ok=True)
    demo_space.write_text(
        json.dumps({"hidden": [64, 384], "ffn": [128, 1536], "seq_len": [16, 128], "batch": [1, 1]})
    )
    for backend in ("onnxruntime", "eager"):
        steps.append(
            (
                f"profile 24 small blocks with {backend}",
                [
                    "profile",
                    "--backend",
                    backend,
                    "--samples",
                    "24",
                    "--out",
                    str(out),
                    "--space-config",
                    str(demo_space),
                ],
            )
        )
    steps.append(("this fresh profile", ["dataset", "info", str(out)]))
    for arch in ("minilm-l6-h384", "bert-base"):
        for backend in ("onnxruntime", "eager"):
            steps.append(
                (f"{arch} end to end, {backend}", ["measure", "--arch", arch, "--backend", backend])
            )
    for i, (title, argv) in enumerate(steps, 1):
        print(f"\n== [{i}/{len(steps)}] {title}: canao {' '.join(argv)}", flush=True)
        rc = main(argv)
        if rc:
            return rc
    print(f"\ncanao demo: done; the fresh profile is in {out}")
    return 0


# -- argument parsing --------------------------------------------------------------------------
def _add_eval_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", default="host", help="device name; 'host' = this machine")
    p.add_argument("--threads", type=int, default=2, help="threads the backend may use")
    p.add_argument("--repeat", type=int, default=7, help="samples per measurement")
    p.add_argument("--min-repeat-ms", type=float, default=40.0, help="min duration of a sample")
    p.add_argument("--max-cv", type=float, default=0.05, help="re-measure above this spread")
    p.add_argument("--timeout", type=float, default=300.0, help="seconds per spec")
    p.add_argument("--rpc-tracker", metavar="HOST:PORT", help="measure on an RPC device")
    p.add_argument("--rpc-key", help="the device key registered with the tracker")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="canao", description="Latency-predictor-first, compiler-aware BERT search."
    )
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("profile", help="measure many block or model specs into the store")
    p.add_argument("--backend", required=True, help="eager, onnxruntime or tvm-untuned")
    p.add_argument("--samples", type=int, default=50, help="specs in the design (prefix-stable)")
    p.add_argument("--space", choices=("blocks", "models"), default="blocks")
    p.add_argument("--space-config", type=Path, help="JSON with BlockSpace bounds")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=str(DEFAULT_ROOT), help="dataset root folder")
    p.add_argument("--flush-every", type=int, default=200, help="rows per Parquet shard")
    _add_eval_args(p)
    p.set_defaults(func=cmd_profile)

    p = sub.add_parser("measure", help="measure one whole model end to end")
    p.add_argument("--arch", required=True, help="ArchSpec JSON file or a published name")
    p.add_argument("--backend", required=True)
    p.add_argument("--seq-len", type=int)
    p.add_argument("--batch", type=int)
    p.add_argument("--json", action="store_true", help="print one JSON object")
    _add_eval_args(p)
    p.set_defaults(func=cmd_measure)

    p = sub.add_parser("dataset", help="latency datasets")
    dsub = p.add_subparsers(dest="dataset_command", required=True)
    d = dsub.add_parser("info", help="rows, coverage, noise and device of a dataset")
    d.add_argument("path", help="a dataset root, device or backend folder, or a shard")
    d.add_argument("--json", action="store_true")
    d.set_defaults(func=cmd_dataset_info)

    p = sub.add_parser("demo", help="run the pipeline on the built-in defaults")
    p.add_argument("--out", default="runs/demo", help="where the demo writes")
    p.set_defaults(func=cmd_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    os.environ.setdefault("TVM_NUM_THREADS", "2")
    parser = build_parser()
    args = parser.parse_args(argv)
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        return func(args)
    except UsageError as e:
        print(f"canao: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
