"""The Trainer: the hand-written loop of notebook 03, plus what a real run needs.

It trains any ``nn.Module`` whose forward returns a loss (a Hugging Face model, a custom
head, a multi-task model) on CPU, one GPU, or several processes under
``accelerate launch`` / ``torchrun``, with the same code. :meth:`Trainer.train` reads
like the notebook's loop: for each batch, a forward and backward pass; at the end of an
accumulation window, an optimizer step; then maybe an evaluation, maybe a checkpoint.

- batches come from :class:`~course_lib.training.batching.BatchPlan` (shuffled per
  epoch from the seed, length-grouped, dynamically padded; tensors built once);
- forward under autocast (bf16, or fp16 with loss scaling, on a GPU; fp32 on CPU);
- a non-finite loss stops the run *before* the weights are touched (checked once per
  optimizer step, so the GPU is not waited for at every micro-batch);
- evaluation every epoch or every N steps when there is an evaluation set; the best
  weights (by the loss that is trained, or ``metric_for_best``) are kept, in memory and,
  with ``output_dir``, as a ``save_pretrained`` folder written atomically; early stopping;
- resume checkpoints (:mod:`.checkpoint`); Ctrl-C finishes the optimizer step under way
  (a second Ctrl-C stops at once), saves a checkpoint and says how to resume;
- ``COURSE_MAX_STEPS`` caps the run's steps; the schedule is laid over the capped run.

Under a launcher, end the script with ``trainer.accelerator.end_training()`` (accelerate's
convention): it leaves the process group before Python shuts down, which gloo needs.
"""

from __future__ import annotations

import math
import os
import signal
import threading
import time
from collections.abc import Callable, Sequence
from contextlib import contextmanager, nullcontext
from pathlib import Path

import torch

from .. import settings
from ..artifacts import save_model_folder
from ..settings import CourseError
from . import checkpoint
from .batching import (
    BatchPlan,
    DatasetCache,
    PadCollator,
    model_inputs,
    sequence_lengths,
    to_tensors,
)
from .callbacks import Callback
from .config import History, Predictions, TrainingConfig
from .evaluation import predict_examples
from .optim import default_param_groups, make_optimizer, make_scheduler
from .precision import tf32_matmuls
from .selection import keep_best

# Columns that are model inputs, never labels to collect (cached frozen-layer outputs too).
MODEL_INPUTS = {"input_ids", "attention_mask", "token_type_ids", "position_ids",
                "inputs_embeds", "special_tokens_mask", "hidden_states", "offset_mapping"}


def loss_of(outputs) -> torch.Tensor | None:
    """The ``loss`` field of a forward's result (None when there is none)."""
    loss = outputs.get("loss") if isinstance(outputs, dict) else getattr(outputs, "loss", None)
    if loss is None and isinstance(outputs, (tuple, list)):
        loss = outputs[0]
    return loss


