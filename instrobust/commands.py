"""Small `instrobust` subcommands: tasks-path, list, render."""
from __future__ import annotations

import argparse
import sys

from instrobust.errors import InstrobustError
from instrobust.paths import tasks_path  # noqa: F401  (re-exported: `instrobust tasks-path` prints it)


def _list(args) -> int:
    from instrobust.bank import InstructionBank

    if args.collection == "paper":  # the authors' own set, for every benchmark, counted per benchmark
        from instrobust.paper.listing import print_paper

        return print_paper()
    bank = InstructionBank.load(args.benchmark, observed=not args.unobserved_only)
    rows = bank.select(collection=args.collection) if args.collection else list(bank)
    for ins in rows:
        prov = ins.provenance
        where = prov.get("file") or prov.get("source")
        extra = f" {prov['key']}" if "key" in prov else f" {prov.get('template_name', '')}".rstrip()
        print(f"{ins.id}\t{ins.collection}\t{where}{extra}")
    counts = {}
    for ins in bank:
        counts[ins.collection] = counts.get(ins.collection, 0) + 1
    print(f"# {len(bank)} instructions: " + ", ".join(f"{c}={n}" for c, n in counts.items()), file=sys.stderr)
    from instrobust.mmlu.instructions import planned_ids

    planned = planned_ids(args.benchmark)
    for key, why in bank.skipped.items():  # a whole collection, or one instruction id
        ids = planned.get(key)
        what = f"{key} ({ids[0]} .. {ids[-1]}, {len(ids)} instructions)" if ids else key
        print(f"# skipped {what}: {why}", file=sys.stderr)
    return 0


def _render(args) -> int:
    from instrobust.harness import instruction
    from instrobust.bank import render
    from instrobust.mmlu.data import mmlu_split

    if args.choices or args.task:  # the scored choices (instrobust.answers), MMLU or BBL
        from instrobust.harness import preview

        prompt, choices, space = preview(args.instruction, args.index, args.split, args.task)
        print(prompt)
        if args.choices:
            print(f"# scored choices ({space.describe()}; {space.rule}): " + " | ".join(choices))
        return 0
    ins = instruction(args.instruction)  # an unknown id fails before any data is looked for
    rows = mmlu_split(args.split)
    if not 0 <= args.index < len(rows):
        raise InstrobustError(f"--index {args.index} is outside the {args.split} split (0..{len(rows) - 1})")
    print(render(ins, rows[args.index]))
    return 0


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="instrobust")
    sub = ap.add_subparsers(dest="command", required=True)
    sub.add_parser("tasks-path", help="print the task YAML folder for lm_eval --include_path")
    p = sub.add_parser("list", help="list instructions")
    p.add_argument("--benchmark", default="mmlu")
    p.add_argument("--collection", choices=["flan2022", "alpaca", "p3", "unobserved", "paper"])
    p.add_argument("--unobserved-only", action="store_true", help="do not load upstream sources")
    p = sub.add_parser("render", help="render one MMLU question with an instruction")
    p.add_argument("instruction", help="instruction id, e.g. mmlu_unobs_07 or mmlu_obs_flan2022_12")
    p.add_argument("--index", type=int, default=0, help="question index in the pool")
    p.add_argument("--split", default="test", choices=["test", "dev", "val"])
    p.add_argument("--choices", action="store_true", help="also print the choices that will be scored")
    p.add_argument("--task", help="BIG-bench Lite task, for a bbl_ instruction shared by a task type")
    args = ap.parse_args(argv)
    try:
        if args.command == "tasks-path":
            print(tasks_path())
            return 0
        return {"list": _list, "render": _render}[args.command](args)
    except InstrobustError as exc:
        print(f"instrobust: error: {exc}", file=sys.stderr)
        return 2
