# Remote state in Google Cloud Storage.
#
# The state bucket is NOT created by this configuration (a configuration cannot store its state in
# a bucket it creates itself). Create it once, with versioning so an overwritten state can be
# recovered:
#
#   gcloud storage buckets create gs://PROJECT-tfstate --location=REGION \
#     --uniform-bucket-level-access --public-access-prevention
#   gcloud storage buckets update gs://PROJECT-tfstate --versioning
#
# The backend is configured partially: bucket and prefix are passed at init time, so one
# configuration serves several projects or environments:
#
#   make tf-init PROJECT=my-project TF_STATE_BUCKET=my-project-tfstate
#   # = terraform -chdir=terraform init -backend-config=bucket=my-project-tfstate \
#   #     -backend-config=prefix=fakenews-detector
#
# For a throw-away local trial, `terraform init -backend=false` (validate only) or delete this file
# to fall back to local state (never commit *.tfstate; .gitignore excludes it).

terraform {
  backend "gcs" {}
}
