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
from typing import Any, cast

from canao.errors import UsageError

DEFAULT_ROOT = Path("datasets_latency")

__all__ = ["UsageError", "build_parser", "main"]


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


def _device(name: str, rpc_key: str | None = None, root: Path = DEFAULT_ROOT) -> str:
    """The device folder name; ``host`` is this machine (its folder in the dataset ``root``),
    or the RPC key for a remote device."""
    from canao.profiling.fingerprint import resolve_device

    if name == "host" and rpc_key:
        name = rpc_key
    try:
        return resolve_device(name, root)
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
    try:
        return LocalRunner(args.backend, device, cfg)
    except ValueError as e:
        raise UsageError(str(e)) from None


# -- canao profile -----------------------------------------------------------------------------
def cmd_profile(args: argparse.Namespace) -> int:
    import numpy as np

    from canao.profiling.backends import backend_class
    from canao.profiling.samplers import BlockSpace, ModelSpace, block_samples, random_archs
    from canao.profiling.store import LatencyStore, StoreLockedError
    from canao.profiling.tuning import grid_archs, grid_samples
    from canao.space import SpecError

    _check_backend(args.backend)
    from canao.profiling.board import EMULATED_PREFIX

    if (args.rpc_key or "").startswith(EMULATED_PREFIX):
        raise UsageError(
            f"{args.rpc_key} is an emulated board: its timings are an emulator's and are never "
            "stored as latency (use it to check numerics: canao verify, the tests)"
        )
    device = _device(args.device, getattr(args, "rpc_key", None), Path(args.out))
    cfg = _eval_config(args)
    if args.samples < 1:
        raise UsageError("--samples must be >= 1")
    try:
        space_cfg: Any
        if args.space == "blocks":
            space_cfg = (
                BlockSpace.from_file(args.space_config) if args.space_config else BlockSpace()
            )
            specs: list[Any] = block_samples(space_cfg, args.samples, args.seed)
        elif args.space == "grid":
            space_cfg = _grid(args.space_config)
            specs = grid_samples(space_cfg, args.samples, args.seed)
        elif args.space == "grid-models":
            space_cfg = _grid(args.space_config)
            specs = grid_archs(space_cfg, args.samples, args.seed)
        else:
            if args.space_config:
                raise UsageError("--space-config sets block bounds; it does not apply to models")
            space_cfg = ModelSpace()
            specs = random_archs(space_cfg, args.samples, args.seed)
    except SpecError as e:
        raise UsageError(str(e)) from None

    predictor = None
    if args.tuned_only and (args.backend != "tvm" or args.rpc_tracker):
        raise UsageError("--tuned-only applies to --backend tvm on this host")
    if args.with_new and not args.remeasure:
        raise UsageError("--with-new adds the design's new specs to a --remeasure round")
    if args.anchors < 0:
        raise UsageError(f"--anchors must be >= 0, got {args.anchors}")
    if args.anchors and (args.remeasure not in ("unsettled", "noisy") or args.shuffle is None):
        raise UsageError(
            "--anchors N adds stored specs to a --remeasure unsettled or noisy round, "
            "shuffled among its own (give --shuffle SEED; a round of all has them all)"
        )
    if args.adaptive and args.remeasure:
        raise UsageError("--adaptive measures new specs; --remeasure repeats stored ones")
    if not args.max_median_error > 0:
        raise UsageError(f"--max-median-error must be > 0, got {args.max_median_error}")
    if args.rounds < 1:
        raise UsageError(f"--rounds must be >= 1, got {args.rounds}")
    if args.check_host < 0 or not args.host_tolerance > 0:
        raise UsageError("--check-host must be >= 0 and --host-tolerance > 0")
    if args.host_wait < 0 or args.host_tries < 1:
        raise UsageError("--host-wait must be >= 0 and --host-tries >= 1")
    if args.host_wait and not args.check_host:
        raise UsageError("--host-wait waits for a host that --check-host N failed: give both")
    if args.rounds > 1 and (not args.remeasure or args.shuffle is None):
        raise UsageError(
            "--rounds N repeats --remeasure rounds, each in its own shuffled order: "
            "give --remeasure and --shuffle SEED"
        )
    if args.adaptive:
        if args.space != "blocks" or not args.predictor:
            raise UsageError("--adaptive needs --predictor P and --space blocks")
        predictor = _load_predictor(args.predictor, backend=args.backend)
        out_pred = Path(args.predictor_out or args.predictor)
        if (out_pred / "meta.json").exists() and not args.overwrite:
            raise UsageError(
                f"{out_pred} holds a predictor: give a new --predictor-out or --overwrite"
            )
        specs = _adaptive_specs(args, device, cfg, space_cfg, predictor)
    if args.transfer_from:
        if args.space not in ("blocks", "grid", "models") or args.adaptive or args.remeasure:
            raise UsageError(
                "--transfer-from picks new blocks or whole models: --space blocks, grid or "
                "models, no --adaptive or --remeasure"
            )
        specs = _transfer_specs(args, cfg, space_cfg)
    runner = _make_runner(args, device, cfg)  # bad runner options fail before any write
    check_pool = (
        _host_check_pool(args, Path(args.out) / device / args.backend, cfg.threads)
        if args.check_host
        else []
    )
    if not args.rpc_tracker:
        from canao.profiling.fingerprint import claim_device_folder

        try:
            claim_device_folder(Path(args.out) / device)
        except ValueError as e:
            raise UsageError(str(e)) from None
    store = LatencyStore(Path(args.out), device, args.backend, flush_every=args.flush_every)
    try:
        store.open()
    except StoreLockedError as e:
        raise UsageError(str(e)) from None
    klass = backend_class(args.backend)
    if not klass.compiled:
        print(f"canao profile: note: {klass.label}", file=sys.stderr)
    try:
        for r in range(args.rounds):
            if r:
                store.fold()  # a shard per round, as separate runs leave
            todo = _profile_todo(args, store, specs, device, cfg.threads, r)
            if not todo and args.rounds > 1:
                print(
                    f"canao profile: no {args.remeasure} rows left after {r} rounds",
                    file=sys.stderr,
                )
                break
            seed = None if args.shuffle is None else args.shuffle + r  # this round's order
            if seed is not None:
                todo = [todo[i] for i in np.random.default_rng(seed).permutation(len(todo))]
            with runner:  # a fresh measuring process each round (the runners start lazily)
                counts = _measure_round(
                    args, runner, store, todo, check_pool, r, seed, cfg, space_cfg
                )
            if counts is None:
                return 3
            n_err, n_noisy = counts
            print(
                f"canao profile: done{_round_text(args, r)}: {len(todo)} measured, {n_err} "
                f"errors, {n_noisy} noisy; {len(store)} rows in {store.path}",
                file=sys.stderr,
            )
    except KeyboardInterrupt:
        print("canao profile: interrupted; measured rows are kept", file=sys.stderr)
        return 130
    finally:
        store.close()
    if predictor is not None:
        _retrain(args, device, predictor)
    return 0


def _measure_round(
    args: argparse.Namespace,
    runner: Any,
    store: Any,
    todo: list[Any],
    check_pool: list[tuple[Any, float]],
    r: int,
    seed: int | None,
    cfg: Any,
    space_cfg: Any,
) -> tuple[int, int] | None:
    """Measure one round's ``todo`` into ``store``: (errors, noisy), or None where the host
    failed ``--check-host`` (before the round, or by its canary during it) and
    ``--host-wait`` does not wait for it, or has waited ``--host-tries`` checks; the rows
    measured so far are kept. With ``--host-wait``, a round whose canary moved goes on from
    where it stopped once a check passes again."""
    from tqdm import tqdm

    n_err = n_noisy = checks = 0
    while True:
        while check_pool and not _host_check(args, runner, store.path, check_pool, r):
            checks += 1
            if not _wait_for_host(args, checks):
                return None
        _append_run_log(store.path, args, cfg, space_cfg, round_=r + 1, shuffle=seed)
        tty = sys.stderr.isatty()
        bar = tqdm(todo, unit="spec", dynamic_ncols=True, mininterval=0.5 if tty else 30)
        canary_ms, canaries = None, []
        for i, spec in enumerate(bar):
            if args.canary_every and i % args.canary_every == 0:
                canary_ms = _measure_canary(runner, store.path)
                canaries += [canary_ms] if canary_ms else []
                if check_pool and _canary_drifted(args, store.path, canaries, i, r):
                    break
            res = runner.run(spec)
            res.canary_ms = canary_ms
            store.append(res.row(), remeasure=bool(args.remeasure))
            n_err += not res.ok
            n_noisy += res.ok and res.noisy
            ms = res.measurement.median_ms if res.ok and res.measurement else None
            last = "err" if ms is None else f"{ms:.3f}ms"
            bar.set_postfix(last=last, errors=n_err, noisy=n_noisy, refresh=False)
        else:
            return n_err, n_noisy
        bar.close()
        checks += 1
        if not _wait_for_host(args, checks):
            return None
        todo = todo[i:]


def _wait_for_host(args: argparse.Namespace, checks: int) -> bool:
    """After ``checks`` failed host checks in a round: False where ``--host-wait`` is 0 or
    ``--host-tries`` are spent (the round stops), else print, sleep ``--host-wait`` seconds
    before the next check and True."""
    if not args.host_wait or checks >= args.host_tries:
        return False
    print(
        f"canao profile: waiting {args.host_wait:g} s for the host before check {checks + 1} "
        f"of up to {args.host_tries}",
        file=sys.stderr,
    )
    time.sleep(args.host_wait)
    return True


#: the file of a store folder that logs every ``canao profile --check-host`` check
HOST_CHECKS = "host_checks.jsonl"


