"""``python -m course_lib pretrain``: continue masked-LM pretraining on your own text.

    python -m course_lib pretrain --train notes.txt --output-dir runs/dapt
    python -m course_lib classify --model runs/dapt/model --train train.csv ...

Domain-adaptive pretraining (BioBERT, FinBERT) continues BERT's masked-language-model
training on text from the domain; task-adaptive pretraining does it on the task's own
sentences, labels left out. ``--train`` is plain text (``.txt``: one document per line)
or a CSV / TSV / JSON Lines / Parquet table with a ``--text-column``. Long documents are
read as 128-token windows (``--max-length``), none of their text dropped.

The held-out texts (``--eval``, or a fixed 10% of ``--train``) are masked once, the same
way before and after training, so ``metrics.json``'s ``perplexity_before`` and
``perplexity_after`` (and masked-token accuracy) compare. ``DIR/model/`` loads in
``pipeline("fill-mask")`` and fine-tunes with ``classify --model DIR/model``. A backbone
without a masked-LM head (the quick one) gets a new head, tied to its word embeddings,
which trains alone for the first fifth of the steps; its "before" perplexity is then that
of word frequencies alone (what a model that ignores the context scores). Resume
checkpoints as ``classify``.
"""

from __future__ import annotations

import argparse
import math
import random
import shlex
from pathlib import Path

from ..settings import CourseError
from .common import (
    add_common_options,
    check_common_options,
    check_max_length,
    checkpointing,
    remove_checkpoints,
    say,
)

