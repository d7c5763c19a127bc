import ast
import json
import os
import random
import subprocess
import sys
import warnings

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


def test_seeded_draws_from_the_seed_and_leaves_the_global_streams_alone():
    """Regression (issue 14 item 8): building weights must not reset the caller's streams."""
    torch.manual_seed(123)
    state = torch.get_rng_state()
    with settings.seeded(5):
        first = torch.rand(3)
    assert torch.equal(torch.get_rng_state(), state)
    with settings.seeded(5):
        assert torch.equal(torch.rand(3), first)
    with settings.seeded(None):  # None: the current stream, which then moves on
        torch.rand(1)
    assert not torch.equal(torch.get_rng_state(), state)


def test_device_falls_back_to_cpu_without_accelerators(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    assert settings.get_device().type == "cpu"


def run_python(code, **env):
    full_env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE",
                                                                "COURSE_PROFILE")}
    full_env.update(env)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=full_env, timeout=300)


STATE = """
import json, os, warnings, transformers, transformers.pipelines as p, huggingface_hub.constants as c
def state():
    return {"env": dict(os.environ), "hub_offline": c.HF_HUB_OFFLINE,
            "tasks": sorted(p.PIPELINE_REGISTRY.get_supported_tasks()),
            "qa": repr(p.PIPELINE_REGISTRY.supported_tasks.get("question-answering")),
            "removed": sorted(getattr(p, "REMOVED_TASKS", {})),
            "verbosity": transformers.logging.get_verbosity(),
            "filters": len(warnings.filters)}
"""


def test_importing_course_lib_changes_nothing():
    """Regression (issue 14 item 13): importing the library (as a dependency) must neither
    put the process offline nor re-register transformers' question-answering task."""
    code = STATE + (
        "before = state()\n"
        "import course_lib, course_lib.training, course_lib.strategies, course_lib.heads\n"
        "import course_lib.qa\n"
        "after = state()\n"
        "print(json.dumps({k: [before[k], after[k]] for k in before if before[k] != after[k]}))")
    done = run_python(code)
    assert done.returncode == 0, done.stderr
    changed = json.loads(done.stdout.strip().splitlines()[-1])
    assert changed == {}, changed


