"""Check that notebooks are clean, follow the course skeleton and store a clean run.

    python tools/check_notebooks.py notebooks/*.ipynb

Runs in ``make test`` (tests/test_notebook_checker.py) and ``make lint``. Prints one line
per finding, ``notebook:cell: rule: excerpt`` (cell ``-`` for the whole notebook), and
exits with status 1 when there is any. The rules:

- ``metadata``: execution timestamps, ``collapsed``/``scrolled`` flags, widget state,
  unknown cell tags. They change on every run and make diffs unreadable (nbdev's rule:
  only what the author wrote is committed).
- ``not-executed``, ``execution-order``, ``error-output``: a notebook is stored executed,
  by one top-to-bottom run, without errors (``make execute``).
- ``skeleton``, ``exercises``: the parts docs/DEVELOPING.md asks for, in order, and
  every exercise's code tagged ``solution`` (the student copies replace those cells).
- ``colab``: a Colab badge or install cell is allowed only when pyproject.toml's
  ``[project.urls] Repository`` names the repository it opens and clones
  (tools/add_colab_setup.py writes them from there); never an address the project
  does not own.
- ``placeholder``, ``template``: text a generator forgot to fill in (``RUNTIME``,
  ``ANALYSIS``, ``RESULT_TEXT``, ``TODO``) or a ``{value:.2f}`` that was never formatted.
- Stored outputs a learner reads without a kernel (GitHub, nbviewer) must hold results,
  not noise: ``machine-path`` (this machine's /work/, /home/, site-packages paths),
  ``model-repr`` (a whole ``BertModel(...)`` printout; one small module is fine), ``progress-bar`` (``it/s]``,
  ``Map:   0%``, carriage returns), ``widget-without-fallback`` (a widget shows as
  ``VBox(...)`` without a kernel, so the same cell must also show a printed table, a
  figure or HTML), ``warning`` (library warnings), and ``skipped`` (the default profile
  runs every section; a section that prints "skipped" teaches nothing).
"""

from __future__ import annotations

import argparse
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = ROOT / "pyproject.toml"
NOTEBOOK_METADATA = {"kernelspec", "language_info"}
CELL_METADATA = {"tags"}
KNOWN_TAGS = {"solution", "colab-badge", "colab-setup", "nbval-skip", "nbval-ignore-output",
              "raises-exception"}
COLAB_TAGS = {"colab-badge", "colab-setup"}
TITLE = re.compile(r"^# (\d\d) · \S")
SETUP_LINES = (r"^from course_lib\.notebook import [\w, ]*\bsetup_notebook\b",
               r"^info = setup_notebook\(")
WIDGET = "application/vnd.jupyter.widget-view+json"
STATIC = ("text/html", "text/markdown", "image/png", "image/jpeg", "image/svg+xml")

PLACEHOLDER = re.compile(r"\b(RUNTIME\w*|ANALYSIS|TODO|FIXME|TBD|XXX"
                         r"|[A-Z][A-Z0-9]*_(?:VALUE|PLACEHOLDER|TEXT|NUMBER))\b")
# {name}, {name:.2f}, {:.1%}, {x[0]!r}: a format string printed without being formatted
TEMPLATE = re.compile(r"(?<![\\\w$^_])\{(?:[A-Za-z_]\w*(?:\.\w+|\[\w*\])*(?:![rsa])?"
                      r"(?::[<>=^+\- #0-9,._%bcdeEfFgGnosxX]*)?"
                      r"|(?:![rsa])?:[<>=^+\- #0-9,._%bcdeEfFgGnosxX]+)\}")
MACHINE_PATH = re.compile(r"(?<![\w.~\-])(?:/(?:work|root|home|tmp|Users|private/var|content)/\S*"
                          r"|\S*site-packages\S*|[A-Z]:\\Users\\\S*)")
# a module printout: "BertForSequenceClassification(" then "  (bert): BertModel(". One
# layer with its adapter (a dozen lines) teaches; a whole model (hundreds) buries the cell.
MODEL_REPR = re.compile(r"^\w+\(\s*\n\s+\([\w.\-]+\): (?:\d+ x )?[A-Z]\w*\(", re.M)
MODULE_LINE = re.compile(r"^\s+\([\w.\-]+\): ", re.M)
WHOLE_MODEL_LINES = 20
PROGRESS = re.compile(r"\d+%\|| (?:it/s|s/it)\]|\b(?:Map|Filter|Tokeniz\w*)"
                      r"(?: \(num_proc=\d+\))?:\s+\d+%|\r")
