"""Training throughput: course_lib's Trainer next to a plain loop and transformers.Trainer.

    python benchmarks/trainer_throughput.py                  # finance sample (+ FPB 50% if present)
    python benchmarks/trainer_throughput.py --repeats 3 --datasets finance
    python benchmarks/trainer_throughput.py --profile        # where one epoch's time goes
    python benchmarks/trainer_throughput.py --datasets finance --configs hf_default course_lib \
        --repeats 2 --steps 10                                # a quick before/after check

Every configuration trains the same model (quick backbone, same seed), on the same
data, with the same hyperparameters (AdamW lr 2e-4, weight decay 0.01, linear schedule
with 10% warmup, batch 32, clipping at 1.0) for the same number of optimizer steps,
then predicts the same test split. Each run is a fresh subprocess (its own peak memory,
no warm caches shared between configurations); configurations are interleaved and
repeated, and the table reports the median and the spread (min-max) of each figure.
Ratios are taken between runs of the same invocation, because shared machines are noisy.

Configurations:
- ``plain``: a hand-written PyTorch loop, random batches, dynamic padding;
- ``hf_default``: ``transformers.Trainer`` at its defaults (random batches, dynamic padding);
- ``hf_best``: ``transformers.Trainer`` with ``train_sampling_strategy="group_by_length"``
  (transformers 5's name for the old ``group_by_length=True``);
- ``course_lib``: ``course_lib.training.Trainer`` at its defaults.

Writes benchmarks/results/trainer_throughput.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
CONFIGS = ["plain", "hf_default", "hf_best", "course_lib"]
LR, BATCH, WARMUP, WD, MAX_LENGTH, SEED = 2e-4, 32, 0.1, 0.01, 128, 42


def load_split(name: str):
    from course_lib import data, settings

    if name == "finance":
        return data.load_dataset("finance", verbose=False)
    shared = settings.shared_datasets_dir()
    if shared is None:
        return None
    return data.load_dataset("finance", data_dir=shared, agreement="50", verbose=False)


class CountingCollator:
    """Wraps a collator to count real and padded token positions."""

    def __init__(self, collate):
        self.collate = collate
        self.real = self.padded = 0

    def __call__(self, examples):
        batch = self.collate(examples)
        self.real += int(batch["attention_mask"].sum())
        self.padded += batch["attention_mask"].numel()
        return batch


def worker(config: str, dataset: str, steps: int | None, epochs: float, bf16: bool,
           batch_size: int) -> dict:
    import torch

    from course_lib import backbones, data, metrics, settings
    from course_lib.training import Trainer, TrainingConfig

    dsd = load_split(dataset)
    tokenizer = backbones.load_tokenizer()
    tokenized = data.tokenize(dsd, tokenizer, max_length=MAX_LENGTH)
    train = tokenized["train"].remove_columns([c for c in tokenized["train"].column_names
                                               if c not in ("input_ids", "attention_mask",
                                                            "token_type_ids", "labels")])
    test = tokenized["test"]
    names = data.label_names(dsd)
    steps_per_epoch = -(-len(train) // batch_size)
    total_steps = steps or int(steps_per_epoch * epochs)
    model = backbones.load_model("classification", labels=names, seed=SEED)
    device = settings.get_device()
    started = time.perf_counter()
    if config == "plain":
        from transformers import DataCollatorWithPadding, get_scheduler

        model.to(device).train()
        collate = CountingCollator(DataCollatorWithPadding(tokenizer))
        loader = torch.utils.data.DataLoader(train, batch_size=batch_size, shuffle=True,
                                             collate_fn=collate,
                                             generator=torch.Generator().manual_seed(SEED))
        from course_lib.training import default_param_groups

        optimizer = torch.optim.AdamW(default_param_groups(model, WD), lr=LR)
        scheduler = get_scheduler("linear", optimizer, int(WARMUP * total_steps), total_steps)
        step = 0
        while step < total_steps:
            for batch in loader:
                batch = {k: v.to(device) for k, v in batch.items()}
                with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
                    loss = model(**batch).loss
                loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad(set_to_none=True)
                step += 1
                if step >= total_steps:
                    break
        real, padded = collate.real, collate.padded
    elif config.startswith("hf"):
        from transformers import DataCollatorWithPadding, TrainingArguments
        from transformers import Trainer as HFTrainer

        collate = CountingCollator(DataCollatorWithPadding(tokenizer))
        args = TrainingArguments(
            output_dir=str(ROOT / "build" / "hf_bench"), per_device_train_batch_size=batch_size,
            learning_rate=LR, weight_decay=WD, warmup_steps=int(WARMUP * total_steps),
            lr_scheduler_type="linear", max_steps=total_steps, max_grad_norm=1.0,
            seed=SEED, data_seed=SEED, report_to="none", save_strategy="no",
            eval_strategy="no", logging_steps=10, disable_tqdm=True, bf16=bf16,
            train_sampling_strategy="group_by_length" if config == "hf_best" else "random",
            use_cpu=device.type == "cpu")
        trainer = HFTrainer(model=model, args=args, train_dataset=train, data_collator=collate,
                            processing_class=tokenizer)
        trainer.train()
        model = trainer.model
        real, padded = collate.real, collate.padded
    else:
        trainer = Trainer(model, TrainingConfig(
            learning_rate=LR, batch_size=batch_size, weight_decay=WD, warmup_ratio=WARMUP,
            max_steps=total_steps, eval_every=None, seed=SEED, verbose=False, progress=False,
            mixed_precision="bf16" if bf16 else "auto"),
            train_dataset=train, tokenizer=tokenizer)
        counting = CountingCollator(trainer.collate)
        trainer.collate = counting
        trainer.train()
        model = trainer.unwrapped_model
        real, padded = counting.real, counting.padded
    if device.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - started
    # the same evaluation for everyone: course_lib's predict (sorted, batched, inference mode)
    model.eval()
    evaluator = Trainer(model, TrainingConfig(eval_batch_size=128, verbose=False),
                        tokenizer=tokenizer)
    preds = evaluator.predict(test)
    scores = metrics.classification_scores(preds.label_ids, preds.predictions, names)
    examples = total_steps * batch_size
    peak = (torch.cuda.max_memory_allocated() / 2**20 if device.type == "cuda"
            else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    return {"config": config, "dataset": dataset, "steps": total_steps, "seconds": seconds,
            "examples_per_s": examples / seconds, "tokens_per_s": real / seconds,
            "padding_waste": 1 - real / padded, "peak_memory_mb": peak,
            "accuracy": scores["accuracy"], "macro_f1": scores["macro_f1"],
            "device": str(device)}


def profile_epoch(dataset: str) -> dict:
    """Time each phase of one epoch of course_lib's training step, measured by hand."""
    import torch

    from course_lib import backbones, data
    from course_lib.training import (
        BatchPlan,
        PadCollator,
        default_param_groups,
        make_optimizer,
        sequence_lengths,
        to_tensors,
    )

    dsd = load_split(dataset)
    tokenizer = backbones.load_tokenizer()
    timings = dict.fromkeys(["tokenise (once)", "to tensors (once)", "collate", "forward",
                             "backward", "clip + optimizer"], 0.0)
    t = time.perf_counter()
    tokenized = data.tokenize(dsd["train"], tokenizer, max_length=MAX_LENGTH)
    timings["tokenise (once)"] = time.perf_counter() - t
    t = time.perf_counter()
    examples = to_tensors(tokenized, keep={"input_ids", "attention_mask", "token_type_ids",
                                           "labels"})
    timings["to tensors (once)"] = time.perf_counter() - t
    model = backbones.load_model("classification", labels=data.label_names(dsd)).train()
    optimizer = make_optimizer(default_param_groups(model, WD), LR, torch.device("cpu"))
    collate = PadCollator(tokenizer.pad_token_id)
    for batch_ids in BatchPlan(sequence_lengths(examples), BATCH, seed=SEED).batches(0):
        t = time.perf_counter()
        batch = collate([examples[i] for i in batch_ids])
        timings["collate"] += time.perf_counter() - t
        t = time.perf_counter()
        loss = model(**batch).loss
        timings["forward"] += time.perf_counter() - t
        t = time.perf_counter()
        loss.backward()
        timings["backward"] += time.perf_counter() - t
        t = time.perf_counter()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        timings["clip + optimizer"] += time.perf_counter() - t
    total = sum(timings.values())
    return {k: {"seconds": round(v, 3), "share": round(v / total, 4)} for k, v in timings.items()}


