"""Turning tokenised examples into padded batches, with as little padding as possible.

Two ideas keep padding (wasted compute) low:

- *dynamic padding*: pad each batch only to its own longest sequence, not to a
  global ``max_length``;
- *length grouping*: put sequences of similar length in the same batch. We shuffle,
  cut the shuffled list into "mega-batches" of 50 batches, sort each mega-batch by
  length and cut it into batches, then shuffle the batch order. Batches stay
  random from epoch to epoch, but each holds similar lengths.

Examples are converted to tensors once (:func:`to_tensors`) and reused every epoch
(:class:`DatasetCache`); only the columns the model takes go in (:func:`model_inputs`).
"""

from __future__ import annotations

import inspect
import math
import weakref
from collections import OrderedDict
from collections.abc import Callable, Sequence

import torch

INPUT_PAD_VALUES = {"input_ids": None, "attention_mask": 0, "token_type_ids": 0,
                    "special_tokens_mask": 1, "position_ids": 0}
SEQUENCE_LABEL_PAD = -100


def _is_numeric(value) -> bool:
    if isinstance(value, (bool, int, float)):
        return True
    if isinstance(value, torch.Tensor):
        return True
    if isinstance(value, (list, tuple)):
        return len(value) == 0 or _is_numeric(value[0])
    return False


def to_tensors(dataset, keep: Sequence[str] | None = None) -> list[dict[str, torch.Tensor]]:
    """A list of ``{column: tensor}`` dicts, built once from a Dataset or a list of dicts.

    String columns (raw text, ids, offsets kept for post-processing) are dropped;
    ``keep`` restricts the columns further.
    """
    if hasattr(dataset, "column_names"):  # a datasets.Dataset: read whole columns at once
        columns = [c for c in dataset.column_names if keep is None or c in keep]
        if len(dataset) == 0:
            return []
        first = dataset[0]
        columns = [c for c in columns if _is_numeric(first[c]) and first[c] is not None]
        data = {c: dataset[c] for c in columns}
        n = len(dataset)
        return [{c: torch.as_tensor(data[c][i]) for c in columns} for i in range(n)]
    examples = []
    for row in dataset:
        examples.append({k: torch.as_tensor(v) for k, v in row.items()
                         if (keep is None or k in keep) and v is not None and _is_numeric(v)})
    return examples


# Inputs of Hugging Face models that a forward taking ``**kwargs`` may still read.
KNOWN_MODEL_INPUTS = ("input_ids", "attention_mask", "token_type_ids", "position_ids",
                      "labels", "start_positions", "end_positions")


def model_inputs(model: torch.nn.Module, label_keys: Sequence[str] = ()) -> set[str] | None:
    """The dataset columns to give ``model``; None means every numeric column.

    The rule: the named parameters of ``model.forward``, plus ``label_keys``. When the
    forward also takes ``**kwargs`` (every Hugging Face model in transformers 5, peft
    wrappers) the extra keywords are options, not inputs: a Hugging Face or peft model
    then gets its named parameters (and, for peft, the wrapped model's) plus the usual
    input names (:data:`KNOWN_MODEL_INPUTS`), so a bookkeeping column such as a
    ``topic`` or ``doc_id`` never reaches it. Only a plain ``nn.Module`` whose forward
    takes ``**kwargs`` gets every numeric column: it asked for them.
    """
    named, open_ended = _forward_parameters(model)
    keys = named | set(label_keys)
    if not open_ended:
        return keys
    base = model.get_base_model() if hasattr(model, "get_base_model") else None
    if base is not None and base is not model:
        keys |= _forward_parameters(base)[0]
    if base is not None or (hasattr(model, "config") and hasattr(model, "main_input_name")):
        return keys | set(KNOWN_MODEL_INPUTS)
    return None


