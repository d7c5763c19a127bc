"""After training: calibration maths, predict and export round trips, bad inputs.

Tolerances: ONNX fp32 logits match PyTorch's within 1e-4 (max absolute difference);
int8 keeps the label of >= 95% of sentences on a (quickly) trained model: on an
untrained one every logit is near a tie and the comparison means nothing.
"""

import json
import random

import numpy as np
import pytest
import torch

from course_lib.cli import main
from course_lib.data.tables import read_table, write_table
from course_lib.serving import calibration as cal
from course_lib.serving import export_onnx, load_predictor, predict_file
from course_lib.settings import CourseError

LABELS = ["negative", "neutral", "positive"]
WORDS = {"negative": ["fell", "dropped", "declined", "plunged", "weakened"],
         "neutral": ["was", "remained", "is", "stayed", "appeared"],
         "positive": ["rose", "grew", "improved", "jumped", "strengthened"]}
SUBJECTS = ["Sales", "Operating profit", "The share price", "Net income", "Demand",
            "Revenue in Finland", "The order book", "Quarterly profit"]
TAILS = ["in the quarter .", "compared with last year .", "according to the company .",
         "in 2024 .", ".", "as analysts expected , the firm said on Monday ."]


def sentences(n: int, seed: int) -> list[dict]:
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        label = LABELS[i % 3]
        rows.append({"id": i, "sentence": f"{rng.choice(SUBJECTS)} {rng.choice(WORDS[label])} "
                                           f"{rng.choice(TAILS)}", "label": label})
    return rows


