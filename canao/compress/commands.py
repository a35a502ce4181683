"""``canao compress ...``: task data, teacher, rewiring, supernet, distillation, evaluation.

Default folders (all under ``runs/compress/<task>/``): ``teacher`` (fine-tuned base),
``elastic`` (rewired teacher + layer order), ``supernet`` (the elastic base after supernet
training), ``distilled/<name>`` (a distilled finalist).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from canao.errors import UsageError


def _task(name: str) -> Any:
    from canao.compress.data import DataError, load_task

    try:
        return load_task(name)
    except DataError as e:
        raise UsageError(str(e)) from None


def _train_config(args: argparse.Namespace, **defaults: Any) -> Any:
    from canao.compress.train import TrainConfig

    values = {
        k: getattr(args, k)
        for k in ("epochs", "lr", "batch_size", "max_length", "seed", "limit", "save_every")
        if getattr(args, k, None) is not None
    }
    try:
        return TrainConfig(**{**defaults, **values})
    except ValueError as e:
        raise UsageError(str(e)) from None


def _default(args: argparse.Namespace, value: str | None, what: str) -> Path:
    from canao.compress.teacher import default_dir

    return Path(value) if value else default_dir(args.task, what)


def _elastic_default(args: argparse.Namespace) -> Path:
    """The supernet-trained base if there is one, else the rewired teacher."""
    if args.elastic:
        return Path(args.elastic)
    from canao.compress.checkpoint import is_model_dir

    supernet = _default(args, None, "supernet")
    return supernet if is_model_dir(supernet) else _default(args, None, "elastic")


def _report(
    args: argparse.Namespace, meta: dict[str, Any], out: Path, keys: tuple[str, ...]
) -> int:
    if getattr(args, "json", False):
        print(json.dumps({"out": str(out), **meta}))
    else:
        shown = ", ".join(f"{k} {meta[k]:.4f}" for k in keys if isinstance(meta.get(k), float))
        print(f"wrote {out}" + (f": {shown}" if shown else ""))
    return 0


def _run(fn: Any, *a: Any, **kw: Any) -> Any:
    from canao.compress.checkpoint import CheckpointError
    from canao.compress.pretrained import PretrainedError
    from canao.space import SpecError

    try:
        return fn(*a, **kw)
    except (FileExistsError, CheckpointError, PretrainedError, SpecError, ValueError) as e:
        raise UsageError(str(e)) from None


def cmd_data(args: argparse.Namespace) -> int:
    from canao.compress.data import TASKS, data_dir

    rows = []
    for name in args.tasks or list(TASKS):
        t = _task(name)
        rows.append(
            {
                "task": name,
                "description": TASKS[name].description,
                "labels": list(t.label_names),
                "train": len(t.train),
                "dev": len(t.dev),
                "test": len(t.test),
            }
        )
    if args.json:
        print(json.dumps({"data_dir": str(data_dir()), "tasks": rows}))
        return 0
    print(f"archives: {data_dir()}")
    for r in rows:
        print(
            f"  {r['task']:<7} {r['train']:>6} train {r['dev']:>5} dev {r['test']:>5} test"
            f"  {r['description']} ({', '.join(r['labels'])})"
        )
    return 0


def cmd_finetune(args: argparse.Namespace) -> int:
    from canao.compress.teacher import finetune

    task = _task(args.task)
    out = _default(args, args.out, "teacher")
    meta = _run(finetune, task, out, _train_config(args), overwrite=args.overwrite)
    return _report(args, meta, out, ("dev_accuracy", "test_accuracy"))


def cmd_rewire(args: argparse.Namespace) -> int:
    from canao.compress.elastic import make_elastic

    task = _task(args.task)
    out = _default(args, args.out, "elastic")
    teacher = _default(args, args.teacher, "teacher")
    elastic = _run(
        make_elastic, teacher, task, out, args.examples, args.max_length, overwrite=args.overwrite
    )
    order = ", ".join(str(i) for i in elastic.layer_order)
    print(f"wrote {out}: layers by importance {order}", file=sys.stderr)
    return _report(args, elastic.meta, out, ())


def _teacher_of(elastic: Any, given: str | None) -> Any:
    from canao.compress.checkpoint import load_model

    path = Path(given) if given else Path(elastic.meta.get("teacher", ""))
    return _run(load_model, path)[0]


def cmd_supernet(args: argparse.Namespace) -> int:
    from canao.compress.distill import DistillConfig, train_supernet
    from canao.compress.elastic import ElasticBase

    task = _task(args.task)
    src = _default(args, args.elastic, "elastic")
    elastic = _run(ElasticBase.load, src)
    teacher = _teacher_of(elastic, args.teacher)
    out = _default(args, args.out, "supernet")
    dcfg = _run(DistillConfig, random_subnets=args.random_subnets, min_layers=args.min_layers)
    cfg = _train_config(args, epochs=1.0)
    meta = _run(train_supernet, elastic, teacher, task, out, cfg, dcfg, overwrite=args.overwrite)
    return _report(args, meta, out, ("full_dev_accuracy", "smallest_dev_accuracy"))


def _arch(value: str) -> Any:
    from canao.space import SpecError, load_arch

    try:
        return load_arch(value)
    except (SpecError, OSError, ValueError) as e:
        raise UsageError(str(e)) from None


def cmd_distill(args: argparse.Namespace) -> int:
    from canao.compress.distill import DistillConfig, distill_finalist
    from canao.compress.elastic import ElasticBase

    task = _task(args.task)
    arch = _arch(args.arch)
    elastic = _run(ElasticBase.load, _elastic_default(args))
    _run(elastic.check, arch)
    teacher = _teacher_of(elastic, args.teacher)
    name = arch.name or Path(args.arch).stem
    out = Path(args.out) if args.out else _default(args, None, "distilled") / name
    dcfg = _run(DistillConfig, temperature=args.temperature, hidden_weight=args.hidden_weight)
    cfg = _train_config(args, epochs=2.0)
    meta = _run(distill_finalist, elastic, teacher, arch, task, out, cfg, dcfg, args.overwrite)
    return _report(args, meta, out, ("inherited_dev_accuracy", "dev_accuracy", "test_accuracy"))


def cmd_accuracy(args: argparse.Namespace) -> int:
    """Accuracy of a model folder, or the inherited accuracy of an ArchSpec."""
    from canao.compress.checkpoint import load_model
    from canao.compress.elastic import ElasticBase
    from canao.compress.pretrained import load_tokenizer
    from canao.compress.train import accuracy, encode_split

    task = _task(args.task)
    tok = load_tokenizer()
    if args.model:
        model, meta = _run(load_model, Path(args.model))
        max_length = int(meta.get("train", {}).get("max_length", 64))
        what = str(args.model)
    else:
        if not args.arch:
            raise UsageError("give --model DIR (a trained model) or --arch (inherited weights)")
        elastic = _run(ElasticBase.load, _elastic_default(args))
        arch = _arch(args.arch)
        model = _run(elastic.extract, arch)
        max_length = int(elastic.meta.get("max_length", 64))
        what = f"{arch.name or args.arch} inherited from {_elastic_default(args)}"
    acc = accuracy(model, encode_split(tok, task.split(args.split), max_length))
    result = {
        "model": what,
        "task": task.name,
        "split": args.split,
        "accuracy": acc,
        "flops": model.spec.flops,
        "params": model.spec.params,
    }
    if args.json:
        print(json.dumps(result))
    else:
        print(f"{what}: {task.name} {args.split} accuracy {acc:.4f}")
    return 0


def _train_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--epochs", type=float)
    p.add_argument("--lr", type=float)
    p.add_argument("--batch-size", type=int)
    p.add_argument("--max-length", type=int)
    p.add_argument("--seed", type=int)
    p.add_argument("--limit", type=int, help="use only the first N training examples")
    p.add_argument("--save-every", type=int, help="steps between resumable saves")
    p.add_argument("--overwrite", action="store_true", help="replace a finished output folder")
    p.add_argument("--json", action="store_true")


def add_parser(sub: Any) -> None:
    from canao.compress.data import TASKS

    tasks = tuple(TASKS)
    p = sub.add_parser("compress", help="task data, teacher, elastic sub-networks, distillation")
    csub = p.add_subparsers(dest="compress_command", required=True)

    c = csub.add_parser("data", help="the task datasets and their splits")
    c.add_argument("tasks", nargs="*", choices=(*tasks, []), metavar="TASK")
    c.add_argument("--json", action="store_true")
    c.set_defaults(func=cmd_data)

    c = csub.add_parser("finetune", help="fine-tune the pretrained base on a task (the teacher)")
    c.add_argument("--task", choices=tasks, default="mr")
    c.add_argument("--out", help="model folder (default runs/compress/TASK/teacher)")
    _train_args(c)
    c.set_defaults(func=cmd_finetune)

    c = csub.add_parser("rewire", help="importance + rewiring: the teacher as an elastic base")
    c.add_argument("--task", choices=tasks, default="mr")
    c.add_argument("--teacher", help="teacher folder (default runs/compress/TASK/teacher)")
    c.add_argument("--out", help="default runs/compress/TASK/elastic")
    c.add_argument("--examples", type=int, default=2048, help="training examples for importance")
    c.add_argument("--max-length", type=int, default=64)
    c.add_argument("--overwrite", action="store_true")
    c.add_argument("--json", action="store_true")
    c.set_defaults(func=cmd_rewire)

    c = csub.add_parser("supernet", help="DynaBERT-style training of all sub-networks at once")
    c.add_argument("--task", choices=tasks, default="mr")
    c.add_argument("--elastic", help="elastic base (default runs/compress/TASK/elastic)")
    c.add_argument("--teacher", help="default: the teacher the elastic base came from")
    c.add_argument("--out", help="default runs/compress/TASK/supernet")
    c.add_argument("--random-subnets", type=int, default=2)
    c.add_argument("--min-layers", type=int, default=1)
    _train_args(c)
    c.set_defaults(func=cmd_supernet)

    c = csub.add_parser("distill", help="distil one architecture from the teacher")
    c.add_argument("--arch", required=True, help="ArchSpec JSON file or a known name")
    c.add_argument("--task", choices=tasks, default="mr")
    c.add_argument("--elastic", help="default: runs/compress/TASK/supernet, else .../elastic")
    c.add_argument("--teacher", help="default: the teacher the elastic base came from")
    c.add_argument("--out", help="default runs/compress/TASK/distilled/NAME")
    c.add_argument("--temperature", type=float, default=2.0)
    c.add_argument("--hidden-weight", type=float, default=1.0)
    _train_args(c)
    c.set_defaults(func=cmd_distill)

    c = csub.add_parser("accuracy", help="accuracy of a model folder or of inherited weights")
    c.add_argument("--task", choices=tasks, default="mr")
    c.add_argument("--model", help="a model folder (teacher, distilled)")
    c.add_argument("--arch", help="an ArchSpec: its accuracy with inherited weights")
    c.add_argument("--elastic", help="default: runs/compress/TASK/supernet, else .../elastic")
    c.add_argument("--split", choices=("train", "dev", "test"), default="dev")
    c.add_argument("--json", action="store_true")
    c.set_defaults(func=cmd_accuracy)
