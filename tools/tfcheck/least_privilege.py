"""Roles are granted on the resource they are for, and storage roles on an object-name prefix.

Two rules, on every IAM resource of the module:

- project (or folder, organization) level: a grant is allowed only for a role in
  PROJECT_LEVEL_ROLES, the roles Google offers at project level only, each with the reason; or
  for a storage role whose condition confines it to an object prefix of one bucket (the same rule
  as below, for a bucket the module cannot bind on, such as one a Google service creates). An
  authoritative policy resource (`*_iam_policy`) at these levels is refused: it cannot be read
  role by role.
- bucket level (`google_storage_bucket_iam_*`): every grant carries a condition that names an
  object prefix, `resource.name.startsWith('projects/_/buckets/<bucket>/objects/<prefix>')` or
  `resource.name == '.../objects/<name>'` with a non-empty prefix; a clause on the bucket itself
  (`resource.type == 'storage.googleapis.com/Bucket'`, what objects.list is checked on) is allowed
  only together with a non-empty `storage.googleapis.com/objectListPrefix`, so a listing is
  confined to the same prefix. A bucket-level `google_storage_bucket_iam_policy` is refused.

The expression is read as written in the .tf file, so the prefix must be literal there (Terraform
interpolations inside the bucket name are fine).
"""

from __future__ import annotations

import re
from typing import Any

from tools.tfcheck.findings import Finding
from tools.tfcheck.terraform_files import TerraformFile, labelled

# Roles Google offers at project level only, with the reason: nothing narrower exists to bind on.
PROJECT_LEVEL_ROLES: dict[str, str] = {
    "roles/bigquery.jobUser": (
        "BigQuery jobs (queries, loads) belong to a project: bigquery.jobs.create cannot be "
        "granted on a dataset or table, and the role carries no data access"
    ),
    "roles/logging.logWriter": (
        "log entries are written to a project (logging.logEntries.create); Cloud Logging has no "
        "narrower resource to grant it on"
    ),
}

_ABOVE_PROJECT = ("google_organization_iam_", "google_folder_iam_")
_PROJECT = "google_project_iam_"
_BUCKET = "google_storage_bucket_iam_"
_GRANTS = ("member", "binding", "policy")
_OBJECT_CLAUSE = re.compile(
    r"resource\.name(?:\.startsWith\(\s*|\s*==\s*)['\"]"
    r"projects/_/buckets/(?P<bucket>[^/'\"]+)/objects/(?P<prefix>[^'\"]*)['\"]"
)
_LIST_CLAUSE = re.compile(
    r"api\.getAttribute\(\s*['\"]storage\.googleapis\.com/objectListPrefix['\"]\s*,\s*"
    r"['\"]['\"]\s*\)\.startsWith\(\s*['\"](?P<prefix>[^'\"]*)['\"]"
)
_BUCKET_TYPE = "storage.googleapis.com/Bucket"


def check_least_privilege(files: list[TerraformFile]) -> list[Finding]:
    findings: list[Finding] = []
    for file in files:
        for labels, body in labelled(file, "resource"):
            type_name, address = labels[0], ".".join(labels)
            problem = _grant_problem(type_name, body)
            if problem:
                findings.append(Finding("least-privilege", file.path, f"{address}: {problem}"))
    return findings


def _grant_problem(type_name: str, body: dict[str, Any]) -> str | None:
    if not type_name.endswith(tuple(f"_{kind}" for kind in _GRANTS)):
        return None  # custom roles, audit configs, ... grant nothing
    role = _text(body.get("role", ""))
    if type_name.startswith(_ABOVE_PROJECT):
        return f"grants {role or 'roles'} above the project; grant on the resource instead"
    if type_name.startswith(_PROJECT):
        if type_name.endswith("_policy"):
            return "an authoritative project policy cannot be checked role by role; use _member"
        if role in PROJECT_LEVEL_ROLES:
            return None
        if role.startswith("roles/storage."):
            problem = _prefix_problem(body)
            return f"grants {role} at project level: {problem}" if problem else None
        allowed = ", ".join(sorted(PROJECT_LEVEL_ROLES))
        return (
            f"grants {role} at project level; bind it on the resource it is for "
            f"(project level is allowed only for {allowed})"
        )
    if type_name.startswith(_BUCKET):
        if type_name.endswith("_policy"):
            return "an authoritative bucket policy cannot be checked grant by grant; use _member"
        problem = _prefix_problem(body)
        return f"grants {role} on the whole bucket: {problem}" if problem else None
    return None


def _prefix_problem(body: dict[str, Any]) -> str | None:
    """Why the condition does not confine the grant to an object prefix (None when it does)."""
    conditions = body.get("condition") or []
    if not conditions:
        return "no condition; add one on an object-name prefix"
    expression = _text(conditions[0].get("expression", ""))
    objects = list(_OBJECT_CLAUSE.finditer(expression))
    if not objects:
        return f"the condition names no object prefix: {expression!r}"
    if any(not match["prefix"] for match in objects):
        return "the condition's object prefix is empty, which is every object of the bucket"
    if _BUCKET_TYPE in expression:
        listings = list(_LIST_CLAUSE.finditer(expression))
        if not listings or any(not match["prefix"] for match in listings):
            return (
                f"the {_BUCKET_TYPE} clause grants the whole bucket; confine it with "
                "api.getAttribute('storage.googleapis.com/objectListPrefix', '')"
                ".startsWith('<prefix>')"
            )
    return None


def _text(raw: Any) -> str:
    """A string attribute as written: hcl2 keeps the quotes and the escapes of inner quotes."""
    text = str(raw)
    if len(text) >= 2 and text[0] == text[-1] == '"':
        text = text[1:-1]
    return text.replace('\\"', '"')
