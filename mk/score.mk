# Batch scoring (score_job/): the same code as the Cloud Run job `score`, its tasks run as local
# processes. Settings (make VAR=value or environment):
#   INPUT (file, folder or glob; default: the bundled test split), SCORE_TEXT_COLUMNS,
#   SCORE_TASKS (default 4), SCORE_TABLE (default: local/scores.duckdb), STORE (the store with the
#   production bundle; shards go to <STORE>/scores). Other flags: FND_SCORE_<FLAG> variables.

INPUT ?= data/constraint-covid19-fakenews/english_test_with_labels.csv
SCORE_TEXT_COLUMNS ?= tweet
SCORE_TASKS ?= 4
SCORE_TABLE ?= duckdb://local/scores.duckdb
STORE ?= local/store

score: $(STAMP) ## score INPUT with SCORE_TASKS local task processes into SCORE_TABLE (shards in STORE/scores)
	$(PY) -m score_job.local --tasks $(SCORE_TASKS) -- --input $(INPUT) \
	  --text-columns $(SCORE_TEXT_COLUMNS) --store $(STORE) --table $(SCORE_TABLE)

bench-score: $(STAMP) ## job vs raw onnxruntime throughput, 100k synthetic posts -> reports/bench_score.{json,md}
	$(PY) -m benchmarks.bench_score

.PHONY: score bench-score