def _forward_parameters(model: torch.nn.Module) -> tuple[set[str], bool]:
    params = inspect.signature(model.forward).parameters.values()
    named = {p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    return named, any(p.kind is p.VAR_KEYWORD for p in params)


class DatasetCache:
    """Values computed from a dataset (its tensors, its batches), kept while it lives.

    Keyed by the object itself, never by ``id()`` alone: CPython gives a freed object's
    id to the next one, so an id-keyed cache serves a new dataset the old one's tensors,
    and never empties. A dataset that supports weak references (``datasets.Dataset``)
    is held weakly: its entry goes when it is freed. One that does not (a plain
    ``list``) is held strongly, so its id cannot be reused while cached, in a small
    least-recently-used table of ``max_strong`` entries.
    """

    def __init__(self, max_strong: int = 4):
        self.max_strong = max_strong
        self._weak: dict[tuple, tuple[weakref.ref, object]] = {}
        self._strong: OrderedDict[tuple, tuple[object, object]] = OrderedDict()

    def get(self, dataset, build: Callable[[], object], extra=()):
        """The cached value for ``(dataset, *extra)``, built with ``build()`` the first time."""
        key = (id(dataset), *extra)
        held = self._weak.get(key) or self._strong.get(key)
        if held is not None:
            owner = held[0]() if isinstance(held[0], weakref.ref) else held[0]
            if owner is dataset:
                if key in self._strong:
                    self._strong.move_to_end(key)
                return held[1]
        value = build()
        try:
            ref = weakref.ref(dataset, lambda _, key=key, table=self._weak: table.pop(key, None))
        except TypeError:  # lists, dicts: no weak references
            self._strong[key] = (dataset, value)
            while len(self._strong) > self.max_strong:
                self._strong.popitem(last=False)
        else:
            self._weak[key] = (ref, value)
        return value

    def __len__(self) -> int:
        return len(self._weak) + len(self._strong)

    def clear(self) -> None:
        self._weak.clear()
        self._strong.clear()


class PadCollator:
    """Stack examples into a batch, padding each sequence field to the batch's longest.

    ``input_ids`` pad with the tokenizer's pad id, masks with 0, token-level
    labels with -100 (ignored by the loss); scalar fields are stacked.
    """

    def __init__(self, pad_token_id: int = 0, pad_to_multiple_of: int | None = None):
        self.pad_token_id = pad_token_id
        self.pad_to_multiple_of = pad_to_multiple_of

    def pad_value(self, key: str) -> int:
        if key == "input_ids":
            return self.pad_token_id
        if key in INPUT_PAD_VALUES:
            return INPUT_PAD_VALUES[key]
        if "label" in key:
            return SEQUENCE_LABEL_PAD
        return 0

    def __call__(self, examples: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
        batch = {}
        for key in examples[0]:
            values = [ex[key] for ex in examples]
            if values[0].dim() == 0:
                batch[key] = torch.stack(values)
                continue
            longest = max(v.shape[0] for v in values)
            if self.pad_to_multiple_of:
                longest = math.ceil(longest / self.pad_to_multiple_of) * self.pad_to_multiple_of
            out = values[0].new_full((len(values), longest, *values[0].shape[1:]),
                                     self.pad_value(key))
            for row, value in enumerate(values):
                out[row, : value.shape[0]] = value
            batch[key] = out
        return batch


def sequence_lengths(examples: list[dict[str, torch.Tensor]]) -> list[int]:
    return [int(ex["input_ids"].shape[0]) if "input_ids" in ex else 1 for ex in examples]


class BatchPlan:
    """Which example indices form each batch, epoch by epoch, for one process.

    The order depends only on ``(seed, epoch)``, so an interrupted run that resumes
    at epoch ``e``, batch ``b`` sees exactly the batches it would have seen.
    With several processes, each global batch of ``batch_size * num_processes``
    examples is split between them, so the global batch matches a single-process
    run with ``batch_size * num_processes``.
    """

    def __init__(self, lengths: Sequence[int], batch_size: int, *, shuffle: bool = True,
                 group_by_length: bool = True, seed: int = 42, num_processes: int = 1,
                 process_index: int = 0, mega_batch_factor: int = 50):
        self.lengths = list(lengths)
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.group_by_length = group_by_length
        self.seed = seed
        self.num_processes = num_processes
        self.process_index = process_index
        self.mega_batch_factor = mega_batch_factor

    def global_batches(self, epoch: int) -> list[list[int]]:
        n = len(self.lengths)
        global_size = self.batch_size * self.num_processes
        if not self.shuffle:  # evaluation: longest first, so padding is minimal
            order = sorted(range(n), key=lambda i: -self.lengths[i])
            return [order[i : i + global_size] for i in range(0, n, global_size)]
        generator = torch.Generator().manual_seed(self.seed + epoch)
        order = torch.randperm(n, generator=generator).tolist()
        if not self.group_by_length:
            return [order[i : i + global_size] for i in range(0, n, global_size)]
        mega = global_size * self.mega_batch_factor
        batches = []
        for start in range(0, n, mega):
            chunk = sorted(order[start : start + mega], key=lambda i: -self.lengths[i])
            batches += [chunk[i : i + global_size] for i in range(0, len(chunk), global_size)]
        shuffled = torch.randperm(len(batches), generator=generator).tolist()
        batches = [batches[i] for i in shuffled]
        # the longest batch first: an out-of-memory error shows up at step 1, not at step 900
        longest = max(range(len(batches)), key=lambda b: max(self.lengths[i] for i in batches[b]))
        batches.insert(0, batches.pop(longest))
        return batches

    def batches(self, epoch: int = 0) -> list[list[int]]:
        """This process's share of every global batch of the epoch (for training).

        A remainder smaller than the number of processes is skipped and an empty share
        gets the batch's last example, so every process steps together; evaluation
        must see every example exactly once, so it shards through Accelerate instead.
        """
        result = []
        for global_batch in self.global_batches(epoch):
            if self.num_processes == 1:
                result.append(global_batch)
                continue
            if len(global_batch) < self.num_processes:
                continue  # a remainder too small to give every process an example
            share = math.ceil(len(global_batch) / self.num_processes)
            part = global_batch[self.process_index * share : (self.process_index + 1) * share]
            result.append(part if part else global_batch[-1:])
        return result

    def __len__(self) -> int:
        return len(self.batches(0))


def padding_waste(lengths: Sequence[int], batches: list[list[int]]) -> float:
    """Share of the batch tensors' positions that are padding (0 = none)."""
    real = sum(lengths[i] for batch in batches for i in batch)
    padded = sum(len(batch) * max(lengths[i] for i in batch) for batch in batches)
    return 1.0 - real / padded if padded else 0.0
