"""``make setup`` installs torch from the right index: the CPU build on a Linux machine
without an NVIDIA driver, and a fast, announced fallback when PyTorch's index is out of
reach (as on the machines this course is developed on).

The choice is ``tools/torch_index.py``; the Makefile only passes its output to pip, which
``make -n`` (print, do not run) shows without installing anything.
"""

from __future__ import annotations

import http.server
import importlib.util
import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "tools" / "torch_index.py"
UNREACHABLE = "http://127.0.0.1:9/"  # the discard port: nothing listens, refused at once

spec = importlib.util.spec_from_file_location("tools_torch_index", SCRIPT)
torch_index = importlib.util.module_from_spec(spec)
sys.modules[spec.name] = torch_index  # dataclasses look the module up while it executes
spec.loader.exec_module(torch_index)

on_plain_linux = pytest.mark.skipif(
    not sys.platform.startswith("linux") or torch_index.nvidia_driver_present(),
    reason="the automatic CPU-index path is for Linux without an NVIDIA driver")


def no_driver():
    return False


def driver():
    return True


def must_not_probe(url):
    raise AssertionError(f"probed {url} although the rule needs no probe")


def torch_pin() -> str:
    line = next(line for line in (ROOT / "requirements.txt").read_text().splitlines()
                if line.startswith("torch=="))
    return line.split("==", 1)[1].strip()


# --- the rules, one machine at a time ---------------------------------------------------

def test_linux_without_driver_takes_the_cpu_index_when_it_answers():
    probed = []
    choice = torch_index.choose("linux", nvidia_driver=no_driver,
                                reachable=lambda url: probed.append(url) or True)
    assert choice.pip_args == ("--index-url", torch_index.CPU_INDEX)
    assert probed == [torch_index.CPU_INDEX]
    assert "CPU build" in choice.note


def test_linux_without_driver_falls_back_with_a_note_when_the_index_is_unreachable():
    choice = torch_index.choose("linux", nvidia_driver=no_driver, reachable=lambda url: False)
    assert choice.pip_args == ()
    assert choice.note.startswith("note:") and "cannot be reached" in choice.note
    assert "\n" not in choice.note


def test_linux_with_an_nvidia_driver_keeps_the_default_cuda_build():
    choice = torch_index.choose("linux", nvidia_driver=driver, reachable=must_not_probe)
    assert choice.pip_args == ()
    assert "CUDA" in choice.note


@pytest.mark.parametrize("system, build", [("darwin", "MPS"), ("win32", "CPU build")])
def test_macos_and_windows_take_the_default_index(system, build):
    choice = torch_index.choose(system, nvidia_driver=must_not_probe, reachable=must_not_probe)
    assert choice.pip_args == ()
    assert build in choice.note


@pytest.mark.parametrize("system", ["linux", "darwin", "win32"])
def test_torch_index_overrides_every_rule(system):
    url = "https://download.pytorch.org/whl/cu128"
    choice = torch_index.choose(system, nvidia_driver=driver, torch_index=url,
                                no_index=True, reachable=must_not_probe)
    assert choice.pip_args == ("--index-url", url)
    default = torch_index.choose(system, nvidia_driver=no_driver, torch_index="default",
                                 reachable=must_not_probe)
    assert default.pip_args == ()


def test_offline_wheelhouse_install_neither_probes_nor_names_an_index():
    choice = torch_index.choose("linux", nvidia_driver=no_driver, no_index=True,
                                reachable=must_not_probe)
    assert choice.pip_args == ()
    assert "PIP_NO_INDEX" in choice.note


@pytest.mark.parametrize("tag, system", [("win_amd64", "win32"), ("macosx_11_0_arm64", "darwin"),
                                         ("manylinux_2_28_x86_64", "linux"),
                                         ("musllinux_1_2_aarch64", "linux")])
def test_wheel_platform_tags(tag, system):
    assert torch_index.system_of(tag) == system
    with pytest.raises(SystemExit, match="unknown platform tag"):
        torch_index.system_of("solaris_sparc")


def test_driver_detection(tmp_path, monkeypatch):
    (tmp_path / "nvidia").mkdir()
    assert torch_index.nvidia_driver_present(proc_dir=str(tmp_path / "nvidia"))
    monkeypatch.setattr(torch_index.shutil, "which", lambda name: None)
    assert not torch_index.nvidia_driver_present(proc_dir=str(tmp_path / "none"))

    class Ran:
        def __init__(self, code):
            self.returncode = code

    monkeypatch.setattr(torch_index.shutil, "which", lambda name: "/usr/bin/nvidia-smi")
    monkeypatch.setattr(torch_index.subprocess, "run", lambda *a, **k: Ran(0))
    assert torch_index.nvidia_driver_present(proc_dir=str(tmp_path / "none"))
    # nvidia-smi installed but no driver loaded: it exits non-zero
    monkeypatch.setattr(torch_index.subprocess, "run", lambda *a, **k: Ran(9))
    assert not torch_index.nvidia_driver_present(proc_dir=str(tmp_path / "none"))


