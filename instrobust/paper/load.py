"""Build the ``paper`` collection from the pins in templates/observed/paper.yaml.

Every file is fetched through :class:`~instrobust.upstream.sources.SourceResolver` (offline directory,
cache, pinned raw URL) and checked against its sha256; every template, Alpaca instruction and
helper we read is checked against its own sha256 before it is used.
"""
from __future__ import annotations

import dataclasses
import functools
from pathlib import Path
from typing import Any

import yaml

from instrobust.errors import ChecksumError, DataError
from instrobust.instruction import Instruction, check_bbl_template, check_qa_template
from instrobust.paths import TEMPLATES_DIR
import instrobust.paper.configs as configs
import instrobust.paper.formats as formats
from instrobust.paper.rebuild import rebuilt_prompt
from instrobust.upstream.references import upstream_files
from instrobust.upstream.sources import OfflineCopy, SourceResolver, UpstreamFile, sha256_text

SPEC_PATH = TEMPLATES_DIR / "observed" / "paper.yaml"
ANCHOR = "instructioneval"  # templates/observed/sources.yaml: repo, commit, licence, offline root


@functools.lru_cache(maxsize=1)
def spec() -> dict[str, Any]:
    if not SPEC_PATH.is_file():
        raise DataError(f"{SPEC_PATH} is missing (the pins of the paper collection)")
    return yaml.safe_load(SPEC_PATH.read_text(encoding="utf-8"))


def piece_digest(prompt: configs.MethodPrompt) -> str:
    """sha256 of one method's text: its template and its question edits."""
    return sha256_text("\x00".join([prompt.template, *[x for edit in prompt.edits for x in edit],
                                    *(prompt.relabel or ()), *prompt.label_list]))


def upstream_file(path: str, sha256: str | None) -> UpstreamFile:
    """One InstructionEval file, pinned like the anchor entry (same repo, commit, offline root)."""
    anchor = upstream_files().get(ANCHOR)
    if anchor is None:
        raise DataError(f"templates/observed/sources.yaml has no {ANCHOR!r} entry (the InstructionEval pin)")
    root = anchor.offline[0].relpath.rsplit("/", 1)[0] if anchor.offline else ANCHOR
    return dataclasses.replace(anchor, name=f"{ANCHOR}:{path}", path=path, fmt="instructioneval_config",
                               sha256=sha256, offline=(OfflineCopy(f"{root}/{path}"),))


class Reader:
    """Fetches pinned files once and reads verified pieces out of them."""

    def __init__(self, resolver: SourceResolver | None = None, pins: dict | None = None):
        self.resolver = resolver or SourceResolver()
        self.files = (pins or spec())["files"]  # relative path -> sha256
        self._copies: dict[str, Path] = {}

    def path(self, rel: str) -> Path:
        if rel not in self._copies:
            if rel not in self.files:
                raise DataError(f"{SPEC_PATH}: file {rel!r} is used but not pinned under files:")
            self._copies[rel] = self.resolver.fetch(upstream_file(rel, self.files[rel])).path
        return self._copies[rel]

    def check(self, text: str, expected: str, what: str) -> None:
        got = sha256_text(text)
        if got != expected:
            raise ChecksumError(f"{what}: sha256 {got}, pinned {expected}: the upstream text changed")

    def helper(self, ref: dict) -> formats.HelperPlan:
        path = self.path(ref["file"])
        where = f"{ref['file']}: {ref['class']}.{ref['method']}"
        self.check(configs.source_of(path, ref["class"], ref["method"]), ref["sha256"], where)
        return formats.read_helper(path, ref["class"], ref["method"])

    def prompt(self, block: dict, entry: dict) -> configs.MethodPrompt:
        path = self.path(block["file"])
        prompt = configs.method_prompt(path, block["class"], entry["method"])
        self.check_piece(prompt, entry["sha256"], f"{block['file']}: {block['class']}.{entry['method']}")
        return prompt

    def check_piece(self, prompt: configs.MethodPrompt, expected: str, what: str) -> None:
        got = piece_digest(prompt)
        if got != expected:
            raise ChecksumError(f"{what}: sha256 {got}, pinned {expected}: the upstream text changed")


