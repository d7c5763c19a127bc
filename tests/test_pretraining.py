"""Masked-LM pretraining (``course_lib.pretraining``) and the ``pretrain`` command.

The models are tiny random BERTs (2 layers, 32 wide) with the packaged backbone's
WordPiece tokenizer, so every training run here takes seconds.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch
from conftest import save_tiny_bert

from course_lib import cli, pretraining
from course_lib.settings import DATA_DIR
from course_lib.training import Callback, PadCollator

TEXTS = ["Operating profit rose to EUR 13.1 mn from EUR 8.7 mn in the third quarter.",
         "The hepatotoxicity of the new antiretroviral was negligible in most patients.",
         "Net sales decreased by 5 percent, and the outlook for 2024 was cut.",
         "Patients with chronic pancreatitis reported persistent abdominal pain."]


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny models run faster on one thread (no hand-offs between threads), and far faster
    on a busy machine, where two threads wait for each other at every operation."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def encoder_dir(tmp_path_factory, tokenizer):
    """An encoder-only checkpoint (a bare ``BertModel`` with a pooler), like the quick one."""
    from transformers import BertModel

    torch.manual_seed(0)
    return save_tiny_bert(tmp_path_factory.mktemp("tiny-encoder"), BertModel, tokenizer)


def finance_sentences(n: int) -> list[str]:
    with open(DATA_DIR / "finance" / "finance_sample.csv", encoding="utf-8") as handle:
        return [row["sentence"] for row in csv.DictReader(handle)][:n]


# ------------------------------------------------------------------- the model
def test_a_new_head_is_tied_to_the_word_embeddings(encoder_dir):
    """An encoder-only checkpoint gets a head whose decoder IS the embedding matrix, the
    encoder and its pooler come from the checkpoint, and the new weights come from the
    seed without moving the caller's random stream."""
    from safetensors.torch import load_file
    from transformers import BertForMaskedLM

    from course_lib import backbones

    assert not backbones.has_mlm_head(str(encoder_dir))
    state = torch.get_rng_state()
    model = pretraining.build_masked_lm(str(encoder_dir), seed=7)
    assert torch.equal(torch.get_rng_state(), state), "building the model moved the global RNG"
    assert isinstance(model, BertForMaskedLM) and pretraining.head_is_tied(model)
    assert model.cls.predictions.decoder.bias is model.cls.predictions.bias
    saved = load_file(str(encoder_dir / "model.safetensors"))
    own = model.state_dict()
    for key in ("embeddings.word_embeddings.weight", "encoder.layer.1.output.dense.weight",
                "pooler.dense.weight"):
        assert torch.equal(own["bert." + key], saved[key]), key
    assert not model.bert.pooler.dense.weight.requires_grad  # masked-LM never trains it
    again = pretraining.build_masked_lm(str(encoder_dir), seed=7)
    assert torch.equal(again.cls.predictions.transform.dense.weight,
                       model.cls.predictions.transform.dense.weight)


def test_a_checkpoint_with_a_head_keeps_it(tmp_path, tokenizer):
    from transformers import BertForMaskedLM

    torch.manual_seed(1)
    folder = save_tiny_bert(tmp_path / "mlm", BertForMaskedLM, tokenizer)
    original = BertForMaskedLM.from_pretrained(folder)
    model = pretraining.build_masked_lm(str(folder), seed=0)
    for key in ("cls.predictions.transform.dense.weight", "cls.predictions.bias"):
        assert torch.equal(model.state_dict()[key], original.state_dict()[key]), key
    assert pretraining.head_is_tied(model)


def test_loss_on_masked_positions_matches_bert_for_masked_lm(encoder_dir, tokenizer):
    model = pretraining.build_masked_lm(str(encoder_dir), seed=0).eval()
    masker = pretraining.WholeWordMasking(tokenizer, 0.3)
    examples = pretraining.fixed_masking(masker, pretraining.tokenize_texts(tokenizer, TEXTS))
    batch = PadCollator(tokenizer.pad_token_id)(
        [{k: torch.tensor(v) for k, v in ex.items()} for ex in examples])
    with torch.no_grad():
        expected = model(**batch).loss
        ours = pretraining.masked_lm_loss(model, batch["input_ids"], batch["attention_mask"],
                                          batch["token_type_ids"], batch["labels"])
        scores = pretraining.evaluate_masked_lm(model, examples, batch_size=3)
    assert torch.allclose(ours, expected, atol=1e-5)
    assert scores["masked_tokens"] == pretraining.masked_token_count(examples)
    assert scores["perplexity"] == pytest.approx(float(torch.exp(expected)), rel=1e-4)


