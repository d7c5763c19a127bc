"""``python -m course_lib predict``: label a new file with a trained or exported model.

    python -m course_lib predict --model runs/fpb/model --input new.csv \\
        --text-column sentence --output labelled.csv

``--model`` is the ``model/`` folder that ``classify`` wrote or a folder that
``export`` wrote (ONNX, optionally int8). The output has the input's columns plus
``label``, ``score`` (the probability of that label) and one ``prob_<label>`` column per
class, in the format of its suffix (CSV, TSV, JSON Lines, Parquet). When the model
folder has a ``calibration.json`` (``classify`` fits one on its validation split) the
probabilities are temperature-scaled and the per-class decision offsets applied.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from .common import say

HELP = "label a CSV / TSV / JSON Lines / Parquet file with a trained or exported model"
DEFAULT_BATCH_SIZE = 32


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = ("Label a table with a model/ folder written by classify or a "
                          "folder written by export; adds label, score and prob_<label> "
                          "columns.")
    parser.add_argument("--model", required=True, type=Path,
                        help="the model/ folder of classify, or an export folder")
    parser.add_argument("--input", required=True, type=Path, help="file to label")
    parser.add_argument("--text-column", required=True, help="column with the text")
    parser.add_argument("--text-pair-column", default=None,
                        help="second text, for a model trained on sentence pairs")
    parser.add_argument("--output", required=True, type=Path,
                        help="where to write the labelled table (.csv, .tsv, .jsonl, .parquet)")
    parser.add_argument("--batch-size", type=int, default=DEFAULT_BATCH_SIZE,
                        help=f"texts per batch (default: {DEFAULT_BATCH_SIZE})")
    parser.add_argument("--max-length", type=int, default=None,
                        help="tokens read per text (default: the model's limit)")


def run(args: argparse.Namespace) -> dict:
    """Check, read, predict, write. Returns the summary printed."""
    from ..serving.predict import predict_file  # numpy only; torch loads with the model

    summary = predict_file(args.model, args.input, args.output, args.text_column,
                           args.text_pair_column, batch_size=args.batch_size,
                           max_length=args.max_length)
    for old, new in summary["renamed_columns"].items():
        say(f"note: the input's column {old!r} is kept as {new!r}", err=True)
    counts = ", ".join(f"{k} {v}" for k, v in summary["label_counts"].items())
    say(f"{summary['rows']} rows labelled in {summary['seconds']:.1f} s "
        f"({summary['texts_per_second']} texts/s, {summary['model_kind']}"
        f"{', calibrated' if summary['calibrated'] else ''}) -> {summary['output']}; {counts}")
    return summary
