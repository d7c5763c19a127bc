import time

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


def test_qa_model_and_tokenizer(tokenizer):
    model = backbones.load_model("qa")
    enc = tokenizer("What?", "An answer.", return_tensors="pt")
    out = model(**enc)
    assert out.start_logits.shape == enc["input_ids"].shape
    assert tokenizer.tokenize("unaffable") == ["una", "##ffa", "##ble"]


def test_hub_model_offline_fails_at_once_with_one_line(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    started = time.perf_counter()
    with pytest.raises(CourseError) as info:
        backbones.load_model("classification", "some-org/not-cached-bert")
    assert time.perf_counter() - started < 5
    message = str(info.value)
    assert "\n" not in message and "COURSE_MODEL" in message


def test_missing_local_folder_is_one_clear_line(tmp_path):
    with pytest.raises(CourseError, match="not found or has no config.json"):
        backbones.load_model("encoder", str(tmp_path / "nothing-here"))


def test_packaged_backbone_has_no_mlm_head():
    assert backbones.has_mlm_head() is False
    with pytest.raises(CourseError, match="no masked-language-model head"):
        backbones.load_model("mlm")
