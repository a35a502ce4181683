"""Measurement repeatability: the floor under every predictor figure.

    .venv/bin/python benchmarks/repeatability.py --backend onnxruntime [--threads 1,2]
        [--n 100] [--rounds 3] [--device D]
    .venv/bin/python benchmarks/repeatability.py --backend onnxruntime --stored --device D
        --threads 1 [--kind model]

A predictor cannot be more accurate than the measurements it is scored against. This samples
``--n`` stored blocks of a backend's dataset (this host's, else ``--device``'s) and measures
them again on this host ``--rounds`` times at each of ``--threads``, interleaved (round 1 over
all specs, each spec at every thread count back to back, then round 2, ...), in one sitting,
with the dataset's evaluator settings. It reports, per thread count, how often two
measurements of the same block agree within ±5% / ±10% (scored as the predictors are):
between consecutive rounds of this sitting (raw, and with each round's overall drift -- the
median ratio -- divided out), and, where the stored row is this host's at that thread count,
between this sitting and the stored row (measured minutes or days earlier). Run it on a quiet
machine. Writes benchmarks/results/repeatability-<host>-<backend>.md and the raw times beside
it (.csv, rewritten after every round, so an interrupted run keeps what it measured).

``--stored`` measures nothing: it scores the rounds already in the dataset (``canao profile
--remeasure all`` run again and again over a campaign, each key's measurements in time order),
the noise floor at the scale of a campaign, minutes to hours apart; with 4 rounds or more it
also splits each key's rounds into two halves, reads each half as ``canao train --combine
{latest,median}`` would and compares the halves: how well the latency that predictors are
fitted to and scored on repeats. Writes
benchmarks/results/repeatability-<device>-<backend>-stored.md, or with ``--threads 1``
...-<backend>-1t-stored.md (``--kind model``: the whole models' rounds, ...-stored-models.md).
"""

from __future__ import annotations

import argparse
import functools
import time
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from canao.predictors.evaluation import block_specs
from canao.predictors.features import DIMS
from canao.predictors.metrics import LATENCY_BINS_MS, error_metrics
from canao.profiling.fingerprint import resolve_device
from canao.profiling.measurement import EvalConfig
from canao.profiling.runner import LocalRunner, row_key
from canao.profiling.store import (
    drift_exponents,
    drift_median,
    latest,
    median_of_repeats,
    read_all_rows,
    read_rows,
)
from canao.space import BlockSpec

OUT = Path(__file__).parent / "results"


def agreement(a: np.ndarray, b: np.ndarray) -> dict[str, float]:
    """How measurements ``a`` agree with ``b`` of the same blocks, scored as the predictors
    are (``error_metrics``, ``b`` the reference), plus the median and 95th percentile of the
    relative difference."""
    rel = np.abs(a / b - 1)
    return {
        **error_metrics(b, a),
        "median": float(np.median(rel)),
        "p95": float(np.percentile(rel, 95)),
    }


def measure(
    blocks: list[BlockSpec], backend: str, host: str, threads: list[int], rounds: int, raw: Path
) -> pd.DataFrame:
    """``rounds`` interleaved rounds over ``blocks`` at every thread count; the table (one row
    per spec, thread count and round) is rewritten to ``raw`` after every round."""
    runners = {t: LocalRunner(backend, host, EvalConfig(threads=t)) for t in threads}
    rows: list[dict[str, object]] = []
    try:
        for k in range(1, rounds + 1):
            errors = []
            for i, spec in enumerate(tqdm(blocks, desc=f"round {k}/{rounds}")):
                for t, runner in runners.items():
                    res = runner.run(spec)
                    ok = res.ok and res.measurement is not None
                    ms = res.measurement.median_ms if res.measurement is not None else np.nan
                    rows.append({"spec": i, "threads": t, "round": k, "ms": ms if ok else np.nan})
                    if not ok:
                        errors.append(res.error or "no measurement")
            if len(errors) == len(blocks) * len(threads):
                raise SystemExit(f"round {k}: every measurement failed, e.g.: {errors[0]}")
            pd.DataFrame(rows).to_csv(raw, index=False)
    finally:
        for runner in runners.values():
            runner.close()
    return pd.DataFrame(rows)


