"""Parse the .tf files of one Terraform module directory with python-hcl2."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import hcl2
from lark import Tree
from lark.exceptions import LarkError

from tools.tfcheck.findings import Finding


@dataclass
class TerraformFile:
    path: Path
    body: dict[str, Any]  # hcl2.loads(): blocks are lists of dicts marked "__is_block__"
    tree: Tree  # raw Lark parse tree, for expressions (references)


def load_module(directory: Path) -> tuple[list[TerraformFile], list[Finding]]:
    """All *.tf files of the directory (not recursive: a module is one directory)."""
    files: list[TerraformFile] = []
    findings: list[Finding] = []
    for path in sorted(directory.glob("*.tf")):
        text = path.read_text()
        try:
            files.append(TerraformFile(path, hcl2.loads(text), hcl2.parses_to_tree(text)))
        except (LarkError, ValueError) as error:
            findings.append(Finding("syntax", path, f"cannot parse: {error}".splitlines()[0]))
    if not files and not findings:
        findings.append(Finding("syntax", directory, "no .tf files"))
    return files, findings


def label(raw: str) -> str:
    """Block labels come back quoted from hcl2 ('"google_storage_bucket"')."""
    return raw[1:-1] if len(raw) >= 2 and raw[0] == raw[-1] == '"' else raw


def blocks(file: TerraformFile, kind: str) -> list[dict[str, Any]]:
    """Top-level blocks of one kind (resource, data, variable, ...)."""
    return list(file.body.get(kind, []))


def labelled(file: TerraformFile, kind: str) -> list[tuple[list[str], dict[str, Any]]]:
    """(labels, body) of each top-level block of a kind: resource "t" "n" -> (["t", "n"], body)."""
    found: list[tuple[list[str], dict[str, Any]]] = []
    for block in blocks(file, kind):
        found.extend(_unwrap(block, []))
    return found


def _unwrap(node: dict[str, Any], labels: list[str]) -> list[tuple[list[str], dict[str, Any]]]:
    if node.get("__is_block__"):
        return [(labels, node)]
    found: list[tuple[list[str], dict[str, Any]]] = []
    for key, inner in node.items():
        if isinstance(inner, dict):
            found.extend(_unwrap(inner, [*labels, label(key)]))
    return found


def local_values(files: list[TerraformFile]) -> dict[str, Any]:
    """Every local value of the module, by name, as hcl2 gives it (a literal map is a dict)."""
    values: dict[str, Any] = {}
    for file in files:
        for block in blocks(file, "locals"):
            values.update((key, value) for key, value in block.items() if not key.startswith("__"))
    return values


_LOCAL_REFERENCE = re.compile(r"^\$\{local\.(\w+)\}$")
_EACH_VALUE = re.compile(r"\$\{each\.value\.(\w+)\}")
_EACH_KEY = "${each.key}"


def iterated_local(body: dict[str, Any]) -> str | None:
    """The local a resource's for_each iterates when it is written `for_each = local.<name>`."""
    match = _LOCAL_REFERENCE.match(str(body.get("for_each", "")))
    return match[1] if match else None


def instances(body: dict[str, Any], locals_: dict[str, Any]) -> dict[str, dict[str, Any]] | None:
    """The resource's instances, by for_each key ("" for a resource without for_each), each body
    with `each.key` and `each.value.<attribute>` replaced by what the local map holds for that key.

    Only `for_each = local.<name>` over a map written out literally can be read offline; any other
    for_each gives None, so that a check can refuse what it cannot see.
    """
    if "for_each" not in body:
        return {"": body}
    name = iterated_local(body)
    written = locals_.get(name) if name else None
    if not isinstance(written, dict):
        return None
    entries = {key: entry for key, entry in written.items() if not key.startswith("__")}
    if not all(isinstance(entry, dict) for entry in entries.values()):
        return None
    top = {k: v for k, v in body.items() if k != "for_each"}
    return {key: _substitute(top, key, entry) for key, entry in entries.items()}


def instance_address(labels: list[str], key: str) -> str:
    """google_x.name, or google_x.name["key"] for a for_each instance."""
    address = ".".join(labels)
    return f'{address}["{key}"]' if key else address


def _substitute(node: Any, key: str, entry: dict[str, Any]) -> Any:
    if isinstance(node, dict):
        return {k: _substitute(v, key, entry) for k, v in node.items()}
    if isinstance(node, list):
        return [_substitute(item, key, entry) for item in node]
    if not isinstance(node, str):
        return node
    if node == _EACH_KEY:
        return f'"{key}"'
    whole = _EACH_VALUE.fullmatch(node)
    if whole and whole[1] in entry:
        return entry[whole[1]]  # as written in the map: a quoted string, a dict, an expression

    def inline(match: re.Match[str]) -> str:
        value = entry.get(match[1])
        if isinstance(value, str) and len(value) >= 2 and value[0] == value[-1] == '"':
            return value[1:-1]  # a string literal inside a template: its text
        return match[0]

    return _EACH_VALUE.sub(inline, node.replace(_EACH_KEY, key))
