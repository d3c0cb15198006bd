# gpulane: every target sets up what it needs on a fresh machine.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)

.PHONY: demo test unit integration lint bench binaries clean e2e

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[all,test,lint]'
	touch $(STAMP)

## demo: simulate the shipped workload under every policy (table + Gantt PNG)
demo: $(STAMP)
	$(PY) -m gpulane_core.cli simulate examples/workloads/demo.csv --policy fifo,srtf,sjf,pack,fair,weight,gpulane,ga \
		--gpus 2 --gpu-memory 16Gi --plot out/demo-gantt.png --json out/demo.json

## binaries: obtain and cache kube-apiserver, etcd, kwok, helm, kubectl, prometheus (outside the repo)
binaries: $(STAMP)
	$(PY) -m gpulane_dev.binaries ensure

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

unit: $(STAMP)
	$(PY) -m pytest tests/unit tests/test_layout.py -q

integration: binaries
	$(PY) -m pytest tests/integration -q

## test: lint, types, import contracts, then unit + integration tiers on a real control plane
test: lint binaries
	$(PY) -m pytest tests -q -p no:cacheprovider

e2e: $(STAMP)
	$(PY) -m pytest tests/e2e -q

## bench: measure and write docs/benchmarks.md
bench: binaries
	$(PY) benchmarks/run_all.py --out docs/benchmarks.md

clean:
	rm -rf $(VENV) out .mypy_cache .ruff_cache .pytest_cache
