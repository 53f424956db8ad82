"""The pins: which upstream files exist (``templates/observed/sources.yaml`` and
``bbl_sources.yaml``: repo, commit, path, sha256, offline copies) and which pieces of them make
each benchmark's observed instructions (``templates/observed/<benchmark>.yaml``, with the sha256
of every piece of text we take). Neither holds any upstream text. A collection whose files
cannot be had is *skipped* (reported, never faked): :func:`fold_skipped`.
"""
from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Any

import yaml

from instrobust.errors import ChecksumError, DataError
from instrobust.paths import TEMPLATES_DIR
from instrobust.upstream.sources import OfflineCopy, UpstreamFile, sha256_text

# Pinned upstream files: sources.yaml (MMLU and shared) and bbl_sources.yaml (BIG-bench Lite).
SOURCE_FILES = ("sources.yaml", "bbl_sources.yaml")
# Another folder laid out like templates/observed/ (same references, other pins): how the tests
# load their own fixture text on a machine without the real upstream files. Explicit, never
# implied by a data directory, so a data folder cannot change what its own text is checked against.
REFERENCES_ENV = "INSTROBUST_REFERENCES_DIR"


def references_dir() -> Path:
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
    """``templates/observed/<benchmark>.yaml`` (empty when there is none)."""
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
