"""Observed instructions: assembled at run time from pinned upstream files.

``templates/observed/sources.yaml`` pins each upstream file (repo, commit, path, sha256, offline
copies); ``templates/observed/<benchmark>.yaml`` says which pieces of those files make each
observed instruction, with the sha256 of every piece of text we take. Neither file holds any
upstream text. A collection whose files cannot be had is *skipped* (reported, never faked).
"""
from __future__ import annotations

import functools
import re
from pathlib import Path
from typing import Any

import yaml

import instrobust.parsers as parsers
from instrobust.errors import ChecksumError, DataError, SourceUnavailable
from instrobust.instruction import Instruction, check_qa_template
from instrobust.names import observed_id
from instrobust.paths import TEMPLATES_DIR  # also read from here by scripts/pin_observed.py
from instrobust.sources import OfflineCopy, SourceResolver, UpstreamFile, sha256_text


# How a QA document is shown where an upstream template has a single free-text input slot
# (Flan's natinst {input}, an Alpaca entry's input). Ours; one format for every such template.
QA_INPUT = (
    "{{ question }}\n"
    "{% for l, c in zip(letters, choices) %}({{ l }}) {{ c }}{% if not loop.last %}\n{% endif %}{% endfor %}"
)

# promptsource templates are written against their own datasets' fields. These preludes (ours)
# expose an instrobust QA document under those names. Placeholders that only feed the target
# part (answerKey, label, ...) are fixed to the first option so the prompt never sees the gold.
P3_ADAPTERS = {
    "arc": '{% set choices = {"text": choices, "label": letters} %}{% set answerKey = letters[0] %}',
    "commonsense_qa": '{% set choices = {"text": choices, "label": letters} %}{% set answerKey = letters[0] %}',
    "cos_e": "{% set answer = choices[0] %}",
    "openbookqa": '{% set question_stem = question %}{% set choices = {"text": choices, "label": letters} %}'
                  "{% set answerKey = letters[0] %}",
    "quail": '{% set context = "" %}{% set answers = choices %}{% set correct_answer_id = 0 %}',
    "cosmos_qa": '{% set context = "" %}{% set answer0 = choices[0] %}{% set answer1 = choices[1] %}'
                 "{% set answer2 = choices[2] %}{% set answer3 = choices[3] %}{% set label = 0 %}",
}


# Pinned upstream files: sources.yaml (MMLU and shared) and bbl_sources.yaml (BIG-bench Lite).
SOURCE_FILES = ("sources.yaml", "bbl_sources.yaml")
# Another folder laid out like templates/observed/ (same references, other pins): how the tests
# load their own fixture text on a machine without the real upstream files. Explicit, never
# implied by a data directory, so a data folder cannot change what its own text is checked against.
REFERENCES_ENV = "INSTROBUST_REFERENCES_DIR"


def references_dir() -> Path:
    import os

    value = os.environ.get(REFERENCES_ENV)
    if not value:
        return TEMPLATES_DIR / "observed"
    path = Path(value).expanduser()
    if not path.is_dir():
        raise DataError(f"{REFERENCES_ENV}={value!r} is not a directory (a copy of templates/observed/)")
    return path


@functools.lru_cache(maxsize=1)
def upstream_files() -> dict[str, UpstreamFile]:
    out = {}
    for filename in SOURCE_FILES:
        path = references_dir() / filename
        if not path.is_file():
            continue
        for name, s in (yaml.safe_load(path.read_text()) or {}).items():
            if name in out:
                raise DataError(f"{path}: source {name!r} is already defined in another sources file")
            offline = tuple(OfflineCopy(**o) for o in s.pop("offline", []))
            out[name] = UpstreamFile(name=name, offline=offline, **s)
    return out


def reference_spec(benchmark: str) -> dict[str, Any]:
    path = references_dir() / f"{benchmark}.yaml"
    if not path.is_file():
        return {}
    return yaml.safe_load(path.read_text())


def check_text(text: str, expected: str | None, what: str, copy) -> None:
    if expected is None:
        return
    got = sha256_text(text)
    if got != expected:
        raise ChecksumError(
            f"{what} read from {copy.path} ({copy.origin}) has sha256 {got}, pinned {expected}: "
            f"the upstream text changed or the file is another version."
        )


