"""`instrobust` command line: one entry point, subcommands implemented in their own modules."""
from __future__ import annotations

import importlib
import sys

# subcommand -> (module, one-line help). Each module exposes main(argv) -> int.
COMMANDS = {
    "tasks-path": ("instrobust.commands", "print the folder of our lm-eval task YAMLs (for --include_path)"),
    "list": ("instrobust.commands", "list instructions of a benchmark and which collections are skipped"),
    "render": ("instrobust.commands", "print the prompt an instruction gives for one benchmark question"),
    "tasks": ("instrobust.user_tasks", "task folder for lm_eval --include_path from your own instructions, any benchmark"),
    "generate-tasks": ("instrobust.generate", "regenerate lm_eval_tasks/ from the instruction bank"),
    "demo": ("instrobust.demo", "offline demo: a small instruction-tuned model, observed vs unobserved"),
    "report": ("instrobust.report", "robustness report from lm-eval output directories"),
    "analyze": ("instrobust.analysis", "representation distances between observed/unobserved instructions"),
    "estimate": ("instrobust.sparse.estimate", "IRT estimate of every instruction's accuracy from a sparse (_bB) run"),
}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in COMMANDS:
        width = max(map(len, COMMANDS))
        print("usage: instrobust COMMAND [options]\n\ncommands:")
        for name, (_, help_) in COMMANDS.items():
            print(f"  {name:<{width}}  {help_}")
        if argv and argv[0] not in ("-h", "--help"):
            print(f"\nunknown command {argv[0]!r}", file=sys.stderr)
            return 2
        return 0
    module = importlib.import_module(COMMANDS[argv[0]][0])
    if module.__name__ == "instrobust.commands":
        return module.main(argv)
    return module.main(argv[1:])


if __name__ == "__main__":
    sys.exit(main())
