"""Everything the course writes to disk for a user, in one place.

Model folders are written atomically (a reader sees the old folder or the new one,
never half of one), metrics go to ``metrics.json`` via a temporary file and a rename,
and every saved model gets a model card (``README.md``). Training, the strategies and
the command line all write through these functions.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from collections.abc import Callable
from pathlib import Path


def save_atomically(directory: Path, write: Callable[[Path], None]) -> Path:
    """Write a folder so that a good earlier version is never lost.

    ``write(tmp)`` fills a new hidden sibling with a unique name (``.NAME.<uuid>.tmp``, in
    the same parent so the renames below stay on one file system; made with ``os.mkdir``
    rather than ``tempfile.mkdtemp`` so the folder gets the usual permissions, not 0700).
    Only once it is complete, the old folder is renamed aside (``.NAME.<uuid>.old``), the
    new one renamed into place, and the old one deleted. If the write fails (an exception,
    Ctrl-C) the old folder was never touched; if the second rename fails, the old folder
    is renamed back. A process killed at any moment leaves the old folder or the new one
    complete on disk (for the instant between the two renames, under its hidden name).
    Siblings such as ``NAME.tmp`` or ``NAME.old`` belong to someone else and are never touched.
    """
    directory = Path(directory)
    directory.parent.mkdir(parents=True, exist_ok=True)
    tmp = _unique_sibling(directory, "tmp")
    tmp.mkdir()
    try:
        write(tmp)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if not directory.exists():
        os.rename(tmp, directory)
        return directory
    aside = _unique_sibling(directory, "old")
    try:
        os.rename(directory, aside)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    try:
        os.rename(tmp, directory)
    except BaseException:
        os.rename(aside, directory)
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    shutil.rmtree(aside, ignore_errors=True)
    return directory


def _unique_sibling(directory: Path, kind: str) -> Path:
    return directory.with_name(f".{directory.name}.{uuid.uuid4().hex}.{kind}")


def save_model_folder(directory, model, tokenizer=None, metrics: dict | None = None) -> Path:
    """A folder ``from_pretrained`` / ``pipeline`` load: the model (``save_pretrained``, or
    ``model.safetensors`` for a plain module), the tokenizer and ``metrics.json``, written
    atomically (:func:`save_atomically`)."""
    def write(tmp: Path) -> None:
        if hasattr(model, "save_pretrained"):
            model.save_pretrained(tmp)
        else:
            from safetensors.torch import save_model

            save_model(model, str(tmp / "model.safetensors"))
        if tokenizer is not None:
            tokenizer.save_pretrained(tmp)
        if metrics:
            clean = {k: v for k, v in metrics.items() if isinstance(v, (int, float, str))}
            (tmp / "metrics.json").write_text(json.dumps(clean, indent=2))

    return save_atomically(Path(directory), write)


def write_metrics(output_dir, metrics: dict) -> Path:
    """``output_dir/metrics.json``, written to a unique temporary file and renamed over."""
    path = Path(output_dir) / "metrics.json"
    text = json.dumps(metrics, indent=2, default=_json_default) + "\n"
    tmp = path.with_name(f".metrics.{uuid.uuid4().hex}.tmp")  # ours alone; usual permissions
    try:
        with open(tmp, "x") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def _json_default(value):
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def write_model_card(model_dir, info: dict) -> Path:
    """``model_dir/README.md``: what the model is, how it was made, how well it did.

    ``info`` keys (all optional): ``task`` (pipeline task), ``title``, ``base_model``,
    ``strategy``, ``labels``, ``train_file``, ``eval_file``, ``train_examples``,
    ``eval_examples``, ``metrics`` (name -> number), ``hyperparameters`` (dict),
    ``command``, ``example`` (an input for the usage snippet), ``model_path`` (for the
    snippet), ``notes`` (list of lines).
    """
    task = info.get("task", "text-classification")
    lines = ["---", "library_name: transformers", f"pipeline_tag: {task}",
             "tags: [course_lib, fine-tuned]", "---", "",
             f"# {info.get('title', 'Fine-tuned ' + task + ' model')}", "",
             "Made with the `course_lib` command line of the course *Fine-tuning BERT for "
             "specialised NLP*.", ""]
    facts = [("base model", info.get("base_model")), ("strategy", info.get("strategy")),
             ("labels", ", ".join(map(str, info["labels"])) if info.get("labels") else None),
             ("training data", _data_line(info.get("train_file"), info.get("train_examples"))),
             ("evaluation data", _data_line(info.get("eval_file"), info.get("eval_examples")))]
    lines += ["| | |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in facts if v]
    for name, value in (info.get("hyperparameters") or {}).items():
        lines.append(f"| {name} | {value} |")
    if info.get("metrics"):
        lines += ["", "## Evaluation", "", "| metric | value |", "|---|---|"]
        lines += [f"| {k} | {v:.4f} |" if isinstance(v, float) else f"| {k} | {v} |"
                  for k, v in info["metrics"].items()]
    example = info.get("example", "Profits rose sharply in the third quarter.")
    loader = ("import course_lib.strategies  # registers the adapter model type\n"
              if info.get("strategy") == "adapters" else "")
    lines += ["", "## Use", "", "```python", f"{loader}from transformers import pipeline", "",
              f'model = pipeline("{task}", model="{info.get("model_path", "path/to/model")}")',
              f"print(model({example!r}))" if task != "question-answering" else
              'print(model(question="...", context="..."))', "```"]
    if info.get("command"):
        lines += ["", "## Reproduce", "", "```bash", info["command"], "```"]
    lines += ["", "## Limits", "",
              "Scores come from the evaluation file above only; check the model on data "
              "like yours before relying on it."]
    lines += [f"{note}" for note in info.get("notes", [])]
    path = Path(model_dir) / "README.md"
    path.write_text("\n".join(lines) + "\n")
    return path


def _data_line(path, count) -> str | None:
    if not path:
        return None
    return f"`{Path(path).name}` ({count} examples)" if count is not None else f"`{Path(path).name}`"
