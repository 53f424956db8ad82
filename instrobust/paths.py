"""Where our files are: the templates folder and the generated task-YAML folder.

A leaf module (imports nothing of ours) so that the instruction leaf, the collections and the
commands can all find these folders without importing each other.
"""
from __future__ import annotations

from pathlib import Path

TEMPLATES_DIR = Path(__file__).resolve().parent / "templates"
if not TEMPLATES_DIR.is_dir():  # running from a source checkout: templates/ sits at the top
    TEMPLATES_DIR = Path(__file__).resolve().parents[1] / "templates"


def tasks_path() -> Path:
    """Folder holding our task YAMLs: the installed copy inside lm_eval, else the source tree."""
    try:
        import lm_eval.tasks.instrobust as installed  # shipped there by `pip install .`

        return Path(list(installed.__path__)[0])
    except ImportError:
        return Path(__file__).resolve().parents[1] / "lm_eval_tasks"


def include_path_args() -> list[str]:
    """``--include_path`` for our tasks, or nothing when lm-eval already scans them.

    After ``pip install .`` the YAMLs sit inside lm-eval's own tasks folder; naming that folder
    again makes lm-eval index every task twice and warn ~1,800 times that each overrides itself.
    """
    import lm_eval.tasks

    ours = tasks_path().resolve()
    if ours.is_relative_to(Path(lm_eval.tasks.__file__).resolve().parent):
        return []
    return ["--include_path", str(ours)]
