"""Transfer into tuned TVM with and without the device's own tuning records.

    .venv/bin/python benchmarks/transfer_records.py [--few 50] [--seeds 8]

The target is the Intel host's tuned-TVM blocks (the drift-corrected median of their rounds);
the primary source is, in turn, every other median-read dataset's predictor (trained on all its
blocks). From the ``--few`` covering blocks (``transfer_picks``, as ``canao profile
--transfer-from`` measures them) each is transferred alone (``canao train --transfer-from P``),
with the records' own times (the table ``canao records --no-retime`` wrote), with each best
schedule timed again (``--records``, the table ``canao records`` wrote into the tuning folder),
and with those and the other datasets' predictors (``--also-from``). Then, from the Intel ONNX
Runtime predictor, alone and with the re-timed records against the number of blocks. Each is
scored within ±10% on all the target's other blocks, averaged over ``--seeds`` k-means seeds.
Writes ``results/transfer-records.md`` and ``results/transfer-records.png``.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from transfer_sources import DATASETS, INTEL, Transfers, short, write_results

from canao.predictors.records import read_records, records_sources

#: the Intel host's tuned-TVM blocks, and every other median-read dataset as a source
TARGET = f"{INTEL}/tvm/2t/drift-median"
SOURCES = tuple(n for n in DATASETS if n != TARGET)
RECORDS = Path("datasets_latency") / INTEL / "tvm" / "tuning" / "records.parquet"
OWN = RECORDS.with_name("records-own.parquet")
CURVE = (10, 20, 30, 50, 100, 200)


def main() -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=Path("datasets_latency"))
    ap.add_argument("--records", type=Path, default=RECORDS, help="re-timed (canao records)")
    ap.add_argument("--own", type=Path, default=OWN, help="records' own times (--no-retime)")
    ap.add_argument("--few", type=int, default=50)
    ap.add_argument("--seeds", type=int, default=8)
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = ap.parse_args()
    start = time.time()
    bench = Transfers(args.data, [TARGET, *SOURCES], SOURCES)
    Xd, yd = bench.frames[TARGET]
    records = records_sources(read_records(args.records), {"table": str(args.records)})
    own = records_sources(read_records(args.own), {"table": str(args.own)})
    one_scale = []
    for table in (own, records):  # the summed times alone, at one scale fitted to all blocks
        ratio = np.log(yd / (table[0].predict(Xd) + table[1].predict(Xd)))
        one_scale.append(float(np.mean(np.abs(np.exp(ratio - np.median(ratio)) - 1) <= 0.1)))

    def score(primary: str, few: int, seed: int, helpers: list) -> float:
        return bench.score(primary, TARGET, few, seed, helpers)["acc10"]

    ways = (
        "alone",
        "with the records' own times",
        "with the re-timed records",
        "with the re-timed records and the other sources",
    )
    lines = [
        "# Transfer into tuned TVM with the device's own tuning records",
        "",
        f"`.venv/bin/python benchmarks/transfer_records.py --few {args.few} --seeds "
        f"{args.seeds}`. Target: {short(TARGET)} ({len(yd)} blocks, the drift-corrected "
        f"median of their rounds); records: `{args.own}` (`canao records --no-retime`: the "
        f"records' own times) and `{args.records}` (`canao records`: each workload's best "
        "schedule timed again). Each primary source transferred from "
        f"{args.few} covering blocks alone (`canao train --transfer-from P`), with the "
        "records (`--records`) and with the re-timed records and the other datasets' "
        "predictors (`--also-from`). Within ±10% on all the target's other blocks, mean over "
        f"{args.seeds} k-means seeds (lowest-highest in brackets).",
        "",
        "The summed times of a block's workloads alone, at one scale fitted to all blocks, "
        f"read {one_scale[0]:.1%} of them within ±10% from the records' own times, "
        f"{one_scale[1]:.1%} re-timed.",
        "",
        f"| primary source | {' | '.join(ways)} |",
        "|---|---:|---:|---:|---:|",
    ]
    results: dict[str, list[float]] = {}
    for primary in SOURCES:
        others = [bench.fitted[n] for n in SOURCES if n != primary]
        by_way: list[list[float]] = [[], [], [], []]
        for seed in range(args.seeds):
            for i, helpers in enumerate(([], own, records, [*others, *records])):
                by_way[i].append(score(primary, args.few, seed, list(helpers)))
        results[primary] = [float(np.mean(v)) for v in by_way]
        cells = [f"{np.mean(v):.1%} ({min(v):.1%}-{max(v):.1%})" for v in by_way]
        lines.append(f"| {short(primary)} | {' | '.join(cells)} |")
        print(lines[-1], flush=True)
    primary = SOURCES[0]
    lines += [
        "",
        f"Against the number of blocks, from {short(primary)}:",
        "",
        "| blocks | alone | with the re-timed records |",
        "|---:|---:|---:|",
    ]
    curve: dict[int, tuple[float, float]] = {}
    for few in CURVE:
        alone = [score(primary, few, s, []) for s in range(args.seeds)]
        rec = [score(primary, few, s, list(records)) for s in range(args.seeds)]
        curve[few] = (float(np.mean(alone)), float(np.mean(rec)))
        lines.append(f"| {few} | {np.mean(alone):.1%} | {np.mean(rec):.1%} |")
        print(lines[-1], flush=True)
    lines += ["", f"{time.time() - start:.0f} s.", "", "![records](transfer-records.png)"]
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(11, 4))
    x = np.arange(len(SOURCES))
    for i, way in enumerate(ways):
        ax.bar(x + (i - 1.5) * 0.2, [results[p][i] for p in SOURCES], 0.2, label=way)
    ax.axhline(0.95, color="grey", ls="--", lw=0.8)
    ax.set_xticks(x, [short(p) for p in SOURCES], fontsize=7, rotation=20, ha="right")
    ax.set_ylim(0.5, 1.0)
    ax.set_ylabel(f"within ±10%, from {args.few} blocks")
    ax.set_title(f"into {short(TARGET)}", fontsize=9)
    ax.legend(fontsize=7, loc="lower left")
    bx.plot(CURVE, [curve[n][0] for n in CURVE], "o-", label="alone")
    bx.plot(CURVE, [curve[n][1] for n in CURVE], "o-", label="with the re-timed records")
    bx.axhline(0.95, color="grey", ls="--", lw=0.8)
    bx.set_xscale("log")
    bx.set_xlabel("measured blocks")
    bx.set_ylabel("within ±10% on the others")
    bx.set_title(f"from {short(primary)}", fontsize=9)
    bx.legend(fontsize=7)
    write_results(fig, lines, args.out, "transfer-records")


if __name__ == "__main__":
    main()
