"""Resource, data source and provider blocks against the hashicorp/google provider schema."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tools.tfcheck.findings import Finding
from tools.tfcheck.provider_schema import BlockSchema, ProviderSchema
from tools.tfcheck.terraform_files import TerraformFile, label, labelled

# Terraform's own arguments and blocks, valid in every resource and data source.
META_ARGUMENTS = frozenset({"count", "for_each", "depends_on", "provider"})
META_BLOCKS = frozenset({"lifecycle", "provisioner", "connection"})
DYNAMIC_ARGUMENTS = frozenset({"for_each", "iterator", "labels"})
GOOGLE_PROVIDERS = frozenset({"google", "google-beta"})


def check_schema(files: list[TerraformFile], schema: ProviderSchema) -> list[Finding]:
    findings: list[Finding] = []
    for file in files:
        for kind, known in (("resource", schema.resources), ("data", schema.data_sources)):
            for labels, body in labelled(file, kind):
                type_name, address = labels[0], ".".join(labels)
                if not type_name.startswith("google_"):
                    continue  # other providers are not described by this schema
                if type_name not in known:
                    version = schema.provider_version
                    message = f"{address}: google provider {version} has no {kind} {type_name}"
                    findings.append(Finding("schema", file.path, message))
                    continue
                findings += _check_body(body, known[type_name], address, file.path, top=True)
        for labels, body in labelled(file, "provider"):
            if labels and labels[0] in GOOGLE_PROVIDERS:
                address = f"provider.{labels[0]}"
                findings += _check_body(body, schema.provider, address, file.path, top=False)
    return findings


def _check_body(
    body: dict[str, Any], schema: BlockSchema, where: str, path: Path, *, top: bool
) -> list[Finding]:
    findings: list[Finding] = []
    present: set[str] = set()
    for key, value in body.items():
        if key.startswith("__"):
            continue  # hcl2 markers such as __is_block__
        if top and (key in META_ARGUMENTS or key in META_BLOCKS):
            continue
        if key == "dynamic" and isinstance(value, list):
            for dynamic in value:
                for raw_name, spec in dynamic.items():
                    if raw_name.startswith("__"):
                        continue
                    name = label(raw_name)
                    present.add(name)
                    findings += _check_dynamic(name, spec, schema, f"{where}.dynamic.{name}", path)
            continue
        present.add(key)
        if _is_block_list(value):
            if key not in schema.blocks:
                findings.append(_unknown(key, "block", schema, where, path))
                continue
            inner = schema.blocks[key]
            for block in value:
                findings += _check_body(block, inner, f"{where}.{key}", path, top=False)
        elif key not in schema.arguments:
            findings.append(_unknown(key, "argument", schema, where, path))
    for missing in sorted(schema.required - present):
        kind = "block" if missing in schema.blocks else "argument"
        findings.append(Finding("schema", path, f"{where}: required {kind} {missing!r} missing"))
    return findings


def _check_dynamic(
    name: str, spec: dict[str, Any], schema: BlockSchema, where: str, path: Path
) -> list[Finding]:
    if name not in schema.blocks:
        return [_unknown(name, "block", schema, where, path)]
    findings = [
        Finding("schema", path, f"{where}: unknown argument {key!r} of a dynamic block")
        for key in spec
        if not key.startswith("__") and key not in DYNAMIC_ARGUMENTS and key != "content"
    ]
    contents = spec.get("content", [])
    if not _is_block_list(contents):
        return [*findings, Finding("schema", path, f"{where}: dynamic block without content")]
    for content in contents:
        findings += _check_body(content, schema.blocks[name], where, path, top=False)
    return findings


def _unknown(key: str, kind: str, schema: BlockSchema, where: str, path: Path) -> Finding:
    if kind == "block" and key in schema.arguments:
        return Finding("schema", path, f"{where}: {key!r} is an argument, write `{key} = ...`")
    if kind == "argument" and key in schema.blocks:
        return Finding("schema", path, f"{where}: {key!r} is a block, write `{key} {{ ... }}`")
    allowed = ", ".join(sorted(schema.arguments | set(schema.blocks)))
    return Finding("schema", path, f"{where}: unknown {kind} {key!r} (allowed: {allowed})")


def _is_block_list(value: Any) -> bool:
    return (
        isinstance(value, list)
        and bool(value)
        and all(isinstance(item, dict) and item.get("__is_block__") for item in value)
    )
