"""Serving on a CPU: PyTorch vs ONNX Runtime, fp32 vs dynamic int8, on FPB all-agree.

    python benchmarks/inference.py                    # trains with classify first (~2 min)
    python benchmarks/inference.py --model runs/fpb/model
    python benchmarks/inference.py --threads 2 --latency-sentences 200

It makes the split of ``benchmarks/strategies_fpb.py`` (Sentences_AllAgree.txt from
``../shared/datasets/financial_phrasebank`` or ``--data``, deduplicated, stratified
80/20, seed 42), trains a model with ``python -m course_lib classify`` and its
defaults on the training half unless ``--model`` is given, exports it with
``course_lib.serving.export_onnx`` (fp32 and int8), quantises a PyTorch copy with
``torch.ao.quantization.quantize_dynamic`` (``nn.Linear`` to int8), and measures for
each of the four, with ``--threads`` threads (2: the course's laptop):

* single-sentence latency, p50 / p95 over ``--latency-sentences`` test sentences one
  at a time (tokenisation included: what a request costs);
* batched throughput: the whole test half in length-sorted batches of 32, after a
  warm-up, best of ``--rounds`` passes (sentences per second, tokenisation included);
* file size of the weights, and accuracy / macro-F1 on the test half (arg-max of the
  logits, as ``classify`` reports), plus the share of test sentences whose label
  matches PyTorch fp32's.

Target (issue 17): ONNX int8 at least 2x PyTorch fp32's batched throughput with at
most 0.5 accuracy points lost. Results go to ``benchmarks/results/inference.md``
(+ ``.json``; ``--out NAME`` for another name). Each variant runs alone, after a
2 s pause (idle PyTorch and onnxruntime threads busy-wait for a while, and on 2 cores
a spinning thread of one runtime takes a core from the other); passes are taken
variant by variant in turn (best of ``--rounds``) so slow drifts of other work hit
all alike.
The load average at each pass is in the .json.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from strategies_fpb import allagree_folder, split_fpb  # noqa: E402 - the same split

from course_lib import data, settings  # noqa: E402

RESULTS_DIR = ROOT / "benchmarks" / "results"
TARGETS = {"speedup": 2.0, "max_points_lost": 0.5}
VARIANTS = ["PyTorch fp32", "PyTorch int8", "ONNX fp32", "ONNX int8"]
SETTLE_SECONDS = 2.0
BUSY_LOAD = 2.5  # load average above which the table says the timings are unreliable


def train_model(work: Path) -> Path:
    """``classify`` with its defaults on the training half; returns ``model/``."""
    out = work / "classify"
    command = [sys.executable, "-m", "course_lib", "classify", "--train", str(work / "train.csv"),
               "--eval", str(work / "test.csv"), "--text-column", "sentence",
               "--label-column", "label", "--output-dir", str(out)]
    print("training: python -m course_lib classify ... (defaults)", flush=True)
    done = subprocess.run(command, cwd=ROOT, text=True, capture_output=True,
                          env={**os.environ, "COURSE_PROGRESS": "0"})
    if done.returncode != 0:
        raise SystemExit(f"classify failed ({done.returncode}):\n{done.stderr[-2000:]}")
    print("  " + done.stdout.strip().splitlines()[-1], flush=True)
    return out / "model"


def describe_model(model_dir: Path) -> str:
    """What was trained, from the ``metrics.json`` that classify wrote beside ``model/``."""
    path = Path(model_dir).parent / "metrics.json"
    if not path.is_file():
        return str(model_dir)
    m = json.loads(path.read_text())
    return (f"`classify` ({m.get('strategy')}, {m.get('epochs')} epochs, lr {m.get('lr')}, "
            f"{m.get('train_examples')} training sentences; its own test accuracy "
            f"{m.get('accuracy', float('nan')):.4f}), backbone {m.get('model')}")


def predictors(model_dir: Path, work: Path, threads: int) -> dict:
    """The four variants as :class:`course_lib.serving.Predictor` objects + their file sizes."""
    import torch

    from course_lib.serving import export_onnx, load_predictor

    fp32 = load_predictor(model_dir, threads=threads)
    fp32.runner.to("cpu")
    quantized = torch.ao.quantization.quantize_dynamic(fp32.runner, {torch.nn.Linear},
                                                       dtype=torch.qint8)
    # measuring only: the size of the int8 state dict (nothing here is loaded back)
    torch.save(quantized.state_dict(), work / "pytorch-int8.pt")
    int8 = dataclasses.replace(fp32, runner=quantized)
    found = {"PyTorch fp32": (fp32, model_dir / "model.safetensors"),
             "PyTorch int8": (int8, work / "pytorch-int8.pt")}
    for name, quantize in (("ONNX fp32", None), ("ONNX int8", "int8")):
        folder = work / name.replace(" ", "-").lower()
        started = time.perf_counter()
        manifest = export_onnx(model_dir, folder, quantize=quantize, threads=threads)
        print(f"  exported {name} in {time.perf_counter() - started:.0f} s "
              f"(check: max logit diff {manifest['check']['max_abs_logit_diff']:.1e})",
              flush=True)
        found[name] = (load_predictor(folder, threads=threads), folder / "model.onnx")
    return found


def percentile(values: list[float], q: float) -> float:
    import numpy as np

    return float(np.percentile(np.asarray(values), q))


def settle() -> None:
    """Let the previous variant's idle threads stop spinning (PyTorch's OpenMP threads and
    onnxruntime's workers busy-wait for a while after each call; on 2 cores a spinning
    thread takes a core from the runtime being measured)."""
    time.sleep(SETTLE_SECONDS)


def measure(found: dict, texts: list[str], labels: list[int], latency_texts: list[str],
            rounds: int) -> list[dict]:
    """Every variant in its own block, the blocks taken in turn for ``rounds`` rounds
    (the best pass counts), so slow drifts of other work hit all variants alike; then
    each variant's single-sentence latencies, again in a block of its own."""
    import numpy as np

    from course_lib.serving.calibration import macro_f1

    labels = np.asarray(labels)
    best = dict.fromkeys(VARIANTS, float("inf"))
    predicted, loads = {}, {name: [] for name in VARIANTS}
    for round_ in range(rounds):
        for name in VARIANTS:
            predictor = found[name][0]
            settle()
            if round_ == 0:
                predictor.logits(texts[:64], batch_size=32)  # warm-up: allocations, pools
            loads[name].append(round(os.getloadavg()[0], 1))
            started = time.perf_counter()
            logits = predictor.logits(texts, batch_size=32)
            best[name] = min(best[name], time.perf_counter() - started)
            predicted.setdefault(name, logits.argmax(1))
            print(f"  round {round_ + 1}, {name}: {len(texts) / best[name]:.0f} sentences/s "
                  "(best so far)", flush=True)
    latencies = {name: [] for name in VARIANTS}
    for name in VARIANTS:
        predictor = found[name][0]
        settle()
        for text in latency_texts[:5]:  # warm-up of the batch-of-one path
            predictor.logits([text], batch_size=1)
        for text in latency_texts:
            started = time.perf_counter()
            predictor.logits([text], batch_size=1)
            latencies[name].append(1000 * (time.perf_counter() - started))
    rows = []
    for name in VARIANTS:
        mine = predicted[name]
        rows.append({
            "variant": name, "accuracy": round(float((mine == labels).mean()), 4),
            "macro_f1": round(macro_f1(labels, mine, len(found[name][0].labels)), 4),
            "same_label_as_fp32": round(float((mine == predicted[VARIANTS[0]]).mean()), 4),
            "throughput": round(len(texts) / best[name], 1),
            "latency_p50_ms": round(percentile(latencies[name], 50), 2),
            "latency_p95_ms": round(percentile(latencies[name], 95), 2),
            "size_mb": round(found[name][1].stat().st_size / 2**20, 1),
            "load_average_per_round": loads[name]})
    return rows


