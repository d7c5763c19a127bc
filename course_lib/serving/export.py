"""Export a fine-tuned classifier to ONNX for CPU serving with onnxruntime, optionally int8.

Why ONNX: onnxruntime runs the same graph with fused CPU kernels and no Python in the
loop, and its dynamic int8 quantisation stores the weights of every matrix product in
8 bits (a 4x smaller file) and computes them with integer kernels: on two cores
several times PyTorch's throughput (``benchmarks/inference.py`` measures it).

How: ``torch.onnx.export(..., dynamo=False)``, the TorchScript-based exporter. With
torch 2.13 both exporters work offline on the course's models; we use this one
because it needs no extra package (the dynamo exporter needs ``onnxscript``), writes
one self-contained file, and exported the quick backbone in 4 s against 19 s. It is
deprecated since torch 2.9 in favour of ``dynamo=True``; if a later torch removes it,
install ``onnxscript`` and switch ``dynamo=True`` (with ``dynamic_shapes`` instead of
``dynamic_axes``). Batch and sequence axes are dynamic, so one file takes any
batch size and text length up to the model's position limit.

The export is checked before it is written: the ONNX logits on a few sentences of
different lengths (padded in one batch) must match PyTorch's within
:data:`FP32_TOLERANCE`; the measured difference (and, for int8, the share of
sentences that keep their label) goes into ``export.json``. A failed check writes
nothing, and the output folder is replaced whole (never half-written).

The folder holds ``model.onnx``, the tokenizer, ``config.json`` (labels),
``calibration.json`` when the model has one, and ``export.json``; ``predict`` and
:func:`course_lib.serving.load_predictor` run it.
"""

from __future__ import annotations

import json
import logging
import shutil
import warnings
from pathlib import Path

import numpy as np

from ..settings import CourseError
from .calibration import CALIBRATION_FILE
from .predict import EXPORT_MANIFEST, ONNX_FILE, inspect_model_folder

OPSET = 17  # LayerNormalization is one op from 17 on; onnxruntime 1.32 runs up to 23
QUANTIZE = ("int8",)
FP32_TOLERANCE = 1e-4  # max |logit difference| between ONNX fp32 and PyTorch
CHECK_SENTENCES = [
    "Profits rose.",
    "Operating profit fell to EUR 3.5 mn from EUR 8.2 mn a year earlier.",
    "The company said it expects net sales for the full year to grow slightly compared "
    "with last year, while the outlook for the second half remains uncertain.",
    "No change.",
]


