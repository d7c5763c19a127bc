"""Put an "Open in Colab" badge and a Colab install cell at the top of notebooks.

    python tools/add_colab_setup.py notebooks/*.ipynb [--repo OWNER/NAME] [--branch main]

Each notebook gets, idempotently (a second run changes nothing; a changed repo or
template refreshes the cells in place):

- cell 0, Markdown tagged ``colab-badge``: the badge, linking to this notebook on GitHub;
- cell 2 (after the title), code tagged ``colab-setup``: on Colab it clones the course
  and installs it with ``pip install -e`` (Colab's own torch is kept); anywhere else
  it does nothing, so local runs and CI are unaffected.

Stored outputs stay valid: when the notebook's execution counts are one top-to-bottom
run, the new cell takes count 1 and the others move up by one, exactly as a fresh run
would number them (the cell prints nothing outside Colab).

The GitHub repository comes from ``--repo``, else from ``[project.urls] Repository``
in pyproject.toml, else :data:`DEFAULT_REPO`.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_REPO = "bert-finetuning-course/bert-finetuning-course"
BADGE_TAG, SETUP_TAG = "colab-badge", "colab-setup"

BADGE = ("[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]"
         "(https://colab.research.google.com/github/{repo}/blob/{branch}/notebooks/{name})")

SETUP = '''\
# On Google Colab only: fetch and install the course (a minute or two). Elsewhere: nothing.
import os
import subprocess
import sys

if "google.colab" in sys.modules:
    if not os.path.isdir("/content/course"):
        url = "https://github.com/{repo}.git"
        subprocess.run(["git", "clone", "--depth", "1", "--branch", "{branch}", url,
                        "/content/course"], check=True)
        subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "-e",
                        "/content/course[quick]"], check=True)
    sys.path.insert(0, "/content/course")  # the running kernel does not see new installs
    os.chdir("/content/course/notebooks")'''


def repository() -> str:
    """OWNER/NAME from pyproject's ``Repository = "https://github.com/OWNER/NAME"``."""
    pyproject = ROOT / "pyproject.toml"
    text = pyproject.read_text() if pyproject.is_file() else ""
    match = re.search(r'^Repository\s*=\s*"https://github\.com/([^/"]+/[^/".]+)', text, re.M)
    return match.group(1) if match else DEFAULT_REPO


def _tagged(nb, tag: str) -> list[int]:
    return [i for i, c in enumerate(nb.cells) if tag in c.get("metadata", {}).get("tags", [])]


def _counts_in_order(nb) -> bool:
    counts = [c.get("execution_count") for c in nb.cells
              if c.cell_type == "code" and c.source.strip()]
    return bool(counts) and counts == list(range(1, len(counts) + 1))


def add_colab_cells(nb, name: str, repo: str, branch: str = "main") -> bool:
    """Insert or refresh the two cells; True when the notebook changed."""
    badge_text = BADGE.format(repo=repo, branch=branch, name=name)
    setup_text = SETUP.replace("{repo}", repo).replace("{branch}", branch)
    before = nbformat.writes(nb)
    for index in reversed(_tagged(nb, BADGE_TAG) + _tagged(nb, SETUP_TAG)):
        if index not in (0, 2):  # a cell moved by hand: remove it, re-insert below
            del nb.cells[index]
    if not _tagged(nb, BADGE_TAG):
        nb.cells.insert(0, nbformat.v4.new_markdown_cell(badge_text,
                                                         metadata={"tags": [BADGE_TAG]}))
    nb.cells[0].source = badge_text
    if not _tagged(nb, SETUP_TAG):
        renumber = _counts_in_order(nb)
        cell = nbformat.v4.new_code_cell(setup_text, metadata={"tags": [SETUP_TAG]})
        if renumber:
            for other in nb.cells:
                if other.cell_type == "code" and other.get("execution_count"):
                    other.execution_count += 1
            cell.execution_count = 1
        nb.cells.insert(2, cell)
    nb.cells[2].source = setup_text
    nb.cells[0].id, nb.cells[2].id = BADGE_TAG, SETUP_TAG  # stable ids, stable diffs
    return nbformat.writes(nb) != before


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="+", type=Path)
    parser.add_argument("--repo", default=None, help="GitHub OWNER/NAME (default: pyproject)")
    parser.add_argument("--branch", default="main")
    args = parser.parse_args(argv)
    repo = args.repo or repository()
    for path in args.notebooks:
        nb = nbformat.read(path, as_version=4)
        if add_colab_cells(nb, path.name, repo, args.branch):
            nbformat.write(nb, path)
            print(f"{path}: Colab badge and install cell written ({repo}@{args.branch})")
        else:
            print(f"{path}: up to date")
    return 0


if __name__ == "__main__":
    sys.exit(main())
