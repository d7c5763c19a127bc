"""Training and inference for every model in the course, built on Hugging Face Accelerate.

The room's modules, in the order a run uses them:

- :mod:`.batching`: examples as tensors (built once), dynamic padding, length-grouped
  and seeded batch order, the columns a model takes;
- :mod:`.config`: :class:`TrainingConfig` (the recipe), :class:`History`, :class:`Predictions`;
- :mod:`.optim`: AdamW, its parameter groups (the one :func:`no_decay` rule), schedules;
- :mod:`.callbacks`: :class:`Callback`, hooks for strategies that change the model mid-run;
- :mod:`.loop`: :class:`Trainer` and :func:`train`;
- :mod:`.evaluation`: predictions gathered from every process, each example once;
- :mod:`.selection`: the best weights and early stopping;
- :mod:`.checkpoint`: resume checkpoints;
- :mod:`.inference`: :func:`batched_outputs`, the one length-sorted inference runner;
- :mod:`.precision`: bf16/fp16 choice, autocast for inference, TF32 inside runs.
"""

from .batching import (
    BatchPlan,
    DatasetCache,
    PadCollator,
    model_inputs,
    padding_waste,
    sequence_lengths,
    to_tensors,
)
from .callbacks import Callback
from .config import History, Predictions, TrainingConfig
from .inference import batched_outputs
from .loop import Trainer, train
from .optim import default_param_groups, make_optimizer, make_scheduler, no_decay

__all__ = ["BatchPlan", "Callback", "DatasetCache", "History", "PadCollator", "Predictions",
           "Trainer", "TrainingConfig", "batched_outputs", "default_param_groups",
           "make_optimizer", "make_scheduler", "model_inputs", "no_decay", "padding_waste",
           "sequence_lengths", "to_tensors", "train"]
