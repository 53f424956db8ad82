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


def one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split("\n"))


def _running_lm_eval_cli() -> bool:
    import os
    import sys

    main = sys.modules.get("__main__")
    spec = getattr(main, "__spec__", None)
    if spec is not None and getattr(spec, "name", "").startswith("lm_eval"):
        return True
    return os.path.basename(sys.argv[0] if sys.argv else "") in ("lm_eval", "lm-eval", "instrobust-lm-eval")


def install_lm_eval_hook() -> None:
    """Under the ``lm_eval`` CLI, an uncaught InstrobustError (bad input: a skipped collection, a
    data file naming its fault) ends the run with its one-line message and exit status 2, not a
    40-line traceback through the harness. Other errors keep Python's report."""
    import os
    import sys

    if not _running_lm_eval_cli() or getattr(sys.excepthook, "_instrobust", False):
        return
    previous = sys.excepthook

    def hook(exc_type, exc, tb):
        if not isinstance(exc, InstrobustError):
            return previous(exc_type, exc, tb)
        print(f"instrobust: error: {one_line(exc)}", file=sys.stderr)
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(2)  # the interpreter would exit 1 after any excepthook

    hook._instrobust = True
    sys.excepthook = hook


# Our task glue imports this module, so the hook is in place before any task is built.
install_lm_eval_hook()


def check_adapter_dir(path: str, flag: str = "--peft") -> None:
    """A PEFT adapter folder must hold adapter_config.json (checked before any model loads)."""
    from pathlib import Path

    folder = Path(path).expanduser()
    if not folder.is_dir():
        raise InstrobustError(f"{flag} {path}: not a folder (a PEFT adapter folder with adapter_config.json)")
    if not (folder / "adapter_config.json").is_file():
        raise InstrobustError(f"{flag} {path}: no adapter_config.json in this folder, so it is not a PEFT "
                              f"adapter (instrobust-train writes one into its --output_dir)")
