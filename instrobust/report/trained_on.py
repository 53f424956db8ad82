"""Which instruction collections a model was trained on: what "observed" means for that model.

The paper (section 4.1) calls an instruction observed *for a model* when it comes from the
collection the model was instruction-tuned on: Flan 2022 for Flan-T5, Alpaca for Alpaca models,
P3 for T0 / T0++. Every other collection is just another set of instructions to that model.

A model is matched on its name (hub id or folder), on a local folder's ``config.json``
``_name_or_path``, and on an adapter's base (``adapter_config.json`` ``base_model_name_or_path``).
Users override or extend the known families with ``--observed 'PATTERN=COLL[,COLL...]'``
(shell-style PATTERN, matched case-insensitively against those names and their last path part).
"""
from __future__ import annotations

import fnmatch
import json
from dataclasses import dataclass
from pathlib import Path

from instrobust.errors import InstrobustError
from instrobust.names import OBSERVED_COLLECTIONS

# Known families -> the collection each was instruction-tuned on (patterns on the last path part).
KNOWN_FAMILIES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("flan-t5*", ("flan2022",)),
    ("flan-ul2*", ("flan2022",)),
    ("*alpaca*", ("alpaca",)),
    ("t0", ("p3",)), ("t0p", ("p3",)), ("t0pp", ("p3",)), ("t0++", ("p3",)), ("t0-3b", ("p3",)),
)
HOW_TO_SET = ("set it with --observed 'NAME=COLLECTION' (collections: "
              + ", ".join(OBSERVED_COLLECTIONS) + "), e.g. --observed 'my-model*=flan2022'")


class ObservedSpecError(InstrobustError):
    """A malformed --observed override."""


@dataclass(frozen=True)
class ObservedRule:
    pattern: str
    collections: tuple[str, ...]

    @property
    def spec(self) -> str:
        return f"{self.pattern}={','.join(self.collections)}"


@dataclass(frozen=True)
class TrainedOn:
    """The collections a model was trained on (None = unknown) and what decided it."""

    collections: tuple[str, ...] | None
    reason: str

    def to_dict(self) -> dict:
        return {"collections": list(self.collections) if self.collections is not None else None,
                "reason": self.reason}


def parse_rule(spec: str) -> ObservedRule:
    """'flan-t5*=flan2022' or 'my-model=p3,flan2022' -> ObservedRule (one clear error otherwise)."""
    pattern, sep, rest = str(spec).partition("=")
    pattern = pattern.strip()
    colls = tuple(dict.fromkeys(c.strip().lower() for c in rest.split(",") if c.strip()))
    if not sep or not pattern or not colls:
        raise ObservedSpecError(f"--observed {spec!r}: expected PATTERN=COLLECTION[,COLLECTION...], "
                                f"e.g. 'flan-t5*=flan2022'")
    unknown = [c for c in colls if c not in OBSERVED_COLLECTIONS]
    if unknown:
        raise ObservedSpecError(f"--observed {spec!r}: unknown collection(s) {', '.join(unknown)} "
                                f"(known: {', '.join(OBSERVED_COLLECTIONS)})")
    return ObservedRule(pattern, colls)


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def candidate_names(name: str | None, peft: str | None = None, depth: int = 3) -> list[str]:
    """The model's own name, the names its local files point to (config / adapter base), its adapter's base."""
    names: list[str] = []
    for start, is_adapter in ((name, False), (peft, True)):
        todo, hops = [(start, is_adapter)], 0
        while todo and hops <= depth:
            current, skip = todo.pop()
            hops += 1
            if not current or current in names:
                continue
            if not skip:  # an adapter's own folder name says nothing about its base
                names.append(str(current))
            folder = Path(str(current)).expanduser()
            if folder.is_dir():
                todo += [(_read_json(folder / "config.json").get("_name_or_path"), False),
                         (_read_json(folder / "adapter_config.json").get("base_model_name_or_path"), False)]
    return names


def _matches(pattern: str, name: str) -> bool:
    pattern = pattern.lower()
    full = name.rstrip("/").lower()
    last = full.split("/")[-1]
    return any(fnmatch.fnmatchcase(n, pattern) or fnmatch.fnmatchcase(n.replace("_", "-"), pattern)
               for n in (full, last))


def trained_on(name: str | None, peft: str | None = None, rules: tuple[ObservedRule, ...] = ()) -> TrainedOn:
    """Overrides first (first match wins), then the known families; unknown -> collections None."""
    names = candidate_names(name, peft)
    for rule in rules:
        for n in names:
            if _matches(rule.pattern, n):
                return TrainedOn(rule.collections, f"--observed '{rule.spec}' (matched {n})")
    for pattern, colls in KNOWN_FAMILIES:
        for n in names:
            if _matches(pattern, n):
                return TrainedOn(colls, f"known family {pattern} (matched {n})")
    return TrainedOn(None, f"no known instruction collection for {name}; {HOW_TO_SET}")


def observed_in(collection: str, trained: TrainedOn) -> bool:
    """Is an instruction of ``collection`` observed by a model trained on ``trained``?"""
    return trained.collections is not None and collection in trained.collections
