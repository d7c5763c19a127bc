"""Student copies (tools/make_student_copies.py).

- every notebook's exercises have solutions (cells tagged ``solution``);
- the student copies contain none of them, only stubs that run;
- a student copy runs top to bottom up to and including its first exercise stub
  (executed for the quick notebooks 00 and 01 by default, about a minute; set
  COURSE_TEST_ALL_STUDENT_COPIES=1 to execute every notebook's copy).

The notebook checker and the Colab tool are tested in tests/test_notebook_checker.py.
"""

from __future__ import annotations

import os
from pathlib import Path

import nbformat
import pytest
from conftest import load_tool

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
QUICK = {"00_setup_check.ipynb", "01_bert_basics.ipynb"}




students = load_tool("make_student_copies")


def _ids(paths):
    return [p.name for p in paths]


def _solution_lines(nb) -> set[str]:
    """Lines of solution code long enough to be recognisable (not `)` or `else:`)."""
    lines = set()
    for cell in nb.cells:
        if "solution" in students.tags(cell):
            lines |= {line.strip() for line in cell.source.splitlines()
                      if len(line.strip()) > 15 and not line.strip().startswith("# Hint:")}
    return lines


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids(NOTEBOOKS))
def test_every_exercise_has_a_solution(path):
    nb = nbformat.read(path, as_version=4)
    found = students.exercises(nb)
    assert found, f"{path.name}: no numbered exercises under '## Exercises'"
    for markdown_index, solutions in found:
        assert solutions, f"{path.name}: exercise in cell {markdown_index} has no solution cell"


def test_make_student_writes_every_copy(tmp_path):
    quick = [p for p in NOTEBOOKS if p.name in QUICK]
    assert students.main(["--out", str(tmp_path), *map(str, quick)]) == 0
    assert sorted(p.name for p in tmp_path.glob("*.ipynb")) == sorted(p.name for p in quick)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids(NOTEBOOKS))
def test_student_copy_contains_no_solution(path):
    original = nbformat.read(path, as_version=4)
    copy = students.student_copy(original, path.name)
    solutions = [c for c in original.cells if "solution" in students.tags(c)]
    stubs = [c for c in copy.cells if "exercise" in students.tags(c)]
    assert not [c for c in copy.cells if "solution" in students.tags(c)]
    assert len(stubs) == len(solutions) > 0
    code = "\n".join(c.source for c in copy.cells if c.cell_type == "code")
    shared = "\n".join(c.source for c in original.cells  # lines the lessons also use
                       if c.cell_type == "code" and "solution" not in students.tags(c))
    leaked = [line for line in _solution_lines(original) if line in code and line not in shared]
    assert not leaked, f"solution code left in the student copy: {leaked[:3]}"
    for cell in stubs:
        assert cell.source.rstrip().endswith("...") and "# Hint:" in cell.source
        assert cell.outputs == [] and cell.execution_count is None
        compile(cell.source, path.name, "exec")
    assert not [c for c in copy.cells if "colab-badge" in students.tags(c)]  # links to solutions
    non_solution = [c.source for c in original.cells
                    if "solution" not in students.tags(c) and "colab-badge" not in students.tags(c)]
    assert [c.source for c in copy.cells if "exercise" not in students.tags(c)] == non_solution


def _run_until_first_exercise(path: Path, workdir: Path):
    from nbclient import NotebookClient

    nb = students.student_copy(nbformat.read(path, as_version=4), path.name)
    first = next(i for i, c in enumerate(nb.cells) if "exercise" in students.tags(c))
    nb.cells = nb.cells[: first + 1]
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    NotebookClient(nb, timeout=400, kernel_name="python3",
                   resources={"metadata": {"path": str(workdir)}}).execute()
    return nb


RUN_ALL = os.environ.get("COURSE_TEST_ALL_STUDENT_COPIES") == "1"
RUNNABLE = [p for p in NOTEBOOKS if RUN_ALL or p.name in QUICK]


@pytest.mark.slow
@pytest.mark.parametrize("path", RUNNABLE, ids=_ids(RUNNABLE))
def test_student_copy_runs_up_to_its_first_exercise(path, tmp_path):
    nb = _run_until_first_exercise(path, tmp_path)
    stub = nb.cells[-1]
    assert "exercise" in students.tags(stub) and stub.execution_count is not None
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs
              if o.output_type == "error"]
    assert not errors


def test_stub_keeps_the_authors_hint_and_names_called_functions():
    own = students.stub("# Hint: use tokenizer.tokenize on each word.\nx = tokenizer.tokenize('a')")
    assert "# Hint: use tokenizer.tokenize on each word." in own and "x =" not in own
    auto = students.stub("f = lambda a: a\nscore = np.mean([f(1), len('ab')])\nprint(score)")
    assert "np.mean()" in auto and "f()" not in auto and "print" not in auto
    assert students.stub("%timeit 1 + 1").endswith("...")  # magics: a generic hint


def test_exercise_without_solution_is_an_error():
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("## Exercises\n\n1. Do something."),
                nbformat.v4.new_code_cell("print(1)"),
                nbformat.v4.new_markdown_cell("## References")]
    with pytest.raises(students.ExerciseError, match="no cell tagged 'solution'"):
        students.student_copy(nb)