def verdicts(rows: list[dict]) -> list[str]:
    by = {r["variant"]: r for r in rows}
    base = by["PyTorch fp32"]
    lines = []
    for name in VARIANTS[1:]:
        r = by[name]
        speedup = r["throughput"] / base["throughput"]
        lost = 100 * (base["accuracy"] - r["accuracy"])
        line = (f"- {name}: {speedup:.1f}x PyTorch fp32's batched throughput, "
                f"{lost:+.2f} accuracy points lost, same label on "
                f"{100 * r['same_label_as_fp32']:.1f}% of the test sentences")
        if name == "ONNX int8":
            ok = speedup >= TARGETS["speedup"] and lost <= TARGETS["max_points_lost"]
            line += (f" (target: >= {TARGETS['speedup']:g}x at <= "
                     f"{TARGETS['max_points_lost']} points lost: {'met' if ok else 'missed'})")
        lines.append(line)
    return lines


def busy_warning(rows: list[dict], facts: dict) -> list[str]:
    """A line when other work shared the cores: busy cores distort the timings
    (PyTorch's threads wait for each other; one thread then beats two several times)."""
    peak = max(max(r["load_average_per_round"]) for r in rows)
    if peak <= BUSY_LOAD:
        return []
    return [f"**Measured on a busy machine** (load average up to {peak:.1f} on "
            f"{os.cpu_count()} cores): the times are not representative, PyTorch's least "
            "(its threads spin waiting for each other). Re-run on an idle machine.", ""]