def make(answer_space: str, **kw) -> Instruction:
    """A paper Instruction; ``provenance["answer_space"]`` (letters / options, from their helper's
    ``label_space``) is what instrobust.answers scores it on."""
    kw["provenance"] = {**kw["provenance"], "answer_space": answer_space}
    return Instruction(collection="paper", **kw)


def _provenance(reader: Reader, block: dict, **extra) -> dict:
    anchor = upstream_files()[ANCHOR]
    return {"source": f"{anchor.repo}@{anchor.commit[:12]}:{block['file']}", "class": block["class"],
            "read_from": str(reader.path(block["file"])), **extra}


def build(prompt: configs.MethodPrompt, plan: formats.HelperPlan, iid: str, *, benchmark: str, task_type: str,
          question_var: str, provenance: dict, bbl_task: str | None = None, where: str = "",
          classes: tuple[str, ...] = ()) -> Instruction:
    """One ``unobservedN`` method as a checked instruction: it shows the question (or the
    pieces of it the helper splits out) and every option, and never the answer."""
    if prompt.options_override:
        plan = dataclasses.replace(plan, answer_space="options")
    if prompt.fields:  # the helper formats a rebuilt item (instrobust.paper.rebuild)
        plan = dataclasses.replace(plan, fields=dict(prompt.fields))
    if prompt.relabel or prompt.label_list:
        plan = dataclasses.replace(plan, relabel=prompt.relabel, label_list=prompt.label_list, answer_space="labels")
    space = plan.answer_space if plan.answer_space != "labels" else label_space(plan, classes, where)
    template, values = formats.to_jinja(prompt.template, plan, question_var, prompt.edits, where)
    if plan.n_options:
        # Their helper unpacks exactly n options (and fails on other items); a prompt that
        # silently dropped an option would be worse, so rendering another item is an error
        # naming this rule. The harness keeps only fitting items (fitting_items).
        template = (f"{{% if choices | length != {plan.n_options} %}}"
                    f"{{{{ paper_helper_takes_exactly_{plan.n_options}_options }}}}{{% endif %}}" + template)
    prov = dict(provenance)
    if bbl_task:
        prov["bbl_task"] = bbl_task
    if plan.n_options:
        prov["n_options"] = plan.n_options  # their helper unpacks exactly this many options
    ins = make(space, id=iid, benchmark=benchmark, task_type=task_type, template=template,
               values=values, provenance=prov)
    if benchmark == "mmlu":
        check_qa_template(ins)
        return ins
    from instrobust.bbl import task_info

    sentinel, parts = formats.sentinel_input(prompt.template, plan)
    check_bbl_template(ins, task_type, bbl_task, input_text=sentinel, input_parts=parts,
                       option_counts=(plan.n_options,) if plan.n_options else task_info(bbl_task).options)
    return ins


def label_space(plan: formats.HelperPlan, classes: tuple[str, ...], where: str):
    """A literal ``label_space`` of words: the task's own classes (scored on the options), or
    ``answer = WORD if answer == CLASS else OTHER`` (scored on those words, per class)."""
    if not plan.relabel and set(plan.label_list) == set(classes):
        return "options"
    if plan.relabel and plan.relabel[0] in classes and set(plan.label_list) == set(plan.relabel[1:]):
        cls, word, other = plan.relabel
        return {"labels": {c: (word if c == cls else other) for c in classes}}
    raise DataError(f"{where}: its answer words {list(plan.label_list)} do not map onto the task's "
                    f"classes {list(classes)}")


def inline_prompt(path: Path, cls: str, method: str) -> tuple[configs.MethodPrompt, formats.HelperPlan]:
    """A method that formats its own literal (no helper): read like a helper."""
    plan = formats.read_helper(path, cls, method)
    return configs.MethodPrompt(plan.template, method, (), False, configs.find_method(path, cls, method).lineno), plan


