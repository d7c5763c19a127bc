"""Make student copies of the notebooks: every solution replaced by a stub with a hint.

    python tools/make_student_copies.py --out build/student [notebooks/NN_x.ipynb ...]

The instructor copies are the notebooks in ``notebooks/`` (solutions in code cells
tagged ``solution``). The student copy of each is written to ``--out`` with:

- each solution cell replaced by a stub, tagged ``exercise``: a comment, a hint and
  ``...`` (which runs, so "Run all" does not stop at the first exercise). The hint is
  the solution's own ``# Hint:`` comment lines when it has some, otherwise the
  functions the solution calls, so the learner knows where to look;
- the Colab badge removed, when a notebook has one (tools/add_colab_setup.py adds it only
  for the project's own repository; it links to the instructor copy, solutions included);
- every other cell, and its stored outputs, unchanged.

Copies are generated, never edited by hand (nbdev's rule), and never committed
(``build/`` is ignored). A notebook whose exercise has no solution cell is an error.
"""

from __future__ import annotations

import argparse
import ast
import re
import sys
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
SOLUTION_TAG, EXERCISE_TAG, BADGE_TAG = "solution", "exercise", "colab-badge"
EXERCISE_ITEM = re.compile(r"^\s*\d+\.\s", re.M)
NOT_HINTS = {"print", "len", "range", "round", "sorted", "list", "dict", "set", "tuple", "zip",
             "enumerate", "min", "max", "sum", "abs", "isinstance", "float", "int", "str",
             "any", "all", "map", "filter", "type"}
MAX_HINTS = 4


class ExerciseError(Exception):
    """A notebook whose exercises cannot be turned into a student copy."""


def tags(cell) -> list[str]:
    return list(cell.get("metadata", {}).get("tags", []))


def exercises(nb) -> list[tuple[int, list[int]]]:
    """``(markdown cell, [its solution cells])`` for each exercise in ``## Exercises``.

    An exercise is a Markdown cell of that section with a numbered item (``1. ...``);
    its solutions are the ``solution``-tagged code cells that follow it.
    """
    found, inside, current = [], False, None
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "markdown":
            if re.search(r"^## ", cell.source, re.M):
                inside = bool(re.search(r"^## Exercises\s*$", cell.source, re.M))
                if not inside:
                    current = None
                    continue
                cell_text = cell.source.split("## Exercises", 1)[1]
            else:
                cell_text = cell.source
            if inside and EXERCISE_ITEM.search(cell_text):
                current = (i, [])
                found.append(current)
        elif inside and current is not None and SOLUTION_TAG in tags(cell):
            current[1].append(i)
    return found


def _called_names(code: str) -> list[str]:
    """Dotted names of the functions a piece of code calls, in source order.

    Builtins and names the code defines itself (``cos = lambda ...``) are left out:
    the hint should point at what the notebook or a library already provides.
    """
    try:
        tree = ast.parse(code)
    except SyntaxError:
        return []
    own = {node.id for node in ast.walk(tree)
           if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store)}
    own |= {node.name for node in ast.walk(tree) if isinstance(node, ast.FunctionDef)}
    calls = sorted((n for n in ast.walk(tree) if isinstance(n, ast.Call)),
                   key=lambda n: (n.lineno, n.col_offset))
    names = []
    for node in calls:
        name = ast.unparse(node.func)
        if (name not in NOT_HINTS and "(" not in name and "[" not in name
                and name.split(".")[0] not in own and name not in names):
            names.append(name)
    return names


def stub(solution: str) -> str:
    """The code a student sees instead of ``solution``."""
    own = [line.strip() for line in solution.splitlines() if line.strip().startswith("# Hint:")]
    if not own:
        names = _called_names(solution)[:MAX_HINTS]
        own = [f"# Hint: one solution uses {', '.join(n + '()' for n in names)}." if names
               else "# Hint: reuse the functions and variables defined above in this notebook."]
    return "\n".join(["# Exercise: write your solution here, then run the cell.", *own, "..."])


def student_copy(nb, name: str = "notebook"):
    """A copy of ``nb`` with solutions replaced by stubs (``nb`` itself is not changed)."""
    nb = nbformat.from_dict(nb)  # a deep copy
    found = exercises(nb)
    if not found:
        raise ExerciseError(f"{name}: no exercises found under '## Exercises'")
    missing = [i for i, solutions in found if not solutions]
    if missing:
        raise ExerciseError(f"{name}: the exercise in cell {missing[0]} has no cell tagged "
                            f"'{SOLUTION_TAG}' after it")
    for cell in nb.cells:
        if SOLUTION_TAG in tags(cell):
            cell.source = stub(cell.source)
            cell.outputs = []
            cell.execution_count = None
            cell.metadata["tags"] = [EXERCISE_TAG if t == SOLUTION_TAG else t for t in tags(cell)]
    nb.cells = [c for c in nb.cells if BADGE_TAG not in tags(c)]
    return nb


def write_copies(paths: list[Path], out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for path in paths:
        nb = nbformat.read(path, as_version=4)
        copy = student_copy(nb, path.name)
        target = out / path.name
        nbformat.write(copy, target)
        written.append(target)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="*", type=Path,
                        help="default: every notebooks/NN_*.ipynb")
    parser.add_argument("--out", type=Path, default=ROOT / "build" / "student")
    args = parser.parse_args(argv)
    paths = args.notebooks or sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    try:
        written = write_copies(paths, args.out)
    except ExerciseError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"{len(written)} student copies written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