def _log_host_check(path: Path, **fields: Any) -> dict[str, Any]:
    """Append one ``--check-host`` entry, time-stamped now, to the folder's :data:`HOST_CHECKS`;
    the entry."""
    entry = {"timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), **fields}
    with open(path / HOST_CHECKS, "a") as f:
        f.write(json.dumps(entry) + "\n")
    return entry


def _host_check_pool(args: argparse.Namespace, path: Path, threads: int) -> list[tuple[Any, float]]:
    """``--check-host``: the specs of the kind this run measures (blocks, or whole models for
    ``--space models``) stored and settled in the store folder ``path`` at ``threads``, each
    with its drift-corrected median (ms); UsageError where there are none."""
    from canao.predictors.evaluation import block_specs
    from canao.profiling.runner import row_key
    from canao.profiling.store import drift_median, read_all_rows, unsettled_keys
    from canao.space import ArchSpec

    kind = "model" if args.space in ("models", "grid-models") else "block"
    rows = read_all_rows(path) if path.exists() else None
    if rows is None or rows.empty:
        raise UsageError(f"--check-host compares with stored rows, and {path} has none")
    fixed = drift_median(rows)
    settled = set(fixed["key"]) - unsettled_keys(rows, args.max_median_error)
    ok = fixed[
        fixed["error"].isna()
        & (fixed["kind"] == kind)
        & (fixed["threads"] == threads)
        & fixed["key"].isin(settled)
    ]
    specs: list[Any] = (
        [ArchSpec.from_json(a) for a in ok["arch"]] if kind == "model" else block_specs(ok)
    )
    pool = [  # each spec that its row was measured from
        (spec, float(ms))
        for spec, key, ms in zip(specs, ok["key"], ok["median_ms"], strict=True)
        if row_key(spec, threads) == key
    ]
    if not pool:
        raise UsageError(
            f"--check-host: {path} holds no settled {kind} rows at {threads} thread(s) to "
            "compare with (see --remeasure unsettled)"
        )
    return pool


def _host_check(
    args: argparse.Namespace, runner: Any, path: Path, pool: list[tuple[Any, float]], r: int
) -> bool:
    """``--check-host N``: measure N specs of ``pool`` (:func:`_host_check_pool`), picked at
    random, again (not stored), and compare each with its drift-corrected median, the host's
    usual speed when the dataset was measured. True if the median ratio is within
    ``--host-tolerance``; logged to :data:`HOST_CHECKS` either way, and printed."""
    import numpy as np
    from tqdm import tqdm

    rng = np.random.default_rng((args.shuffle or 0) + r)
    picks = [pool[i] for i in rng.permutation(len(pool))[: args.check_host]]
    ratios = []
    for spec, ms in tqdm(picks, desc="host check", unit="spec", mininterval=30):
        res = runner.run(spec)
        if res.ok and res.measurement:
            ratios.append(res.measurement.median_ms / ms)
    if not ratios:
        raise UsageError("--check-host: every check measurement failed")
    q = np.asarray(ratios)
    med, p5, p95 = (float(v) for v in np.percentile(q, [50, 5, 95]))
    ok = abs(np.log(med)) <= np.log1p(args.host_tolerance)
    entry = _log_host_check(
        path,
        round=r + 1,
        specs=len(q),
        median_ratio=med,
        p5_ratio=p5,
        p95_ratio=p95,
        within_5pct=float(np.mean(np.abs(q - 1) <= 0.05)),
        tolerance=args.host_tolerance,
        passed=bool(ok),
    )
    text = (
        f"{len(q)} stored specs measured again read {med:.3f}x their drift-corrected medians "
        f"(5th-95th percentile {p5:.3f}-{p95:.3f}x; {entry['within_5pct']:.0%} within 5%)"
    )
    if ok:
        print(f"canao profile: host check passed: {text}", file=sys.stderr)
    else:
        print(
            f"canao profile: host check failed: {text}, beyond --host-tolerance "
            f"{args.host_tolerance:g}; the host is not in the state the dataset was measured "
            "in, so nothing more is measured "
            + (
                "until a check passes"
                if args.host_wait
                else "(wait, or quiet the host, and run again)"
            ),
            file=sys.stderr,
        )
    return bool(ok)


#: ``--check-host`` during a round judges the median of this many latest canary readings
CANARY_RUN = 3


def _canary_drifted(
    args: argparse.Namespace, path: Path, canaries: list[float], done: int, r: int
) -> bool:
    """``--check-host``, during a round: whether the median of the latest :data:`CANARY_RUN`
    canary readings is more than twice ``--host-tolerance`` off the median of the first ones
    after the host check passed: the host has left the state that the check found (one stray
    reading does not stop it). Not against the canary of the stored rows: a measuring
    process of its own can time the canary a few percent off where the stored specs read
    the same. If so, logged to :data:`HOST_CHECKS` and printed."""
    import numpy as np

    if len(canaries) <= CANARY_RUN:
        return False
    first = float(np.median(canaries[:CANARY_RUN]))
    now = float(np.median(canaries[-CANARY_RUN:]))
    if abs(np.log(now / first)) <= np.log1p(2 * args.host_tolerance):
        return False
    _log_host_check(
        path,
        round=r + 1,
        canary_ms=now,
        first_canary_ms=first,
        specs_measured=done,
        tolerance=2 * args.host_tolerance,
        passed=False,
    )
    print(
        f"canao profile: host check failed during the round: the canary reads {now:.3f} ms "
        f"against {first:.3f} ms after the check (the medians of its last and its first "
        f"{CANARY_RUN} readings; beyond twice --host-tolerance); stopped after {done} specs, "
        f"which are kept (the last {CANARY_RUN} x --canary-every of them measured while the "
        "host moved)",
        file=sys.stderr,
    )
    return True


def _round_text(args: argparse.Namespace, r: int) -> str:
    return f" (round {r + 1} of up to {args.rounds})" if args.rounds > 1 else ""


def _profile_todo(
    args: argparse.Namespace, store: Any, specs: list[Any], device: str, threads: int, r: int
) -> list[Any]:
    """The specs round ``r`` of ``canao profile`` measures, in the design's order."""
    from canao.profiling.runner import row_key

    if args.remeasure:
        todo, anchors = _remeasure_specs(
            store,
            specs,
            threads,
            args.remeasure,
            args.max_median_error,
            args.with_new,
            anchors=args.anchors,
            seed=[args.shuffle, r, 1],  # apart from the round's order
        )
        new = [s for s in todo if row_key(s, threads) not in store]
        print(
            f"canao profile: {device}/{args.backend}{_round_text(args, r)}: re-measuring "
            f"{len(todo) - len(new) - anchors} of {len(specs)} specs ({args.remeasure} "
            "stored rows; the new rows supersede them)"
            + (f", and measuring the {len(new)} not stored yet among them" if new else "")
            + (f", with {anchors} other stored ones as anchors" if anchors else ""),
            file=sys.stderr,
        )
    else:
        todo = [s for s in specs if row_key(s, threads) not in store]
        print(
            f"canao profile: {device}/{args.backend}: {len(specs)} specs "
            f"({args.space}), {len(specs) - len(todo)} already stored, {len(todo)} to measure",
            file=sys.stderr,
        )
    if args.tuned_only:
        n = len(todo)
        todo = _tuned_specs(todo, device, threads)
        print(
            f"canao profile: --tuned-only: {len(todo)} of {n} specs have every workload "
            "in the tuning database; the others wait for `canao tune`",
            file=sys.stderr,
        )
    return todo


def _remeasure_specs(
    store: Any,
    specs: list[Any],
    threads: int,
    which: str,
    max_error: float,
    new: bool = False,
    anchors: int = 0,
    seed: Any = None,
) -> tuple[list[Any], int]:
    """The design's specs whose stored row is to be measured again: ``all`` stored ones,
    ``noisy`` (flagged noisy, or an error row), or ``unsettled``: keys measured fewer than 3
    times, or whose drift-corrected median's estimated standard error exceeds ``max_error``
    of it (one more round moves it), see :func:`canao.profiling.store.unsettled_keys`; with
    ``new`` (``--with-new``), also the ones not stored yet; where any is chosen, ``anchors``
    (``--anchors``) of the other stored ones, drawn by ``seed``. In the design's order, and
    how many of them are anchors."""
    import numpy as np

    from canao.profiling.runner import row_key
    from canao.profiling.store import read_all_rows, unsettled_keys

    if which == "unsettled":
        keys = unsettled_keys(read_all_rows(store.path), max_error)
    else:
        df = store.read()
        if which == "noisy":
            df = df[df["noisy"].fillna(False).astype(bool) | df["error"].notna()]
        keys = set(df["key"])
    ks = [row_key(s, threads) for s in specs]
    chosen = [k in keys or (new and k not in store) for k in ks]
    rest = [i for i, k in enumerate(ks) if not chosen[i] and k in store]
    n = min(anchors, len(rest)) if any(chosen) else 0
    for i in np.random.default_rng(seed).choice(len(rest), n, replace=False) if n else []:
        chosen[rest[i]] = True
    return [s for s, c in zip(specs, chosen, strict=True) if c], n


def _tuned_specs(specs: list[Any], device: str, threads: int) -> list[Any]:
    """The specs whose workloads all have records in this host's tuning database (block
    workloads come from the extraction cache, so this is quick once ``canao tune`` ran)."""
    from tqdm import tqdm

    from canao.profiling.backends.tvm import default_tuning_dir, host_target
    from canao.profiling.tuning import TuningDatabase, extract_workloads

    target = host_target(threads)
    db = TuningDatabase(default_tuning_dir(device), create=False)
    known: dict[str, bool] = {}
    out = []
    for spec in tqdm(specs, desc="checking tuned workloads", unit="spec", mininterval=5):
        for w in extract_workloads(spec, target):
            if w.key not in known:
                known[w.key] = db.tuned(w, target)
            if not known[w.key]:
                break
        else:
            out.append(spec)
    return out


def _adaptive_specs(
    args: argparse.Namespace, device: str, cfg: Any, space: Any, predictor: Any
) -> list[Any]:
    """The next ``--samples`` specs where the predictor is wrong or unsure."""
    from canao.predictors.adaptive import select
    from canao.predictors.evaluation import DatasetError, blocks_xy, load_rows
    from canao.profiling.runner import row_key
    from canao.profiling.samplers import block_samples

    try:
        df = load_rows(Path(args.out), args.backend, device, cfg.threads)
    except DatasetError as e:
        raise UsageError(f"--adaptive starts from measured rows: {e}") from None
    X, y = blocks_xy(df)
    stored = set(df["key"])
    pool = [
        s
        for s in block_samples(space, 20 * args.samples, args.seed + 1000)
        if row_key(s, cfg.threads) not in stored
    ]
    print(
        f"canao profile: adaptive: choosing {args.samples} of {len(pool)} candidates "
        f"({len(y)} rows known)",
        file=sys.stderr,
    )
    params = {**predictor.get_params(), "n_estimators": min(predictor.n_estimators, 300)}
    return select(X, y, pool, args.samples, cfg.threads, params)


def _transfer_specs(args: argparse.Namespace, cfg: Any, space: Any) -> list[Any]:
    """The ``--samples`` blocks, of 40x as many candidates (``--space grid``: of the grid's
    blocks, the ones tuned TVM can compile), that cover the source predictor's view of the
    block space (``transfer.transfer_picks``); ``--space models``: the whole models, of 40x as
    many random ones, that span its view of them (``transfer.cover_picks``, the extremes
    first), which carry its whole-model overhead over (``canao train --few-models``)."""
    from canao.predictors.features import features_from_specs
    from canao.predictors.transfer import (
        cover_picks,
        model_pick_design,
        pick_design,
        transfer_picks,
    )
    from canao.profiling.samplers import block_samples, random_archs

    source = _load_predictor(args.transfer_from)
    if args.space == "models":
        archs = random_archs(space, 40 * args.samples, args.seed)
        sums = source.predict_archs(archs, cfg.threads, overhead=False)
        pick = cover_picks(model_pick_design(archs, sums), args.samples, args.seed)
        print(
            f"canao profile: transfer: {len(pick)} of {len(archs)} candidate models span "
            f"{args.transfer_from}'s view of them",
            file=sys.stderr,
        )
        return [archs[i] for i in pick]
    if args.space == "grid":
        pool = space.blocks()
    else:
        pool = block_samples(space, 40 * args.samples, args.seed)
    X = features_from_specs(pool, cfg.threads)
    pick = transfer_picks(pick_design(X, source.predict(X)), args.samples, args.seed)
    print(
        f"canao profile: transfer: {len(pick)} of {len(pool)} candidate blocks cover "
        f"{args.transfer_from}'s view of the space",
        file=sys.stderr,
    )
    return [pool[i] for i in pick]


def _retrain(args: argparse.Namespace, device: str, predictor: Any) -> None:
    from canao.predictors.evaluation import blocks_xy, dataset_hash, load_rows
    from canao.predictors.predictor import LatencyPredictor

    df = load_rows(Path(args.out), args.backend, device, args.threads)
    X, y = blocks_xy(df)
    model = LatencyPredictor(**predictor.get_params()).fit(X, y)
    # the rows are this run's device's, whatever device the starting predictor was fitted for
    meta = {"device": device, "backend": args.backend, "threads": _threads_used(df)}
    meta["dataset"] = {"path": str(args.out), "hash": dataset_hash(df), "block_rows": len(y)}
    meta["adaptive"] = {"from": str(args.predictor)}
    out = Path(args.predictor_out or args.predictor)
    model.save(out, meta, overwrite=True)
    print(f"canao profile: retrained predictor on {len(y)} blocks -> {out}", file=sys.stderr)


def _measure_canary(runner: Any, path: Path) -> float | None:
    """Time the canary block, log it to ``canary.jsonl``; its median, or None on failure."""
    from canao.profiling.runner import CANARY

    res = runner.run(CANARY)
    ms = res.measurement.median_ms if res.ok and res.measurement else None
    entry = {
        "timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "spec": CANARY.key,
        "median_ms": ms,
        "error": res.error,
    }
    with open(path / "canary.jsonl", "a") as f:
        f.write(json.dumps(entry) + "\n")
    return ms


def _append_run_log(
    path: Path,
    args: argparse.Namespace,
    cfg: Any,
    space: Any,
    round_: int = 1,
    shuffle: int | None = None,
) -> None:
    """The resolved config of every run (every round of one, with its number and the seed of
    its order), next to its output (append-only)."""
    entry = {
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "argv": sys.argv[1:],
        "eval": asdict(cfg),
        "space": asdict(space),
        "seed": args.seed,
        "samples": args.samples,
    }
    if args.rounds > 1:
        entry.update(round=round_, shuffle=shuffle)
    with open(path / "runs.jsonl", "a") as f:
        f.write(json.dumps(entry) + "\n")


# -- canao tune -------------------------------------------------------------------------------
def _grid(path: Path | None) -> Any:
    from canao.profiling.tuning import WorkloadGrid

    if path is None:
        return WorkloadGrid()
    try:
        return WorkloadGrid.from_json(path.read_text())
    except (OSError, ValueError, TypeError) as e:
        raise UsageError(f"--grid {path}: not a grid JSON ({e})") from None


def _record_grid(folder: Path, grid: dict) -> None:
    """Append ``grid`` to the database's ``grids.jsonl`` (the grids it was tuned for), once."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "grids.jsonl"
    line = json.dumps(grid, sort_keys=True)
    known = path.read_text().splitlines() if path.exists() else []
    if line not in known:
        with path.open("a") as f:
            f.write(line + "\n")


def cmd_tune(args: argparse.Namespace) -> int:
    """Tune every workload of the grid that the device's database lacks (resumable)."""
    from dataclasses import asdict as _asdict

    from canao.profiling.backends.tvm import default_tuning_dir, host_target
    from canao.profiling.tuning import TuningDatabase, estimate_seconds, plan, tune_workload

    if args.trials < 1:
        raise UsageError("--trials must be >= 1")
    device = _device(args.device)
    if device != _device("host"):
        raise UsageError("canao tune runs on this host; remote devices tune through their own")
    grid = _grid(args.grid)
    folder = Path(args.db) if args.db else default_tuning_dir(device)
    target = host_target(args.threads)
    db = TuningDatabase(folder)
    specs: list[Any]
    if args.arch:
        from canao.space import SpecError, load_arch

        try:
            specs = [
                load_arch(a, seq_len=args.seq_len) if args.seq_len else load_arch(a)
                for a in args.arch
            ]
        except SpecError as e:
            raise UsageError(str(e)) from None
    else:
        from canao.compile.export import import_model
        from canao.modeling import BertClassifier, build_module

        _record_grid(folder, _asdict(grid))
        # whole models as `canao compile` builds them (ids + attention mask)
        specs = [
            *grid.blocks(),
            *(
                import_model(cast(BertClassifier, build_module(a)), a.seq_len)
                for a in grid.head_specs()
            ),
        ]
    todo, done = plan(specs, target, db, progress=True)
    if args.retune_above_us is not None:
        # the expensive workloads get more trials: tuned ones slower than the threshold, unless
        # already tuned with at least --trials (so a killed re-tuning resumes)
        had = db.max_trials()
        todo = [
            w
            for w in done
            if had.get(w.key, 0) < args.trials
            and not w.name.startswith("take")  # gathers keep their default schedule
            and (db.best_us(w, target) or 0.0) > args.retune_above_us
        ]
        print(
            f"canao tune: re-tuning {len(todo)} tuned workloads slower than "
            f"{args.retune_above_us:g} us with {args.trials} trials (new records are added; "
            "the fastest is used)",
            file=sys.stderr,
        )
    est = estimate_seconds(len(todo), args.trials)
    summary = {
        "device": device,
        "database": str(folder),
        "specs": len(specs),
        "workloads": len(todo) + len(done),
        "tuned": len(done),
        "to_tune": len(todo),
        "trials_per_workload": args.trials,
        "estimate_min": round(est / 60, 1),
    }
    print(
        f"canao tune: {len(specs)} specs, {summary['workloads']} distinct workloads, "
        f"{len(done)} tuned already, {len(todo)} to tune x {args.trials} trials: "
        f"about {est / 60:.0f} min",
        file=sys.stderr,
    )
    if not args.dry_run and todo:
        from tqdm import tqdm

        spent = 0.0
        bar = tqdm(todo, desc="tuning", unit="workload")
        for w in bar:
            bar.set_postfix(workload=w.name[:30])
            spent += tune_workload(w, db, target, args.trials, Path("runs") / "tune" / w.key)
        summary["tuning_s"] = round(spent, 1)
    if args.json:
        print(json.dumps(summary))
    return 0


# -- canao measure -----------------------------------------------------------------------------
def _cmd_measure_canary(args: argparse.Namespace, device: str, cfg: Any) -> int:
    """Time the datasets' canary block now: the host speed to give ``canao predict
    --canary-ms`` (predictions trained with ``--drift canary`` refer to the dataset's)."""
    from canao.profiling.runner import CANARY

    if args.arch:
        raise UsageError("--canary measures the canary block; leave out --arch")
    with _make_runner(args, device, cfg) as runner:
        res = runner.run(CANARY)
    if not res.ok or res.measurement is None:
        print(f"canao measure: canary: {res.error}", file=sys.stderr)
        return 1
    ms = res.measurement.median_ms
    out = {"canary": CANARY.key, "backend": args.backend, "device": device}
    out.update(threads=cfg.threads, canary_ms=round(ms, 4), noisy=res.noisy)
    if args.json:
        print(json.dumps(out))
    else:
        print(f"canary {CANARY.key} on {device} / {args.backend}: {ms:.3f} ms")
    return 0


def cmd_measure(args: argparse.Namespace) -> int:
    from canao.space import SpecError, load_arch

    _check_backend(args.backend)
    device = _device(args.device, getattr(args, "rpc_key", None))
    cfg = _eval_config(args)
    if args.canary:
        return _cmd_measure_canary(args, device, cfg)
    if not args.arch:
        raise UsageError("give --arch (or --canary)")
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
            f"{cfg.threads} thread{'s' if cfg.threads != 1 else ''}, seq_len {arch.seq_len}"
        )
    return 0


