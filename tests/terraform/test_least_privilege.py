"""The least-privilege check: project-level grants only for allow-listed roles, storage roles only
on an object-name prefix. Each test writes a small module into tmp and runs the check on it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.terraform.conftest import TERRAFORM_DIR, plant
from tools.tfcheck.least_privilege import PROJECT_LEVEL_ROLES, check_least_privilege
from tools.tfcheck.terraform_files import load_module

BUCKET = 'resource "google_storage_bucket" "store" {\n  name     = "b"\n  location = "EU"\n}\n'
OBJECTS = "projects/_/buckets/${google_storage_bucket.store.name}/objects"


def findings_for(tmp_path: Path, resources: str) -> list[str]:
    (tmp_path / "main.tf").write_text(BUCKET + resources)
    files, errors = load_module(tmp_path)
    assert errors == []
    return [f.message for f in check_least_privilege(files)]


def bucket_grant(name: str, condition: str | None, role: str = "roles/storage.objectViewer") -> str:
    block = ""
    if condition is not None:
        block = f'  condition {{\n    title      = "t"\n    expression = "{condition}"\n  }}\n'
    return (
        f'resource "google_storage_bucket_iam_member" "{name}" {{\n'
        "  bucket = google_storage_bucket.store.name\n"
        f'  role   = "{role}"\n'
        '  member = "serviceAccount:a@p.iam.gserviceaccount.com"\n'
        f"{block}}}\n"
    )


def project_grant(name: str, role: str, condition: str | None = None) -> str:
    block = ""
    if condition is not None:
        block = f'  condition {{\n    title      = "t"\n    expression = "{condition}"\n  }}\n'
    return (
        f'resource "google_project_iam_member" "{name}" {{\n'
        '  project = "p"\n'
        f'  role    = "{role}"\n'
        '  member  = "serviceAccount:a@p.iam.gserviceaccount.com"\n'
        f"{block}}}\n"
    )


OBJECT_UNDER_MODELS = (
    f"resource.type == 'storage.googleapis.com/Object' && "
    f"resource.name.startsWith('{OBJECTS}/models/')"
)
LIST_MODELS = (
    "resource.type == 'storage.googleapis.com/Bucket' && "
    "api.getAttribute('storage.googleapis.com/objectListPrefix', '').startsWith('models/')"
)


# ---------------------------------------------------------------- what passes


def test_prefix_conditions_pass_in_every_written_form(tmp_path: Path) -> None:
    escaped = OBJECT_UNDER_MODELS.replace("'", '\\"')  # "...startsWith(\"...\")" in HCL
    resources = (
        bucket_grant("single_quotes", OBJECT_UNDER_MODELS)
        + bucket_grant("double_quotes", escaped)
        + bucket_grant("with_listing", f"({OBJECT_UNDER_MODELS}) || ({LIST_MODELS})")
        + bucket_grant("one_object", f"resource.name == '{OBJECTS}/models/production.json'")
    )
    assert findings_for(tmp_path, resources) == []


def test_allow_listed_roles_pass_at_project_level_and_each_has_a_reason(tmp_path: Path) -> None:
    resources = "".join(
        project_grant(f"grant_{i}", role) for i, role in enumerate(PROJECT_LEVEL_ROLES)
    )
    assert findings_for(tmp_path, resources) == []
    assert all(len(reason) > 40 for reason in PROJECT_LEVEL_ROLES.values())


def test_a_project_level_storage_role_passes_only_on_one_buckets_prefix(tmp_path: Path) -> None:
    on_prefix = "resource.name.startsWith('projects/_/buckets/gcf-v2-sources-1-r/objects/fn/')"
    viewer = "roles/storage.objectViewer"
    assert findings_for(tmp_path, project_grant("ok", viewer, on_prefix)) == []
    [message] = findings_for(tmp_path, project_grant("all", viewer))
    assert message.startswith(f"google_project_iam_member.all: grants {viewer} at project level")


def test_grants_that_are_not_iam_bindings_are_ignored(tmp_path: Path) -> None:
    resources = (
        'resource "google_project_iam_custom_role" "r" {\n'
        '  role_id     = "r"\n  title       = "r"\n'
        '  permissions = ["bigquery.tables.updateData"]\n}\n'
        'resource "google_project_iam_audit_config" "a" {\n'
        '  project = "p"\n  service = "storage.googleapis.com"\n'
        '  audit_log_config {\n    log_type = "DATA_READ"\n  }\n}\n'
    )
    assert findings_for(tmp_path, resources) == []


# ---------------------------------------------------------------- what fails


@pytest.mark.parametrize(
    "role",
    ["roles/storage.admin", "roles/bigquery.dataEditor", "roles/editor", "roles/run.invoker"],
)
def test_a_project_level_grant_outside_the_allow_list_fails(tmp_path: Path, role: str) -> None:
    [message] = findings_for(tmp_path, project_grant("broad", role))
    assert message.startswith(f"google_project_iam_member.broad: grants {role} at project level")


def test_project_bindings_policies_and_grants_above_the_project_fail(tmp_path: Path) -> None:
    resources = (
        'resource "google_project_iam_binding" "b" {\n  project = "p"\n'
        '  role    = "roles/viewer"\n  members = ["user:a@example.com"]\n}\n'
        'resource "google_project_iam_policy" "p" {\n  project     = "p"\n'
        '  policy_data = "{}"\n}\n'
        'resource "google_folder_iam_member" "f" {\n  folder = "folders/1"\n'
        '  role   = "roles/bigquery.jobUser"\n  member = "user:a@example.com"\n}\n'
    )
    messages = findings_for(tmp_path, resources)
    assert len(messages) == 3
    assert any(m.startswith("google_project_iam_binding.b: grants roles/viewer") for m in messages)
    assert any(m.startswith("google_project_iam_policy.p: an authoritative") for m in messages)
    assert any(m.startswith("google_folder_iam_member.f: grants") for m in messages)


def test_a_storage_role_without_a_condition_fails(tmp_path: Path) -> None:
    [message] = findings_for(tmp_path, bucket_grant("whole", None, "roles/storage.objectUser"))
    assert message == (
        "google_storage_bucket_iam_member.whole: grants roles/storage.objectUser on the whole "
        "bucket: no condition; add one on an object-name prefix"
    )


@pytest.mark.parametrize(
    ("condition", "why"),
    [
        (f"resource.name.startsWith('{OBJECTS}/')", "prefix is empty"),
        ("request.time < timestamp('2030-01-01T00:00:00Z')", "names no object prefix"),
        (f"({OBJECT_UNDER_MODELS}) || resource.type == 'storage.googleapis.com/Bucket'", "Bucket"),
        (
            f"({OBJECT_UNDER_MODELS}) || ({LIST_MODELS.replace('models/', '')})",
            "objectListPrefix",
        ),
    ],
    ids=["empty-prefix", "no-prefix", "bucket-clause", "empty-list-prefix"],
)
def test_a_condition_that_reaches_the_whole_bucket_fails(
    tmp_path: Path, condition: str, why: str
) -> None:
    [message] = findings_for(tmp_path, bucket_grant("loose", condition))
    assert message.startswith("google_storage_bucket_iam_member.loose: grants")
    assert why in message


def test_a_bucket_policy_fails(tmp_path: Path) -> None:
    resources = (
        'resource "google_storage_bucket_iam_policy" "p" {\n'
        "  bucket      = google_storage_bucket.store.name\n"
        '  policy_data = "{}"\n}\n'
    )
    [message] = findings_for(tmp_path, resources)
    assert "authoritative bucket policy" in message


# ---------------------------------------------------------------- for_each over a local map

GRANT_MAP = (
    "locals {{\n  grants = {{\n"
    '    reads_models = {{\n      role       = "roles/storage.objectViewer"\n'
    '      expression = "{first}"\n    }}\n'
    '    writes_models = {{\n      role       = "{role}"\n'
    '      expression = "{second}"\n    }}\n'
    "  }}\n}}\n"
)


def each_grant(for_each: str) -> str:
    """A bucket grant per entry of the map for_each iterates."""
    return (
        'resource "google_storage_bucket_iam_member" "grants" {\n'
        f"  for_each = {for_each}\n\n"
        "  bucket = google_storage_bucket.store.name\n"
        "  role   = each.value.role\n"
        '  member = "serviceAccount:a@p.iam.gserviceaccount.com"\n'
        "  condition {\n"
        '    title      = "${each.key}"\n'
        "    expression = each.value.expression\n"
        "  }\n}\n"
    )


def test_each_entry_of_a_local_map_is_checked_as_its_own_grant(tmp_path: Path) -> None:
    ok = GRANT_MAP.format(
        first=OBJECT_UNDER_MODELS, role="roles/storage.objectCreator", second=OBJECT_UNDER_MODELS
    )
    assert findings_for(tmp_path, ok + each_grant("local.grants")) == []
    whole = f"resource.name.startsWith('{OBJECTS}/')"
    widened = GRANT_MAP.format(
        first=OBJECT_UNDER_MODELS, role="roles/storage.objectAdmin", second=whole
    )
    [message] = findings_for(tmp_path, widened + each_grant("local.grants"))
    assert message.startswith(
        'google_storage_bucket_iam_member.grants["writes_models"]: grants '
        "roles/storage.objectAdmin on the whole bucket"
    )


def test_a_project_role_widened_in_a_local_map_fails(tmp_path: Path) -> None:
    resources = (
        "locals {\n  roles = {\n"
        '    queries = { role = "roles/bigquery.jobUser" }\n'
        '    logs    = { role = "roles/logging.admin" }\n'
        "  }\n}\n"
        'resource "google_project_iam_member" "roles" {\n'
        "  for_each = local.roles\n\n"
        '  project = "p"\n'
        "  role    = each.value.role\n"
        '  member  = "serviceAccount:a@p.iam.gserviceaccount.com"\n}\n'
    )
    [message] = findings_for(tmp_path, resources)
    assert message.startswith(
        'google_project_iam_member.roles["logs"]: grants roles/logging.admin at project level'
    )


@pytest.mark.parametrize(
    "for_each",
    ["merge(local.grants, {})", "{ for k, v in local.grants : k => v }", "local.missing"],
)
def test_a_grant_whose_for_each_cannot_be_read_is_refused(tmp_path: Path, for_each: str) -> None:
    ok = GRANT_MAP.format(
        first=OBJECT_UNDER_MODELS, role="roles/storage.objectCreator", second=OBJECT_UNDER_MODELS
    )
    [message] = findings_for(tmp_path, ok + each_grant(for_each))
    assert message.startswith(
        "google_storage_bucket_iam_member.grants: its for_each cannot be read offline"
    )


# ---------------------------------------------------------------- the real configuration


def test_the_configuration_passes_and_plants_are_caught(terraform_copy: Path) -> None:
    files, _ = load_module(TERRAFORM_DIR)
    assert check_least_privilege(files) == []
    iam = terraform_copy / "iam.tf"
    # The function's read of models/ widened to the whole bucket (its map entry's prefix emptied);
    # the monitor made project Editor; the score job's read of scores/ left without a condition.
    text = iam.read_text()
    start = text.index("    function_reads_models = {")
    entry = text[start : text.index("\n    }\n", start)]
    iam.write_text(text.replace(entry, entry.replace("/objects/models/'", "/objects/'")))
    plant(
        iam,
        '      account = "monitor"\n      role    = "roles/bigquery.jobUser"',
        '      account = "monitor"\n      role    = "roles/editor"',
    )
    text = iam.read_text()
    start = text.index("    score_reads_scores = {")
    entry = text[start : text.index("\n    }\n", start)]
    iam.write_text(text.replace(entry, re.sub(r"\n      expression .*", "", entry)))
    files, _ = load_module(terraform_copy)
    messages = sorted(f.message for f in check_least_privilege(files))
    assert len(messages) == 3
    assert messages[0].startswith(
        'google_project_iam_member.project_level["monitor_query_jobs"]: grants roles/editor'
    )
    assert messages[1] == (
        'google_storage_bucket_iam_member.artifacts["function_reads_models"]: grants '
        "roles/storage.objectViewer on the whole bucket: the condition's object prefix is "
        "empty, which is every object of the bucket"
    )
    assert messages[2].startswith(
        'google_storage_bucket_iam_member.artifacts["score_reads_scores"]: grants '
        "roles/storage.objectViewer on the whole bucket: the condition names no object prefix"
    )
