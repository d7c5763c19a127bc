import os
import random
import time

import numpy as np
import pytest
import torch

from course_lib import backbones
from course_lib.settings import CourseError


def test_quick_backbone_is_the_packaged_compact_bert(monkeypatch):
    monkeypatch.delenv("COURSE_MODEL", raising=False)
    model = backbones.load_model("encoder")
    config = model.config
    assert (config.model_type, config.num_hidden_layers, config.hidden_size,
            config.num_attention_heads, config.vocab_size) == ("bert", 6, 384, 12, 30522)
    assert backbones.count_parameters(model)[1] == pytest.approx(22.7e6, rel=0.01)


def test_classification_model_carries_label_names():
    model = backbones.load_model("classification", labels=["negative", "neutral", "positive"])
    assert model.config.id2label == {0: "negative", 1: "neutral", 2: "positive"}
    assert model.config.label2id["positive"] == 2


def test_loading_is_seeded_so_new_heads_are_reproducible():
    first = backbones.load_model("classification", labels=["a", "b"], seed=3)
    second = backbones.load_model("classification", labels=["a", "b"], seed=3)
    other = backbones.load_model("classification", labels=["a", "b"], seed=4)
    assert torch.equal(first.classifier.weight, second.classifier.weight)
    assert not torch.equal(first.classifier.weight, other.classifier.weight)


def test_loading_leaves_the_global_random_streams_alone():
    """Regression (issue 14 item 8): load_model(seed=...) used to reseed the global RNG, so
    building a model mid-notebook reset every stream (dropout, shuffling, sampling)."""
    torch.manual_seed(11)
    random.seed(11)
    np.random.seed(11)
    before = (torch.get_rng_state(), random.getstate(), np.random.get_state()[1].copy())
    backbones.load_model("classification", labels=["a", "b"], seed=3)
    after = (torch.get_rng_state(), random.getstate(), np.random.get_state()[1].copy())
    assert torch.equal(before[0], after[0])
    assert before[1] == after[1] and (before[2] == after[2]).all()


def test_seed_none_draws_the_head_from_the_current_stream():
    torch.manual_seed(5)
    first = backbones.load_model("classification", labels=["a", "b"], seed=None)
    torch.manual_seed(5)
    second = backbones.load_model("classification", labels=["a", "b"], seed=None)
    assert torch.equal(first.classifier.weight, second.classifier.weight)


def test_loading_is_offline_in_the_quick_profile_and_leaves_the_process_as_it_was(
        monkeypatch):
    """Regression (issue 14 item 13): offline belongs to the load, not to the process."""
    import huggingface_hub.constants as constants
    import transformers

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("COURSE_PROFILE", raising=False)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    transformers.logging.set_verbosity_warning()
    seen = {}
    real = transformers.AutoModel.from_pretrained

    def spy(*args, **kwargs):
        seen["offline"] = (os.environ.get("HF_HUB_OFFLINE"), constants.HF_HUB_OFFLINE)
        return real(*args, **kwargs)

    monkeypatch.setattr(transformers.AutoModel, "from_pretrained", spy)
    env = dict(os.environ)
    backbones.load_model("encoder")
    assert seen["offline"] == ("1", True)
    assert dict(os.environ) == env and constants.HF_HUB_OFFLINE is False
    assert transformers.logging.get_verbosity() == transformers.logging.WARNING


def test_max_positions_reads_the_config_only(tiny_model_dir):
    assert backbones.max_positions() == 512
    assert backbones.max_positions(str(tiny_model_dir)) == 128


def test_qa_model_and_tokenizer(tokenizer):
    model = backbones.load_model("qa")
    enc = tokenizer("What?", "An answer.", return_tensors="pt")
    out = model(**enc)
    assert out.start_logits.shape == enc["input_ids"].shape
    assert tokenizer.tokenize("unaffable") == ["una", "##ffa", "##ble"]


@pytest.mark.parametrize("offline", ["1", None])  # set by the user / the quick profile's default
def test_hub_model_offline_fails_at_once_with_one_line(monkeypatch, offline):
    monkeypatch.delenv("COURSE_PROFILE", raising=False)
    if offline is None:
        monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    else:
        monkeypatch.setenv("HF_HUB_OFFLINE", offline)
    monkeypatch.setattr(backbones.settings, "hub_reachable", lambda *a: pytest.fail("online"))
    started = time.perf_counter()
    with pytest.raises(CourseError) as info:
        backbones.load_model("classification", "some-org/not-cached-bert")
    assert time.perf_counter() - started < 5
    message = str(info.value)
    assert "\n" not in message and "COURSE_MODEL" in message and "offline" in message


def test_missing_local_folder_is_one_clear_line(tmp_path):
    with pytest.raises(CourseError, match="not found or has no config.json"):
        backbones.load_model("encoder", str(tmp_path / "nothing-here"))


def test_mlm_head_is_found_in_shards_in_the_cache_and_on_the_hub(tmp_path, monkeypatch):
    """A Hub model not downloaded yet was taken for headless, so ``pretrain`` overwrote
    bert-base-uncased's trained output bias with word frequencies."""
    import json

    import huggingface_hub
    from safetensors.torch import save_file

    shard = tmp_path / "model-00001-of-00002.safetensors"
    save_file({"cls.predictions.bias": torch.zeros(3)}, str(shard))
    save_file({"bert.embeddings.word_embeddings.weight": torch.zeros(3, 2)},
              str(tmp_path / "model-00002-of-00002.safetensors"))
    assert backbones.has_mlm_head(str(tmp_path))  # a local folder of shards

    index = tmp_path / "model.safetensors.index.json"
    index.write_text(json.dumps({"weight_map": {"cls.predictions.bias": shard.name}}))
    cache = {"model.safetensors.index.json": str(index)}
    monkeypatch.setattr(huggingface_hub, "try_to_load_from_cache",
                        lambda repo, name, **kw: cache.get(name))
    assert backbones.has_mlm_head("some-org/sharded-bert")  # cached shards

    class Metadata:
        weight_map = {"cls.predictions.transform.dense.weight": "model.safetensors"}

    cache.clear()  # not downloaded: the Hub's metadata answers
    monkeypatch.setattr(huggingface_hub, "get_safetensors_metadata", lambda repo: Metadata)
    assert backbones.has_mlm_head("some-org/not-downloaded-bert")

    def offline(repo):
        raise OSError("offline")

    monkeypatch.setattr(huggingface_hub, "get_safetensors_metadata", offline)
    assert not backbones.has_mlm_head("some-org/not-downloaded-bert")


def test_packaged_backbone_has_no_mlm_head():
    assert backbones.has_mlm_head() is False
    with pytest.raises(CourseError, match="no masked-language-model head"):
        backbones.load_model("mlm")