# -- canao dataset info ------------------------------------------------------------------------
def _device_record(path: Path, device: str) -> dict[str, Any] | None:
    """The CPU recorded in ``device``'s ``device.json``, looked for from ``path`` (a dataset
    root, a device or backend folder, or a shard); None where there is none or it is
    unreadable (``canao profile`` says why when it next writes there)."""
    from canao.profiling.fingerprint import DEVICE_FILE, read_identity

    for folder in (path / device, path, path.parent, path.parent.parent):
        if folder.name == device and (folder / DEVICE_FILE).exists():
            try:
                return read_identity(folder)
            except ValueError:
                return None
    return None


def dataset_summary(path: Path) -> list[dict[str, Any]]:
    """One summary per (device, backend) found under ``path``, one whose every row is retired
    included (with ``rows`` 0)."""
    from canao.profiling.store import latest, marked_rows, retirements

    rows, off, folders = marked_rows(path)  # read once: the live rows and the retired ones
    df = latest(rows[~off].reset_index(drop=True))
    heads = rows.groupby(["device", "backend"]).head(1)
    folder_of = {  # each (device, backend)'s store folder
        (str(d), str(b)): Path(folders[i])
        for d, b, i in zip(heads["device"], heads["backend"], heads.index, strict=True)
    }
    retired: dict[tuple[str, str], dict[str, Any]] = {
        (str(d), str(b)): {"rows": g, "retired": retirements(folder_of[(str(d), str(b))])}
        for (d, b), g in rows[off].groupby(["device", "backend"])
    }
    groups = {(str(d), str(b)): g for (d, b), g in df.groupby(["device", "backend"], sort=True)}
    out = []
    for device, backend in sorted(groups.keys() | retired.keys()):
        gone = retired.get((device, backend), {"rows": df.iloc[:0], "retired": []})
        g = groups.get((device, backend), gone["rows"].iloc[:0])
        first = (g if len(g) else gone["rows"]).iloc[0]
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
                "compiled": bool(first["compiled"]),
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
                "canary_ms_range": [
                    round(float(ok["canary_ms"].min()), 4),
                    round(float(ok["canary_ms"].max()), 4),
                ]
                if ok["canary_ms"].notna().any()
                else None,
                "cpu_model": str(first["cpu_model"]),
                "cpu": _device_record(path, device),
                "coverage": coverage,
                "measured": [str(g["timestamp"].min()), str(g["timestamp"].max())]
                if len(g)
                else None,
                "retired_rows": len(gone["rows"]),
                "retired": gone["retired"],
                "host_checks": _host_checks(folder_of[(device, backend)]),
            }
        )
    return out


