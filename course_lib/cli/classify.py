"""``python -m course_lib classify``: fine-tune a classifier on your own table files.

    python -m course_lib classify --train train.csv --eval test.csv \\
        --text-column sentence --label-column label --output-dir runs/fpb

Reads CSV, TSV, JSON Lines or Parquet (labels may be strings or integers), fine-tunes
with one of the strategies of :mod:`course_lib.strategies`, scores the eval file once
at the end (it is the test set: no epoch is picked on it) and writes
``DIR/metrics.json`` and ``DIR/model/`` (with a model card), a folder
``transformers.pipeline`` loads. While it trains it keeps a resume checkpoint in
``DIR/checkpoints`` (every epoch, or every ``--save-every`` steps); ``--resume``
continues an interrupted run, and a finished run removes them.

Probabilities are calibrated on a validation split, never on the eval file: the
``--validation`` file when given, otherwise a stratified 10% of the training file held
out with the seed (not trained on). The temperature and the per-class decision offsets
fitted there go into ``model/calibration.json`` (``predict`` applies them) and
``metrics.json`` reports the calibration error before and after, on the validation split
and on the eval file (:mod:`course_lib.serving.calibration`). The headline accuracy and
macro-F1 are the plain arg-max's, comparable with every earlier run.

The defaults are the course's best recipe for the quick backbone: the layerwise
strategy (the FinBERT recipe), with the learning rate and epochs of
``strategies.RECOMMENDED_LR`` / ``RECOMMENDED_EPOCHS``. On Financial PhraseBank it
matched the best full fine-tuning recipe's accuracy in about half the training time
(README's benchmark tables, docs/DEVELOPING.md).
"""

from __future__ import annotations

import argparse
import shlex
from pathlib import Path

from ..artifacts import write_metrics, write_model_card
from ..data.tables import check_labels, load_examples
from ..settings import CourseError
from .common import (
    add_common_options,
    check_common_options,
    check_max_length,
    checkpointing,
    remove_checkpoints,
    say,
)

HELP = "text (or text-pair) classification"
STRATEGIES = ("full", "layerwise", "adapters", "lora")
DEFAULT_STRATEGY = "layerwise"
DEFAULT_BATCH_SIZE = 32
DEFAULT_MAX_LENGTH = 128
# How a text longer than --max-length is read (notebook 10, course_lib.longdocs):
# its first tokens, its first quarter + its end, or every window with the windows'
# probabilities averaged. head+tail is the default: on a validation split of the Medical
# Abstracts corpus the same model scored macro-F1 0.659 reading head+tail, 0.656 reading
# every chunk and 0.645 reading the head (benchmarks/results/case_medical.md), and head+tail
# costs what head costs; a text that fits in --max-length is read whole either way.
LONG_TEXT = {"head": "head", "head+tail": "head_tail", "chunks": "chunks"}
DEFAULT_LONG_TEXT = "head+tail"
VALIDATION_SHARE = 0.1


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = "Fine-tune a classifier on CSV / TSV / JSON Lines / Parquet files."
    parser.add_argument("--train", required=True, type=Path, help="training file")
    parser.add_argument("--eval", required=True, type=Path, help="evaluation file")
    parser.add_argument("--text-column", required=True, help="column with the text")
    parser.add_argument("--text-pair-column", default=None,
                        help="optional second text (sentence pairs)")
    parser.add_argument("--label-column", required=True, help="column with the label")
    parser.add_argument("--validation", type=Path, default=None,
                        help="validation file for calibration and decision offsets (default: "
                             f"a stratified {VALIDATION_SHARE:.0%}% of --train, held out and "
                             "not trained on)")
    parser.add_argument("--class-weights", choices=("none", "balanced"), default="none",
                        help="weight the loss by inverse class frequency on the training "
                             "file (balanced: n / (k * count); notebook 02)")
    parser.add_argument("--long-text", choices=tuple(LONG_TEXT), default=None,
                        help="texts longer than --max-length: keep the head, the head and "
                             "the tail, or read every chunk and pool the predictions "
                             f"(default: {DEFAULT_LONG_TEXT}; head for text pairs)")
    add_common_options(parser, strategies=STRATEGIES, default_strategy=DEFAULT_STRATEGY,
                       default_batch_size=DEFAULT_BATCH_SIZE,
                       default_max_length=DEFAULT_MAX_LENGTH)


