"""``python -m course_lib qa``: fine-tune an extractive QA model on SQuAD-format JSON.

    python -m course_lib qa --train train.json --eval dev.json --output-dir runs/qa

This module only assembles the command: the options every training command shares
come from :mod:`course_lib.cli.common`; the QA-only options, the recipe and the run
live in :mod:`course_lib.cli.qa_command` (light at import: torch and the QA library load
inside ``run_qa_command``, so ``--help`` stays fast). Checkpoints, ``--resume`` and
``--save-every`` work as for ``classify``.
"""

from __future__ import annotations

import argparse

from .common import add_common_options, check_common_options
from .qa_command import add_qa_arguments, run_qa_command

HELP = "extractive question answering (SQuAD JSON)"
STRATEGIES = ("full", "layerwise", "lora")  # adapters cannot be merged into a QA model


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = "Fine-tune an extractive QA model on SQuAD-format JSON files."
    add_qa_arguments(parser)
    add_common_options(parser, strategies=STRATEGIES, default_strategy="the QA recipe",
                       default_batch_size="the QA recipe", default_max_length="the QA recipe")


def run(args: argparse.Namespace) -> dict:
    check_common_options(args)
    return run_qa_command(args)
