"""Put an "Open in Colab" badge and a Colab install cell at the top of notebooks, or remove them.

    python tools/add_colab_setup.py notebooks/*.ipynb [--branch main]
    python tools/add_colab_setup.py --remove notebooks/*.ipynb

The repository comes from one place only, ``[project.urls] Repository`` in
pyproject.toml (a ``https://github.com/OWNER/NAME`` address: Colab opens notebooks
from GitHub). Without it the tool refuses to add anything: a badge or a clone of an
address the project does not own would send learners to someone else's code.

Each notebook gets, idempotently (a second run changes nothing; a changed repository
or template refreshes the cells in place):

- cell 0, Markdown tagged ``colab-badge``: the badge, linking to this notebook on GitHub;
- cell 2 (after the title), code tagged ``colab-setup``: on Colab it clones the
  repository and installs the exact pins of its requirements.txt, then the course
  itself without dependencies (the same two steps as ``make setup``); anywhere else it
  does nothing, so local runs and CI are unaffected.

Stored outputs stay valid either way: when the notebook's execution counts are one
top-to-bottom run, adding the cell gives it count 1 and moves the others up by one,
removing it moves them down, exactly as a fresh run would number them (the cell prints
nothing outside Colab). tools/check_notebooks.py checks the cells against pyproject.
"""

from __future__ import annotations

import argparse
import importlib.util
import re
import sys
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = ROOT / "pyproject.toml"
BADGE_TAG, SETUP_TAG = "colab-badge", "colab-setup"

BADGE = ("[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]"
         "(https://colab.research.google.com/github/{repo}/blob/{branch}/notebooks/{name})")

SETUP = '''\
# On Google Colab only: fetch the course and install its exact pins (a few minutes).
# Elsewhere: nothing.
import os
import subprocess
import sys

if "google.colab" in sys.modules:
    if not os.path.isdir("/content/course"):
        subprocess.run(["git", "clone", "--depth", "1", "--branch", "{branch}",
                        "{url}.git", "/content/course"], check=True)
        pip = [sys.executable, "-m", "pip", "install", "--quiet"]
        subprocess.run([*pip, "-r", "/content/course/requirements.txt"], check=True)
        subprocess.run([*pip, "--no-deps", "-e", "/content/course"], check=True)
    sys.path.insert(0, "/content/course")  # the running kernel does not see new installs
    os.chdir("/content/course/notebooks")'''


class NoRepository(Exception):
    """pyproject.toml declares no GitHub repository to open and clone."""


def _checker():
    """tools/check_notebooks.py, which reads the same pyproject field (one reader)."""
    spec = importlib.util.spec_from_file_location("check_notebooks",
                                                  ROOT / "tools" / "check_notebooks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def repository(pyproject: Path | None = None) -> str:
    """The ``https://github.com/OWNER/NAME`` of ``[project.urls] Repository``, or NoRepository."""
    pyproject = pyproject or PYPROJECT
    url = _checker().repository_url(pyproject)
    if url is None:
        raise NoRepository(f"{pyproject.name} has no [project.urls] Repository: add the "
                           "project's own GitHub address there first (never someone else's)")
    if not re.fullmatch(r"https://github\.com/[\w.\-]+/[\w.\-]+", url):
        raise NoRepository(f"[project.urls] Repository = {url!r} is not a "
                           "https://github.com/OWNER/NAME address (Colab opens GitHub only)")
    return url


def _tagged(nb, tag: str) -> list[int]:
    return [i for i, c in enumerate(nb.cells) if tag in c.get("metadata", {}).get("tags", [])]


def _counts_in_order(nb) -> bool:
    counts = [c.get("execution_count") for c in nb.cells
              if c.cell_type == "code" and c.source.strip()]
    return bool(counts) and counts == list(range(1, len(counts) + 1))


def _shift_counts(nb, by: int) -> None:
    for cell in nb.cells:
        if cell.cell_type == "code" and cell.get("execution_count"):
            cell.execution_count += by


def remove_colab_cells(nb) -> bool:
    """Remove the badge and the install cell; True when the notebook changed."""
    found = sorted(set(_tagged(nb, BADGE_TAG) + _tagged(nb, SETUP_TAG)), reverse=True)
    if not found:
        return False
    renumber = _counts_in_order(nb)
    executed_setup = any(nb.cells[i].cell_type == "code" and nb.cells[i].get("execution_count")
                         for i in found)
    for index in found:
        del nb.cells[index]
    if renumber and executed_setup:
        _shift_counts(nb, -1)
    return True


def add_colab_cells(nb, name: str, url: str, branch: str = "main") -> bool:
    """Insert or refresh the two cells for ``url``; True when the notebook changed."""
    slug = url.removeprefix("https://github.com/")
    badge_text = BADGE.format(repo=slug, branch=branch, name=name)
    setup_text = SETUP.replace("{url}", url).replace("{branch}", branch)
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
            _shift_counts(nb, 1)
            cell.execution_count = 1
        nb.cells.insert(2, cell)
    nb.cells[2].source = setup_text
    nb.cells[0].id, nb.cells[2].id = BADGE_TAG, SETUP_TAG  # stable ids, stable diffs
    return nbformat.writes(nb) != before


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="+", type=Path)
    parser.add_argument("--branch", default="main")
    parser.add_argument("--remove", action="store_true", help="remove the Colab cells")
    args = parser.parse_args(argv)
    if args.remove:
        for path in args.notebooks:
            nb = nbformat.read(path, as_version=4)
            if remove_colab_cells(nb):
                nbformat.write(nb, path)
                print(f"{path}: Colab badge and install cell removed")
        return 0
    try:
        url = repository()
    except NoRepository as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    for path in args.notebooks:
        nb = nbformat.read(path, as_version=4)
        if add_colab_cells(nb, path.name, url, args.branch):
            nbformat.write(nb, path)
            print(f"{path}: Colab badge and install cell written ({url}@{args.branch})")
        else:
            print(f"{path}: up to date")
    return 0


if __name__ == "__main__":
    sys.exit(main())
