"""The recipes that turn pinned upstream pieces into observed instructions, for every benchmark.

Flan 2022 (a PATTERNS entry, optionally with an NIV2 task Definition), P3 (a promptsource
template) and Alpaca (entries picked by a versioned rule) are built here once. A benchmark
supplies only its :class:`Views` (which of our Jinja fills each upstream placeholder or dataset
field from one of its documents) and a :class:`CollectionLoader` subclass (its id scope,
references file and template checks): instrobust.mmlu.instructions, instrobust.bbl.instructions.
Upstream text only ever reaches a template as a value (parsers.flan_placeholders_to_jinja),
except promptsource's, which is Jinja by nature and renders in the sandbox like ours.
"""
from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import Any, Callable

import instrobust.upstream.parsers as parsers
from instrobust.errors import ChecksumError, DataError, SourceUnavailable
from instrobust.instruction import Instruction
from instrobust.names import OBSERVED_COLLECTIONS, observed_id
from instrobust.upstream.references import check_text, fold_skipped, upstream_files
from instrobust.upstream.sources import LocalCopy, SourceResolver, UpstreamFile

# A document's text with its lettered options, one per line: what fills a single free-text slot
# (Flan natinst {input}, an Alpaca entry's input). Ours; one format for every such template.
LETTERED_OPTIONS = "{% for l, c in zip(letters, choices) %}({{ l }}) {{ c }}{% if not loop.last %}\n{% endif %}{% endfor %}"
# Flan's {options_}: the option texts as Flan 2022 lists them ("OPTIONS:" then "- " lines).
FLAN_OPTIONS = 'OPTIONS:\n{% for c in choices %}- {{ c }}{% if not loop.last %}\n{% endif %}{% endfor %}'
ANSWER_CUE = "\nAnswer:"

Fetch = Callable[[str], tuple[UpstreamFile, LocalCopy]]


def lettered(field: str) -> str:
    """``field`` of the document, then its lettered options."""
    return "{{ " + field + " }}\n" + LETTERED_OPTIONS


@dataclass(frozen=True)
class Views:
    """How one benchmark's documents fill the upstream templates (ours, per benchmark)."""

    name: str                      # in error messages: "no BBL view for Flan key ..."
    input: str                     # a single free-text slot: the document with its options
    flan: dict[str, dict[str, str]]  # Flan PATTERNS key -> placeholder -> our Jinja
    # promptsource adapter -> prelude exposing the document under the dataset's field names;
    # fields that only feed the target part are fixed so the prompt never sees the gold.
    p3: dict[str, str]
    p3_prelude: str = ""           # set before every adapter
    # Jinja of a slot that can render empty (a split context): a Flan template using it has its
    # leading whitespace dropped, so "{paragraph}\n\n..." never starts blank.
    empty_context: str | None = None


def fetcher(resolver: SourceResolver, where: str) -> Fetch:
    """``fetch(name) -> (pin, local copy)`` for the sources a references file names."""
    files = upstream_files()

    def fetch(name: str):
        if name not in files:
            raise DataError(f"{where} refers to unknown source {name!r}")
        return files[name], resolver.fetch(files[name])

    return fetch


# ---- Flan 2022 (+ NIV2 definitions) ----------------------------------------------------------

def flan_pattern(fetch: Fetch, source: str, key: str, index: int, sha256: str | None) -> tuple[str, dict]:
    """The input pattern of Flan's ``PATTERNS[key][index]``, checked against its pin."""
    src, copy = fetch(source)
    patterns = parsers.flan_patterns(copy.path, copy.fmt)
    if key not in patterns:
        raise DataError(f"{copy.path}: PATTERNS has no key {key!r}")
    text = patterns[key][index][0]
    check_text(text, sha256, f"Flan PATTERNS[{key!r}][{index}]", copy)
    return text, {"source": f"{src.repo}@{src.commit[:12]}:{src.path}", "key": f"{key}[{index}]", "read_from": str(copy.path)}


def niv2_definition(ref: dict, fetch: Fetch) -> tuple[str, dict]:
    dsrc, dcopy = fetch(ref["source"])
    text = parsers.niv2_definition(dcopy.path, dcopy.fmt, ref["task"])
    check_text(text, ref.get("sha256"), f"NIV2 {ref['task']} Definition", dcopy)
    return text, {"definition": f"{dsrc.repo}@{dsrc.commit[:12]}:{dsrc.path}", "definition_read_from": str(dcopy.path)}


def flan_jinja(pattern: str, slots: dict[str, str], empty_context: str | None = None) -> tuple[str, dict[str, str]]:
    """(our Jinja, values) for a Flan pattern (its text only ever as values); see Views.empty_context."""
    source, values = parsers.flan_placeholders_to_jinja(pattern, slots)
    if empty_context and empty_context in source:
        return "{% set _prompt %}" + source + "{% endset %}{{ _prompt.lstrip() }}", values
    return source, values


