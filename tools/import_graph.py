"""The product's import graph, read from the source with `ast` (nothing is imported).

Product modules are the deployables (`train_job`, `export`, `functions/predict`, `monitoring`,
`score_job`) and the shared packages (`packages/<name>/<name>`). An import counts wherever it
stands: at module level, or inside a function (such imports only defer the cost, the dependency
is the same).

    python -m tools.import_graph                                # the folder-level Mermaid graph
    python -m tools.import_graph --write docs/architecture.md   # ... into that file's block
    python -m tools.import_graph --cycles                       # module-level import cycles

`--write` replaces what stands between `<!-- import-graph:start -->` and
`<!-- import-graph:end -->`. `--cycles` exits 1 when it finds one; with `--all-imports` it counts
function-level imports too.
"""

from __future__ import annotations

import argparse
import ast
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEPLOYABLES = ("train_job", "export", "functions/predict", "monitoring", "score_job")
START = "<!-- import-graph:start -->"
END = "<!-- import-graph:end -->"


@dataclass(frozen=True)
class Module:
    name: str  # dotted, as imported: train_job.loop, serving_core.bundle, _errors
    unit: str  # the folder it ships in: train_job, functions/predict, packages/serving_core
    path: Path
    is_package: bool  # an __init__.py


@dataclass(frozen=True)
class Import:
    source: str
    target: str
    module_level: bool


def product_units(root: Path = ROOT) -> dict[str, tuple[Path, str]]:
    """unit -> (the folder its modules are imported from, the package folder inside it)."""
    units = {}
    for unit in DEPLOYABLES:
        folder = root / unit
        # functions/predict runs with its own folder as the root: its modules import each other
        # by bare name (`from _errors import ...`), so that folder is its import root.
        units[unit] = (folder, folder) if unit == "functions/predict" else (root, folder)
    for pyproject in sorted(root.glob("packages/*/pyproject.toml")):
        name = pyproject.parent.name
        units[f"packages/{name}"] = (pyproject.parent, pyproject.parent / name)
    return units


def product_modules(root: Path = ROOT) -> dict[str, Module]:
    """Every product module by dotted name."""
    modules = {}
    for unit, (import_root, folder) in product_units(root).items():
        for path in sorted(folder.rglob("*.py")):
            parts = path.relative_to(import_root).with_suffix("").parts
            is_package = parts[-1] == "__init__"
            name = ".".join(parts[:-1] if is_package else parts)
            modules[name] = Module(name, unit, path, is_package)
    return modules


def _resolve(name: str, modules: dict[str, Module]) -> str | None:
    """The deepest product module that `import name` loads, if any."""
    parts = name.split(".")
    for end in range(len(parts), 0, -1):
        if (candidate := ".".join(parts[:end])) in modules:
            return candidate
    return None


def _targets(node: ast.AST, module: Module, modules: dict[str, Module]) -> list[str]:
    if isinstance(node, ast.Import):
        return [t for alias in node.names if (t := _resolve(alias.name, modules))]
    assert isinstance(node, ast.ImportFrom)
    base = node.module or ""
    if node.level:
        package = module.name.split(".")
        package = package if module.is_package else package[:-1]
        package = package[: len(package) - (node.level - 1)]
        base = ".".join([*package, base] if base else package)
    found = []
    for alias in node.names:
        # `from pkg import sub` imports the submodule pkg.sub when there is one.
        target = _resolve(f"{base}.{alias.name}", modules) if base else alias.name
        target = target if target in modules else _resolve(base, modules)
        if target:
            found.append(target)
    return found


def imports(root: Path = ROOT) -> list[Import]:
    """Every import of one product module by another, module-level or not."""
    modules = product_modules(root)
    found = set()
    for module in modules.values():
        tree = ast.parse(module.path.read_text(), filename=str(module.path))
        top = set(map(id, _module_level(tree)))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import | ast.ImportFrom):
                for target in _targets(node, module, modules):
                    if target != module.name:
                        found.add(Import(module.name, target, id(node) in top))
    return sorted(found, key=lambda i: (i.source, i.target, not i.module_level))


def _module_level(tree: ast.Module) -> list[ast.AST]:
    """The import statements that run when the module is imported: outside any function or
    class body (inside `if`, `try` or `with` at module level still counts)."""
    out, stack = [], list(tree.body)
    while stack:
        node = stack.pop()
        if isinstance(node, ast.Import | ast.ImportFrom):
            out.append(node)
        elif not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            stack.extend(ast.iter_child_nodes(node))
    return out


def unit_arrows(root: Path = ROOT) -> list[tuple[str, str]]:
    """(from, to) between product folders: some module of `from` imports one of `to`."""
    modules = product_modules(root)
    arrows = {(modules[i.source].unit, modules[i.target].unit) for i in imports(root)}
    return sorted((a, b) for a, b in arrows if a != b)


def _node(unit: str) -> str:
    return unit.replace("/", "_")


def mermaid(root: Path = ROOT) -> str:
    """The folder-level graph as a fenced Mermaid block."""
    units = sorted(product_units(root))
    lines = ["```mermaid", "graph LR"]
    lines += [f'  {_node(u)}["{u}"]' for u in units]
    lines += [f"  {_node(a)} --> {_node(b)}" for a, b in unit_arrows(root)]
    return "\n".join([*lines, "```"])


def cycles(root: Path = ROOT, all_imports: bool = False) -> list[list[str]]:
    """Groups of product modules that import each other in a circle (Tarjan's strongly connected
    components of more than one module), module-level imports only unless `all_imports`."""
    graph: dict[str, set[str]] = {}
    for i in imports(root):
        if i.module_level or all_imports:
            graph.setdefault(i.source, set()).add(i.target)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(found)


def replace_block(text: str, block: str) -> str:
    """`text` with what stands between the two marker comments replaced by `block`."""
    if text.count(START) != 1 or text.count(END) != 1 or text.index(START) > text.index(END):
        raise ValueError(f"expected one {START} before one {END}")
    head, rest = text.split(START)
    _, tail = rest.split(END)
    return f"{head}{START}\n{block}\n{END}{tail}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--write", type=Path, help="replace the marked block of this file")
    parser.add_argument("--cycles", action="store_true", help="list import cycles; 1 if any")
    parser.add_argument(
        "--all-imports", action="store_true", help="with --cycles: count function-level imports"
    )
    args = parser.parse_args(argv)
    if args.cycles:
        found = cycles(all_imports=args.all_imports)
        for component in found:
            print(" <-> ".join(component))
        return 1 if found else 0
    block = mermaid()
    if args.write:
        args.write.write_text(replace_block(args.write.read_text(), block))
    else:
        print(block)
    return 0


if __name__ == "__main__":
    sys.exit(main())
