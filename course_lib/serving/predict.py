"""Label new texts with a trained classifier: a ``model/`` folder or an exported ONNX folder.

One :class:`Predictor` for both kinds of folder, so the command line, the benchmark
and the notebook run the same code:

* the folder is recognised (and a wrong one refused in one line) by
  :func:`inspect_model_folder` before anything heavy loads;
* texts are tokenised once, sorted by length (longest first) and cut into batches
  padded to their own longest text, which on short sentences does several times
  less work than padding everything to the longest text of the file. The PyTorch
  path runs through the course's one inference loop,
  :func:`course_lib.training.batched_outputs` (eval mode, ``inference_mode``); the
  ONNX path feeds ``onnxruntime`` the same batches;
* ``calibration.json`` (see :mod:`.calibration`), when the folder has one, turns
  logits into temperature-scaled probabilities and applies the per-class decision
  offsets. ``score`` is the probability of the chosen label.

:func:`predict_file` reads a table (CSV, TSV, JSON Lines, Parquet), adds ``label``,
``score`` and one ``prob_<label>`` column per class, and writes the same format.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..settings import CourseError
from .calibration import Calibration, softmax

ONNX_FILE = "model.onnx"
EXPORT_MANIFEST = "export.json"
WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json")
TOKENIZER_FILES = ("tokenizer.json", "vocab.txt")
CHUNK_BATCHES = 8  # batches per progress-bar step on the PyTorch path


def inspect_model_folder(folder) -> str:
    """``"pytorch"`` or ``"onnx"``; anything else is a one-line :class:`CourseError`."""
    folder = Path(folder)
    if not folder.exists():
        raise CourseError(f"--model {folder}: folder not found")
    if not folder.is_dir():
        hint = " (give the folder that holds it)" if folder.suffix == ".onnx" else ""
        raise CourseError(f"--model {folder}: is a file, not a model folder{hint}")
    if (folder / ONNX_FILE).is_file():
        if not (folder / EXPORT_MANIFEST).is_file():
            raise CourseError(f"--model {folder}: has {ONNX_FILE} but no {EXPORT_MANIFEST}; "
                              "use a folder written by `python -m course_lib export`")
        kind = "onnx"
    elif (folder / "config.json").is_file():
        try:
            config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
        except (ValueError, UnicodeDecodeError):
            raise CourseError(f"--model {folder}: config.json is not valid JSON") from None
        architectures = config.get("architectures") or []
        if not any(a.endswith("ForSequenceClassification") for a in architectures):
            what = ", ".join(architectures) or config.get("model_type", "unknown")
            raise CourseError(f"--model {folder}: a {what} model, not a text classifier; give "
                              "the model/ folder written by `python -m course_lib classify`")
        if not any((folder / name).is_file() for name in WEIGHT_FILES):
            raise CourseError(f"--model {folder}: no safetensors weights (model.safetensors); "
                              "the course loads no other weight format")
        kind = "pytorch"
    elif (folder / "model" / "config.json").is_file():
        raise CourseError(f"--model {folder}: not a model folder; did you mean "
                          f"{folder / 'model'}?")
    elif any((folder / name).is_file() for name in ("adapter_config.json",
                                                    "course_adapter.json")):
        raise CourseError(f"--model {folder}: holds adapter weights only; give the model/ "
                          "folder written by `python -m course_lib classify`")
    else:
        raise CourseError(f"--model {folder}: not a model folder (no config.json or "
                          f"{ONNX_FILE}); give the model/ folder written by classify or a "
                          "folder written by export")
    if not any((folder / name).is_file() for name in TOKENIZER_FILES):
        raise CourseError(f"--model {folder}: no tokenizer files (tokenizer.json or vocab.txt)")
    return kind


@dataclass
class Predictions:
    """``labels`` (names), ``label_ids``, ``scores`` (probability of the chosen label),
    ``probabilities`` (calibrated when the model has a calibration) and raw ``logits``."""

    labels: list[str]
    label_ids: np.ndarray
    scores: np.ndarray
    probabilities: np.ndarray
    logits: np.ndarray


@dataclass
class Predictor:
    """A loaded classifier (PyTorch or ONNX), its tokenizer, labels and calibration."""

    folder: Path
    kind: str
    labels: list[str]
    tokenizer: object
    max_length: int
    runner: object  # a torch module or an onnxruntime.InferenceSession
    calibration: Calibration | None = None
    input_names: list[str] = field(default_factory=list)

    def encode(self, texts: list[str], pairs: list[str] | None = None) -> list[dict]:
        encoded = self.tokenizer(list(texts), list(pairs) if pairs is not None else None,
                                 truncation=True, max_length=self.max_length)
        return [{k: encoded[k][i] for k in self.input_names if k in encoded}
                for i in range(len(texts))]

    def logits(self, texts: list[str], pairs: list[str] | None = None, *,
               batch_size: int = 32, progress: bool = False) -> np.ndarray:
        """Raw logits, one row per text, in the order given."""
        from tqdm.auto import tqdm

        examples = self.encode(texts, pairs)
        out = np.zeros((len(examples), len(self.labels)), dtype=np.float32)
        order = sorted(range(len(examples)), key=lambda i: -len(examples[i]["input_ids"]))
        step = batch_size * (CHUNK_BATCHES if self.kind == "pytorch" else 1)
        with tqdm(total=len(order), unit="text", disable=not progress) as bar:
            for start in range(0, len(order), step):
                idx = order[start:start + step]
                out[idx] = self._run([examples[i] for i in idx], batch_size)
                bar.update(len(idx))
        return out

    def _run(self, examples: list[dict], batch_size: int) -> np.ndarray:
        pad = self.tokenizer.pad_token_id or 0
        if self.kind == "pytorch":
            import torch

            from ..training import batched_outputs

            outputs = batched_outputs(self.runner, examples, batch_size=batch_size,
                                      pad_token_id=pad)
            return torch.stack(outputs["logits"]).numpy()
        width = max(len(ex["input_ids"]) for ex in examples)
        feed = {}
        for name in self.input_names:
            value = pad if name == "input_ids" else 0
            batch = np.full((len(examples), width), value, dtype=np.int64)
            for row, ex in enumerate(examples):
                batch[row, :len(ex[name])] = ex[name]
            feed[name] = batch
        return self.runner.run(["logits"], feed)[0]

    def predict(self, texts: list[str], pairs: list[str] | None = None, *,
                batch_size: int = 32, progress: bool = False) -> Predictions:
        """Labels, scores and probabilities (calibrated when the folder has a calibration)."""
        logits = self.logits(texts, pairs, batch_size=batch_size, progress=progress)
        if self.calibration is not None:
            probs, ids = self.calibration.probabilities(logits), self.calibration.predict(logits)
        else:
            probs = softmax(logits)
            ids = probs.argmax(axis=1)
        return Predictions(labels=[self.labels[i] for i in ids], label_ids=ids,
                           scores=probs[np.arange(len(ids)), ids], probabilities=probs,
                           logits=logits)


def load_predictor(folder, *, max_length: int | None = None, threads: int | None = None
                   ) -> Predictor:
    """Load a ``model/`` folder (PyTorch, eval mode, CPU or the profile's device) or an
    exported ONNX folder (``onnxruntime`` on the CPU; ``threads`` sets its intra-op
    threads). ``max_length`` defaults to the tokenizer's ``model_max_length``, at most
    the model's position limit (512 for BERT)."""
    from .. import settings

    folder = Path(folder)
    kind = inspect_model_folder(folder)
    with settings.quiet_libraries():  # load reports hide the results; undone after
        tokenizer, runner, labels, limit, inputs = _load(folder, kind, threads)
    calibration = Calibration.load(folder)
    if calibration is not None and calibration.labels != labels:
        raise CourseError(f"{folder}/calibration.json: its labels ({', '.join(calibration.labels)})"
                          f" are not the model's ({', '.join(labels)}); delete it or re-run")
    if max_length is not None and not 8 <= max_length <= limit:
        raise CourseError(f"--max-length {max_length}: this model reads 8 to {limit} tokens")
    if max_length is None:  # the tokenizer's own limit, when it states a sensible one
        stated = getattr(tokenizer, "model_max_length", None) or limit
        max_length = min(limit, stated) if stated < 100_000 else limit
    return Predictor(folder=folder, kind=kind, labels=labels, tokenizer=tokenizer,
                     max_length=max_length, runner=runner, calibration=calibration,
                     input_names=inputs)


def session_options(threads: int | None = None):
    """onnxruntime options: full graph optimisation, ``threads`` intra-op threads
    (None: onnxruntime's default, one per physical core)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if threads:
        options.intra_op_num_threads = threads
    return options


def _load(folder: Path, kind: str, threads: int | None):
    """(tokenizer, runner, labels, max positions, input names) of a checked folder."""
    from transformers import AutoTokenizer

    from .. import settings

    tokenizer = AutoTokenizer.from_pretrained(folder)
    if kind == "onnx":
        import onnxruntime as ort

        manifest = json.loads((folder / EXPORT_MANIFEST).read_text(encoding="utf-8"))
        runner = ort.InferenceSession(str(folder / ONNX_FILE), session_options(threads),
                                      providers=["CPUExecutionProvider"])
        return (tokenizer, runner, [str(x) for x in manifest["labels"]],
                int(manifest["max_positions"]), [i.name for i in runner.get_inputs()])
    from transformers import AutoModelForSequenceClassification

    from .. import strategies  # noqa: F401 - registers the adapter model type

    runner = AutoModelForSequenceClassification.from_pretrained(folder)
    runner.to(settings.get_device()).eval()
    labels = [str(runner.config.id2label[i]) for i in range(runner.config.num_labels)]
    inputs = [n for n in ("input_ids", "attention_mask", "token_type_ids")
              if n in tokenizer.model_input_names or n == "input_ids"]
    return (tokenizer, runner, labels,
            int(getattr(runner.config, "max_position_embeddings", 512)), inputs)


# ------------------------------------------------------------------ tables
def _texts(rows: list[dict], column: str, source: Path) -> list[str]:
    texts = []
    for number, row in enumerate(rows, 1):
        value = row.get(column)
        if value is None or (isinstance(value, float) and np.isnan(value)) or not str(
                value).strip():
            raise CourseError(f"{source} row {number}: empty text in column {column!r}")
        texts.append(str(value))
    return texts


def prediction_rows(rows: list[dict], predictions: Predictions, label_names: list[str]
                    ) -> tuple[list[dict], list[str]]:
    """Input rows + ``label``, ``score``, ``prob_<label>``; an input column with one of
    those names is kept as ``<name>_input``. Returns the rows and the renamed columns."""
    added = ["label", "score"] + [f"prob_{name}" for name in label_names]
    clash = [c for c in added if rows and c in rows[0]]
    out = []
    for i, row in enumerate(rows):
        new = {(f"{k}_input" if k in clash else k): v for k, v in row.items()}
        new["label"] = predictions.labels[i]
        new["score"] = round(float(predictions.scores[i]), 6)
        for k, name in enumerate(label_names):
            new[f"prob_{name}"] = round(float(predictions.probabilities[i, k]), 6)
        out.append(new)
    return out, clash


def check_output_path(path) -> Path:
    """The output's suffix names a format we write (checked before any model loads)."""
    from ..data.tables import TABLE_FORMATS

    path = Path(path)
    if path.suffix.lower() not in TABLE_FORMATS:
        raise CourseError(f"--output {path}: unknown file type {path.suffix or '(none)'!r}; "
                          "use .csv, .tsv, .jsonl or .parquet")
    if path.is_dir():
        raise CourseError(f"--output {path}: is a folder; give a file name")
    return path


def predict_file(model, input_path, output_path, text_column: str,
                 pair_column: str | None = None, *, batch_size: int = 32,
                 max_length: int | None = None, progress: bool | None = None) -> dict:
    """Label every row of ``input_path`` and write ``output_path`` (format by suffix).

    Every check that needs no model (output suffix, input file, columns, empty texts,
    model folder) runs before the model loads. Returns a summary (rows, label counts,
    seconds, texts per second, model kind, whether a calibration was applied).
    """
    from .. import settings
    from ..data.tables import read_table, write_table

    output_path = check_output_path(output_path)
    input_path = Path(input_path)
    if not input_path.is_file():
        what = "is a folder, not a file" if input_path.is_dir() else "file not found"
        raise CourseError(f"--input {input_path}: {what}")
    if batch_size < 1:
        raise CourseError(f"--batch-size {batch_size}: must be at least 1")
    if max_length is not None and max_length < 8:
        raise CourseError(f"--max-length {max_length}: must be at least 8 tokens")
    inspect_model_folder(model)
    rows = read_table(input_path)
    if not rows:
        raise CourseError(f"{input_path}: no rows")
    found = list(rows[0].keys())
    for column in [text_column] + ([pair_column] if pair_column else []):
        if column not in found:
            raise CourseError(f"{input_path}: missing column {column!r} (found: "
                              f"{', '.join(map(str, found)) or 'none'})")
    texts = _texts(rows, text_column, input_path)
    pairs = _texts(rows, pair_column, input_path) if pair_column else None
    predictor = load_predictor(model, max_length=max_length)
    started = time.perf_counter()
    predictions = predictor.predict(texts, pairs, batch_size=batch_size,
                                    progress=settings.show_progress() if progress is None
                                    else progress)
    seconds = time.perf_counter() - started
    out, clash = prediction_rows(rows, predictions, predictor.labels)
    write_table(out, output_path)
    counts = Counter(predictions.labels)
    return {"rows": len(out), "output": str(output_path), "model_kind": predictor.kind,
            "calibrated": predictor.calibration is not None,
            "label_counts": {name: counts.get(name, 0) for name in predictor.labels},
            "seconds": round(seconds, 2),
            "texts_per_second": round(len(out) / seconds, 1) if seconds > 0 else None,
            "renamed_columns": {c: f"{c}_input" for c in clash}}