def _host_checks(folder: Path) -> dict[str, Any] | None:
    """How many ``--check-host`` checks the store folder logged, how many passed, and the last
    one; None where it logged none (lines cut by a crash are skipped)."""
    path = folder / HOST_CHECKS
    if not path.exists():
        return None
    entries = []
    for line in path.read_text().splitlines():
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(entry, dict) and "passed" in entry:
            entries.append(entry)
    if not entries:
        return None
    passed = sum(bool(e["passed"]) for e in entries)
    return {"checks": len(entries), "passed": passed, "last": entries[-1]}


def cmd_dataset_info(args: argparse.Namespace) -> int:
    from canao.profiling.store import where_text

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
        if s["cpu"]:
            cpu = s["cpu"]
            numbers = " ".join(f"{k} {cpu[k]}" for k in ("family", "model") if k in cpu)
            print(
                f"  cpu (device.json): {cpu.get('vendor', '?')} {numbers}, "
                f"{cpu.get('isa', '?')}, {cpu.get('cpu_count', '?')} cores"
            )
        if not s["rows"]:
            print("  rows 0: every row is retired (below)")
        else:
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
        if s["canary_ms_range"]:
            lo, hi = s["canary_ms_range"]
            print(f"  host drift: canary block {lo:.3f} .. {hi:.3f} ms ({hi / lo - 1:.1%} spread)")
        elif s["rows"]:
            print("  host drift: not tracked (measured without a canary)")
        if s["host_checks"]:
            h, last = s["host_checks"], s["host_checks"]["last"]
            if "median_ratio" in last:
                said = f"{last['median_ratio']:.3f}x the dataset's medians"
            else:
                first = last.get("first_canary_ms", last.get("reference_ms"))  # 40a4806 wrote
                said = f"the canary {last['canary_ms']:.3f} ms against {first:.3f}"
            verdict = "passed" if last["passed"] else "failed"
            print(
                f"  host checks (--check-host): {h['checks']}, {h['passed']} passed; last "
                f"{last['timestamp']}: {said}, {verdict}"
            )
        if s["retired_rows"]:
            print(f"  retired (kept on disk, not read): {s['retired_rows']} rows")
            for entry in s["retired"]:
                where = entry.get("where")
                which = f" with {where_text(where)}" if where else ""
                since = f"from {entry['after']} " if "after" in entry else ""
                print(f"    measured {since}before {entry['before']}{which}: {entry['reason']}")
        for dim, c in s["coverage"].items():
            print(f"  {dim:>10}: {c['min']:>6} .. {c['max']:<6} ({c['distinct']} distinct)")
    return 0


def cmd_dataset_retire(args: argparse.Namespace) -> int:
    from canao.profiling.store import StoreError, retire, where_text

    path = Path(args.path)
    if not path.is_dir():
        raise UsageError(f"{path}: no such folder")
    where: dict[str, str] = {}
    for item in args.where:
        col, eq, value = item.partition("=")
        if not eq or not col.strip() or not value.strip():
            raise UsageError(f"--where {item!r}: say COLUMN=VALUE, e.g. --where hidden=512")
        where[col.strip()] = value.strip()
    try:
        gone, rows = retire(path, args.before, args.reason, where, args.after)
    except StoreError as e:
        raise UsageError(str(e)) from None
    which = f" with {where_text(where)}" if where else ""
    since = f"from {args.after} " if args.after else ""
    print(
        f"{path}: {gone} of {rows} rows measured {since}before {args.before}{which} retired "
        f"(kept on disk; {path / 'retired.jsonl'} says why)"
    )
    return 0


def cmd_dataset_compact(args: argparse.Namespace) -> int:
    from canao.profiling.store import LatencyStore, StoreError, store_folders

    path = Path(args.path)
    if not path.is_dir():
        raise UsageError(f"{path}: no such folder")
    folders = store_folders(path)
    if not folders:
        raise UsageError(f"{path}: not a canao latency dataset (no shards found)")
    for folder in folders:
        try:
            with LatencyStore(folder.parent.parent, folder.parent.name, folder.name) as store:
                shards, before, after, rows = store.compact()
        except StoreError as e:
            raise UsageError(f"{folder}: {e}") from None
        print(
            f"{folder}: {shards} shards, {before / 2**20:.2f} MiB -> 1 shard, "
            f"{after / 2**20:.2f} MiB; {rows} rows kept"
        )
    return 0


# -- canao train / predict / evaluate ---------------------------------------------------------
def _threads_used(df: Any) -> list[int]:
    """The thread counts of a predictor's rows, as its meta.json records them."""
    return sorted(int(t) for t in df["threads"].unique())


def _load_training_rows(args: argparse.Namespace) -> Any:
    from canao.predictors.evaluation import DatasetError, load_rows

    if not Path(args.data).exists():
        raise UsageError(f"{args.data}: no such dataset")
    device = _device(args.device) if args.device else None
    try:
        return load_rows(Path(args.data), args.backend, device, args.threads, args.combine)
    except DatasetError as e:
        raise UsageError(str(e)) from None


#: blocks between two writes of ``canao records`` (a killed run keeps what it had)
RECORDS_CHUNK = 200