WARNING = re.compile(r"\b[A-Z]\w*Warning\b|\bWarning:|\bWARNING\b|\[W\d{4}\b")
SKIPPED = re.compile(r"\bskip(?:ped|ping)\b", re.I)
CODE_SPAN = re.compile(r"```.*?```|`[^`\n]*`|\$\$.*?\$\$|\$[^$\n]*\$", re.S)


@dataclass(frozen=True)
class Finding:
    cell: int | None  # None: the notebook as a whole
    rule: str
    excerpt: str

    def __str__(self) -> str:
        return f"{'-' if self.cell is None else self.cell}: {self.rule}: {self.excerpt}"


def source(cell) -> str:
    return cell.source if isinstance(cell.source, str) else "".join(cell.source)


def tags(cell) -> list[str]:
    return list(cell.get("metadata", {}).get("tags", []))


def _excerpt(text: str, match: re.Match) -> str:
    """The line around a match, shortened, escapes shown (a stray ``\\r`` stays visible)."""
    start = text.rfind("\n", 0, match.start()) + 1
    end = text.find("\n", match.end())
    line = text[start:end if end != -1 else None].strip()
    return repr(line[:100] + ("..." if len(line) > 100 else ""))[1:-1]


def output_text(output, kinds=("text/plain", "text/markdown", "text/html")) -> str:
    """What a reader sees of one output as text (images left out)."""
    kind = output.get("output_type")
    if kind == "stream":
        text = output.get("text", "")
    elif kind == "error":
        return f"{output.get('ename')}: {output.get('evalue')}"
    else:
        data = output.get("data", {})
        text = "\n".join(data[k] if isinstance(data[k], str) else "".join(data[k])
                         for k in kinds if k in data)
    return text if isinstance(text, str) else "".join(text)


# ------------------------------------------------------------------ metadata and runs
def check_metadata(nb) -> list[Finding]:
    found = [Finding(None, "metadata", f"notebook metadata {key!r} (only "
                     f"{sorted(NOTEBOOK_METADATA)} are kept)")
             for key in nb.metadata if key not in NOTEBOOK_METADATA]
    for i, cell in enumerate(nb.cells):
        found += [Finding(i, "metadata", f"stray metadata {key!r}")
                  for key in cell.metadata if key not in CELL_METADATA]
        found += [Finding(i, "metadata", f"unknown tag {tag!r} (known: {sorted(KNOWN_TAGS)})")
                  for tag in tags(cell) if tag not in KNOWN_TAGS]
        if any(o.get("metadata", {}).get("execution") for o in cell.get("outputs", [])):
            found.append(Finding(i, "metadata", "execution timestamps in an output"))
    return found


def check_run(nb) -> list[Finding]:
    """Stored outputs must come from one top-to-bottom run without errors."""
    found, expected = [], 1
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "code" or not source(cell).strip():
            continue
        count = cell.get("execution_count")
        if count is None:
            found.append(Finding(i, "not-executed", "no stored run (the lead runs "
                                 "`make execute`; notebooks are stored executed)"))
        elif count != expected:
            found.append(Finding(i, "execution-order", f"execution count {count}, expected "
                                 f"{expected} (outputs are not from one top-to-bottom run)"))
        expected = (count or expected) + 1
        for output in cell.get("outputs", []):
            if output.get("output_type") == "error":
                found.append(Finding(i, "error-output", output_text(output)[:100]))
            elif output.get("name") == "stderr" and "Traceback (most recent" in output_text(output):
                found.append(Finding(i, "error-output", "a traceback printed on stderr"))
    return found


