"""Keep training runs apart: one run per output folder, and resume only the run that wrote a checkpoint.

* :func:`prepare_output_dir` refuses a folder holding another run's files (``--overwrite_output_dir``
  clears a run folder; a folder with files that are not a run's is never cleared).
* :func:`resolve_resume` finds the checkpoint to continue from, skipping incomplete ones.
* :func:`run_identity` is what defines a run (base, method, lambda, seed, soft prompt shape, data and
  paraphrase files); every checkpoint keeps it in ``run_config.json`` and :func:`check_resume` compares.
"""
from __future__ import annotations

import hashlib
import json
import logging
import re
import shutil
from pathlib import Path

from instrobust_train.errors import CheckpointError, TrainConfigError

log = logging.getLogger("instrobust_train")

RUN_CONFIG_FILE = "run_config.json"
TRAINER_STATE_FILE = "trainer_state.json"  # the Trainer writes it last when saving a checkpoint
_CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")
# Any of these marks a folder as an instrobust-train run (the text log is written first).
_RUN_MARKERS = ("train.log", "alignment_config.json", "training_log.jsonl", RUN_CONFIG_FILE, "adapter_config.json")


def _wants_last(value) -> bool:
    return value in (True, "true", "True", "last")


def _no_resume(value) -> bool:
    return value in (None, False, "", "false", "False")


def prepare_output_dir(output_dir: str, *, overwrite: bool, resume) -> None:
    """Refuse, or clear with ``overwrite``, an output folder that already holds files of another run."""
    folder = Path(output_dir)
    entries = sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []
    if folder.exists() and not folder.is_dir():
        raise TrainConfigError(f"--output_dir {output_dir} is a file, not a folder")
    if overwrite and not _no_resume(resume):
        raise TrainConfigError("--overwrite_output_dir clears the run that --resume_from_checkpoint would continue: "
                               "pass only one of them")
    if not entries:
        return
    resuming_here = _wants_last(resume) or (
        not _no_resume(resume) and Path(str(resume)).resolve().parent == folder.resolve())
    if resuming_here:  # the files are the resumed run's own; check_resume compares its options
        return
    is_run = any(name in _RUN_MARKERS or _CHECKPOINT.match(name) for name in entries)
    shown = ", ".join(entries[:5]) + (", ..." if len(entries) > 5 else "")
    if overwrite and is_run:
        log.warning("--overwrite_output_dir: removing the previous run's files in %s (%s)", output_dir, shown)
        for entry in folder.iterdir():
            shutil.rmtree(entry) if entry.is_dir() and not entry.is_symlink() else entry.unlink()
        return
    if not is_run:
        raise TrainConfigError(f"--output_dir {output_dir} holds files that are not an instrobust-train run's "
                               f"({shown}): choose an empty or new folder")
    raise TrainConfigError(f"--output_dir {output_dir} already holds another run's files ({shown}): choose a new "
                           "folder, continue that run with --resume_from_checkpoint last, or pass "
                           "--overwrite_output_dir to clear it")


