"""The course's command line: fine-tune on your own files in one command.

    python -m course_lib classify --train train.csv --eval test.csv \\
        --text-column sentence --label-column label --output-dir runs/fpb
    python -m course_lib qa --train train.json --eval dev.json --output-dir runs/qa

``classify`` reads CSV, TSV, JSON Lines or Parquet (labels may be strings or
integers), fine-tunes with one of the strategies of ``course_lib.strategies`` and
writes ``DIR/metrics.json`` and ``DIR/model/``, a folder ``transformers.pipeline``
loads (with a model card, ``README.md``). The defaults are the course's best recipe
for the quick backbone: the layerwise strategy (the FinBERT recipe), with the
learning rate and epochs of ``strategies.RECOMMENDED_LR`` / ``RECOMMENDED_EPOCHS``.

Bad input (a missing file or column, an empty text, a label in eval that train
never saw, one class only, bytes that are not UTF-8...) ends with one line,
``error: <what and where>``, and exit status 2, before any model is loaded; a
model folder that was there before is only ever replaced by a complete one.

The pieces the ``qa`` command reuses live here too: :func:`build_parser`,
:func:`check_common_options`, :func:`write_metrics`, :func:`write_model_card`.
"""

from __future__ import annotations

import argparse
import csv
import importlib.util
import io
import json
import math
import os
import shlex
import sys
from pathlib import Path

from .settings import DEFAULT_SEED, CourseError

TABLE_FORMATS = {".csv": "csv", ".tsv": "tsv", ".tab": "tsv", ".jsonl": "jsonl",
                 ".json": "jsonl", ".ndjson": "jsonl", ".parquet": "parquet", ".pq": "parquet"}
CLASSIFY_STRATEGIES = ("full", "layerwise", "adapters", "lora")
# classify's default is the FinBERT recipe (layer-wise learning-rate decay + gradual
# unfreezing): on Financial PhraseBank it matched the best full fine-tuning recipe's
# accuracy (validation and test splits) in about half the training time; see the
# README's benchmark tables and docs/DEVELOPING.md.
DEFAULT_STRATEGY = "layerwise"
DEFAULT_BATCH_SIZE = 32
DEFAULT_MAX_LENGTH = 128


# ------------------------------------------------------------------ parser
def add_common_options(parser: argparse.ArgumentParser) -> None:
    """Options every command shares; ``None`` means "the command's own recipe"."""
    parser.add_argument("--strategy", choices=CLASSIFY_STRATEGIES, default=None,
                        help="how the model trains (default: layerwise for classify, "
                             "full for qa)")
    parser.add_argument("--model", default=None,
                        help="a Hub id or a local folder (default: the profile's backbone)")
    parser.add_argument("--epochs", type=float, default=None,
                        help="training epochs (default: the strategy's recipe)")
    parser.add_argument("--lr", type=float, default=None,
                        help="peak learning rate (default: the strategy's recipe)")
    parser.add_argument("--batch-size", type=int, default=None,
                        help=f"examples per step (default: {DEFAULT_BATCH_SIZE} for classify)")
    parser.add_argument("--max-length", type=int, default=None,
                        help=f"tokens per example (default: {DEFAULT_MAX_LENGTH} for classify)")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED,
                        help=f"random seed (default: {DEFAULT_SEED})")
    parser.add_argument("--output-dir", required=True, type=Path,
                        help="where metrics.json and model/ are written")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m course_lib",
        description="Fine-tune a BERT model on your own data (course_lib).")
    commands = parser.add_subparsers(dest="command", required=True, metavar="{classify,qa}")

    classify = commands.add_parser(
        "classify", help="text (or text-pair) classification",
        description="Fine-tune a classifier on CSV / TSV / JSON Lines / Parquet files.")
    classify.add_argument("--train", required=True, type=Path, help="training file")
    classify.add_argument("--eval", required=True, type=Path, help="evaluation file")
    classify.add_argument("--text-column", required=True, help="column with the text")
    classify.add_argument("--text-pair-column", default=None,
                          help="optional second text (sentence pairs)")
    classify.add_argument("--label-column", required=True, help="column with the label")
    add_common_options(classify)

    qa = commands.add_parser(
        "qa", help="extractive question answering (SQuAD JSON)",
        description="Fine-tune an extractive QA model on SQuAD-format JSON files.")
    qa.add_argument("--train", required=True, type=Path, help="SQuAD JSON training file")
    qa.add_argument("--eval", required=True, type=Path, help="SQuAD JSON evaluation file")
    qa.add_argument("--doc-stride", type=int, default=None,
                    help="overlap between windows of a long context (default: the recipe)")
    add_common_options(qa)
    return parser


