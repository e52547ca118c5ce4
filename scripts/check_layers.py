"""Check that the package's imports only go down its layers, with no cycles.

Every ``import lenet_mnist...`` and ``from lenet_mnist... import ...`` in every module
counts -- at module level, inside functions and under ``if TYPE_CHECKING:`` -- except
in the package's own ``__init__.py``, the lazy facade above everything. Each module
belongs to one layer (``LAYERS``, lowest first) and may import only modules of its own
layer or lower ones; the import graph must have no cycle.

Run ``python scripts/check_layers.py [SRC]``: it prints the layers with their modules
and exits 1 with the offending imports if any. ``tests/test_layers.py`` runs it.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from pathlib import Path

# Lowest first. A module is in the first layer one of whose prefixes it matches.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("lenet_mnist._version", "lenet_mnist.errors"),
    ("lenet_mnist._util",),
    ("lenet_mnist.data", "lenet_mnist.images", "lenet_mnist.gpu"),
    ("lenet_mnist.models",),
    ("lenet_mnist.recipes",),
    ("lenet_mnist.inference", "lenet_mnist.export"),
    ("lenet_mnist.training", "lenet_mnist.evaluation"),
    ("lenet_mnist.report",),
    ("lenet_mnist.serve",),
    ("lenet_mnist.cli", "lenet_mnist.__main__"),
)
ROOT = "lenet_mnist"


def module_names(src: Path) -> dict[str, Path]:
    """Every module of the package under ``src``, by dotted name."""
    names = {}
    for path in sorted((src / ROOT).rglob("*.py")):
        parts = list(path.relative_to(src).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        names[".".join(parts)] = path
    return names


def imports_of(path: Path, name: str, known: set[str]) -> Iterator[tuple[str, int]]:
    """``(imported module, line)`` for every import of the package in ``path``."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                module = f"{base}.{node.module}" if node.module else base
            else:
                module = node.module or ""
            # ``from pkg import mod`` imports the sub-module when there is one.
            targets = [
                f"{module}.{alias.name}" if f"{module}.{alias.name}" in known else module
                for alias in node.names
            ]
        else:
            continue
        for target in targets:
            if target == ROOT or target.startswith(ROOT + "."):
                yield target, node.lineno


def layer_of(name: str) -> int:
    """The index in ``LAYERS`` of the layer ``name`` belongs to."""
    for index, prefixes in enumerate(LAYERS):
        if any(name == p or name.startswith(p + ".") for p in prefixes):
            return index
    raise SystemExit(f"{name}: in no layer of scripts/check_layers.py; add it to LAYERS")


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of ``graph`` as a list of modules (first = last), or ``None``."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt) :], nxt]
            if nxt not in state and (found := visit(nxt)) is not None:
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)) is not None:
            return found
    return None


def check(src: Path) -> list[str]:
    """The problems found under ``src`` (empty: the layering holds)."""
    modules = module_names(src)
    known = set(modules)
    graph: dict[str, set[str]] = {}
    problems = []
    for name, path in modules.items():
        if name == ROOT:
            continue
        layer = layer_of(name)
        for target, line in imports_of(path, name, known):
            if target not in known:
                problems.append(f"{path}:{line}: imports {target}, which does not exist")
                continue
            if target == ROOT:
                problems.append(f"{path}:{line}: imports the facade {ROOT}; import the module")
                continue
            graph.setdefault(name, set()).add(target)
            if layer_of(target) > layer:
                problems.append(
                    f"{path}:{line}: {name} (layer {layer}) imports {target} "
                    f"(layer {layer_of(target)}), which is above it"
                )
    cycle = find_cycle(graph)
    if cycle:
        problems.append("import cycle: " + " -> ".join(cycle))
    return problems


def main(argv: list[str]) -> int:
    """Print the layers and any problem; return the exit status."""
    src = Path(argv[0]) if argv else Path(__file__).resolve().parents[1] / "src"
    modules = module_names(src)
    for index, prefixes in enumerate(LAYERS):
        members = sorted(m for m in modules if m != ROOT and layer_of(m) == index)
        print(f"layer {index}: {', '.join(members) or '(none)'}  [{' '.join(prefixes)}]")
    problems = check(src)
    for problem in problems:
        print(problem, file=sys.stderr)
    print(f"{len(modules)} modules, {'no' if not problems else len(problems)} problems")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