def cmd_records(args: argparse.Namespace) -> int:
    """Per block of the tuned grids, its workloads' best record times by kind: a table that
    ``canao train --transfer-from P --records FILE`` mixes in (tuned TVM). Resumable."""
    from canao.predictors.records import (
        RecordsError,
        read_records,
        records_table,
        write_records,
    )
    from canao.profiling.backends.tvm import default_tuning_dir, host_target
    from canao.profiling.tuning import WorkloadGrid

    device = _device(args.device)
    if device != _device("host"):
        raise UsageError("canao records reads this host's tuning records (its target)")
    if args.retime_threads < 1 or args.retime_rounds < 1:
        raise UsageError("--retime-threads and --retime-rounds must be >= 1")
    folder = Path(args.db) if args.db else default_tuning_dir(device)
    if not (folder / "database_workload.json").is_file():
        raise UsageError(f"{folder}: no tuning database (run canao tune first)")
    if args.grid:
        grids = [_grid(g) for g in args.grid]
    else:
        listed = folder / "grids.jsonl"
        lines = listed.read_text().splitlines() if listed.is_file() else []
        try:
            grids = [WorkloadGrid.from_json(line) for line in lines if line.strip()]
        except (ValueError, TypeError) as e:
            raise UsageError(f"{listed}: malformed ({e})") from None
        if not grids:
            raise UsageError(f"{folder}: no tuned grid listed in grids.jsonl; say --grid FILE")
    out = Path(args.out) if args.out else folder / "records.parquet"
    blocks = list(dict.fromkeys(b for g in grids for b in g.blocks()))
    old = None
    if out.exists() and not args.overwrite:
        try:
            old = read_records(out)
        except RecordsError as e:
            raise UsageError(f"{e} (use --overwrite to rebuild it)") from None
    import pandas as pd

    from canao.predictors.features import DIMS

    have = set() if old is None else set(map(tuple, old[list(DIMS)].to_numpy().tolist()))
    todo = [b for b in blocks if tuple(getattr(b, d) for d in DIMS) not in have]
    print(
        f"canao records: {len(blocks)} grid blocks, {len(blocks) - len(todo)} in {out} "
        f"already, {len(todo)} to read (about 0.6 s each where their workloads are not "
        "extracted yet"
        + (
            f"; each workload's best schedule is timed again, {args.retime_rounds} times, "
            "about 0.5 s each, so run it on a quiet host)"
            if args.retime
            else ")"
        ),
        file=sys.stderr,
    )
    target = host_target(args.threads)
    table = old if old is not None else pd.DataFrame()
    untuned: list[Any] = []
    for start in range(0, len(todo), RECORDS_CHUNK):
        part, lost = records_table(
            todo[start : start + RECORDS_CHUNK],
            folder,
            target,
            progress=not args.json,
            retime_threads=args.retime_threads if args.retime else None,
            rounds=args.retime_rounds,
        )
        untuned += lost
        table = pd.concat([table, part], ignore_index=True) if len(table) else part
        write_records(table, out)
    summary = {"records": str(out), "database": str(folder), "blocks": len(table)}
    summary["untuned"] = len(untuned)
    summary["retimed_threads"] = args.retime_threads if args.retime else None
    if args.json:
        print(json.dumps(summary))
    else:
        print(
            f"canao records: {out}: {len(table)} blocks"
            + (f"; {len(untuned)} left out (a workload has no record)" if untuned else "")
        )
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from canao.predictors.evaluation import (
        blocks_xy,
        canary_reference,
        dataset_hash,
        model_rows,
        random_split,
    )
    from canao.predictors.metrics import error_metrics
    from canao.predictors.predictor import LatencyPredictor

    if args.also_from and not args.transfer_from:
        raise UsageError("--also-from goes with --transfer-from")
    if args.records and not args.transfer_from and args.base == "none":
        raise UsageError("--records is the base of a predictor trained here: not with --base none")
    out = Path(args.out)
    if (out / "meta.json").exists() and not args.overwrite:
        raise UsageError(f"{out} already holds a predictor (use --overwrite)")
    if args.transfer_from and args.few < 3:
        raise UsageError("--few must be >= 3 (a transfer fits a few coefficients)")
    if args.boosted_residual != "auto" and not args.transfer_from:
        raise UsageError("--boosted-residual goes with --transfer-from")
    if args.tune_metric and not args.tune:
        raise UsageError("--tune-metric applies to --tune")
    df = _load_training_rows(args)
    canary_ms = canary_reference(df) if args.drift == "canary" and not args.transfer_from else None
    X, y = blocks_xy(df, canary_ms)
    if len(y) < (3 if args.transfer_from else 20):
        raise UsageError(f"{args.data}: only {len(y)} block rows for {args.backend}")
    if args.transfer_from:
        return _train_transfer(args, df, X, y, out)
    params: dict[str, Any] = {"base": args.base}
    if args.records:  # tuned TVM: the device's own tuning records are the base
        params = {"base": "records", "records": _records_for(args.records, X)}
    if args.tune:
        from canao.predictors.tuning import tune

        print(f"canao train: tuning on {len(y)} blocks, {args.trials} trials", file=sys.stderr)
        metric = args.tune_metric or "rmspe"
        params, cv = tune(X, y, n_trials=args.trials, metric=metric, **params)
        print(f"canao train: best 3-fold CV {metric} {cv:.2f}%", file=sys.stderr)
    # held-out metrics first (80/20), then the predictor that ships is fitted on every row
    tr, te = random_split(len(y))
    held = LatencyPredictor(**params).fit(X.iloc[tr], y[tr])
    metrics: dict[str, Any] = {"blocks_heldout": error_metrics(y[te], held.predict(X.iloc[te]))}
    model = LatencyPredictor(**params).fit(X, y)
    archs, model_ms, threads = model_rows(df, canary_ms)
    if len(archs) >= 10:
        mtr, mte = random_split(len(archs))
        held.fit_overhead([archs[i] for i in mtr], model_ms[mtr], threads)
        pred = held.predict_archs([archs[i] for i in mte], threads)
        metrics["models_heldout"] = error_metrics(model_ms[mte], pred)
        model.fit_overhead(archs, model_ms, threads)
    meta = {
        "device": str(df["device"].iloc[0]),
        "backend": args.backend,
        "threads": _threads_used(df),
        "dataset": {
            "path": str(args.data),
            "hash": dataset_hash(df),
            "block_rows": len(y),
            "model_rows": len(archs),
            "combine": args.combine,
        },
        # latencies were divided by the host's drift, measured by the canary block: the
        # predictions are at this canary time (ms); None when not corrected
        "canary_ms": canary_ms,
        "records": args.records,
        "metrics": metrics,
    }
    model.save(out, meta, overwrite=args.overwrite)
    if args.json:
        print(json.dumps({"predictor": str(out), **meta}))
    else:
        b = metrics["blocks_heldout"]
        print(
            f"canao train: {out}: {len(y)} blocks; held-out blocks {_scores(b)}, "
            f"±5% {b['acc5']:.1%}"
        )
        if "models_heldout" in metrics:
            m = metrics["models_heldout"]
            print(f"canao train: whole models (held-out {int(m['n'])}): {_scores(m)}")
    return 0


def _scores(m: dict[str, Any]) -> str:
    """How ``canao train`` prints one of its ``error_metrics``: MAPE and the share within
    ±10%."""
    return f"MAPE {m['mape']:.2f}%, within ±10% {m['acc10']:.1%}"


def _transfer_overhead(
    args: argparse.Namespace, model: Any, df: Any, metrics: dict[str, Any]
) -> str:
    """Carry a transferred predictor's whole-model overhead to the new device with up to
    ``--few-models`` of its whole models in ``--data`` (``transfer_overhead``; each of them
    predicted without it, by leave-one-out, and the rest scored into ``metrics``), picked as
    ``--pick`` says (``cover``: ones that span them); what was done: ``rescaled|adjusted from
    N models``, ``source's`` (too few models) or ``none``."""
    import numpy as np

    from canao.predictors.evaluation import model_rows
    from canao.predictors.metrics import error_metrics
    from canao.predictors.predictor import MIN_RESCALE_MODELS
    from canao.predictors.transfer import cover_picks, model_pick_design

    if model.overhead_coef_ is None:
        return "none"
    archs, model_ms, threads = model_rows(df)
    n = min(args.few_models, len(archs))
    if n < MIN_RESCALE_MODELS:
        return "source's"
    if args.pick == "cover":
        view = model_pick_design(archs, model.predict_archs(archs, threads, overhead=False))
        few = np.sort(cover_picks(view, n, args.seed))
    else:
        few = np.sort(np.random.default_rng(args.seed).permutation(len(archs))[:n])
    how = model.transfer_overhead([archs[i] for i in few], model_ms[few], threads)
    metrics["models_cv"] = error_metrics(model_ms[few], model_ms[few] * (1 + model.overhead_loo_))
    rest = np.setdiff1d(np.arange(len(archs)), few)
    if len(rest):
        pred = model.predict_archs([archs[i] for i in rest], threads)
        metrics["models_rest"] = error_metrics(model_ms[rest], pred)
    return f"{how} from {n} models"