def template_set(reader: Reader, block: dict, iid: str, entry: dict, paper_set: str, **kw) -> Instruction:
    """One pinned ``unobservedN`` method (MMLU general/specific, a BBL task, Adv)."""
    if entry.get("inline") or entry.get("rebuilt"):  # pinned by the sha256 of the whole method
        path = reader.path(block["file"])
        reader.check(configs.source_of(path, block["class"], entry["method"]), entry["sha256"],
                     f"{block['file']}: {block['class']}.{entry['method']}")
        if entry.get("rebuilt"):
            prompt = rebuilt_prompt(path, block["class"], entry["method"])
            plan = reader.helper(block["helpers"][prompt.helper])
        else:
            prompt, plan = inline_prompt(path, block["class"], entry["method"])
    else:
        prompt = reader.prompt(block, entry)
        plan = reader.helper(block["helpers"][prompt.helper])
    kw["classes"] = tuple(block.get("classes", ()))
    prov = _provenance(reader, block, set=paper_set, method=entry["method"], their_id=entry.get("their_id"))
    return build(prompt, plan, iid, provenance=prov, where=f"{block['file']}: {block['class']}.{entry['method']}", **kw)


def alpaca_set(reader: Reader, block: dict, iid: str, entry: dict, paper_set: str, *, benchmark: str,
               task_type: str, question_var: str, bbl_task: str | None = None) -> Instruction:
    """One entry of a ``_UNOBSERVED_ALPACA_INSTRUCTIONS`` list in their Alpaca prompt."""
    path = reader.path(block["file"])
    items = configs.class_str_list(path, block["class"], block["list"])
    if entry["index"] >= len(items):
        raise DataError(f"{block['file']}: {block['class']}.{block['list']} has {len(items)} entries, "
                        f"pinned index {entry['index']}")
    instruction = items[entry["index"]]
    reader.check(instruction, entry["sha256"], f"{block['file']}: {block['list']}[{entry['index']}]")
    wrap, inner = block["wrapper"], block["input"]
    wrap_text = configs.format_receiver(reader.path(wrap["file"]), wrap["class"], wrap["method"], wrap["target"])
    inner_text = configs.format_receiver(reader.path(inner["file"]), inner["class"], inner["method"], inner["target"])
    reader.check(wrap_text, wrap["sha256"], f"{wrap['file']}: {wrap['class']}.{wrap['method']}")
    reader.check(inner_text, inner["sha256"], f"{inner['file']}: {inner['class']}.{inner['method']}")
    # alpaca_multiple_choice: "Question: {question}{_options}", _options = "\n(L) text" per option
    inner_plan = formats.HelperPlan("alpaca_multiple_choice", fields={"question": ("item", "question"),
                                                                       "_options": ("loop", "_options")})
    inner_src, inner_values = formats.to_jinja(inner_text, inner_plan, question_var, (), inner["method"],
                                               prefix="paper_input")
    wrap_plan = formats.HelperPlan("alpaca_template_with_input",
                                   fields={"instruction": ("value", "paper_instruction"), "input": ("jinja", inner_src)})
    template, values = formats.to_jinja(wrap_text, wrap_plan, question_var, (), wrap["method"])
    prov = _provenance(reader, block, set=paper_set, list=block["list"], index=entry["index"], their_id=entry.get("their_id"))
    if bbl_task:
        prov["bbl_task"] = bbl_task
    ins = make("letters", id=iid, benchmark=benchmark, task_type=task_type, template=template,
               values={**values, **inner_values, "paper_instruction": instruction}, provenance=prov)
    if benchmark == "mmlu":
        check_qa_template(ins)
    else:
        from instrobust.bbl import task_info

        check_bbl_template(ins, task_type, bbl_task, option_counts=task_info(bbl_task).options)
    return ins