def test_quick_profile_is_offline_unless_the_user_chose(monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("COURSE_PROFILE", raising=False)
    assert settings.is_offline()
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    assert not settings.is_offline()
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setenv("COURSE_PROFILE", "full")
    assert not settings.is_offline()
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert settings.is_offline()


def test_hub_offline_is_scoped_and_restores_the_process(monkeypatch):
    import huggingface_hub.constants as constants

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("COURSE_PROFILE", raising=False)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    with settings.hub_offline():
        assert os.environ["HF_HUB_OFFLINE"] == "1" and constants.HF_HUB_OFFLINE is True
    assert "HF_HUB_OFFLINE" not in os.environ and constants.HF_HUB_OFFLINE is False
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")  # the user's choice wins
    with settings.hub_offline():
        assert os.environ["HF_HUB_OFFLINE"] == "0" and constants.HF_HUB_OFFLINE is False


def test_course_processes_go_offline_for_good_in_the_quick_profile():
    code = ("from course_lib import settings; import os, huggingface_hub.constants as c;"
            "settings.apply_offline_default(); print(os.environ.get('HF_HUB_OFFLINE'), "
            "c.HF_HUB_OFFLINE)")
    assert run_python(code).stdout.split() == ["1", "True"]
    assert run_python(code, HF_HUB_OFFLINE="0").stdout.split() == ["0", "False"]
    assert run_python(code, COURSE_PROFILE="full").stdout.split() == ["None", "False"]


def test_quiet_libraries_stays_on_or_is_undone_after_a_block():
    import transformers

    log = transformers.logging
    log.set_verbosity_warning()
    transformers.utils.logging.enable_progress_bar()
    filters = list(warnings.filters)
    with settings.quiet_libraries():
        assert log.get_verbosity() == log.ERROR
        assert not transformers.utils.logging.is_progress_bar_enabled()
        with warnings.catch_warnings(record=True) as caught:
            warnings.warn("old API", FutureWarning, stacklevel=2)
        assert caught == []
    assert log.get_verbosity() == log.WARNING
    assert transformers.utils.logging.is_progress_bar_enabled()
    assert warnings.filters == filters
    try:
        settings.quiet_libraries()  # a plain call stays on
        assert log.get_verbosity() == log.ERROR
    finally:
        warnings.filters[:] = filters
        log.set_verbosity_warning()
        transformers.utils.logging.enable_progress_bar()


def test_settings_imports_nothing_of_the_course():
    """Regression (issue 14 layout): settings <-> backbones was a cycle (summary() and
    setup_notebook() imported backbones). Any relative import in settings.py fails here."""
    tree = ast.parse(open(settings.__file__, encoding="utf-8").read())
    relative = [node.module for node in ast.walk(tree)
                if isinstance(node, ast.ImportFrom) and node.level > 0]
    course = [alias.name for node in ast.walk(tree) if isinstance(node, ast.Import)
              for alias in node.names if alias.name.startswith("course_lib")]
    assert relative == [] and course == []


def test_hub_reachable_answers_quickly_when_there_is_no_network(monkeypatch):
    import socket

    def refuse(address, timeout):
        assert address == ("hub.example", 8080) and timeout == 0.5
        raise OSError("no route")

    monkeypatch.setenv("HF_ENDPOINT", "http://hub.example:8080")
    monkeypatch.setattr(socket, "create_connection", refuse)
    assert settings.hub_reachable(0.5) is False


def test_setup_notebook_seeds_and_reports(monkeypatch, capsys):
    from course_lib.notebook import setup_notebook

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    info = setup_notebook(seed=3)
    first = torch.rand(1)
    settings.seed_everything(3)
    assert torch.equal(torch.rand(1), first)
    out = capsys.readouterr().out
    assert info.profile == "quick" and info.offline
    assert "seed=3" in out and "backbone: MiniLM-L6-H384" in out and "versions:" in out


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


def test_course_seed_is_one_switch_for_notebooks_trainer_searches_and_command_line(
        monkeypatch, tmp_path):
    from course_lib import notebook
    from course_lib.cli import build_parser
    from course_lib.training import TrainingConfig

    monkeypatch.delenv("COURSE_SEED", raising=False)
    assert settings.course_seed() == settings.DEFAULT_SEED == TrainingConfig().seed
    monkeypatch.setenv("COURSE_SEED", "7")
    assert settings.course_seed() == 7 and TrainingConfig().seed == 7
    assert TrainingConfig(seed=3).seed == 3  # an explicit seed wins
    assert notebook.summary().seed == 7
    args = build_parser().parse_args(["classify", "--train", "t.csv", "--eval", "e.csv",
                                      "--text-column", "t", "--label-column", "l",
                                      "--output-dir", "o"])
    assert args.seed is None  # resolved to COURSE_SEED when the command runs
    for bad in ("-1", "seven", "1.5"):
        monkeypatch.setenv("COURSE_SEED", bad)
        with pytest.raises(CourseError, match="COURSE_SEED"):
            settings.course_seed()


def test_headline_records_only_when_an_executor_asks(monkeypatch, tmp_path):
    from course_lib import notebook

    monkeypatch.delenv("COURSE_HEADLINES", raising=False)
    assert notebook.headline("macro-F1", 0.5) is None  # no output, nothing written anywhere
    target = tmp_path / "headlines.jsonl"
    monkeypatch.setenv("COURSE_HEADLINES", str(target))
    monkeypatch.setenv("COURSE_NOTEBOOK", "03_x.ipynb")
    monkeypatch.setenv("COURSE_SEED", "43")
    notebook.headline("macro-F1", np.float32(0.25))
    record = json.loads(target.read_text())
    assert record == {"notebook": "03_x.ipynb", "seed": 43, "name": "macro-F1", "value": 0.25}
