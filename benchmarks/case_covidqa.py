"""COVID-QA through the command line: train on some articles, answer questions on unseen ones.

    python benchmarks/case_covidqa.py                  # one split by article (80/20, seed 42)
    python benchmarks/case_covidqa.py --folds 5        # 5-fold cross-validation by article
    python benchmarks/case_covidqa.py --articles 12    # a quick look on 12 articles (not saved
                                                       # to benchmarks/results)

The shared half of COVID-QA (49 articles, 820 questions) is split *by article*: every
question about an article is on the same side, so the test questions are about text
the model never read (a split by question would let it memorise an article's facts).
The split is a seeded shuffle of the articles' ids; with ``--folds K`` each article is
in exactly one test fold. Each run is ``python -m course_lib qa`` with its defaults:
it sees articles of ~5,000 tokens and picks its long-context recipe (and says so),
offsets that the release shifted by a character or two are repaired by its loader.

Reported per run: exact match and F1 on the held-out articles, training and
evaluation seconds, the whole command's wall time, the share of test questions whose
answer was among the retrieved windows; and, on the same test articles, the
no-learning baseline (the sentence sharing most words with the question).
``--compare-reading`` also scores the saved model reading *every* window of each
test question against reading the retrieved ones (:func:`course_lib.qa.compare_retrieval`):
what retrieval costs in F1 and saves in time; and reading only the windows that hold the
answers (a perfect retriever, a diagnosis): whether the reader or the retriever limits F1.

Anchor: deepset's roberta-base-squad2-covid (125M parameters, SQuAD 2.0 before
COVID-QA), 5-fold by article on the whole release: EM 17.9, F1 49.9.

Skips (exit 0) without ``../shared/datasets/covid_qa`` (or ``--data-dir``). Writes
``benchmarks/results/case_covidqa.{json,md}`` after every run (a run measured again
replaces its row); finished runs are reused from ``--work-dir`` unless ``--fresh``.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
from case_finance_fpb import machine  # noqa: E402

FILE = "covid_qa/covid_qa_part_a.json"
PUBLISHED = {"system": "deepset roberta-base-squad2-covid (5-fold by article, whole release)",
             "exact_match": 17.9, "f1": 49.9}
TARGET_F1, BUDGET_SECONDS = 35.0, 20 * 60
VALIDATION = "validation (80/20 of the 80/20 split's training articles)"


# ------------------------------------------------------------------ splits
def article_id(article: dict) -> str:
    """An article's id: its paragraphs' ``document_id`` (COVID-QA), else its title."""
    for paragraph in article.get("paragraphs", []):
        if "document_id" in paragraph:
            return str(paragraph["document_id"])
    return str(article.get("title"))


def article_folds(articles: list[dict], folds: int, seed: int, test_share: float
                  ) -> list[tuple[list[dict], list[dict]]]:
    """``(train, test)`` article lists: one split of ``test_share``, or ``folds`` folds.

    The articles' ids are shuffled with ``seed``; with folds, fold k tests every
    ``folds``-th article of the shuffled order from k on, so each article is tested
    exactly once. No article is ever on both sides (checked).
    """
    ids = sorted({article_id(a) for a in articles})
    random.Random(seed).shuffle(ids)
    if folds > 1:
        tests = [set(ids[k::folds]) for k in range(folds)]
    else:
        tests = [set(ids[:max(1, round(len(ids) * test_share))])]
    out = []
    for test in tests:
        train = [a for a in articles if article_id(a) not in test]
        held = [a for a in articles if article_id(a) in test]
        assert not {article_id(a) for a in train} & {article_id(a) for a in held}
        out.append((train, held))
    return out


def options_slug(extra: list[str]) -> str:
    """A folder suffix for the options passed to ``qa``: a run with other settings never
    reuses the defaults' finished run."""
    return "".join("-" + re.sub(r"[^A-Za-z0-9.]+", "", part) for part in extra)


def write_squad(path: Path, articles: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"version": "v2.0", "data": articles}))
    return path


def count_questions(articles: list[dict]) -> int:
    return sum(len(p.get("qas", [])) for a in articles for p in a.get("paragraphs", []))


