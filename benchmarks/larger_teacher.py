"""Does a larger teacher help distillation? all-mpnet-base-v2 (110M) against the MiniLM-L6 one.

    make mpnet && .venv/bin/python benchmarks/larger_teacher.py [--task mr] [--arch L5-H2 ...]

1. Fine-tunes all-mpnet-base-v2 on the task (lr 2e-5, 2 epochs, batch 32, max length 64;
   resumable, runs/compress/TASK/teacher-mpnet/) and scores every split with it once.
2. Distils each sub-network (default: the finalists of benchmarks/accuracy.py, which must have
   run: their folders in runs/compress/TASK/distilled/ give the architecture and the reference)
   from the same elastic base as benchmarks/accuracy.py did, with the same training settings,
   two more ways: from the MiniLM teacher by logits only, and from MPNet by logits only (its
   tokens and layers differ from the student's, so no hidden-state term). The third recipe,
   MiniLM logits + hidden states, is the benchmarks/accuracy.py result.
3. Writes benchmarks/results/larger-teacher.md. Resumable: every model folder is reused.

About 70 minutes on 2 cores (the MPNet fine-tuning is most of it); minutes on a GPU.
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path

import numpy as np
import torch

from canao.compress.checkpoint import is_model_dir, load_model
from canao.compress.data import load_task
from canao.compress.distill import DistillConfig, distill_finalist
from canao.compress.elastic import ElasticBase
from canao.compress.larger_teacher import (
    LogitTeacher,
    assemble,
    finetune_larger,
    split_logits,
)
from canao.compress.pretrained import load_tokenizer
from canao.compress.teacher import default_dir
from canao.compress.train import TrainConfig, encode_split

OUT = Path(__file__).parent / "results" / "larger-teacher.md"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--task", default="mr")
    ap.add_argument("--arch", action="append", help="distilled sub-network names (repeatable)")
    ap.add_argument("--epochs", type=float, default=2.0, help="MPNet fine-tuning epochs")
    ap.add_argument("--lr", type=float, default=2e-5, help="MPNet fine-tuning learning rate")
    ap.add_argument("--limit", type=int, default=None, help="first N training texts (quick runs)")
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()
    torch.set_num_threads(min(torch.get_num_threads(), 16))
    runs = default_dir(args.task, "")
    names = args.arch or ["L5-H2", "L6-H4-third"]
    refs = {n: runs / "distilled" / n for n in names}
    for path in refs.values():
        if not is_model_dir(path):
            raise SystemExit(f"{path} is missing: run benchmarks/accuracy.py first (or --arch)")
    task = load_task(args.task)
    if args.limit:
        task = dataclasses.replace(task, train=task.train.head(args.limit))
    tag = "" if args.limit is None else f"-limit{args.limit}"
    if args.limit and args.out == OUT:  # a quick run never replaces the reported results
        args.out = runs / f"larger-teacher{tag}.md"

    t0 = time.perf_counter()
    folder = assemble()
    mcfg = TrainConfig(epochs=args.epochs, lr=args.lr, limit=None)
    mpnet_out = runs / f"teacher-mpnet{tag}"
    mmeta = finetune_larger(task, folder, mpnet_out, mcfg)
    print(f"MPNet teacher: dev {mmeta['dev_accuracy']:.2%}, test {mmeta['test_accuracy']:.2%}")
    teacher, tmeta = load_model(default_dir(args.task, "teacher"))
    supernet, rewired = default_dir(args.task, "supernet"), default_dir(args.task, "elastic")
    source = ElasticBase.load(supernet if is_model_dir(supernet) else rewired)

    logits = split_logits(mpnet_out, "train")
    rows = []
    for n, ref in refs.items():
        student, rmeta = load_model(ref)
        arch = student.spec
        cfg = TrainConfig(**{**rmeta["train"], "limit": args.limit})
        enc = encode_split(load_tokenizer(), task.train, cfg.max_length)
        recipes = {
            "minilm-logits": (teacher, DistillConfig(hidden_weight=0.0)),
            "mpnet-logits": (LogitTeacher(enc, logits), DistillConfig(hidden_weight=0.0)),
        }
        row = {"name": n, "flops_ratio": arch.flops / source.spec.flops}
        row["minilm-hidden"] = rmeta["test_accuracy"] if args.limit is None else float("nan")
        for r, (t, dcfg) in recipes.items():
            out = runs / "distilled-teachers" / f"{n}-{r}{tag}"
            if not is_model_dir(out):
                print(f"distilling {n} ({r})")
                distill_finalist(source, t, arch, task, out, cfg, dcfg)
            row[r] = load_model(out)[1]["test_accuracy"]
        rows.append(row)
    write(args, tmeta, mmeta, rows, len(task.test), time.perf_counter() - t0)


def write(args, tmeta: dict, mmeta: dict, rows: list[dict], n_test: int, seconds: float) -> None:
    acc = float(np.nanmean([r["mpnet-logits"] for r in rows]))
    se = 100 * (acc * (1 - acc) / n_test) ** 0.5  # binomial standard error of one accuracy
    lines = [
        f"# Larger teacher ({args.task}): all-mpnet-base-v2 vs MiniLM-L6",
        "",
        "`.venv/bin/python benchmarks/larger_teacher.py` (after `make mpnet` and "
        "benchmarks/accuracy.py). Test accuracy; every student starts from the same elastic base "
        "and trains with the same settings; only the teacher and the loss differ.",
        "",
        "| teacher | parameters | dev | test | fine-tuning |",
        "|---|---:|---:|---:|---|",
        f"| MiniLM-L6 (canao compress finetune) | 22.7M | {tmeta['dev_accuracy']:.2%} "
        f"| {tmeta['test_accuracy']:.2%} | {tmeta['train']['epochs']:g} epochs, lr "
        f"{tmeta['train']['lr']:g} |",
        f"| all-mpnet-base-v2 | {mmeta['params'] / 1e6:.1f}M | {mmeta['dev_accuracy']:.2%} "
        f"| {mmeta['test_accuracy']:.2%} | {mmeta['train']['epochs']:g} epochs, lr "
        f"{mmeta['train']['lr']:g}, {mmeta['train_s'] / 60:.0f} min |",
        "",
        "| student | FLOPs vs base | MiniLM logits + hidden | MiniLM logits | MPNet logits "
        "| MPNet vs MiniLM logits |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['name']} | {r['flops_ratio']:.2f} | {r['minilm-hidden']:.2%} "
            f"| {r['minilm-logits']:.2%} | {r['mpnet-logits']:.2%} "
            f"| {100 * (r['mpnet-logits'] - r['minilm-logits']):+.2f} pt |"
        )
    lines += [
        "",
        f"{n_test} test sentences: one standard error of a test accuracy is about {se:.1f} pt, "
        f"so differences between students below about {2 * se:.1f} pt are within noise.",
        "",
        f"Wall time of this run: {seconds / 60:.0f} min (models already there are reused).",
        "",
    ]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