def flan_block_units(block: dict, fetch: Fetch, views: Views, where: str) -> list:
    """One zero-argument builder per instruction of a Flan block (patterns, optionally x NIV2
    definitions, definition-major), each giving (template, values, provenance). Each reads its
    own files, so one missing file or changed text fails only the instructions built from it."""
    pat = block["patterns"]
    key = pat["key"]
    if key not in views.flan:
        raise DataError(f"templates/observed/{where}.yaml: no {views.name} view for Flan key {key!r} "
                        f"(known: {', '.join(views.flan)})")
    if len(pat["sha256"]) != len(pat["indices"]):
        raise DataError(f"templates/observed/{where}.yaml: Flan {key}: {len(pat['indices'])} indices "
                        f"but {len(pat['sha256'])} sha256 values")

    def plain(k: int):
        text, prov = flan_pattern(fetch, pat["source"], key, pat["indices"][k], pat["sha256"][k])
        return (*flan_jinja(text, views.flan[key], views.empty_context), prov)

    def with_definition(d: dict, k: int):
        text, prov = flan_pattern(fetch, pat["source"], key, pat["indices"][k], pat["sha256"][k])
        definition, dprov = niv2_definition(d, fetch)
        slots = {**views.flan[key], "Definition": "{{ niv2_definition }}"}
        template, values = flan_jinja(text, slots, views.empty_context)
        return template, {**values, "niv2_definition": definition}, {**prov, **dprov}

    ks = range(len(pat["indices"]))
    definitions = block.get("definitions")
    if not definitions:
        return [functools.partial(plain, k) for k in ks]
    return [functools.partial(with_definition, d, k) for d in definitions for k in ks]


# ---- P3 (promptsource) ----------------------------------------------------------------------

def apply_edit(text: str, edit: dict, what: str) -> str:
    """Apply one pinned edit: ``old`` (or ``regex``) must match exactly once."""
    if "regex" in edit:
        matches = list(re.finditer(edit["regex"], text))
        if len(matches) != 1:
            raise DataError(f"{what}: edit regex {edit['regex']!r} matches {len(matches)} times, must match once")
        m = matches[0]
        return text[: m.start()] + edit["new"] + text[m.end():]
    count = text.count(edit["old"])
    if count != 1:
        raise DataError(f"{what}: edit text {edit['old']!r} occurs {count} times, must occur once")
    return text.replace(edit["old"], edit["new"])


def p3_template(ref: dict, fetch: Fetch, views: Views) -> tuple[str, dict]:
    """(template, provenance) of one promptsource template under the benchmark's adapter.
    ``label_space: task`` scores on the document's own options (needs ``_doc_choices`` from
    the benchmark's p3_prelude)."""
    src, copy = fetch(ref["source"])
    templates = parsers.promptsource_templates(copy.path)
    if ref["id"] not in templates:
        raise DataError(f"{copy.path}: no promptsource template with id {ref['id']}")
    tpl = templates[ref["id"]]
    choices_src = tpl.get("answer_choices") or ""
    what = f"promptsource template {ref['id']} ({tpl.get('name')})"
    check_text(tpl["jinja"] + "\x00" + choices_src, ref.get("sha256"), what, copy)
    if ref.get("adapter") not in views.p3:
        raise DataError(f"{what}: unknown adapter {ref.get('adapter')!r} (known: {', '.join(views.p3)})")
    jinja = tpl["jinja"]
    for edit in ref.get("edits", []):
        jinja = apply_edit(jinja, edit, what)
    label_space = "{% set answer_choices = _doc_choices %}" if ref.get("label_space") == "task" else ""
    template = (
        views.p3_prelude + views.p3[ref["adapter"]]
        + "{% set _ac %}" + choices_src + "{% endset %}"
        + '{% set answer_choices = _ac.split("|||") | map("trim") | list %}'
        + label_space + jinja
    )
    prov = {"source": f"{src.repo}:{src.archive_member or src.path}", "template_id": ref["id"],
            "template_name": tpl.get("name"), "adapter": ref["adapter"], "read_from": str(copy.path)}
    if ref.get("edits"):
        prov["edits"] = len(ref["edits"])
    return template, prov


# ---- Alpaca ---------------------------------------------------------------------------------

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


# ---- one benchmark's observed instructions ---------------------------------------------------

def planned_counts(spec: dict[str, Any]) -> dict[str, int]:
    """How many instructions each collection of a references file makes (no download)."""
    counts: dict[str, int] = {}
    if "flan2022" in spec:
        blocks = spec["flan2022"] if isinstance(spec["flan2022"], list) else [spec["flan2022"]]
        counts["flan2022"] = sum(len(b["patterns"]["indices"]) * max(1, len(b.get("definitions") or []))
                                 for b in blocks)
    if "alpaca" in spec:
        counts["alpaca"] = spec["alpaca"]["count"]
    if "p3" in spec:
        counts["p3"] = len(spec["p3"])
    return counts


