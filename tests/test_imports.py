"""The import graph of the ``vsml`` package has no cycles, counting imports at any depth.

Every ``import vsml...`` / ``from vsml... import ...`` statement in every module — at module level,
inside functions, under ``if TYPE_CHECKING`` — is an edge from that module to the module it names
(``from pkg import name`` names ``pkg.name`` when that is a module, else ``pkg``). Importing a
module also runs its packages' ``__init__``; those implicit edges are left out, as they are in every
Python package (a package's ``__init__`` re-exports its modules). Lazy imports by string
(``importlib.import_module``) are not statements and are not counted. docs/architecture.md's layer
table lists the layers; :func:`test_layers_import_downwards` checks that no module imports from a
layer above its own.
"""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = SRC / "vsml"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def imports_of(name: str, path: Path, known: set[str]) -> set[str]:
    """The vsml modules that the module ``name`` (file ``path``) imports, at any depth."""
    is_package = path.name == "__init__.py"
    package = name if is_package else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] == "vsml"}
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative import
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] != "vsml":
                continue
            subs = {f"{target}.{a.name}" for a in node.names} & known
            found |= subs
            if len(subs) < len(node.names):  # some names are attributes of `target` itself
                found.add(target)
    return {m for m in found if m in known and m != name}


def import_graph() -> dict[str, set[str]]:
    mods = modules()
    return {name: imports_of(name, path, set(mods)) for name, path in mods.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan), each as one cycle path."""
    index, low, stack, on_stack, comps = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.add(w)
                if w == v:
                    break
            if len(comp) > 1:
                comps.append(comp)

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return [_cycle_in(graph, comp) for comp in comps]


def _cycle_in(graph, comp: set[str]) -> list[str]:
    """One concrete cycle through the component (a path that returns to its start)."""
    start = min(comp)
    path, seen = [start], {start}
    while True:
        nxt = sorted(w for w in graph[path[-1]] if w in comp)
        back = [w for w in nxt if w in seen]
        if back:
            return path[path.index(back[0]) :] + [back[0]]
        path.append(nxt[0])
        seen.add(nxt[0])


def test_graph_sees_function_level_and_relative_imports(tmp_path):
    src = "import vsml.b\n\ndef f():\n    from vsml import c\n    from .d import x\n"
    (tmp_path / "a.py").write_text(src)
    known = {"vsml.a", "vsml.b", "vsml.c", "vsml.d", "vsml"}
    assert imports_of("vsml.a", tmp_path / "a.py", known) == {"vsml.b", "vsml.c", "vsml.d"}
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c", "a"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycles():
    found = cycles(import_graph())
    assert not found, "import cycles among vsml modules:\n" + "\n".join(" -> ".join(c) for c in found)


# The layers of docs/architecture.md, bottom up: a module imports only from its own layer and the
# layers below (the longest matching prefix decides a module's layer).
LAYERS = {
    "infrastructure": (
        "vsml.errors",
        "vsml.pytree",
        "vsml.limits",
        "vsml.config",
        "vsml.artifacts",
        "vsml.runlog",
        "vsml.progress",
        "vsml.runs",
        "vsml.training",
    ),
    "data": ("vsml.data",),
    "kernels": ("vsml.kernels",),
    "learners": ("vsml.learners",),
    "stored learners": ("vsml.checkpoint", "vsml.pretrained", "vsml.contract"),
    "learning": ("vsml.meta", "vsml.cloning", "vsml.eval"),
    "use": (
        "vsml.online",
        "vsml.sklearn",
        "vsml.cli",
        "vsml.data.cli",
        "vsml.meta.cli",
        "vsml.eval.cli",
        "vsml.cloning.cli",
        "vsml",
    ),
}


def layer_of(module: str) -> int:
    matches = [
        (len(prefix), i)
        for i, prefixes in enumerate(LAYERS.values())
        for prefix in prefixes
        if module == prefix or module.startswith(prefix + ".")
    ]
    assert matches, f"{module} is in no layer of docs/architecture.md (add it to LAYERS and the table)"
    return max(matches)[1]


def test_layers_import_downwards():
    names = list(LAYERS)
    upward = [
        f"{m} ({names[layer_of(m)]}) imports {t} ({names[layer_of(t)]})"
        for m, targets in sorted(import_graph().items())
        for t in sorted(targets)
        if layer_of(t) > layer_of(m)
    ]
    assert not upward, "imports from a higher layer:\n" + "\n".join(upward)


def test_layer_table_of_architecture_doc_lists_these_layers():
    doc = (SRC.parent / "docs" / "architecture.md").read_text()
    table = doc.split("| layer | modules |", 1)[1].split("\n\n", 1)[0]
    rows = [line.split("|")[1].strip() for line in table.splitlines()[2:] if line.startswith("|")]
    assert rows == list(LAYERS)