def is_complete_checkpoint(path: Path) -> bool:
    """True once the Trainer wrote ``trainer_state.json`` (its last file) and it parses."""
    try:
        json.loads((path / TRAINER_STATE_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return True


def resolve_resume(value, output_dir: str) -> tuple[str | None, list[str]]:
    """``--resume_from_checkpoint``: a checkpoint folder, or ``last``/``true`` for the newest complete one.

    Returns the checkpoint (None: start afresh) and a warning for each newer, incomplete checkpoint
    skipped; the caller logs them once its log is open.
    """
    if _no_resume(value):
        return None, []
    if _wants_last(value):
        folder = Path(output_dir)
        steps = sorted(((int(m.group(1)), p) for p in (folder.iterdir() if folder.is_dir() else [])
                        if (m := _CHECKPOINT.match(p.name)) and p.is_dir()), reverse=True)
        skipped = []
        for _, path in steps:
            if is_complete_checkpoint(path):
                return str(path), skipped
            skipped.append(f"skipping {path}: incomplete checkpoint (no readable {TRAINER_STATE_FILE}; "
                           "killed while saving?)")
        what = "no complete checkpoint-* folder" if steps else "no checkpoint-* folder"
        raise CheckpointError(f"--resume_from_checkpoint {value}: {what} in {output_dir}")
    path = Path(str(value))
    if not path.is_dir():
        raise CheckpointError(f"--resume_from_checkpoint {value}: no such checkpoint folder")
    if not is_complete_checkpoint(path):
        raise CheckpointError(f"--resume_from_checkpoint {value}: incomplete checkpoint (no readable "
                              f"{TRAINER_STATE_FILE}; killed while saving?): resume from an earlier one")
    return str(path), []


def _file_identity(name: str | None) -> dict | str | None:
    """A local file by content (moving it does not change the run), anything else (a hub id) by name."""
    if name is None or not Path(name).is_file():
        return name
    digest = hashlib.sha256()
    with open(name, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return {"path": str(Path(name).resolve()), "sha256": digest.hexdigest()}


def run_identity(model_cfg, data_cfg, prompt_cfg, args, soft_prompt_type: str | None) -> dict:
    """Every option that makes a run a different run (not its length, schedule or logging)."""
    base = str(Path(model_cfg.base).resolve()) if Path(model_cfg.base).is_dir() else model_cfg.base
    soft_prompt = None
    if soft_prompt_type is not None:
        soft_prompt = {"peft_type": soft_prompt_type, "num_virtual_tokens": prompt_cfg.num_virtual_tokens,
                       "encoder_hidden_size": prompt_cfg.encoder_hidden_size,
                       "prefix_projection": prompt_cfg.prefix_projection}
    return {
        "base": base, "dtype": model_cfg.dtype, "method": args.method, "kl_weight": float(args.kl_weight),
        "kl_reduction": args.kl_reduction, "kl_detach_reference": args.kl_detach_reference, "seed": args.seed,
        "soft_prompt": soft_prompt,
        "data": {
            "source": _file_identity(data_cfg.source), "paraphrases": _file_identity(data_cfg.paraphrases),
            **{k: getattr(data_cfg, k) for k in (
                "split", "n_examples", "sample_seed", "instruction_field", "input_field", "output_field",
                "max_paraphrases", "prompt_format", "max_source_length", "max_target_length")},
        },
    }


def _flatten(tree: dict, prefix: str = "") -> dict:
    flat = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and "sha256" not in value:
            flat.update(_flatten(value, name + "."))
        else:
            flat[name] = value
    return flat


def _show(value) -> str:
    if isinstance(value, dict) and "sha256" in value:
        return f"{value['path']} (sha256 {value['sha256'][:12]})"
    return json.dumps(value)


def differences(saved: dict, current: dict) -> list[str]:
    """``name: checkpoint X, now Y`` for each option that differs (files compared by content)."""
    old, new = _flatten(saved), _flatten(current)
    out = []
    for name in sorted(old.keys() | new.keys()):
        a, b = old.get(name), new.get(name)
        same = (a.get("sha256") == b.get("sha256")) if isinstance(a, dict) and isinstance(b, dict) else a == b
        if not same:
            out.append(f"{name}: checkpoint {_show(a)}, now {_show(b)}")
    return out


def write_run_config(folder: str, identity: dict) -> None:
    with open(Path(folder) / RUN_CONFIG_FILE, "w", encoding="utf-8") as fh:
        json.dump(identity, fh, indent=2)


def check_resume(checkpoint: str, identity: dict) -> None:
    """Refuse to continue a checkpoint written under other options, listing every difference."""
    path = Path(checkpoint) / RUN_CONFIG_FILE
    try:
        saved = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        raise CheckpointError(f"{checkpoint}: no readable {RUN_CONFIG_FILE}, so its options cannot be checked "
                              "against this run's; resume only checkpoints written by instrobust-train") from None
    diffs = differences(saved, identity)
    if diffs:
        raise CheckpointError(f"{checkpoint} belongs to a run with other options (resume with the same options, or "
                              f"start a new --output_dir): {'; '.join(diffs)}")
