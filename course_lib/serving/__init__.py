"""After training: label new files, calibrate probabilities, export for CPU serving.

* :mod:`.calibration`: expected calibration error, temperature scaling and per-class
  decision offsets, fitted on a validation split and stored as ``calibration.json``;
* :mod:`.predict`: :func:`load_predictor` for a ``model/`` folder or an exported ONNX
  folder, :func:`predict_file` for a whole table (the ``predict`` command);
* :mod:`.export`: :func:`export_onnx`, optionally int8 (the ``export`` command);
* :mod:`.plots`: the reliability diagram (imported on its own: it needs matplotlib).

Importing this package loads numpy only; torch, transformers and onnxruntime load
when a model does.
"""

from .calibration import (
    Calibration,
    calibrate,
    expected_calibration_error,
    fit_calibration,
    fit_class_bias,
    fit_temperature,
    hold_out,
    reliability_data,
)
from .export import export_onnx
from .predict import Predictions, Predictor, load_predictor, predict_file

__all__ = ["Calibration", "Predictions", "Predictor", "calibrate",
           "expected_calibration_error", "export_onnx", "fit_calibration", "fit_class_bias",
           "fit_temperature", "hold_out", "load_predictor", "predict_file", "reliability_data"]
