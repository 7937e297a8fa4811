"""``inference-scale distill``: a student trained with and without distillation from a teacher."""

from __future__ import annotations

import argparse
import dataclasses
from typing import Any

from inference_scale.atomic import check_output_path
from inference_scale.cli.args import add_parser
from inference_scale.options import POSITIVE_INT, number
from inference_scale.techniques.distill_config import MAX_TEMPERATURE, DistillConfig

__all__ = ["add", "run"]


def run(args: argparse.Namespace) -> int:
    from inference_scale.atomic import write_json_atomic
    from inference_scale.reporting.table import render
    from inference_scale.techniques.distill import check_distillation, run_distillation

    # Everything that can be wrong is checked before minutes of training: names, numbers, the
    # output path, the cache folder, the dataset's folder and the train fraction against it.
    if args.json:
        check_output_path(args.json, what="--json")
    config = DistillConfig(
        dataset=args.dataset, student=args.student, teacher=args.teacher, train_fraction=args.train_fraction,
        seeds=args.seeds, temperature=args.temperature, alpha=args.alpha, student_epochs=args.epochs,
        teacher_epochs=args.teacher_epochs, cache_dir=None if args.no_cache else args.cache_dir, root=args.root,
    )  # fmt: skip
    check_distillation(config)
    result = run_distillation(config, progress=not args.quiet)
    rows = []
    for key, name in (("teacher", args.teacher), ("student_ce", args.student), ("student_kd", args.student)):
        r = result[key]
        wins = f"{r['wins']}/{args.seeds}" if key == "student_kd" else "-"
        rows.append([
            name, key, f"{r['accuracy_mean']:.2%} +- {r['accuracy_std']:.2%}", wins, f"{r['params']:,}",
            f"{r['macs']:,}", f"{r['latency_ms_b1']:.3f}",
        ])  # fmt: skip
    columns = ("model", "role", "accuracy (mean +- std)", "wins", "params", "MACs", "latency b1 (ms)")
    title = f"distillation on {args.dataset}, train fraction {args.train_fraction}, {args.seeds} seeds"
    print(render(columns, rows, title=title, left=("model", "role")))
    gain = result["student_kd"]["accuracy_mean"] - result["student_ce"]["accuracy_mean"]
    print(f"KD - CE: {gain * 100:+.2f} points, KD wins {result['student_kd']['wins']}/{args.seeds} seeds")
    if args.json:
        write_json_atomic(result, args.json)
        print(f"wrote {args.json}")
    return 0


def add(sub: Any) -> None:
    p = add_parser(sub, "distill", help="train a student with and without knowledge distillation from a teacher")
    # The defaults live in the config, once (read off its fields: building one checks the dataset)
    d = argparse.Namespace(**{f.name: f.default for f in dataclasses.fields(DistillConfig)})
    p.add_argument("--dataset", default=d.dataset, choices=("mnist", "digits", "cifar10", "hf"))
    p.add_argument(
        "--root", metavar="DIR", help="folder of --dataset cifar10 (cifar-10-batches-py) or hf (save_to_disk)"
    )
    p.add_argument("--student", default=d.student)
    p.add_argument("--teacher", default=d.teacher)
    p.add_argument(
        "--train-fraction", type=number(float, low=0, high=1, low_open=True), default=d.train_fraction,
        help="share of the training split the students see, in (0, 1]",
    )  # fmt: skip
    p.add_argument("--seeds", type=POSITIVE_INT, default=d.seeds)
    p.add_argument(
        "--temperature", type=number(float, low=0, low_open=True, high=MAX_TEMPERATURE), default=d.temperature,
        help=f"softmax temperature T in (0, {MAX_TEMPERATURE:g}] (default %(default)s)",
    )  # fmt: skip
    p.add_argument(
        "--alpha", type=number(float, low=0, high=1), default=d.alpha, help="weight of the soft (teacher) term"
    )
    p.add_argument("--epochs", type=POSITIVE_INT, default=d.student_epochs, help="student epochs")
    p.add_argument("--teacher-epochs", type=POSITIVE_INT, default=d.teacher_epochs)
    p.add_argument("--cache-dir", default=d.cache_dir, help="where teacher logits are cached")
    p.add_argument("--no-cache", action="store_true", help="do not read or write the teacher-logit cache")
    p.add_argument("--json", metavar="FILE", help="also write the results as JSON (atomically)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=run)
