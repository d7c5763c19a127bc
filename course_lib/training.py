"""One Trainer for every model in the course, built on Hugging Face Accelerate.

It trains any ``nn.Module`` whose forward returns a loss (a Hugging Face model,
a custom head, a multi-task model) on CPU, one GPU, or several processes under
``accelerate launch`` / ``torchrun``, with the same code.

What it does, in the order a step happens:

1. batches come from :class:`~course_lib.batching.BatchPlan` (shuffled per epoch
   from a seed, length-grouped, dynamically padded; tensors built once);
2. forward under autocast (bf16, or fp16 with loss scaling, on a GPU; fp32 on CPU);
3. a non-finite loss stops the run *before* the weights are touched;
4. gradients accumulate over ``gradient_accumulation_steps`` micro-batches;
5. clip, optimizer step, learning-rate schedule step (warmup + linear/cosine decay);
6. evaluation every epoch or every N steps; the best weights are kept (in memory
   and, with ``output_dir``, as a ``save_pretrained`` folder written atomically);
   early stopping after ``early_stopping_patience`` evaluations without progress;
7. resume checkpoints (weights, optimizer, schedule, RNG, position in the epoch)
   written atomically; Ctrl-C saves one and says how to resume.
"""

from __future__ import annotations

import inspect
import json
import math
import os
import random
import shutil
import time
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from . import settings
from .batching import BatchPlan, PadCollator, sequence_lengths, to_tensors
from .settings import CourseError

MODEL_INPUTS_NOT_COLLECTED = {"input_ids", "attention_mask", "token_type_ids", "position_ids",
                              "inputs_embeds", "special_tokens_mask"}
OUTPUTS_NOT_COLLECTED = {"loss", "hidden_states", "attentions", "past_key_values"}


@dataclass
class TrainingConfig:
    """Hyperparameters of a run. The defaults are the course's recipe for the quick
    backbone (a 6-layer, 384-wide BERT): it needs a higher learning rate than
    ``bert-base-uncased`` (2e-4 here; 2e-5 to 5e-5 for bert-base)."""

    learning_rate: float = 2e-4
    epochs: float = 3
    batch_size: int = 32
    eval_batch_size: int = 64
    weight_decay: float = 0.01
    warmup_ratio: float = 0.1
    schedule: str = "linear"  # linear | cosine | constant | slanted_triangular
    gradient_accumulation_steps: int = 1
    max_grad_norm: float | None = 1.0
    eval_every: str | int | None = "epoch"  # "epoch", a number of steps, or None
    metric_for_best: str = "loss"  # "loss" or a key returned by compute_metrics
    early_stopping_patience: int | None = None
    load_best_at_end: bool = True
    group_by_length: bool = True
    mixed_precision: str = "auto"  # auto | no | bf16 | fp16
    seed: int = settings.DEFAULT_SEED
    max_steps: int | None = None  # overrides epochs when set
    output_dir: str | None = None  # checkpoints and the best model go here
    save_every: str | int | None = "eval"  # resume checkpoints: "eval", N steps, or None
    log_every: int = 10
    progress: bool | None = None  # None: shown in notebooks/terminals, hidden under CI
    verbose: bool = True  # one line per evaluation

    def resolved_mixed_precision(self) -> str:
        if self.mixed_precision != "auto":
            return self.mixed_precision
        if torch.cuda.is_available():
            return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
        return "no"


@dataclass
class Predictions:
    """Everything a model produced on a dataset, in the dataset's order."""

    outputs: dict[str, np.ndarray]
    labels: dict[str, np.ndarray]
    loss: float | None = None

    @property
    def logits(self) -> np.ndarray:
        return self.outputs["logits"]

    @property
    def label_ids(self) -> np.ndarray | None:
        return self.labels.get("labels")

    @property
    def predictions(self) -> np.ndarray:
        return self.logits.argmax(-1)


@dataclass
class History:
    """Training log: ``steps`` (train loss, learning rate) and ``evals`` (metrics)."""

    steps: list[dict] = field(default_factory=list)
    evals: list[dict] = field(default_factory=list)
    train_seconds: float = 0.0
    stopped_early: bool = False
    best_step: int | None = None
    best_metric: float | None = None

    def to_frame(self):
        import pandas as pd

        return pd.DataFrame(self.evals)

    def steps_frame(self):
        import pandas as pd

        return pd.DataFrame(self.steps)

    @property
    def final(self) -> dict:
        return self.evals[-1] if self.evals else {}


