# The prediction function (Cloud Functions 2nd gen = a Cloud Run service built from source).
# Source: build/function.zip from `make function-zip` (functions/predict/ and the packages it imports),
# uploaded under a content hash so every change of the code redeploys and nothing else does.

locals {
  function_vcpus       = max(1, floor(tonumber(var.function_cpu)))
  function_ort_threads = coalesce(var.function_ort_threads, max(1, floor(local.function_vcpus / var.function_threads)))
  # The solo session (a request alone in flight) gets every vCPU and no more: on 1 vCPU that is 1,
  # which turns it off (two spinning threads on one vCPU only take turns; serving_profile.md).
  function_solo_ort_threads = coalesce(var.function_solo_ort_threads, local.function_vcpus)
}

resource "google_storage_bucket_object" "function_source" {
  name   = "sources/predict-${filemd5(local.function_zip)}.zip"
  bucket = google_storage_bucket.artifacts.name
  source = local.function_zip
}

resource "google_cloudfunctions2_function" "predict" {
  #checkov:skip=CKV_GCP_124:A public HTTPS API for clients outside Google Cloud; every call is authorised by IAM (run.invoker only for invoker_members, allUsers only with allow_unauthenticated). Set function_ingress to ALLOW_INTERNAL_AND_GCLB behind a load balancer.
  name        = local.function_name
  location    = var.region
  description = "fakenews-detector: POST {\"instances\": [{\"text\": ...}]} -> predictions; GET -> health and model metadata."

  build_config {
    runtime           = "python311"
    entry_point       = var.function_entry_point
    service_account   = google_service_account.accounts["build"].id
    docker_repository = google_artifact_registry_repository.function_builds.id

    source {
      storage_source {
        bucket = google_storage_bucket.artifacts.name
        object = google_storage_bucket_object.function_source.name
      }
    }
  }

  service_config {
    service_account_email            = google_service_account.accounts["function"].email
    available_memory                 = var.function_memory
    available_cpu                    = var.function_cpu
    min_instance_count               = var.function_min_instances
    max_instance_count               = var.function_max_instances
    max_instance_request_concurrency = var.function_concurrency
    timeout_seconds                  = var.function_timeout_seconds
    all_traffic_on_latest_revision   = true
    # Reachable over HTTPS, but every call is authorised by IAM (invokers below).
    ingress_settings = var.function_ingress

    # PREDICTION_LOG is stdout by default: a JSON line per row, durable before the response
    # leaves (prediction_log_sink.tf).
    environment_variables = {
      MODEL_URI       = local.model_uri
      PREDICTION_LOG  = local.function_prediction_log
      DEAD_LETTER_URI = local.dead_letter_uri
      LOG_TEXT        = var.log_text ? "1" : "0"
      # Measured best (reports/bench_serve.md): one request at a time per process, onnxruntime
      # using every vCPU for it; further concurrent requests queue in the server for milliseconds.
      THREADS              = tostring(var.function_threads)
      ORT_INTRA_OP_THREADS = tostring(local.function_ort_threads)
      SOLO_ORT_THREADS     = tostring(local.function_solo_ort_threads)
    }
  }

  depends_on = [
    google_project_service.apis,
    google_project_iam_member.build_reads_function_source,
    google_artifact_registry_repository_iam_member.build_pushes_function_image,
    google_project_iam_member.project_level,
  ]
}

# Who may call the function: a 2nd gen function is invoked through its Cloud Run service, so the
# binding is run.invoker on that service (same name and region as the function).
resource "google_cloud_run_v2_service_iam_member" "invokers" {
  for_each = toset(var.invoker_members)

  location = google_cloudfunctions2_function.predict.location
  name     = google_cloudfunctions2_function.predict.name
  role     = "roles/run.invoker"
  member   = each.value
}

# Public access only when explicitly asked for (allow_unauthenticated, default false).
resource "google_cloud_run_v2_service_iam_member" "public" {
  count = var.allow_unauthenticated ? 1 : 0

  location = google_cloudfunctions2_function.predict.location
  name     = google_cloudfunctions2_function.predict.name
  role     = "roles/run.invoker"
  member   = "allUsers"
}