@pytest.fixture(scope="module")
def trained_dir(tmp_path_factory, tokenizer):
    """A tiny 3-class BERT trained for a few seconds on template sentences (clear margins)."""
    from transformers import BertConfig, BertForSequenceClassification

    torch.manual_seed(0)
    config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=2,
                        num_attention_heads=2, intermediate_size=64,
                        max_position_embeddings=128, num_labels=3, hidden_dropout_prob=0.0,
                        id2label=dict(enumerate(LABELS)),
                        label2id={k: i for i, k in enumerate(LABELS)})
    model = BertForSequenceClassification(config)
    rows = sentences(240, seed=0)
    enc = tokenizer([r["sentence"] for r in rows], padding=True, return_tensors="pt")
    labels = torch.tensor([LABELS.index(r["label"]) for r in rows])
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    model.train()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny matrices: a second thread only waits (50 s vs 4 s under load)
    try:
        for _ in range(60):
            idx = torch.randint(0, len(rows), (32,))
            loss = model(**{k: v[idx] for k, v in enc.items()}, labels=labels[idx]).loss
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()
    finally:
        torch.set_num_threads(threads)
    folder = tmp_path_factory.mktemp("trained") / "model"
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def torch_logits(folder, texts, one_by_one: bool = True):
    """Reference: PyTorch one sentence at a time (no padding, no sorting), or one batch."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    model = AutoModelForSequenceClassification.from_pretrained(folder).eval()
    tok = AutoTokenizer.from_pretrained(folder)
    with torch.inference_mode():
        if not one_by_one:
            return model(**tok(texts, padding=True, return_tensors="pt")).logits.numpy()
        return np.stack([model(**tok(t, return_tensors="pt")).logits[0].numpy() for t in texts])


# ----------------------------------------------------------- calibration maths
def test_ece_is_zero_for_calibrated_and_large_for_overconfident():
    rng = np.random.default_rng(0)
    n = 40_000
    confidence = rng.uniform(0.5, 1.0, n)
    probs = np.stack([confidence, 1 - confidence], axis=1)
    labels = np.where(rng.uniform(size=n) < confidence, 0, 1)  # right with prob. = confidence
    assert cal.expected_calibration_error(probs, labels) < 0.01
    always_right_claims = np.tile([0.99, 0.01], (n, 1))
    half_right = rng.integers(0, 2, n)
    assert cal.expected_calibration_error(always_right_claims, half_right) == pytest.approx(
        0.49, abs=0.02)


def test_reliability_bins_are_right_closed():
    probs = np.array([[1.0, 0.0], [0.6, 0.4], [0.5, 0.5]])
    data = cal.reliability_data(probs, np.array([0, 1, 0]), n_bins=10)
    assert data["count"][9] == 1 and data["count"][5] == 1 and data["count"][4] == 1
    assert data["accuracy"][5] == 0.0 and np.isnan(data["accuracy"][0])
    assert data["ece"] == pytest.approx((0 + 0.6 + 0.5) / 3)


def test_temperature_recovers_a_known_temperature():
    rng = np.random.default_rng(1)
    true_logits = rng.normal(0, 2.0, size=(20_000, 3))
    labels = np.array([rng.choice(3, p=p) for p in cal.softmax(true_logits)])
    overconfident = true_logits * 2.5  # what the model says: T = 2.5 undoes it
    t = cal.fit_temperature(overconfident, labels)
    assert t == pytest.approx(2.5, rel=0.05)
    before = cal.expected_calibration_error(cal.softmax(overconfident), labels)
    after = cal.expected_calibration_error(cal.softmax(overconfident, t), labels)
    assert after < 0.02 < before
    # temperature never changes the arg-max
    assert (cal.softmax(overconfident, t).argmax(1) == overconfident.argmax(1)).all()


def test_macro_f1_matches_scikit_learn():
    from sklearn.metrics import f1_score

    rng = np.random.default_rng(2)
    y, p = rng.integers(0, 4, 300), rng.integers(0, 3, 300)  # class 3 never predicted
    assert cal.macro_f1(y, p, 4) == pytest.approx(
        f1_score(y, p, labels=[0, 1, 2, 3], average="macro", zero_division=0))


def test_class_bias_rescues_a_small_class_and_leaves_a_good_model_alone():
    rng = np.random.default_rng(3)
    labels = np.array([0] * 450 + [1] * 50)
    # the minority class gets a weaker signal: arg-max almost never predicts it
    logits = np.stack([np.where(labels == 0, 1.5, 0.9), np.where(labels == 1, 0.6, 0.0)], 1)
    logits = logits + rng.normal(0, 0.3, logits.shape)
    log_probs = cal.log_softmax(logits)
    bias = cal.fit_class_bias(log_probs, labels)
    plain = cal.macro_f1(labels, cal.decide(log_probs), 2)
    tuned = cal.macro_f1(labels, cal.decide(log_probs, bias), 2)
    assert tuned > plain + 0.1 and bias[1] > bias[0]
    separable = np.eye(3)[np.repeat([0, 1, 2], 20)] * 5
    assert np.allclose(cal.fit_class_bias(cal.log_softmax(separable), np.repeat([0, 1, 2], 20)),
                       0)


def test_calibration_file_round_trip_and_refuses_a_broken_one(tmp_path):
    rng = np.random.default_rng(4)
    logits, labels = rng.normal(0, 3, (200, 3)), rng.integers(0, 3, 200)
    fitted = cal.fit_calibration(logits, labels, LABELS, fitted_on="validation: 200 examples")
    fitted.save(tmp_path)
    stored = json.loads((tmp_path / "calibration.json").read_text())
    for key in ("temperature", "bias", "ece_before", "ece_after", "fitted_on", "decision_rule"):
        assert key in stored
    loaded = cal.Calibration.load(tmp_path)
    assert np.array_equal(loaded.predict(logits), fitted.predict(logits))
    assert cal.Calibration.load(tmp_path / "nowhere") is None
    (tmp_path / "calibration.json").write_text('{"labels": ["a"], "temperature": -1}')
    with pytest.raises(CourseError, match="temperature must be > 0"):
        cal.Calibration.load(tmp_path)


def test_hold_out_is_stratified_and_gives_up_on_tiny_data():
    rows = [{"label": LABELS[i % 3], "i": i} for i in range(300)]
    train, val = cal.hold_out(rows, fraction=0.1, seed=42)
    assert len(val) == 30 and len(train) == 270
    assert {r["label"] for r in val} == set(LABELS)
    assert not {r["i"] for r in train} & {r["i"] for r in val}
    assert cal.hold_out(rows[:6], fraction=0.1) == (rows[:6], [])


def test_calibrate_fits_on_model_outputs(trained_dir, tokenizer):
    from transformers import AutoModelForSequenceClassification

    model = AutoModelForSequenceClassification.from_pretrained(trained_dir)
    rows = sentences(60, seed=5)
    enc = tokenizer([r["sentence"] for r in rows], truncation=True)
    val = [{"input_ids": enc["input_ids"][i], "attention_mask": enc["attention_mask"][i],
            "token_type_ids": enc["token_type_ids"][i], "labels": LABELS.index(r["label"])}
           for i, r in enumerate(rows)]
    fitted = cal.calibrate(model, val, LABELS, fitted_on="test")
    assert fitted.temperature > 0 and fitted.validation["examples"] == 60
    # temperature minimises the NLL (ECE, a binned measure, may move either way on 60)
    assert fitted.validation["nll_after"] <= fitted.validation["nll_before"] + 1e-6


def test_reliability_plot_draws_both_curves():
    import matplotlib

    matplotlib.use("Agg")
    from course_lib.serving.plots import plot_reliability

    rng = np.random.default_rng(5)
    logits, labels = rng.normal(0, 3, (300, 3)), rng.integers(0, 3, 300)
    ax = plot_reliability(cal.softmax(logits), labels, name="raw")
    plot_reliability(cal.softmax(logits, 3.0), labels, name="T=3", ax=ax)
    names = [t.get_text() for t in ax.get_legend().get_texts()]
    assert any(n.startswith("raw (ECE") for n in names)
    assert any(n.startswith("T=3 (ECE") for n in names)
    assert names.count("perfect calibration") == 1


# ------------------------------------------------------------- predict
def test_predict_round_trip_matches_the_model_and_applies_calibration(trained_dir, tmp_path):
    rows = sentences(45, seed=7)
    src = write_table(rows, tmp_path / "in.csv")
    summary = predict_file(trained_dir, src, tmp_path / "out.csv", "sentence", batch_size=8)
    out = read_table(tmp_path / "out.csv")
    assert summary["rows"] == 45 and summary["renamed_columns"] == {"label": "label_input"}
    assert [r["id"] for r in out] == [str(r["id"]) for r in rows]  # input order kept
    assert list(out[0]) == ["id", "sentence", "label_input", "label", "score", "prob_negative",
                            "prob_neutral", "prob_positive"]
    reference = torch_logits(trained_dir, [r["sentence"] for r in rows])
    probs = np.array([[float(r[f"prob_{k}"]) for k in LABELS] for r in out])
    assert np.abs(probs - cal.softmax(reference)).max() < 1e-5  # batched == one by one
    assert [r["label"] for r in out] == [LABELS[i] for i in reference.argmax(1)]
    accuracy = np.mean([r["label"] == r["label_input"] for r in out])
    assert accuracy > 0.9, "the trained fixture should be good at its own task"

    # with a calibration.json the probabilities are temperature-scaled, offsets applied
    calibration = cal.Calibration(labels=LABELS, temperature=3.0, bias=[0.0, 0.0, 2.0])
    calibration.save(trained_dir)
    try:
        predict_file(trained_dir, src, tmp_path / "cal.jsonl", "sentence")
    finally:
        (trained_dir / "calibration.json").unlink()
    out = read_table(tmp_path / "cal.jsonl")
    probs = np.array([[r[f"prob_{k}"] for k in LABELS] for r in out])
    assert np.abs(probs - cal.softmax(reference, 3.0)).max() < 1e-5
    assert [r["label"] for r in out] == [LABELS[i] for i in calibration.predict(reference)]
    assert all(abs(r["score"] - r[f"prob_{r['label']}"]) < 1e-9 for r in out)


def test_predict_sentence_pairs_through_the_command(tiny_model_dir, tmp_path, capsys):
    rows = [{"a": "The profit rose.", "b": "Sales fell."}, {"a": "No change.", "b": "Ok."}]
    write_table(rows, tmp_path / "pairs.jsonl")
    code = main(["predict", "--model", str(tiny_model_dir), "--input",
                 str(tmp_path / "pairs.jsonl"), "--text-column", "a", "--text-pair-column",
                 "b", "--output", str(tmp_path / "out.parquet")])
    assert code == 0, capsys.readouterr().err
    out = read_table(tmp_path / "out.parquet")
    assert len(out) == 2 and {"label", "score", "prob_LABEL_0", "prob_LABEL_1"} <= set(out[0])
    assert "2 rows labelled" in capsys.readouterr().out


# -------------------------------------------------------------- export
def test_export_fp32_matches_pytorch_and_predict_runs_it(trained_dir, tmp_path, capsys):
    cal.Calibration(labels=LABELS, temperature=2.0).save(trained_dir)
    try:
        code = main(["export", "--model", str(trained_dir), "--output-dir",
                     str(tmp_path / "onnx")])
    finally:
        (trained_dir / "calibration.json").unlink()
    assert code == 0, capsys.readouterr().err
    folder = tmp_path / "onnx"
    manifest = json.loads((folder / "export.json").read_text())
    assert manifest["quantize"] is None and manifest["labels"] == LABELS
    assert manifest["check"]["max_abs_logit_diff"] < 1e-4
    assert (folder / "calibration.json").is_file() and (folder / "tokenizer.json").is_file()

    texts = [r["sentence"] for r in sentences(30, seed=8)] + ["word " * 100]
    onnx = load_predictor(folder)
    assert onnx.kind == "onnx" and onnx.calibration.temperature == 2.0
    diff = np.abs(onnx.logits(texts, batch_size=7) - torch_logits(trained_dir, texts)).max()
    assert diff < 1e-4, f"ONNX fp32 differs from PyTorch by {diff}"

    write_table([{"sentence": t} for t in texts], tmp_path / "in.tsv")
    code = main(["predict", "--model", str(folder), "--input", str(tmp_path / "in.tsv"),
                 "--text-column", "sentence", "--output", str(tmp_path / "out.tsv")])
    assert code == 0, capsys.readouterr().err
    assert "onnx, calibrated" in capsys.readouterr().out
    assert len(read_table(tmp_path / "out.tsv")) == len(texts)


def test_export_int8_keeps_the_labels(trained_dir, tmp_path):
    manifest = export_onnx(trained_dir, tmp_path / "int8", quantize="int8")
    assert manifest["quantize"] == "int8" and not (tmp_path / "int8" / "model.fp32.onnx").exists()
    fp32_bytes = sum(f.stat().st_size for f in trained_dir.glob("*.safetensors"))
    assert (tmp_path / "int8" / "model.onnx").stat().st_size < 0.5 * fp32_bytes
    texts = [r["sentence"] for r in sentences(200, seed=9)]
    int8 = load_predictor(tmp_path / "int8").logits(texts).argmax(1)
    same = float((int8 == torch_logits(trained_dir, texts, one_by_one=False).argmax(1)).mean())
    assert same >= 0.95, f"int8 keeps the label of only {same:.1%} of the sentences"


def test_bottleneck_adapter_model_exports(tmp_path, tokenizer):
    """classify --strategy adapters saves a custom model type; it exports like BERT."""
    from transformers import BertConfig, BertForSequenceClassification

    from course_lib import strategies

    torch.manual_seed(0)
    model = BertForSequenceClassification(BertConfig(
        vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=2,
        num_attention_heads=2, intermediate_size=64, max_position_embeddings=128))
    plan = strategies.apply_strategy(model, "adapters")
    with torch.no_grad():
        for p in model.parameters():  # adapters start as the identity: make them matter
            p.add_(torch.randn_like(p) * 0.05)
    plan.save(tmp_path / "model", tokenizer)
    manifest = export_onnx(tmp_path / "model", tmp_path / "onnx")
    assert manifest["check"]["max_abs_logit_diff"] < 1e-4
    texts = ["Profits rose sharply.", "word " * 60]
    diff = load_predictor(tmp_path / "onnx").logits(texts) - load_predictor(
        tmp_path / "model").logits(texts)
    assert np.abs(diff).max() < 1e-4


# ----------------------------------------------------------- bad inputs
def run_cli(capsys, *args) -> tuple[int, str]:
    code = main(list(map(str, args)))
    err = capsys.readouterr().err.strip()
    return code, err


def test_bad_inputs_end_in_one_line(tiny_model_dir, tiny_qa_model, tmp_path, capsys):
    good = write_table([{"sentence": "Profits rose."}], tmp_path / "in.csv")
    (tmp_path / "empty.csv").write_text("")
    (tmp_path / "header.csv").write_text("sentence\n")
    (tmp_path / "not-a-model").mkdir()
    cases = [
        (tmp_path / "missing", good, "sentence", "out.csv", "folder not found"),
        (tmp_path / "not-a-model", good, "sentence", "out.csv", "not a model folder"),
        (tiny_qa_model, good, "sentence", "out.csv", "not a text classifier"),
        (tiny_model_dir, good, "text", "out.csv", "missing column 'text'"),
        (tiny_model_dir, tmp_path / "empty.csv", "sentence", "out.csv", "empty"),
        (tiny_model_dir, tmp_path / "header.csv", "sentence", "out.csv", "no rows"),
        (tiny_model_dir, tmp_path / "nope.csv", "sentence", "out.csv", "file not found"),
        (tiny_model_dir, good, "sentence", "out.xlsx", "unknown file type '.xlsx'"),
    ]
    for model, source, column, output, message in cases:
        code, err = run_cli(capsys, "predict", "--model", model, "--input", source,
                            "--text-column", column, "--output", tmp_path / output)
        assert code == 2 and err.startswith("error: ") and message in err, (message, err)
        assert len(err.splitlines()) == 1
    write_table([{"sentence": "ok"}, {"sentence": "  "}], tmp_path / "blank.csv")
    code, err = run_cli(capsys, "predict", "--model", tiny_model_dir, "--input",
                        tmp_path / "blank.csv", "--text-column", "sentence", "--output",
                        tmp_path / "o.csv")
    assert code == 2 and "row 2: empty text" in err
    code, err = run_cli(capsys, "export", "--model", tmp_path / "not-a-model", "--output-dir",
                        tmp_path / "x")
    assert code == 2 and "not a model folder" in err and not (tmp_path / "x").exists()
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    code, err = run_cli(capsys, "export", "--model", tiny_model_dir, "--output-dir",
                        tmp_path / "mine")
    assert code == 2 and "holds other files" in err
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"
    with pytest.raises(SystemExit) as exit_:
        main(["export", "--model", str(tiny_model_dir), "--quantize", "int4", "--output-dir",
              str(tmp_path / "y")])
    assert exit_.value.code == 2 and "invalid choice: 'int4'" in capsys.readouterr().err
