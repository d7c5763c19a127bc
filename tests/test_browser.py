"""A real browser runs notebook 01 in JupyterLab: what nbval cannot see.

nbval executes the code, but it never renders a widget or a plot. This test starts
JupyterLab on localhost (from this environment), opens a copy of ``01_bert_basics``
(stored outputs removed, so everything seen comes from this run) in headless
Debian Chromium driven by Playwright, runs all cells from the menu, and checks that

- every code cell ran, with no traceback;
- the tokenizer widget renders and answers typing: the tokens it prints for a new
  sentence are the tokenizer's own;
- a plot image appears (the attention map);

and saves screenshots under the test's temporary folder.

Skipped unless Playwright (PyPI ``playwright``; its browser download is never used)
and ``/usr/bin/chromium`` (Debian's ``chromium``; ``.ci/run`` installs it) are both
present. Chromium runs with every background-network feature off and a fresh profile.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "notebooks" / "01_bert_basics.ipynb"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                  "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync"]
TYPED = "EBITDA fell."
# JupyterLab settings for the test: no news or update checks (no network), every cell
# kept in the page (no windowing) so the checks below see them all, and the notebook's
# kernel started without asking.
LAB_SETTINGS = {
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings":
        {"fetchNews": "false", "checkForUpdates": False},
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings":
        {"windowingMode": "none", "autoStartDefaultKernel": True},
}

sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="/usr/bin/chromium is not installed"),
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for_server(url: str, proc: subprocess.Popen, log: Path, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"JupyterLab exited early:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    pytest.fail(f"JupyterLab did not answer within {timeout} s:\n{log.read_text()[-3000:]}")


@pytest.fixture
def lab(tmp_path):
    """JupyterLab on 127.0.0.1 serving a copy of notebook 01 without stored outputs."""
    root = tmp_path / "notebooks"
    root.mkdir()
    nb = nbformat.read(NOTEBOOK, as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    nbformat.write(nb, root / NOTEBOOK.name)
    settings_dir = tmp_path / "lab-settings"
    for name, values in LAB_SETTINGS.items():
        path = settings_dir / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values))
    port, token = _free_port(), os.urandom(16).hex()
    env = {**os.environ, "JUPYTERLAB_SETTINGS_DIR": str(settings_dir),
           "JUPYTERLAB_WORKSPACES_DIR": str(tmp_path / "workspaces"),
           "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime"), "HF_HUB_OFFLINE": "1"}
    log = tmp_path / "jupyterlab.log"
    jupyter = Path(sys.executable).with_name("jupyter")
    command = [str(jupyter), "lab", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
               f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}",
               "--ServerApp.port_retries=0", "--ServerApp.terminals_enabled=False",
               "--LabApp.extension_manager=readonly",  # never asks PyPI for extensions
               "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"]
    if hasattr(os, "geteuid") and os.geteuid() == 0:  # CI containers run as root
        command.append("--allow-root")
    with log.open("w") as out:
        proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env,
                                cwd=root, start_new_session=True)
    try:
        base = f"http://127.0.0.1:{port}"
        _wait_for_server(f"{base}/api/status?token={token}", proc, log)
        yield {"url": f"{base}/lab/tree/{NOTEBOOK.name}?token={token}", "log": log}
    finally:
        proc.terminate()  # the server shuts its kernels down
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


@pytest.fixture
def page(tmp_path):
    """Headless Debian Chromium with a fresh profile and no background networking."""
    with sync_api.sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"), executable_path=str(CHROMIUM), headless=True,
            args=CHROMIUM_FLAGS, viewport={"width": 1400, "height": 1000})
        try:
            yield context.pages[0] if context.pages else context.new_page()
        finally:
            context.close()


PROMPTS_JS = """() => Array.from(document.querySelectorAll(
    '.jp-Notebook .jp-CodeCell .jp-InputArea-prompt')).map(p => p.textContent.trim())"""


def _wait_for_idle_kernel(page, timeout_s: float = 180) -> None:
    """The status bar says "Python 3 (ipykernel) | Idle" once the kernel is up."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        select = page.locator(".jp-Dialog button", has_text="Select")
        if select.count():  # "Select Kernel" despite the setting: accept the preferred one
            select.first.click()
        if "| Idle" in page.locator("#jp-main-statusbar").inner_text():
            return
        time.sleep(0.5)
    pytest.fail(f"the kernel did not start within {timeout_s} s")


def _run_all_cells(page, timeout_s: float = 600) -> list[str]:
    page.locator(".lm-MenuBar-item", has_text="Run").first.click()
    page.locator('.lm-Menu-item[data-command="runmenu:run-all"]').click()  # "Run All Cells"
    deadline = time.monotonic() + timeout_s
    prompts: list[str] = []
    while time.monotonic() < deadline:
        prompts = page.evaluate(PROMPTS_JS)
        if prompts and all(p[1:-2].isdigit() for p in prompts if p):
            if all(prompts):
                return prompts
        time.sleep(1)
    pytest.fail(f"the notebook did not finish within {timeout_s} s; prompts: {prompts}")


def test_notebook_01_runs_in_chromium_with_live_widget_and_plot(lab, page, tmp_path):
    from course_lib import backbones

    page.goto(lab["url"])
    page.wait_for_selector(".jp-Notebook .jp-CodeCell", timeout=120_000)
    _wait_for_idle_kernel(page)
    prompts = _run_all_cells(page)
    outputs = page.locator(".jp-Notebook .jp-OutputArea-output").all_inner_texts()
    assert not [o for o in outputs if "Traceback" in o or "Error displaying widget" in o]
    assert len(prompts) == sum(c.cell_type == "code"
                               for c in nbformat.read(NOTEBOOK, as_version=4).cells)

    # A plot: the attention map, rendered from this run (stored outputs were removed).
    image = page.locator(".jp-OutputArea-output img[src^='data:image/png']").first
    image.wait_for(timeout=60_000)
    assert image.evaluate("img => img.naturalWidth") > 100
    image.scroll_into_view_if_needed()
    image.screenshot(path=str(tmp_path / "attention_plot.png"))

    # The tokenizer widget: rendered, and it answers typing with the tokenizer's tokens.
    box = page.locator(".widget-text input").first
    box.wait_for(timeout=60_000)
    widget = page.locator(".jupyter-widgets.widget-vbox", has=box).first
    assert "tokens:" in widget.inner_text()
    box.scroll_into_view_if_needed()
    box.fill("")
    box.press_sequentially(TYPED, delay=30)
    tokenizer = backbones.load_tokenizer()
    tokens = tokenizer.convert_ids_to_tokens(tokenizer(TYPED)["input_ids"])
    expected = f"{len(tokens)} tokens: " + " ".join(tokens)
    page.wait_for_function(
        "([el, text]) => el.innerText.includes(text)", arg=[widget.element_handle(), expected],
        timeout=60_000)
    widget.screenshot(path=str(tmp_path / "tokenizer_widget.png"))
    page.screenshot(path=str(tmp_path / "01_bert_basics.png"))
    assert (tmp_path / "01_bert_basics.png").stat().st_size > 10_000
    if os.environ.get("COURSE_SCREENSHOT_DIR"):  # keep them, e.g. as CI artifacts
        for name in ("01_bert_basics.png", "tokenizer_widget.png", "attention_plot.png"):
            shutil.copy(tmp_path / name, Path(os.environ["COURSE_SCREENSHOT_DIR"]) / name)