# ------------------------------------------------------------------- masking
def test_masking_proportions_and_whole_words(tokenizer):
    """15% of the tokens picked, whole words together; of those 80% [MASK], 10% random,
    10% unchanged; [CLS], [SEP] and padding never picked."""
    windows = pretraining.tokenize_texts(tokenizer, finance_sentences(400), max_length=64)
    masker = pretraining.WholeWordMasking(tokenizer)
    masked = pretraining.fixed_masking(masker, windows, seed=3)
    picked = real = masks = unchanged = whole = split = 0
    for window, out in zip(windows, masked):
        labels, ids = out["labels"], out["input_ids"]
        real += len(labels) - sum(window["special_tokens_mask"])
        words: dict[int, set[bool]] = {}
        word, previous_end = 0, None
        for i, ((start, end), special) in enumerate(zip(window["offset_mapping"],
                                                        window["special_tokens_mask"])):
            if special:
                assert labels[i] == -100
                previous_end = None
                continue
            word += start != previous_end
            previous_end = end
            words.setdefault(word, set()).add(labels[i] != -100)
            if labels[i] != -100:
                picked += 1
                assert labels[i] == window["input_ids"][i]
                masks += ids[i] == tokenizer.mask_token_id
                unchanged += ids[i] == labels[i]
        whole += sum(flags == {True} for flags in words.values())
        split += sum(len(flags) == 2 for flags in words.values())
    assert split == 0 and whole > 100, "every word is masked whole or not at all"
    assert 0.13 < picked / real < 0.17
    assert 0.76 < masks / picked < 0.84
    assert 0.07 < unchanged / picked < 0.13
    assert 0.07 < (picked - masks - unchanged) / picked < 0.13  # random tokens
    assert masked == pretraining.fixed_masking(masker, windows, seed=3)  # fixed means fixed

    padded = PadCollator(tokenizer.pad_token_id)(
        [{k: torch.tensor(v) for k, v in w.items()} for w in windows[:64]])
    generator = torch.Generator().manual_seed(0)
    _, labels = masker(padded["input_ids"], padded["special_tokens_mask"],
                       padded["offset_mapping"], generator=generator)
    assert not (labels[padded["attention_mask"] == 0] != -100).any(), "padding was masked"


def test_masking_raises_no_library_warning(tokenizer):
    """transformers 5 warns (and drops 80/10/10) when its collator masks whole words with
    random replacement; the course asks it for the picking alone, so nothing warns."""
    import warnings

    windows = pretraining.tokenize_texts(tokenizer, TEXTS)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        masker = pretraining.WholeWordMasking(tokenizer)
        pretraining.fixed_masking(masker, windows)


def test_long_texts_become_windows(tokenizer):
    long_text = " ".join(TEXTS * 6)
    windows = pretraining.tokenize_texts(tokenizer, [long_text, TEXTS[0]], max_length=32)
    assert len(windows) > 5 and all(len(w["input_ids"]) <= 32 for w in windows)
    n_tokens = len(tokenizer(long_text)["input_ids"]) - 2
    assert sum(len(w["input_ids"]) - 2 for w in windows[:-1]) == n_tokens  # nothing dropped


