"""A short, honest speed probe: how many sentences per second this machine trains and predicts."""

from __future__ import annotations

import time

import torch

from . import backbones, settings


def probe_training_speed(texts: list[str], batch_size: int = 32, steps: int = 4,
                         max_length: int = 128, name: str | None = None) -> dict:
    """Time a few full fine-tuning steps (after one warm-up step) and a prediction pass."""
    tokenizer = backbones.load_tokenizer(name)
    model = backbones.load_model("classification", name, labels=["a", "b", "c"])
    device = settings.get_device()
    model.to(device).train()
    from .training import default_param_groups, make_optimizer  # the Trainer's optimizer

    optimizer = make_optimizer(default_param_groups(model, 0.01), 1e-5, device)
    batches = [texts[i * batch_size:(i + 1) * batch_size] for i in range(steps + 1)]
    batches = [b for b in batches if b] or [texts[:batch_size]]
    examples = tokens = 0
    seconds = 0.0
    for i, chunk in enumerate(batches):
        enc = tokenizer(chunk, padding=True, truncation=True, max_length=max_length,
                        return_tensors="pt").to(device)
        labels = torch.zeros(len(chunk), dtype=torch.long, device=device)
        _synchronize(device)  # the copies above are asynchronous on a GPU: not this step's time
        started = time.perf_counter()
        loss = model(**enc, labels=labels).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        _synchronize(device)  # GPU kernels run asynchronously: wait for them before timing
        if i > 0:  # the first step warms up kernels and allocators
            seconds += time.perf_counter() - started
            examples += len(chunk)
            tokens += int(enc["attention_mask"].sum())
    model.eval()
    enc = tokenizer(texts[: 4 * batch_size], padding=True, truncation=True,
                    max_length=max_length, return_tensors="pt").to(device)
    _synchronize(device)
    started = time.perf_counter()
    with torch.inference_mode():
        model(**enc)
    _synchronize(device)
    predict_seconds = time.perf_counter() - started
    return {"train_examples_per_s": examples / max(seconds, 1e-9),
            "train_tokens_per_s": tokens / max(seconds, 1e-9),
            "predict_examples_per_s": enc["input_ids"].shape[0] / max(predict_seconds, 1e-9),
            "device": str(device)}


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