# ------------------------------------------------------------------ runs
def run_qa(train: Path, test: Path, out: Path, extra: list[str], fresh: bool) -> dict:
    """``python -m course_lib qa`` with the command's defaults; reuses a finished run."""
    metrics_path = out / "metrics.json"
    if metrics_path.is_file() and not fresh:
        print(f"  reusing {metrics_path}", flush=True)
        return json.loads(metrics_path.read_text())
    if fresh and out.exists():
        import shutil

        shutil.rmtree(out)
    command = [sys.executable, "-m", "course_lib", "qa", "--train", str(train), "--eval",
               str(test), "--output-dir", str(out), *extra]
    print("  $ " + " ".join(["python", *command[1:]]), flush=True)
    env = {**os.environ, "COURSE_PROGRESS": "0",
           "COURSE_PROFILE": os.environ.get("COURSE_PROFILE", "quick")}
    started = time.perf_counter()
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"command failed ({done.returncode}): {done.stderr.strip()[-800:]}")
    recipe = [line for line in done.stdout.splitlines() if line.startswith("recipe:")]
    metrics = json.loads(metrics_path.read_text())
    metrics.update(wall_seconds=round(wall, 1), recipe_line=recipe[0] if recipe else None)
    metrics_path.write_text(json.dumps(metrics, indent=2) + "\n")
    print(f"  {metrics['recipe_line']}\n  EM {metrics['exact_match']:.1f}  F1 "
          f"{metrics['f1']:.1f}  train {metrics['train_seconds']:.0f} s  eval "
          f"{metrics['eval_seconds']:.0f} s  wall {wall:.0f} s", flush=True)
    return metrics


def overlap_baseline(test: Path) -> dict:
    """EM/F1 of the best-overlap sentence on the test articles (no learning)."""
    from course_lib import data, qa
    from course_lib.metrics import squad_scores

    records, _ = data.parse_squad(test)
    return squad_scores(qa.overlap_baseline(records), qa.gold_answers(records))


def compare_reading(model_dir: Path, test: Path, metrics: dict) -> dict:
    """The saved reader on every window vs on the retrieved top k, same test questions."""
    from transformers import AutoModelForQuestionAnswering, AutoTokenizer

    from course_lib import data, qa, settings

    settings.quiet_libraries()
    records, _ = data.parse_squad(test)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForQuestionAnswering.from_pretrained(model_dir, use_safetensors=True)
    features = qa.prepare_features(records, tokenizer, metrics["max_length"],
                                   metrics["doc_stride"], labels=False)
    retriever_tokenizer, encoder = qa.load_retriever()
    top_k = metrics["top_k"] or qa.TOP_K
    result = qa.compare_retrieval(model, features, encoder, retriever_tokenizer, top_k=top_k,
                                  max_answer_length=metrics["max_answer_tokens"],
                                  answer_windows_row=True)
    every, top, gold = result["every_window"], result[f"top_{top_k}"], result["answer_windows"]
    print(f"  every window: F1 {every['f1']:.1f} in {every['seconds']:.0f} s ({every['windows']} "
          f"windows); top {top_k}: F1 {top['f1']:.1f} in {top['seconds']:.0f} s "
          f"({top['windows']} windows, recall {top['recall']:.2f}); only the windows holding "
          f"the answer: F1 {gold['f1']:.1f}", flush=True)
    return {"top_k": top_k, **{f"every_{k}": round(v, 2) for k, v in every.items()},
            **{f"top_{k}": round(v, 2) for k, v in top.items()},
            **{f"gold_{k}": round(v, 2) for k, v in gold.items()}}


