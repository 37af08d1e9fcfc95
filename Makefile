# `make demo` and `make test` each create .venv and install the project into it if needed.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PIP_QUIET := 2>&1 | grep -v 'is neither a file nor a directory' ; test $${PIPESTATUS[0]} -eq 0

.PHONY: demo test lint clean readme-report

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q -e '.[dev,offline-weights,slurm]' $(PIP_QUIET)
	@touch $(STAMP)

demo: $(STAMP)
	WANDB_MODE=offline PYTHON=$(PY) ./multirun.sh --demo

# Refresh the README's demo-report excerpt from the newest demo report.
readme-report: $(STAMP)
	$(PY) -m forgetting.report README.md "$$(ls -td outputs/analysis/demo/*/ | head -1)report.md"

test: $(STAMP)
	$(PY) -m pytest

lint: $(STAMP)
	$(VENV)/bin/ruff check .

clean:
	rm -rf $(VENV) dist build outputs