def alpaca_method_set(reader: Reader, block: dict, iid: str, entry: dict, paper_set: str, *, benchmark: str,
                      task_type: str, question_var: str, bbl_task: str) -> Instruction:
    """One ``alpaca_unobservedN`` method of a binary-classification task (instrobust.paper.alpaca)."""
    from instrobust.bbl import task_info
    from instrobust.paper.alpaca import read_alpaca_method

    path = reader.path(block["file"])
    where = f"{block['file']}: {block['class']}.{entry['method']}"
    reader.check(configs.source_of(path, block["class"], entry["method"]), entry["sha256"], where)
    method = read_alpaca_method(path, block["class"], entry["method"])
    wrap = block["wrappers"][method.wrapper]
    wrap_text = configs.format_receiver(reader.path(wrap["file"]), wrap["class"], wrap["method"], wrap["target"])
    reader.check(wrap_text, wrap["sha256"], f"{wrap['file']}: {wrap['class']}.{wrap['method']}")
    plan = method.plan
    space = plan.answer_space if plan.answer_space != "labels" else \
        label_space(plan, tuple(block.get("classes", ())), where)
    slots, values = {}, {}
    for field, text, prefix in (("instruction", method.instruction, "paper_instruction"),
                                ("input", method.inputs, "paper_input")):
        if text is not None:
            source, vals = formats.to_jinja(text, plan, question_var, (), where, prefix=prefix)
            slots[field], values = ("jinja", source), {**values, **vals}
    template, wrap_values = formats.to_jinja(wrap_text, formats.HelperPlan(wrap["method"], fields=slots),
                                             question_var, (), where)
    prov = _provenance(reader, block, set=paper_set, method=entry["method"], their_id=entry.get("their_id"),
                       bbl_task=bbl_task)
    ins = make(space, id=iid, benchmark=benchmark, task_type=task_type, template=template,
               values={**wrap_values, **values}, provenance=prov)
    sentinel, parts = formats.sentinel_input(method.instruction + (method.inputs or ""), plan)
    check_bbl_template(ins, task_type, bbl_task, input_text=sentinel, input_parts=parts,
                       option_counts=task_info(bbl_task).options)
    return ins


def random_digest(path: Path, cls: str, method: str, text: str) -> str:
    """sha256 of a random_instruction method: its source and the list entry it shows."""
    return sha256_text(configs.source_of(path, cls, method) + "\x00" + text)


def random_set(reader: Reader, block: dict, iid: str, entry: dict, paper_set: str, *, benchmark: str,
               task_type: str, question_var: str, bbl_task: str) -> Instruction:
    """A Figure-3 "nonsensical" instruction: one of their RANDOM_INSTRUCTIONS, then the input."""
    from instrobust.bbl import task_info

    path = reader.path(block["file"])
    prompt = configs.concat_prompt(path, block["class"], entry["method"])
    source = block["list_source"]
    items = configs.class_str_list(reader.path(source["file"]), source["class"], prompt.list_name)
    if prompt.index >= len(items):
        raise DataError(f"{block['file']}: {block['class']}.{entry['method']} indexes past {prompt.list_name}")
    text = items[prompt.index]
    got = random_digest(path, block["class"], entry["method"], text)
    if got != entry["sha256"]:
        raise ChecksumError(f"{block['file']}: {block['class']}.{entry['method']}: sha256 {got}, pinned "
                            f"{entry['sha256']}: the upstream text changed")
    out, values = [], {"paper_random": text}
    for kind, literal in prompt.parts:
        if kind == "list":
            out.append("{{ paper_random }}")
        elif kind == "question":
            out.append("{{ " + question_var + " }}")
        else:
            values[f"paper_text{len(values) - 1}"] = literal
            out.append("{{ paper_text" + str(len(values) - 2) + " }}")
    if prompt.options_loop:
        out.append(formats.LOOPS["options_"])
    prov = _provenance(reader, block, set=paper_set, method=entry["method"], their_id=entry.get("their_id"),
                       bbl_task=bbl_task, variant="nonsensical")
    ins = make(prompt.answer_space, id=iid, benchmark=benchmark, task_type=task_type, template="".join(out),
               values=values, provenance=prov)
    check_bbl_template(ins, task_type, bbl_task, option_counts=task_info(bbl_task).options)
    return ins


def fitting_items(ins: Instruction, dataset):
    """The documents of ``dataset`` (a datasets.Dataset) an instruction's helper can format: all
    of them, or only those with exactly ``provenance["n_options"]`` options."""
    n = ins.provenance.get("n_options") if ins.collection == "paper" else None
    if not n:
        return dataset
    return dataset.select([i for i, choices in enumerate(dataset["choices"]) if len(choices) == n])