def run_worker_subprocess(config: str, dataset: str, args) -> dict:
    cmd = [sys.executable, __file__, "--worker", config, "--dataset-name", dataset,
           "--epochs", str(args.epochs), "--batch-size", str(args.batch_size)]
    if args.steps:
        cmd += ["--steps", str(args.steps)]
    if args.bf16:
        cmd.append("--bf16")
    env = {**os.environ, "COURSE_PROGRESS": "0", "TOKENIZERS_PARALLELISM": "false"}
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"{config} on {dataset} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def summarise(runs: list[dict]) -> list[dict]:
    rows = []
    for dataset in dict.fromkeys(r["dataset"] for r in runs):
        by_config = {c: [r for r in runs if r["dataset"] == dataset and r["config"] == c]
                     for c in CONFIGS}
        medians = {c: statistics.median(r["examples_per_s"] for r in rs)
                   for c, rs in by_config.items() if rs}

        for config, rs in by_config.items():
            if not rs:
                continue
            speeds = [r["examples_per_s"] for r in rs]
            rows.append({
                "dataset": dataset, "config": config, "runs": len(rs), "steps": rs[0]["steps"],
                "examples_per_s": statistics.median(speeds),
                "spread": f"{min(speeds):.1f}-{max(speeds):.1f}",
                "tokens_per_s": statistics.median(r["tokens_per_s"] for r in rs),
                "padding_waste": statistics.median(r["padding_waste"] for r in rs),
                "peak_memory_mb": statistics.median(r["peak_memory_mb"] for r in rs),
                "accuracy": statistics.median(r["accuracy"] for r in rs),
                "macro_f1": statistics.median(r["macro_f1"] for r in rs),
                "vs_hf_default": _versus(medians, config, "hf_default"),
                "vs_hf_best": _versus(medians, config, "hf_best"),
                "vs_plain": _versus(medians, config, "plain"),
                "device": rs[0]["device"]})
    return rows