class CollectionLoader:
    """Builds one benchmark's observed instructions from its references
    (templates/observed/<spec_name>.yaml); what cannot be had is recorded in ``skipped``.
    A subclass names its :attr:`views`, its ids' :attr:`scope` and its template :meth:`check`."""

    views: Views

    def __init__(self, benchmark: str, spec: dict[str, Any], resolver: SourceResolver | None, task_type: str):
        self.benchmark, self.spec, self.resolver, self.task_type = benchmark, spec, resolver, task_type
        self.skipped: dict[str, str] = {}  # instruction id -> why it could not be built

    @functools.cached_property
    def fetch(self) -> Fetch:
        # made on first use: planned() reads the references alone, with no data folder needed
        return fetcher(self.resolver or SourceResolver(), f"templates/observed/{self.spec_name}.yaml")

    @property
    def scope(self) -> str:
        """What the instruction ids start with (instrobust.names)."""
        return self.benchmark

    @property
    def spec_name(self) -> str:
        """The references file, templates/observed/<spec_name>.yaml."""
        return self.benchmark

    def check(self, ins: Instruction) -> None:
        raise NotImplementedError

    def iid(self, collection: str, n: int) -> str:
        return observed_id(self.scope, collection, n)

    def make(self, collection: str, n: int, template: str, provenance: dict, sep: str | None = None,
             values: dict[str, str] | None = None) -> Instruction:
        ins = Instruction(
            id=self.iid(collection, n), benchmark=self.benchmark,
            collection=collection, task_type=self.task_type, template=template,
            provenance=provenance, prompt_separator=sep, values=values or {},
        )
        self.check(ins)
        return ins

    def unit(self, collection: str, n: int, build, sep: str | None = None) -> Instruction | None:
        """One instruction from ``build() -> (template, values, provenance)``, or None (recorded
        in ``skipped``) when the upstream file or text it needs cannot be had."""
        try:
            template, values, prov = build()
        except (SourceUnavailable, ChecksumError) as exc:
            self.skipped[self.iid(collection, n)] = str(exc)
            return None
        return self.make(collection, n, template, prov, sep=sep, values=values)

    def flan2022(self, blocks: list[dict] | dict) -> list[Instruction]:
        blocks = blocks if isinstance(blocks, list) else [blocks]
        units = [u for block in blocks for u in flan_block_units(block, self.fetch, self.views, self.spec_name)]
        return [ins for n, u in enumerate(units, start=1) if (ins := self.unit("flan2022", n, u))]

    def p3(self, refs: list[dict]) -> list[Instruction]:
        def build(ref):
            template, prov = p3_template(ref, self.fetch, self.views)
            return template, {}, prov

        return [ins for n, ref in enumerate(refs, start=1)
                if (ins := self.unit("p3", n, functools.partial(build, ref), sep="|||"))]

    def alpaca(self, spec: dict) -> list[Instruction]:
        try:  # one file: all of its instructions or none
            src, copy = self.fetch(spec["source"])
        except (SourceUnavailable, ChecksumError) as exc:
            self.skipped.update({self.iid("alpaca", n): str(exc) for n in range(1, spec["count"] + 1)})
            return []
        return self.from_alpaca(parsers.alpaca_entries(copy.path), spec,
                                {"source": f"{src.repo}@{src.commit[:12]}:{src.path}", "read_from": str(copy.path)})

    def from_alpaca(self, entries: list[dict], spec: dict, provenance: dict) -> list[Instruction]:
        """The Alpaca instructions ``spec`` (rule, count) picks from ``entries``."""
        picked = select_alpaca(entries, spec["rule"], spec["count"])
        if len(picked) < spec["count"]:
            raise DataError(f"{provenance.get('read_from', 'Alpaca')}: only {len(picked)} entries match "
                            f"rule {spec['rule']!r}, need {spec['count']}")
        template = "{{ alpaca_instruction }}\n\n" + self.views.input + ANSWER_CUE
        return [self.make("alpaca", n, template, {**provenance, "entry": index, "rule": spec["rule"]},
                          values={"alpaca_instruction": entry["instruction"].strip()})
                for n, (index, entry) in enumerate(picked, start=1)]

    def planned(self) -> dict[str, list[str]]:
        """Instruction ids per collection, from the references alone (no download)."""
        return {c: [self.iid(c, i) for i in range(1, n + 1)]
                for c, n in planned_counts(self.spec).items() if c in OBSERVED_COLLECTIONS}

    def load(self) -> tuple[list[Instruction], dict[str, str]]:
        """Every instruction that can be had, and why the others are skipped (see fold_skipped)."""
        out: list[Instruction] = []
        for collection in OBSERVED_COLLECTIONS:
            if collection in self.spec:
                out += getattr(self, collection)(self.spec[collection])
        return out, fold_skipped(self.skipped, self.planned())