def _train_transfer(args: argparse.Namespace, df: Any, X: Any, y: Any, out: Path) -> int:
    """A predictor for a new device from at most ``--few`` measured blocks."""
    import numpy as np

    from canao.predictors.evaluation import (
        TRANSFER_CV_FOLDS,
        cross_validated_transfer,
        dataset_hash,
    )
    from canao.predictors.metrics import error_metrics
    from canao.predictors.predictor import BYTES_TERMS, MIN_RESCALE_MODELS
    from canao.predictors.records import records_sources
    from canao.predictors.transfer import MIN_RESIDUAL_BLOCKS, pick_design, transfer_picks

    if args.few_models < 0:
        raise UsageError("--few-models must be >= 0")
    boost = {"auto": None, "on": True, "off": False}[args.boosted_residual]
    if boost and min(args.few, len(y)) < MIN_RESIDUAL_BLOCKS:
        raise UsageError(
            f"--boosted-residual on needs at least {MIN_RESIDUAL_BLOCKS} blocks (it follows the "
            f"smooth residual, which needs them); --data has {len(y)}, --few is {args.few}"
        )
    model = _load_predictor(args.transfer_from)
    helpers = [_load_predictor(h) for h in args.also_from]
    if args.records:
        helpers += records_sources(_records_for(args.records, X), {"table": args.records})
    if args.pick == "cover":
        pick = transfer_picks(pick_design(X, model.predict(X)), args.few, args.seed)
    else:
        pick = np.sort(np.random.default_rng(args.seed).permutation(len(y))[: args.few])
    rest = np.setdiff1d(np.arange(len(y)), pick)
    metrics: dict[str, Any] = {}
    cv = cross_validated_transfer(model, X.iloc[pick], y[pick], helpers=helpers, boost=boost)
    if cv is not None:
        metrics["blocks_cv"] = cv
    model.fit_transfer(X.iloc[pick], y[pick], helpers=helpers, boost=boost)
    if len(rest):
        metrics["blocks_rest"] = error_metrics(y[rest], model.predict(X.iloc[rest]))
    overhead = _transfer_overhead(args, model, df, metrics)
    src = model.meta_
    meta = {
        "device": str(df["device"].iloc[0]),
        "backend": args.backend,
        "threads": _threads_used(df),
        "dataset": {
            "path": str(args.data),
            "hash": dataset_hash(df.iloc[pick]),
            "block_rows": len(pick),
            "model_rows": 0,
        },
        "transfer": {
            "from": str(args.transfer_from),
            "source_device": src.get("device"),
            "source_backend": src.get("backend"),
            "samples": len(pick),
            "method": model.transfer_method_,
            "remix_terms": model.remix_terms_,
            "pick": args.pick,
            "smooth_residual": model.residual_ is not None,
            "boosted_residual": model.boosted_ is not None,
            "boosted_residual_option": args.boosted_residual,
            "also_from": [str(h) for h in args.also_from],
            "records": args.records,
            "other_sources_used": len(model.others_),
            "overhead": overhead,
        },
        "metrics": metrics,
    }
    model.save(out, meta, overwrite=args.overwrite)
    if args.json:
        print(json.dumps({"predictor": str(out), **meta}))
    else:
        line = f"canao train: {out}: transferred from {src.get('device')}/{src.get('backend')} "
        form = model.transfer_method_
        form += " (sub-operations' bytes only)" if model.remix_terms_ == BYTES_TERMS else ""
        n = len(args.also_from)
        others = " and ".join(
            ([f"{n} other source" + ("s" if n > 1 else "")] if n else [])
            + (["the tuning records"] if args.records else [])
        )
        if helpers:
            form += f" with {others}" if model.others_ else f" ({others} left out by leave-one-out)"
        form += " + smooth residual" if model.residual_ else ""
        form += " + boosted residual" if model.boosted_ else ""
        line += f"with {len(pick)} blocks ({form})"
        if "blocks_cv" in metrics:
            k = min(TRANSFER_CV_FOLDS, len(pick))
            line += f"; each of them predicted without it ({k}-fold): "
            line += _scores(metrics["blocks_cv"])
        if "blocks_rest" in metrics:
            line += f"; on the other {len(rest)} blocks: {_scores(metrics['blocks_rest'])}"
        print(line)
        if overhead.startswith(("rescaled", "adjusted")):
            line = f"canao train: whole-model overhead {overhead} measured here"
            line += f"; each of them predicted without it: {_scores(metrics['models_cv'])}"
            if "models_rest" in metrics:
                m = metrics["models_rest"]
                line += f"; on the other {int(m['n'])} models: {_scores(m)}"
            print(line)
        elif overhead == "source's":
            print(
                "canao train: whole-model predictions keep the source device's overhead (in its "
                f"milliseconds): --data holds fewer than {MIN_RESCALE_MODELS} whole models of this "
                "device to rescale it (canao profile --space models)",
                file=sys.stderr,
            )
    return 0


def _records_for(path: str, X: Any) -> Any:
    """The records table of ``canao train --records`` (``path``), checked to hold every block
    of ``X`` (a UsageError that names the file otherwise)."""
    from canao.predictors.records import RecordsError, RecordsTable, read_records

    try:
        table = read_records(Path(path))
        RecordsTable(table).times(X)  # every block of --data must have its records
    except RecordsError as e:
        raise UsageError(f"--records {path}: {e}") from None
    return table


def _load_predictor(path: str, backend: str | None = None) -> Any:
    from canao.predictors.predictor import LatencyPredictor, PredictorFileError

    try:
        return LatencyPredictor.load(Path(path), backend=backend)
    except PredictorFileError as e:
        raise UsageError(str(e)) from None


def cmd_predict(args: argparse.Namespace) -> int:
    from canao.space import SpecError, load_arch

    model = _load_predictor(args.predictor)
    overrides = {k: v for k, v in (("seq_len", args.seq_len), ("batch", args.batch)) if v}
    try:
        arch = load_arch(args.arch, **overrides)
    except SpecError as e:
        raise UsageError(str(e)) from None
    meta = model.meta_
    threads = args.threads or max(meta.get("threads") or [2])
    from canao.predictors.records import RecordsError

    try:
        ms = model.predict_arch(arch, threads)
    except RecordsError as e:  # a transfer with tuning records, asked for an untuned block
        raise UsageError(f"{args.predictor}: {e}") from None
    ref = meta.get("canary_ms")
    if args.canary_ms is not None:
        if args.canary_ms <= 0:
            raise UsageError("--canary-ms must be > 0")
        if not ref:
            raise UsageError(
                f"{args.predictor} was trained without drift correction (no canary_ms in its "
                "meta.json): retrain with --drift canary to use --canary-ms"
            )
        ms *= args.canary_ms / ref
    out = {
        "arch": arch.name or arch.to_dict(),
        "predicted_ms": round(ms, 4),
        "canary_ms": args.canary_ms or ref,
        "device": meta.get("device"),
        "backend": meta.get("backend"),
        "threads": threads,
        "seq_len": arch.seq_len,
        "batch": arch.batch,
        "gflops": round(arch.flops / 1e9, 3),
        "params": arch.params,
        "overhead_fitted": model.overhead_coef_ is not None,
    }
    if args.json:
        print(json.dumps(out))
    else:
        print(
            f"{arch.name or 'arch'}: predicted {ms:.3f} ms on {out['device']} / {out['backend']} "
            f"({threads} thread{'s' if threads != 1 else ''}, seq_len {arch.seq_len}, "
            f"{out['gflops']} GFLOPs)"
        )
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from functools import partial

    import pandas as pd

    from canao.predictors.baselines import BASELINES
    from canao.predictors.evaluation import (
        blocks_xy,
        compare,
        cv_table,
        format_table,
        scatter_png,
    )
    from canao.predictors.predictor import LatencyPredictor

    df = _load_training_rows(args)
    X, y = blocks_xy(df)
    makers: dict[str, Any] = {"xgboost": LatencyPredictor}
    if args.records:  # tuned TVM: also with the device's tuning records as the base
        table = _records_for(args.records, X)
        makers["xgboost+records"] = partial(LatencyPredictor, base="records", records=table)
    makers.update(BASELINES)
    unknown = set(args.models.split(",")) - set(makers) if args.models else set()
    if unknown:
        raise UsageError(f"unknown model(s) {sorted(unknown)}; choose from {sorted(makers)}")
    if args.models:
        makers = {k: v for k, v in makers.items() if k in args.models.split(",")}
    if args.cv is not None and not 2 <= args.cv <= len(y):
        raise UsageError(f"--cv must be between 2 and the number of block rows ({len(y)})")
    table, preds = compare(X, y, makers)
    if args.cv:
        table = pd.concat([table, cv_table(X, y, makers, args.cv)], ignore_index=True)
    device = str(df["device"].iloc[0])
    out = Path(args.out)
    png = None
    if "xgboost" in makers:
        png = scatter_png(
            preds,
            "xgboost",
            out / f"scatter-{device}-{args.backend}.png",
            f"XGBoost predictor, {device} / {args.backend}, held-out blocks",
        )
    if args.json:
        print(
            json.dumps(
                {
                    "device": device,
                    "backend": args.backend,
                    "table": table.to_dict(orient="records"),
                    "scatter": str(png) if png else None,
                }
            )
        )
    else:
        print(f"{device} / {args.backend}: {len(y)} block rows\n")
        print(format_table(table))
        if png:
            print(f"\nscatter plot: {png}")
    return 0


# -- canao search ------------------------------------------------------------------------------
def _accuracy_choice(args: argparse.Namespace, base: Any) -> tuple[str, str | None]:
    """``auto``: the task's inherited accuracy if an elastic base exists, else the proxy."""
    from canao.compress.checkpoint import CheckpointError, is_model_dir
    from canao.compress.teacher import default_dir
    from canao.search.accuracy import make_estimator

    if args.accuracy == "capacity-proxy":
        return args.accuracy, None
    elastic = args.elastic
    if elastic is None:
        found = [d for d in ("supernet", "elastic") if is_model_dir(default_dir(args.task, d))]
        if found:
            elastic = str(default_dir(args.task, found[0]))
        elif args.accuracy == "auto":
            print(
                f"canao search: no elastic base for {args.task} (canao compress finetune, then "
                "rewire); falling back to the capacity PROXY",
                file=sys.stderr,
            )
            return "capacity-proxy", None
        else:
            raise UsageError(
                f"--accuracy inherited needs --elastic DIR (none found for {args.task})"
            )
    try:
        make_estimator("inherited", base, elastic)  # checks the folder and the base now
    except (CheckpointError, ValueError) as e:
        raise UsageError(str(e)) from None
    return "inherited", elastic


