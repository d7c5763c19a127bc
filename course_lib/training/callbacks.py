"""Hooks into the training loop, for strategies that change the model while it trains."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .loop import Trainer


class Callback:
    """Hooks for strategies that change the model during training (e.g. gradual unfreezing).

    A callback that freezes or unfreezes weights after the model is wrapped for data
    parallelism sets ``changes_trainable_parameters = True``: DistributedDataParallel
    then has to look for weights without a gradient at every step, or the second step
    fails with "Expected to have finished reduction in the prior iteration".

    A callback with state that matters for the rest of the run (how many layers are
    unfrozen) returns it from :meth:`state_dict` (JSON-serialisable) and takes it back in
    :meth:`load_state_dict`: resume checkpoints store it, and a resumed run calls
    ``load_state_dict`` *before* ``on_train_begin``, so the run continues exactly.
    """

    changes_trainable_parameters = False

    def on_train_begin(self, trainer: Trainer) -> None: ...
    def on_epoch_begin(self, trainer: Trainer, epoch: int) -> None: ...
    def on_step_end(self, trainer: Trainer, step: int) -> None: ...
    def on_evaluate(self, trainer: Trainer, metrics: dict) -> None: ...

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None: ...