def check_common_options(args: argparse.Namespace) -> None:
    """Numbers that cannot work, caught before anything is loaded."""
    if args.epochs is not None and not (math.isfinite(args.epochs) and args.epochs > 0):
        raise CourseError(f"--epochs {args.epochs}: must be a positive number")
    if args.lr is not None and not (math.isfinite(args.lr) and 0 < args.lr < 1):
        raise CourseError(f"--lr {args.lr}: must be between 0 and 1 (e.g. 2e-4)")
    if args.batch_size is not None and args.batch_size < 1:
        raise CourseError(f"--batch-size {args.batch_size}: must be at least 1")
    if args.max_length is not None and args.max_length < 8:
        raise CourseError(f"--max-length {args.max_length}: must be at least 8 tokens")
    for name in ("train", "eval"):
        path = getattr(args, name)
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


# ------------------------------------------------------------ shared output
def write_metrics(output_dir, metrics: dict) -> Path:
    """``output_dir/metrics.json``, written via a temporary file and a rename."""
    path = Path(output_dir) / "metrics.json"
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(metrics, indent=2, default=_json_default) + "\n")
    os.replace(tmp, path)
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


# -------------------------------------------------------------- reading data
def _decode(path: Path) -> str:
    try:
        return path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise CourseError(f"{path}: not valid UTF-8 text (undecodable byte at offset "
                          f"{err.start}); save the file as UTF-8") from None


def read_table(path) -> list[dict]:
    """Rows of a CSV, TSV, JSON Lines (or JSON array) or Parquet file, as dicts.

    CSV/TSV cells stay strings (so ``007`` or ``1.0`` are kept as written);
    JSON and Parquet keep their types.
    """
    path = Path(path)
    kind = TABLE_FORMATS.get(path.suffix.lower())
    if kind is None:
        raise CourseError(f"{path}: unknown file type {path.suffix or '(none)'!r}; use .csv, "
                          ".tsv, .jsonl or .parquet")
    if kind == "parquet":
        import pandas as pd

        try:
            frame = pd.read_parquet(path)
        except Exception as err:  # pyarrow raises several types for a bad file
            raise CourseError(f"{path}: not a readable Parquet file ({_first_line(err)})") from None
        return frame.to_dict("records")
    text = _decode(path)
    if not text.strip():
        raise CourseError(f"{path}: the file is empty")
    if kind == "jsonl":
        return _parse_json_rows(text, path)
    try:
        return list(csv.DictReader(io.StringIO(text, newline=""),
                                   delimiter="\t" if kind == "tsv" else ","))
    except csv.Error as err:
        raise CourseError(f"{path}: not a valid {kind.upper()} file ({err})") from None


def _first_line(err: Exception) -> str:
    text = str(err).strip().splitlines()
    return text[0][:160] if text else type(err).__name__


def _parse_json_rows(text: str, path: Path) -> list[dict]:
    if text.lstrip().startswith("["):  # a JSON array of objects is accepted too
        try:
            rows = json.loads(text)
        except json.JSONDecodeError as err:
            raise CourseError(f"{path}: malformed JSON ({err.msg}, line {err.lineno})") from None
        numbered = list(enumerate(rows, 1))
    else:
        numbered = []
        for number, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                numbered.append((number, json.loads(line)))
            except json.JSONDecodeError as err:
                raise CourseError(f"{path} line {number}: not valid JSON ({err.msg})") from None
    for number, row in numbered:
        if not isinstance(row, dict):
            raise CourseError(f"{path} line {number}: expected a JSON object, got "
                              f"{type(row).__name__}")
    return [row for _, row in numbered]


def _is_missing(value) -> bool:
    if value is None:
        return True
    if isinstance(value, float) and math.isnan(value):
        return True
    return isinstance(value, str) and not value.strip()