def cmd_search(args: argparse.Namespace) -> int:
    import time as _time

    from canao.search.results import trials_frame, write_outputs
    from canao.search.space import SearchSpace
    from canao.search.study import SearchConfig, SearchJob, run_search
    from canao.space import SpecError, load_arch

    model = _load_predictor(args.predictor)
    try:
        base = load_arch(args.base, seq_len=args.seq_len)
        SearchSpace(base, ffn_step=args.ffn_step)
        cfg = SearchConfig(
            budget_ms=args.budget_ms,
            trials=args.trials,
            mode=args.mode,
            sampler=args.sampler,
            seed=args.seed,
            study_name=args.study_name,
            storage=args.storage,
            workers=args.workers,
            threads=args.threads or max(model.meta_.get("threads") or [2]),
        )
    except (SpecError, ValueError) as e:
        raise UsageError(str(e)) from None
    accuracy, elastic = _accuracy_choice(args, base)
    job = SearchJob(cfg, base.to_json(), args.ffn_step, str(args.predictor), accuracy, elastic)
    out = Path(args.out)
    print(
        f"canao search: {cfg.mode}, {cfg.trials} trials, budget {cfg.budget_ms} ms, "
        f"predictor {model.meta_.get('device')}/{model.meta_.get('backend')}, accuracy: "
        f"{accuracy}"
        + (" (a PROXY, not an accuracy)" if "proxy" in accuracy else f" on {args.task} dev")
        + (f", weights from {elastic}" if elastic else ""),
        file=sys.stderr,
    )
    t0 = _time.perf_counter()
    try:
        study = run_search(job, out)
    except ValueError as e:
        raise UsageError(str(e)) from None
    wall = _time.perf_counter() - t0
    df = trials_frame(study)
    title = f"{base.name or 'base'} sub-architectures, {model.meta_.get('backend')} predictor"
    res = write_outputs(df, out, args.top_k, cfg.budget_ms, title)
    summary = {
        "study": cfg.study_name,
        "trials": len(df),
        "feasible": int(df["feasible"].sum()) if len(df) else 0,
        "wall_s": round(wall, 2),
        "accuracy_kind": "proxy" if "proxy" in accuracy else "real",
        "accuracy": accuracy,
        "elastic": elastic,
        **{k: v for k, v in res.items() if k != "table"},
    }
    (out / "search-config.json").write_text(json.dumps({"argv": sys.argv[1:], **summary}))
    if args.json:
        print(json.dumps(summary))
    else:
        print(res["table"])
        print(
            f"\n{summary['trials']} trials ({summary['feasible']} within budget) in {wall:.1f} s;"
            f" finalists in {out / 'finalists'}, plot {res['pareto_png']}"
        )
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


def _add_rows_args(p: argparse.ArgumentParser) -> None:
    """Which rows of a dataset a predictor is trained or evaluated on."""
    p.add_argument("--device", help="device folder name (needed if the data has several)")
    p.add_argument("--threads", type=int, help="thread count (needed if the data has several)")
    p.add_argument(
        "--combine",
        choices=("latest", "median", "drift-median"),
        default="latest",
        help="a key measured several times (--remeasure all rounds): the latest measurement "
        "(default), the median of all of them, or their median after dividing each by the "
        "host's speed when it was taken, estimated from the rows measured around it and "
        "raised to an exponent fitted per key latency (drift-median: for rounds measured "
        "with --shuffle)",
    )