class Callback:
    """Hooks for strategies that change the model during training (e.g. gradual unfreezing).

    A callback that freezes or unfreezes weights after the model is wrapped for data
    parallelism sets ``changes_trainable_parameters = True``: DistributedDataParallel
    then has to look for weights without a gradient at every step, or the second step
    fails with "Expected to have finished reduction in the prior iteration".
    """

    changes_trainable_parameters = False

    def on_train_begin(self, trainer: Trainer) -> None: ...
    def on_epoch_begin(self, trainer: Trainer, epoch: int) -> None: ...
    def on_step_end(self, trainer: Trainer, step: int) -> None: ...
    def on_evaluate(self, trainer: Trainer, metrics: dict) -> None: ...


def make_optimizer(param_groups, learning_rate: float, device: torch.device):
    """AdamW, fused on CPU and CUDA: one kernel updates every tensor.

    The same update as the default implementation (up to float rounding), but the
    default on CPU loops over the ~100 weight tensors in Python: for the quick backbone
    that is 95 ms per step against 13 ms fused on 2 cores, about a sixth of a whole
    training step at batch 32 (benchmarks/trainer_throughput.py measures the effect).
    """
    fused = device.type in ("cpu", "cuda")
    return torch.optim.AdamW(param_groups, lr=learning_rate, fused=fused or None)


def default_param_groups(model: torch.nn.Module, weight_decay: float) -> list[dict]:
    """AdamW groups: no weight decay on biases and LayerNorm weights (as in BERT).

    Every parameter is included, frozen or not: AdamW skips parameters without a
    gradient, and a layer unfrozen later (gradual unfreezing) then just starts moving.
    """
    decay, no_decay = [], []
    for name, param in model.named_parameters():
        (no_decay if param.ndim < 2 or "LayerNorm" in name or "norm" in name.lower()
         else decay).append(param)
    return [{"params": decay, "weight_decay": weight_decay},
            {"params": no_decay, "weight_decay": 0.0}]


def make_scheduler(optimizer, name: str, warmup_steps: int, total_steps: int):
    """Warmup then decay. ``slanted_triangular`` is ULMFiT's: a short linear rise, then a
    long linear fall to 1/32 of the peak (the schedule FinBERT used)."""
    from transformers import get_scheduler

    if name == "slanted_triangular":
        ratio = 32.0

        def factor(step: int) -> float:
            if step < warmup_steps:
                return (step + 1) / max(1, warmup_steps)
            progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
            return max(1.0 / ratio, 1.0 - progress * (1.0 - 1.0 / ratio))

        return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
    if name == "constant":
        name = "constant_with_warmup"
    return get_scheduler(name, optimizer, num_warmup_steps=warmup_steps,
                         num_training_steps=total_steps)


def _loss_of(outputs) -> torch.Tensor:
    loss = outputs.get("loss") if isinstance(outputs, dict) else getattr(outputs, "loss", None)
    if loss is None and isinstance(outputs, (tuple, list)):
        loss = outputs[0]
    if loss is None:
        raise CourseError("the model's forward returned no loss: pass labels, or give the "
                          "Trainer a compute_loss function")
    return loss


def _forward_keys(model: torch.nn.Module) -> set[str] | None:
    """Argument names of ``model.forward``; None when it takes ``**kwargs``."""
    params = inspect.signature(model.forward).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return None
    return set(params)