# ------------------------------------------------------------------- training
def test_perplexity_falls_on_repeated_text(encoder_dir, tokenizer):
    """A few steps on the same sentences: the held-out (fixed) masking gets far easier than
    word frequencies alone make it, and after the head's own phase the encoder (and so the
    tied embeddings) trains too."""
    model = pretraining.build_masked_lm(str(encoder_dir), seed=0)
    windows = pretraining.tokenize_texts(tokenizer, TEXTS * 8)
    held_out = pretraining.fixed_masking(pretraining.WholeWordMasking(tokenizer),
                                         pretraining.tokenize_texts(tokenizer, TEXTS))
    random_head = pretraining.evaluate_masked_lm(model, held_out)
    pretraining.start_bias_at_word_frequencies(model, windows)
    frequencies = pretraining.evaluate_masked_lm(model, held_out)
    embeddings = model.bert.embeddings.word_embeddings.weight.detach().clone()
    run = pretraining.pretrain(model, tokenizer, windows, new_head=True, epochs=10, lr=1e-2,
                               batch_size=8, head_share=0.3, progress=False, verbose=False)
    after = pretraining.evaluate_masked_lm(model, held_out)
    assert run.head_steps == 12 and run.trainer.total_steps == 40
    assert frequencies["perplexity"] < 0.5 * random_head["perplexity"]
    assert after["perplexity"] < 0.3 * frequencies["perplexity"], (frequencies, after)
    assert not torch.equal(embeddings, model.bert.embeddings.word_embeddings.weight)


def test_head_first_follows_the_step_so_a_resume_matches(encoder_dir):
    model = pretraining.build_masked_lm(str(encoder_dir), seed=0)
    callback = pretraining.HeadFirst(model, share=0.25)

    class FakeTrainer:
        total_steps, global_step = 20, 0

    trainer = FakeTrainer()
    callback.on_train_begin(trainer)
    layer = model.bert.encoder.layer[0].output.dense.weight
    assert callback.head_steps == 5 and not layer.requires_grad
    assert model.cls.predictions.transform.dense.weight.requires_grad
    callback.on_step_end(trainer, 5)
    assert layer.requires_grad and not model.bert.pooler.dense.weight.requires_grad
    trainer.global_step = 7  # a run resumed after the head phase trains everything
    pretraining.set_encoder_trainable(model, False)
    callback.on_train_begin(trainer)
    assert layer.requires_grad


def test_an_interrupted_run_resumes_to_the_same_weights(tmp_path, encoder_dir, tokenizer):
    """Ctrl-C after the head-only phase, then resume: the same final weights as one
    uninterrupted run (the masks come from the Trainer's restored random state, and
    HeadFirst leaves the encoder trainable because the step says so)."""
    windows = pretraining.tokenize_texts(tokenizer, TEXTS * 4)
    options = dict(new_head=True, epochs=3, lr=1e-3, batch_size=4, head_share=0.5,
                   progress=False, verbose=False, save_every=1)

    class Interrupt(Callback):
        def on_step_end(self, trainer, step):
            if step == 8:  # after the head-only phase (6 steps)
                raise KeyboardInterrupt

    whole = pretraining.build_masked_lm(str(encoder_dir), seed=0)
    pretraining.pretrain(whole, tokenizer, windows, output_dir=str(tmp_path / "a"), **options)
    resumed = pretraining.build_masked_lm(str(encoder_dir), seed=0)
    with pytest.raises(KeyboardInterrupt):
        pretraining.pretrain(resumed, tokenizer, windows, output_dir=str(tmp_path / "b"),
                             callbacks=[Interrupt()], **options)
    resumed = pretraining.build_masked_lm(str(encoder_dir), seed=0)
    run = pretraining.pretrain(resumed, tokenizer, windows, output_dir=str(tmp_path / "b"),
                               resume=True, **options)
    assert run.trainer.total_steps == 12 and run.head_steps == 6
    for (name, a), b in zip(whole.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), name


# ------------------------------------------------------------------- the command
def write_texts(path: Path, texts) -> Path:
    path.write_text("\n".join(texts) + "\n", encoding="utf-8")
    return path