# ------------------------------------------------------------------ skeleton
def check_skeleton(nb, path: Path) -> list[Finding]:
    found = []
    cells = [(i, c) for i, c in enumerate(nb.cells) if not COLAB_TAGS & set(tags(c))]
    markdown = [(i, source(c)) for i, c in cells if c.cell_type == "markdown"]
    code = [(i, source(c)) for i, c in cells if c.cell_type == "code"]
    if not markdown:
        return [Finding(None, "skeleton", "no markdown cells at all")]
    first, header = markdown[0]
    match, number = TITLE.match(header), path.name[:2]
    if not match:
        found.append(Finding(first, "skeleton", f"the first cell must start with "
                             f"'# {number} · Title'"))
    elif match.group(1) != number:
        found.append(Finding(first, "skeleton", f"title number {match.group(1)} does not "
                             f"match the file name {path.name}"))
    found += [Finding(first, "skeleton", f"the header has no {part.strip('*')} line")
              for part in ("**What you will learn**", "**Prerequisites", "**Runtime")
              if part not in header]
    if not code or not all(re.search(line, code[0][1], re.M) for line in SETUP_LINES):
        found.append(Finding(code[0][0] if code else None, "skeleton",
                             "the first code cell must be the setup cell: `from course_lib."
                             "notebook import setup_notebook` / `info = setup_notebook(...)`"))
    if not re.search(r"^## 1\. ", "\n".join(text for _, text in markdown), re.M):
        found.append(Finding(None, "skeleton", "no numbered section ('## 1. ...')"))
    positions = {}
    for heading in ("## Summary", "## Exercises", "## References"):
        at = [i for i, text in markdown if re.search(rf"^{heading}\s*$", text, re.M)]
        if at:
            positions[heading] = at[0]
        else:
            found.append(Finding(None, "skeleton", f"no '{heading}' section"))
    if len(positions) == 3 and not (positions["## Summary"] <= positions["## Exercises"]
                                    < positions["## References"]):
        found.append(Finding(None, "skeleton", "sections must be in the order Summary, "
                             "Exercises, References"))
    if "## Exercises" in positions and "## References" in positions:
        found += check_exercises(nb, positions["## Exercises"], positions["## References"])
    return found


def check_exercises(nb, start: int, end: int) -> list[Finding]:
    """Every code cell between Exercises and References is a solution, tagged as such."""
    found, solutions = [], 0
    for i in range(start, end):
        if nb.cells[i].cell_type != "code":
            continue
        if "solution" in tags(nb.cells[i]):
            solutions += 1
        else:
            found.append(Finding(i, "exercises", "code in the Exercises section without "
                                 "the 'solution' tag"))
    if solutions == 0:
        found.append(Finding(start, "exercises", "the Exercises section has no solution "
                             "cell (tag: solution)"))
    found += [Finding(i, "exercises", "a 'solution' cell outside the Exercises section")
              for i, cell in enumerate(nb.cells)
              if "solution" in tags(cell) and not start < i < end]
    return found


def repository_url(pyproject: Path | None = None) -> str | None:
    """``[project.urls] Repository`` from pyproject.toml: the only address a notebook may
    open on Colab or clone (None when the project declares none)."""
    pyproject = pyproject or PYPROJECT
    text = pyproject.read_text() if pyproject.is_file() else ""
    section = re.search(r"^\[project\.urls\]\s*$(.*?)(?=^\[|\Z)", text, re.M | re.S)
    match = section and re.search(r'^\s*"?Repository"?\s*=\s*"([^"]+)"', section.group(1), re.M)
    return match.group(1).rstrip("/").removesuffix(".git") if match else None


def check_colab(nb, repository: str | None) -> list[Finding]:
    """Colab cells only for the declared repository: badge first, install cell after the title."""
    found = []
    for i, cell in enumerate(nb.cells):
        text = source(cell)
        if not (COLAB_TAGS & set(tags(cell)) or "google.colab" in text
                or "colab.research.google.com" in text):
            continue
        if repository is None:
            found.append(Finding(i, "colab", "a Colab cell, but pyproject.toml declares no "
                                 "[project.urls] Repository (remove it: tools/add_colab_setup.py"
                                 " --remove)"))
            continue
        slug = repository.removeprefix("https://github.com/")
        for match in re.finditer(r"github(?:\.com)?/([\w.\-]+/[\w.\-]+?)(?:\.git|/|\"|\)|$)",
                                 text, re.M):
            if match.group(1) != slug:
                found.append(Finding(i, "colab", f"{match.group(1)} is not the project's "
                                     f"repository ({repository})"))
    badge = [i for i, c in enumerate(nb.cells) if "colab-badge" in tags(c)]
    setup = [i for i, c in enumerate(nb.cells) if "colab-setup" in tags(c)]
    if repository and (badge or setup) and (badge != [0] or setup != [2]):
        found.append(Finding(None, "colab", "Colab cells must be the badge (cell 0) and the "
                             "install cell (cell 2): run tools/add_colab_setup.py"))
    return found


