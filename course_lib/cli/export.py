"""``python -m course_lib export``: an ONNX model for CPU serving, optionally int8.

    python -m course_lib export --model runs/fpb/model --output-dir runs/fpb/onnx-int8 \\
        --quantize int8

Writes ``model.onnx`` (dynamic batch and sequence axes), the tokenizer, the labels
(``config.json``), ``calibration.json`` when the model has one, and ``export.json``
(what was exported, how, and how closely it matches PyTorch on a few sentences).
``predict --model OUT`` runs it with onnxruntime. ``--quantize int8`` stores the
weights in 8 bits (dynamic quantisation): about 4x smaller and faster on a CPU, for
a small loss of accuracy that ``benchmarks/inference.py`` measures.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from .common import say

HELP = "export a classifier to ONNX for onnxruntime (optionally int8)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = ("Export the model/ folder of classify to ONNX (onnxruntime), "
                          "optionally quantised to int8.")
    parser.add_argument("--model", required=True, type=Path,
                        help="the model/ folder written by classify")
    parser.add_argument("--quantize", choices=("int8",), default=None,
                        help="dynamic int8 quantisation of the weights (default: none, fp32)")
    parser.add_argument("--output-dir", required=True, type=Path,
                        help="folder to write model.onnx, tokenizer and labels to")


def run(args: argparse.Namespace) -> dict:
    from ..serving.export import export_onnx

    manifest = export_onnx(args.model, args.output_dir, quantize=args.quantize)
    check = manifest["check"]
    say(f"{manifest['quantize'] or 'fp32'} ONNX model, {manifest['onnx_mb']} MB -> "
        f"{args.output_dir}/; check on {check['sentences']} sentences: max logit difference "
        f"{check['max_abs_logit_diff']:.1e}, same label {100 * check['same_label']:.0f}%")
    return manifest
