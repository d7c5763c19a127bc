"""``make lab`` serves JupyterLab, also as root (containers, cloud notebooks), where
JupyterLab refuses to start without ``--allow-root``.

The server test runs the real ``make lab`` on a free port with a known token
(``JUPYTER_TOKEN``), waits for HTTP 200 from ``/api/status`` and ``/lab``, then stops
the process group it started. ``STAMP`` points at a fresh file so that make does not
reinstall, and ``BIN`` at this interpreter's folder so that the test uses the
environment it runs in.
"""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
START_SECONDS = 40

pytestmark = pytest.mark.skipif(
    subprocess.run(["which", "make"], capture_output=True).returncode != 0,
    reason="make is not installed")


def make_args(tmp_path, *extra):
    stamp = tmp_path / "stamp"
    stamp.touch()  # newer than requirements.txt: `setup` has nothing to do
    return ["make", "lab", f"STAMP={stamp}", f"BIN={BIN}", *extra]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_make_lab_adds_allow_root_only_for_root_and_takes_ip_and_port(tmp_path):
    done = subprocess.run([*make_args(tmp_path, "IP=0.0.0.0", "PORT=8899"), "-n"], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    command = next(line for line in done.stdout.splitlines() if " lab --no-browser" in line)
    assert "--ip=0.0.0.0" in command and "--port=8899" in command
    assert ("--allow-root" in command) == (os.geteuid() == 0)
    assert "make lab IP=0.0.0.0" in done.stdout  # says how to reach it from elsewhere


def get(url: str, token: str) -> int:
    request = urllib.request.Request(url, headers={"Authorization": f"token {token}"})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


@pytest.mark.skipif(not (BIN / "jupyter-lab").exists(), reason="jupyter lab is not installed")
@pytest.mark.timeout(90)
def test_make_lab_serves_jupyterlab(tmp_path):
    port, token = free_port(), secrets.token_hex(16)
    env = {**os.environ, "JUPYTER_TOKEN": token, "JUPYTER_RUNTIME_DIR": str(tmp_path / "rt"),
           "JUPYTER_CONFIG_DIR": str(tmp_path / "config"),  # neither reads nor writes ~
           "JUPYTERLAB_WORKSPACES_DIR": str(tmp_path / "workspaces")}
    log = tmp_path / "lab.log"
    with log.open("w") as out:
        server = subprocess.Popen(make_args(tmp_path, f"PORT={port}"), cwd=ROOT, env=env,
                                  stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        base = f"http://127.0.0.1:{port}"
        deadline, status = time.monotonic() + START_SECONDS, None
        while time.monotonic() < deadline and server.poll() is None:
            try:
                status = get(f"{base}/api/status", token)
                if status == 200:
                    break
            except OSError:  # not listening yet
                pass
            time.sleep(0.5)
        assert status == 200, (f"no HTTP 200 from {base}/api/status within {START_SECONDS} s "
                               f"(exit code {server.poll()}):\n{log.read_text()[-3000:]}")
        assert get(f"{base}/lab", token) == 200
        assert get(f"{base}/api/status", "wrong-token") == 403  # the token still guards it
    finally:
        os.killpg(server.pid, signal.SIGTERM)  # make and the jupyter it started
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()
    text = log.read_text()
    assert "Running as root is not recommended" not in text