# ------------------------------------------------------------------ text and outputs
def check_text(nb) -> list[Finding]:
    """Placeholders anywhere; unformatted templates in Markdown (outside code and math)."""
    found = []
    for i, cell in enumerate(nb.cells):
        text = source(cell)
        found += [Finding(i, "placeholder", _excerpt(text, m)) for m in PLACEHOLDER.finditer(text)]
        if cell.cell_type == "markdown":
            prose = CODE_SPAN.sub(lambda m: " " * len(m.group(0)), text)
            found += [Finding(i, "template", _excerpt(prose, m))
                      for m in TEMPLATE.finditer(prose)]
    return found


def _has_static(output) -> bool:
    """Whether an output shows something without a kernel (text, a figure, HTML)."""
    if output.get("output_type") == "stream":
        return bool(output_text(output).strip())
    data = output.get("data", {})
    return any(k in data for k in STATIC) or (WIDGET not in data and "text/plain" in data)


def check_outputs(nb) -> list[Finding]:
    """What a learner reads in the stored outputs: results, not noise."""
    found = []
    rules = (("machine-path", MACHINE_PATH), ("progress-bar", PROGRESS),
             ("warning", WARNING), ("skipped", SKIPPED), ("placeholder", PLACEHOLDER))
    for i, cell in enumerate(nb.cells):
        outputs = cell.get("outputs", [])
        for output in outputs:
            text = output_text(output)
            for rule, pattern in rules:
                found += [Finding(i, rule, _excerpt(text, m)) for m in pattern.finditer(text)]
            plain = output_text(output, kinds=("text/plain", "text/markdown"))
            found += [Finding(i, "template", _excerpt(plain, m)) for m in TEMPLATE.finditer(plain)]
            if len(MODULE_LINE.findall(text)) >= WHOLE_MODEL_LINES:
                found += [Finding(i, "model-repr", _excerpt(text, m))
                          for m in MODEL_REPR.finditer(text)]
        widgets = [o for o in outputs if WIDGET in o.get("data", {})]
        if widgets and not any(_has_static(o) for o in outputs):
            excerpt = output_text(widgets[0], kinds=("text/plain",))
            found.append(Finding(i, "widget-without-fallback", f"{excerpt[:60]}... (print a "
                                 "table or draw a figure of the same result in this cell)"))
    return _first_per_rule(found)


def _first_per_rule(found: list[Finding]) -> list[Finding]:
    """One line per cell and rule (the first excerpt): a bar repeated 50 times is one finding."""
    first: dict[tuple, Finding] = {}
    counts: dict[tuple, int] = {}
    for finding in found:
        key = (finding.cell, finding.rule)
        first.setdefault(key, finding)
        counts[key] = counts.get(key, 0) + 1
    return [Finding(f.cell, f.rule, f.excerpt + (f" (+{counts[k] - 1} more)" if counts[k] > 1
                                                  else ""))
            for k, f in first.items()]


def check(path: Path, repository: str | None = None) -> list[Finding]:
    """Every finding for one notebook; ``repository`` is pyproject's Repository URL."""
    try:
        nb = nbformat.read(path, as_version=4)
        nbformat.validate(nb)
    except Exception as err:  # unreadable JSON or an invalid notebook: report, keep going
        return [Finding(None, "invalid", f"not a valid notebook: {str(err).splitlines()[0]}")]
    return (check_metadata(nb) + check_run(nb) + check_skeleton(nb, path)
            + check_colab(nb, repository) + check_text(nb) + check_outputs(nb))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="+", type=Path)
    args = parser.parse_args(argv)
    repository = repository_url()
    failed = 0
    for path in args.notebooks:
        findings = check(path, repository)
        failed += bool(findings)
        for finding in findings:
            print(f"{path}:{finding}")
    if failed:
        print(f"{failed} of {len(args.notebooks)} notebook(s) need fixing", file=sys.stderr)
        return 1
    print(f"{len(args.notebooks)} notebook(s) clean")
    return 0


if __name__ == "__main__":
    sys.exit(main())
