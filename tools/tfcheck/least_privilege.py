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
interpolations inside the bucket name are fine). A resource with `for_each = local.<map>` is
checked once per map entry, with `each.value.<attribute>` read from that entry; a project or
bucket grant whose for_each is anything else, or whose map is not written out literally, is
refused when its body depends on `each` (the check could not see what it grants).
"""

from __future__ import annotations

import re
from typing import Any

from tools.tfcheck.findings import Finding
from tools.tfcheck.terraform_files import (
    TerraformFile,
    instance_address,
    instances,
    labelled,
    local_values,
)

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
_CHECKED = (*_ABOVE_PROJECT, _PROJECT, _BUCKET)
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
    locals_ = local_values(files)
    for file in files:
        for labels, body in labelled(file, "resource"):
            type_name = labels[0]
            if not _is_grant(type_name) or not type_name.startswith(_CHECKED):
                continue  # custom roles and audit configs grant nothing; others bind on a resource
            expanded = instances(body, locals_)
            if expanded is None and "each." in str(body):
                message = (
                    f"{'.'.join(labels)}: its for_each cannot be read offline, so neither can "
                    "what it grants; iterate a local map written out literally "
                    "(for_each = local.<name>)"
                )
                findings.append(Finding("least-privilege", file.path, message))
                continue
            for key, instance in (expanded or {"": body}).items():
                problem = _grant_problem(type_name, instance)
                if problem:
                    address = instance_address(labels, key)
                    findings.append(Finding("least-privilege", file.path, f"{address}: {problem}"))
    return findings


def _is_grant(type_name: str) -> bool:
    return type_name.endswith(tuple(f"_{kind}" for kind in _GRANTS))


def _grant_problem(type_name: str, body: dict[str, Any]) -> str | None:
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
