"""The core's layers, read from the source with `ast`: imports go one way, downward.

Every import counts, also those inside functions; imports under `if TYPE_CHECKING:`
(annotations, never run) are left out of the cycle and upward-import checks, and then
checked on their own: nothing below the public API names it even in an annotation. The
folders of `core/cairn` are the layers, from the bottom up:

- `cairn.foundation`: errors, names, manifests, chunking, sizes, ... importing nothing above;
- `cairn.storage` (the stores) and `cairn.catalog` (SQL, records, migrations, access), side by
  side, neither importing the other;
- `cairn.engine`: transfer, staging, checkout, gc, verify, ...;
- the public API, at the top of the package: `Repository` and the handles it gives out;
- interfaces on top: the package's `__init__`, the CLI, the web UI and the `cairn://`
  filesystem.

The adapters (Airflow provider, Prefect tasks) import only the public `cairn` package.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CORE = ROOT / "core" / "cairn"

#: the public API and the interfaces: the only modules at the top of the package
API = {"cairn.repository", "cairn.version", "cairn.run", "cairn.current", "cairn.lineage"}
API |= {"cairn.search"}
INTERFACES = {"cairn", "cairn.__main__", "cairn.console", "cairn.listing"}
INTERFACE_PACKAGES = ("cairn.cli", "cairn.ui", "cairn.fs")
#: the layers below, one package each
PACKAGES = {
    "cairn.foundation": "foundation",
    "cairn.storage": "storage",
    "cairn.catalog": "catalog",
    "cairn.engine": "engine",
}
#: each layer, and the layers it must not import
FORBIDDEN = {
    "foundation": {"storage", "catalog", "engine", "api", "interface"},
    "storage": {"catalog", "engine", "api", "interface"},
    "catalog": {"storage", "engine", "api", "interface"},
    "engine": {"api", "interface"},
    "api": {"interface"},
}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(CORE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {_module_name(p): p for p in CORE.rglob("*.py")}


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imported(module: str, path: Path, node: ast.Import | ast.ImportFrom) -> set[str]:
    """The core modules one import statement loads (names resolved to submodules)."""
    if isinstance(node, ast.Import):
        targets = [alias.name for alias in node.names]
    else:
        base = node.module or ""
        if node.level:
            package = module.split(".")
            if path.name != "__init__.py":
                package.pop()
            package = package[: len(package) - (node.level - 1)]
            base = ".".join(package + ([node.module] if node.module else []))
        targets = [f"{base}.{alias.name}" for alias in node.names] + [base]
    found = set()
    for target in targets:
        while target and target not in MODULES and "." in target:
            target = target.rsplit(".", 1)[0]
        # a module's own packages are loaded before it anyway: not an edge of its making
        if target in MODULES and not (module == target or module.startswith(target + ".")):
            found.add(target)
    return found


def _imports(module: str, path: Path) -> set[str]:
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child):
                for stmt in child.orelse:
                    visit_one(stmt)
            else:
                visit_one(child)

    def visit_one(node: ast.AST) -> None:
        if isinstance(node, ast.Import | ast.ImportFrom):
            found.update(_imported(module, path, node))
        visit(node)

    visit(ast.parse(path.read_text(), filename=str(path)))
    return found


GRAPH = {module: _imports(module, path) for module, path in MODULES.items()}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
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
    return found


def _in(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def _layer(module: str) -> str:
    if module in INTERFACES or any(_in(module, p) for p in INTERFACE_PACKAGES):
        return "interface"
    if module in API:
        return "api"
    for package, layer in PACKAGES.items():
        if _in(module, package):
            return layer
    raise AssertionError(f"{module} is in no layer: move it into one of {sorted(PACKAGES)}")


def test_the_walk_sees_the_whole_core():
    assert {"cairn", "cairn.repository", "cairn.catalog.records", "cairn.storage.s3"} <= set(GRAPH)
    assert "cairn.catalog.schema" in GRAPH["cairn.catalog.records"]
    # an import inside a function counts; one under TYPE_CHECKING does not
    assert "cairn.engine.table" in GRAPH["cairn.version"]
    assert "cairn.repository" not in GRAPH["cairn.version"]


def test_the_cycle_finder_finds_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycle_among_the_core_modules():
    assert _cycles(GRAPH) == []


@pytest.mark.parametrize("layer", sorted(FORBIDDEN))
def test_no_upward_import(layer):
    upward = sorted(
        f"{module} -> {target}"
        for module, targets in GRAPH.items()
        if _layer(module) == layer
        for target in targets
        if _layer(target) in FORBIDDEN[layer]
    )
    assert upward == []


def test_every_module_is_in_a_layer_and_every_layer_holds_modules():
    layers = {_layer(module) for module in GRAPH}
    assert layers == set(FORBIDDEN) | {"interface"}


def test_the_top_of_the_package_holds_only_the_api_and_the_interfaces():
    top = {m for m in GRAPH if m.count(".") == 1 and not (CORE / m.split(".")[1]).is_dir()}
    assert top == (API | INTERFACES) - {"cairn"}


#: the names a module holds the facade by
FACADE_NAMES = {"repo", "_repo", "repository", "_repository"}
#: where reaching into the facade is allowed: the facade itself and the interfaces on top
FACADE_INSIDERS = {"cairn.repository"}


def _facade_privates(source: str, where: str) -> list[str]:
    """Each `repo._x` (`self._repo._x`, `repository._x`, ...) in a module's source: a
    private member of whatever it holds as the repository."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(source, filename=where)):
        if not (isinstance(node, ast.Attribute) and node.attr.startswith("_")):
            continue
        if node.attr.startswith("__") and node.attr.endswith("__"):
            continue  # a dunder is the object's protocol, not the facade's insides
        value = node.value
        holder = (
            value.id
            if isinstance(value, ast.Name)
            else value.attr
            if isinstance(value, ast.Attribute)
            else None
        )
        if holder in FACADE_NAMES:
            found.append((node.lineno, f"{where}:{node.lineno}: {holder}.{node.attr}"))
    return [line for _, line in sorted(found)]