class Trainer:
    """Train and evaluate ``model`` on tokenised datasets.

    ``train_dataset`` / ``eval_dataset``: a ``datasets.Dataset`` (or a list of
    dicts) with ``input_ids`` etc. and the label column(s); text columns are ignored.
    ``compute_metrics(Predictions) -> dict`` adds metrics to the evaluation.
    ``compute_loss(model, batch) -> (loss, outputs)`` replaces ``outputs.loss``
    (for example, a class-weighted loss).
    ``param_groups`` replaces the default AdamW parameter groups (layer-wise
    learning rates); a group's ``lr`` is multiplied by the schedule like any other.
    """

    def __init__(self, model: torch.nn.Module, config: TrainingConfig | None = None, *,
                 train_dataset=None, eval_dataset=None, tokenizer=None,
                 compute_metrics: Callable[[Predictions], dict] | None = None,
                 compute_loss: Callable | None = None,
                 param_groups: list[dict] | None = None,
                 callbacks: Sequence[Callback] = (),
                 label_keys: Sequence[str] | None = None):
        from accelerate import Accelerator, DistributedDataParallelKwargs

        self.config = config or TrainingConfig()
        self.tokenizer = tokenizer
        self.compute_metrics = compute_metrics
        self.compute_loss = compute_loss
        self.callbacks = list(callbacks)
        # Only then: the search for unused weights costs time at every step.
        unfreezes = any(c.changes_trainable_parameters for c in self.callbacks)
        self.accelerator = Accelerator(
            mixed_precision=self.config.resolved_mixed_precision(),
            cpu=not torch.cuda.is_available() and not torch.backends.mps.is_available(),
            kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=True)]
            if unfreezes else None)
        self.device = self.accelerator.device
        pad_id = getattr(tokenizer, "pad_token_id", None) or 0
        self.collate = PadCollator(pad_id)
        self._model = model
        keys = _forward_keys(model)
        self._keep = None if keys is None else keys | {"labels"}
        self.label_keys = tuple(label_keys) if label_keys else None
        self.train_dataset = train_dataset
        self.eval_dataset = eval_dataset
        self._tensor_cache: dict[int, list] = {}
        self._eval_batch_cache: dict[int, list] = {}
        self._param_groups = param_groups
        self.history = History()
        self.global_step = 0
        self.stop_training = False
        self._best_state: dict[str, torch.Tensor] | None = None
        self.model = None
        self.optimizer = None
        self.scheduler = None

    # ------------------------------------------------------------------ data
    def _examples(self, dataset) -> list[dict[str, torch.Tensor]]:
        """Tensors for a dataset, built once and cached (not every epoch)."""
        key = id(dataset)
        if key not in self._tensor_cache:
            examples = to_tensors(dataset, keep=self._keep)
            if not examples:
                raise CourseError("the dataset is empty")
            self._tensor_cache[key] = examples
        return self._tensor_cache[key]

    def _to_device(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        non_blocking = self.device.type == "cuda"
        return {k: v.to(self.device, non_blocking=non_blocking) for k, v in batch.items()}

    def _plan(self, examples, batch_size: int, shuffle: bool) -> BatchPlan:
        return BatchPlan(sequence_lengths(examples), batch_size, shuffle=shuffle,
                         group_by_length=self.config.group_by_length, seed=self.config.seed,
                         num_processes=self.accelerator.num_processes,
                         process_index=self.accelerator.process_index)

    # ----------------------------------------------------------------- setup
    def _setup(self, steps_per_epoch: int) -> None:
        cfg = self.config
        self._model.to(self.device)
        groups = self._param_groups or default_param_groups(self._model, cfg.weight_decay)
        optimizer = make_optimizer(groups, cfg.learning_rate, self.device)
        self.total_steps = cfg.max_steps or math.ceil(steps_per_epoch * cfg.epochs)
        warmup = int(round(cfg.warmup_ratio * self.total_steps))
        self.model, self.optimizer = self.accelerator.prepare(self._model, optimizer)
        self.scheduler = make_scheduler(self.optimizer.optimizer if hasattr(
            self.optimizer, "optimizer") else self.optimizer, cfg.schedule, warmup,
            self.total_steps)

    @property
    def unwrapped_model(self) -> torch.nn.Module:
        return self.accelerator.unwrap_model(self.model) if self.model is not None else self._model

    # ----------------------------------------------------------------- train
    def train(self, resume_from: str | None = None) -> History:
        """Run the schedule; ``resume_from="latest"`` (or a checkpoint folder) resumes."""
        cfg = self.config
        if self.train_dataset is None:
            raise CourseError("no train_dataset was given to the Trainer")
        examples = self._examples(self.train_dataset)
        plan = self._plan(examples, cfg.batch_size, shuffle=True)
        batches_per_epoch = len(plan)
        accum = max(1, cfg.gradient_accumulation_steps)
        steps_per_epoch = math.ceil(batches_per_epoch / accum)
        self._setup(steps_per_epoch)
        epochs = math.ceil(self.total_steps / steps_per_epoch)

        start_epoch, start_batch = 0, 0
        if resume_from:
            found = self._find_checkpoint(resume_from)
            if found is not None:
                start_epoch, start_batch = self._load_checkpoint(found)
                if self.accelerator.is_main_process and cfg.verbose:
                    print(f"resumed from {found} (step {self.global_step}, epoch "
                          f"{start_epoch + 1}, batch {start_batch})")
        for callback in self.callbacks:
            callback.on_train_begin(self)

        show = cfg.progress if cfg.progress is not None else settings.show_progress()
        from tqdm.auto import tqdm

        bar = tqdm(total=self.total_steps, initial=self.global_step, desc="training",
                   disable=not show or not self.accelerator.is_main_process, leave=False)
        started = time.perf_counter()
        elapsed_before = self.history.train_seconds
        self._boundary = (start_epoch, start_batch, self._rng_state())
        running_loss, running_count = 0.0, 0
        self.model.train()
        try:
            for epoch in range(start_epoch, epochs):
                if self.stop_training or self.global_step >= self.total_steps:
                    break
                self.epoch = epoch
                for callback in self.callbacks:
                    callback.on_epoch_begin(self, epoch)
                epoch_batches = plan.batches(epoch)
                first = start_batch if epoch == start_epoch else 0
                for b in range(first, len(epoch_batches)):
                    window_start = (b // accum) * accum
                    window_size = min(accum, len(epoch_batches) - window_start)
                    is_boundary = b == window_start + window_size - 1
                    batch = self._to_device(self.collate([examples[i] for i in epoch_batches[b]]))
                    sync = nullcontext() if is_boundary else self.accelerator.no_sync(self.model)
                    with sync:
                        loss, _ = self._loss(batch)
                        loss_value = loss.detach().float().item()
                        if not math.isfinite(loss_value):
                            raise CourseError(
                                f"the loss became {loss_value} at step {self.global_step + 1} "
                                f"(epoch {epoch + 1}); the weights were not updated. Lower the "
                                f"learning rate (now {self.scheduler.get_last_lr()[0]:.2e}), check "
                                "the labels and inputs, or use bf16 instead of fp16")
                        self.accelerator.backward(loss / window_size)
                    running_loss += loss_value
                    running_count += 1
                    if not is_boundary:
                        continue
                    if cfg.max_grad_norm:
                        self.accelerator.clip_grad_norm_(self.model.parameters(), cfg.max_grad_norm)
                    self.optimizer.step()
                    self.scheduler.step()
                    self.optimizer.zero_grad(set_to_none=True)
                    self.global_step += 1
                    self._boundary = (epoch, b + 1, self._rng_state())
                    bar.update(1)
                    if self.global_step % cfg.log_every == 0 or b == len(epoch_batches) - 1:
                        self.history.steps.append({
                            "step": self.global_step, "epoch": epoch + (b + 1) / len(epoch_batches),
                            "train_loss": running_loss / running_count,
                            "lr": self.scheduler.get_last_lr()[0]})
                        bar.set_postfix(loss=f"{running_loss / running_count:.4f}")
                        running_loss, running_count = 0.0, 0
                    for callback in self.callbacks:
                        callback.on_step_end(self, self.global_step)
                    end_of_epoch = b == len(epoch_batches) - 1
                    last_step = self.global_step >= self.total_steps
                    if self._due(cfg.eval_every, end_of_epoch) or (last_step and cfg.eval_every):
                        self.history.train_seconds = elapsed_before + time.perf_counter() - started
                        self._evaluate_and_keep_best(epoch + (b + 1) / len(epoch_batches))
                        self.model.train()
                    if cfg.output_dir and (self._due(cfg.save_every, end_of_epoch, eval_too=True)
                                           or last_step):
                        self.save_checkpoint()
                    if self.stop_training or last_step:
                        break
        except KeyboardInterrupt:
            bar.close()
            self.history.train_seconds = elapsed_before + time.perf_counter() - started
            if cfg.output_dir:
                path = self.save_checkpoint()
                print(f"interrupted at step {self.global_step}; checkpoint saved to {path}; "
                      "run train(resume_from='latest') to continue")
            raise
        bar.close()
        self.history.train_seconds = elapsed_before + time.perf_counter() - started
        if cfg.load_best_at_end and self._best_state is not None:
            self.unwrapped_model.load_state_dict(self._best_state)
        self.model.eval()
        return self.history

    def _due(self, every, end_of_epoch: bool, eval_too: bool = False) -> bool:
        if every is None:
            return False
        if every == "epoch":
            return end_of_epoch
        if every == "eval":
            return self._due(self.config.eval_every, end_of_epoch) if eval_too else False
        return self.global_step % int(every) == 0

    def _loss(self, batch):
        if self.compute_loss is not None:
            return self.compute_loss(self.model, batch)
        outputs = self.model(**batch)
        return _loss_of(outputs), outputs

    # -------------------------------------------------------------- evaluate
    def _evaluate_and_keep_best(self, epoch: float) -> dict:
        metrics = self.evaluate()
        record = {"step": self.global_step, "epoch": round(epoch, 3),
                  "train_seconds": round(self.history.train_seconds, 2)}
        recent = [s["train_loss"] for s in self.history.steps if s["step"] > (
            self.history.evals[-1]["step"] if self.history.evals else 0)]
        if recent:
            record["train_loss"] = float(np.mean(recent))
        record.update({f"eval_{k}": v for k, v in metrics.items() if np.isscalar(v)})
        self.history.evals.append(record)
        key = f"eval_{self.config.metric_for_best}"
        if key not in record:
            raise CourseError(f"metric_for_best={self.config.metric_for_best!r} is not among the "
                              f"evaluation metrics {sorted(record)}")
        value = record[key]
        lower_is_better = self.config.metric_for_best == "loss"
        best = self.history.best_metric
        improved = best is None or (value < best if lower_is_better else value > best)
        if improved:
            self.history.best_metric, self.history.best_step = value, self.global_step
            self._bad_evals = 0
            self._best_state = {k: v.detach().to("cpu", copy=True)
                                for k, v in self.unwrapped_model.state_dict().items()}
            if self.config.output_dir and self.accelerator.is_main_process:
                self.save_model(Path(self.config.output_dir) / "best", metrics=record)
        else:
            self._bad_evals = getattr(self, "_bad_evals", 0) + 1
            patience = self.config.early_stopping_patience
            if patience is not None and self._bad_evals >= patience:
                self.stop_training = True
                self.history.stopped_early = True
        if self.config.verbose and self.accelerator.is_main_process:
            shown = "  ".join(f"{k} {v:.4f}" for k, v in record.items()
                              if k.startswith(("train_loss", "eval_")) and isinstance(v, float))
            note = "  (stopping early)" if self.stop_training else ""
            print(f"epoch {record['epoch']:.2f}  step {self.global_step}  {shown}{note}")
        for callback in self.callbacks:
            callback.on_evaluate(self, record)
        return record

    def evaluate(self, dataset=None) -> dict:
        """Loss plus ``compute_metrics`` on ``dataset`` (default: the eval dataset)."""
        dataset = dataset if dataset is not None else self.eval_dataset
        if dataset is None:
            raise CourseError("no eval_dataset to evaluate on")
        preds = self.predict(dataset)
        metrics = {"loss": preds.loss} if preds.loss is not None else {}
        if self.compute_metrics is not None:
            metrics.update(self.compute_metrics(preds))
        return metrics

    @torch.inference_mode()
    def predict(self, dataset, batch_size: int | None = None) -> Predictions:
        """Model outputs for every example, in the dataset's order.

        Batches are sorted by length (little padding) and collated once per dataset;
        outputs of different lengths (QA logits) are padded with -1e4.
        """
        model = self.model if self.model is not None else self._model.to(self.device)
        was_training = model.training
        model.eval()
        examples = self._examples(dataset)
        key = (id(dataset), batch_size)
        if key not in self._eval_batch_cache:
            plan = self._plan(examples, batch_size or self.config.eval_batch_size, shuffle=False)
            self._eval_batch_cache[key] = [(idx, self.collate([examples[i] for i in idx]))
                                           for idx in plan.batches(0)]
        label_keys = self.label_keys or tuple(
            k for k in examples[0] if k not in MODEL_INPUTS_NOT_COLLECTED)
        index_parts, output_parts, label_parts = [], {}, {}
        loss_sum, loss_count = 0.0, 0
        for idx, cpu_batch in self._eval_batch_cache[key]:
            batch = self._to_device(cpu_batch)
            with self.accelerator.autocast() if self.model is not None else nullcontext():
                outputs = model(**batch)
            loss = outputs.get("loss") if isinstance(outputs, dict) else getattr(outputs, "loss",
                                                                                   None)
            if loss is not None:
                loss_sum += float(loss) * len(idx)
                loss_count += len(idx)
            index_parts.append(np.asarray(idx))
            items = outputs.items() if isinstance(outputs, dict) else vars(outputs).items()
            for name, value in items:
                if name in OUTPUTS_NOT_COLLECTED or not isinstance(value, torch.Tensor):
                    continue
                if value.dim() == 0 or value.shape[0] != len(idx):
                    continue
                output_parts.setdefault(name, []).append(value.float().cpu().numpy())
            for name in label_keys:
                if name in cpu_batch:
                    label_parts.setdefault(name, []).append(cpu_batch[name].numpy())
        if was_training:
            model.train()
        gathered = self._gather((index_parts, output_parts, label_parts, loss_sum, loss_count))
        index_parts, output_parts, label_parts, loss_sum, loss_count = gathered
        order = np.argsort(np.concatenate(index_parts), kind="stable")
        outputs = {k: _concat_padded(v)[order] for k, v in output_parts.items()}
        labels = {k: _concat_padded(v, fill=-100)[order] for k, v in label_parts.items()}
        return Predictions(outputs, labels, loss_sum / loss_count if loss_count else None)

    def _gather(self, parts):
        """Collect every process's share (a no-op on one process)."""
        if self.accelerator.num_processes == 1:
            return parts
        from accelerate.utils import gather_object

        everyone = gather_object([parts])
        index_parts, output_parts, label_parts = [], {}, {}
        loss_sum = loss_count = 0
        for idx, outs, labs, ls, lc in everyone:
            index_parts += idx
            for k, v in outs.items():
                output_parts.setdefault(k, []).extend(v)
            for k, v in labs.items():
                label_parts.setdefault(k, []).extend(v)
            loss_sum += ls
            loss_count += lc
        return index_parts, output_parts, label_parts, loss_sum, loss_count

    # ------------------------------------------------------------ save/load
    def save_model(self, directory: str | os.PathLike, metrics: dict | None = None) -> Path:
        """Save the model (and tokenizer) so ``from_pretrained``/``pipeline`` load it.

        Written to a temporary folder first and then swapped in, so an interruption
        never leaves half a model where a good one was.
        """
        directory = Path(directory)
        model = self.unwrapped_model
        return save_atomically(directory, lambda tmp: _save_model_files(
            model, self.tokenizer, tmp, metrics))

    def _rng_state(self) -> dict:
        state = {"python": random.getstate(), "numpy": np.random.get_state(),
                 "torch": torch.get_rng_state()}
        if torch.cuda.is_available():
            state["cuda"] = torch.cuda.get_rng_state_all()
        return state

    def save_checkpoint(self) -> Path:
        """A resume point at the last optimizer step (weights, optimizer, schedule, RNG)."""
        epoch, next_batch, rng = self._boundary
        root = Path(self.config.output_dir) / "checkpoints"
        path = root / f"step-{self.global_step:07d}"
        if self.accelerator.is_main_process:
            state = {"global_step": self.global_step, "epoch": epoch, "next_batch": next_batch,
                     "history": asdict(self.history), "bad_evals": getattr(self, "_bad_evals", 0),
                     "python_rng": _jsonable(rng["python"]),
                     "numpy_rng": _jsonable(rng["numpy"]), "config": asdict(self.config)}

            def write(tmp: Path) -> None:
                from safetensors.torch import save_file, save_model

                save_model(self.unwrapped_model, str(tmp / "model.safetensors"))
                torch.save({"optimizer": self.optimizer.state_dict(),
                            "scheduler": self.scheduler.state_dict()}, tmp / "optimizer.pt")
                tensors = {"torch": rng["torch"]}
                for i, s in enumerate(rng.get("cuda", [])):
                    tensors[f"cuda{i}"] = s
                save_file(tensors, str(tmp / "rng.safetensors"))
                if self._best_state is not None:
                    save_file({k: v.contiguous() for k, v in _unshared(self._best_state).items()},
                              str(tmp / "best_state.safetensors"))
                (tmp / "state.json").write_text(json.dumps(state))

            save_atomically(path, write)
            for old in sorted(root.glob("step-*")):
                if old != path and not old.name.endswith(".tmp"):
                    shutil.rmtree(old, ignore_errors=True)
        self.accelerator.wait_for_everyone()
        return path

    def _find_checkpoint(self, resume_from: str) -> Path | None:
        if resume_from != "latest":
            path = Path(resume_from)
            if not (path / "state.json").is_file():
                raise CourseError(f"{path} is not a checkpoint folder (no state.json)")
            return path
        if not self.config.output_dir:
            raise CourseError("resume_from='latest' needs TrainingConfig.output_dir")
        found = sorted(p for p in (Path(self.config.output_dir) / "checkpoints").glob("step-*")
                       if (p / "state.json").is_file() and not p.name.endswith(".tmp"))
        return found[-1] if found else None

    def _load_checkpoint(self, path: Path) -> tuple[int, int]:
        from safetensors.torch import load_file, load_model

        state = json.loads((path / "state.json").read_text())
        load_model(self.unwrapped_model, str(path / "model.safetensors"), device=str(self.device))
        opt = torch.load(path / "optimizer.pt", weights_only=True, map_location=self.device)
        self.optimizer.load_state_dict(opt["optimizer"])
        self.scheduler.load_state_dict(opt["scheduler"])
        rng = load_file(str(path / "rng.safetensors"))
        torch.set_rng_state(rng["torch"])
        if torch.cuda.is_available() and "cuda0" in rng:
            torch.cuda.set_rng_state_all([rng[f"cuda{i}"] for i in range(
                torch.cuda.device_count()) if f"cuda{i}" in rng])
        random.setstate(_from_json_python_rng(state["python_rng"]))
        np.random.set_state(_from_json_numpy_rng(state["numpy_rng"]))
        if (path / "best_state.safetensors").is_file():
            self._best_state = load_file(str(path / "best_state.safetensors"))
        self.global_step = state["global_step"]
        self._bad_evals = state["bad_evals"]
        self.history = History(**state["history"])
        return state["epoch"], state["next_batch"]


# ---------------------------------------------------------------- helpers
def save_atomically(directory: Path, write: Callable[[Path], None]) -> Path:
    """Write a folder via ``directory.tmp`` and a rename: readers see the old or the new one."""
    directory = Path(directory)
    tmp = directory.with_name(directory.name + ".tmp")
    old = directory.with_name(directory.name + ".old")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    write(tmp)
    if directory.exists():
        shutil.rmtree(old, ignore_errors=True)
        directory.rename(old)
    tmp.rename(directory)
    shutil.rmtree(old, ignore_errors=True)
    return directory


def _save_model_files(model, tokenizer, directory: Path, metrics: dict | None) -> None:
    if hasattr(model, "save_pretrained"):
        model.save_pretrained(directory)
    else:
        from safetensors.torch import save_model

        save_model(model, str(directory / "model.safetensors"))
    if tokenizer is not None:
        tokenizer.save_pretrained(directory)
    if metrics:
        clean = {k: v for k, v in metrics.items() if isinstance(v, (int, float, str))}
        (directory / "metrics.json").write_text(json.dumps(clean, indent=2))


def _unshared(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """safetensors refuses tensors that share memory: clone the second and later ones."""
    seen, out = set(), {}
    for key, value in state.items():
        ptr = value.data_ptr()
        out[key] = value.clone() if ptr in seen else value
        seen.add(ptr)
    return out


def _jsonable(value):
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, (tuple, list)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


def _from_json_python_rng(value):
    version, internal, gauss = value
    return version, tuple(internal), gauss


def _from_json_numpy_rng(value):
    name, keys, pos, has_gauss, cached = value
    return name, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached


def _concat_padded(parts: list[np.ndarray], fill: float = -1e4) -> np.ndarray:
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


def train(model, train_dataset, eval_dataset=None, *, tokenizer=None, compute_metrics=None,
          **config) -> tuple[Trainer, History]:
    """One call for the common case: ``trainer, history = train(model, train, val, lr...)``."""
    trainer = Trainer(model, TrainingConfig(**config), train_dataset=train_dataset,
                      eval_dataset=eval_dataset, tokenizer=tokenizer,
                      compute_metrics=compute_metrics)
    return trainer, trainer.train()