def build_parser() -> argparse.ArgumentParser:
    from canao.compress.data import TASKS

    parser = argparse.ArgumentParser(
        prog="canao", description="Latency-predictor-first, compiler-aware BERT search."
    )
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("profile", help="measure many block or model specs into the store")
    p.add_argument(
        "--backend", required=True, help="onnxruntime, eager, inductor, tvm (tuned) or tvm-untuned"
    )
    p.add_argument("--samples", type=int, default=50, help="specs in the design (prefix-stable)")
    p.add_argument(
        "--space",
        choices=("blocks", "models", "grid", "grid-models"),
        default="blocks",
        help="blocks: space-filling design; models: random whole models; grid / grid-models: "
        "blocks / whole models on the tuned workload grid (for --backend tvm)",
    )
    p.add_argument(
        "--space-config", type=Path, help="JSON with BlockSpace bounds, or the grid's values"
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=str(DEFAULT_ROOT), help="dataset root folder")
    p.add_argument("--flush-every", type=int, default=200, help="rows per Parquet shard")
    p.add_argument(
        "--canary-every",
        type=int,
        default=50,
        help="time a reference block every N specs to track host drift (0: never)",
    )
    p.add_argument(
        "--remeasure",
        choices=("noisy", "all", "unsettled"),
        help="measure the design's stored specs again (noisy: flagged noisy or failed rows; "
        "unsettled: measured fewer than 3 times, or whose drift-corrected median, as "
        "--combine drift-median reads it, has an estimated standard error above "
        "--max-median-error of it); the new rows supersede the old ones, which stay on disk",
    )
    p.add_argument(
        "--with-new",
        action="store_true",
        help="--remeasure: measure the design's specs not stored yet in the same round, "
        "shuffled among the stored ones (with --shuffle), so that --combine drift-median reads "
        "the host's speed at each new spec from the stored specs measured around it (a "
        "sitting of new specs alone has none until they are measured again)",
    )
    p.add_argument(
        "--anchors",
        type=int,
        default=0,
        metavar="N",
        help="--remeasure unsettled or noisy, with --shuffle: also measure N of the other "
        "stored specs, chosen at random each round and shuffled among the round's own, so that "
        "--combine drift-median reads the host's speed at the round's rows against keys of "
        "known level (a round of new or unsettled keys alone can hold a slow state the whole "
        "way, which their own medians then keep; default: 0)",
    )
    p.add_argument(
        "--max-median-error",
        type=float,
        default=0.02,
        metavar="FRACTION",
        help="--remeasure unsettled: the relative standard error a key's median may keep, "
        "estimated as 0.93 x the interquartile range of its drift-corrected measurements over "
        "the square root of their count (default: 0.02)",
    )
    p.add_argument(
        "--shuffle",
        type=int,
        metavar="SEED",
        help="visit the specs in an order shuffled by SEED, not the design's (rounds of "
        "--remeasure in different orders put slow host drift on different specs each round)",
    )
    p.add_argument(
        "--rounds",
        type=int,
        default=1,
        metavar="N",
        help="with --remeasure and --shuffle SEED: up to N rounds back to back, round r in the "
        "order of SEED + r - 1, each with a fresh measuring process and its own shard; the "
        "specs to measure are chosen again before every round (with unsettled: stops early "
        "once every key is settled)",
    )
    p.add_argument(
        "--check-host",
        type=int,
        default=0,
        metavar="N",
        help="before each round, measure N stored, settled specs again (not stored; blocks, "
        "or models for --space models) and stop, exit code 3, unless their median ratio to "
        "the dataset's drift-corrected medians is within --host-tolerance: new rows are "
        "measured only on a host in the state the dataset was measured in (each check is "
        f"logged to {HOST_CHECKS}; default 0: no check)",
    )
    p.add_argument(
        "--host-tolerance",
        type=float,
        default=0.03,
        metavar="FRACTION",
        help="--check-host: how far from 1 the median ratio may be (default: 0.03)",
    )
    p.add_argument(
        "--host-wait",
        type=float,
        default=0,
        metavar="SECONDS",
        help="--check-host: where a check fails (before a round, or by the canary during one), "
        "wait SECONDS and check again, then measure on (the round's remaining specs), instead "
        "of stopping with exit code 3 (default 0: stop)",
    )
    p.add_argument(
        "--host-tries",
        type=int,
        default=12,
        metavar="N",
        help="--host-wait: stop with exit code 3 after N failed checks in a round (default: 12)",
    )
    p.add_argument(
        "--tuned-only",
        action="store_true",
        help="tvm on this host: measure only the specs whose workloads are all tuned already "
        "(the rest are left for a later run, not stored as untuned errors)",
    )
    p.add_argument("--adaptive", action="store_true", help="measure where --predictor errs")
    p.add_argument("--predictor", help="predictor folder for --adaptive")
    p.add_argument("--predictor-out", help="where the retrained predictor goes")
    p.add_argument(
        "--transfer-from",
        help="a predictor of another device or backend: measure the --samples blocks (of "
        "40x as many candidates) that cover its view of the block space, the few blocks that "
        "`canao train --transfer-from` needs (--space models: the whole models that span its "
        "view of them, for --few-models)",
    )
    p.add_argument("--overwrite", action="store_true", help="retrain --predictor in place")
    _add_eval_args(p)
    p.set_defaults(func=cmd_profile)

    p = sub.add_parser("measure", help="measure one whole model end to end")
    p.add_argument("--arch", help="ArchSpec JSON file or a published name")
    p.add_argument(
        "--canary",
        action="store_true",
        help="measure the canary block instead (host speed, for canao predict --canary-ms)",
    )
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
    d = dsub.add_parser(
        "retire",
        help="stop reading a backend folder's rows measured before a time (kept on disk)",
        description="Retire the rows of one <device>/<backend> folder measured before --before "
        "(only those from --after on, and only those matching every --where, if given): "
        "they stay in their shards, a line in the folder's retired.jsonl says which and why, and "
        "no reader (train, evaluate, the benchmarks, --combine median) sees them; keys left with "
        "no other row count as unmeasured, so canao profile measures them again. For rows that "
        "no longer describe the backend, e.g. measured before its build settings changed, or for "
        "one sitting on a host that ran differently from the rest (--after). Delete the line "
        "from retired.jsonl to undo.",
    )
    d.add_argument("path", help="one store folder: <root>/<device>/<backend>")
    d.add_argument("--before", required=True, help="ISO 8601 time, e.g. 2026-11-22T15:09:00Z")
    d.add_argument("--reason", required=True, help="why (kept in retired.jsonl)")
    d.add_argument(
        "--after",
        metavar="TIME",
        help="retire only the rows measured from this ISO 8601 time on (and before --before): "
        "one sitting, e.g. on a host that ran slower than the rest of the dataset's",
    )
    d.add_argument(
        "--where",
        action="append",
        default=[],
        metavar="COLUMN=VALUE",
        help="retire only the rows with this value (repeatable, all must match), e.g. hidden=512; "
        "columns: kind, dtype, hidden, heads, head_dim, ffn, seq_len, batch, num_layers, threads",
    )
    d.set_defaults(func=cmd_dataset_retire)
    d = dsub.add_parser(
        "compact",
        help="fold each backend folder's shards into one (every row kept)",
        description="Fold the shards of every <device>/<backend> folder below PATH into one "
        "shard per folder: the same rows in the same order (retired ones included), read back "
        "and compared before the old shards are removed; many 200-row shards compress about "
        "half as well as one. Takes each folder's writer lock, so it waits for no running "
        "profile: it refuses a folder being written.",
    )
    d.add_argument("path", help="a dataset root, device or backend folder")
    d.set_defaults(func=cmd_dataset_compact)

    p = sub.add_parser("train", help="train a latency predictor on a dataset")
    p.add_argument("--data", default=str(DEFAULT_ROOT), help="latency dataset folder")
    p.add_argument("--backend", required=True)
    _add_rows_args(p)
    p.add_argument("--out", required=True, help="predictor folder to write")
    p.add_argument("--base", choices=("nnls", "none"), default="nnls")
    p.add_argument(
        "--drift",
        choices=("canary", "none"),
        default="none",
        help="canary: divide each row by the host speed its canary block measured (rows "
        "without a canary are taken as they are; predictions then refer to the dataset's "
        "median canary, see canao predict --canary-ms); none: raw latencies (default)",
    )
    p.add_argument("--tune", action="store_true", help="tune hyperparameters with Optuna")
    p.add_argument("--trials", type=int, default=30)
    p.add_argument(
        "--tune-metric",
        choices=("rmspe", "mape"),  # tuning.METRICS (not imported at start-up; a test twins them)
        help="what --tune minimises, by 3-fold cross-validation (default: rmspe)",
    )
    p.add_argument(
        "--transfer-from",
        metavar="PREDICTOR",
        help="adapt a predictor of another device or backend from a few measured blocks (--data)",
    )
    p.add_argument(
        "--also-from",
        nargs="+",
        default=[],
        metavar="PREDICTOR",
        help="with --transfer-from: other source predictors, whose predictions the transfer's "
        "remix mixes in beside the first's (a new CPU between known ones)",
    )
    p.add_argument(
        "--records",
        metavar="FILE",
        help="tuned TVM: the device's own tuning records per block (canao records): the "
        "analytic base the trees learn the ratio to (every block of --data must be in it, and "
        "so must every block the predictor is asked for); with --transfer-from, mixed into the "
        "remix as two more sources",
    )
    p.add_argument("--few", type=int, default=50, help="blocks used for --transfer-from")
    p.add_argument(
        "--boosted-residual",
        choices=("auto", "on", "off"),
        default="auto",
        # 30 and 10: transfer.MIN_BOOSTED_BLOCKS and MIN_RESIDUAL_BLOCKS (a test twins them)
        help="with --transfer-from: the boosted residual after the smooth one (stumps over "
        "every block feature): auto adds it from 30 blocks on (where "
        "benchmarks/boosted_residual.py finds it helps), except with --records (where "
        "benchmarks/transfer_records.py finds it costs), on from 10 (the smooth residual's "
        "minimum), off never (default: auto)",
    )
    p.add_argument(
        "--few-models",
        type=int,
        default=50,
        help="whole models of --data (measured on the new device) that carry a transfer's "
        "whole-model overhead to it: the source's rescaled or, from 10 on, adjusted, whichever "
        "leave-one-out prefers (picked as --pick says; the rest are scored)",
    )
    p.add_argument(
        "--pick",
        choices=("cover", "random"),
        default="cover",
        help="which --few blocks (and --few-models whole models) of --data a transfer uses "
        "when it holds more: the ones that cover the source predictor's view of them (blocks: "
        "k-means medoids; models: the farthest from those picked before), or random ones",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--overwrite", action="store_true")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("predict", help="predicted latency of a whole model")
    p.add_argument("--predictor", required=True, help="a folder written by canao train")
    p.add_argument("--arch", required=True, help="ArchSpec JSON file or a published name")
    p.add_argument("--seq-len", type=int)
    p.add_argument("--batch", type=int)
    p.add_argument("--threads", type=int)
    p.add_argument(
        "--canary-ms",
        type=float,
        help="the canary block's time on the device now (canao measure --canary): rescales "
        "the prediction from the dataset's host speed to today's",
    )
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_predict)

    p = sub.add_parser("evaluate", help="held-out accuracy of the predictor and baselines")
    p.add_argument("--data", default=str(DEFAULT_ROOT))
    p.add_argument("--backend", required=True)
    _add_rows_args(p)
    p.add_argument("--models", help="comma-separated subset (default: all)")
    p.add_argument(
        "--cv",
        type=int,
        metavar="K",
        help="also K-fold cross-validation, every block held out once (3 fold assignments)",
    )
    p.add_argument(
        "--records",
        metavar="FILE",
        help="tuned TVM: also score XGBoost with the device's tuning records per block as its "
        "base (xgboost+records; canao records, canao train --records)",
    )
    p.add_argument("--out", default="runs/evaluate", help="where the scatter PNG goes")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("search", help="search architectures under a latency budget")
    p.add_argument("--predictor", required=True, help="a folder written by canao train")
    p.add_argument("--budget-ms", type=float, required=True)
    p.add_argument("--base", default="minilm-l6-h384", help="the model whose sub-nets are searched")
    p.add_argument("--task", choices=tuple(TASKS), default="mr")
    p.add_argument("--seq-len", type=int, default=128)
    p.add_argument("--ffn-step", type=int, default=128)
    p.add_argument(
        "--accuracy",
        choices=("auto", "inherited", "capacity-proxy"),
        default="auto",
        help="inherited: dev accuracy with weights inherited from an elastic base; auto: that "
        "if runs/compress/TASK/{supernet,elastic} exists, else the capacity proxy",
    )
    p.add_argument("--elastic", help="elastic base folder (canao compress rewire/supernet)")
    p.add_argument("--trials", type=int, default=1000)
    p.add_argument("--mode", choices=("max-acc", "pareto"), default="max-acc")
    p.add_argument("--sampler", choices=("tpe", "nsga2", "random"), default="tpe")
    p.add_argument("--storage", help="Optuna storage URL or a .journal file (default: SQLite)")
    p.add_argument("--workers", type=int, default=1, help="local worker processes")
    p.add_argument("--study-name", default="canao-search")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int)
    p.add_argument("--top-k", type=int, default=5)
    p.add_argument("--out", default="runs/search")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_search)

    p = sub.add_parser("tune", help="tune the TVM workloads of a block grid (MetaSchedule)")
    p.add_argument("--device", default="host")
    p.add_argument("--grid", type=Path, help="grid JSON (default: the search grid, see README)")
    p.add_argument("--trials", type=int, default=64, help="MetaSchedule trials per workload")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument(
        "--db", help="tuning database folder (default datasets_latency/DEVICE/tvm/tuning)"
    )
    p.add_argument(
        "--arch",
        action="append",
        help="tune this whole model's workloads instead of the grid (name or JSON; repeatable)",
    )
    p.add_argument("--seq-len", type=int, help="with --arch: the input length")
    p.add_argument("--dry-run", action="store_true", help="plan and estimate only")
    p.add_argument(
        "--retune-above-us",
        type=float,
        metavar="US",
        help="tune again, with --trials, the tuned workloads whose best time exceeds US "
        "microseconds (where the time goes; e.g. the FFN GEMMs)",
    )
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_tune)

    p = sub.add_parser(
        "records",
        help="per block of the tuned grids, its tuning records' times by kind (for "
        "canao train --records)",
    )
    p.add_argument("--device", default="host")
    p.add_argument(
        "--db", help="tuning database folder (default datasets_latency/DEVICE/tvm/tuning)"
    )
    p.add_argument(
        "--grid",
        type=Path,
        action="append",
        help="grid JSON (repeatable; default: the grids listed in the database's grids.jsonl)",
    )
    p.add_argument("--threads", type=int, default=2, help="the target's cores, as tuned")
    p.add_argument("--out", help="table to write (default DB/records.parquet); resumed")
    p.add_argument("--overwrite", action="store_true", help="rebuild the table from scratch")
    p.add_argument(
        "--no-retime",
        dest="retime",
        action="store_false",
        help="sum the records' own times (picked as the fastest while tuning, so low by "
        "chance) instead of each best schedule timed again (default)",
    )
    p.add_argument(
        "--retime-threads",
        type=int,
        default=1,
        help="threads the best schedules are timed again on (default 1: a small kernel's "
        "time on more is much its threads' start and join)",
    )
    p.add_argument(
        "--retime-rounds",
        type=int,
        default=2,
        help="re-timings per workload, each round in its own order; their median is used "
        "(default 2: a single re-timing moves with the host's drift)",
    )
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_records)

    from canao.compress.commands import add_parser as add_compress

    add_compress(sub)

    from canao.compile.commands import add_parsers as add_compile

    add_compile(sub)

    from canao.demo import add_parser as add_demo

    add_demo(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from canao import quiet_library_warnings

    os.environ.setdefault("TVM_NUM_THREADS", "2")
    quiet_library_warnings()
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
