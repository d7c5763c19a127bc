"""The two install paths (pip and conda) must name the same packages and versions."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def pins(lines):
    out = {}
    for line in lines:
        line = line.split("#")[0].strip().lstrip("- ").strip()
        match = re.fullmatch(r"([A-Za-z0-9_.\-]+)==([^\s]+)", line)
        if match:
            out[match.group(1).lower().replace("_", "-")] = match.group(2)
    return out


def test_environment_yml_matches_requirements_txt():
    requirements = pins((ROOT / "requirements.txt").read_text().splitlines())
    text = (ROOT / "environment.yml").read_text()
    pip_section = text.split("- pip:", 1)[1].splitlines()
    assert pins(pip_section) == requirements
    assert "python=3.11" in text


def test_torch_is_pinned_exactly():
    requirements = pins((ROOT / "requirements.txt").read_text().splitlines())
    assert requirements["torch"] == "2.13.0"
    all_lines = (ROOT / "requirements.txt").read_text().splitlines()
    assert not [line for line in all_lines if line.startswith("torch") and "==" not in line]


def test_every_dependency_is_pinned():
    lines = [line.strip() for line in (ROOT / "requirements.txt").read_text().splitlines()
             if line.strip() and not line.startswith("#")]
    assert all("==" in line for line in lines), [line for line in lines if "==" not in line]


def environment_yml_name_and_pip_options():
    text = (ROOT / "environment.yml").read_text()
    name = re.search(r"^name:\s*(\S+)", text, re.M).group(1)
    pip_section = text.split("- pip:", 1)[1].splitlines()
    options = [line.strip()[2:].strip() for line in pip_section
               if line.strip().startswith("- --")]
    return name, options


def test_readme_conda_line_matches_environment_yml():
    """The README's conda command names the file and environment that exist, and says
    what the pip section's torch index does (the CPU build on Linux, as `make setup`)."""
    readme = (ROOT / "README.md").read_text()
    match = re.search(r"conda env create -f (\S+) && conda activate\s+(\S+) && "
                      r"pip install --no-deps -e \.", readme)
    assert match, "README: the conda line is missing or changed its form"
    assert (ROOT / match.group(1)).is_file()
    name, options = environment_yml_name_and_pip_options()
    assert match.group(2) == name
    torch_index = (ROOT / "tools" / "torch_index.py").read_text()
    cpu_index = re.search(r'^CPU_INDEX = "([^"]+)"', torch_index, re.M).group(1)
    assert options == [f"--extra-index-url {cpu_index}"]
    assert f"`{options[0]}`" in readme  # the README quotes the line a GPU user deletes
