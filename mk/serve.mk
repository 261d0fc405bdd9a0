# The prediction function, locally: serve it and benchmark it. Settings (make VAR=value or env):
#   MODEL_URI (default: the local store's production pointer), SERVE_PORT, THREADS and
#   ORT_INTRA_OP_THREADS (defaults measured in reports/bench_serve.md), PREDICTION_LOG.

MODEL_URI ?= local/store/models/production.json
SERVE_PORT ?= 8080
THREADS ?= 2
ORT_INTRA_OP_THREADS ?= 1

serve: $(STAMP) ## run the prediction function on http://127.0.0.1:$(SERVE_PORT)/ (local store's production bundle)
	MODEL_URI=$(MODEL_URI) THREADS=$(THREADS) ORT_INTRA_OP_THREADS=$(ORT_INTRA_OP_THREADS) \
	  $(VENV)/bin/functions-framework --target predict --source functions/predict/main.py \
	  --host 127.0.0.1 --port $(SERVE_PORT)

bench-serve: $(STAMP) ## serving latency, HTTP load, cold start, RSS -> reports/bench_serve.{json,md}
	ORT_INTRA_OP_THREADS=$(ORT_INTRA_OP_THREADS) $(PY) -m benchmarks.bench_serve

# make bench-serve-compare [BENCH_FLAGS="--against REF"]: REF's product served in the same rounds
BENCH_FLAGS ?=
bench-serve-compare: $(STAMP) ## product function vs a one-file reference, logging on -> reports/bench_serve_compare.{json,md}
	$(PY) -m benchmarks.bench_serve_compare $(BENCH_FLAGS)

bench-memory: $(STAMP) ## function RSS under long-text load per allocator setting -> reports/bench_memory.{json,md}
	$(PY) -m benchmarks.bench_memory

# make chaos [CHAOS_FLAGS="--scenarios a,f --down-s 10"]: durations and counts as flags
# (python -m benchmarks.chaos --help); the defaults are production-like (30 s outage, SIGKILL
# 10 s after SIGTERM as Cloud Run does, 16 clients) and take several minutes. Not part of make test.
CHAOS_FLAGS ?=
chaos: $(STAMP) ## fault injection against the served function, bqemulator sink -> reports/chaos.{json,md}
	$(PY) -m benchmarks.chaos --flags "$(CHAOS_FLAGS)" $(CHAOS_FLAGS)

bench-rollout: $(STAMP) ## PSS with a shadow candidate loaded, live p50/p99 shadow on vs off -> reports/bench_rollout.{json,md}
	$(PY) -m benchmarks.bench_rollout

.PHONY: serve bench-serve bench-serve-compare bench-memory bench-rollout chaos
