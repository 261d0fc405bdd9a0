"""Every reference in an expression names something the module declares.

Expressions are walked in the Lark parse tree (interpolations inside strings included), so a
reference is a traversal `root.attr...`; what `root` means decides what must exist:
var.X (variable), local.X (locals), module.X (module), data.T.N (data source), T.N (resource).
Names bound by for-expressions and dynamic blocks are in scope where they are bound, and
Terraform's own objects (each, count, self, path, terraform) are always known.

A `moved` block's `from` names an address the configuration no longer declares (that is what it
is for), so only its `to` is resolved; when `to` names a key of a resource whose for_each iterates
a literal local map, the key must be one of the map's, or the apply would destroy the object at
`from` and create another.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from lark import Token, Tree

from tools.tfcheck.findings import Finding
from tools.tfcheck.terraform_files import (
    TerraformFile,
    instances,
    label,
    labelled,
    local_values,
)

BUILTIN_ROOTS = frozenset({"each", "count", "self", "path", "terraform"})
_DECLARATION_KINDS = ("variable", "local", "module", "resource", "data")
_TRAVERSALS = frozenset(
    {"get_attr_expr_term", "index_expr_term", "attr_splat_expr_term", "full_splat_expr_term"}
)
_MOVED_TO = re.compile(r'^\$\{(?P<resource>[\w-]+\.[\w-]+)\["(?P<key>[^"]*)"\]\}$')


@dataclass(frozen=True)
class Declarations:
    variables: frozenset[str]
    locals: frozenset[str]
    modules: frozenset[str]
    resources: frozenset[str]  # "type.name"
    data_sources: frozenset[str]  # "type.name"


def check_references(files: list[TerraformFile]) -> list[Finding]:
    declarations, findings = _declarations(files)
    for file in files:
        for chain in _references(file.tree):
            problem = _unresolved(chain, declarations)
            if problem:
                findings.append(Finding("references", file.path, problem))
    findings += _moved_key_problems(files)
    return findings


def _moved_key_problems(files: list[TerraformFile]) -> list[Finding]:
    locals_ = local_values(files)
    keys: dict[str, list[str]] = {}
    for file in files:
        for labels, body in labelled(file, "resource"):
            expanded = instances(body, locals_)
            if expanded is not None and "for_each" in body:
                keys[".".join(labels)] = sorted(expanded)
    findings: list[Finding] = []
    for file in files:
        for moved in file.body.get("moved", []):
            match = _MOVED_TO.match(str(moved.get("to", "")))
            if match and match["resource"] in keys and match["key"] not in keys[match["resource"]]:
                message = (
                    f'moved to {match["resource"]}["{match["key"]}"]: no such key in its '
                    f"for_each map ({', '.join(keys[match['resource']])})"
                )
                findings.append(Finding("references", file.path, message))
    return findings


def _declarations(files: list[TerraformFile]) -> tuple[Declarations, list[Finding]]:
    named: dict[str, list[tuple[str, Path]]] = {kind: [] for kind in _DECLARATION_KINDS}
    for file in files:
        for kind in ("variable", "module", "resource", "data"):
            for labels, _ in labelled(file, kind):
                named[kind].append((".".join(labels), file.path))
        for block in file.body.get("locals", []):
            named["local"].extend((key, file.path) for key in block if not key.startswith("__"))
    findings: list[Finding] = []
    for kind, entries in named.items():
        counts = Counter(name for name, _ in entries)
        for name, path in entries:
            if counts[name] > 1:
                findings.append(Finding("references", path, f"{kind} {name} is declared twice"))
    names = {kind: frozenset(name for name, _ in entries) for kind, entries in named.items()}
    declarations = Declarations(
        variables=names["variable"],
        locals=names["local"],
        modules=names["module"],
        resources=names["resource"],
        data_sources=names["data"],
    )
    return declarations, findings


def _unresolved(chain: list[str], known: Declarations) -> str | None:
    root, rest = chain[0], chain[1:]
    text = ".".join(chain)
    if root == "var":
        return None if rest[0] in known.variables else f"{text}: no variable {rest[0]!r}"
    if root == "local":
        return None if rest[0] in known.locals else f"{text}: no local value {rest[0]!r}"
    if root == "module":
        return None if rest[0] in known.modules else f"{text}: no module {rest[0]!r}"
    if root == "data":
        if len(rest) < 2:
            return f"{text}: incomplete data source reference"
        name = f"{rest[0]}.{rest[1]}"
        return None if name in known.data_sources else f"{text}: no data source {name}"
    name = f"{root}.{rest[0]}"
    return None if name in known.resources else f"{text}: no resource {name}"


def _references(tree: Tree) -> list[list[str]]:
    found: list[list[str]] = []
    _walk(tree, frozenset(BUILTIN_ROOTS), found)
    return found


def _walk(node: Tree, bound: frozenset[str], found: list[list[str]]) -> None:
    if node.data in ("for_tuple_expr", "for_object_expr"):
        bound = bound | _for_names(node)
    elif node.data == "block":
        if _is_moved(node):
            for attribute in node.find_data("attribute"):
                if _name(attribute.children[0]) != "from":
                    _walk(attribute, bound, found)
            return
        bound = bound | _dynamic_iterator(node)
    elif node.data in _TRAVERSALS:
        chain = _chain(node)
        if chain and len(chain) > 1 and chain[0] not in bound:
            found.append(chain)
        if chain:  # the path is done; only index expressions inside it can hold more references
            for index in node.find_data("braces_index"):
                _walk(index, bound, found)
            return
    for child in node.children:
        if isinstance(child, Tree):
            _walk(child, bound, found)


def _chain(node: Tree) -> list[str] | None:
    """['google_storage_bucket', 'b', 'name'] for google_storage_bucket.b[0].name."""
    if node.data == "expr_term":
        inner = [child for child in node.children if isinstance(child, Tree)]
        if len(inner) != 1:
            return None  # parenthesised expression: its contents are walked on their own
        if inner[0].data == "identifier":
            return [_name(inner[0])]
        return _chain(inner[0]) if inner[0].data in _TRAVERSALS else None
    base = _chain(node.children[0]) if isinstance(node.children[0], Tree) else None
    if base is None:
        return None
    if node.data == "get_attr_expr_term":
        attr = node.children[1]
        names = [_name(child) for child in attr.children if isinstance(child, Tree)]
        return base + names[:1]
    return base  # index or splat: the path up to it is what must exist


def _for_names(node: Tree) -> frozenset[str]:
    intro = next(node.find_data("for_intro"))
    return frozenset(
        _name(child)
        for child in intro.children
        if isinstance(child, Tree) and child.data == "identifier"
    )


def _is_moved(node: Tree) -> bool:
    head = next((child for child in node.children if isinstance(child, Tree)), None)
    return head is not None and head.data == "identifier" and _name(head) == "moved"


def _dynamic_iterator(node: Tree) -> frozenset[str]:
    """`dynamic "env" { iterator = e ... }` binds `e` (default: the label, `env`) in its body."""
    head = [child for child in node.children if isinstance(child, Tree)]
    if not head or head[0].data != "identifier" or _name(head[0]) != "dynamic":
        return frozenset()
    label_node = next((child for child in head[1:] if child.data == "string"), None)
    names = {label(_text(label_node))} if label_node is not None else set()
    body = next((child for child in head if child.data == "body"), None)
    for attribute in body.find_pred(lambda t: t.data == "attribute") if body else []:
        key = attribute.children[0]
        if isinstance(key, Tree) and _name(key) == "iterator":
            names.add(_text(attribute.children[-1]).strip())
    return frozenset(names)


def _name(node: Tree) -> str:
    return "".join(str(token) for token in node.scan_values(lambda v: isinstance(v, Token)))


def _text(node: Tree) -> str:
    return _name(node)
