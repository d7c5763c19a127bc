"""Which package index torch is installed from, so a Linux laptop gets the CPU build.

On Linux, PyPI's ``torch`` is the CUDA build: it pulls several GB of ``nvidia-*`` wheels
whatever is installed before it. PyTorch's own CPU index
(https://download.pytorch.org/whl/cpu) is the documented way to the CPU build. macOS and
Windows wheels on PyPI are CPU builds already (with Apple's MPS GPU support on macOS).

``make setup`` and ``make wheelhouse`` run this script and pass what it prints on stdout
(nothing, or ``--index-url URL``) to the pip command that installs the torch pin; one
line on stderr says which build comes and why. Rules, first match wins:

1. ``TORCH_INDEX=URL``: that index (``TORCH_INDEX=default``: pip's own index).
2. ``PIP_NO_INDEX`` set (the offline wheelhouse install): no index; ``--find-links`` only.
3. macOS or Windows: pip's own index.
4. Linux with an NVIDIA driver (``nvidia-smi`` runs, or ``/proc/driver/nvidia`` exists):
   pip's own index, i.e. the CUDA build.
5. Linux otherwise: the CPU index (``TORCH_CPU_INDEX`` names a mirror of it), if it
   answers within 5 seconds; else pip's own index, with a one-line note. Without the
   probe, an unreachable index would cost pip's retries (minutes) before the same result.

``--wheelhouse`` chooses for the learners' machines instead of this one: the platform
comes from ``--platform`` (a pip platform tag such as ``win_amd64``; empty: this OS) and
this machine's driver is ignored. Standard library only: it runs before anything is
installed.
"""

from __future__ import annotations

import argparse
import os
import shutil
import ssl
import subprocess
import sys
import threading
import urllib.request
from dataclasses import dataclass
from typing import Callable

CPU_INDEX = "https://download.pytorch.org/whl/cpu"
PROBE_SECONDS = 5.0
CUDA_SIZE = "the CUDA build, several GB"


@dataclass(frozen=True)
class Choice:
    """The pip options for the torch install and the line that explains them."""

    pip_args: tuple[str, ...]
    note: str


def system_of(platform_tag: str = "") -> str:
    """``linux``, ``darwin`` or ``win32`` for a pip platform tag (empty: this machine)."""
    tag = platform_tag.strip().lower()
    if not tag:
        return "darwin" if sys.platform == "darwin" else "win32" if sys.platform == "win32" \
            else "linux" if sys.platform.startswith("linux") else sys.platform
    for prefix, system in (("win", "win32"), ("macosx", "darwin"), ("manylinux", "linux"),
                           ("musllinux", "linux"), ("linux", "linux")):
        if tag.startswith(prefix):
            return system
    raise SystemExit(f"error: unknown platform tag {platform_tag!r} "
                     "(expected e.g. win_amd64, macosx_11_0_arm64, manylinux_2_28_x86_64)")


def nvidia_driver_present(proc_dir: str = "/proc/driver/nvidia") -> bool:
    """True when an NVIDIA driver is loaded: the CUDA build can then use the GPU."""
    if os.path.isdir(proc_dir):
        return True
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return False
    try:
        return subprocess.run([smi, "-L"], capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def index_reachable(url: str, timeout: float = PROBE_SECONDS) -> bool:
    """Whether ``URL/torch/`` answers 200 within ``timeout`` seconds, all included.

    The request runs in a daemon thread: a name lookup that hangs (an offline room) is not
    bounded by urlopen's timeout, and must not hold up ``make setup``. ``PIP_CERT`` is
    honoured as pip honours it; a proxy or certificate pip knows and this probe does not
    only costs the fallback (the default index), never a failed install.
    """
    result: list[bool] = []
    context = None
    if url.startswith("https:") and os.environ.get("PIP_CERT"):
        context = ssl.create_default_context(cafile=os.environ["PIP_CERT"])

    def probe() -> None:
        try:
            with urllib.request.urlopen(url.rstrip("/") + "/torch/", timeout=timeout,
                                        context=context) as response:
                result.append(response.status == 200)
        except Exception:  # any failure means: not usable from here
            result.append(False)

    thread = threading.Thread(target=probe, daemon=True)
    thread.start()
    thread.join(timeout)
    return bool(result and result[0])


def choose(system: str, *, nvidia_driver: Callable[[], bool], torch_index: str = "",
           no_index: bool = False, cpu_index: str = CPU_INDEX,
           reachable: Callable[[str], bool] = index_reachable) -> Choice:
    """The rules of the module docstring, with the machine's facts passed in (testable)."""
    override = "TORCH_INDEX=... overrides this"
    torch_index = torch_index.strip()
    if torch_index.lower() == "default":
        return Choice((), "torch: from pip's own index (TORCH_INDEX=default)")
    if torch_index:
        return Choice(("--index-url", torch_index), f"torch: from TORCH_INDEX={torch_index}")
    if no_index:
        return Choice((), "torch: from --find-links only (PIP_NO_INDEX is set)")
    if system == "darwin":
        return Choice((), f"torch: macOS, pip's own index (CPU build with Apple-GPU (MPS) "
                          f"support); {override}")
    if system != "linux":
        name = "Windows" if system == "win32" else system
        return Choice((), f"torch: {name}, pip's own index (CPU build); {override}")
    if nvidia_driver():
        return Choice((), f"torch: NVIDIA driver found, pip's own index ({CUDA_SIZE}); "
                          f"TORCH_INDEX={CPU_INDEX} for the CPU build")
    if reachable(cpu_index):
        return Choice(("--index-url", cpu_index),
                      f"torch: Linux without an NVIDIA driver, CPU build from {cpu_index} "
                      "(TORCH_INDEX=default for the CUDA build)")
    return Choice((), f"note: PyTorch's CPU index {cpu_index} cannot be reached; torch comes "
                      f"from pip's own index (from PyPI that is {CUDA_SIZE}); {override}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--wheelhouse", action="store_true",
                        help="choose for the learners' machines (ignore this machine's driver)")
    parser.add_argument("--platform", default="",
                        help="pip platform tag of those machines (with --wheelhouse)")
    args = parser.parse_args(argv)
    if args.platform and not args.wheelhouse:
        parser.error("--platform goes with --wheelhouse")
    choice = choose(
        system_of(args.platform),
        nvidia_driver=(lambda: False) if args.wheelhouse else nvidia_driver_present,
        torch_index=os.environ.get("TORCH_INDEX", ""),
        no_index=os.environ.get("PIP_NO_INDEX", "").lower() not in ("", "0", "false", "no", "off"),
        cpu_index=os.environ.get("TORCH_CPU_INDEX", "").strip() or CPU_INDEX,
    )
    print(choice.note, file=sys.stderr)
    print(" ".join(choice.pip_args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
