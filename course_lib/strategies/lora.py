"""LoRA through ``peft``: low-rank updates of the encoder's linear maps.

``W x + (alpha/r)·B A x`` with ``B`` starting at zero, so the wrapped model starts
exactly where the pretrained one was. The task's head trains fully next to the
low-rank matrices; which modules form the head depends on the task, and peft knows
it from the task type (``SEQ_CLS``: ``classifier``; ``QUESTION_ANS``: ``qa_outputs``;
``TOKEN_CLS``: ``classifier``). A head missing from ``modules_to_save`` would stay
frozen at its random start *and* be left out of ``save_adapter``: a reloaded adapter
would answer with a random head.
"""

from __future__ import annotations

from torch import nn

from .. import settings
from ..settings import CourseError
from .anatomy import base_model

LORA_TARGETS = r".*encoder\.layer\.\d+\..*(query|key|value|dense)$"
# model class name ending -> peft TaskType name (peft adds the task's head to modules_to_save)
TASK_TYPES = {"ForSequenceClassification": "SEQ_CLS", "ForQuestionAnswering": "QUESTION_ANS",
              "ForTokenClassification": "TOKEN_CLS"}


def task_type_of(model: nn.Module):
    """peft's ``TaskType`` for a transformers task model, from its class (or a parent's)."""
    from peft import TaskType

    for cls in type(model).__mro__:
        for ending, name in TASK_TYPES.items():
            if cls.__name__.endswith(ending):
                return TaskType[name]
    raise CourseError(f"LoRA here needs a task model (sequence classification, question "
                      f"answering or token classification), not {type(model).__name__}")


def add_lora(model: nn.Module, r: int = 8, alpha: int = 16, dropout: float = 0.0,
             target_modules: str | list[str] = LORA_TARGETS, *, train_pooler: bool = True,
             seed: int | None = None):
    """Wrap ``model`` with ``peft`` LoRA; returns the peft model.

    The default targets every linear map inside the encoder (attention and
    feed-forward). ``dropout`` is peft's own default, 0: peft draws a separate dropout
    mask for the input of every wrapped layer (36 in the quick backbone), and on a CPU
    drawing those masks took longer than the rest of the LoRA step (0.55 s against 0.30 s
    per step of 16 x 40 tokens on 2 cores), while 0.1 bought no accuracy over three seeds
    (``benchmarks/results/quick_recipe_finance.md``: recipes ``lora`` and ``lora-dropout-0.1``;
    docs/DEVELOPING.md records the decision). The task's head trains fully and is saved with the LoRA weights
    (peft's task type puts it in ``modules_to_save``); ``train_pooler`` adds BERT's
    pooler to it when the model has one. ``seed``: the random ``A`` matrices are
    drawn from it without touching the global random streams (``None``: from the
    current global stream).
    """
    from peft import LoraConfig, get_peft_model

    extra = ["pooler"] if train_pooler and getattr(base_model(model), "pooler",
                                                   None) is not None else None
    config = LoraConfig(task_type=task_type_of(model), r=r, lora_alpha=alpha,
                        lora_dropout=dropout, target_modules=target_modules,
                        modules_to_save=extra)
    with settings.seeded(seed):
        return get_peft_model(model, config)