def write_results(rows: list[dict], facts: dict, name: str = "inference") -> None:
    results = RESULTS_DIR / name
    results.parent.mkdir(parents=True, exist_ok=True)
    results.with_suffix(".json").write_text(json.dumps({**facts, "results": rows}, indent=2)
                                            + "\n")
    table = ["| variant | accuracy | macro-F1 | batched sentences/s | latency p50 ms | "
             "latency p95 ms | file MB |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        table.append(f"| {r['variant']} | {r['accuracy']:.4f} | {r['macro_f1']:.4f} | "
                     f"{r['throughput']:.0f} | {r['latency_p50_ms']:.1f} | "
                     f"{r['latency_p95_ms']:.1f} | {r['size_mb']:.1f} |")
    text = [
        "# Serving on a CPU: PyTorch vs ONNX Runtime, fp32 vs int8", "",
        f"Data: {facts['data']['source']}; the test half of the strategies benchmark's split "
        f"({facts['data']['test']} sentences). Model: {facts['model']}. Machine: "
        f"{facts['machine']}; {facts['threads']} threads for PyTorch and onnxruntime.", "",
        *table, "",
        f"Throughput: the whole test half in length-sorted batches of 32 (tokenisation "
        f"included), best of {facts['rounds']} passes. Latency: one sentence per call over "
        f"{facts['latency_sentences']} test sentences. int8 is dynamic quantisation (weights "
        "in 8 bits, activations quantised on the fly): `torch.ao.quantization.quantize_dynamic` "
        "on `nn.Linear` for PyTorch, `python -m course_lib export --quantize int8` for ONNX. "
        "Accuracy is the arg-max of the logits (no calibration offsets), as `classify` "
        "reports it. Each variant runs alone (2 s pause between them, so idle threads of "
        "the previous one stop spinning); the passes are taken in turn, variant by variant, "
        "so slow changes in other work hit them alike; the load average at each pass is in "
        "the .json.", "",
        *verdicts(rows), "", *busy_warning(rows, facts),
        "Made with:", "", "```bash", facts["command"], "```", ""]
    results.with_suffix(".md").write_text("\n".join(text))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=None,
                        help="folder with Sentences_AllAgree.txt")
    parser.add_argument("--model", type=Path, default=None,
                        help="a model/ folder from classify (default: train one)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--latency-sentences", type=int, default=200)
    parser.add_argument("--out", default="inference",
                        help="results name under benchmarks/results (default: inference)")
    parser.add_argument("--rounds", type=int, default=3,
                        help="timed passes over the test half per variant (the best counts)")
    args = parser.parse_args()
    folder = allagree_folder(args.data)
    if folder is None:
        return 0
    if os.getloadavg()[0] > BUSY_LOAD:
        print(f"note: load average {os.getloadavg()[0]:.1f}: other work shares the cores and "
              "will distort the timings", flush=True)
    import numpy as np
    import torch

    from course_lib.data.tables import read_table

    torch.set_num_threads(args.threads)
    work = Path(tempfile.mkdtemp(prefix="course-inference-bench-"))
    try:
        split = split_fpb(folder / data.FPB_FILES["allagree"], work)
        model_dir = args.model or train_model(work)
        test = read_table(work / "test.csv")
        found = predictors(model_dir, work, args.threads)
        names = found["PyTorch fp32"][0].labels
        texts = [r["sentence"] for r in test]
        labels = [names.index(r["label"]) for r in test]
        rng = np.random.default_rng(42)
        latency_texts = [texts[i] for i in rng.choice(len(texts), min(args.latency_sentences,
                                                                       len(texts)), replace=False)]
        print(f"measuring (best of {args.rounds} passes per variant) ...", flush=True)
        rows = measure(found, texts, labels, latency_texts, args.rounds)
        for row in rows:
            print(f"  {row['variant']:<13} accuracy {row['accuracy']:.4f}  "
                  f"{row['throughput']:.0f} sentences/s  p50 {row['latency_p50_ms']:.1f} ms  "
                  f"{row['size_mb']:.1f} MB", flush=True)
        command = "python benchmarks/inference.py" + (
            f" --threads {args.threads}" if args.threads != 2 else "") + (
            " --model MODEL_DIR" if args.model else "") + (
            f" --out {args.out}" if args.out != "inference" else "")
        shared = settings.shared_datasets_dir()  # results travel: no machine paths in them
        if shared:
            split = {**split, "source": split["source"].replace(str(shared.resolve()) + "/",
                                                                "../shared/datasets/")}
        facts = {"data": split, "model": describe_model(model_dir),
                 "machine": f"{os.cpu_count()} CPU cores ({platform.machine()})",
                 "threads": args.threads, "latency_sentences": len(latency_texts),
                 "rounds": args.rounds,
                 "command": command, "date": time.strftime("%Y-%m-%d"),
                 "versions": json.loads((found["ONNX fp32"][0].folder / "export.json")
                                        .read_text())["versions"]}
        write_results(rows, facts, args.out)
        print("\n".join(verdicts(rows)))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
