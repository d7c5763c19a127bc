"""Shared test setup: quick profile, offline, no progress bars, tiny models."""

import os

os.environ.setdefault("COURSE_PROFILE", "quick")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ["COURSE_PROGRESS"] = "0"

import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(min(2, torch.get_num_threads()))


@pytest.fixture(scope="session")
def tokenizer():
    from course_lib import backbones

    return backbones.load_tokenizer()


def save_tiny_bert(folder, model_class, tokenizer):
    """A random 2-layer BERT of ``model_class`` with the real WordPiece tokenizer, saved
    to ``folder``: it trains in seconds, and loads like any Hugging Face model folder."""
    from transformers import BertConfig

    config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=2,
                        num_attention_heads=2, intermediate_size=64,
                        max_position_embeddings=128)
    model_class(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory, tokenizer):
    """A tiny sequence-classification BERT folder (see save_tiny_bert)."""
    from transformers import BertForSequenceClassification

    return save_tiny_bert(tmp_path_factory.mktemp("tiny-bert"), BertForSequenceClassification,
                          tokenizer)


@pytest.fixture(scope="session")
def tiny_qa_model(tmp_path_factory, tokenizer):
    """A tiny question-answering BERT folder (see save_tiny_bert)."""
    from transformers import BertForQuestionAnswering

    return save_tiny_bert(tmp_path_factory.mktemp("tiny-qa"), BertForQuestionAnswering,
                          tokenizer)


class TinyClassifier(torch.nn.Module):
    """A bag-of-embeddings classifier with dropout: fast, and random enough to test RNG."""

    def __init__(self, vocab: int = 50, hidden: int = 16, labels: int = 2, dropout: float = 0.1):
        super().__init__()
        self.embed = torch.nn.Embedding(vocab, hidden, padding_idx=0)
        self.dropout = torch.nn.Dropout(dropout)
        self.out = torch.nn.Linear(hidden, labels)

    def forward(self, input_ids, attention_mask, labels=None):
        mask = attention_mask.unsqueeze(-1).float()
        pooled = (self.embed(input_ids) * mask).sum(1) / mask.sum(1).clamp(min=1)
        logits = self.out(self.dropout(pooled))
        loss = torch.nn.functional.cross_entropy(logits, labels) if labels is not None else None
        return {"loss": loss, "logits": logits}


def toy_examples(n: int = 96, seed: int = 0):
    """Separable toy task: label 1 when token 7 occurs in the sequence."""
    g = torch.Generator().manual_seed(seed)
    rows = []
    for i in range(n):
        length = int(torch.randint(3, 12, (1,), generator=g))
        ids = torch.randint(8, 50, (length,), generator=g)
        label = i % 2
        if label:
            ids[int(torch.randint(0, length, (1,), generator=g))] = 7
        rows.append({"input_ids": ids.tolist(), "attention_mask": [1] * length, "labels": label})
    return rows


@pytest.fixture
def toy_data():
    return toy_examples(96, seed=0), toy_examples(32, seed=1)


# Labelled finance-style sentences that several command-line and table tests write to files.
ROWS = [("Profits rose sharply in the quarter.", "positive"),
        ("The company cut its full-year outlook.", "negative"),
        ("The annual meeting is held on Tuesday.", "neutral"),
        ("Sales grew by a fifth on strong demand.", "positive"),
        ("Losses widened as orders dried up.", "negative"),
        ("The firm employs 300 people in Finland.", "neutral")]


def load_tool(name: str):
    """A script in tools/ imported as a module (tools/ is not a package)."""
    import importlib.util
    import sys
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "tools" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module