def report(
    times: pd.DataFrame, stored: pd.DataFrame, rounds: int, kind: str = "block"
) -> list[str]:
    """Markdown tables: per thread count, round vs round and, where ``stored`` (spec, threads,
    ms: the dataset's row of that spec) has the spec, this sitting vs the stored row."""
    lines = [
        f"| threads | two measurements of the same {kind}s | n | within ±5% | within ±10% "
        "| median diff | 95th pct diff |",
        "|---:|---|---:|---:|---:|---:|---:|",
    ]
    by_range = []
    for t, g in times.groupby("threads"):
        w = g.pivot(index="spec", columns="round", values="ms").dropna()
        comparisons = []
        for k in range(2, rounds + 1):
            comparisons.append((f"round {k} vs round {k - 1}", w[k], w[k - 1]))
            drift = float(np.median(w[k] / w[k - 1]))
            comparisons.append(
                (f"round {k} vs round {k - 1}, drift ({drift:.3f}) divided out", w[k] / drift,
                 w[k - 1])
            )  # fmt: skip
        if rounds >= 3:
            for k in range(1, rounds + 1):
                others = w.drop(columns=k).median(axis=1)
                comparisons.append((f"round {k} vs the median of the other rounds", w[k], others))
        ref = stored[stored["threads"] == t].set_index("spec")["ms"]
        have = w.index.intersection(ref.index)
        if len(have):
            comparisons.append(
                ("this sitting (mean of rounds) vs the stored row", w.mean(axis=1)[have],
                 ref[have])
            )  # fmt: skip
        for name, a, b in comparisons:
            s = agreement(np.asarray(a, float), np.asarray(b, float))
            lines.append(
                f"| {t} | {name} | {s['n']:.0f} | {s['acc5']:.1%} | {s['acc10']:.1%} "
                f"| {s['median']:.2%} | {s['p95']:.2%} |"
            )
        for name, part in w.groupby(pd.cut(w[1], LATENCY_BINS_MS), observed=True):
            s = agreement(part[2].to_numpy(), part[1].to_numpy())
            by_range.append(
                f"| {t} | {name} | {s['n']:.0f} | {s['acc5']:.1%} | {s['acc10']:.1%} "
                f"| {s['median']:.2%} |"
            )
    return [
        *lines,
        "",
        "Round 2 vs round 1 by measured latency:",
        "",
        "| threads | measured latency (ms) | n | within ±5% | within ±10% | median diff |",
        "|---:|---|---:|---:|---:|---:|",
        *by_range,
    ]


def in_rounds(df: pd.DataFrame) -> pd.DataFrame:
    """``df`` in time order with each row's ``round``: 1 for a key's first measurement, 2 for
    its second, and so on."""
    df = df.sort_values("timestamp", kind="stable")
    return df.assign(round=df.groupby("key").cumcount() + 1)


def stored_rounds(df: pd.DataFrame, threads: list[int]) -> tuple[pd.DataFrame, pd.DataFrame, int]:
    """The dataset's own repeated measurements as ``measure`` would return them: one row per
    key, thread count and round (rounds in time order; keys measured once are left out)."""
    df = in_rounds(df[df["threads"].isin(threads)])
    df = df[df.groupby("key")["round"].transform("max") >= 2]
    rounds = int(df.groupby("key")["round"].max().min()) if len(df) else 0
    keys = pd.DataFrame({"key": df["key"].unique()})
    spec = pd.Series(keys.index, index=keys["key"])
    times = pd.DataFrame(
        {
            "spec": spec.loc[df["key"]].to_numpy(),
            "threads": df["threads"].to_numpy(),
            "round": df["round"].to_numpy(),
            "ms": df["median_ms"].to_numpy(dtype=float),
        }
    )
    return times[times["round"] <= rounds], keys, rounds


def valid_rows(df: pd.DataFrame, device: str, backend: str, kind: str = "block") -> pd.DataFrame:
    ok = (df["device"] == device) & (df["backend"] == backend) & (df["kind"] == kind)
    return df[ok & df["error"].isna()]


def split_halves(df: pd.DataFrame) -> list[str]:
    """How well a dataset's *combined* latency repeats: the rounds of every key split into two
    disjoint halves (odd and even rounds in time order), each half read on its own as
    ``canao train --combine`` would, and the two readings compared."""
    df = in_rounds(df)
    halves = [df[df["round"] % 2 == 1], df[df["round"] % 2 == 0]]
    lines = [
        "| each half read as | n | within ±5% | within ±10% | median diff | 95th pct diff |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name, combine in (
        ("its latest round", latest),
        ("the median of its rounds", median_of_repeats),
        (
            "the drift-corrected median of its rounds, one factor for every key",
            functools.partial(drift_median, degree=None),
        ),
        ("the drift-corrected median of its rounds", drift_median),
    ):
        a, b = (combine(h).set_index("key")["median_ms"] for h in halves)
        have = a.index.intersection(b.index)
        s = agreement(a[have].to_numpy(float), b[have].to_numpy(float))
        lines.append(
            f"| {name} | {s['n']:.0f} | {s['acc5']:.1%} | {s['acc10']:.1%} "
            f"| {s['median']:.2%} | {s['p95']:.2%} |"
        )
    return lines


