"""Unobserved instructions: our own Jinja templates under templates/unobserved/<benchmark>/NN.jinja."""
from __future__ import annotations

from pathlib import Path

from instrobust.instruction import Instruction, check_qa_template
from instrobust.names import unobserved_id
from instrobust.paths import TEMPLATES_DIR


def unobserved_dir(benchmark: str) -> Path:
    return TEMPLATES_DIR / "unobserved" / benchmark


def load_unobserved(benchmark: str, task_type: str = "qa") -> list[Instruction]:
    out = []
    for path in sorted(unobserved_dir(benchmark).glob("*.jinja")):
        if not path.stem.isdigit():
            from instrobust.errors import DataError

            raise DataError(f"{path}: unobserved template files are named NN.jinja (a number: the instruction id)")
        # Files end with a newline by convention; the prompt itself ends at the answer cue.
        source = path.read_text(encoding="utf-8").removesuffix("\n")
        ins = Instruction(
            id=unobserved_id(benchmark, path.stem), benchmark=benchmark, collection="unobserved",
            task_type=task_type, template=source,
            provenance={"file": f"templates/unobserved/{benchmark}/{path.name}"},
        )
        if task_type == "qa":
            check_qa_template(ins)
        out.append(ins)
    return out
