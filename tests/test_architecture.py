"""The package's shape, read from its source with ``ast`` (nothing is imported).

The folders are the layers, lowest first; a module may import its own layer and the layers
below:

    base (exceptions, _version, _settings) <- format <- storage <- writers | read
        <- integration | report | manage <- cli <- the package root

``writers`` and ``read`` sit side by side and never import each other, nor do
``integration`` and ``report``. A module's layer is its top folder under the package; a
module at the package root is a face or a small shared piece, and only the few named in
``ROOT_MODULES`` may be there. Every import counts for the layers: module level, inside
functions and under ``if TYPE_CHECKING:``. Cycles are looked for among module-level imports
made at run time (``TYPE_CHECKING`` ones left out), between modules and between folders.
Each failure names the module, the line, the import and the rule it breaks.
"""

from __future__ import annotations

import ast
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

PACKAGE = "lightning_tracker"
ROOT = Path(__file__).resolve().parent.parent / PACKAGE

# a top folder of the package is a layer
LAYERS = {
    "format": 1,
    "storage": 2,
    "writers": 3,
    "read": 3,
    "integration": 4,
    "report": 4,
    "manage": 4,
    "cli": 5,
}  # fmt: skip
# the only modules at the package root: the face and the small pieces every layer shares
ROOT_MODULES = {"lightning_tracker": 6, "lightning_tracker.exceptions": 0, "lightning_tracker._version": 0,
                "lightning_tracker._settings": 0}  # fmt: skip

TORCH_OR_LIGHTNING = ("torch", "lightning", "pytorch_lightning", "lightning_fabric")
# the on-disk format is pure: besides the standard library, only these
FORMAT_THIRD_PARTY = ("numpy", "pyarrow")
STORAGE_THIRD_PARTY = ("numpy", "pyarrow", "fsspec")
FSSPEC_MODULE = "lightning_tracker.storage.remote"
TORCH_FREE = (
    "lightning_tracker.format",
    "lightning_tracker.storage",
    "lightning_tracker.read",
    "lightning_tracker.manage",
)


@dataclass(frozen=True)
class Import:
    importer: str
    target: str  # a module of the package (resolved), or a third-party/stdlib module name
    line: int
    module_level: bool  # at import time, not inside a function or under TYPE_CHECKING
    type_checking: bool

    def where(self) -> str:
        return f"{self.importer} (line {self.line}) imports {self.target}"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(p): p for p in sorted(ROOT.rglob("*.py"))}


