"""Shared fixtures: real data from ../shared/data, tiny real models built from configs."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("INSTROBUST_TEST_DATA", REPO.parent / "shared" / "data"))

# Tests never touch the network: the hub is off and data/instructions come from shared/data.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
if SHARED_DATA.is_dir():
    os.environ.setdefault("INSTROBUST_DATA_DIR", str(SHARED_DATA))


@pytest.fixture(scope="session")
def data_dir() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real data not found at {SHARED_DATA} (set INSTROBUST_TEST_DATA)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def tiny_t5(tmp_path_factory) -> Path:
    from instrobust.tiny import build_tiny_t5

    return build_tiny_t5(tmp_path_factory.mktemp("tiny_t5"))


@pytest.fixture(scope="session")
def tiny_llama(tmp_path_factory) -> Path:
    from instrobust.tiny import build_tiny_llama

    return build_tiny_llama(tmp_path_factory.mktemp("tiny_llama"))


@pytest.fixture(scope="session")
def task_manager():
    """One lm-eval TaskManager over our task YAMLs (indexing is the slow part; share it)."""
    from lm_eval.tasks import TaskManager

    return TaskManager(include_path=str(REPO / "lm_eval_tasks"))
