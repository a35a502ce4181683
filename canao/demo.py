"""``canao demo``: the whole pipeline on the built-in defaults, as a new user would run it.

shipped latency dataset -> predictor -> teacher (demo-size) -> elastic base -> search under a
budget -> short distillation of the finalist -> TVM compile -> verify through an RPC server on
127.0.0.1 -> report -> classify a few sentences. Every step is a ``canao`` command, printed
before it runs, so the demo doubles as the tutorial. Steps whose output is complete are reused
(the demo resumes after an interruption); ``--fresh`` starts over in a new folder.

The demo trains on a slice of MR (``--examples``) so that it ends within minutes on two cores:
its accuracies are those of a demo-size run, not the full ones (``benchmarks/accuracy.py``).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

from canao.errors import UsageError

SENTENCES = (
    "a gorgeous , witty , seductive movie .",
    "the plot is nothing but boilerplate clichés from start to finish .",
    "an uneven but often affecting portrait of a family in crisis .",
)


def _complete(path: Path, marker: str) -> bool:
    return (path / marker).is_file()


def cmd_demo(args: argparse.Namespace) -> int:
    from canao.cli import DEFAULT_ROOT, main

    out = Path(args.out)
    if args.fresh and out.exists():
        out = out.with_name(f"{out.name}-{time.strftime('%Y%m%dT%H%M%S')}")
    out.mkdir(parents=True, exist_ok=True)
    n = args.examples
    pred = out / "predictor-tvm"
    teacher, elastic = out / "teacher", out / "elastic"
    search = out / "search"
    finalist = search / "finalists" / "finalist-00.json"
    distilled = out / "distilled" / "finalist-00"
    compiled = out / "compiled" / "finalist-00"
    train = ["--limit", str(n), "--epochs", "1"]
    budget: dict[str, float] = {}

    def set_budget() -> int:
        from canao.predictors.predictor import LatencyPredictor
        from canao.space import ArchSpec

        p = LatencyPredictor.load(pred)
        base_ms = p.predict_arch(ArchSpec.named("minilm-l6-h384", seq_len=128), 2)
        budget["ms"] = round(base_ms / args.speedup, 3)
        print(
            f"MiniLM-L6 (the base) predicted at {base_ms:.2f} ms with tuned TVM; budget = base / "
            f"{args.speedup:g} = {budget['ms']} ms"
        )
        return 0

    def verify() -> int:
        from canao.profiling.farm import LocalFarm

        with LocalFarm("demo-board", out / "farm") as farm:
            print(f"RPC tracker on {farm.tracker}, a server registered as 'demo-board'")
            return main(
                [
                    "verify", str(compiled), "--predictor", str(pred), "--rpc-tracker",
                    farm.tracker, "--rpc-key", "demo-board", "--local-baselines",
                    "--references", "bert-base,minilm-l6-h384", "--out", str(out / "verify"),
                ]
            )  # fmt: skip

    steps: list[tuple[str, list[str] | Callable[[], int], Path | None]] = [
        ("the shipped latency datasets", ["dataset", "info", str(DEFAULT_ROOT)], None),
        (
            "train the tuned-TVM latency predictor on the shipped dataset",
            ["train", "--backend", "tvm", "--out", str(pred), "--overwrite"],
            None,
        ),
        ("the latency budget", set_budget, None),
        (
            f"fine-tune the teacher on {n} MR sentences (demo-size)",
            ["compress", "finetune", "--task", "mr", "--out", str(teacher), *train],
            teacher / "meta.json",
        ),
        (
            "importance and rewiring: the teacher as an elastic base",
            [
                "compress",
                "rewire",
                "--teacher",
                str(teacher),
                "--out",
                str(elastic),
                "--examples",
                "512",
            ],  # fmt: skip
            elastic / "meta.json",
        ),
        (
            f"search {args.trials} sub-networks under the budget (inherited dev accuracy)",
            lambda: main(
                [
                    "search",
                    "--predictor",
                    str(pred),
                    "--budget-ms",
                    str(budget["ms"]),
                    "--task",
                    "mr",
                    "--accuracy",
                    "inherited",
                    "--elastic",
                    str(elastic),
                    "--trials",
                    str(args.trials),
                    "--top-k",
                    "3",
                    "--out",
                    str(search),
                ]
            ),  # fmt: skip
            None,
        ),
        (
            "distil the top finalist from the teacher (short)",
            [
                "compress",
                "distill",
                "--arch",
                str(finalist),
                "--elastic",
                str(elastic),
                "--teacher",
                str(teacher),
                "--out",
                str(distilled),
                *train,
            ],  # fmt: skip
            distilled / "meta.json",
        ),
        (
            "compile it with TVM from the tuning database (+ ONNX export)",
            ["compile", str(distilled), "--out", str(compiled), "--overwrite"],
            None,
        ),
        ("verify on the device through the RPC tracker", verify, None),
        (
            "report",
            [
                "report",
                "--verify",
                str(out / "verify"),
                "--search",
                str(search),
                "--out",
                str(out / "report"),
            ],  # fmt: skip
            None,
        ),
        (
            "classify sentences with the compiled finalist",
            ["classify", "--model", str(compiled), *SENTENCES],
            None,
        ),  # fmt: skip
    ]
    t0 = time.perf_counter()
    for i, (title, step, done) in enumerate(steps, 1):
        shown = "canao " + " ".join(step) if isinstance(step, list) else ""
        print(f"\n== [{i}/{len(steps)}] {title}" + (f": {shown}" if shown else ""), flush=True)
        if done is not None and done.is_file():
            print(f"(complete: reusing {done.parent})")
            continue
        rc = main(step) if isinstance(step, list) else step()
        sys.stdout.flush()
        if rc:
            print(f"canao demo: step {i} failed (exit {rc})", file=sys.stderr)
            return rc
    summary = {"out": str(out), "minutes": round((time.perf_counter() - t0) / 60, 1)}
    (out / "demo.json").write_text(json.dumps(summary) + "\n")
    print(
        f"\ncanao demo: done in {summary['minutes']} min; the report is "
        f"{out / 'report' / 'report.md'}"
    )
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="run the whole pipeline on the built-in defaults")
    p.add_argument("--out", default="runs/demo", help="where the demo writes")
    p.add_argument("--examples", type=int, default=3000, help="MR training sentences used")
    p.add_argument("--trials", type=int, default=60, help="search trials")
    p.add_argument("--speedup", type=float, default=3.0, help="budget = base latency / this")
    p.add_argument("--fresh", action="store_true", help="start over in a new folder")
    p.set_defaults(func=cmd_demo)


__all__ = ["UsageError", "add_parser", "cmd_demo"]