def test_the_private_member_finder_finds_one():
    probe = (
        "def f(repo, v):\n"
        "    repo._fetch(1)\n"
        "    v._repo._open_entry(2)\n"
        "    self.repository._cache_dir\n"
        "    repo.catalog, v._contents.fetch(3), repo.__class__, self._repo.artifact\n"
    )
    assert _facade_privates(probe, "probe.py") == [
        "probe.py:2: repo._fetch",
        "probe.py:3: _repo._open_entry",
        "probe.py:4: repository._cache_dir",
    ]


def test_no_module_below_the_facade_reaches_into_it():
    """Handles and the engine work through the narrow services they are given
    (`Contents`, `VersionRecords`, `RunRecords`, ...), never `Repository`'s private
    members: those stay free to change."""
    bad = [
        line
        for module, path in sorted(MODULES.items())
        if module not in FACADE_INSIDERS and _layer(module) != "interface"
        for line in _facade_privates(path.read_text(), str(path.relative_to(ROOT)))
    ]
    assert bad == []


def _every_import(module: str, path: Path) -> set[str]:
    """The core modules `module` imports anywhere, under TYPE_CHECKING too."""
    tree = ast.parse(path.read_text(), filename=str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import | ast.ImportFrom):
            found |= _imported(module, path, node)
    return found


BELOW_THE_API = ("foundation", "storage", "catalog", "engine")


def test_nothing_below_the_api_names_it_even_in_annotations():
    """The engine and below take what they need as protocols (engine/needs.py) or narrow
    services: not `Repository`, `ArtifactVersion` or `Run`, not even under
    TYPE_CHECKING."""
    naming = sorted(
        f"{module} -> {target}"
        for module, path in MODULES.items()
        if _layer(module) in BELOW_THE_API
        for target in _every_import(module, path)
        if _layer(target) in {"api", "interface"}
    )
    assert naming == []


#: besides `cairn`, the public packages adapters may import: the web UI they embed
PUBLIC_PACKAGES = ("cairn.ui",)


def _adapter_imports(folder: Path) -> list[str]:
    bad = []
    for path in folder.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            bad += [
                f"{path.relative_to(ROOT)}: {n}"
                for n in names
                if n.startswith("cairn.") and not n.startswith(PUBLIC_PACKAGES)
            ]
    return bad


@pytest.mark.parametrize("folder", ["providers", "prefect_tasks"])
def test_adapters_import_only_the_public_package(folder):
    assert (ROOT / folder).is_dir()
    assert _adapter_imports(ROOT / folder) == []