class ObservedLoader:
    """Builds one benchmark's observed instructions from its references
    (templates/observed/<spec_name>.yaml); what cannot be had is recorded in ``skipped``.
    instrobust.bbl.instructions builds a BBL task type's with a subclass (its ids, spec, checks)."""

    def __init__(self, benchmark: str, spec: dict[str, Any], resolver: SourceResolver):
        self.benchmark, self.spec, self.resolver = benchmark, spec, resolver
        self.task_type = spec.get("task_type", "qa")
        self.files = upstream_files()
        self.skipped: dict[str, str] = {}  # instruction id -> why it could not be built

    @property
    def scope(self) -> str:
        """What the instruction ids start with (instrobust.names)."""
        return self.benchmark

    @property
    def spec_name(self) -> str:
        """The references file, templates/observed/<spec_name>.yaml."""
        return self.benchmark

    def fetch(self, name: str):
        if name not in self.files:
            raise DataError(f"templates/observed/{self.spec_name}.yaml refers to unknown source {name!r}")
        return self.files[name], self.resolver.fetch(self.files[name])

    def fetch_all(self, collection: str, name: str, count: int):
        """(source, copy) of the file all ``count`` instructions of ``collection`` come from, or None
        when it cannot be had (all of them recorded in ``skipped``)."""
        try:
            return self.fetch(name)
        except (SourceUnavailable, ChecksumError) as exc:
            self.skipped.update({self.iid(collection, n): str(exc) for n in range(1, count + 1)})
            return None

    def check(self, ins: Instruction) -> None:
        if self.task_type == "qa":
            check_qa_template(ins)

    def make(self, collection: str, n: int, template: str, provenance: dict, sep: str | None = None,
             values: dict[str, str] | None = None) -> Instruction:
        ins = Instruction(
            id=self.iid(collection, n), benchmark=self.benchmark,
            collection=collection, task_type=self.task_type, template=template,
            provenance=provenance, prompt_separator=sep, values=values or {},
        )
        self.check(ins)
        return ins

    def iid(self, collection: str, n: int) -> str:
        return observed_id(self.scope, collection, n)

    def unit(self, collection: str, n: int, build) -> Instruction | None:
        """One instruction from ``build() -> (template, values, provenance, separator)``, or None
        (recorded in ``skipped``) when the upstream file or text it needs cannot be had."""
        try:
            template, values, prov, sep = build()
        except (SourceUnavailable, ChecksumError) as exc:
            self.skipped[self.iid(collection, n)] = str(exc)
            return None
        return self.make(collection, n, template, prov, sep=sep, values=values)

    def flan2022(self, spec) -> list[Instruction]:
        pat = spec["patterns"]

        def build(d: dict, k: int):
            src, copy = self.fetch(pat["source"])
            patterns = parsers.flan_patterns(copy.path, copy.fmt)
            if pat["key"] not in patterns:
                raise DataError(f"{copy.path}: PATTERNS has no key {pat['key']!r}")
            i = pat["indices"][k]
            pattern = patterns[pat["key"]][i][0]
            check_text(pattern, pat["sha256"][k], f"Flan PATTERNS[{pat['key']!r}][{i}]", copy)
            dsrc, dcopy = self.fetch(d["source"])
            definition = parsers.niv2_definition(dcopy.path, dcopy.fmt, d["task"])
            check_text(definition, d.get("sha256"), f"NIV2 {d['task']} Definition", dcopy)
            template, values = parsers.flan_placeholders_to_jinja(
                pattern, {"Definition": "{{ niv2_definition }}", "input": QA_INPUT}
            )
            prov = {"source": f"{src.repo}@{src.commit[:12]}:{src.path}", "key": f"{pat['key']}[{i}]",
                    "definition": f"{dsrc.repo}@{dsrc.commit[:12]}:{dsrc.path}", "read_from": str(dcopy.path)}
            return template, {**values, "niv2_definition": definition}, prov, None

        n_patterns = len(pat["indices"])  # ids: definition-major, pattern-minor
        return [ins for di, d in enumerate(spec["definitions"]) for k in range(n_patterns)
                if (ins := self.unit("flan2022", di * n_patterns + k + 1, functools.partial(build, d, k)))]

    def p3(self, spec) -> list[Instruction]:
        def build(t: dict):
            src, copy = self.fetch(t["source"])
            templates = parsers.promptsource_templates(copy.path)
            if t["id"] not in templates:
                raise DataError(f"{copy.path}: no promptsource template with id {t['id']}")
            tpl = templates[t["id"]]
            choices_src = tpl.get("answer_choices") or ""
            check_text(tpl["jinja"] + "\x00" + choices_src, t.get("sha256"),
                        f"promptsource template {t['id']} ({tpl.get('name')})", copy)
            template = (
                P3_ADAPTERS[t["adapter"]]
                + "{% set _ac %}" + choices_src + "{% endset %}"
                + '{% set answer_choices = _ac.split("|||") | map("trim") | list %}'
                + tpl["jinja"]
            )
            prov = {"source": f"{src.repo}:{src.archive_member or src.path}", "template_id": t["id"],
                    "template_name": tpl.get("name"), "adapter": t["adapter"], "read_from": str(copy.path)}
            return template, {}, prov, "|||"

        return [ins for n, t in enumerate(spec, start=1) if (ins := self.unit("p3", n, functools.partial(build, t)))]

    def alpaca(self, spec) -> list[Instruction]:
        got = self.fetch_all("alpaca", spec["source"], spec["count"])  # one file: all of its instructions or none
        if got is None:
            return []
        src, copy = got
        entries = parsers.alpaca_entries(copy.path)
        picked = select_alpaca_qa(entries, spec["rule"], spec["count"])
        if len(picked) < spec["count"]:
            raise DataError(f"{copy.path}: only {len(picked)} entries match rule {spec['rule']!r}, need {spec['count']}")
        out = []
        for index, entry in picked:
            template = "{{ alpaca_instruction }}\n\n" + QA_INPUT + "\nAnswer:"
            prov = {"source": f"{src.repo}@{src.commit[:12]}:{src.path}", "entry": index, "read_from": str(copy.path)}
            out.append(self.make("alpaca", len(out) + 1, template, prov,
                                 values={"alpaca_instruction": entry["instruction"].strip()}))
        return out


