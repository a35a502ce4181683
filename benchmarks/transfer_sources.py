"""Transfer from one source predictor, or from one and the other sources beside it.

    .venv/bin/python benchmarks/transfer_sources.py [--datasets NAME,...] [--few 50] [--seeds 8]

Every dataset (read as the drift-corrected median of its rounds) is a target in turn and every
other one a primary source (its predictor trained on all its blocks). The ``--few`` covering
blocks are picked from the primary's view (``transfer_picks``, as ``canao profile
--transfer-from`` measures them) and the primary is transferred with them alone (``canao train
--transfer-from P``) and with every other dataset's predictor as well, the target's own left
out (``canao train --transfer-from P --also-from ...``: their predictions mixed into the remix
beside the primary's). Each is scored
on all the target's other blocks, averaged over ``--seeds`` k-means seeds. Writes
``results/transfer-sources.md`` and ``results/transfer-sources.png``.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from canao.predictors.evaluation import blocks_xy, load_dataset, transfer_score
from canao.predictors.predictor import LatencyPredictor
from canao.predictors.transfer import pick_design, transfer_picks

INTEL = "intel-xeon-amx-2c"
DATASETS = (
    f"{INTEL}/onnxruntime/2t/drift-median",
    f"{INTEL}/eager/2t/drift-median",
    f"{INTEL}/tvm/2t/drift-median",
    "amd-epyc-avx512-2c/onnxruntime/1t/drift-median",
    "amd-epyc-avx512-2c-f25m17/onnxruntime/1t/drift-median",
    "amd-epyc-avx2-2c/onnxruntime/1t/drift-median",
)


#: the README's names of the shipped devices (plot labels)
NICKNAMES = {
    INTEL: "Intel",
    "amd-epyc-avx512-2c": "Zen 5",
    "amd-epyc-avx512-2c-f25m17": "Zen 4",
    "amd-epyc-avx2-2c": "Zen 3",
    "intel-xeon-avx512-2c": "Skylake-SP",
}


def short(name: str) -> str:
    """device/backend of a dataset name."""
    return "/".join(name.split("/")[:2])


def label(name: str) -> str:
    """A dataset's plot label: the device's README name and the backend."""
    device, backend = name.split("/")[:2]
    return f"{NICKNAMES.get(device, device)} {backend}"


def write_results(fig: Any, lines: list[str], out: Path, stem: str) -> None:
    """Write a benchmark's figure and table as ``out/<stem>.png`` and ``out/<stem>.md``."""
    fig.tight_layout()
    out.mkdir(parents=True, exist_ok=True)
    fig.savefig(out / f"{stem}.png", dpi=110)
    (out / f"{stem}.md").write_text("\n".join(lines) + "\n")
    print(f"written to {out / f'{stem}.md'}")


class Transfers:
    """What the transfer benchmarks share, each computed once: the datasets ``names`` read
    (``blocks_xy`` of ``load_dataset``), a predictor fitted on all the blocks of each of
    ``sources``, and the covering blocks a transfer from a source to a target measures per
    k-means seed (``transfer_picks`` of the source's view, as ``canao profile --transfer-from``
    picks them)."""

    def __init__(self, data: Path, names: Iterable[str], sources: Iterable[str]) -> None:
        self.frames = {n: blocks_xy(load_dataset(data, n)) for n in dict.fromkeys(names)}
        self.fitted = {n: LatencyPredictor().fit(*self.frames[n]) for n in dict.fromkeys(sources)}
        self._views: dict[tuple[str, str], np.ndarray] = {}
        self._picks: dict[tuple[str, str, int, int], np.ndarray] = {}

    def pick(self, source: str, target: str, few: int, seed: int) -> np.ndarray:
        """The target's ``few`` covering blocks (row indices) from the source's view."""
        if (source, target) not in self._views:
            X = self.frames[target][0]
            self._views[source, target] = pick_design(X, self.fitted[source].predict(X))
        key = (source, target, few, seed)
        if key not in self._picks:
            self._picks[key] = transfer_picks(self._views[source, target], few, seed)
        return self._picks[key]

    def score(
        self,
        source: str,
        target: str,
        few: int,
        seed: int,
        helpers: Sequence[Any] = (),
        boost: bool | None = None,
    ) -> dict[str, float]:
        """Metrics on the target's other blocks of the source transferred with its covering
        blocks (``transfer_score``; ``helpers``: other sources, ``boost``: as
        ``fit_transfer``)."""
        X, y = self.frames[target]
        pick = self.pick(source, target, few, seed)
        return transfer_score(self.fitted[source], X, y, pick, helpers, boost)[1]