# ------------------------------------------------------------------ main
def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=None,
                        help="folder with covid_qa/ (default: ../shared/datasets)")
    parser.add_argument("--folds", type=int, default=1,
                        help="K-fold cross-validation by article (default: one 80/20 split)")
    parser.add_argument("--test-share", type=float, default=0.2)
    parser.add_argument("--seed", type=int, default=42,
                        help="shuffles the articles (and seeds every run)")
    parser.add_argument("--articles", type=int, default=None,
                        help="use only this many articles (a quick look; results are not "
                             "saved to benchmarks/results)")
    parser.add_argument("--compare-reading", action="store_true",
                        help="also score every window vs the retrieved ones (slow)")
    parser.add_argument("--work-dir", type=Path, default=Path("/tmp/course_bench/covidqa"))
    parser.add_argument("--fresh", action="store_true")
    parser.add_argument("--validate", action="store_true",
                        help="choose settings without the test articles: split the 80/20 "
                             "split's training articles 80/20 again, train on the first part "
                             "and score the second (the test articles are never read)")
    args, extra = parser.parse_known_args()  # anything else goes to `course_lib qa`

    root = args.data_dir or _shared()
    if root is None or not (Path(root) / FILE).is_file():
        print(f"skipped: no COVID-QA file ({FILE} under ../shared/datasets or --data-dir)")
        return 0
    articles = json.loads((Path(root) / FILE).read_text())["data"]
    if args.articles:
        chosen = sorted({article_id(a) for a in articles})
        random.Random(args.seed).shuffle(chosen)
        keep = set(chosen[:args.articles])
        articles = [a for a in articles if article_id(a) in keep]
    splits = article_folds(articles, args.folds, args.seed, args.test_share)
    size = f"{len(articles)}-articles" if args.articles else "all"
    if args.validate:  # the training side of the 80/20 split, split again
        if args.folds > 1:
            parser.error("--validate splits the single 80/20 split's training articles")
        splits = article_folds(splits[0][0], 1, args.seed, args.test_share)
        size += "-validate"
    rows = [] if args.articles else previous_runs()
    for k, (train, test) in enumerate(splits):
        name = (VALIDATION if args.validate else
                f"fold {k + 1}/{len(splits)}" if len(splits) > 1 else "80/20 split")
        print(f"{name}: train {len(train)} articles ({count_questions(train)} questions), test "
              f"{len(test)} articles ({count_questions(test)} questions)", flush=True)
        folder = args.work_dir / f"{size}-seed{args.seed}-{len(splits)}fold-{k}{options_slug(extra)}"
        train_file = write_squad(folder / "train.json", train)
        test_file = write_squad(folder / "test.json", test)
        extra_run = [*extra, "--seed", str(args.seed)] if "--seed" not in extra else extra
        metrics = run_qa(train_file, test_file, folder / "run", extra_run, args.fresh)
        row = {"split": name, "folds": len(splits), "seed": args.seed,
               "train_articles": len(train), "test_articles": len(test),
               "options": " ".join(extra),
               **{key: metrics.get(key) for key in (
                   "train_examples", "eval_examples", "exact_match", "f1", "train_seconds",
                   "eval_seconds", "wall_seconds", "train_windows", "all_train_windows",
                   "eval_windows", "eval_windows_read", "retrieval_recall",
                   "retrieval_seconds", "recipe_line", "max_length", "doc_stride",
                   "negative_share", "top_k", "epochs", "lr", "model")},
               "overlap_baseline": overlap_baseline(test_file)}
        if args.compare_reading:
            row["reading"] = compare_reading(folder / "run" / "model", test_file, metrics)
        rows = [r for r in rows if (r["split"], r["folds"], r["seed"], r["options"]) !=
                (row["split"], row["folds"], row["seed"], row["options"])]
        rows.append(row)
        if not args.articles:
            write_results(rows)
    if args.articles:
        print(f"(a quick look on {len(articles)} articles: not saved to benchmarks/results)")
        print(json.dumps(rows, indent=1))
    else:
        print(f"wrote {RESULTS / 'case_covidqa.md'}")
    return 0


def _shared():
    from course_lib import settings

    return settings.shared_datasets_dir()


def previous_runs() -> list[dict]:
    path = RESULTS / "case_covidqa.json"
    return json.loads(path.read_text()).get("runs", []) if path.is_file() else []


