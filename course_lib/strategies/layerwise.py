"""Layer-wise learning rates and gradual unfreezing (ULMFiT, FinBERT).

Lower layers hold general language knowledge that a small task-specific data set
should barely move; the head is new and must move a lot. Two tools follow from that:

- :func:`layerwise_param_groups`: each layer down trains at ``decay`` times the
  rate of the layer above. The rates are *relative*: a group carries ``lr_scale``
  and the Trainer gives it ``TrainingConfig.learning_rate * lr_scale``, so the
  top layer always trains at the configured rate (2e-5 for bert-base means 2e-5);
- :class:`GradualUnfreezing`: start with only the head trainable and thaw one unit
  more from the top as training goes on.
"""

from __future__ import annotations

from torch import nn

from ..settings import CourseError
from ..training import Callback, no_decay
from .anatomy import set_trainable, units_top_down


def layerwise_param_groups(model: nn.Module, decay: float = 0.85,
                           weight_decay: float = 0.01) -> list[dict]:
    """AdamW groups with layer-wise learning-rate decay (Howard & Ruder 2018; Sun et al. 2019).

    The head and the top layer get ``lr_scale = 1``; every layer below gets ``decay``
    times the scale of the layer above; the embeddings come last. The Trainer turns a
    scale into a rate: ``TrainingConfig.learning_rate * lr_scale``. With a plain torch
    optimizer set ``group["lr"] = peak * group["lr_scale"]`` yourself (torch ignores
    the scale). Biases and normalisation weights get no weight decay
    (:func:`course_lib.training.no_decay`). Frozen parameters are included, so gradual
    unfreezing can switch them on later.
    """
    if not 0 < decay <= 1:
        raise CourseError(f"decay={decay} must be in (0, 1]")
    names = {id(p): n for n, p in model.named_parameters()}
    groups = []
    for depth, (unit, params) in enumerate(units_top_down(model)):
        scale = decay ** max(0, depth - 1)  # head (0) and top layer (1) share the peak
        plain = [p for p in params if no_decay(names.get(id(p), ""), p)]
        decayed = [p for p in params if not no_decay(names.get(id(p), ""), p)]
        for part, wd in ((decayed, weight_decay), (plain, 0.0)):
            if part:
                groups.append({"params": part, "lr_scale": scale, "weight_decay": wd,
                               "name": unit})
    return groups


class GradualUnfreezing(Callback):
    """Start with only the head trainable; unfreeze one more unit from the top at a time.

    ``every``: ``"epoch"`` (ULMFiT: one layer per epoch), a number of optimizer
    steps, or ``None``: spread the unfreezing so that everything is trainable after
    ``unfreeze_by`` of the run (0.5 = half way), whatever the run's length.
    ``include_embeddings=False`` leaves the embedding tables frozen for good.
    ``events`` records ``(step, unit)`` for plots.

    Its state (how many units are thawed, and when) goes into resume checkpoints
    (:meth:`state_dict`); a resumed run restores it before ``on_train_begin``, which then
    thaws exactly those units instead of starting again from the head alone.
    """

    changes_trainable_parameters = True  # data parallelism must expect frozen weights

    def __init__(self, model: nn.Module, every: str | int | None = None,
                 unfreeze_by: float = 0.5, include_embeddings: bool = True):
        self.model = model
        self.units = units_top_down(model)
        if not include_embeddings:
            self.units = self.units[:-1]
        self.every = every
        self.unfreeze_by = unfreeze_by
        self.thawed = 0
        self.events: list[tuple[int, str]] = []
        self._resumed: dict | None = None

    def state_dict(self) -> dict:
        return {"thawed": self.thawed, "events": [list(e) for e in self.events]}

    def load_state_dict(self, state: dict) -> None:
        """Take a checkpoint's state; applied by the next ``on_train_begin``."""
        self._resumed = {"thawed": int(state["thawed"]),
                         "events": [tuple(e) for e in state["events"]]}

    def _thaw_until(self, count: int, step: int) -> None:
        count = min(count, len(self.units))
        while self.thawed < count:
            name, params = self.units[self.thawed]
            set_trainable(params, True)
            self.events.append((step, name))
            self.thawed += 1

    def on_train_begin(self, trainer) -> None:
        set_trainable(self.model.parameters(), False)
        self.thawed = 0
        self.events = []
        if self.every is None:
            total = getattr(trainer, "total_steps", 1)
            self.interval = max(1, int(total * self.unfreeze_by / max(1, len(self.units) - 1)))
        elif self.every != "epoch":
            self.interval = int(self.every)
        if self._resumed is not None:  # continue an interrupted run where it was
            self._thaw_until(self._resumed["thawed"], step=0)
            self.events = list(self._resumed["events"])
            self._resumed = None
            return
        self._thaw_until(1, step=getattr(trainer, "global_step", 0))

    def on_epoch_begin(self, trainer, epoch: int) -> None:
        if self.every == "epoch":
            self._thaw_until(epoch + 1, step=trainer.global_step)

    def on_step_end(self, trainer, step: int) -> None:
        if self.every != "epoch":
            self._thaw_until(1 + step // self.interval, step=step)
