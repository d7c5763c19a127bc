"""Continued masked-LM pretraining with the course Trainer: head first, then everything.

A new masked-LM head (the quick backbone has none) starts from random transform
weights: if the encoder trained from step one, the large, noisy gradients of the
untrained head would flow into it and wash out what it knows. So the first steps train
the head alone (:class:`HeadFirst`, encoder frozen), and the rest train everything,
inside one schedule, so one resume checkpoint covers the whole run.

Evaluation uses a *fixed* masking of held-out texts (:func:`masking.fixed_masking`):
perplexity (exp of the mean loss over masked tokens; lower is better; a model that
guessed uniformly over 30,522 word pieces would score 30,522) and masked-token accuracy
(how often the top guess is the hidden token).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from .. import settings
from ..training import Callback, Trainer, TrainingConfig, batched_outputs
from .masking import DEFAULT_MLM_PROBABILITY, WholeWordMasking
from .model import (
    MaskedLMTraining,
    masked_lm_sums,
    set_encoder_trainable,
    start_bias_at_word_frequencies,
)

# The quick backbone's recipe (BERT's own pretraining rate). On the finance sample (2 epochs,
# batch 16, as in the pretraining notebook), 5e-4 lowered held-out perplexity further (619
# against 791 at 1e-4), but fine-tuning from that backbone (top two layers, 3 seeds) lost 7
# points of macro-F1 (0.66 against 0.73 from the original backbone), while 1e-4 kept it
# (0.73): a fast masked-LM run pulls this sentence-embedding model's layers away from what
# classification needs. benchmarks/pretraining.py chooses among recipes on validation splits.
RECOMMENDED_LR = 1e-4
RECOMMENDED_EPOCHS = 3
HEAD_SHARE = 0.2  # of the optimizer steps, when the head is new


class HeadFirst(Callback):
    """Train only the masked-LM head for the first ``share`` of the steps, then everything.

    Stateless: whether the encoder trains follows from the step alone, so a resumed run
    freezes or unfreezes it exactly as the uninterrupted run did. It freezes in
    ``on_train_begin`` (after the model is wrapped for data parallelism, which must see
    every weight that will ever train).
    """

    changes_trainable_parameters = True

    def __init__(self, model, share: float = HEAD_SHARE):
        self.model = model
        self.share = share
        self.head_steps = 0

    def on_train_begin(self, trainer) -> None:
        self.head_steps = int(round(self.share * trainer.total_steps))
        set_encoder_trainable(self.model, trainer.global_step >= self.head_steps)

    def on_step_end(self, trainer, step: int) -> None:
        if step == self.head_steps:
            set_encoder_trainable(self.model, True)


@dataclass
class PretrainingRun:
    """What :func:`pretrain` did: the Trainer (its history), the steps spent on the head."""

    trainer: Trainer
    head_steps: int

    @property
    def train_seconds(self) -> float:
        return self.trainer.history.train_seconds


def pretrain(model, tokenizer, train_examples: list[dict], *, new_head: bool,
             epochs: float = RECOMMENDED_EPOCHS, lr: float = RECOMMENDED_LR,
             batch_size: int = 32, mlm_probability: float = DEFAULT_MLM_PROBABILITY,
             whole_word_mask: bool = True, head_share: float = HEAD_SHARE,
             seed: int = settings.DEFAULT_SEED, resume: bool = False,
             callbacks: Sequence[Callback] = (), **config) -> PretrainingRun:
    """Continue masked-LM training of ``model`` on token windows (``tokenize_texts``).

    ``new_head``: the head was just created (``build_masked_lm`` on a checkpoint without
    one): its bias starts at the word frequencies of ``train_examples`` and the first
    ``head_share`` of the steps train it alone. ``config``: more
    :class:`TrainingConfig` fields (``output_dir``, ``save_every``...); ``resume``
    continues from the latest checkpoint in ``output_dir``; ``callbacks`` are added to the
    Trainer's.
    """
    masker = WholeWordMasking(tokenizer, mlm_probability, whole_word_mask=whole_word_mask)
    wrapped = MaskedLMTraining(model, masker)
    config.setdefault("eval_every", None)  # held-out perplexity is measured apart
    config.setdefault("load_best_at_end", False)
    config.setdefault("save_every", "epoch" if config.get("output_dir") else None)
    cfg = TrainingConfig(learning_rate=lr, epochs=epochs, batch_size=batch_size, seed=seed,
                         **config)
    if new_head:
        start_bias_at_word_frequencies(model, train_examples)
    head_first = HeadFirst(model, head_share) if new_head and head_share > 0 else None
    set_encoder_trainable(model, True)
    trainer = Trainer(wrapped, cfg, train_dataset=train_examples, tokenizer=tokenizer,
                      callbacks=([head_first] if head_first else []) + list(callbacks))
    trainer.train(resume_from="latest" if resume else None)
    set_encoder_trainable(model, True)
    model.eval()
    return PretrainingRun(trainer, head_first.head_steps if head_first else 0)


def evaluate_masked_lm(model, masked_examples: list[dict], *, batch_size: int = 64,
                       pad_token_id: int = 0) -> dict:
    """Perplexity and masked-token accuracy on a fixed masking (``fixed_masking``)."""
    sums = batched_outputs(model, masked_examples, batch_size=batch_size,
                           pad_token_id=pad_token_id, forward=masked_lm_sums,
                           keep=("input_ids", "attention_mask", "token_type_ids", "labels"))
    loss = float(sum(t.item() for t in sums["loss_sum"]))
    correct = float(sum(t.item() for t in sums["correct"]))
    count = int(sum(t.item() for t in sums["count"]))
    if count == 0:
        return {"perplexity": float("nan"), "masked_accuracy": float("nan"),
                "masked_tokens": 0, "loss": float("nan")}
    return {"perplexity": math.exp(loss / count), "masked_accuracy": correct / count,
            "masked_tokens": count, "loss": loss / count}


def save_masked_lm(model, tokenizer, directory, extra=None):
    """Save so ``pipeline("fill-mask", model=directory)`` and ``classify --model`` load it.

    Written atomically (the old folder stays until the new one is complete); ``extra``
    (a function of the temporary folder) adds files such as a model card.
    """
    from ..artifacts import save_atomically

    def write(tmp):
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        if extra is not None:
            extra(tmp)

    return save_atomically(directory, write)
