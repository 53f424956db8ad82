"""Fill in the sha256 of every upstream text piece that templates/observed/<benchmark>.yaml uses.

Run by a maintainer against real upstream copies (e.g. INSTROBUST_DATA_DIR=../shared/data) after
choosing references; the resulting hashes are committed, the text is not:

    INSTROBUST_DATA_DIR=../shared/data python scripts/pin_observed.py mmlu
    INSTROBUST_DATA_DIR=../shared/data python scripts/pin_observed.py bbl   # bbl_*.yaml
    INSTROBUST_DATA_DIR=../shared/data python scripts/pin_observed.py bbl-hub   # bbl_hub_formats.yaml

The BBL references mark each hash to fill with a token naming the text: PIN:flan:<key>:<index>
(a Flan pattern), PIN:def:<niv2 task> (an NIV2 Definition), PIN:p3:<template id>.
"""
import re
import sys
from pathlib import Path

import yaml

from instrobust.upstream import parsers
from instrobust.paths import TEMPLATES_DIR
from instrobust.upstream.references import upstream_files
from instrobust.upstream.sources import SourceResolver, sha256_text


def main(benchmark: str) -> None:
    path = TEMPLATES_DIR / "observed" / f"{benchmark}.yaml"
    text = path.read_text()
    spec = yaml.safe_load(text)
    files, resolver = upstream_files(), SourceResolver()
    replacements = {}
    if "flan2022" in spec:
        pat = spec["flan2022"]["patterns"]
        copy = resolver.fetch(files[pat["source"]])
        patterns = parsers.flan_patterns(copy.path, copy.fmt)[pat["key"]]
        replacements["FLAN_PATTERN_SHAS"] = "[" + ", ".join(sha256_text(patterns[i][0]) for i in pat["indices"]) + "]"
        for d in spec["flan2022"]["definitions"]:
            c = resolver.fetch(files[d["source"]])
            replacements[f"DEF_{d['task']}"] = sha256_text(parsers.niv2_definition(c.path, c.fmt, d["task"]))
    for t in spec.get("p3", []):
        c = resolver.fetch(files[t["source"]])
        tpl = parsers.promptsource_templates(c.path)[t["id"]]
        replacements[f"P3_{t['id']}"] = sha256_text(tpl["jinja"] + "\x00" + (tpl.get("answer_choices") or ""))
    for key, value in replacements.items():
        text = text.replace(f"PIN:{key}", value)
    path.write_text(text)
    print(f"pinned {len(replacements)} text hashes in {path}")


_TOKEN = re.compile(r"PIN:(flan|def|p3):([^\s,\]}]+)")


def _walk(node):
    if isinstance(node, dict):
        yield node
        for v in node.values():
            yield from _walk(v)
    elif isinstance(node, list):
        for v in node:
            yield from _walk(v)


def pin_tokens(path: Path) -> int:
    """Replace every PIN:<kind>:<name> token in ``path`` with the sha256 of that upstream text."""
    text = path.read_text()
    spec = yaml.safe_load(text)
    files, resolver = upstream_files(), SourceResolver()
    def_sources = {d["task"]: d["source"] for d in _walk(spec) if "task" in d and "source" in d}
    p3_sources = {str(d["id"]): d["source"] for d in _walk(spec) if "id" in d and "source" in d}
    flan_source = next((d["source"] for d in _walk(spec) if "key" in d and "source" in d), "flan_v2_templates")

    def digest(kind: str, name: str) -> str:
        if kind == "flan":
            key, index = name.rsplit(":", 1)
            copy = resolver.fetch(files[flan_source])
            return sha256_text(parsers.flan_patterns(copy.path, copy.fmt)[key][int(index)][0])
        if kind == "def":
            copy = resolver.fetch(files[def_sources[name]])
            return sha256_text(parsers.niv2_definition(copy.path, copy.fmt, name))
        copy = resolver.fetch(files[p3_sources[name]])
        tpl = parsers.promptsource_templates(copy.path)[name]
        return sha256_text(tpl["jinja"] + "\x00" + (tpl.get("answer_choices") or ""))

    found = sorted(set(_TOKEN.findall(text)))
    for kind, name in found:
        text = text.replace(f"PIN:{kind}:{name}", digest(kind, name))
    path.write_text(text)
    return len(found)


if __name__ == "__main__":
    name = sys.argv[1] if len(sys.argv) > 1 else "mmlu"
    if name == "bbl-hub":  # formatting facts for reading BBL from the hub, from task.json files
        from instrobust.bbl.hub import FORMATS_FILE, compute_formats, formats_yaml
        from instrobust.upstream.sources import data_dir_from_env

        target = TEMPLATES_DIR / "observed" / FORMATS_FILE
        target.write_text(formats_yaml(compute_formats(data_dir_from_env() / "bigbench")))
        print(f"wrote {target}")
    elif name == "bbl":
        for spec_path in sorted((TEMPLATES_DIR / "observed").glob("bbl_*.yaml")):
            if spec_path.name != "bbl_sources.yaml":
                print(f"pinned {pin_tokens(spec_path)} text hashes in {spec_path}")
    else:
        main(name)
