"""The offline Terraform checks pass on terraform/ and each one fails on a planted mistake."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.terraform.conftest import ROOT, TERRAFORM_DIR, plant
from tools.tfcheck.checkov_check import CheckovSummary, run_checkov
from tools.tfcheck.findings import Finding
from tools.tfcheck.fmt_check import check_format
from tools.tfcheck.least_privilege import check_least_privilege
from tools.tfcheck.provider_schema import ProviderSchema, load_provider_schema
from tools.tfcheck.public_access import check_public_access
from tools.tfcheck.references import check_references
from tools.tfcheck.schema_check import check_schema
from tools.tfcheck.terraform_files import load_module


@pytest.fixture(scope="session")
def provider_schema() -> ProviderSchema:
    return load_provider_schema()


@pytest.fixture(scope="session")
def checkov_on_repo() -> tuple[CheckovSummary, list[Finding]]:
    """checkov takes seconds: run it once on terraform/ for every test that needs its verdict."""
    return run_checkov(TERRAFORM_DIR)


def parsed(directory: Path):
    files, findings = load_module(directory)
    assert findings == []
    return files


# ---------------------------------------------------------------- the real configuration


def test_cli_runs_every_parsed_check_and_passes_on_the_repository() -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "tools.tfcheck",
            "--checks",
            "fmt,references,schema,public-access,least-privilege",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    for check in ("fmt", "references", "schema", "public-access", "least-privilege"):
        assert f"{check}: ok" in result.stdout


@pytest.mark.slow
def test_checkov_has_no_failed_check_and_every_skip_a_reason(checkov_on_repo) -> None:
    summary, findings = checkov_on_repo
    assert findings == [], "\n".join(map(str, findings))
    assert summary.failed == 0
    assert summary.passed >= 20  # it really scanned the resources
    assert all(": " in skip and len(skip.split(": ", 1)[1]) > 20 for skip in summary.skips)


def test_checks_find_resources_in_every_file(provider_schema: ProviderSchema) -> None:
    """Guards against a check passing because it saw nothing."""
    files = parsed(TERRAFORM_DIR)
    resource_files = {f.path.name for f in files if f.body.get("resource")}
    assert {"storage.tf", "bigquery.tf", "iam.tf", "jobs.tf", "function.tf"} <= resource_files
    assert check_schema(files, provider_schema) == []
    assert check_references(files) == []
    assert check_public_access(files) == []
    assert check_least_privilege(files) == []


# ---------------------------------------------------------------- each check bites


def test_schema_check_fails_on_a_misspelled_argument(
    terraform_copy: Path, provider_schema: ProviderSchema
) -> None:
    plant(
        terraform_copy / "function.tf",
        "available_memory                 =",
        "available_memroy                 =",
    )
    findings = check_schema(parsed(terraform_copy), provider_schema)
    assert len(findings) == 1
    assert "google_cloudfunctions2_function.predict.service_config" in findings[0].message
    assert "unknown argument 'available_memroy'" in findings[0].message


def test_schema_check_fails_on_a_missing_required_argument(
    terraform_copy: Path, provider_schema: ProviderSchema
) -> None:
    plant(terraform_copy / "storage.tf", "  location = var.region\n", "")
    findings = check_schema(parsed(terraform_copy), provider_schema)
    assert [f.message for f in findings] == [
        "google_storage_bucket.artifacts: required argument 'location' missing"
    ]


def test_schema_check_fails_on_a_block_written_as_an_argument(
    terraform_copy: Path, provider_schema: ProviderSchema
) -> None:
    plant(
        terraform_copy / "storage.tf",
        "  versioning {\n    enabled = true\n  }",
        "  versioning = { enabled = true }",
    )
    findings = check_schema(parsed(terraform_copy), provider_schema)
    assert len(findings) == 1 and "'versioning' is a block" in findings[0].message


def test_schema_check_looks_inside_dynamic_blocks(
    terraform_copy: Path, provider_schema: ProviderSchema
) -> None:
    plant(
        terraform_copy / "jobs.tf", "accelerator = node_selector.value", "gpu = node_selector.value"
    )
    messages = [f.message for f in check_schema(parsed(terraform_copy), provider_schema)]
    assert any("unknown argument 'gpu'" in m for m in messages)
    assert any("required argument 'accelerator' missing" in m for m in messages)


def test_schema_check_fails_on_an_unknown_resource_type(
    terraform_copy: Path, provider_schema: ProviderSchema
) -> None:
    plant(
        terraform_copy / "registry.tf",
        'resource "google_artifact_registry_repository" "images"',
        'resource "google_artifact_registry_repo" "images"',
    )
    messages = [f.message for f in check_schema(parsed(terraform_copy), provider_schema)]
    assert any("no resource google_artifact_registry_repo" in m for m in messages)


def test_reference_check_fails_on_a_dangling_resource_reference(terraform_copy: Path) -> None:
    plant(
        terraform_copy / "jobs.tf",
        "= google_service_account.accounts[each.key].email",
        "= google_service_account.account[each.key].email",
    )
    findings = check_references(parsed(terraform_copy))
    assert [f.message for f in findings] == [
        "google_service_account.account.email: no resource google_service_account.account"
    ]


def test_reference_check_reads_moved_blocks_to_but_not_from(terraform_copy: Path) -> None:
    """`from` names an address no longer declared; a `to` key missing from the for_each map
    would make an apply destroy the object at `from` and create a new one."""
    moved = terraform_copy / "moved.tf"
    plant(
        moved,
        'to   = google_storage_bucket_iam_member.artifacts["train_runs"]',
        'to   = google_storage_bucket_iam_member.artifacts["train_run"]',
    )
    plant(
        moved,
        'to   = google_cloud_run_v2_job.jobs["score"]',
        'to   = google_cloud_run_v2_job.job["score"]',
    )
    messages = sorted(f.message for f in check_references(parsed(terraform_copy)))
    assert messages[0] == ("google_cloud_run_v2_job.job: no resource google_cloud_run_v2_job.job")
    assert messages[1].startswith(
        'moved to google_storage_bucket_iam_member.artifacts["train_run"]: no such key'
    )
    assert len(messages) == 2


def test_reference_check_fails_on_unknown_variables_and_locals(terraform_copy: Path) -> None:
    # Inside a string interpolation and inside a for_each map: both are expressions to resolve.
    plant(
        terraform_copy / "main.tf",
        '"${var.project}-${var.name_prefix}-artifacts"',
        '"${var.projekt}-${var.name_prefix}-artifacts"',
    )
    plant(terraform_copy / "jobs.tf", "FND_STORE   = local.store_uri", "FND_STORE   = local.store")
    messages = sorted(f.message for f in check_references(parsed(terraform_copy)))
    assert messages == [
        "local.store: no local value 'store'",
        "var.projekt: no variable 'projekt'",
    ]


def test_reference_check_fails_on_a_duplicate_declaration(terraform_copy: Path) -> None:
    (terraform_copy / "extra.tf").write_text('variable "region" {\n  type = string\n}\n')
    messages = [f.message for f in check_references(parsed(terraform_copy))]
    assert "variable region is declared twice" in messages


def test_public_access_check_fails_on_an_unconditional_public_invoker(
    terraform_copy: Path,
) -> None:
    (terraform_copy / "extra.tf").write_text(
        'resource "google_cloud_run_v2_service_iam_member" "everyone" {\n'
        "  location = google_cloudfunctions2_function.predict.location\n"
        "  name     = google_cloudfunctions2_function.predict.name\n"
        '  role     = "roles/run.invoker"\n'
        '  member   = "allUsers"\n'
        "}\n"
    )
    findings = check_public_access(parsed(terraform_copy))
    assert len(findings) == 1
    assert "google_cloud_run_v2_service_iam_member.everyone grants allUsers" in findings[0].message


def test_public_access_check_reads_the_map_a_grant_iterates(terraform_copy: Path) -> None:
    jobs_invokers = terraform_copy / "iam.tf"
    plant(
        jobs_invokers,
        "  member   = google_service_account.accounts[each.value.account].member",
        "  member   = each.value.member",
    )
    plant(
        jobs_invokers,
        '    scheduler_runs_score = {\n      account = "scheduler"',
        '    scheduler_runs_score = {\n      account = "scheduler"\n      member  = "allUsers"',
    )
    findings = check_public_access(parsed(terraform_copy))
    assert len(findings) == 1
    assert "google_cloud_run_v2_job_iam_member.invokers grants allUsers" in findings[0].message


def test_public_access_check_fails_when_the_opt_in_defaults_to_true(terraform_copy: Path) -> None:
    variables = terraform_copy / "variables.tf"
    text = variables.read_text()
    block = text[text.index('variable "allow_unauthenticated"') :]
    variables.write_text(
        text.replace(block, block.replace("default     = false", "default     = true", 1))
    )
    findings = check_public_access(parsed(terraform_copy))
    assert len(findings) == 1 and "defaults to True" in findings[0].message


def test_fmt_check_fails_on_a_misformatted_file(terraform_copy: Path) -> None:
    plant(
        terraform_copy / "storage.tf",
        "  location = var.region\n",
        "  location      =    var.region\n",
    )
    findings = check_format(terraform_copy)
    assert [f.file.name for f in findings if f.file] == ["storage.tf"]
    assert check_format(TERRAFORM_DIR) == []


@pytest.mark.slow
def test_checkov_fails_on_a_public_bucket_and_on_a_skip_without_reason(
    terraform_copy: Path,
) -> None:
    storage = terraform_copy / "storage.tf"
    plant(storage, '  public_access_prevention    = "enforced"\n', "")
    text = storage.read_text()
    start = text.index("#checkov:skip=CKV_GCP_62:")
    storage.write_text(text[:start] + "#checkov:skip=CKV_GCP_62" + text[text.index("\n", start) :])
    summary, findings = run_checkov(terraform_copy)
    messages = [f.message for f in findings]
    assert any(m.startswith("CKV_GCP_114 google_storage_bucket.artifacts") for m in messages)
    assert "CKV_GCP_62 google_storage_bucket.artifacts: skipped without a reason" in messages
    assert summary.failed >= 1
