"""analysis.md: the tables of analysis.json, for people."""
from __future__ import annotations


def _num(x, fmt: str = ".2f") -> str:
    return "–" if x is None else format(x, fmt)


def _pct(x) -> str:
    return "–" if x is None else f"{100 * x:.1f}"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header), *("| " + " | ".join(r) + " |" for r in rows), ""]


def _run(label: str, run: dict) -> list[str]:
    meta = run["meta"]
    lines = [f"## Run `{label}`: {meta.get('model')}" + (f" + adapter {meta['peft']}" if meta.get("peft") else ""), "",
             f"{meta.get('architecture', '?')} model; representation: {meta.get('position', '?')}, "
             f"layer {meta.get('layer', -2)}; {meta.get('n_examples')} examples per pool (seed {meta.get('seed')}); "
             f"{run['n_rows']} vectors.", "",
             "Observed instructions: the collection(s) the model was trained on, "
             f"{', '.join(run.get('observed_collections') or ['?'])}; unobserved: ours.", "",
             "### Distance to the nearest observed instruction (Table 4)", ""]
    lines += _table(
        ["category", "unobserved instructions", "avg l2 distance", "± std", "observed reference", "avg Δacc (points)"],
        [[c["category"], str(c["n_unobserved"]), _num(c["mean"]), _num(c["std"]), _num(c["observed_reference"]),
          _num(c["degradation"], "+.1f")] for c in run["categories"]])
    lines.append("Observed reference: the same distance for each observed instruction to the *other* observed ones.")
    lines.append("")
    if run.get("other_collections"):
        lines += ["Collections this model was not trained on, the same way (their instructions against its observed "
                  "ones):", ""]
        lines += _table(["category", "collection", "instructions", "avg l2 distance", "± std", "avg Δacc (points)"],
                        [[c["category"], c["collection"], str(c["n_unobserved"]), _num(c["mean"]), _num(c["std"]),
                          _num(c["degradation"], "+.1f")] for c in run["other_collections"]])
    fit = run.get("fit")
    if fit:
        lines += ["### Degradation vs distance (Figure 5)", "",
                  f"Δacc = {_num(fit['slope'], '+.4g')} × distance {_num(fit['intercept'], '+.4g')} "
                  f"(r = {_num(fit['r'], '.3f')}, p = {_num(fit['p'], '.3g')}, n = {fit['n']} unobserved instructions; "
                  f"r and p are undefined when every degradation is the same).", ""]
    unobs = [r for r in run["instructions"] if not r["observed"]]
    lines += ["### Instructions the model was not trained on", ""]
    lines += _table(["task", "category", "collection", "avg l2 distance", "nearest observed (share)", "acc", "Δacc (points)"],
                    [[r["task"], r["category"], r["collection"], _num(r["mean"]), f"{r['nearest']} ({r['nearest_share']:.0%})",
                      _pct(r["acc"]), _num(r["degradation"], "+.1f")] for r in unobs])
    for note in run.get("notes") or []:
        lines.append(f"- note: {note}")
    return lines + [""]


def render_markdown(report: dict) -> str:
    lines = ["# Representation analysis: unobserved vs observed instructions", "",
             f"Distance: {report['definition']['distance']}.", "",
             f"Degradation: {report['definition']['degradation']}.", ""]
    for label, run in report["runs"].items():
        lines += _run(label, run)
    if report.get("before_after"):
        lines += ["## Before / after the adapter (Table 6)", ""]
        lines += _table(
            ["category", "distance before", "distance after", "change", "unobserved acc before", "after",
             "observed acc before", "after"],
            [[r["category"], _num(r["distance_before"]), _num(r["distance_after"]), _num(r["distance_change"], "+.2f"),
              _pct(r["acc_unobserved_before"]), _pct(r["acc_unobserved_after"]),
              _pct(r["acc_observed_before"]), _pct(r["acc_observed_after"])] for r in report["before_after"]])
    if report.get("figures"):
        lines += ["## Figures", ""]
        lines += [f"![{f['kind']} ({f.get('run')})]({f['file']})" for f in report["figures"]]
        lines.append("")
    return "\n".join(lines)
