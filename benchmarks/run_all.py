"""`make bench`: run every benchmark, then copy their tables into the README.

Each benchmark script writes benchmarks/results/<name>.md (a table headed by the
command that produced it) and <name>.json (every run). Scripts that need the real
datasets in ../shared/datasets skip themselves when the folder is absent.
Pass names to run a subset:  python benchmarks/run_all.py trainer_throughput
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
# (script, title in the README, extra arguments)
BENCHMARKS = [
    # finance sample: the full 3-epoch schedule, so the test accuracies can be compared too;
    # FPB 50%-agree (longer, more varied sentences): 40 optimizer steps, speed only.
    ("trainer_throughput", "Training speed: course_lib vs a plain loop vs transformers.Trainer",
     ["--datasets", "finance", "--repeats", "3", "--profile"]),
    ("trainer_throughput", "Training speed: course_lib vs a plain loop vs transformers.Trainer",
     ["--datasets", "fpb50", "--steps", "40", "--repeats", "2",
      "--out", "trainer_throughput_fpb50"]),
    ("quick_recipe_finance", "The quick recipe on the course's finance sample, over seeds", []),
    ("full_recipe_fpb", "Choosing the full fine-tuning recipe (validation split only)", []),
    ("strategies_fpb", "Fine-tuning strategies on Financial PhraseBank (all-agree)", []),
    ("case_finance_fpb", "Case study: finance, FPB all-agree and 50%-agree", []),
    ("case_pubmedqa", "Case study: PubMedQA (reasoning-required, official test split)", []),
    ("case_medical", "Case study: Medical Abstracts, 5-fold cross-validation", []),
    ("case_covidqa", "Case study: COVID-QA, unseen articles", []),
    # notebook 06's recipe only (choosing among 3 recipes on validation: --candidates unset,
    # about an hour more on 2 cores)
    ("pretraining", "Domain- and task-adaptive pretraining, then fine-tuning",
     ["--candidates", "3@1e-4"]),
    ("inference", "Serving on a CPU: PyTorch vs ONNX, fp32 vs int8", []),
]


def update_readme() -> None:
    sections, seen = [], set()
    for name, title, _ in BENCHMARKS:
        if name in seen:
            continue
        seen.add(name)
        for table in sorted(RESULTS.glob(f"{name}*.md")):
            sections.append(f"### {title}" + (f" ({table.stem})" if table.stem != name else "")
                            + "\n\n" + table.read_text().strip() + "\n")
    readme = ROOT / "README.md"
    text = readme.read_text()
    start, end = "<!-- benchmarks:start -->", "<!-- benchmarks:end -->"
    head, rest = text.split(start, 1)
    _, tail = rest.split(end, 1)
    body = "\n".join(sections) if sections else "(no results yet: run `make bench`)\n"
    readme.write_text(head + start + "\n" + body + end + tail)


def main(names: list[str]) -> int:
    failed = []
    for name, _, extra in BENCHMARKS:
        if names and name not in names:
            continue
        script = ROOT / "benchmarks" / f"{name}.py"
        if not script.is_file():
            print(f"skipping {name}: {script} not found")
            continue
        print(f"=== {name}", flush=True)
        if subprocess.run([sys.executable, str(script), *extra]).returncode != 0:
            failed.append(name)
    update_readme()
    if failed:
        print("failed:", ", ".join(failed))
    return 1 if failed else 0


if __name__ == "__main__":
    if sys.argv[1:] == ["--readme-only"]:
        update_readme()
        sys.exit(0)
    sys.exit(main(sys.argv[1:]))
