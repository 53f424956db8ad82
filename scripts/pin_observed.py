"""Fill in the sha256 of every upstream text piece that templates/observed/<benchmark>.yaml uses.

Run by a maintainer against real upstream copies (e.g. INSTROBUST_DATA_DIR=../shared/data) after
choosing references; the resulting hashes are committed, the text is not:

    INSTROBUST_DATA_DIR=../shared/data python scripts/pin_observed.py mmlu
"""
import sys
from pathlib import Path

import yaml

from instrobust import parsers
from instrobust.observed import TEMPLATES_DIR, upstream_files
from instrobust.sources import SourceResolver, sha256_text


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


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "mmlu")
