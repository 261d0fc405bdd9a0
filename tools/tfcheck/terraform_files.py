"""Parse the .tf files of one Terraform module directory with python-hcl2."""

from __future__ import annotations

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