def write_results(rows: list[dict]) -> None:
    import numpy as np

    RESULTS.mkdir(parents=True, exist_ok=True)
    payload = {"benchmark": "case_covidqa", "machine": machine(), "published": PUBLISHED,
               "target": {"f1": TARGET_F1, "seconds": BUDGET_SECONDS}, "runs": rows}
    (RESULTS / "case_covidqa.json").write_text(json.dumps(payload, indent=2) + "\n")
    lines = ["# COVID-QA (shared half: 49 articles, 820 questions), unseen articles",
             "", "`python benchmarks/case_covidqa.py` — `python -m course_lib qa` with its "
             "defaults, trained on some articles and scored on the questions of the others "
             "(split by article, seeded); quick backbone MiniLM-L6-H384, final weights.", "",
             "| run | test articles / questions | EM | F1 | overlap baseline F1 | answer "
             "retrieved | windows read / all | train s | eval s | wall s |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        recall = "-" if r["retrieval_recall"] is None else f"{r['retrieval_recall']:.2f}"
        lines.append(
            f"| {r['split']}, seed {r['seed']}{', ' + r['options'] if r['options'] else ''} | "
            f"{r['test_articles']} / {r['eval_examples']} | {r['exact_match']:.1f} | "
            f"{r['f1']:.1f} | {r['overlap_baseline']['f1']:.1f} | {recall} | "
            f"{r['eval_windows_read']} / {r['eval_windows']} | {r['train_seconds']:.0f} | "
            f"{r['eval_seconds']:.0f} | {r['wall_seconds']:.0f} |")
    for (folds, seed, options) in sorted({(r["folds"], r["seed"], r["options"]) for r in rows}):
        mine = [r for r in rows if (r["folds"], r["seed"], r["options"]) == (folds, seed, options)]
        if folds > 1 and len(mine) == folds:
            em, f1 = (np.array([r[k] for r in mine]) for k in ("exact_match", "f1"))
            lines.append(f"| {folds}-fold mean ± sd, seed {seed} | all | {em.mean():.1f} ± "
                         f"{em.std(ddof=1):.1f} | {f1.mean():.1f} ± {f1.std(ddof=1):.1f} | | | | "
                         "| | |")
    lines.append(f"| {PUBLISHED['system']} | 98 articles | {PUBLISHED['exact_match']} | "
                 f"{PUBLISHED['f1']} | | | | | | |")
    lines += ["", f"Machine: {machine()}. Target: F1 >= {TARGET_F1:g} on unseen articles with "
              f"training and evaluation inside {BUDGET_SECONDS // 60} minutes (wall s is the "
              "whole command: loading, tokenising, training, retrieval, reading, saving)."]
    for r in [r for r in rows if not r["options"] and r["split"] != VALIDATION]:  # defaults
        base = r["overlap_baseline"]["f1"]
        lines.append(
            f"Against the targets ({r['split']}, seed {r['seed']}): F1 {r['f1']:.1f} "
            f"{'meets' if r['f1'] >= TARGET_F1 else 'misses'} {TARGET_F1:g}; "
            f"{r['wall_seconds'] / 60:.1f} min is "
            f"{'inside' if r['wall_seconds'] <= BUDGET_SECONDS else 'over'} the "
            f"{BUDGET_SECONDS // 60}. The trained reader scores "
            + (f"above the no-learning baseline (F1 {base:.1f})." if r["f1"] > base else
               f"below the no-learning baseline (the sentence sharing most words with the "
               f"question, F1 {base:.1f}): trained on {r['train_examples']} questions and no "
               "QA data before them, it has not learned to find the answer span; the anchor's "
               "reader had read SQuAD 2.0 (130,000 questions) first."))
    for r in [r for r in rows if r["options"]]:  # a setting changed by hand: a probe
        default = [d for d in rows if not d["options"] and (d["split"], d["folds"], d["seed"])
                   == (r["split"], r["folds"], r["seed"])]
        lines.append(
            f"With `{r['options']}` ({r['split']}, seed {r['seed']}): F1 {r['f1']:.1f}"
            + ("." if not default else
               f" against the defaults' {default[0]['f1']:.1f} on the same validation articles "
               "(the test articles unread): a fair comparison, but one run of each; "
               "choose only once repeated runs (--seed) show the gap is larger than their spread."
               if r["split"] == VALIDATION else
               f" against the defaults' {default[0]['f1']:.1f} on the same test articles: one "
               "run each, a probe of the setting, not a choice (choosing on these articles "
               "would make them a validation set)."))
    recipes = sorted({r["recipe_line"] for r in rows if r.get("recipe_line")})
    lines += [f"The command's choice: `{line}`." for line in recipes]
    compared = [r for r in rows if r.get("reading")]
    for r in compared:
        c = r["reading"]
        lines.append(f"Reading every window instead ({r['split']}): F1 {c['every_f1']:.1f} in "
                     f"{c['every_seconds']:.0f} s over {c['every_windows']} windows; the top "
                     f"{c['top_k']}: F1 {c['top_f1']:.1f} in {c['top_seconds']:.0f} s over "
                     f"{c['top_windows']} windows (retrieval {c['top_retrieval_seconds']:.0f} s "
                     "of it).")
        if "gold_f1" in c:
            lines.append(
                f"Reading only the {c['gold_windows']} windows that hold the answers (a perfect "
                f"retriever; a diagnosis, it reads the gold answers): F1 {c['gold_f1']:.1f}. "
                + ("Perfect retrieval would not lift this reader to the target: the reader, "
                   "not the retriever, limits F1." if c["gold_f1"] < TARGET_F1 else
                   "Better retrieval alone could reach the target with this reader."))
    (RESULTS / "case_covidqa.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    raise SystemExit(main())