HELP = "masked-LM pretraining on domain text (then classify --model DIR/model)"
DEFAULT_BATCH_SIZE = 32
DEFAULT_MAX_LENGTH = 128
DEFAULT_TEXT_COLUMN = "text"
HELD_OUT_SHARE = 0.1
HELD_OUT_SEED = 0  # the held-out texts do not change with --seed: runs stay comparable
EVAL_MASK_SEED = 0  # nor does their masking
PLAIN_TEXT = {".txt", ".text"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = ("Continue masked-LM pretraining on plain text (one document per "
                          "line) or a table's text column; writes DIR/model for "
                          "pipeline('fill-mask') and classify --model.")
    parser.add_argument("--train", required=True, type=Path,
                        help="texts: .txt (one per line) or .csv/.tsv/.jsonl/.parquet")
    parser.add_argument("--eval", type=Path, default=None,
                        help="held-out texts (default: a fixed 10%% of --train)")
    parser.add_argument("--text-column", default=DEFAULT_TEXT_COLUMN,
                        help=f"the text column of a table (default: {DEFAULT_TEXT_COLUMN})")
    parser.add_argument("--mlm-probability", type=float, default=None,
                        help="share of tokens to mask, between 0 and 1 (default: 0.15)")
    add_common_options(parser, strategies=None, default_strategy=None,
                       default_batch_size=DEFAULT_BATCH_SIZE,
                       default_max_length=DEFAULT_MAX_LENGTH)


def read_texts(path: Path, text_column: str) -> list[str]:
    """Documents from a plain-text file (non-blank lines) or a table's text column."""
    from ..data.files import read_text
    from ..data.tables import TABLE_FORMATS, located_rows

    suffix = path.suffix.lower()
    if suffix in PLAIN_TEXT:
        texts = [line.strip() for line in read_text(path).split("\n") if line.strip()]
        if not texts:
            raise CourseError(f"{path}: no text (every line is blank)")
        return texts
    if suffix not in TABLE_FORMATS:
        raise CourseError(f"{path}: unknown file type {path.suffix or '(none)'!r}; use .txt "
                          "(one document per line), .csv, .tsv, .jsonl or .parquet")
    rows = located_rows(path)
    if not rows:
        raise CourseError(f"{path}: no rows")
    texts = []
    for where, row in rows:
        if text_column not in row:
            raise CourseError(f"{path} {where}: missing column {text_column!r} (found: "
                              f"{', '.join(map(str, row)) or 'none'}); set --text-column")
        value = row[text_column]
        if value is None or (isinstance(value, float) and math.isnan(value)) or not str(
                value).strip():
            raise CourseError(f"{path} {where}: empty text in column {text_column!r}")
        texts.append(str(value).strip())
    return texts


def split_held_out(texts: list[str], path: Path) -> tuple[list[str], list[str]]:
    """A fixed 10% of the texts for evaluation (the same whatever --seed)."""
    if len(texts) < 2:
        raise CourseError(f"{path}: {len(texts)} text; hold-out evaluation needs at least 2 "
                          "(or give --eval)")
    order = list(range(len(texts)))
    random.Random(HELD_OUT_SEED).shuffle(order)
    n_eval = max(1, round(HELD_OUT_SHARE * len(texts)))
    held = set(order[:n_eval])
    return ([t for i, t in enumerate(texts) if i not in held],
            [t for i, t in enumerate(texts) if i in held])


def run(args: argparse.Namespace) -> dict:
    """Check, read, measure, pretrain (resumably), measure again, save."""
    check_common_options(args)
    p = args.mlm_probability
    if p is not None and not (math.isfinite(p) and 0 < p < 1):
        raise CourseError(f"--mlm-probability {p}: must be between 0 and 1 (e.g. 0.15)")
    train = read_texts(args.train, args.text_column)
    if args.eval is not None:
        evaluation = read_texts(args.eval, args.text_column)
        overlap = len(set(train) & set(evaluation))
        if overlap:
            say(f"note: {overlap} eval texts also appear in the training file; the "
                "perplexity after training will be optimistic", err=True)
    else:
        train, evaluation = split_held_out(train, args.train)

    from .. import backbones, pretraining, settings  # torch loads once the input is good

    settings.quiet_libraries()
    mlm_probability = p or pretraining.DEFAULT_MLM_PROBABILITY
    lr = args.lr or pretraining.RECOMMENDED_LR
    epochs = args.epochs or pretraining.RECOMMENDED_EPOCHS
    batch_size = args.batch_size or DEFAULT_BATCH_SIZE
    max_length = args.max_length or DEFAULT_MAX_LENGTH
    check_max_length(max_length, backbones.max_positions(args.model))

    tokenizer = backbones.load_tokenizer(args.model)
    train_windows = pretraining.tokenize_texts(tokenizer, train, max_length)
    eval_windows = pretraining.tokenize_texts(tokenizer, evaluation, max_length)
    masker = pretraining.WholeWordMasking(tokenizer, mlm_probability)
    held_out = pretraining.fixed_masking(masker, eval_windows, seed=EVAL_MASK_SEED)
    model = pretraining.build_masked_lm(args.model, seed=args.seed)
    new_head = not backbones.has_mlm_head(args.model)  # after the download, not before
    say(f"train: {len(train)} texts ({len(train_windows)} windows of up to {max_length} "
        f"tokens); eval: {len(evaluation)} texts, "
        f"{pretraining.masked_token_count(held_out)} masked tokens"
        + ("" if args.eval else " (a fixed 10% of --train)"))
    if new_head:  # "before" is then a word-frequency model, not a random head's noise
        pretraining.start_bias_at_word_frequencies(model, train_windows)
    before = pretraining.evaluate_masked_lm(model, held_out, pad_token_id=tokenizer.pad_token_id)
    say(f"before: perplexity {before['perplexity']:.1f}, masked-token accuracy "
        f"{before['masked_accuracy']:.3f}" + (" (a new head: word frequencies alone; it trains "
                                             "alone first)" if new_head else ""))
    say(f"lr {lr:g}, {epochs:g} epochs, batch {batch_size}, mask {mlm_probability:g} "
        "(whole words; 80% [MASK], 10% random, 10% unchanged)")
    trained = pretraining.pretrain(model, tokenizer, train_windows, new_head=new_head,
                                   epochs=epochs, lr=lr, batch_size=batch_size,
                                   mlm_probability=mlm_probability, seed=args.seed,
                                   resume=args.resume, **checkpointing(args))
    after = pretraining.evaluate_masked_lm(model, held_out, pad_token_id=tokenizer.pad_token_id)
    trainer = trained.trainer
    metrics = {"perplexity_before": before["perplexity"], "perplexity_after": after["perplexity"],
               "masked_accuracy_before": before["masked_accuracy"],
               "masked_accuracy_after": after["masked_accuracy"],
               "eval_masked_tokens": after["masked_tokens"],
               "train_seconds": round(trained.train_seconds, 1), "train_texts": len(train),
               "eval_texts": len(evaluation), "train_windows": len(train_windows),
               "eval_held_out_from_train": args.eval is None,
               "model": backbones.describe(args.model), "new_head": new_head,
               "head_only_steps": trained.head_steps, "steps": trainer.total_steps,
               "epochs": epochs, "lr": lr, "batch_size": batch_size, "max_length": max_length,
               "mlm_probability": mlm_probability, "whole_word_mask": True, "seed": args.seed,
               "train_loss": [round(s["train_loss"], 4) for s in trainer.history.steps]}
    if trainer.accelerator.is_main_process:  # under torchrun, one process writes
        _save(args, model, tokenizer, metrics, evaluation)
    trainer.accelerator.wait_for_everyone()
    return metrics


def _save(args, model, tokenizer, metrics: dict, evaluation: list[str]) -> None:
    """``model/`` replaced whole, then ``metrics.json``; checkpoints go once both exist."""
    from ..artifacts import write_metrics, write_model_card
    from ..pretraining import save_masked_lm

    command = shlex.join(["python", "-m", "course_lib", *args.argv]) if getattr(
        args, "argv", None) else None
    model_dir = args.output_dir / "model"
    card = {"task": "fill-mask", "title": "Masked-LM model after continued pretraining",
            "base_model": metrics["model"], "strategy": "masked-LM pretraining (whole words)",
            "train_file": args.train, "train_examples": metrics["train_texts"],
            "eval_file": args.eval or args.train,
            "eval_examples": metrics["eval_texts"],
            "metrics": {"perplexity before": metrics["perplexity_before"],
                        "perplexity after": metrics["perplexity_after"],
                        "masked-token accuracy before": metrics["masked_accuracy_before"],
                        "masked-token accuracy after": metrics["masked_accuracy_after"]},
            "hyperparameters": {"learning rate": metrics["lr"], "epochs": metrics["epochs"],
                                "batch size": metrics["batch_size"],
                                "max length": metrics["max_length"],
                                "mask probability": metrics["mlm_probability"],
                                "seed": metrics["seed"]},
            "command": command, "example": fill_mask_example(evaluation[0],
                                                             tokenizer.mask_token),
            "model_path": str(model_dir),
            "notes": ["", *([] if args.eval else [
                "The evaluation texts are a fixed 10% of the training file, held out from "
                "training.", ""]), f"Fine-tune it: `python -m course_lib classify --model {model_dir} "
                          "--train ... --eval ...`. The encoder keeps the base model's pooler "
                          "(classification reads it); `pipeline(\"fill-mask\")` lists "
                          "`bert.pooler.*` as unexpected keys when it loads, which is harmless."]}
    save_masked_lm(model, tokenizer, model_dir, extra=lambda tmp: write_model_card(tmp, card))
    path = write_metrics(args.output_dir, metrics)
    remove_checkpoints(args.output_dir)
    say(f"perplexity {metrics['perplexity_before']:.1f} -> {metrics['perplexity_after']:.1f}, "
        f"masked-token accuracy {metrics['masked_accuracy_before']:.3f} -> "
        f"{metrics['masked_accuracy_after']:.3f}; train {metrics['train_seconds']:.0f} s "
        f"-> {path}, {model_dir}/")


def fill_mask_example(text: str, mask_token: str, limit: int = 120) -> str:
    """A usage example for the model card: a held-out text with its longest word masked."""
    words = text[:limit].split()
    if not words:
        return f"The results were {mask_token}."
    longest = max(range(len(words)), key=lambda i: len(words[i].strip(".,;:!?()")))
    words[longest] = mask_token
    return " ".join(words)
