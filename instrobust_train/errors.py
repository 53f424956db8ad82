"""Errors of the training add-on. Each message names the file, field, option or instruction at fault."""
from __future__ import annotations

import sys
from typing import Callable

from instrobust.errors import InstrobustError


def exit_status(prog: str, command: Callable[[], object]) -> int:
    """Run a command-line tool's body: 0, or 2 with the error as one line on stderr (no traceback)."""
    try:
        command()
    except InstrobustError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return 2
    return 0


class TrainConfigError(InstrobustError):
    """An option value that cannot work (lambda out of range, prefix tuning with gradient checkpointing, ...)."""


class AlignmentDataError(InstrobustError):
    """The alignment data source is missing, unreadable, or lacks a required field."""


class ParaphraseError(InstrobustError):
    """A paraphrase file does not match the data, or the paraphrasing endpoint/model failed."""


class CheckpointError(InstrobustError):
    """A checkpoint to resume from lacks what instrobust-train needs to continue exactly."""
