"""The optimizer, its parameter groups and the learning-rate schedules."""

from __future__ import annotations

import torch


def no_decay(name: str, param: torch.nn.Parameter) -> bool:
    """Whether a weight is kept out of weight decay: biases and normalisation weights.

    As in BERT: decay pulls weights towards zero, which suits matrices but not a
    LayerNorm's gain (its natural value is 1) or a bias. The one rule used by
    :func:`default_param_groups` and by the layer-wise groups in ``strategies``.
    """
    return param.ndim < 2 or "norm" in name.lower()


def default_param_groups(model: torch.nn.Module, weight_decay: float) -> list[dict]:
    """AdamW groups: no weight decay on biases and LayerNorm weights (see :func:`no_decay`).

    Every parameter is included, frozen or not: AdamW skips parameters without a
    gradient, and a layer unfrozen later (gradual unfreezing) then just starts moving.
    """
    decay, plain = [], []
    for name, param in model.named_parameters():
        (plain if no_decay(name, param) else decay).append(param)
    return [{"params": decay, "weight_decay": weight_decay},
            {"params": plain, "weight_decay": 0.0}]


def make_optimizer(param_groups, learning_rate: float, device: torch.device):
    """AdamW, fused on CPU and CUDA: one kernel updates every tensor.

    The same update as the default implementation (up to float rounding), but the
    default on CPU loops over the ~100 weight tensors in Python: for the quick backbone
    that is 95 ms per step against 13 ms fused on 2 cores, about a sixth of a whole
    training step at batch 32 (benchmarks/trainer_throughput.py measures the effect).
    """
    fused = device.type in ("cpu", "cuda")
    return torch.optim.AdamW(param_groups, lr=learning_rate, fused=fused or None)


def make_scheduler(optimizer, name: str, warmup_steps: int, total_steps: int):
    """Warmup then decay: ``linear``, ``cosine``, ``constant`` or ``slanted_triangular``.

    ``slanted_triangular`` is ULMFiT's (the schedule FinBERT used): a short linear rise,
    then a long linear fall to 1/32 of the peak. It is transformers' polynomial decay
    with ``power=1`` and ``lr_end = peak / 32``. That function computes one factor from
    ``optimizer.defaults["lr"]`` and multiplies every group's own learning rate by it,
    so groups with different peaks (layer-wise rates) each end at their own peak / 32.
    """
    from transformers import get_polynomial_decay_schedule_with_warmup, get_scheduler

    if name == "slanted_triangular":
        peak = optimizer.defaults["lr"]
        if peak > 0:  # transformers refuses lr_end >= peak; a zero rate needs no schedule
            return get_polynomial_decay_schedule_with_warmup(
                optimizer, warmup_steps, total_steps, lr_end=peak / 32.0, power=1.0)
        name = "constant"
    if name == "constant":
        name = "constant_with_warmup"
    return get_scheduler(name, optimizer, num_warmup_steps=warmup_steps,
                         num_training_steps=total_steps)
