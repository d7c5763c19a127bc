"""Check that notebooks are clean and follow the course skeleton (``make lint``).

    python tools/check_notebooks.py notebooks/*.ipynb

Fails (exit status 1, one line per problem) on:

- stray metadata: execution timestamps, ``collapsed``/``scrolled`` flags, widget
  state saved into the notebook, unknown cell tags; these change on every run and
  make diffs unreadable (nbdev's rule: only what the author wrote is committed);
- stored outputs that are not from one top-to-bottom run (execution counts out of
  order or missing) or that hold an error;
- a missing skeleton part (docs/DEVELOPING.md): ``# NN · Title`` matching the file
  name, What you will learn, Prerequisites, Runtime, the setup cell, numbered
  sections, Summary, Exercises, References, the Colab badge and install cell;
- exercise code without the ``solution`` tag (the student copies would keep it),
  or an Exercises section with no solution at all;
- a placeholder left by a notebook generator (``RUNTIME``, ``SOMETHING_VALUE``,
  ``..._PLACEHOLDER``), which would otherwise reach learners as text or a NameError.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import nbformat

NOTEBOOK_METADATA = {"kernelspec", "language_info"}
CELL_METADATA = {"tags"}
KNOWN_TAGS = {"solution", "colab-badge", "colab-setup", "nbval-skip", "nbval-ignore-output",
              "raises-exception"}
TITLE = re.compile(r"^# (\d\d) · \S")
SETUP_LINES = ("from course_lib import settings", "settings.setup_notebook(")
PLACEHOLDER = re.compile(r"\b(RUNTIME\w*|[A-Z][A-Z0-9]*_(VALUE|PLACEHOLDER))\b")


def source(cell) -> str:
    return cell.source if isinstance(cell.source, str) else "".join(cell.source)


def tags(cell) -> list[str]:
    return list(cell.get("metadata", {}).get("tags", []))


def check_metadata(nb) -> list[str]:
    problems = [f"notebook metadata {key!r} (only {sorted(NOTEBOOK_METADATA)} are kept)"
                for key in nb.metadata if key not in NOTEBOOK_METADATA]
    for i, cell in enumerate(nb.cells):
        for key in cell.metadata:
            if key not in CELL_METADATA:
                problems.append(f"cell {i}: stray metadata {key!r}")
        for tag in tags(cell):
            if tag not in KNOWN_TAGS:
                problems.append(f"cell {i}: unknown tag {tag!r} (known: {sorted(KNOWN_TAGS)})")
        for output in cell.get("outputs", []):
            if output.get("metadata", {}).get("execution"):
                problems.append(f"cell {i}: execution timestamps in an output")
    return problems


def check_outputs(nb) -> list[str]:
    """Stored outputs must come from one top-to-bottom run without errors."""
    problems, expected = [], 1
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "code" or not source(cell).strip():
            continue
        count = cell.get("execution_count")
        if count is None:
            problems.append(f"cell {i}: not executed (run `make execute` on this notebook)")
        elif count != expected:
            problems.append(f"cell {i}: execution count {count}, expected {expected} "
                            "(outputs are not from one top-to-bottom run)")
        expected = (count or expected) + 1
        for output in cell.get("outputs", []):
            if output.get("output_type") == "error":
                problems.append(f"cell {i}: stored error output {output.get('ename')}")
    return problems


def skeleton_cells(nb):
    """The cells that are not the Colab badge or the Colab install cell."""
    return [(i, c) for i, c in enumerate(nb.cells)
            if not {"colab-badge", "colab-setup"} & set(tags(c))]


def check_skeleton(nb, path: Path) -> list[str]:
    problems = []
    cells = skeleton_cells(nb)
    markdown = [(i, source(c)) for i, c in cells if c.cell_type == "markdown"]
    code = [(i, source(c)) for i, c in cells if c.cell_type == "code"]
    if not markdown:
        return ["no markdown cells at all"]
    first_index, header = markdown[0]
    match = TITLE.match(header)
    number = path.name[:2]
    if not match:
        problems.append(f"cell {first_index}: the first cell must start with '# {number} · Title'")
    elif match.group(1) != number:
        problems.append(f"cell {first_index}: title number {match.group(1)} does not match the "
                        f"file name {path.name}")
    for part in ("**What you will learn**", "**Prerequisites", "**Runtime"):
        if part not in header:
            problems.append(f"cell {first_index}: the header has no {part.strip('*')} line")
    if not code or not all(line in code[0][1] for line in SETUP_LINES):
        problems.append("the first code cell (after the Colab cell) must be the setup cell: "
                        "`from course_lib import settings` / `info = settings.setup_notebook(...)`")
    all_text = "\n".join(text for _, text in markdown)
    if not re.search(r"^## 1\. ", all_text, re.M):
        problems.append("no numbered section ('## 1. ...')")
    positions = {}
    for heading in ("## Summary", "## Exercises", "## References"):
        found = [i for i, text in markdown if re.search(rf"^{heading}\s*$", text, re.M)]
        if not found:
            problems.append(f"no '{heading}' section")
        else:
            positions[heading] = found[0]
    if len(positions) == 3 and not (positions["## Summary"] <= positions["## Exercises"]
                                    < positions["## References"]):
        problems.append("sections must be in the order Summary, Exercises, References")
    problems += check_colab(nb)
    if "## Exercises" in positions and "## References" in positions:
        problems += check_exercises(nb, positions["## Exercises"], positions["## References"])
    return problems


def check_colab(nb) -> list[str]:
    """Colab badge first, then the title, then the install cell (tools/add_colab_setup.py)."""
    badge = [i for i, c in enumerate(nb.cells) if "colab-badge" in tags(c)]
    setup = [i for i, c in enumerate(nb.cells) if "colab-setup" in tags(c)]
    if badge != [0] or setup != [2] or nb.cells[2].cell_type != "code":
        return ["no Colab badge (cell 0) and install cell (cell 2): run "
                "tools/add_colab_setup.py on this notebook"]
    return []


def check_exercises(nb, start: int, end: int) -> list[str]:
    """Every code cell between Exercises and References is a solution, tagged as such."""
    problems, solutions = [], 0
    for i in range(start, end):
        cell = nb.cells[i]
        if cell.cell_type != "code":
            continue
        if "solution" in tags(cell):
            solutions += 1
        else:
            problems.append(f"cell {i}: code in the Exercises section without the 'solution' tag")
    if solutions == 0:
        problems.append("the Exercises section has no solution cell (tag: solution)")
    for i, cell in enumerate(nb.cells):
        if "solution" in tags(cell) and not start < i < end:
            problems.append(f"cell {i}: a 'solution' cell outside the Exercises section")
    return problems


def check_placeholders(nb) -> list[str]:
    return [f"cell {i}: placeholder {match.group(0)!r} left in the text"
            for i, cell in enumerate(nb.cells) for match in [PLACEHOLDER.search(source(cell))]
            if match]


def check(path: Path) -> list[str]:
    try:
        nb = nbformat.read(path, as_version=4)
        nbformat.validate(nb)
    except Exception as err:  # unreadable JSON or an invalid notebook: report, keep going
        return [f"not a valid notebook: {str(err).splitlines()[0]}"]
    return (check_metadata(nb) + check_outputs(nb) + check_skeleton(nb, path)
            + check_placeholders(nb))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="+", type=Path)
    args = parser.parse_args(argv)
    failed = 0
    for path in args.notebooks:
        problems = check(path)
        failed += bool(problems)
        for problem in problems:
            print(f"{path}: {problem}")
    if failed:
        print(f"{failed} of {len(args.notebooks)} notebook(s) need fixing", file=sys.stderr)
        return 1
    print(f"{len(args.notebooks)} notebook(s) clean")
    return 0


if __name__ == "__main__":
    sys.exit(main())
