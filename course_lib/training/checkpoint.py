"""Resume checkpoints: everything needed to continue a run as if it had never stopped.

A checkpoint is taken at an optimizer-step boundary and holds the weights, the optimizer,
the schedule and the loss scaler, every process's random-number generators *as they
were at that boundary*, the position in the epoch, the history, the best weights so far,
the callbacks' state (how many layers gradual unfreezing has thawed) and the config.
A resumed run refuses a checkpoint written with other hyperparameters, because it
would silently continue a different recipe.

Folders are written with :func:`course_lib.artifacts.save_atomically` (``state.json``
last), so a checkpoint folder is complete or absent. Every run has an id; rotation
deletes only the older ``step-*`` folders of this run, never another run's.
"""

from __future__ import annotations

import json
import random
import shutil
import uuid
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from ..artifacts import save_atomically
from ..settings import CourseError
from .config import History

if TYPE_CHECKING:
    from .loop import Trainer

FORMAT = 2  # 2: per-process generators, callback state, run id


def new_run_id() -> str:
    return uuid.uuid4().hex


def rng_state() -> dict:
    """This process's generators (Python, NumPy, torch CPU and CUDA)."""
    state = {"python": random.getstate(), "numpy": np.random.get_state(),
             "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def save_checkpoint(trainer: Trainer) -> Path:
    """Write ``output_dir/checkpoints/step-NNNNNNN`` for the last optimizer step."""
    epoch, next_batch, rng = trainer.boundary
    accelerator = trainer.accelerator
    rngs = [rng]
    if accelerator.num_processes > 1:  # each process draws its own dropout masks
        from accelerate.utils import gather_object

        rngs = gather_object([rng])
    root = Path(trainer.config.output_dir) / "checkpoints"
    path = root / f"step-{trainer.global_step:07d}"
    if accelerator.is_main_process:
        state = {"format": FORMAT, "global_step": trainer.global_step, "epoch": epoch, "next_batch": next_batch,
                 "run_id": trainer.run_id, "history": asdict(trainer.history),
                 "bad_evals": trainer.bad_evals, "config": asdict(trainer.config),
                 "callbacks": [{"class": type(c).__name__, "state": c.state_dict()}
                               for c in _stateful(trainer.callbacks)],
                 "python_rng": [_jsonable(r["python"]) for r in rngs],
                 "numpy_rng": [_jsonable(r["numpy"]) for r in rngs]}
        model = trainer.unwrapped_model
        scaler = accelerator.scaler

        def write(tmp: Path) -> None:
            from safetensors.torch import save_file, save_model

            save_model(model, str(tmp / "model.safetensors"))
            torch.save({"optimizer": trainer.optimizer.state_dict(),
                        "scheduler": trainer.scheduler.state_dict(),
                        "scaler": scaler.state_dict() if scaler is not None else None},
                       tmp / "optimizer.pt")
            tensors = {}
            for rank, r in enumerate(rngs):
                tensors[f"torch{rank}"] = r["torch"]
                for device, s in enumerate(r.get("cuda", [])):
                    tensors[f"cuda{rank}_{device}"] = s
            save_file(tensors, str(tmp / "rng.safetensors"))
            if trainer.best_state is not None:
                save_file({k: v.contiguous() for k, v in _unshared(trainer.best_state).items()},
                          str(tmp / "best_state.safetensors"))
            (tmp / "state.json").write_text(json.dumps(state))

        save_atomically(path, write)
        _remove_older(root, keep=path, run_id=trainer.run_id)
    accelerator.wait_for_everyone()
    return path


def _stateful(callbacks) -> list:
    """The callbacks that keep state (they override ``state_dict``); others need none."""
    from .callbacks import Callback

    return [c for c in callbacks if type(c).state_dict is not Callback.state_dict]


def _remove_older(root: Path, keep: Path, run_id: str) -> None:
    """Delete this run's earlier checkpoints; other runs' folders are not ours to delete."""
    for folder in root.glob("step-*"):
        if folder == keep:
            continue
        try:
            owner = json.loads((folder / "state.json").read_text()).get("run_id")
        except (OSError, ValueError):
            continue
        if owner == run_id:
            shutil.rmtree(folder, ignore_errors=True)


def find_checkpoint(resume_from: str, output_dir: str | None) -> Path | None:
    """``"latest"``: the newest complete checkpoint in ``output_dir`` (None if none yet)."""
    if resume_from != "latest":
        path = Path(resume_from)
        if not (path / "state.json").is_file():
            raise CourseError(f"{path} is not a checkpoint folder (no state.json)")
        return path
    if not output_dir:
        raise CourseError("resume_from='latest' needs TrainingConfig.output_dir")
    found = sorted(p for p in (Path(output_dir) / "checkpoints").glob("step-*")
                   if (p / "state.json").is_file())
    return found[-1] if found else None


def load_checkpoint(trainer: Trainer, path: Path) -> tuple[int, int]:
    """Restore ``trainer`` from ``path``; returns ``(epoch, next batch)`` to continue at."""
    from safetensors.torch import load_file, load_model

    state = json.loads((path / "state.json").read_text())
    if state.get("format") != FORMAT:
        raise CourseError(f"cannot resume from {path}: it was written by an older version of "
                          "course_lib; start the run again in a new output folder")
    trainer.config.check_same_recipe(state.get("config", {}))
    saved_callbacks = state.get("callbacks", [])
    callbacks = _stateful(trainer.callbacks)
    names = [type(c).__name__ for c in callbacks]
    if [c["class"] for c in saved_callbacks] != names:
        raise CourseError(f"cannot resume: the checkpoint holds the state of the callbacks "
                          f"{[c['class'] for c in saved_callbacks]}, this run has {names}")
    device = trainer.accelerator.device
    load_model(trainer.unwrapped_model, str(path / "model.safetensors"), device=str(device))
    opt = torch.load(path / "optimizer.pt", weights_only=True, map_location=device)
    trainer.optimizer.load_state_dict(opt["optimizer"])
    trainer.scheduler.load_state_dict(opt["scheduler"])
    if opt.get("scaler") is not None and trainer.accelerator.scaler is not None:
        trainer.accelerator.scaler.load_state_dict(opt["scaler"])
    rank = trainer.accelerator.process_index
    rng = load_file(str(path / "rng.safetensors"))
    mine = rank if f"torch{rank}" in rng else 0
    torch.set_rng_state(rng[f"torch{mine}"])
    cuda = [rng[k] for k in sorted(rng) if k.startswith(f"cuda{mine}_")]
    if cuda and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(cuda[:torch.cuda.device_count()])
    python_rng, numpy_rng = state["python_rng"], state["numpy_rng"]
    random.setstate(_python_rng(python_rng[min(mine, len(python_rng) - 1)]))
    np.random.set_state(_numpy_rng(numpy_rng[min(mine, len(numpy_rng) - 1)]))
    if (path / "best_state.safetensors").is_file():
        trainer.best_state = load_file(str(path / "best_state.safetensors"))
    for callback, saved in zip(callbacks, saved_callbacks, strict=True):
        callback.load_state_dict(saved["state"])
    trainer.global_step = state["global_step"]
    trainer.bad_evals = state["bad_evals"]
    trainer.history = History(**state["history"])
    trainer.run_id = state.get("run_id", trainer.run_id)
    return state["epoch"], state["next_batch"]


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


def _python_rng(value):
    version, internal, gauss = value
    return version, tuple(internal), gauss


def _numpy_rng(value):
    name, keys, pos, has_gauss, cached = value
    return name, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached
