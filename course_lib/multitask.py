"""Multi-task learning: one shared encoder, one head per task.

Design (the simplest one that is correct with the course Trainer):

- **Label spaces stay apart by construction.** Every example carries one label
  column per task, ``labels_<task>``, holding that task's own class id, or
  ``-100`` where the example has no label for the task. Head ``t`` only ever
  sees column ``labels_<t>``: a topic id can never reach the sentiment head,
  whatever the numbers. (One shared ``labels`` column plus a ``task_id`` would
  work too, but then ids of different tasks live in one column and a slip in
  the bookkeeping silently trains a head on another task's classes.)
- **Batches mix tasks; the loss is masked per task.** The Trainer draws
  batches from one dataset. :func:`mix_tasks` builds that dataset by drawing
  examples across tasks with proportional or temperature sampling; a batch then
  holds examples of several tasks, every head runs on the whole batch (a linear
  layer: negligible next to the encoder), and each head's loss counts only its
  labelled examples. Task-homogeneous batches are not needed for correctness
  with one shared encoder and cheap heads, and mixed batches keep the Trainer's
  length grouping, seeding and resume logic unchanged.
- **Loss**: ``sum_t w_t * sum_{i labelled for t} CE_t(i) / (labelled pairs in
  the batch)``. With every ``w_t = 1`` this is the plain mean over labelled
  (example, task) pairs, so each task's share of the gradient is its share of
  the mixture; ``loss_weights`` scale a task up or down on top of that.
- **Per-task metrics**: the model returns ``logits_<task>`` for every example;
  :func:`multitask_metrics` scores each task on the examples labelled for it.

An example that carries labels for several tasks (the finance sample has a
sentiment *and* a topic for every sentence) trains all of them in one forward
pass; :func:`task_examples` builds such examples when given several columns.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from . import settings
from .heads import ClassificationHead, as_token_encoder, make_pooling
from .metrics import classification_scores
from .settings import CourseError
from .training import to_tensors

IGNORE = -100
INPUT_KEYS = ("input_ids", "attention_mask", "token_type_ids", "hidden_states")


def label_key(task: str) -> str:
    return f"labels_{task}"


def label_keys(tasks: Mapping[str, Sequence[str]] | Sequence[str]) -> tuple[str, ...]:
    """The label columns of ``tasks`` (give them to the Trainer as ``label_keys``)."""
    return tuple(label_key(t) for t in tasks)


class MultiTaskModel(nn.Module):
    """One shared encoder and pooling, one classification head per task.

    ``tasks``: ``{task name: [label names]}``; each task has its own label space.
    ``loss_weights``: ``{task: weight}`` (default 1 for every task).
    forward returns ``logits_<task>`` for every task and, when any
    ``labels_<task>`` is given, the masked weighted ``loss``.
    ``seed``: the pooling and head weights are drawn from it without touching the
    global random streams (``None``: from the current global stream).
    """

    def __init__(self, encoder: nn.Module, tasks: Mapping[str, Sequence[str]], *,
                 pooling: str = "mean", loss_weights: Mapping[str, float] | None = None,
                 dropout: float = 0.1, seed: int | None = None):
        super().__init__()
        if not tasks:
            raise CourseError("MultiTaskModel needs at least one task: {name: [labels]}")
        for name in tasks:
            if not name.isidentifier():
                raise CourseError(f"task name {name!r} must be a Python identifier "
                                  "(it becomes the column labels_<task>)")
        self.tasks = {name: list(names) for name, names in tasks.items()}
        weights = dict(loss_weights or {})
        unknown = set(weights) - set(self.tasks)
        if unknown:
            raise CourseError(f"loss_weights names unknown task(s) {sorted(unknown)}; "
                              f"tasks are {list(self.tasks)}")
        self.loss_weights = {t: float(weights.get(t, 1.0)) for t in self.tasks}
        self.encoder = as_token_encoder(encoder)
        hidden = self.encoder.hidden_size
        with settings.seeded(seed):  # pooling and heads are new weights
            self.pooling = make_pooling(pooling, hidden)
            self.heads = nn.ModuleDict({t: ClassificationHead(hidden, len(names), dropout)
                                        for t, names in self.tasks.items()})

    def forward(self, input_ids=None, attention_mask=None, token_type_ids=None,
                hidden_states=None, **task_labels) -> dict[str, torch.Tensor]:
        expected = set(label_keys(self.tasks))
        unknown = sorted(set(task_labels) - expected)
        if unknown:
            raise CourseError(f"MultiTaskModel got unexpected input(s) {unknown}; label columns "
                              f"are {sorted(expected)}")
        hidden = self.encoder(input_ids, attention_mask, token_type_ids,
                              hidden_states=hidden_states)
        pooled = self.pooling(hidden, attention_mask)
        out = {f"logits_{t}": head(pooled) for t, head in self.heads.items()}
        if task_labels:
            out["loss"] = self.loss(out, task_labels)
        return out

    def loss(self, outputs: dict[str, torch.Tensor], task_labels: dict) -> torch.Tensor:
        total = outputs[next(iter(outputs))].sum() * 0.0  # keeps the graph if no labels
        count = 0
        for task in self.tasks:
            labels = task_labels.get(label_key(task))
            if labels is None:
                continue
            logits = outputs[f"logits_{task}"].float()
            total = total + self.loss_weights[task] * F.cross_entropy(
                logits, labels, ignore_index=IGNORE, reduction="sum")
            count = count + (labels != IGNORE).sum()
        return total / torch.clamp(torch.as_tensor(count), min=1)


# ------------------------------------------------------------------- data


def task_examples(dataset, tasks: Mapping[str, Sequence[str]],
                  columns: Mapping[str, str]) -> list[dict[str, torch.Tensor]]:
    """Examples with one ``labels_<task>`` column per task in ``tasks``.

    ``tasks``: ``{task: [label names]}`` of the model. ``columns``: ``{task:
    column of dataset}`` for the tasks this dataset has labels for; every other
    task gets -100 (no label). A ClassLabel "missing" value (-1) also becomes
    -100; examples with no label at all are dropped; a label outside its task's
    range is an error (it would otherwise reach the head as another class).
    ``dataset``: a tokenised Dataset or a list of dicts (e.g. from
    :func:`course_lib.heads.cache_hidden_states`).
    """
    unknown = set(columns) - set(tasks)
    if unknown:
        raise CourseError(f"columns names task(s) {sorted(unknown)} that are not in tasks "
                          f"{list(tasks)}")
    rows = dataset if isinstance(dataset, list) else to_tensors(dataset)
    missing = [c for c in columns.values() if rows and c not in rows[0]]
    if missing:
        raise CourseError(f"dataset has no column(s) {missing}; it has {sorted(rows[0])}")
    examples = []
    for row in rows:
        example = {k: row[k] for k in INPUT_KEYS if k in row}
        labelled = False
        for task, names in tasks.items():
            value = int(row[columns[task]]) if task in columns else IGNORE
            if value < 0:
                value = IGNORE
            elif value >= len(names):
                raise CourseError(f"task {task!r}: label id {value} in column "
                                  f"{columns[task]!r} is outside its {len(names)} classes")
            labelled = labelled or value != IGNORE
            example[label_key(task)] = torch.tensor(value)
        if labelled:
            examples.append(example)
    return examples


def task_probabilities(sizes: Mapping[str, int], temperature: float = 1.0) -> dict[str, float]:
    """Sampling probability of each task: ``p_t ~ n_t ** (1 / temperature)``.

    ``temperature=1``: proportional to the data (a small task is rarely seen);
    larger temperatures flatten the distribution; ``math.inf``: uniform (every
    task equally often, the small one repeated many times).
    """
    if not temperature > 0:
        raise CourseError(f"temperature={temperature} must be > 0 (1 = proportional, "
                          "inf = uniform)")
    if any(n <= 0 for n in sizes.values()):
        raise CourseError(f"every task needs examples; sizes are {dict(sizes)}")
    scores = {t: (1.0 if math.isinf(temperature) else n ** (1.0 / temperature))
              for t, n in sizes.items()}
    total = sum(scores.values())
    return {t: s / total for t, s in scores.items()}


def _allocate(probabilities: Mapping[str, float], total: int) -> dict[str, int]:
    """Integer counts that sum to ``total`` (largest remainders)."""
    exact = {t: p * total for t, p in probabilities.items()}
    counts = {t: int(math.floor(v)) for t, v in exact.items()}
    by_remainder = sorted(exact, key=lambda t: exact[t] - counts[t], reverse=True)
    for t in by_remainder[: total - sum(counts.values())]:
        counts[t] += 1
    return counts


def mix_tasks(examples_by_task: Mapping[str, list[dict]], *, temperature: float = 1.0,
              num_examples: int | None = None, seed: int = settings.DEFAULT_SEED
              ) -> list[dict]:
    """One training set drawn across tasks with temperature sampling.

    Task ``t`` gets ``round(p_t * num_examples)`` examples (``num_examples``
    defaults to all examples of all tasks). Within a task, examples are drawn
    without replacement in shuffled passes: a task asked for more than it has is
    repeated as evenly as possible; one asked for fewer gets a random subset.
    The result is shuffled; the Trainer reshuffles it every epoch.
    """
    if not examples_by_task:
        raise CourseError("mix_tasks needs {task: examples} for at least one task")
    sizes = {t: len(v) for t, v in examples_by_task.items()}
    probabilities = task_probabilities(sizes, temperature)
    total = num_examples if num_examples is not None else sum(sizes.values())
    generator = torch.Generator().manual_seed(seed)
    mixture = []
    for task, count in _allocate(probabilities, total).items():
        pool = examples_by_task[task]
        picks: list[int] = []
        while len(picks) < count:
            picks += torch.randperm(len(pool), generator=generator).tolist()
        mixture += [pool[i] for i in picks[:count]]
    order = torch.randperm(len(mixture), generator=generator).tolist()
    return [mixture[i] for i in order]


def mixture_counts(examples: Sequence[dict], tasks: Sequence[str]) -> dict[str, int]:
    """How many examples carry a label for each task."""
    return {t: sum(int(ex[label_key(t)]) != IGNORE for ex in examples) for t in tasks}


def multitask_metrics(tasks: Mapping[str, Sequence[str]]):
    """``compute_metrics`` for the Trainer: accuracy and macro-F1 per task, each on
    the examples labelled for that task, plus ``mean_macro_f1`` over tasks."""

    def compute(preds) -> dict:
        out = {}
        for task, names in tasks.items():
            labels = preds.labels.get(label_key(task))
            if labels is None:
                continue
            keep = labels != IGNORE
            if not keep.any():
                continue
            predicted = preds.outputs[f"logits_{task}"][keep].argmax(-1)
            scores = classification_scores(labels[keep], predicted, list(names))
            out[f"{task}_accuracy"] = scores["accuracy"]
            out[f"{task}_macro_f1"] = scores["macro_f1"]
        f1s = [v for k, v in out.items() if k.endswith("_macro_f1")]
        if f1s:
            out["mean_macro_f1"] = sum(f1s) / len(f1s)
        return out

    return compute