def _label_text(value) -> str:
    """Labels as strings: ``1``, ``1.0`` and ``"1"`` are the same class."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if hasattr(value, "item"):  # numpy scalar
        return _label_text(value.item())
    return str(value).strip()


def _columns(rows: list[dict], path: Path, needed: list[str]) -> None:
    found = list(rows[0].keys()) if rows else []
    for column in needed:
        if column not in found:
            raise CourseError(f"{path}: missing column {column!r} (found: "
                              f"{', '.join(map(str, found)) or 'none'})")


def load_examples(path: Path, text_column: str, label_column: str,
                  pair_column: str | None = None) -> list[dict]:
    """``[{"text", "text_pair"?, "label"}]`` from a file, every row checked."""
    rows = read_table(path)
    if not rows:
        raise CourseError(f"{path}: no rows")
    _columns(rows, path, [text_column, label_column] + ([pair_column] if pair_column else []))
    examples = []
    for number, row in enumerate(rows, 1):
        example = {}
        for key, column in (("text", text_column), ("text_pair", pair_column)):
            if column is None:
                continue
            value = row[column]
            if _is_missing(value):
                raise CourseError(f"{path} row {number}: empty text in column {column!r}")
            example[key] = str(value)
        if _is_missing(row[label_column]):
            raise CourseError(f"{path} row {number}: empty label in column {label_column!r}")
        example["label"] = _label_text(row[label_column])
        examples.append(example)
    return examples


def label_order(labels) -> list[str]:
    """Class names in id order: numerically when every label is an integer, else A-Z."""
    unique = set(labels)
    try:
        return sorted(unique, key=int)
    except ValueError:
        return sorted(unique)


def check_labels(train: list[dict], evaluation: list[dict], train_path: Path, eval_path: Path,
                 label_column: str) -> list[str]:
    """Label names (id order) after checking that train has two classes and eval no new one."""
    names = label_order(ex["label"] for ex in train)
    if len(names) < 2:
        raise CourseError(f"{train_path}: column {label_column!r} has only one class "
                          f"({names[0]!r}); a classifier needs at least two")
    known = set(names)
    for number, ex in enumerate(evaluation, 1):
        if ex["label"] not in known:
            raise CourseError(f"{eval_path} row {number}: label {ex['label']!r} never appears "
                              f"in {train_path} (train labels: {', '.join(names)})")
    return names


# ---------------------------------------------------------------- classify
def _is_main_process() -> bool:
    """False in the second and later processes of a ``torchrun`` launch."""
    return os.environ.get("RANK", "0") == "0"


def say(message: str) -> None:
    if _is_main_process():
        print(message, flush=True)


def run_classify(args: argparse.Namespace) -> dict:
    """Read, check, fine-tune, evaluate, save. Returns the metrics written."""
    train = load_examples(args.train, args.text_column, args.label_column,
                          args.text_pair_column)
    evaluation = load_examples(args.eval, args.text_column, args.label_column,
                               args.text_pair_column)
    names = check_labels(train, evaluation, args.train, args.eval, args.label_column)
    overlap = len({ex["text"] for ex in train} & {ex["text"] for ex in evaluation})
    if overlap and _is_main_process():
        print(f"note: {overlap} eval texts also appear in the training file; the scores "
              "will be optimistic", file=sys.stderr)
    from . import strategies  # torch and transformers load only once the input is good

    args.strategy = args.strategy or DEFAULT_STRATEGY
    lr = args.lr or strategies.RECOMMENDED_LR[args.strategy]
    epochs = args.epochs or strategies.RECOMMENDED_EPOCHS[args.strategy]
    batch_size = args.batch_size or DEFAULT_BATCH_SIZE
    max_length = args.max_length or DEFAULT_MAX_LENGTH
    say(f"train: {len(train)} examples, labels {', '.join(names)}; eval: {len(evaluation)}")

    model, tokenizer, plan, train_ds, eval_ds = _prepare(args, names, train, evaluation,
                                                         lr, max_length)
    say(f"{plan.summary()}; lr {lr:g}, {epochs:g} epochs, batch {batch_size}")
    trainer = _train(plan, tokenizer, train_ds, lr, epochs, batch_size, args.seed)
    scores = _evaluate(trainer, eval_ds, names)

    from .backbones import describe

    metrics = {"accuracy": scores["accuracy"], "macro_f1": scores["macro_f1"],
               "report": scores["report"], "train_seconds": round(
                   trainer.history.train_seconds, 1),
               "trainable_params": plan.trainable, "total_params": plan.total,
               "trainable_share": round(plan.trainable_share, 6), "strategy": args.strategy,
               "model": describe(args.model), "train_examples": len(train),
               "eval_examples": len(evaluation), "labels": names, "epochs": epochs, "lr": lr,
               "batch_size": batch_size, "max_length": max_length, "seed": args.seed,
               "train_loss": [round(s["train_loss"], 4) for s in trainer.history.steps]}
    command = shlex.join(["python", "-m", "course_lib", *args.argv]) if getattr(
        args, "argv", None) else None
    card = {"task": "text-classification", "base_model": metrics["model"],
            "strategy": args.strategy, "labels": names, "train_file": args.train,
            "eval_file": args.eval, "train_examples": len(train),
            "eval_examples": len(evaluation),
            "metrics": {"accuracy": scores["accuracy"], "macro-F1": scores["macro_f1"],
                        "trainable parameters": f"{plan.trainable:,} of {plan.total:,}"},
            "hyperparameters": {"learning rate": lr, "epochs": epochs,
                                "batch size": batch_size, "max length": max_length,
                                "seed": args.seed},
            "command": command, "example": evaluation[0]["text"][:120],
            "model_path": str(args.output_dir / "model")}
    model_dir = args.output_dir / "model"
    if trainer.accelerator.is_main_process:  # under torchrun, one process writes
        plan.save(model_dir, tokenizer, extra=lambda tmp: write_model_card(tmp, card))
        path = write_metrics(args.output_dir, metrics)
        print(f"accuracy {scores['accuracy']:.4f}  macro-F1 {scores['macro_f1']:.4f}  "
              f"train {metrics['train_seconds']:.0f} s -> {path}, {model_dir}/")
    trainer.accelerator.wait_for_everyone()
    return metrics


def _prepare(args, names, train, evaluation, lr, max_length):
    """Tokenizer, model (seeded), strategy, tokenised examples."""
    from . import backbones, settings, strategies

    _quiet_libraries()
    tokenizer = backbones.load_tokenizer(args.model)
    model = backbones.load_model("classification", args.model, labels=names, seed=args.seed,
                                 ignore_mismatched_sizes=True)
    limit = getattr(model.config, "max_position_embeddings", 512)
    if max_length > limit:
        raise CourseError(f"--max-length {max_length}: this model reads at most {limit} tokens")
    ids = {name: i for i, name in enumerate(names)}

    def encode(rows: list[dict]) -> list[dict]:
        pairs = [r["text_pair"] for r in rows] if args.text_pair_column else None
        encoded = tokenizer([r["text"] for r in rows], pairs, truncation=True,
                            max_length=max_length)
        return [{**{k: v[i] for k, v in encoded.items()}, "labels": ids[r["label"]]}
                for i, r in enumerate(rows)]

    train_ds, eval_ds = encode(train), encode(evaluation)
    truncated = sum(len(x["input_ids"]) >= max_length for x in train_ds)
    if truncated and _is_main_process():
        print(f"note: {truncated} of {len(train_ds)} training examples were cut at "
              f"{max_length} tokens (--max-length)", file=sys.stderr)
    options = {"lr": lr} if args.strategy == "layerwise" else {}
    settings.seed_everything(args.seed)
    plan = strategies.apply_strategy(model, args.strategy, seed=args.seed, **options)
    return model, tokenizer, plan, train_ds, eval_ds


def _quiet_libraries() -> None:
    """Library chatter (load reports, deprecation notes, save bars) hides the results."""
    import warnings

    import transformers

    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    warnings.filterwarnings("ignore", category=FutureWarning)


def _train(plan, tokenizer, train_ds, lr, epochs, batch_size, seed):
    from .training import Trainer, TrainingConfig

    # Final weights, no selection on the eval file (it is the test set here),
    # and no evaluation during training, so train_seconds is training alone.
    config = TrainingConfig(learning_rate=lr, epochs=epochs, batch_size=batch_size, seed=seed,
                            eval_every=None, load_best_at_end=False, save_every=None)
    trainer = Trainer(plan.model, config, train_dataset=train_ds, tokenizer=tokenizer,
                      param_groups=plan.param_groups, callbacks=plan.callbacks)
    trainer.train()
    return trainer


def _evaluate(trainer, eval_ds, names) -> dict:
    from .metrics import classification_scores

    preds = trainer.predict(eval_ds)
    return classification_scores(preds.label_ids, preds.predictions, names, report=True)


# -------------------------------------------------------------------- qa
def run_qa(args: argparse.Namespace) -> dict:
    """Hand over to ``course_lib.qa`` (imported only when asked for)."""
    if importlib.util.find_spec("course_lib.qa") is None:
        raise CourseError("the qa command needs course_lib/qa.py, which this copy of "
                          "course_lib does not have")
    from . import qa

    return qa.run_qa_command(args)


# ------------------------------------------------------------------ main
USER_ERRORS = (CourseError, FileNotFoundError, IsADirectoryError, PermissionError,
               UnicodeDecodeError)


def main(argv: list[str] | None = None) -> int:
    """Run a command; user errors become ``error: <one line>`` and exit status 2."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    args.argv = argv
    try:
        check_common_options(args)
        run_classify(args) if args.command == "classify" else run_qa(args)
    except USER_ERRORS as err:
        print(f"error: {_one_line(err)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("error: interrupted; the previous model folder (if any) is unchanged",
              file=sys.stderr)
        return 130
    except Exception as err:  # a bug, not bad input: one line unless asked for more
        if os.environ.get("COURSE_DEBUG"):
            raise
        print(f"error: unexpected {type(err).__name__}: {_one_line(err)} (set COURSE_DEBUG=1 "
              "for the traceback)", file=sys.stderr)
        return 1
    return 0


def _one_line(err: Exception) -> str:
    text = " ".join(str(err).split())
    return text or type(err).__name__
