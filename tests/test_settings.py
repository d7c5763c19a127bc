import os
import random
import subprocess
import sys

import numpy as np
import pytest
import torch

from course_lib import settings
from course_lib.settings import CourseError


def test_profile_defaults_to_quick(monkeypatch):
    monkeypatch.delenv("COURSE_PROFILE", raising=False)
    assert settings.profile() == "quick"
    monkeypatch.setenv("COURSE_PROFILE", "FULL")
    assert settings.profile() == "full"
    monkeypatch.setenv("COURSE_PROFILE", "huge")
    with pytest.raises(CourseError, match="COURSE_PROFILE"):
        settings.profile()


def test_seed_everything_seeds_python_numpy_and_torch():
    draws = []
    for _ in range(2):
        settings.seed_everything(7)
        draws.append((random.random(), np.random.rand(), torch.rand(1).item()))
    assert draws[0] == draws[1]


def test_device_falls_back_to_cpu_without_accelerators(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    assert settings.get_device().type == "cpu"


def run_python(code, **env):
    full_env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE",
                                                                "COURSE_PROFILE")}
    full_env.update(env)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=full_env, timeout=120)


def test_quick_profile_goes_offline_unless_the_user_chose():
    code = ("import course_lib, os, huggingface_hub.constants as c;"
            "print(os.environ['HF_HUB_OFFLINE'], c.HF_HUB_OFFLINE)")
    assert run_python(code).stdout.split() == ["1", "True"]
    assert run_python(code, HF_HUB_OFFLINE="0").stdout.split() == ["0", "False"]
    full = run_python("import course_lib, os; print(os.environ.get('HF_HUB_OFFLINE'))",
                      COURSE_PROFILE="full")
    assert full.stdout.strip() == "None"


def test_overrides_are_read_from_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("COURSE_MODEL", str(tmp_path))
    monkeypatch.setenv("COURSE_DATA_DIR", str(tmp_path))
    assert settings.model_override() == str(tmp_path)
    assert settings.data_dir() == tmp_path


def test_progress_is_quiet_under_ci(monkeypatch):
    monkeypatch.setenv("CI", "true")
    assert not settings.show_progress()
    monkeypatch.delenv("CI")
    monkeypatch.setenv("COURSE_PROGRESS", "1")
    assert settings.show_progress()
