"""``python -m course_lib qa``: the command's QA options, its recipe choice, its run and saving.

    python -m course_lib qa --train train.json --eval test.json --output-dir runs/qa

The QA library (:mod:`course_lib.qa`) knows nothing of the command line; this module
reads the files, picks a recipe that fits the contexts, checks the options and
drives the library. The options every training command shares, and the
checkpoint / ``--resume`` rules, come from :mod:`course_lib.cli.common`.

Two recipes, chosen from the median context length (tokens) of both files, and
announced in one line before training (every number can be overridden):

- **short contexts** (a paragraph, as in SQuAD): 384-token windows, stride 128,
  every window trained, every window read. The standard SQuAD recipe.
- **long contexts** (median over :data:`LONG_CONTEXT_TOKENS`: whole articles, as in
  COVID-QA): every window read means ~30 forward passes per question, nearly all
  on windows without the answer, and 3 epochs over every window of COVID-QA are
  ~9 hours on 2 cores. So: shorter windows, a share of the answer-less windows
  for training (:func:`course_lib.qa.training_windows`), and retrieve-then-read
  at test time (:mod:`course_lib.qa.retrieval`: the packaged sentence-embedding
  model ranks each question's windows, the reader reads the top k).

Top-level imports stay light (argparse, pathlib): ``--help`` must answer at once.
"""

from __future__ import annotations

import argparse
import math
import shlex
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from ..settings import CourseError

QA_STRATEGIES = ("full", "layerwise", "lora")
# The course's training recipe for the quick backbone (a 6-layer MiniLM); bert-base wants
# lr 3e-5 and 2 epochs (the SQuAD paper's schedule).
TRAINING = {"epochs": 3.0, "lr": 2e-4, "batch_size": 16, "strategy": "full"}
# A median context above this many tokens gets the long-document recipe (a SQuAD
# paragraph is ~150 tokens; a COVID-QA article ~7,000).
LONG_CONTEXT_TOKENS = 1000


@dataclass(frozen=True)
class Recipe:
    """How contexts are cut, which windows train, which are read, how long answers are."""

    name: str
    max_length: int
    stride: int
    negative_share: float  # share of answer-less windows trained on
    top_k: int  # windows read per question after retrieval; 0 = every window
    max_answer_tokens: int
    epochs: float


SHORT = Recipe("short contexts", max_length=384, stride=128, negative_share=1.0, top_k=0,
               max_answer_tokens=30, epochs=TRAINING["epochs"])
# Measured on COVID-QA (benchmarks/case_covidqa.py, 80/20 by article, 2 CPU cores): 10% of
# the answer-less windows and 2 epochs gave F1 7.6 in 27.5 min (most windows taught [CLS]);
# 2% and 3 epochs F1 15.2 in 19 min. Reading only the top 4 windows beat reading all of
# them (F1 15.2 against 9.7, 5x faster).
LONG = Recipe("long contexts", max_length=256, stride=64, negative_share=0.02, top_k=4,
              max_answer_tokens=64, epochs=3.0)


# ------------------------------------------------------------------ options
def add_qa_arguments(parser: argparse.ArgumentParser) -> None:
    """The options only ``qa`` has (the shared ones come from ``cli.common``)."""
    parser.add_argument("--train", required=True, type=Path, help="SQuAD JSON training file")
    parser.add_argument("--eval", required=True, type=Path, help="SQuAD JSON evaluation file")
    parser.add_argument("--doc-stride", type=int, default=None,
                        help="tokens two windows of a long context share (default: the recipe: "
                             f"{SHORT.stride} short, {LONG.stride} long contexts)")
    parser.add_argument("--negative-share", type=float, default=None,
                        help="share of the windows WITHOUT the answer that train (default: the "
                             f"recipe: {SHORT.negative_share:g} short, {LONG.negative_share:g} "
                             "long contexts)")
    parser.add_argument("--top-k", type=int, default=None,
                        help="read only the K windows of each question most similar to it; "
                             f"0 reads every window (default: the recipe: {SHORT.top_k} short, "
                             f"{LONG.top_k} long contexts)")
    parser.add_argument("--retriever", default=None,
                        help="sentence-embedding model that ranks windows for --top-k "
                             "(default: the packaged all-MiniLM-L6-v2)")


def _given(args, name: str):
    return getattr(args, name, None)


