"""No IAM grant to the whole internet unless the operator asked for it.

A public principal (allUsers, allAuthenticatedUsers) may appear in an IAM resource only when
that resource is created conditionally on `var.allow_unauthenticated` (count or for_each), and
that variable must default to false. checkov has no check for google_cloud_run_v2_service_iam_*
(how a 2nd gen function is invoked), hence this policy. A resource with `for_each = local.<name>`
is read together with that local, whose entries may hold the members; such a resource is never
gated (its for_each names the map, not the opt-in), so a public member there always fails.
"""

from __future__ import annotations

import json
from typing import Any

from tools.tfcheck.findings import Finding
from tools.tfcheck.terraform_files import TerraformFile, iterated_local, labelled, local_values

PUBLIC_PRINCIPALS = ("allUsers", "allAuthenticatedUsers")
OPT_IN_VARIABLE = "allow_unauthenticated"
_GATES = ("count", "for_each")


def check_public_access(files: list[TerraformFile]) -> list[Finding]:
    findings: list[Finding] = []
    opt_in_default = _opt_in_default(files)
    locals_ = local_values(files)
    for file in files:
        for labels, body in labelled(file, "resource"):
            if "_iam_" not in labels[0]:
                continue
            name = iterated_local(body)
            iterated = json.dumps(locals_.get(name)) if name else ""
            principals = [p for p in PUBLIC_PRINCIPALS if p in _grants(body) + iterated]
            if not principals:
                continue
            address = ".".join(labels)
            gated = any(f"var.{OPT_IN_VARIABLE}" in str(body.get(gate, "")) for gate in _GATES)
            if not gated:
                message = (
                    f"{address} grants {', '.join(principals)} unconditionally; "
                    f"create it only when var.{OPT_IN_VARIABLE} is true"
                )
                findings.append(Finding("public-access", file.path, message))
            elif opt_in_default is not False:
                message = (
                    f"{address} grants {', '.join(principals)} and var.{OPT_IN_VARIABLE} "
                    f"defaults to {opt_in_default!r}; public access must be opt-in (default false)"
                )
                findings.append(Finding("public-access", file.path, message))
    return findings


def _grants(body: dict[str, Any]) -> str:
    """The principals a resource grants, as text (member, members, or a policy document)."""
    return json.dumps([body.get(key) for key in ("member", "members", "policy_data")])


def _opt_in_default(files: list[TerraformFile]) -> Any:
    for file in files:
        for labels, body in labelled(file, "variable"):
            if labels == [OPT_IN_VARIABLE]:
                return body.get("default")
    return None