def run(args: argparse.Namespace) -> dict:
    """Check, read, fine-tune (resumably), evaluate, save. Returns the metrics written."""
    check_common_options(args)
    train = load_examples(args.train, args.text_column, args.label_column,
                          args.text_pair_column)
    evaluation = load_examples(args.eval, args.text_column, args.label_column,
                               args.text_pair_column)
    names = check_labels(train, evaluation, args.train, args.eval, args.label_column)
    train, validation, fitted_on = _validation_split(args, train)
    if args.long_text is None:
        args.long_text = "head" if args.text_pair_column else DEFAULT_LONG_TEXT
    if args.text_pair_column and args.long_text != "head":
        raise CourseError(f"--long-text {args.long_text} reads single texts; with "
                          "--text-pair-column use --long-text head")
    overlap = len({ex["text"] for ex in train} & {ex["text"] for ex in evaluation})
    if overlap:
        say(f"note: {overlap} eval texts also appear in the training file; the scores "
            "will be optimistic", err=True)
    from .. import backbones, settings, strategies  # torch loads only once the input is good

    settings.quiet_libraries()
    strategy = args.strategy or DEFAULT_STRATEGY
    lr = args.lr or strategies.RECOMMENDED_LR[strategy]
    epochs = args.epochs or strategies.RECOMMENDED_EPOCHS[strategy]
    batch_size = args.batch_size or DEFAULT_BATCH_SIZE
    max_length = args.max_length or DEFAULT_MAX_LENGTH
    check_max_length(max_length, backbones.max_positions(args.model))
    say(f"train: {len(train)} examples, labels {', '.join(names)}; validation: "
        f"{len(validation)}; eval: {len(evaluation)}")

    tokenizer = backbones.load_tokenizer(args.model)
    train_ds, _ = _encode(args, tokenizer, train, names, max_length)
    eval_ds, eval_docs = _encode(args, tokenizer, evaluation, names, max_length)
    val_ds, val_docs = _encode(args, tokenizer, validation, names, max_length)
    model = backbones.load_model("classification", args.model, labels=names, seed=args.seed,
                                 ignore_mismatched_sizes=True)
    plan = strategies.apply_strategy(model, strategy, seed=args.seed)
    say(f"{plan.summary()}; lr {lr:g}, {epochs:g} epochs, batch {batch_size}")

    weights = None
    if args.class_weights == "balanced":
        from ..data import class_weights

        weights = class_weights([ex["labels"] for ex in train_ds], len(names))
    trainer = _train(args, plan, tokenizer, train_ds, lr, epochs, batch_size, weights)
    eval_labels = _label_ids(evaluation, names)
    eval_logits = _logits(trainer, eval_ds, eval_docs, len(evaluation))
    scores = _scores(eval_logits, eval_labels, names)
    calibration = None
    if validation:
        from ..serving.calibration import fit_calibration

        val_logits = _logits(trainer, val_ds, val_docs, len(validation))
        calibration = fit_calibration(val_logits, _label_ids(validation, names), names,
                                      fitted_on=fitted_on)
    metrics = {"accuracy": scores["accuracy"], "macro_f1": scores["macro_f1"],
               "report": scores["report"],
               "train_seconds": round(trainer.history.train_seconds, 1),
               "trainable_params": plan.trainable, "total_params": plan.total,
               "trainable_share": round(plan.trainable_share, 6), "strategy": strategy,
               "model": backbones.describe(args.model), "train_examples": len(train),
               "eval_examples": len(evaluation), "labels": names, "epochs": epochs, "lr": lr,
               "batch_size": batch_size, "max_length": max_length,
               "long_text": args.long_text, "class_weights": args.class_weights,
               "validation_examples": len(validation), "seed": args.seed,
               "train_loss": [round(s["train_loss"], 4) for s in trainer.history.steps]}
    if calibration is not None:
        metrics["calibration"] = {**calibration.to_dict(),
                                  "eval": calibration.evaluate(eval_logits, eval_labels)}
    tokenizer.model_max_length = max_length  # predict and pipeline read what training read
    _save(args, trainer, plan, tokenizer, metrics, evaluation, calibration)
    return metrics


def _encode(args, tokenizer, rows: list[dict], names: list[str], max_length: int):
    """Model inputs for ``rows`` read the ``--long-text`` way, and each input's document.

    The document ids are kept beside the inputs, not in them: a model whose
    ``forward`` takes ``**kwargs`` would otherwise be handed a ``doc_id``.
    """
    from .. import longdocs

    if not rows:  # no validation split: nothing to encode
        return [], []
    ids = {name: i for i, name in enumerate(names)}
    texts = [r["text"] for r in rows]
    if args.long_text == "head":
        pairs = [r["text_pair"] for r in rows] if args.text_pair_column else None
        encoded = tokenizer(texts, pairs, truncation=True, max_length=max_length)
        docs = list(range(len(rows)))
    elif args.long_text == "chunks":
        encoded = longdocs.encode_chunks(tokenizer, texts, max_length)
        docs = encoded.pop("doc_id")
    else:
        encoded = longdocs.encode_truncated(tokenizer, texts, max_length, LONG_TEXT[args.long_text])
        docs = list(range(len(rows)))
    examples = [{**{k: v[i] for k, v in encoded.items()}, "labels": ids[rows[d]["label"]]}
                for i, d in enumerate(docs)]
    cut = sum(len(x["input_ids"]) >= max_length for x in examples)
    if args.long_text == "chunks" and len(examples) > len(rows):
        say(f"note: {len(rows)} texts read as {len(examples)} windows of up to {max_length} "
            "tokens (--long-text chunks)", err=True)
    elif cut and args.long_text == "head":
        say(f"note: {cut} of {len(rows)} texts were cut at {max_length} tokens "
            "(--max-length; see --long-text)", err=True)
    return examples, docs


