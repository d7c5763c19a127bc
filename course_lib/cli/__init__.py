"""The course's command line: ``python -m course_lib <command> ...``.

Each command is a module of this package that defines ``HELP`` (one line for the
command list), ``add_arguments(parser)`` and ``run(args) -> dict`` (the metrics or
summary it wrote). Command modules import torch and transformers only inside
``run``, so ``--help`` and a mistyped option answer at once.

To add a command: write ``course_lib/cli/<name>.py`` with those three names and add
``<name>`` to :data:`COMMANDS`.

Errors a user can fix (a missing file or column, a bad number, an interrupted run
in the output folder...) end with one line, ``error: <what and where>``, and exit
status 2, before any model is loaded; a model folder that was there before is only
ever replaced by a complete one. Anything else is a bug: one line too, exit status 1,
and ``COURSE_DEBUG=1`` shows the traceback.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import os
import sys
from types import ModuleType

from .common import USER_ERRORS, CourseArgumentParser, one_line

COMMANDS = ("classify", "qa", "pretrain", "predict", "export")


def available_commands() -> dict[str, ModuleType]:
    """The registered command modules that exist in this checkout, in :data:`COMMANDS` order."""
    found = {}
    for name in COMMANDS:
        module_name = f"{__name__}.{name}"
        if importlib.util.find_spec(module_name) is not None:
            found[name] = importlib.import_module(module_name)
    return found


def build_parser() -> argparse.ArgumentParser:
    """The ``python -m course_lib`` parser with one sub-command per command module."""
    parser = CourseArgumentParser(
        prog="python -m course_lib",
        description="Fine-tune, run and export BERT models on your own data (course_lib).")
    commands = available_commands()
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND",
                                title="commands")
    for name, module in commands.items():
        command = sub.add_parser(name, help=module.HELP, description=module.HELP)
        command.set_defaults(run=module.run)
        module.add_arguments(command)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one command; returns the exit status (0 done, 2 bad input, 130 interrupted, 1 bug).

    The command line is the course's own process, so the quick profile's offline
    default applies to all of it (importing ``course_lib`` as a library does not).
    """
    from .. import settings

    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    args.argv = argv
    try:
        settings.apply_offline_default()
        if getattr(args, "seed", 0) is None:  # --seed not given: the course's one seed switch
            args.seed = settings.course_seed()
        args.run(args)
    except USER_ERRORS as err:
        print(f"error: {one_line(err)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        resumable = "--resume" in _option_strings(args)
        print("error: interrupted; the previous model folder (if any) is unchanged"
              + ("; run the same command with --resume to continue" if resumable else ""),
              file=sys.stderr)
        return 130
    except Exception as err:  # a bug, not bad input: one line unless asked for more
        if os.environ.get("COURSE_DEBUG"):
            raise
        print(f"error: unexpected {type(err).__name__}: {one_line(err)} (set COURSE_DEBUG=1 "
              "for the traceback)", file=sys.stderr)
        return 1
    finally:
        leave_process_group()
    return 0


def leave_process_group() -> None:
    """Under torchrun, leave the process group while Python is still fully alive.

    Left to the interpreter's shutdown, gloo's worker threads can outlive it and abort a
    process whose work is done (SIGABRT, "terminate called without an active exception";
    seen once in 2-process CI runs with torch 2.13, cause described in
    pytorch/pytorch#179291). A run without torch.distributed loaded is left as it is.
    """
    dist = sys.modules.get("torch.distributed")
    if dist is not None and dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def _option_strings(args: argparse.Namespace) -> set[str]:
    """Options this command accepts (``--resume`` only where the command resumes)."""
    return {"--" + key.replace("_", "-") for key in vars(args)}