# --- the probe: fast either way -----------------------------------------------------------

class SimpleIndex(http.server.BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 - the http.server API
        status = 200 if self.path.rstrip("/").endswith("/torch") else 404
        self.send_response(status)
        self.end_headers()
        self.wfile.write(b"<html><a href='torch-2.13.0+cpu-cp311-cp311-any.whl'>x</a></html>")

    def log_message(self, *args):
        pass


@pytest.fixture
def local_index():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), SimpleIndex)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/whl/cpu"
    server.shutdown()
    server.server_close()


def test_probe_answers_for_a_live_index(local_index):
    assert torch_index.index_reachable(local_index, timeout=5)


def test_probe_gives_up_within_its_timeout_on_a_silent_server():
    with socket.socket() as silent:  # accepts connections (backlog) but never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)
        start = time.monotonic()
        assert not torch_index.index_reachable(f"http://127.0.0.1:{silent.getsockname()[1]}/",
                                               timeout=1.0)
        assert time.monotonic() - start < 3


def run_script(*args, **env):
    clean = {k: v for k, v in os.environ.items()
             if k not in ("TORCH_INDEX", "TORCH_CPU_INDEX", "PIP_NO_INDEX")}
    start = time.monotonic()
    done = subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True,
                          env={**clean, **env}, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip(), done.stderr.strip(), time.monotonic() - start


@on_plain_linux
def test_script_falls_back_fast_with_one_line_when_the_cpu_index_is_unreachable():
    out, err, seconds = run_script(TORCH_CPU_INDEX=UNREACHABLE)
    assert out == ""  # pip's own index
    assert err.startswith("note:") and UNREACHABLE in err and len(err.splitlines()) == 1
    assert seconds < 8, f"the fallback took {seconds:.1f} s"


@on_plain_linux
def test_script_names_a_reachable_cpu_index(local_index):
    out, err, _ = run_script(TORCH_CPU_INDEX=local_index)
    assert out == f"--index-url {local_index}"
    assert "CPU build" in err


def test_script_for_a_windows_wheelhouse_and_with_an_override():
    out, err, _ = run_script("--wheelhouse", "--platform", "win_amd64",
                             TORCH_CPU_INDEX=UNREACHABLE)
    assert out == "" and "Windows" in err
    out, _, _ = run_script("--wheelhouse", "--platform", "manylinux_2_28_x86_64",
                           TORCH_INDEX="https://example.org/simple")
    assert out == "--index-url https://example.org/simple"


@on_plain_linux
def test_fallback_still_resolves_exactly_the_pinned_torch():
    """What the fallback's pip command would install (dry run, nothing installed)."""
    out, _, _ = run_script(TORCH_CPU_INDEX=UNREACHABLE)
    pin = torch_pin()
    done = subprocess.run([sys.executable, "-m", "pip", "install", "--dry-run", "--quiet",
                           "--ignore-installed", "--no-deps", "--report", "-", *out.split(),
                           f"torch=={pin}"], capture_output=True, text=True, timeout=300)
    if done.returncode != 0:
        pytest.skip(f"pip cannot resolve torch here (no index?): {done.stderr.strip()[-200:]}")
    report = json.loads(done.stdout)
    (torch,) = [item["metadata"] for item in report["install"]]
    assert torch["name"] == "torch"
    assert torch["version"].split("+")[0] == pin  # a local label such as +cpu is the same pin


# --- the Makefile passes the choice through -----------------------------------------------

def make_dry_run(target, tmp_path, *overrides):
    stamp = tmp_path / "missing-stamp"  # out of date: make -n prints the whole install
    done = subprocess.run(["make", "-n", target, f"STAMP={stamp}", *overrides], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout


needs_make = pytest.mark.skipif(subprocess.run(["which", "make"], capture_output=True)
                                .returncode != 0, reason="make is not installed")


@needs_make
def test_make_setup_installs_the_torch_pin_first_from_the_chosen_index(tmp_path):
    out = make_dry_run("setup", tmp_path)
    lines = out.splitlines()
    torch_line = next(i for i, line in enumerate(lines) if "tools/torch_index.py" in line)
    requirements_line = next(i for i, line in enumerate(lines) if "-r requirements.txt" in line)
    assert torch_line < requirements_line
    assert "$torch_args" in lines[torch_line + 1] and "^torch==" in lines[torch_line + 1]
    assert "TORCH_INDEX=''" in lines[torch_line]
    url = "https://download.pytorch.org/whl/cu128"
    assert f"TORCH_INDEX='{url}'" in make_dry_run("setup", tmp_path, f"TORCH_INDEX={url}")


@needs_make
def test_make_wheelhouse_chooses_for_the_learners_platform(tmp_path):
    out = make_dry_run("wheelhouse", tmp_path, "WHEEL_PLATFORM=win_amd64")
    assert re.search(r"tools/torch_index\.py --wheelhouse\s*\\?\s*--platform win_amd64", out)
    assert "$torch_args" in out
