"""The offline provider schema read from cdktf-cdktf-provider-google is Terraform's, not cdktf's."""

from __future__ import annotations

from tools.tfcheck.provider_schema import load_provider_schema


def test_names_are_terraform_names_including_irregular_ones() -> None:
    schema = load_provider_schema()
    assert schema.provider_version.startswith("6.")
    bucket = schema.resources["google_storage_bucket"]
    assert {"name", "location"} <= bucket.required
    assert "uniform_bucket_level_access" in bucket.arguments  # camelCase in cdktf
    condition = bucket.blocks["lifecycle_rule"].blocks["condition"]
    assert "days_since_noncurrent_time" in condition.arguments
    # cdktf spells this detectMd5Hash; a plain camel->snake conversion would give detect_md5_hash.
    assert "detect_md5hash" in schema.resources["google_storage_bucket_object"].arguments
    job = schema.resources["google_cloud_run_v2_job"]
    assert "template" in job.required and "template" in job.blocks
    assert "default_labels" in schema.provider.arguments
    assert "google_storage_bucket" in schema.data_sources
