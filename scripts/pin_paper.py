"""Write templates/observed/paper.yaml: the pins of the paper collection (no upstream text).

Run by a maintainer against the offline copy of InstructionEval at the pinned commit:

    INSTROBUST_DATA_DIR=../shared/data python scripts/pin_paper.py

It records, for each set of instructions, the config file and class, every method or list
entry we read with the sha256 of its text, the helpers that format them (sha256 of their
source), and the methods we refuse with the reason. Only names, numbers and hashes are written.
"""
from __future__ import annotations

import ast
import sys
from pathlib import Path

import yaml

from instrobust.bbl import TASKS
from instrobust.errors import DataError, TemplateRenderError
from instrobust.paper import configs, formats, load
from instrobust.paper.rebuild import rebuilt_prompt
from instrobust.paper.ids import ADV_FILES, BBL_FILES, MMLU_SETS, make_id
from instrobust.upstream.sources import data_dir_from_env, sha256_file, sha256_text

PREPROCESSOR = "configs/preprocessor.py"


def first_class(path: Path) -> str:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return next(n.name for n in tree.body if isinstance(n, ast.ClassDef))


def helper_ref(root: Path, rel: str, cls: str, name: str) -> dict:
    """Where ``self.<name>`` is defined: the class itself, else their base Preprocessor."""
    try:
        configs.find_method(root / rel, cls, name)
    except DataError:
        rel, cls = PREPROCESSOR, "Preprocessor"
    return {"file": rel, "class": cls, "method": name,
            "sha256": sha256_text(configs.source_of(root / rel, cls, name))}


def task_classes(task: str | None) -> tuple[str, ...]:
    """A BBL classification task's classes (BIG-bench target_scores keys), for literal label lists."""
    if task is None or TASKS[task].task_type == "qa":
        return ()
    from instrobust.bbl.data import bbl_pool

    return tuple(dict.fromkeys(c for d in bbl_pool(task).test for c in d["choices"]))


def other_shapes(root: Path, rel: str, cls: str, method: str, first_error: Exception):
    """("inline", ...) for a method formatting its own literal, ("rebuilt", ...) for one handing a
    rebuilt item to a helper; the first refusal when it is neither."""
    try:
        prompt, plan = load.inline_prompt(root / rel, cls, method)
        return "inline", prompt, plan, None
    except configs.Unreadable:
        pass
    try:
        prompt = rebuilt_prompt(root / rel, cls, method)
    except configs.Unreadable:
        raise first_error from None
    ref = helper_ref(root, rel, cls, prompt.helper)
    return "rebuilt", prompt, formats.read_helper(root / ref["file"], ref["class"], prompt.helper), ref


def method_block(root: Path, rel: str, methods: list[tuple[str, str]], set_name: str,
                 task: str | None) -> tuple[dict, set[str]]:
    cls = first_class(root / rel)
    block = {"file": rel, "class": cls, "helpers": {}, "methods": [], "refused": []}
    used, classes = {rel}, task_classes(task)
    kw = dict(benchmark="mmlu", task_type="qa", question_var="question") if task is None else \
        dict(benchmark="bbl", task_type=TASKS[task].task_type, question_var="input", bbl_task=task)
    for method, their_id in methods:
        iid = make_id("bbl" if task else "mmlu", set_name, int(method.removeprefix("unobserved")), task)
        where = f"{rel}: {cls}.{method}"
        try:
            try:
                prompt = configs.method_prompt(root / rel, cls, method)
            except configs.Unreadable as not_helper_shaped:
                kind, prompt, plan, ref = other_shapes(root, rel, cls, method, not_helper_shaped)
                load.build(prompt, plan, iid, provenance={}, where=where, classes=classes, **kw)
                if plan.label_list or prompt.label_list:  # their words are mapped onto the task's classes
                    block["classes"] = list(classes)
                if ref:
                    block["helpers"][prompt.helper] = ref
                    used.add(ref["file"])
                block["methods"].append({"method": method, "their_id": their_id, kind: True,
                                         "sha256": sha256_text(configs.source_of(root / rel, cls, method))})
                continue
            ref = helper_ref(root, rel, cls, prompt.helper)
            plan = formats.read_helper(root / ref["file"], ref["class"], prompt.helper)
            load.build(prompt, plan, iid, provenance={}, where=where, classes=classes, **kw)
            if prompt.relabel:
                block["classes"] = list(classes)
        except (DataError, TemplateRenderError) as exc:
            block["refused"].append({"method": method, "their_id": their_id,
                                     "reason": str(exc).replace(str(root) + "/", "")})
            continue
        block["helpers"][prompt.helper] = ref
        used.add(ref["file"])
        block["methods"].append({"method": method, "their_id": their_id, "sha256": load.piece_digest(prompt)})
    return block, used


