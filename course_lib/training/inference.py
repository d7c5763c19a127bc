"""The one inference runner of the course: a model's outputs for every example of a dataset.

Prediction, feature caching (frozen lower layers), saliency and QA logits all need the
same loop, and each small slip in it costs: forgetting ``eval()`` keeps dropout on,
forgetting ``inference_mode`` keeps the autograd graph, padding every batch to the
longest example of the whole dataset wastes most of the compute. So there is one:

- examples sorted by length, longest first (little padding; an out-of-memory error shows
  at the first batch), each batch padded to its own longest sequence;
- ``model.eval()`` under ``torch.inference_mode()``, the model's training mode restored
  afterwards; autocast on a GPU (bf16 where the GPU computes in it natively, else fp16);
- results returned per example, in the dataset's order, on the CPU.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

import torch

from .batching import PadCollator, model_inputs, sequence_lengths, to_tensors
from .precision import autocast_for


def tensor_outputs(outputs) -> dict[str, torch.Tensor]:
    """The tensor fields of a forward's result (a ModelOutput, a dict, a tuple or a tensor)."""
    if isinstance(outputs, torch.Tensor):
        return {"output": outputs}
    if isinstance(outputs, (tuple, list)):
        return {f"output_{i}": v for i, v in enumerate(outputs) if isinstance(v, torch.Tensor)}
    items = outputs.items() if isinstance(outputs, Mapping) else vars(outputs).items()
    return {k: v for k, v in items if isinstance(v, torch.Tensor)}


def default_forward(model: torch.nn.Module, batch: dict[str, torch.Tensor]):
    return model(**batch)


def as_examples(dataset, keep: Iterable[str] | None) -> list[dict[str, torch.Tensor]]:
    """Tensor examples from a Dataset, a list of dicts, or tensor examples (kept as they are,
    only restricted to ``keep``)."""
    keep = None if keep is None else set(keep)
    if isinstance(dataset, list) and dataset and all(
            isinstance(v, torch.Tensor) for v in dataset[0].values()):
        if keep is None:
            return dataset
        return [{k: v for k, v in ex.items() if k in keep} for ex in dataset]
    return to_tensors(dataset, keep=keep)


def batched_outputs(model: torch.nn.Module, dataset, *, batch_size: int = 64,
                    pad_token_id: int = 0, forward: Callable | None = None,
                    keep: Iterable[str] | None = None, sequence_outputs: Iterable[str] = (),
                    device: torch.device | str | None = None) -> dict[str, list[torch.Tensor]]:
    """``{output name: [one CPU tensor per example, in dataset order]}``.

    ``dataset``: a ``datasets.Dataset``, a list of dicts, or tensor examples.
    ``forward(model, batch) -> dict[str, Tensor]`` replaces ``model(**batch)`` (whose
    tensor fields are collected); only outputs with one row per example are kept (a
    batch's mean loss is not). ``keep``: the columns given to the model; by default,
    with no ``forward``, the model's own inputs (:func:`~course_lib.training.batching.model_inputs`),
    with a ``forward``, every numeric column. Outputs named in ``sequence_outputs``
    (per-token logits, hidden states) are cut to each example's own length along dim 1,
    so no padding comes back. Floating-point outputs come back in float32.
    """
    if keep is None and forward is None:
        keep = model_inputs(model)
    examples = as_examples(dataset, keep)
    if not examples:
        return {}
    forward = forward or default_forward
    device = torch.device(device) if device is not None else _device_of(model)
    lengths = sequence_lengths(examples)
    order = sorted(range(len(examples)), key=lambda i: -lengths[i])
    collate = PadCollator(pad_token_id)
    per_sequence = set(sequence_outputs)
    results: dict[str, list] = {}
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode(), autocast_for(device):
            for start in range(0, len(order), batch_size):
                idx = order[start:start + batch_size]
                batch = {k: v.to(device, non_blocking=True)
                         for k, v in collate([examples[i] for i in idx]).items()}
                for name, value in tensor_outputs(forward(model, batch)).items():
                    if value.dim() == 0 or value.shape[0] != len(idx):
                        continue
                    value = (value.float() if value.is_floating_point() else value).cpu()
                    if name not in results:
                        results[name] = [None] * len(examples)
                    rows = results[name]
                    for row, i in enumerate(idx):
                        rows[i] = value[row, :lengths[i]] if name in per_sequence else value[row]
    finally:
        model.train(was_training)
    return results


def _device_of(model: torch.nn.Module) -> torch.device:
    param = next(model.parameters(), None)
    return param.device if param is not None else torch.device("cpu")
