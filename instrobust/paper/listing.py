"""``instrobust list --collection paper``: the authors' instructions, counted per benchmark and set."""
from __future__ import annotations

import sys
from collections import Counter

from instrobust.paper import load_paper


def print_paper(benchmarks: tuple[str, ...] = ("mmlu", "bbl")) -> int:
    totals = []
    for benchmark in benchmarks:
        instructions, skipped = load_paper(benchmark)
        sets: Counter = Counter()
        for ins in instructions:
            prov = ins.provenance
            sets[prov.get("set", "?")] += 1
            print(f"{ins.id}\tpaper\t{prov['source']} {prov.get('method') or prov.get('list') + '[' + str(prov['index']) + ']'}"
                  f"\t{prov.get('answer_space')}")
        detail = ", ".join(f"{s}={n}" for s, n in sets.items())
        totals.append(f"{benchmark}={len(instructions)} ({detail})" if instructions else f"{benchmark}=0")
        for why in skipped.values():
            print(f"# skipped paper ({benchmark}): {why}", file=sys.stderr)
    print("# paper: " + ", ".join(totals), file=sys.stderr)
    return 0