def random_block(root: Path, rel: str, task: str) -> dict:
    """Figure 3 "nonsensical": random_instruction_1..5, each one of Preprocessor.RANDOM_INSTRUCTIONS."""
    cls = first_class(root / rel)
    block = {"file": rel, "class": cls, "list_source": {"file": PREPROCESSOR, "class": "Preprocessor"},
             "methods": [], "refused": []}
    for k in range(1, 6):
        method = f"random_instruction_{k}"
        entry = {"method": method, "their_id": f"BBL/Random/{k}"}
        try:
            prompt = configs.concat_prompt(root / rel, cls, method)
            text = configs.class_str_list(root / PREPROCESSOR, "Preprocessor", prompt.list_name)[prompt.index]
            entry["sha256"] = load.random_digest(root / rel, cls, method, text)
            reader = load.Reader(pins={"files": {rel: None, PREPROCESSOR: None}})
            load.random_set(reader, block, make_id("bbl", "nonsensical", k, task), entry, "nonsensical",
                            benchmark="bbl", task_type=TASKS[task].task_type, question_var="input", bbl_task=task)
        except (DataError, TemplateRenderError) as exc:
            block["refused"].append({"method": method, "their_id": entry["their_id"],
                                     "reason": str(exc).replace(str(root) + "/", "")})
            continue
        block["methods"].append(entry)
    return block


def alpaca_methods_block(root: Path, rel: str, cls: str, task: str) -> dict | None:
    """A binary-classification task's alpaca_unobservedN methods, as registered."""
    table = configs.registered_methods(root / rel, cls, "Alpaca/Unobserved/")
    if not table:
        return None
    tpl = "configs/processors/Alpaca_templates.py"
    block = {"file": rel, "class": cls, "wrappers": {}, "classes": list(task_classes(task)), "methods": [], "refused": []}
    for method in ("alpaca_template_with_input", "alpaca_template_without_input"):
        text = configs.format_receiver(root / tpl, "AlpacaTemplates", method, "input_text")
        block["wrappers"][method] = {"file": tpl, "class": "AlpacaTemplates", "method": method,
                                     "target": "input_text", "sha256": sha256_text(text)}
    reader = load.Reader(pins={"files": {rel: None, tpl: None}})
    for their_id, method in table.items():
        n = int(their_id.rsplit("/", 1)[1])
        entry = {"method": method, "their_id": their_id, "n": n,
                 "sha256": sha256_text(configs.source_of(root / rel, cls, method))}
        try:
            load.alpaca_method_set(reader, block, make_id("bbl", "alpaca", n, task), entry, "alpaca", benchmark="bbl",
                                   task_type=TASKS[task].task_type, question_var="input", bbl_task=task)
        except (DataError, TemplateRenderError) as exc:
            block["refused"].append({"method": method, "their_id": their_id, "n": n,
                                     "reason": str(exc).replace(str(root) + "/", "")})
            continue
        block["methods"].append(entry)
    return block


