"""Evaluation on one or several processes: every example exactly once, in dataset order.

Examples are sorted by length (longest first) and cut into batches; with several
processes Accelerate hands the batches out in turn and completes the last round with
repeated examples so every process runs the same number of forwards.
``gather_for_metrics`` drops those repeats again, ``pad_across_processes`` first evens
out per-token outputs (QA logits) whose length differs between processes. The loss is
averaged over the real examples only: a last batch that holds repeats is scored again
on its real rows.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch

from .batching import PadCollator, sequence_lengths
from .config import Predictions
from .inference import tensor_outputs

OUTPUTS_NOT_COLLECTED = {"loss", "hidden_states", "attentions", "past_key_values"}
OUTPUT_PAD = -1e4  # padded logits: never the arg-max, and exp() of them is 0
LABEL_PAD = -100


class _Indexed(torch.utils.data.Dataset):
    """Examples with their position, so gathered outputs can be put back in order."""

    def __init__(self, examples: list[dict[str, torch.Tensor]], collate: PadCollator):
        self.examples = examples
        self.collate = collate

    def __len__(self) -> int:
        return len(self.examples)

    def __getitem__(self, i: int):
        return i

    def batch(self, positions: list[int]):
        return torch.tensor(positions), self.collate([self.examples[i] for i in positions])


def eval_loader(accelerator, examples, batch_size: int, collate: PadCollator):
    """A data loader over ``examples`` (longest first), sharded by Accelerate."""
    from accelerate.data_loader import prepare_data_loader

    lengths = sequence_lengths(examples)
    order = sorted(range(len(examples)), key=lambda i: -lengths[i])
    indexed = _Indexed(examples, collate)
    cuda = accelerator.device.type == "cuda"
    loader = torch.utils.data.DataLoader(indexed, batch_size=batch_size, sampler=order,
                                         collate_fn=indexed.batch, pin_memory=cuda)
    return prepare_data_loader(loader, accelerator.device,
                               num_processes=accelerator.num_processes,
                               process_index=accelerator.process_index,
                               put_on_device=True, non_blocking=cuda)


def predict_examples(accelerator, model: torch.nn.Module, examples, *, batch_size: int,
                     collate: PadCollator, loss_fn: Callable, label_keys: Sequence[str]
                     ) -> Predictions:
    """Outputs, labels and mean loss for ``examples``, gathered from every process.

    ``loss_fn(model, batch) -> (loss or None, outputs)``: the loss the run trains on.
    """
    # Evaluation must not move the random streams that training draws dropout from: a
    # DataLoader draws its base seed from the global torch generator at every iteration,
    # so evaluating after epoch 1 would change epoch 2's dropout masks (and a run with an
    # eval set would no longer repeat one without).
    devices = [accelerator.device] if accelerator.device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        return _predict(accelerator, model, examples, batch_size=batch_size, collate=collate,
                        loss_fn=loss_fn, label_keys=label_keys)


def _predict(accelerator, model, examples, *, batch_size, collate, loss_fn, label_keys
             ) -> Predictions:
    loader = eval_loader(accelerator, examples, batch_size, collate)
    several = accelerator.num_processes > 1
    index_parts, output_parts, label_parts = [], {}, {}
    loss_sum = torch.zeros((), device=accelerator.device, dtype=torch.float64)
    loss_count = torch.zeros((), device=accelerator.device, dtype=torch.float64)
    with torch.inference_mode(), accelerator.autocast():
        for positions, batch in loader:
            loss, outputs = loss_fn(model, batch)
            real = _real_rows(loader, len(positions), batch_size, accelerator.process_index)
            if loss is not None and real:
                if real < len(positions):  # the rest repeat other examples: score only these
                    loss, _ = loss_fn(model, {k: v[:real] for k, v in batch.items()})
                loss_sum += loss.detach().double() * real
                loss_count += real
            outs = {k: v for k, v in tensor_outputs(outputs).items()
                    if k not in OUTPUTS_NOT_COLLECTED and v.dim() > 0
                    and v.shape[0] == len(positions)}
            labels = {k: batch[k] for k in label_keys if k in batch}
            if several:
                outs = {k: _pad(accelerator, v, OUTPUT_PAD) for k, v in outs.items()}
                labels = {k: _pad(accelerator, v, LABEL_PAD) for k, v in labels.items()}
            positions, outs, labels = accelerator.gather_for_metrics((positions, outs, labels))
            index_parts.append(positions.cpu().numpy())
            for name, value in outs.items():
                output_parts.setdefault(name, []).append(_numpy(value))
            for name, value in labels.items():
                label_parts.setdefault(name, []).append(_numpy(value))
    if several:
        loss_sum, loss_count = accelerator.reduce(torch.stack([loss_sum, loss_count]), "sum")
    order = np.argsort(np.concatenate(index_parts), kind="stable")
    outputs = {k: concat_padded(v, OUTPUT_PAD)[order] for k, v in output_parts.items()}
    labels = {k: concat_padded(v, LABEL_PAD)[order] for k, v in label_parts.items()}
    count = float(loss_count)
    return Predictions(outputs, labels, float(loss_sum) / count if count else None)


def _real_rows(loader, size: int, batch_size: int, process_index: int) -> int:
    """How many rows of this batch are real examples, not Accelerate's repeats.

    Only the last round is completed with repeats; its real examples come first in
    process order, and there are ``remainder`` of them.
    """
    remainder = getattr(loader, "remainder", -1)
    if not getattr(loader, "end_of_dataloader", False) or remainder <= 0:
        return size
    return max(0, min(size, remainder - process_index * batch_size))


def _pad(accelerator, tensor: torch.Tensor, value: float) -> torch.Tensor:
    """Per-token tensors: pad dim 1 to the longest on any process (no-op for others)."""
    if tensor.dim() < 2:
        return tensor
    return accelerator.pad_across_processes(tensor, dim=1, pad_index=value)


def _numpy(tensor: torch.Tensor) -> np.ndarray:
    tensor = tensor.detach()
    if tensor.is_floating_point():
        tensor = tensor.float()
    return tensor.cpu().numpy()


def concat_padded(parts: list[np.ndarray], fill: float) -> np.ndarray:
    """Concatenate along the batch axis, padding the other axes to the largest."""
    if all(p.shape[1:] == parts[0].shape[1:] for p in parts):
        return np.concatenate(parts)
    shape = [max(p.shape[d] for p in parts) for d in range(1, parts[0].ndim)]
    out = []
    for p in parts:
        padded = np.full((p.shape[0], *shape), fill, dtype=p.dtype)
        padded[tuple(slice(0, s) for s in p.shape)] = p
        out.append(padded)
    return np.concatenate(out)