def _validation_split(args, train: list[dict]) -> tuple[list[dict], list[dict], str]:
    """``(train, validation, how)``: the ``--validation`` file, or a held-out share of train.

    Calibration must be fitted on examples the model did not train on and that are not
    the test set (the eval file): a temperature fitted on the eval file would grade the
    model on answers it was tuned to.
    """
    from ..serving.calibration import hold_out

    if args.validation is not None:
        validation = load_examples(args.validation, args.text_column, args.label_column,
                                   args.text_pair_column)
        check_labels(train, validation, args.train, args.validation, args.label_column)
        return train, validation, f"{args.validation.name} ({len(validation)} examples)"
    kept, validation = hold_out(train, fraction=VALIDATION_SHARE, seed=args.seed)
    if not validation:
        say("note: too few training examples to hold out a validation split, so no "
            "calibration (give --validation FILE)", err=True)
        return train, [], ""
    return kept, validation, (f"{VALIDATION_SHARE:.0%} of {args.train.name} held out "
                              f"(stratified, seed {args.seed}; {len(validation)} examples, "
                              "not trained on)")


def _train(args, plan, tokenizer, train_ds, lr, epochs, batch_size, weights=None):
    """A resumable run: checkpoints in ``DIR/checkpoints``; final weights, no selection on
    the eval file (it is the test set), no evaluation during training (so
    ``train_seconds`` is training alone)."""
    from ..training import Trainer, TrainingConfig

    config = TrainingConfig(learning_rate=lr, epochs=epochs, batch_size=batch_size,
                            seed=args.seed, **checkpointing(args))
    from ..data import weighted_loss

    trainer = Trainer(plan.model, config, train_dataset=train_ds, tokenizer=tokenizer,
                      param_groups=plan.param_groups, callbacks=plan.callbacks,
                      compute_loss=weighted_loss(weights) if weights is not None else None)
    trainer.train(resume_from="latest" if args.resume else None)
    return trainer


def _label_ids(rows: list[dict], names: list[str]):
    import numpy as np

    ids = {name: i for i, name in enumerate(names)}
    return np.array([ids[row["label"]] for row in rows])


def _logits(trainer, dataset, docs, n_texts: int):
    """One row of logits per text (``--long-text chunks``: the windows' probabilities
    averaged, returned as log-probabilities)."""
    import numpy as np

    from ..longdocs import pool_windows

    logits = trainer.predict(dataset).logits
    if len(logits) != n_texts:  # mean of probabilities; log so softmax gives them back
        return np.log(np.clip(pool_windows(logits, docs, "mean", n_docs=n_texts), 1e-12, None))
    return np.asarray(logits)


def _scores(logits, label_ids, names: list[str]) -> dict:
    from ..metrics import classification_scores

    return classification_scores(label_ids, logits.argmax(-1), names, report=True)


def _save(args, trainer, plan, tokenizer, metrics: dict, evaluation: list[dict],
          calibration=None) -> None:
    """``model/`` replaced whole (never a half one), then ``metrics.json``; the resume
    checkpoints go only once both are written."""
    command = shlex.join(["python", "-m", "course_lib", *args.argv]) if getattr(
        args, "argv", None) else None
    card = {"task": "text-classification", "base_model": metrics["model"],
            "strategy": metrics["strategy"], "labels": metrics["labels"],
            "train_file": args.train, "eval_file": args.eval,
            "train_examples": metrics["train_examples"],
            "eval_examples": metrics["eval_examples"],
            "metrics": {"accuracy": metrics["accuracy"], "macro-F1": metrics["macro_f1"],
                        "trainable parameters": f"{plan.trainable:,} of {plan.total:,}"},
            "hyperparameters": {"learning rate": metrics["lr"], "epochs": metrics["epochs"],
                                "batch size": metrics["batch_size"],
                                "max length": metrics["max_length"],
                                "long text": metrics["long_text"],
                                "class weights": metrics["class_weights"],
                                "seed": metrics["seed"]},
            "command": command, "example": evaluation[0]["text"][:120],
            "model_path": str(args.output_dir / "model")}
    model_dir = args.output_dir / "model"
    if trainer.accelerator.is_main_process:  # under torchrun, one process writes
        def extra(tmp: Path) -> None:
            write_model_card(tmp, card)
            if calibration is not None:
                calibration.save(tmp)

        plan.save(model_dir, tokenizer, extra=extra)
        path = write_metrics(args.output_dir, metrics)
        remove_checkpoints(args.output_dir)
        print(f"accuracy {metrics['accuracy']:.4f}  macro-F1 {metrics['macro_f1']:.4f}  "
              f"train {metrics['train_seconds']:.0f} s -> {path}, {model_dir}/")
    trainer.accelerator.wait_for_everyone()