def alpaca_block(root: Path, rel: str, task: str | None = None) -> dict | None:
    cls = first_class(root / rel)
    try:
        items = configs.class_str_list(root / rel, cls, "_UNOBSERVED_ALPACA_INSTRUCTIONS")
    except DataError:
        return alpaca_methods_block(root, rel, cls, task)  # methods of their own, not a list
    tpl = "configs/processors/Alpaca_templates.py"

    def receiver(method, target):
        text = configs.format_receiver(root / tpl, "AlpacaTemplates", method, target)
        return {"file": tpl, "class": "AlpacaTemplates", "method": method, "target": target, "sha256": sha256_text(text)}

    block = {"file": rel, "class": cls, "list": "_UNOBSERVED_ALPACA_INSTRUCTIONS",
             "wrapper": receiver("alpaca_template_with_input", "input_text"),
             "input": receiver("alpaca_multiple_choice", "inputs")}
    if task is None:  # MMLU: their ids Alpaca/Unobserved/N index the list at N - 1
        block["entries"] = [{"index": i, "their_id": f"Alpaca/Unobserved/{i + 1}", "sha256": sha256_text(t)}
                            for i, t in enumerate(items)]
        return block
    # BBL: as their add_unobserved_instructions registers them (Alpaca/Default/1 is the designer's)
    table = configs.registered_list_entries(root / rel, cls, "_UNOBSERVED_ALPACA_INSTRUCTIONS")
    block["entries"] = [{"n": int(their_id.rsplit("/", 1)[1]), "index": i, "their_id": their_id,
                         "sha256": sha256_text(items[i])}
                        for their_id, i in table.items() if their_id.startswith("Alpaca/Unobserved/") and i < len(items)]
    reader = load.Reader(pins={"files": {rel: None, block["wrapper"]["file"]: None}})
    for e in block["entries"]:
        load.alpaca_set(reader, block, make_id("bbl", "alpaca", e["n"], task), e, "alpaca", benchmark="bbl",
                        task_type=TASKS[task].task_type, question_var="input", bbl_task=task)
    return block


def main() -> int:
    data = data_dir_from_env()
    if data is None:
        print("set INSTROBUST_DATA_DIR to a folder holding observed_sources/instructioneval/", file=sys.stderr)
        return 2
    root = data / "observed_sources" / "instructioneval"
    used = {"configs/processors/Alpaca_templates.py"}
    out = {"mmlu": {}, "bbl": {}}
    for name, (rel, count) in MMLU_SETS.items():
        methods = [(f"unobserved{n}", f"MMLU/Unobserved/{n}") for n in range(1, count + 1)]
        out["mmlu"][name], files = method_block(root, rel, methods, name, None)
        used |= files
    out["mmlu"]["alpaca"] = alpaca_block(root, MMLU_SETS["general"][0])
    for task, rel in BBL_FILES.items():
        methods = [(f"unobserved{n}", f"BBL/Unobserved/{n}") for n in range(1, 11)]
        out["bbl"].setdefault(task, {})["unobserved"], files = method_block(root, rel, methods, "unobserved", task)
        used |= files
        alpaca = alpaca_block(root, rel, task)
        if alpaca:
            out["bbl"][task]["alpaca"] = alpaca
    for task, rel in ADV_FILES.items():
        methods = [(f"unobserved{n}", f"BBL/Unobserved/{n}") for n in range(1, 6)]
        out["bbl"].setdefault(task, {})["newly"], files = method_block(root, rel, methods, "newly", task)
        out["bbl"][task]["nonsensical"] = random_block(root, rel, task)
        used |= files | {PREPROCESSOR}
    pins = {"files": {rel: sha256_file(root / rel) for rel in sorted(used)}, **out}
    header = ("# The paper collection: which pieces of the authors' InstructionEval configs we read (pinned\n"
              "# by sha256; their text is read at run time, never stored here). Written by\n"
              "# scripts/pin_paper.py from the offline copy; see docs/paper-collection.md.\n")
    load.SPEC_PATH.write_text(header + yaml.safe_dump(pins, sort_keys=False, width=160, default_flow_style=None), encoding="utf-8")
    n = sum(len(b.get("methods", b.get("entries", []))) for s in out.values() for b in _blocks(s))
    r = sum(len(b.get("refused", [])) for s in out.values() for b in _blocks(s))
    print(f"pinned {n} instructions ({r} refused) from {len(used)} files in {load.SPEC_PATH}")
    return 0


def _blocks(sets: dict):
    for value in sets.values():
        if "file" in value:
            yield value
        else:
            yield from value.values()


if __name__ == "__main__":
    sys.exit(main())