def dataset_args(doc: str, datasets: tuple[str, ...], seeds: int) -> argparse.Namespace:
    """The command line of a transfer benchmark over ``datasets`` (``--data``, ``--datasets``,
    ``--few``, ``--seeds``, ``--out``); matplotlib set to draw into files."""
    import matplotlib

    matplotlib.use("Agg")
    ap = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=Path("datasets_latency"))
    ap.add_argument("--datasets", default=",".join(datasets), help="dataset names, ...")
    ap.add_argument("--few", type=int, default=50)
    ap.add_argument("--seeds", type=int, default=seeds)
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    return ap.parse_args()


def main() -> None:
    import matplotlib.pyplot as plt

    args = dataset_args(__doc__, DATASETS, 8)
    names = args.datasets.split(",")
    if len(names) < 3:
        raise SystemExit("--datasets: at least 3 (a target, a primary source and another)")
    start = time.time()
    bench = Transfers(args.data, names, names)
    lines = [
        "# Transfer from one source predictor, or from one and the others beside it",
        "",
        f"`{' '.join(['.venv/bin/python benchmarks/transfer_sources.py', '--few', str(args.few)])}"
        f" --seeds {args.seeds}`. Each target's {args.few} covering blocks are picked from the "
        "primary source's view; the transfer from the primary alone is `canao train "
        "--transfer-from`, the one with the other sources (every other dataset's predictor, "
        "the target's own left out) `--also-from`. Scored within ±10% (and MAPE) on all the "
        f"target's other blocks, mean over {args.seeds} k-means seeds (lowest-highest seed "
        "in brackets for the shares).",
        "",
        "| target | primary source | alone ±10% | with the others ±10% | alone MAPE "
        "| with the others MAPE |",
        "|---|---|---:|---:|---:|---:|",
    ]
    results: dict[str, dict[str, tuple[float, float]]] = {}
    for target in names:
        results[target] = {}
        for primary in names:
            if primary == target:
                continue
            helpers = [bench.fitted[n] for n in names if n not in (primary, target)]
            alone, mixed = [], []
            for seed in range(args.seeds):
                for out, extra in ((alone, []), (mixed, helpers)):
                    out.append(bench.score(primary, target, args.few, seed, extra))
            a10 = [m["acc10"] for m in alone]
            m10 = [m["acc10"] for m in mixed]
            results[target][primary] = (float(np.mean(a10)), float(np.mean(m10)))
            lines.append(
                f"| {short(target)} | {short(primary)} "
                f"| {np.mean(a10):.1%} ({min(a10):.1%}-{max(a10):.1%}) "
                f"| {np.mean(m10):.1%} ({min(m10):.1%}-{max(m10):.1%}) "
                f"| {np.mean([m['mape'] for m in alone]):.2f}% "
                f"| {np.mean([m['mape'] for m in mixed]):.2f}% |"
            )
            print(lines[-1], flush=True)
    lines += [
        "",
        "Best primary source per target:",
        "",
        "| target | alone: best ±10% | with the others: best ±10% |",
        "|---|---:|---:|",
    ]
    for target, by in results.items():
        best_a = max(by, key=lambda p: by[p][0])
        best_m = max(by, key=lambda p: by[p][1])
        lines.append(
            f"| {short(target)} | {by[best_a][0]:.1%} (from {short(best_a)}) "
            f"| {by[best_m][1]:.1%} (from {short(best_m)}) |"
        )
    lines += ["", f"{time.time() - start:.0f} s.", "", "![transfer sources](transfer-sources.png)"]
    cols = min(3, len(names))
    rows = -(-len(names) // cols)
    fig, grid = plt.subplots(rows, cols, figsize=(4.6 * cols, 3.9 * rows), squeeze=False)
    for ax in grid.flat[len(names) :]:
        ax.set_visible(False)
    for ax, (target, by) in zip(grid.flat, results.items(), strict=False):
        x = np.arange(len(by))
        ax.bar(x - 0.2, [v[0] for v in by.values()], 0.4, label="primary source alone")
        ax.bar(x + 0.2, [v[1] for v in by.values()], 0.4, label="with the other sources")
        ax.axhline(0.95, color="grey", ls="--", lw=0.8)
        ax.set_xticks(x, [label(p) for p in by], fontsize=7, rotation=25, ha="right")
        ax.set_title(f"target: {label(target)}", fontsize=9)
        ax.set_ylim(0.5, 1.0)
        ax.set_ylabel(f"within ±10%, from {args.few} blocks", fontsize=8)
    grid.flat[0].legend(fontsize=7, loc="lower left")
    write_results(fig, lines, args.out, "transfer-sources")


if __name__ == "__main__":
    main()