def _is_package(module: str) -> bool:
    return MODULES[module].name == "__init__.py"


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _resolve(importer: str, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    package = importer if _is_package(importer) else importer.rpartition(".")[0]
    for _ in range(node.level - 1):
        package = package.rpartition(".")[0]
    return f"{package}.{node.module}" if node.module else package


def _targets(importer: str, node: ast.Import | ast.ImportFrom) -> list[str]:
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    base = _resolve(importer, node)
    # `from pkg import sub` imports the submodule `pkg.sub` when there is one
    subs = [f"{base}.{alias.name}" for alias in node.names if f"{base}.{alias.name}" in MODULES]
    return subs if len(subs) == len(node.names) else [base, *subs]


def _imports(module: str) -> list[Import]:
    tree = ast.parse(MODULES[module].read_text("utf-8"), filename=str(MODULES[module]))
    found: list[Import] = []

    def visit(node: ast.AST, in_function: bool, type_checking: bool) -> None:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            found.extend(
                Import(module, t, node.lineno, not (in_function or type_checking), type_checking)
                for t in _targets(module, node)
            )
            return
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.body:
                visit(child, in_function, True)
            for child in node.orelse:
                visit(child, in_function, type_checking)
            return
        inner = in_function or isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
        for sub in ast.iter_child_nodes(node):
            visit(sub, inner, type_checking)

    visit(tree, False, False)
    return found


IMPORTS = {module: _imports(module) for module in MODULES}


def _layer(module: str) -> str | None:
    if module in ROOT_MODULES:
        return "root" if module == PACKAGE else "base"
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in LAYERS else None


def _rank(layer: str) -> int:
    return {"base": 0, "root": 6}.get(layer, LAYERS.get(layer, -1))


def _own(target: str) -> bool:
    return target == PACKAGE or target.startswith(PACKAGE + ".")


def _top(target: str) -> str:
    return target.split(".")[0]


def _within(module: str, prefix: str) -> bool:
    return module == prefix or module.startswith(prefix + ".")


def test_every_module_has_a_layer() -> None:
    missing = [m for m in MODULES if _layer(m) is None]
    assert not missing, (
        f"modules outside the layer folders {sorted(LAYERS)}: {missing} (move each into the folder of its layer; "
        "the package root holds only the face and the shared pieces in ROOT_MODULES)"
    )


def test_every_layer_folder_is_a_package() -> None:
    folders = sorted(p.name for p in ROOT.iterdir() if p.is_dir() and p.name != "__pycache__" and any(p.rglob("*.py")))
    assert folders == sorted(LAYERS), f"top folders {folders} differ from the layers {sorted(LAYERS)}"


def test_no_upward_import() -> None:
    broken = []
    for module, imports in IMPORTS.items():
        mine = _layer(module)
        for imp in imports:
            if not _own(imp.target) or mine is None:
                continue
            theirs = _layer(imp.target)
            if theirs is None or theirs == mine:
                continue
            if _rank(theirs) >= _rank(mine):
                kind = "a sibling" if _rank(theirs) == _rank(mine) else "a higher"
                broken.append(f"{imp.where()}: layer {mine!r} must not import {kind} layer {theirs!r}")
    assert not broken, "upward imports (order: base, format, storage, writers|read, integration|report, cli):\n" + (
        "\n".join(broken)
    )


def _package(module: str) -> str:
    # a root module (exceptions, _settings) is a shared piece of its own, not part of the face
    parent = module.rpartition(".")[0]
    return module if _is_package(module) or parent == PACKAGE else parent


def _module_graph() -> dict[str, list[str]]:
    return {m: sorted({i.target for i in IMPORTS[m] if i.module_level and i.target in MODULES} - {m}) for m in MODULES}


def _package_graph() -> dict[str, list[str]]:
    # a package imports another when one of its own modules does
    graph: dict[str, set[str]] = {_package(m): set() for m in MODULES}
    for module, targets in _module_graph().items():
        graph[_package(module)].update(_package(t) for t in targets if _package(t) != _package(module))
    return {k: sorted(v) for k, v in graph.items()}


def _cycles(graph: dict[str, list[str]] | None = None) -> list[list[str]]:
    graph = _module_graph() if graph is None else graph
    # Tarjan's strongly connected components
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def connect(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in graph:
        if v not in index:
            connect(v)
    return found


def test_no_import_cycle() -> None:
    described = []
    for component in _cycles():
        members = set(component)
        edges = [i.where() for m in component for i in IMPORTS[m] if i.module_level and i.target in members]
        described.append(f"cycle between {component}:\n  " + "\n  ".join(edges))
    assert not described, "module-level import cycles:\n" + "\n".join(described)


def test_no_package_import_cycle() -> None:
    graph = _package_graph()
    cycles = [f"{c}: " + "; ".join(f"{a} -> {b}" for a in c for b in graph[a] if b in c) for c in _cycles(graph)]
    assert not cycles, "packages that import each other:\n" + "\n".join(cycles)


def _third_party(module: str) -> list[Import]:
    return [i for i in IMPORTS[module] if not _own(i.target) and _top(i.target) != "__future__"]


def test_format_is_pure() -> None:
    rule = "format/ may import only the standard library, numpy, pyarrow and lightning_tracker.exceptions"
    broken = []
    for module in (m for m in MODULES if _within(m, "lightning_tracker.format")):
        for imp in IMPORTS[module]:
            top = _top(imp.target)
            if _own(imp.target):
                ok = _within(imp.target, "lightning_tracker.format") or imp.target == "lightning_tracker.exceptions"
            else:
                ok = top == "__future__" or top in sys.stdlib_module_names or top in FORMAT_THIRD_PARTY
            if not ok:
                broken.append(f"{imp.where()}: {rule}")
    assert not broken, "\n".join(broken)


@pytest.mark.parametrize("banned", ["fsspec", "torch", "pandas", "lightning", "pytorch_lightning"])
def test_format_never_imports(banned: str) -> None:
    broken = [
        f"{i.where()}: format/ must not import {banned}"
        for m in MODULES
        if _within(m, "lightning_tracker.format")
        for i in _third_party(m)
        if _top(i.target) == banned
    ]
    assert not broken, "\n".join(broken)


def test_storage_imports_only_format_exceptions_and_fsspec_in_remote() -> None:
    broken = []
    for module in (m for m in MODULES if _within(m, "lightning_tracker.storage")):
        for imp in IMPORTS[module]:
            top = _top(imp.target)
            if _own(imp.target):
                allowed = ("lightning_tracker.storage", "lightning_tracker.format", "lightning_tracker.exceptions")
                if not any(_within(imp.target, a) for a in allowed):
                    broken.append(f"{imp.where()}: storage/ may import only storage, format and exceptions")
            elif top == "fsspec" and module != FSSPEC_MODULE:
                broken.append(f"{imp.where()}: only {FSSPEC_MODULE} may import fsspec")
            elif top != "__future__" and top not in sys.stdlib_module_names and top not in STORAGE_THIRD_PARTY:
                broken.append(f"{imp.where()}: storage/ may import only the standard library, numpy, pyarrow, fsspec")
    assert not broken, "\n".join(broken)


def test_only_remote_imports_fsspec() -> None:
    importers = sorted({m for m in MODULES for i in _third_party(m) if _top(i.target) == "fsspec"})
    assert importers in ([], [FSSPEC_MODULE]), f"only {FSSPEC_MODULE} may import fsspec; found in {importers}"


def test_read_side_format_and_storage_never_import_torch_or_lightning() -> None:
    broken = [
        f"{i.where()}: {m} is read-side or format/storage code and must import without torch or Lightning"
        for m in MODULES
        if any(_within(m, p) for p in TORCH_FREE)
        for i in _third_party(m)
        if _top(i.target) in TORCH_OR_LIGHTNING
    ]
    assert not broken, "\n".join(broken)


def test_read_side_imports_without_torch_transitively() -> None:
    # importing a module runs its packages' __init__ and its module-level imports, recursively
    def closure(start: str) -> dict[str, str]:
        seen = {start: start}
        todo = [start]
        while todo:
            m = todo.pop()
            parents = [".".join(m.split(".")[:n]) for n in range(1, m.count(".") + 1)]
            for nxt in [*parents, *(i.target for i in IMPORTS[m] if i.module_level and i.target in MODULES)]:
                if nxt not in seen:
                    seen[nxt] = m
                    todo.append(nxt)
        return seen

    broken = []
    for start in ("lightning_tracker", "lightning_tracker.read", "lightning_tracker.read.checkpoints"):
        reached = closure(start)
        for m in reached:
            for imp in _third_party(m):
                if imp.module_level and _top(imp.target) in TORCH_OR_LIGHTNING:
                    chain = [m]
                    while chain[-1] != start:
                        chain.append(reached[chain[-1]])
                    via = " <- ".join(chain)
                    broken.append(
                        f"{imp.where()} at import time, reached from {via}: the read side must import without torch"
                    )
    assert not broken, "\n".join(broken)


def _subclassed_bases() -> list[tuple[str, str, str]]:
    """``(base module, subclass module, subclass)`` for every class built on a class of another module."""
    found = []
    for module, path in MODULES.items():
        tree = ast.parse(path.read_text("utf-8"))
        # the classes this module imports by name: `from lightning_tracker.x import Name`
        origin = {
            (a.asname or a.name): _resolve(module, node)
            for node in ast.walk(tree)
            if isinstance(node, ast.ImportFrom)
            for a in node.names
        }
        for cls in (n for n in ast.walk(tree) if isinstance(n, ast.ClassDef)):
            for base in cls.bases:
                source = origin.get(base.id) if isinstance(base, ast.Name) else None
                if source in MODULES and source != module:
                    found.append((source, module, cls.name))
    return found


def test_a_base_module_never_imports_its_subclasses() -> None:
    # a registry names the backends instead (storage.registry): even a lazy import inside a
    # function ties the base to every backend and closes a cycle
    broken = [
        f"{imp.where()}: {base} defines the base of {sub}.{name}, so it must not import {sub}"
        for base, sub, name in _subclassed_bases()
        for imp in IMPORTS[base]
        if imp.target == sub
    ]
    assert not broken, "\n".join(broken)


FMT_SKIP = "# fmt" + ": skip"  # spelled in two parts so that this line is not itself a marker


def _fmt_skip_outside_tables(path: Path) -> list[str]:
    source = path.read_text("utf-8")
    marked = {n for n, line in enumerate(source.splitlines(), 1) if FMT_SKIP in line}
    tables = set()
    for node in ast.parse(source).body:  # module level only: a named table, not a packed call
        value = node.value if isinstance(node, (ast.Assign, ast.AnnAssign)) else None
        if isinstance(value, (ast.Dict, ast.List, ast.Tuple, ast.Set)) and node.end_lineno is not None:
            tables.add(node.end_lineno)
    return [f"{path.relative_to(ROOT.parent)}:{n}" for n in sorted(marked - tables)]


def test_fmt_skip_only_on_tables() -> None:
    # `ruff format` decides layout; a hand-aligned table (a literal dict, list or tuple given a
    # name at module level) is the one thing it may skip, in the package, the tests and benchmarks
    trees = (ROOT, ROOT.parent / "tests", ROOT.parent / "benchmarks")
    found = [where for tree in trees for path in sorted(tree.rglob("*.py")) for where in _fmt_skip_outside_tables(path)]
    assert not found, f"{FMT_SKIP} outside a table (let ruff format lay it out): " + ", ".join(found)


def test_no_module_packs_past_the_size_of_one_idea() -> None:
    # not a cap to pack code under: a module past ~600 lines holds a second concept; split along it
    sizes = {m: len(p.read_text("utf-8").splitlines()) for m, p in MODULES.items()}
    big = sorted((n, m) for m, n in sizes.items() if n > 700)
    assert not big, f"modules past 700 lines (find the second concept inside and split along it): {big}"
