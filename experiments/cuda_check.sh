#!/usr/bin/env bash
# The train job on a lent CUDA machine, in one call (experiments/gpu.md).
#
# What it needs beside the tree (both ignored by git, carried to the machine):
#   .whl/            the pinned wheels the GPU image lacks, for its Python 3.12: transformers,
#                    tokenizers, huggingface_hub, accelerate, optimum, optimum-onnx, jsonschema
#                    and its three helpers (made by `make gpu-carry`, experiments/gpu_carry.py)
#   .gpu/minilm/     the packaged MiniLM-L6 with its weights stored as fp16 and gzipped, so tree
#                    and wheels fit the 64 MiB the machine takes; made back into fp32 there.
#                    fp16 keeps 11 mantissa bits, more than the bf16 autocast the job uses on CUDA.
# Steps, each bounded in time, each writing to $OUT what it has even when the next one fails:
#   1. bench: the job's step (bucketed, padded) and a plain PyTorch loop, batch 128, length 64;
#   2. experiments/recipe_sweep.py: recipes x 3 seeds trained whole on the GPU, several at a time,
#      the best on validation and the current recipe then run end to end (export, gate, publish);
#   3. experiments/seed_summary.py per recipe run end to end: test scores and the behavioural tests.
# MODE=job: steps 1 and one end-to-end run of the job (SEED) instead of 2 and 3.
# Overrides for a rehearsal on a CPU box: PY, WHEELS=none, BASE, JOB_EXTRA, SWEEP_MINUTES,
# FINAL_MINUTES, PARALLEL, BENCH_EXAMPLES, BENCH_WARMUPS, JOB_SECONDS.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/cuda_check_out}
mkdir -p "$OUT"
exec > >(tee "$OUT/log.txt") 2>&1
PY=${PY:-python3}
WORK=${WORK:-/tmp/cuda_check}
mkdir -p "$WORK"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false

if [ "${WHEELS:-.whl}" != none ]; then
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl || exit 3
  export PYTHONPATH=/tmp/site
fi
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>/dev/null || true

BASE=${BASE:-$WORK/minilm}
if [ ! -f "$BASE/model.safetensors" ]; then
  mkdir -p "$BASE" && cp .gpu/minilm/*.json .gpu/minilm/*.txt "$BASE"/
  "$PY" - "$BASE" <<'EOF' || exit 4
import gzip, sys
from safetensors.torch import load, save_file
weights = load(gzip.decompress(open(".gpu/minilm/model.safetensors.gz", "rb").read()))
save_file(
    {k: (v.float() if v.is_floating_point() else v).contiguous() for k, v in weights.items()},
    sys.argv[1] + "/model.safetensors",
)
print(f"base model: {len(weights)} tensors made fp32 in {sys.argv[1]}")
EOF
fi
"$PY" - <<'EOF'
import importlib
from importlib.metadata import version
for name, dist in (("torch", "torch"), ("transformers", "transformers"),
                   ("tokenizers", "tokenizers"), ("optimum.exporters.onnx", "optimum-onnx"),
                   ("onnx", "onnx"), ("onnxruntime", "onnxruntime"), ("pandas", "pandas"),
                   ("numpy", "numpy"), ("sklearn", "scikit-learn"), ("accelerate", "accelerate"),
                   ("huggingface_hub", "huggingface_hub"), ("jsonschema", "jsonschema")):
    try:
        importlib.import_module(name)
        print(dist, version(dist))
    except Exception as e:  # say what is missing, go on: each step below stands alone
        print(dist, "NOT IMPORTABLE:", repr(e))
import torch
print("cuda:", torch.cuda.is_available(), torch.cuda.get_device_name(0) if torch.cuda.is_available() else "")
EOF

echo "== 1. bench ($(date -u +%T))"
# Cold: timing starts after 5 steps, so first uses of each batch shape are in it (as in a job's
# first epoch). Warm: after one untimed pass over the same batches (the job's later epochs).
for warmup in ${BENCH_WARMUPS:-5 64}; do
  timeout "${BENCH_SECONDS:-120}" "$PY" -m benchmarks.bench_train --batch-size 128 \
    --max-length 64 --examples "${BENCH_EXAMPLES:-8192}" --warmup-steps "$warmup" \
    --base-model "$BASE" --out "$OUT/bench_train_cuda_warmup$warmup" || echo "bench failed: $?"
done

if [ "${MODE:-sweep}" = job ]; then
  # One run of the job itself, end to end, alone on the GPU; its bundle comes back in parts.
  echo "== 2. the job, full profile, seed ${SEED:-42} ($(date -u +%T))"
  # shellcheck disable=SC2086
  timeout "${JOB_SECONDS:-200}" "$PY" -m train_job --profile full --base-model "$BASE" \
    --seed "${SEED:-42}" --store "$WORK/store" --work-dir "$WORK/runs" --log-every 1000 \
    --results-file "$OUT/train_full_cuda_seed${SEED:-42}.json" ${JOB_EXTRA:-} || echo "job failed: $?"
  bundle=$(ls -d "$WORK"/store/models/*/ 2>/dev/null | head -1)
  [ -z "$bundle" ] || tar cf - -C "$bundle" . | split -b 15m - "$OUT/bundle.tar.part-"
  echo "== done ($(date -u +%T))"
  exit 0
fi

echo "== 2. recipes ($(date -u +%T))"
# shellcheck disable=SC2086  # JOB_EXTRA is a list of flags
timeout $(( (${SWEEP_MINUTES:-3} + ${FINAL_MINUTES:-3}) * 60 + 60 )) "$PY" -m experiments.recipe_sweep \
  --out "$WORK/sweep" --seeds 42,43,44 --parallel "${PARALLEL:-8}" \
  --sweep-minutes "${SWEEP_MINUTES:-3}" --final-minutes "${FINAL_MINUTES:-3}" \
  --finalists 1 --always current \
  --variant current= \
  --variant handles0.1="--handle-augmentation 0.1" \
  --variant epochs10="--epochs 10 --patience 4 --average-from-epoch 5" \
  --variant batch16="--batch-size 16" \
  --variant lr5e-5="--learning-rate 5e-5" \
  --variant smoothing0.1="--label-smoothing 0.1" \
  -- --profile full --base-model "$BASE" --store "$WORK/store" --work-dir "$WORK/runs" \
  ${JOB_EXTRA:-} || echo "sweep failed: $?"

echo "== 3. summaries ($(date -u +%T))"
pids=()
for variant in $("$PY" -c "import json,sys; print(' '.join(json.load(open(sys.argv[1]))['run_whole']))" "$WORK/sweep/sweep.json" 2>/dev/null); do
  files=$(ls "$WORK/sweep/final_${variant}_seed"*.json 2>/dev/null)
  [ -n "$files" ] || continue
  # shellcheck disable=SC2086
  timeout "${SUMMARY_SECONDS:-150}" "$PY" -m experiments.seed_summary --out "$WORK/sweep/summary_$variant" $files \
    >/dev/null 2>"$WORK/sweep/logs/summary_$variant.err" &
  pids+=($!)
done
# Named pids: a bare `wait` would also wait for the tee above, which never ends.
[ ${#pids[@]} -eq 0 ] || wait "${pids[@]}"
tar czf "$OUT/sweep.tar.gz" -C "$WORK/sweep" . && echo "packed $(du -h "$OUT/sweep.tar.gz" | cut -f1)"
cat "$WORK"/sweep/summary_*.md 2>/dev/null | grep -E "^\| (4[234]|int8_weighted)" | cut -c1-160
echo "== done ($(date -u +%T))"