def main_stored(args: argparse.Namespace, threads: list[int]) -> None:
    device = args.device or resolve_device("host", Path(args.data))
    df = valid_rows(read_all_rows(args.data), device, args.backend, args.kind)
    times, keys, rounds = stored_rounds(df, threads or sorted(df["threads"].unique()))
    if rounds < 2:
        raise SystemExit(f"no {device} / {args.backend} {args.kind}s measured in 2 rounds or more")
    per_key = df[df["key"].isin(keys["key"])]
    when = per_key["timestamp"]
    lines = [
        f"# Repeatability over a campaign: {len(keys)} stored {device} / {args.backend} "
        f"{args.kind}s, {rounds} rounds each",
        "",
        f"`.venv/bin/python benchmarks/repeatability.py --backend {args.backend} --stored "
        f"--device {device}"
        + (f" --threads {args.threads}" if args.threads else "")
        + (" --kind model" if args.kind == "model" else "")
        + "`: "
        f"the rounds of the stored rows (`canao profile --remeasure all`), measured "
        f"{when.min()} .. {when.max()}; nothing measured now.",
        "",
        *report(times, pd.DataFrame(columns=["spec", "threads", "ms"]), rounds, args.kind),
    ]
    if rounds >= 4:
        n = per_key.groupby("key").size()
        more = (
            f"; {(n > rounds).sum()} keys measured up to {n.max()} times"
            if n.max() > rounds
            else ""
        )
        lines += [
            "",
            f"Split halves: each key's rounds split into odd and even rounds in time order "
            f"(at least {(rounds + 1) // 2} and {rounds // 2} rounds{more}), each half read on "
            "its own as `canao train --combine` reads a dataset, and the halves compared: how "
            "well the latency a predictor is trained and scored on repeats.",
            "",
            *split_halves(per_key),
            "",
            "The drift-corrected median divides each row by the host's speed around it, raised "
            "to an exponent that is a straight line in the log of the key's latency, fitted per "
            "thread count (`canao.profiling.store.host_speed`); fitted over all the rounds:",
            "",
            "| threads | rows | exponent at the fastest row | median over rows "
            "| at the slowest row |",
            "|---:|---:|---:|---:|---:|",
            *(
                f"| {e.threads} | {e.rows} | {e.fastest:.2f} | {e.median:.2f} | {e.slowest:.2f} |"
                for e in drift_exponents(per_key).itertuples()
            ),
        ]
    # the thread counts chosen in the name: a device's 1- and 2-thread rounds are two reports
    at = f"-{args.threads.replace(',', '-')}t" if args.threads else ""
    suffix = "-models" if args.kind == "model" else ""
    path = OUT / f"repeatability-{device}-{args.backend}{at}-stored{suffix}.md"
    path.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=Path("datasets_latency"))
    ap.add_argument("--backend", default="onnxruntime")
    ap.add_argument("--device", help="whose stored blocks to measure again (default: this host's)")
    ap.add_argument("--threads", default="", help="comma-separated (default: the stored rows')")
    ap.add_argument("--n", type=int, default=100, help="stored blocks to measure again")
    ap.add_argument("--rounds", type=int, default=3, help="interleaved rounds (>= 2)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--stored", action="store_true", help="score the stored rounds; no measuring")
    ap.add_argument(
        "--kind", choices=("block", "model"), default="block", help="--stored: blocks or models"
    )
    args = ap.parse_args()
    if args.stored:
        return main_stored(args, [int(t) for t in args.threads.split(",") if t])
    if args.rounds < 2 or args.n < 2:
        ap.error("--rounds and --n must be >= 2")
    host = resolve_device("host", Path(args.data))
    device = args.device or host
    df = valid_rows(read_rows(args.data), device, args.backend)
    if df.empty:
        ap.error(f"no stored {device} / {args.backend} blocks under {args.data}; name --device")
    threads = (
        [int(t) for t in args.threads.split(",")]
        if args.threads
        else sorted(int(t) for t in df["threads"].unique())
    )
    unique = df.drop_duplicates(list(DIMS))
    blocks = block_specs(unique.sample(n=min(args.n, len(unique)), random_state=args.seed))
    # the stored row of each measured spec and thread count (this host's rows only)
    old = df.set_index("key")["median_ms"] if device == host else pd.Series(dtype=float)
    stored = pd.DataFrame(
        [
            (i, t, old[row_key(b, t)])
            for i, b in enumerate(blocks)
            for t in threads
            if row_key(b, t) in old.index
        ],
        columns=["spec", "threads", "ms"],
    )
    OUT.mkdir(parents=True, exist_ok=True)
    stem = OUT / f"repeatability-{host}-{args.backend}"
    t0 = time.time()
    times = measure(blocks, args.backend, host, threads, args.rounds, stem.with_suffix(".csv"))
    minutes = (time.time() - t0) / 60
    failed = int(times["ms"].isna().sum())
    cmd = (
        f"`.venv/bin/python benchmarks/repeatability.py --backend {args.backend} "
        + (f"--device {args.device} " if args.device else "")
        + f"--threads {','.join(map(str, threads))} --n {args.n} --rounds {args.rounds} "
        f"--seed {args.seed}`"
    )
    lines = [
        f"# Repeatability on {host}: {len(blocks)} stored {device} / {args.backend} blocks "
        "measured again",
        "",
        f"{cmd}: {args.rounds} interleaved rounds at {', '.join(map(str, threads))} threads in "
        f"{minutes:.0f} minutes (ended {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}); "
        f"{failed} measurements failed and are left out; raw times in `{stem.name}.csv`."
        + ("" if device == host else f" Stored on another device ({device}): not compared."),
        "",
        *report(times, stored, args.rounds),
    ]
    path = stem.with_suffix(".md")
    path.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
