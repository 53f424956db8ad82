"""Errors of the training add-on. Each message names the file, field, option or instruction at fault."""
from instrobust.errors import InstrobustError


class TrainConfigError(InstrobustError):
    """An option value that cannot work (lambda out of range, prefix tuning with gradient checkpointing, ...)."""


class AlignmentDataError(InstrobustError):
    """The alignment data source is missing, unreadable, or lacks a required field."""


class ParaphraseError(InstrobustError):
    """A paraphrase file does not match the data, or the paraphrasing endpoint/model failed."""


class CheckpointError(InstrobustError):
    """A checkpoint to resume from lacks what instrobust-train needs to continue exactly."""
