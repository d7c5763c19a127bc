"""Notebook 00's install report: the torch build as it is, one failure never hiding the
others, and a fix for every problem that the notebook's table repeats word for word."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

from course_lib import environment_report as report

ROOT = Path(__file__).resolve().parents[1]


def fake_torch(version="2.13.0", cuda=None, hip=None, gpus=0, mps_built=False, mps=False):
    return SimpleNamespace(
        __version__=version,
        version=SimpleNamespace(cuda=cuda, hip=hip),
        cuda=SimpleNamespace(is_available=lambda: gpus > 0, device_count=lambda: gpus,
                             get_device_name=lambda index: "NVIDIA H200"),
        backends=SimpleNamespace(mps=SimpleNamespace(is_built=lambda: mps_built,
                                                     is_available=lambda: mps)))


def no_driver():
    return False


def test_importing_the_report_imports_nothing_heavy():
    code = ("import sys, course_lib; before = set(sys.modules); "
            "import course_lib.environment_report; "
            "print(sorted({'torch', 'transformers', 'datasets', 'numpy'} & "
            "(set(sys.modules) - before)))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_torch_build_cpu_cuda_rocm_and_mps():
    cpu = report.check_torch(fake_torch("2.13.0+cpu"), driver_present=no_driver)
    assert (cpu.status, cpu.detail) == ("ok", "2.13.0+cpu, CPU build")

    cuda = report.check_torch(fake_torch("2.13.0+cu128", cuda="12.8", gpus=2), no_driver)
    assert cuda.status == "ok" and "CUDA 12.8 build" in cuda.detail and "H200 (2 visible)" in cuda.detail

    idle = report.check_torch(fake_torch("2.13.0", cuda="12.8"), no_driver)
    assert idle.status == "note" and "no GPU is visible" in idle.detail
    assert idle.fix == report.FIXES["cuda_without_gpu"]

    rocm = report.check_torch(fake_torch("2.13.0+rocm6.4", hip="6.4", gpus=1), no_driver)
    assert "ROCm 6.4 build" in rocm.detail

    mps = report.check_torch(fake_torch(mps_built=True, mps=True), no_driver)
    assert mps.status == "ok" and "MPS (Apple GPU available)" in mps.detail

    unused = report.check_torch(fake_torch("2.13.0+cpu"), driver_present=lambda: True)
    assert unused.status == "note" and unused.fix == report.FIXES["cpu_with_gpu"]


def test_versions_compare_with_the_pins(tmp_path):
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("# comment\ntorch==2.13.0\npeft==0.21.2\nruff==0.17.6\n")
    have = {"torch": "2.13.0+cpu", "peft": "0.21.2", "ruff": "0.17.6"}
    same = report.check_versions(requirements, installed=have.__getitem__)
    assert same.status == "ok" and "all 3 pins" in same.detail  # +cpu is the same pin

    def installed(name):
        if name == "ruff":
            raise report.metadata.PackageNotFoundError(name)
        return {"torch": "2.12.1", "peft": "0.21.2"}[name]

    differ = report.check_versions(requirements, installed=installed)
    assert differ.status == "note" and differ.fix == report.FIXES["packages"]
    assert "torch 2.12.1 (pinned 2.13.0)" in differ.detail and "ruff missing" in differ.detail
    assert report.check_versions(tmp_path / "nowhere.txt").status == "note"


def test_environment_size(tmp_path):
    (tmp_path / "big").write_bytes(b"x" * 3_000_000)
    assert report.directory_size(tmp_path) >= 3_000_000
    row = report.check_environment(str(tmp_path))
    assert row.status == "ok" and str(tmp_path) in row.detail and "GiB" in row.detail


def test_one_failure_is_reported_with_its_fix_and_hides_nothing(monkeypatch):
    from course_lib import backbones

    def broken(*args, **kwargs):
        raise OSError("no file named model.safetensors in /nowhere\nsecond line")

    monkeypatch.setattr(backbones, "load", broken)
    checks = report.check_installation(data=False)
    assert [c.name for c in checks] == ["python", "torch", "versions", "environment",
                                        "backbone"]
    (failed,) = report.failures(checks)
    assert failed.name == "backbone" and failed.fix == report.FIXES["backbone"]
    assert failed.detail == "OSError: no file named model.safetensors in /nowhere"
    text = report.format_report(checks)
    assert f"-> what to do: {report.FIXES['backbone']}" in text
    assert "1 check(s) FAILED" in text


def test_the_real_installation_passes():
    checks = report.check_installation()
    assert not report.failures(checks), report.format_report(checks)
    assert report.format_report(checks).endswith("all checks passed")


def test_notebook_00_runs_the_report_and_quotes_every_fix():
    notebook = json.loads((ROOT / "notebooks" / "00_setup_check.ipynb").read_text())
    markdown = "\n".join("".join(c["source"]) for c in notebook["cells"]
                         if c["cell_type"] == "markdown")
    code = "\n".join("".join(c["source"]) for c in notebook["cells"] if c["cell_type"] == "code")
    assert "environment_report.check_installation()" in code
    missing = [name for name, fix in report.FIXES.items() if fix not in markdown]
    assert not missing, f"notebook 00's table lacks the fix for {missing}"