def fold_skipped(skipped_ids: dict[str, str], planned: dict[str, list[str]]) -> dict[str, str]:
    """``skipped`` as the bank reports it: a collection none of whose instructions could be had
    maps to the first reason; otherwise each skipped instruction id maps to its own."""
    out: dict[str, str] = {}
    for collection, ids in planned.items():
        mine = [i for i in ids if i in skipped_ids]
        if mine and len(mine) == len(ids):
            out[collection] = skipped_ids[mine[0]]
        else:
            out.update({i: skipped_ids[i] for i in mine})
    return out


# Alpaca has no task labels; its instructions of each task type are picked by a rule, in file
# order (first `count` distinct instructions with a non-empty input). Rules are versioned:
# changing one changes which entries the ids point at, so a changed rule gets a new name.
ALPACA_RULES = {
    # multiple-choice QA (MMLU, BBL QA)
    "qa_v1": re.compile(
        r"multiple[- ]choice|\b(choose|select|pick|identify|find)\b[^.?!]*\b(correct|right|best|appropriate)\b"
        r"[^.?!]*\b(answer|option|choice|alternative)s?\b",
        re.IGNORECASE,
    ),
    # binary classification (BBL BC): a two-way judgement of the input
    "bc_v1": re.compile(
        r"\b(true or false|yes or no|correct or incorrect|agree or disagree|valid or invalid|true/false|yes/no)\b"
        r"|^(determine|decide|tell me|check|verify|evaluate|judge)\b[^.?!]*\b(whether|if)\b",
        re.IGNORECASE,
    ),
    # multi-class classification (BBL MC): put the input in one of several classes
    "mc_v1": re.compile(
        r"\b(classify|categori[sz]e)\b|\b(which|what) (category|class|type|genre|language)\b"
        r"|\bidentify the (category|class|genre|language|topic)\b",
        re.IGNORECASE,
    ),
}


def select_alpaca(entries: list[dict], rule: str, count: int) -> list[tuple[int, dict]]:
    """The first ``count`` entries (file order, distinct instruction text, non-empty input) matching ``rule``."""
    if rule not in ALPACA_RULES:
        raise DataError(f"unknown Alpaca selection rule {rule!r} (known: {', '.join(ALPACA_RULES)})")
    pattern, seen, out = ALPACA_RULES[rule], set(), []
    for i, e in enumerate(entries):
        text = e["instruction"].strip()
        if e.get("input", "").strip() and pattern.search(text) and text not in seen:
            seen.add(text)
            out.append((i, e))
            if len(out) == count:
                break
    return out


select_alpaca_qa = select_alpaca  # the name MMLU's loader uses


def load_observed(benchmark: str, resolver: SourceResolver | None = None) -> tuple[list[Instruction], dict[str, str]]:
    """All observed instructions of ``benchmark`` that can be had, and why the others are skipped
    (a missing file or failed checksum skips only the instructions built from it; see fold_skipped)."""
    spec = reference_spec(benchmark)
    resolver = resolver or SourceResolver()
    loader = ObservedLoader(benchmark, spec, resolver)
    out = []
    for collection in ("flan2022", "alpaca", "p3"):
        if collection in spec:
            out += getattr(loader, collection)(spec[collection])
    return out, fold_skipped(loader.skipped, planned_ids(benchmark))


def planned_ids(benchmark: str) -> dict[str, list[str]]:
    """Observed instruction ids per collection, from the references alone (no download)."""
    spec = reference_spec(benchmark)
    counts = {}
    if "flan2022" in spec:
        counts["flan2022"] = len(spec["flan2022"]["patterns"]["indices"]) * len(spec["flan2022"]["definitions"])
    if "alpaca" in spec:
        counts["alpaca"] = spec["alpaca"]["count"]
    if "p3" in spec:
        counts["p3"] = len(spec["p3"])
    return {c: [observed_id(benchmark, c, i) for i in range(1, n + 1)] for c, n in counts.items()}