def markdown(rows: list[dict], command: str, profile: dict | None) -> str:
    lines = [f"Command: `{command}` ({os.cpu_count()} CPU cores; median of the runs, "
             "spread = min-max examples/s)", "",
             "| data | trainer | steps | examples/s (spread) | real tokens/s | padding waste | "
             "peak memory | test acc | macro-F1 | vs HF default | vs HF best |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(
            f"| {r['dataset']} | {r['config']} | {r['steps']} | {r['examples_per_s']:.1f} "
            f"({r['spread']}) | {r['tokens_per_s']:.0f} | {r['padding_waste']:.1%} | "
            f"{r['peak_memory_mb']:.0f} MB | {r['accuracy']:.3f} | {r['macro_f1']:.3f} | "
            f"{_ratio(r['vs_hf_default'])} | {_ratio(r['vs_hf_best'])} |")
    if profile:
        lines += ["", "Where one epoch of course_lib's training goes (finance sample, batch 32):",
                  "", "| phase | seconds | share |", "|---|---|---|"]
        lines += [f"| {k} | {v['seconds']:.2f} | {v['share']:.1%} |" for k, v in profile.items()]
    return "\n".join(lines) + "\n"


def _versus(medians: dict, config: str, other: str) -> float | None:
    """Speed relative to ``other`` (None when that trainer was not run)."""
    return medians[config] / medians[other] if other in medians else None


def _ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}x"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", default=["finance", "fpb50"])
    parser.add_argument("--configs", nargs="+", choices=CONFIGS, default=CONFIGS,
                        help="trainers to compare (default: all)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--epochs", type=float, default=3.0)
    parser.add_argument("--steps", type=int, default=None, help="fixed steps (else epochs)")
    parser.add_argument("--batch-size", type=int, default=BATCH)
    parser.add_argument("--bf16", action="store_true", help="bf16 autocast (GPU)")
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--out", default="trainer_throughput")
    parser.add_argument("--worker", choices=CONFIGS)
    parser.add_argument("--dataset-name", default="finance")
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker, args.dataset_name, args.steps, args.epochs,
                                args.bf16, args.batch_size)))
        return 0
    from course_lib import settings

    datasets = [d for d in args.datasets if d == "finance" or settings.shared_datasets_dir()]
    runs = []
    for dataset in datasets:
        for repeat in range(args.repeats):
            order = args.configs if repeat % 2 == 0 else args.configs[::-1]  # interleave
            for config in order:
                result = run_worker_subprocess(config, dataset, args)
                print(f"{dataset} {config} run {repeat + 1}: {result['examples_per_s']:.1f} ex/s, "
                      f"waste {result['padding_waste']:.1%}, acc {result['accuracy']:.3f}",
                      flush=True)
                runs.append(result)
    profile = profile_epoch("finance") if args.profile else None
    rows = summarise(runs)
    command = "python benchmarks/trainer_throughput.py " + " ".join(sys.argv[1:])
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{args.out}.json").write_text(json.dumps(
        {"command": command, "runs": runs, "summary": rows, "profile": profile}, indent=2))
    table = markdown(rows, command.strip(), profile)
    (RESULTS / f"{args.out}.md").write_text(table)
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