def _logits_module(model, names: list[str]):
    """A plain ``forward(input_ids, attention_mask[, token_type_ids]) -> logits`` for the
    tracer (Hugging Face models take keywords and return an output object)."""
    import torch

    class Logits(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.model = model

        def forward(self, *inputs):
            return self.model(**dict(zip(names, inputs))).logits

    return Logits().eval()


def _check_inputs(tokenizer, names: list[str]) -> dict:
    encoded = tokenizer(CHECK_SENTENCES, padding=True, return_tensors="pt")
    return {name: encoded[name] for name in names}


def export_onnx(model_dir, output_dir, *, quantize: str | None = None,
                threads: int | None = None) -> dict:
    """Write an ONNX folder for the classifier in ``model_dir``; returns the manifest.

    ``quantize="int8"``: dynamic quantisation of the weights
    (``onnxruntime.quantization.quantize_dynamic``, per-channel signed int8 weights,
    activations quantised on the fly; see :func:`_quantize_int8`); ``model.onnx`` is
    then the int8 model.
    """
    import onnxruntime as ort
    import torch
    import transformers

    from .. import settings
    from ..artifacts import save_atomically
    from .predict import load_predictor, session_options

    if quantize is not None and quantize not in QUANTIZE:
        raise CourseError(f"--quantize {quantize}: choose one of {', '.join(QUANTIZE)}")
    model_dir, output_dir = Path(model_dir), Path(output_dir)
    if inspect_model_folder(model_dir) != "pytorch":
        raise CourseError(f"--model {model_dir}: is already an exported ONNX folder; export "
                          "the model/ folder written by classify")
    if output_dir.exists() and not output_dir.is_dir():
        raise CourseError(f"--output-dir {output_dir}: exists and is not a folder")
    if output_dir.is_dir() and any(output_dir.iterdir()) and not (
            output_dir / EXPORT_MANIFEST).is_file():
        # the folder is replaced whole: never let that delete somebody's other files
        raise CourseError(f"--output-dir {output_dir}: holds other files; give a new folder "
                          "(or an earlier export's, which is replaced)")
    predictor = load_predictor(model_dir)
    model = predictor.runner.to("cpu").float().eval()
    names = predictor.input_names
    inputs = _check_inputs(predictor.tokenizer, names)
    with torch.inference_mode():
        reference = model(**inputs).logits.numpy()

    def write(tmp: Path) -> None:
        fp32 = tmp / (ONNX_FILE if quantize is None else "model.fp32.onnx")
        with warnings.catch_warnings(), settings.quiet_libraries():
            warnings.simplefilter("ignore")  # tracer and deprecation notes a user cannot act on
            torch.onnx.export(_logits_module(model, names), tuple(inputs[n] for n in names), str(fp32),
                              input_names=names, output_names=["logits"], opset_version=OPSET,
                              dynamic_axes={**{n: {0: "batch", 1: "sequence"} for n in names},
                                            "logits": {0: "batch"}}, dynamo=False)
        if quantize:
            _quantize_int8(fp32, tmp / ONNX_FILE)
            fp32.unlink()
        session = ort.InferenceSession(str(tmp / ONNX_FILE), session_options(threads),
                                       providers=["CPUExecutionProvider"])
        logits = session.run(["logits"], {i.name: inputs[i.name].numpy()
                                          for i in session.get_inputs()})[0]
        manifest["inputs"] = [i.name for i in session.get_inputs()]
        check = {"sentences": len(CHECK_SENTENCES),
                 "max_abs_logit_diff": float(np.abs(logits - reference).max()),
                 "same_label": float((logits.argmax(1) == reference.argmax(1)).mean())}
        if quantize is None and check["max_abs_logit_diff"] > FP32_TOLERANCE:
            raise CourseError(f"export check failed: ONNX logits differ from PyTorch's by "
                              f"{check['max_abs_logit_diff']:.2g} (> {FP32_TOLERANCE:g}); "
                              "nothing was written")
        predictor.tokenizer.save_pretrained(tmp)
        model.config.save_pretrained(tmp)
        if (model_dir / CALIBRATION_FILE).is_file():
            shutil.copy2(model_dir / CALIBRATION_FILE, tmp / CALIBRATION_FILE)
        manifest.update(check=check, onnx_mb=round((tmp / ONNX_FILE).stat().st_size / 2**20, 1))
        (tmp / EXPORT_MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n",
                                           encoding="utf-8")

    manifest = {"format": "onnx", "file": ONNX_FILE, "quantize": quantize,
                "labels": predictor.labels, "inputs": names, "output": "logits",
                "max_positions": int(getattr(model.config, "max_position_embeddings", 512)),
                "opset": OPSET, "exporter": "torch.onnx.export (TorchScript, dynamo=False)",
                "source": str(model_dir), "calibrated": predictor.calibration is not None,
                "versions": {"torch": torch.__version__,
                             "transformers": transformers.__version__,
                             "onnxruntime": ort.__version__}}
    save_atomically(output_dir, write)
    return manifest


def _quantize_int8(source: Path, target: Path) -> None:
    """Dynamic int8 quantisation: weights signed int8 with one scale per output channel,
    activations uint8 at run time.

    ``per_channel`` and ``reduce_range`` (7-bit weights, so the uint8 x int8 products
    cannot saturate on CPUs without VNNI instructions, which many laptops lack) were
    measured on the quick backbone fine-tuned on FPB all-agree (452 test sentences):
    same label as fp32 on 99.8% with both, 98.9% with neither; max logit difference
    0.94 against 1.88, at the same speed.
    """
    from onnxruntime.quantization import QuantType, quantize_dynamic

    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # "consider pre-processing" is logged on the root logger
    try:
        quantize_dynamic(str(source), str(target), weight_type=QuantType.QInt8,
                         per_channel=True, reduce_range=True)
    finally:
        root.setLevel(level)