class Trainer:
    """Train and evaluate ``model`` on tokenised datasets.

    ``train_dataset`` / ``eval_dataset``: a ``datasets.Dataset`` (or a list of dicts) with
    ``input_ids`` etc. and the label column(s); only the model's inputs and the labels go
    to the model (:func:`~course_lib.training.batching.model_inputs`).
    ``compute_metrics(Predictions) -> dict`` adds metrics to the evaluation.
    ``compute_loss(model, batch) -> (loss, outputs)`` replaces ``outputs.loss`` (for
    example, a class-weighted loss); evaluation reports that loss too, so model selection
    follows the number that is trained. ``param_groups`` replaces the default AdamW groups
    (layer-wise rates): a group's ``lr_scale`` multiplies ``TrainingConfig.learning_rate``
    (or it sets its own ``lr``); the schedule then multiplies every group's rate alike.
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
        self.train_dataset = train_dataset
        self.eval_dataset = eval_dataset
        self.label_keys = tuple(label_keys) if label_keys else None
        # Only then: the search for unused weights costs time at every step.
        unfreezes = any(c.changes_trainable_parameters for c in self.callbacks)
        self.accelerator = Accelerator(
            mixed_precision=self.config.resolved_mixed_precision(),
            cpu=not torch.cuda.is_available() and not torch.backends.mps.is_available(),
            kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=True)]
            if unfreezes else None)
        self.device = self.accelerator.device
        self.collate = PadCollator(getattr(tokenizer, "pad_token_id", None) or 0)
        self._model = model
        self._keep = model_inputs(model, self.label_keys or ("labels",))
        self._tensors = DatasetCache()
        self._param_groups = param_groups
        # prepared by train(): the wrapped model, optimizer and schedule
        self.model: torch.nn.Module | None = None
        self.optimizer = None
        self.scheduler = None
        self.total_steps = 0
        self.configured_steps = 0  # before COURSE_MAX_STEPS
        # the run's state, saved in checkpoints
        self.run_id = checkpoint.new_run_id()
        self.history = History()
        self.global_step = 0
        self.epoch = 0
        self.bad_evals = 0
        self.best_state: dict[str, torch.Tensor] | None = None
        self.stop_training = False
        self.boundary: tuple[int, int, dict] = (0, 0, {})  # (epoch, next batch, RNG) at the last step
        self._boundary_step = 0  # the global_step ``boundary`` describes; -1 while stepping
        self._ctrl_c = False  # Ctrl-C was pressed: stop at the end of this optimizer step
        self._stop_agreed = False  # every process stops at this step (after a Ctrl-C)
        self._last_checkpoint: tuple[int, Path | None] = (-1, None)  # (step, folder)
        self._window_loss = torch.zeros((), device=self.device)  # summed on device, read rarely
        self._logged_loss = torch.zeros((), device=self.device)
        self._logged_batches = 0
        self._positions = 0  # padded positions the trained batches held (what costs compute)
        self._tokens = torch.zeros((), device=self.device)  # real tokens, summed on device
        self._counting = False  # count positions and tokens (only when COURSE_COSTS is set)
        self._bar = None  # the progress bar and (start time, seconds before) of train()
        self._clock = (0.0, 0.0)

    @property
    def unwrapped_model(self) -> torch.nn.Module:
        return self.accelerator.unwrap_model(self.model) if self.model is not None else self._model

    # ----------------------------------------------------------------- train
    def train(self, resume_from: str | None = None) -> History:
        """Run the schedule; ``resume_from="latest"`` (or a checkpoint folder) resumes."""
        examples, plan, epochs = self._start(resume_from)
        start_epoch, start_batch = self.boundary[:2]
        first_step, self._positions = self.global_step, 0
        self._tokens.zero_()
        self._counting = bool(os.environ.get("COURSE_COSTS"))  # a smoke run's cost table only
        self.model.train()
        with self._session():
            for epoch in range(start_epoch, epochs):
                if self.stop_training or self.global_step >= self.total_steps:
                    break
                self.epoch = epoch
                for callback in self.callbacks:
                    callback.on_epoch_begin(self, epoch)
                batches = plan.batches(epoch)
                for b in range(start_batch if epoch == start_epoch else 0, len(batches)):
                    first, end = self._window(b, len(batches))
                    self._forward_backward(self._batch(examples, batches[b]), end - first,
                                           sync=b == end - 1)
                    if b < end - 1:
                        continue  # gradients accumulate until the window's last batch
                    self._optimizer_step()
                    self._mark_boundary(epoch, b + 1)
                    end_of_epoch = b == len(batches) - 1
                    last_step = self.global_step >= self.total_steps
                    self._log(epoch + (b + 1) / len(batches), end_of_epoch or last_step)
                    for callback in self.callbacks:
                        callback.on_step_end(self, self.global_step)
                    if self._evaluation_due(end_of_epoch, last_step):
                        self._evaluate_and_keep_best(epoch + (b + 1) / len(batches))
                    if self._checkpoint_due(end_of_epoch, last_step):
                        self.save_checkpoint()
                    if self.stop_training or last_step:
                        break  # a run that has finished is not interrupted
                    if self._ctrl_c_agreed():
                        self._stop_agreed = True
                        raise KeyboardInterrupt  # at a step boundary: the checkpoint is exact
        if self.config.load_best_at_end and self.best_state is not None:
            self.unwrapped_model.load_state_dict(self.best_state)
        self.model.eval()
        self._record_cost(self.global_step - first_step)
        return self.history

    def _record_cost(self, steps: int) -> None:
        """What this run cost, for a smoke run's table (``settings.record_cost``)."""
        if not self._counting or not self.accelerator.is_main_process:
            return
        import resource

        params = list(self.unwrapped_model.parameters())
        total = sum(p.numel() for p in params)
        trainable = sum(p.numel() for p in params if p.requires_grad)
        settings.record_cost(
            "training", steps=steps, configured_steps=self.configured_steps,
            train_examples=len(self.train_dataset), train_seconds=self.history.train_seconds,
            positions=self._positions * self.accelerator.num_processes,
            tokens=int(self._tokens) * self.accelerator.num_processes,
            parameters=total, trainable=trainable, device=str(self.device),
            peak_rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)

    @contextmanager
    def _session(self):
        """Around the loop: TF32 on a GPU, the progress bar and clock, and Ctrl-C.

        A KeyboardInterrupt can land between any two bytecodes: half-way through an
        optimizer step (weights updated, step counter not), or inside a finaliser that
        swallows it. A checkpoint taken there resumes to different weights. So the first
        Ctrl-C only asks the loop to stop at the end of the step under way; the loop then
        raises at a step boundary and the checkpoint (with ``output_dir``) is exact. A
        second Ctrl-C stops at once; the newest periodic checkpoint is then kept."""
        self._bar = self._progress_bar()
        self._clock = (time.perf_counter(), self.history.train_seconds)
        self._ctrl_c = self._stop_agreed = False
        try:
            with tf32_matmuls(self.device), self._deferred_ctrl_c():
                yield
        except KeyboardInterrupt:
            self.history.train_seconds = self._elapsed()
            exact = self._boundary_step == self.global_step and (
                self._stop_agreed or self.accelerator.num_processes == 1)  # all processes here
            if self.config.output_dir and exact:
                step, path = self._last_checkpoint
                if step != self.global_step:  # not already written at this step
                    path = self.save_checkpoint()
                print(f"interrupted at step {self.global_step}; checkpoint saved to {path}; "
                      "run train(resume_from='latest') to continue")
            elif self.config.output_dir:
                print(f"interrupted during step {self.global_step + 1}; the newest checkpoint "
                      f"in {Path(self.config.output_dir) / 'checkpoints'} is kept; run "
                      "train(resume_from='latest') to continue from it")
            raise
        finally:
            self._bar.close()
            self.history.train_seconds = self._elapsed()

    @contextmanager
    def _deferred_ctrl_c(self):
        """While training, the first SIGINT sets a flag; the handler before is restored."""
        if threading.current_thread() is not threading.main_thread():
            yield  # signal handlers can only be set in the main thread
            return

        def on_sigint(signum, frame):
            if self._ctrl_c:
                raise KeyboardInterrupt
            self._ctrl_c = True
            print("\nCtrl-C: stopping after the current optimizer step (press again to stop "
                  "at once)", flush=True)

        previous = signal.signal(signal.SIGINT, on_sigint)
        try:
            yield
        finally:
            signal.signal(signal.SIGINT, previous)

    def _ctrl_c_agreed(self) -> bool:
        """Whether to stop here: this process's Ctrl-C, or any process's when several
        train together (they must all stop at the same step to write one checkpoint)."""
        if self.accelerator.num_processes == 1:
            return self._ctrl_c
        pressed = torch.tensor([float(self._ctrl_c)], device=self.device)
        self._ctrl_c = bool(self.accelerator.reduce(pressed, reduction="sum").item() > 0)
        return self._ctrl_c

    def _mark_boundary(self, epoch: int, next_batch: int) -> None:
        """Where a resume would continue, and the generators there (only with an
        ``output_dir``: without one no checkpoint is ever written)."""
        rng = checkpoint.rng_state() if self.config.output_dir else {}
        self.boundary = (epoch, next_batch, rng)
        self._boundary_step = self.global_step

    def _elapsed(self) -> float:
        started, before = self._clock
        return before + time.perf_counter() - started

    def _start(self, resume_from: str | None):
        """Seed, build tensors and the batch plan, prepare the model and optimizer, resume."""
        from accelerate.utils import set_seed

        cfg = self.config
        if self.train_dataset is None:
            raise CourseError("no train_dataset was given to the Trainer")
        # Dropout draws from the global generators: seed them here, differently on each
        # process (each must draw its own masks); the data order comes from cfg.seed alone.
        set_seed(cfg.seed, device_specific=True)
        examples = self._examples(self.train_dataset)
        plan = BatchPlan(sequence_lengths(examples), cfg.batch_size, shuffle=True,
                         group_by_length=cfg.group_by_length, seed=cfg.seed,
                         num_processes=self.accelerator.num_processes,
                         process_index=self.accelerator.process_index)
        steps_per_epoch = math.ceil(len(plan) / max(1, cfg.gradient_accumulation_steps))
        configured = cfg.max_steps or math.ceil(steps_per_epoch * cfg.epochs)
        self.configured_steps = configured
        self.total_steps = settings.capped_steps(configured)  # COURSE_MAX_STEPS (smoke runs)
        if self.total_steps < configured and self.accelerator.is_main_process and cfg.verbose:
            print(f"COURSE_MAX_STEPS={self.total_steps}: stopping after {self.total_steps} "
                  f"of {configured} steps")
        self._model.to(self.device)
        groups = self._param_groups or default_param_groups(self._model, cfg.weight_decay)
        # a group's lr_scale (layer-wise rates) is relative to the configured rate
        groups = [{**g, "lr": cfg.learning_rate * g["lr_scale"]} if "lr_scale" in g else g
                  for g in groups]
        optimizer = make_optimizer(groups, cfg.learning_rate, self.device)
        self.model, self.optimizer = self.accelerator.prepare(self._model, optimizer)
        self.scheduler = make_scheduler(
            getattr(self.optimizer, "optimizer", self.optimizer), cfg.schedule,
            int(round(cfg.warmup_ratio * self.total_steps)), self.total_steps)
        self.boundary = (0, 0, checkpoint.rng_state())
        self._window_loss.zero_()
        self._logged_loss.zero_()
        self._logged_batches = 0
        found = checkpoint.find_checkpoint(resume_from, cfg.output_dir) if resume_from else None
        if found is not None:
            start = checkpoint.load_checkpoint(self, found)
            self.boundary = (*start, checkpoint.rng_state())
            if self.accelerator.is_main_process and cfg.verbose:
                print(f"resumed from {found} (step {self.global_step}, epoch "
                      f"{start[0] + 1}, batch {start[1]})")
        self._boundary_step = self.global_step
        for callback in self.callbacks:
            callback.on_train_begin(self)
        epochs = math.ceil(self.total_steps / steps_per_epoch)
        return examples, plan, epochs

    def _window(self, b: int, n_batches: int) -> tuple[int, int]:
        """The accumulation window batch ``b`` belongs to: (first, end) batch indices."""
        accum = max(1, self.config.gradient_accumulation_steps)
        start = (b // accum) * accum
        return start, min(start + accum, n_batches)

    def _batch(self, examples, indices) -> dict[str, torch.Tensor]:
        batch = self.collate([examples[i] for i in indices])
        if self.device.type != "cuda":
            return {k: v.to(self.device) for k, v in batch.items()}
        return {k: v.pin_memory().to(self.device, non_blocking=True) for k, v in batch.items()}

    def _forward_backward(self, batch, window_size: int, sync: bool) -> None:
        """One micro-batch; gradients are synchronised between processes only at the
        window's last (``sync``), and each counts ``1 / window_size`` of the step."""
        mask = batch.get("attention_mask") if self._counting else None
        if mask is not None:
            self._positions += mask.numel()
            self._tokens += mask.sum()
        with nullcontext() if sync else self.accelerator.no_sync(self.model):
            loss, _ = self._loss(self.model, batch)
            self.accelerator.backward(loss / window_size)
        self._window_loss += loss.detach().float()
        self._logged_batches += 1

    def _optimizer_step(self) -> None:
        """Check the loss, clip, step, schedule. One host sync per optimizer step."""
        loss_sum = float(self._window_loss)
        if not math.isfinite(loss_sum):
            raise CourseError(
                f"the loss became {loss_sum} at step {self.global_step + 1} (epoch "
                f"{self.epoch + 1}); the weights were not updated. Lower the learning rate "
                f"(now {self.scheduler.get_last_lr()[0]:.2e}), check the labels and inputs, "
                "or use bf16 instead of fp16")
        self._logged_loss += self._window_loss
        self._window_loss.zero_()
        if self.config.max_grad_norm:
            self.accelerator.clip_grad_norm_(self.model.parameters(), self.config.max_grad_norm)
        self._boundary_step = -1  # from here until _mark_boundary a checkpoint is not exact
        self.optimizer.step()
        if not self.accelerator.optimizer_step_was_skipped:  # fp16: the scaler skipped it
            self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.global_step += 1
        self._bar.update(1)

    def _log(self, epoch: float, always: bool) -> None:
        """Every ``log_every`` steps, and always at an epoch's end and at the run's last step
        (a run capped or given ``max_steps`` mid-epoch still logs where it stopped)."""
        if self.global_step % self.config.log_every and not always:
            return
        mean = float(self._logged_loss) / max(1, self._logged_batches)
        self.history.steps.append({"step": self.global_step, "epoch": epoch,
                                   "train_loss": mean, "lr": self.scheduler.get_last_lr()[0]})
        self._bar.set_postfix(loss=f"{mean:.4f}")
        self._logged_loss.zero_()
        self._logged_batches = 0

    def _evaluation_due(self, end_of_epoch: bool, last_step: bool) -> bool:
        every = self.config.eval_every
        if self.eval_dataset is None or every is None:
            return False
        return last_step or self._due(every, end_of_epoch)

    def _checkpoint_due(self, end_of_epoch: bool, last_step: bool) -> bool:
        every = self.config.save_every
        if not self.config.output_dir or every is None:
            return False
        if every == "eval":
            return self._evaluation_due(end_of_epoch, last_step) or last_step
        return last_step or self._due(every, end_of_epoch)

    def _due(self, every, end_of_epoch: bool) -> bool:
        if every == "epoch":
            return end_of_epoch
        return self.global_step % int(every) == 0

    def _loss(self, model, batch, required: bool = True):
        """``(loss, outputs)``: ``compute_loss`` when given, else the model's own loss."""
        if self.compute_loss is not None:
            return self.compute_loss(model, batch)
        outputs = model(**batch)
        loss = loss_of(outputs)
        if loss is None and required:
            raise CourseError("the model's forward returned no loss: pass labels, or give the "
                              "Trainer a compute_loss function")
        return loss, outputs

    def _progress_bar(self):
        from tqdm.auto import tqdm

        show = self.config.progress
        show = settings.show_progress() if show is None else show
        return tqdm(total=self.total_steps, initial=self.global_step, desc="training",
                    disable=not show or not self.accelerator.is_main_process, leave=False)

    # ------------------------------------------------------------------ data
    def _examples(self, dataset) -> list[dict[str, torch.Tensor]]:
        """Tensors for a dataset, built once and kept while the dataset lives."""
        def build():
            examples = to_tensors(dataset, keep=self._keep)
            if not examples:
                raise CourseError("the dataset is empty")
            return examples

        return self._tensors.get(dataset, build)

    # -------------------------------------------------------------- evaluate
    def _evaluate_and_keep_best(self, epoch: float) -> dict:
        self.history.train_seconds = self._elapsed()
        return keep_best(self, self.evaluate(), epoch)

    def evaluate(self, dataset=None) -> dict:
        """The trained loss plus ``compute_metrics`` on ``dataset`` (default: the eval set)."""
        dataset = dataset if dataset is not None else self.eval_dataset
        if dataset is None:
            raise CourseError("no eval_dataset to evaluate on")
        preds = self.predict(dataset)
        metrics = {"loss": preds.loss} if preds.loss is not None else {}
        if self.compute_metrics is not None:
            metrics.update(self.compute_metrics(preds))
        return metrics

    def predict(self, dataset, batch_size: int | None = None) -> Predictions:
        """Model outputs for every example, in the dataset's order, on every process.

        Batches are sorted by length (little padding); outputs of different lengths (QA
        logits) are padded with -1e4. ``loss`` is the loss the run trains on
        (``compute_loss`` when given), averaged over the examples.
        """
        model = self.unwrapped_model.to(self.device)
        examples = self._examples(dataset)
        label_keys = self.label_keys or tuple(k for k in examples[0] if k not in MODEL_INPUTS)
        was_training = model.training
        model.eval()
        try:
            return predict_examples(self.accelerator, model, examples,
                                    batch_size=batch_size or self.config.eval_batch_size,
                                    collate=self.collate, label_keys=label_keys,
                                    loss_fn=lambda m, b: self._loss(m, b, required=False))
        finally:
            model.train(was_training)

    # ------------------------------------------------------------ save/load
    def save_model(self, directory: str | os.PathLike, metrics: dict | None = None) -> Path:
        """Save the model (and tokenizer) so ``from_pretrained``/``pipeline`` load it.

        Written to a temporary folder first and then swapped in, so an interruption
        never leaves half a model where a good one was.
        """
        return save_model_folder(directory, self.unwrapped_model, self.tokenizer, metrics)

    def save_checkpoint(self) -> Path:
        """A resume point at the last optimizer step (see :mod:`.checkpoint`)."""
        path = checkpoint.save_checkpoint(self)
        self._last_checkpoint = (self.global_step, path)
        return path


def train(model, train_dataset, eval_dataset=None, *, tokenizer=None, compute_metrics=None,
          **config) -> tuple[Trainer, History]:
    """One call for the common case: ``trainer, history = train(model, train, val, lr...)``."""
    trainer = Trainer(model, TrainingConfig(**config), train_dataset=train_dataset,
                      eval_dataset=eval_dataset, tokenizer=tokenizer,
                      compute_metrics=compute_metrics)
    return trainer, trainer.train()
