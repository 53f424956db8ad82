"""Errors a user can act on. Each message names the file, field, row or instruction at fault."""


class InstrobustError(Exception):
    """Base class: anything we raise on bad input."""


class UnknownInstructionError(InstrobustError, KeyError):
    def __str__(self) -> str:  # KeyError would quote the message
        return self.args[0]


class TemplateRenderError(InstrobustError):
    pass


class DataError(InstrobustError):
    """A benchmark data file is missing or holds a row we cannot score correctly."""


class SourceUnavailable(InstrobustError):
    """An upstream instruction file could not be had (offline, not in the offline dir, network)."""


class ChecksumError(InstrobustError):
    """An upstream file or text does not match its pinned sha256."""


class OfflineDirError(InstrobustError):
    pass