def test_pretrain_then_fill_mask_then_classify(tmp_path, encoder_dir, capsys):
    """The command's folder loads in pipeline("fill-mask") with nothing missing, and
    classify --model fine-tunes it with the encoder and pooler it saved."""
    from transformers import BertForMaskedLM, BertForSequenceClassification, pipeline

    train = write_texts(tmp_path / "notes.txt", finance_sentences(60) + ["", "   "])
    out = tmp_path / "dapt"
    assert cli.main(["pretrain", "--train", str(train), "--output-dir", str(out), "--model",
                     str(encoder_dir), "--epochs", "2", "--batch-size", "16",
                     "--max-length", "48", "--lr", "1e-3"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    for key in ("perplexity_before", "perplexity_after", "masked_accuracy_before",
                "masked_accuracy_after", "train_seconds", "train_texts"):
        assert key in metrics, key
    assert metrics["train_texts"] == 54 and metrics["eval_texts"] == 6
    assert metrics["perplexity_after"] < metrics["perplexity_before"]
    assert not (out / "checkpoints").exists()
    model_dir = out / "model"
    assert "pipeline_tag: fill-mask" in (model_dir / "README.md").read_text()

    fill = pipeline("fill-mask", model=str(model_dir))
    guesses = fill("Operating profit rose to EUR 13.1 [MASK].")
    assert len(guesses) == 5 and all("token_str" in g for g in guesses)
    _, report = BertForMaskedLM.from_pretrained(model_dir, output_loading_info=True)
    assert not report["missing_keys"] and set(report["unexpected_keys"]) == {
        "bert.pooler.dense.weight", "bert.pooler.dense.bias"}
    _, report = BertForSequenceClassification.from_pretrained(model_dir, num_labels=3,
                                                              output_loading_info=True)
    assert set(report["missing_keys"]) == {"classifier.weight", "classifier.bias"}
    assert all(k.startswith("cls.predictions.") for k in report["unexpected_keys"])

    table = tmp_path / "labelled.csv"
    with open(table, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["sentence", "label"])
        writer.writerows((s, ["positive", "negative", "neutral"][i % 3])
                         for i, s in enumerate(finance_sentences(24)))
    capsys.readouterr()
    assert cli.main(["classify", "--train", str(table), "--eval", str(table), "--text-column",
                     "sentence", "--label-column", "label", "--model", str(model_dir),
                     "--strategy", "full", "--epochs", "1", "--output-dir",
                     str(tmp_path / "cls")]) == 0
    assert (tmp_path / "cls" / "model" / "config.json").is_file()


def test_held_out_texts_do_not_depend_on_the_seed(tmp_path):
    from course_lib.cli import pretrain as command

    texts = [f"text number {i}" for i in range(50)]
    train, held = command.split_held_out(texts, tmp_path / "t.txt")
    assert len(held) == 5 and len(train) == 45 and not set(train) & set(held)
    assert command.split_held_out(texts, tmp_path / "t.txt") == (train, held)


def _bad_inputs(tmp: Path):
    good = write_texts(tmp / "good.txt", TEXTS)
    table = tmp / "table.csv"
    table.write_text("sentence\nProfit rose.\n  \nSales fell.\n", encoding="utf-8")
    yield ["--train", str(tmp / "absent.txt")], "absent.txt: file not found"
    yield ["--train", str(table), "--text-column", "body"], "missing column 'body'"
    yield ["--train", str(table), "--text-column", "sentence"], "row 2: empty text"
    yield ["--train", str(write_texts(tmp / "blank.txt", ["", "  "]))], "no text"
    latin = tmp / "latin1.txt"
    latin.write_bytes("Oy Caf\u00e9 Ab grew\n".encode("latin-1"))
    yield ["--train", str(latin)], "not valid UTF-8"
    yield ["--train", str(good), "--eval", str(tmp / "none.csv")], "none.csv: file not found"
    yield ["--train", str(write_texts(tmp / "notes.doc", TEXTS))], "unknown file type '.doc'"
    yield ["--train", str(write_texts(tmp / "one.txt", TEXTS[:1]))], "needs at least 2"
    for value in ("0", "1", "1.5", "nan", "-0.1"):
        yield ["--train", str(good), "--mlm-probability", value], "--mlm-probability"


def test_bad_input_is_one_line_and_writes_nothing(tmp_path, capsys):
    out = tmp_path / "out"
    for args, expected in _bad_inputs(tmp_path):
        capsys.readouterr()
        code = cli.main(["pretrain", *args, "--output-dir", str(out)])
        err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
        assert code == 2, (args, err)
        assert len(err) == 1 and err[0].startswith("error: ") and expected in err[0], (args, err)
        assert not (out / "model").exists() and not (out / "metrics.json").exists()