def choose_recipe(median_tokens: float, args=None) -> tuple[Recipe, str]:
    """The recipe for contexts of ``median_tokens`` tokens, with the user's options on top,
    and the one line that says what was chosen and why."""
    base = LONG if median_tokens > LONG_CONTEXT_TOKENS else SHORT
    recipe = base
    given = []
    for option, field in (("max_length", "max_length"), ("doc_stride", "stride"),
                          ("negative_share", "negative_share"), ("top_k", "top_k"),
                          ("epochs", "epochs")):
        value = _given(args, option) if args is not None else None
        if value is not None:
            recipe = replace(recipe, **{field: type(getattr(base, field))(value)})
            given.append("--" + option.replace("_", "-"))
    if _given(args, "max_length") is not None and _given(args, "doc_stride") is None:
        recipe = replace(recipe, stride=min(recipe.stride, recipe.max_length // 4))
    why = (f"median context {median_tokens:,.0f} tokens "
           f"{'>' if base is LONG else '<='} {LONG_CONTEXT_TOKENS:,}")
    reading = (f"retrieve-then-read: the top {recipe.top_k} windows of each question by "
               "similarity to it" if recipe.top_k else "every window read")
    negatives = ("every window trained" if recipe.negative_share >= 1 else
                 f"{recipe.negative_share:.0%} of the windows without the answer trained")
    line = (f"recipe: {base.name} ({why}): {recipe.max_length}-token windows, stride "
            f"{recipe.stride}, {negatives}, {reading}, answers up to "
            f"{recipe.max_answer_tokens} tokens, {recipe.epochs:g} epochs"
            + (f"; set by you: {', '.join(given)}" if given else ""))
    return recipe, line


def check_qa_options(args) -> None:
    """The numbers that cannot work, caught before any file is read or model loaded
    (``cli.common.check_common_options`` repeats the shared ones for the parser's path;
    callers that build ``args`` themselves get them here)."""
    from .common import MIN_MAX_LENGTH

    epochs, lr, batch = _given(args, "epochs"), _given(args, "lr"), _given(args, "batch_size")
    max_length, stride = _given(args, "max_length"), _given(args, "doc_stride")
    share, top_k = _given(args, "negative_share"), _given(args, "top_k")
    strategy = _given(args, "strategy")
    if strategy is not None and strategy not in QA_STRATEGIES:
        raise CourseError(f"--strategy {strategy}: not available for qa; choose one of "
                          f"{', '.join(QA_STRATEGIES)}")
    if epochs is not None and not (math.isfinite(epochs) and epochs > 0):
        raise CourseError(f"--epochs {epochs}: must be a positive number")
    if lr is not None and not (math.isfinite(lr) and 0 < lr < 1):
        raise CourseError(f"--lr {lr}: must be between 0 and 1 (e.g. 2e-4)")
    if batch is not None and batch < 1:
        raise CourseError(f"--batch-size {batch}: must be at least 1")
    if max_length is not None and max_length < MIN_MAX_LENGTH:  # the top: the model's limit
        raise CourseError(f"--max-length {max_length}: must be at least {MIN_MAX_LENGTH} tokens")
    if stride is not None and not 0 <= stride < (max_length or SHORT.max_length) // 2:
        raise CourseError(f"--doc-stride {stride}: must be between 0 and half of "
                          f"--max-length ({(max_length or SHORT.max_length) // 2 - 1})")
    if share is not None and not (math.isfinite(share) and 0 <= share <= 1):
        raise CourseError(f"--negative-share {share}: must be between 0 and 1")
    if top_k is not None and top_k < 0:
        raise CourseError(f"--top-k {top_k}: must be 0 (read every window) or more")


def _check_recipe(recipe: Recipe) -> None:
    """The recipe with the user's numbers on top must still fit (a stride given alone)."""
    if not 0 <= recipe.stride < recipe.max_length // 2:
        raise CourseError(f"--doc-stride {recipe.stride}: must be between 0 and half of the "
                          f"{recipe.max_length}-token windows ({recipe.max_length // 2 - 1})")


# ---------------------------------------------------------------------- run
def _strategy_plan(model, name: str, seed: int):
    """Apply a fine-tuning strategy from :mod:`course_lib.strategies` to a QA model.

    ``full`` and ``layerwise`` work as for classification; ``lora`` trains the QA
    head (``qa_outputs``) fully next to the low-rank updates (peft's QA task type)
    and merges into a plain model. Bottleneck adapters are not offered: they cannot
    be merged, and their saved model type is a classifier.
    """
    from .. import strategies

    options = {"train_pooler": False} if name == "lora" else {}
    return strategies.apply_strategy(model, name, seed=seed, **options)


def _median_context_tokens(tokenizer, records: list[dict]) -> float:
    import numpy as np

    contexts = list(dict.fromkeys(r["context"] for r in records))
    lengths = [len(ids) for ids in tokenizer(contexts, add_special_tokens=False,
                                             verbose=False)["input_ids"]]
    return float(np.median(lengths))


def run_qa_command(args) -> dict:
    """``python -m course_lib qa``: train on ``args.train``, score on ``args.eval``, save.

    Everything a user can get wrong (a missing file, malformed SQuAD, an answer
    nowhere near its ``answer_start``, a bad option) is checked *before*
    training, so a bad run never replaces a good ``model/``. The eval file is
    scored once at the end and never used to pick an epoch, so its scores are a
    fair test. A SQuAD 2.0 training file (questions without an answer) lets the
    model answer "no answer". The run keeps a resume checkpoint in
    ``DIR/checkpoints`` (``--save-every``, ``--resume``). Writes
    ``DIR/metrics.json`` and ``DIR/model/`` (with a model card) and returns the
    metrics.
    """
    from ..data import parse_squad
    from .common import check_max_length, remove_checkpoints, say

    check_qa_options(args)
    strategy = str(_given(args, "strategy") or TRAINING["strategy"])
    if not _given(args, "output_dir"):
        raise CourseError("--output-dir is required")
    train_records, train_report = parse_squad(Path(args.train))
    eval_records, eval_report = parse_squad(Path(args.eval))
    out_dir = Path(args.output_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise CourseError(f"--output-dir {out_dir}: exists and is not a folder")
    for report in (train_report, eval_report):
        if report.worth_saying:
            say(f"note: {report}", err=True)

    from .. import backbones, qa, settings

    settings.quiet_libraries()
    name = _given(args, "model")
    tokenizer = backbones.load_tokenizer(name)
    median = _median_context_tokens(tokenizer, train_records + eval_records)
    recipe, line = choose_recipe(median, args)
    _check_recipe(recipe)
    check_max_length(recipe.max_length, backbones.max_positions(name))
    say(line)
    seed = int(_given(args, "seed") if _given(args, "seed") is not None
               else settings.course_seed())
    lr = float(_given(args, "lr") or _strategy_lr(strategy))
    batch_size = int(_given(args, "batch_size") or TRAINING["batch_size"])
    allow_null = any(not r["answers"]["text"] for r in train_records)

    train_features = qa.prepare_features(train_records, tokenizer, recipe.max_length,
                                         recipe.stride)
    eval_features = qa.prepare_features(eval_records, tokenizer, recipe.max_length,
                                        recipe.stride, labels=False)
    train_windows = qa.training_windows(train_features, recipe.negative_share, seed=seed)
    model = backbones.load_model("qa", name, seed=seed)
    plan = _strategy_plan(model, strategy, seed)
    say(f"train: {len(train_records)} questions -> {len(train_windows)} of "
        f"{len(train_features)} windows; eval: {len(eval_records)} questions -> "
        f"{len(eval_features)} windows; {plan.summary()}")

    trainer = _train(args, plan, tokenizer, train_windows, lr, recipe.epochs, batch_size, seed)
    evaluation = _evaluate(trainer.unwrapped_model, eval_features, recipe, allow_null, args)
    metrics = {"exact_match": round(evaluation["exact_match"], 2),
               "f1": round(evaluation["f1"], 2),
               "train_seconds": round(trainer.history.train_seconds, 1),
               "eval_seconds": round(evaluation["seconds"], 1),
               "trainable_params": plan.trainable, "total_params": plan.total,
               "strategy": strategy, "model": backbones.describe(name),
               "train_examples": len(train_records), "eval_examples": len(eval_records),
               "train_windows": len(train_windows), "all_train_windows": len(train_features),
               "eval_windows": len(eval_features), "eval_windows_read": evaluation["windows"],
               "retrieval_recall": evaluation.get("recall"),
               "retrieval_seconds": evaluation.get("retrieval_seconds"),
               "median_context_tokens": median, "recipe": recipe.name,
               "no_answer_allowed": allow_null, "epochs": recipe.epochs, "lr": lr,
               "batch_size": batch_size, "max_length": recipe.max_length,
               "doc_stride": recipe.stride, "negative_share": recipe.negative_share,
               "top_k": recipe.top_k, "max_answer_tokens": recipe.max_answer_tokens,
               "seed": seed}
    if trainer.accelerator.is_main_process:
        _save(args, plan, tokenizer, metrics)
        remove_checkpoints(out_dir)
        say(f"exact match {metrics['exact_match']:.2f}  F1 {metrics['f1']:.2f}  train "
            f"{metrics['train_seconds']:.0f} s  eval {metrics['eval_seconds']:.0f} s -> "
            f"{out_dir / 'metrics.json'}, {out_dir / 'model'}/")
    trainer.accelerator.wait_for_everyone()
    return metrics


def _strategy_lr(strategy: str) -> float:
    from .. import strategies

    if strategy == "full":
        return TRAINING["lr"]
    return strategies.RECOMMENDED_LR.get(strategy, TRAINING["lr"])


def _train(args, plan, tokenizer, windows, lr, epochs, batch_size, seed):
    """A resumable run (checkpoints in ``DIR/checkpoints``); final weights, no selection on
    the eval file (it is the test set), no evaluation during training."""
    from ..training import Trainer, TrainingConfig
    from .common import checkpointing

    resumable = argparse.Namespace(output_dir=Path(args.output_dir),
                                   save_every=_given(args, "save_every"))
    config = TrainingConfig(learning_rate=lr, epochs=epochs, batch_size=batch_size, seed=seed,
                            **checkpointing(resumable))
    trainer = Trainer(plan.model, config, train_dataset=windows, tokenizer=tokenizer,
                      param_groups=plan.param_groups, callbacks=plan.callbacks)
    trainer.train(resume_from="latest" if _given(args, "resume") else None)
    return trainer


def _evaluate(model, features, recipe: Recipe, allow_null: bool, args) -> dict:
    """Exact match and F1 on the eval file; with ``top_k``, retrieve then read."""
    from .. import qa
    from ..metrics import squad_scores

    started = time.perf_counter()
    out: dict = {}
    if recipe.top_k:
        retriever_tokenizer, encoder = qa.load_retriever(_given(args, "retriever"))
        ranking = qa.rank_windows(features, encoder, retriever_tokenizer)
        out["recall"] = round(qa.recall_at(ranking, features, ks=(recipe.top_k,))[recipe.top_k],
                              4)
        out["retrieval_seconds"] = round(ranking.seconds, 1)
        features = features.select(ranking.top(recipe.top_k))
    start, end = qa.predict_logits(model, features)
    predictions = qa.postprocess(features, start, end, allow_null=allow_null,
                                 max_answer_length=recipe.max_answer_tokens)
    scores = squad_scores(qa.texts(predictions), qa.gold_answers(features.examples))
    return {**out, **scores, "windows": len(features),
            "seconds": time.perf_counter() - started}


def _save(args, plan, tokenizer, metrics: dict) -> None:
    """``model/`` replaced whole (never a half one) with a model card, then ``metrics.json``."""
    from ..artifacts import write_metrics, write_model_card

    out_dir = Path(args.output_dir)
    argv = _given(args, "argv")
    card = {"task": "question-answering", "title": "Extractive question answering (SQuAD)",
            "base_model": metrics["model"], "strategy": metrics["strategy"],
            "train_file": args.train, "eval_file": args.eval,
            "train_examples": metrics["train_examples"],
            "eval_examples": metrics["eval_examples"],
            "metrics": {"exact match": metrics["exact_match"], "F1": metrics["f1"]},
            "hyperparameters": {k: metrics[k] for k in (
                "lr", "epochs", "batch_size", "max_length", "doc_stride", "negative_share",
                "top_k", "max_answer_tokens", "seed")},
            "command": shlex.join(["python", "-m", "course_lib", *argv]) if argv else None,
            "model_path": str(out_dir / "model"),
            "notes": ["", "transformers 5 removed its own question-answering pipeline; the "
                      "course's extractive reader takes that name once you run "
                      "`from course_lib.qa import register_pipeline; register_pipeline()` "
                      "(importing course_lib does not register it).",
                      "", "Trained on SQuAD 2.0 data: with `handle_impossible_answer=True` it may "
                      "answer \"\" (no answer)." if metrics["no_answer_allowed"] else
                      "Trained on SQuAD 1.1-style data: it always returns some span.",
                      "", f"Recipe: {metrics['recipe']} (median context "
                      f"{metrics['median_context_tokens']:,.0f} tokens); evaluation read "
                      + (f"the top {metrics['top_k']} windows of each question ranked by the "
                         "packaged sentence-embedding model." if metrics["top_k"] else
                         "every window.")]}
    plan.save(out_dir / "model", tokenizer, extra=lambda tmp: write_model_card(tmp, card))
    write_metrics(out_dir, metrics)


def recipe_dict(recipe: Recipe) -> dict:
    """A recipe as plain data (for metrics and benchmarks)."""
    return asdict(recipe)
