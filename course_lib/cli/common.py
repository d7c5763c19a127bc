"""What every command shares: the parser class, the common options and their checks,
resumable output folders, and how a message reaches the user.

Nothing here imports torch or transformers at module level: ``--help`` and a bad
option must answer at once, before the heavy libraries load.
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
import sys
from pathlib import Path

from ..settings import DEFAULT_SEED, CourseError

MAX_SEED = 2**32 - 1  # numpy's generator takes seeds in 0..2**32-1; torch's more
MIN_MAX_LENGTH = 32  # a question, or a sentence pair, needs room beside [CLS]/[SEP]
USER_ERRORS = (CourseError, FileNotFoundError, IsADirectoryError, PermissionError,
               UnicodeDecodeError)


class CourseArgumentParser(argparse.ArgumentParser):
    """argparse, but a usage error is ONE line on stderr (``error: ...``) and exit status 2.

    argparse prints the whole usage block and then the error; in a terminal or a CI
    log the line that matters is lost under it. ``--help`` still shows the usage.
    """

    def error(self, message: str):  # noqa: D401 - argparse's name
        self.exit(2, f"error: {message} (see: {self.prog} --help)\n")


def seed_value(text: str) -> int:
    """``--seed``: an integer in 0..2**32-1 (the range every generator accepts)."""
    try:
        seed = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if not 0 <= seed <= MAX_SEED:
        raise argparse.ArgumentTypeError(f"{seed} is out of range (a seed is 0..{MAX_SEED})")
    return seed


def add_common_options(parser: argparse.ArgumentParser, *,
                       strategies: tuple[str, ...] | None = None,
                       default_strategy: str | None = None, default_batch_size: int | str,
                       default_max_length: int | str) -> None:
    """Options every training command shares; ``None`` means "the command's own recipe".

    ``--strategy`` is added only for a command that has ``strategies`` to choose from.
    """
    if strategies:
        parser.add_argument("--strategy", choices=strategies, default=None,
                            help=f"how the model trains (default: {default_strategy})")
    parser.add_argument("--model", default=None,
                        help="a Hub id or a local folder (default: the profile's backbone)")
    parser.add_argument("--epochs", type=float, default=None,
                        help="training epochs (default: the strategy's recipe)")
    parser.add_argument("--lr", type=float, default=None,
                        help="peak learning rate (default: the strategy's recipe)")
    parser.add_argument("--batch-size", type=int, default=None,
                        help=f"examples per step (default: {default_batch_size})")
    parser.add_argument("--max-length", type=int, default=None,
                        help=f"tokens per example, {MIN_MAX_LENGTH} up to the model's limit "
                             f"(default: {default_max_length})")
    parser.add_argument("--seed", type=seed_value, default=None,
                        help=f"random seed, 0..{MAX_SEED} (default: COURSE_SEED if set, "
                             f"else {DEFAULT_SEED})")
    parser.add_argument("--output-dir", required=True, type=Path,
                        help="where metrics.json, model/ and the resume checkpoints go")
    parser.add_argument("--save-every", type=int, default=None, metavar="STEPS",
                        help="keep a resume checkpoint every STEPS optimizer steps "
                             "(default: at the end of every epoch)")
    parser.add_argument("--resume", action="store_true",
                        help="continue the interrupted run in --output-dir")


def check_common_options(args: argparse.Namespace) -> None:
    """Numbers that cannot work and files that are not there, caught before anything loads."""
    if args.epochs is not None and not (math.isfinite(args.epochs) and args.epochs > 0):
        raise CourseError(f"--epochs {args.epochs}: must be a positive number")
    if args.lr is not None and not (math.isfinite(args.lr) and 0 < args.lr < 1):
        raise CourseError(f"--lr {args.lr}: must be between 0 and 1 (e.g. 2e-4)")
    if args.batch_size is not None and args.batch_size < 1:
        raise CourseError(f"--batch-size {args.batch_size}: must be at least 1")
    if args.max_length is not None and args.max_length < MIN_MAX_LENGTH:
        raise CourseError(f"--max-length {args.max_length}: must be at least "
                          f"{MIN_MAX_LENGTH} tokens")
    if args.save_every is not None and args.save_every < 1:
        raise CourseError(f"--save-every {args.save_every}: must be at least 1 step")
    for name in ("train", "eval"):
        path = getattr(args, name, None)
        if path is None:  # an optional file the command does without (pretrain's --eval)
            continue
        if not path.is_file():
            what = "is a folder, not a file" if path.is_dir() else "file not found"
            raise CourseError(f"--{name} {path}: {what}")
    out = args.output_dir
    if out.exists() and not out.is_dir():
        raise CourseError(f"--output-dir {out}: exists and is not a folder")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise CourseError(f"--output-dir {out}: cannot create it ({err.strerror})") from None
    if not os.access(out, os.W_OK):
        raise CourseError(f"--output-dir {out}: not writable")
    check_resume(args)


def check_max_length(max_length: int, limit: int) -> None:
    """The second half of the ``--max-length`` rule: no more than the model reads."""
    if max_length > limit:
        raise CourseError(f"--max-length {max_length}: this model reads at most {limit} tokens")


# ------------------------------------------------------------ resumable runs
def checkpoints_dir(output_dir: Path) -> Path:
    """Where a command's resume checkpoints live (the Trainer's ``output_dir/checkpoints``)."""
    return Path(output_dir) / "checkpoints"


def holds_interrupted_run(output_dir: Path) -> bool:
    """Checkpoints are removed after a run succeeds, so any left mean an unfinished run."""
    folder = checkpoints_dir(output_dir)
    return folder.is_dir() and any(folder.glob("step-*"))


def check_resume(args: argparse.Namespace) -> None:
    """Refuse to start over an interrupted run by accident, and to resume nothing."""
    interrupted = holds_interrupted_run(args.output_dir)
    if interrupted and not args.resume:
        raise CourseError(f"{args.output_dir} holds an interrupted run: add --resume to "
                          f"continue it, or remove {checkpoints_dir(args.output_dir)}")
    if args.resume and not interrupted:
        say(f"note: --resume: {args.output_dir} holds no interrupted run; starting from "
            "the beginning", err=True)


def checkpointing(args: argparse.Namespace) -> dict:
    """``TrainingConfig`` fields for a command's resumable run (checkpoints only, no
    evaluation: the eval file is the test set and is scored once at the end)."""
    return {"output_dir": str(args.output_dir),
            "save_every": args.save_every if args.save_every else "epoch",
            "eval_every": None, "load_best_at_end": False}


def remove_checkpoints(output_dir: Path) -> None:
    """After a finished run only ``model/`` and ``metrics.json`` stay."""
    shutil.rmtree(checkpoints_dir(output_dir), ignore_errors=True)


# ------------------------------------------------------------ talking to the user
def is_main_process() -> bool:
    """False in the second and later processes of a ``torchrun`` launch."""
    return os.environ.get("RANK", "0") == "0"


def say(message: str, *, err: bool = False) -> None:
    """Print once per launch (not once per process); notes go to stderr."""
    if is_main_process():
        print(message, file=sys.stderr if err else sys.stdout, flush=True)


def one_line(err: BaseException) -> str:
    """An exception's message on one line (a learner reads the first line only)."""
    text = " ".join(str(err).split())
    return text or type(err).__name__
