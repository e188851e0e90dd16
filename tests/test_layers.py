"""Our own import boundaries, read from the source (every import, function-level ones
included): the engine never imports the layers above it or the Pipelinefile loader, report/
only renders (it never reaches into api or the engine), the command line never opens a store
or a storage itself, and the package import graph has no cycle. Next to test_imports.py,
which checks that light imports stay free of third-party libraries.
"""

from __future__ import annotations

import ast
import pathlib

import targetrun

PACKAGE = pathlib.Path(targetrun.__file__).parent


def module_name(path: pathlib.Path) -> str:
    parts = ["targetrun", *path.relative_to(PACKAGE).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def _type_checking_only(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def imports_of(name: str, *, typing_too: bool = True, modules: dict[str, pathlib.Path] | None = None) -> set[str]:
    """Every targetrun module ``name`` imports, anywhere in the file (a function body, a
    ``try``); ``typing_too=False`` leaves out ``if TYPE_CHECKING:`` blocks, which never run."""
    modules = MODULES if modules is None else modules
    path = modules[name]
    tree = ast.parse(path.read_text(), str(path))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and not typing_too and _type_checking_only(node):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            for alias in node.names:
                candidate = f"{base}.{alias.name}"
                found.add(candidate if candidate in modules else base)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return {imported for imported in found if imported == "targetrun" or imported.startswith("targetrun.")}


def inside(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


RULES = [
    # (importer, what it must never import, why)
    ("targetrun.engine", ("targetrun.report", "targetrun.cli", "targetrun.api", "targetrun.pipelinefile"),
     "the engine knows only ports: no reporter, no command line, no composition root, no loader"),
    ("targetrun.report", ("targetrun.api", "targetrun.engine"),
     "report/ renders what api gives it"),
    ("targetrun.cli", ("targetrun.store", "targetrun.storage"),
     "the command line parses and calls api"),
]


def violations() -> list[str]:
    found = []
    for importer, forbidden, why in RULES:
        for name in MODULES:
            if not inside(name, importer):
                continue
            for imported in sorted(imports_of(name)):
                if any(inside(imported, banned) for banned in forbidden):
                    found.append(f"{name} imports {imported} ({why})")
    return found


def test_the_parser_sees_every_kind_of_import(tmp_path):
    """Module-level, function-level, relative, ``from package import module`` and
    type-checking imports are all found -- otherwise the layer test could pass by missing them."""
    folder = tmp_path / "targetrun"
    (folder / "engine").mkdir(parents=True)
    for name in ("__init__.py", "api.py", "model.py", "errors.py", "engine/__init__.py"):
        (folder / name).write_text("")
    (folder / "engine" / "x.py").write_text(
        "from __future__ import annotations\nfrom typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from targetrun import errors\n"
        "def f():\n    from targetrun import api\n    from .. import model\n    import targetrun.pipelinefile.schema\n")
    modules = {".".join(["targetrun", *p.relative_to(folder).with_suffix("").parts]).removesuffix(".__init__"): p
               for p in folder.rglob("*.py")}
    found = imports_of("targetrun.engine.x", modules=modules)
    assert found == {"targetrun.errors", "targetrun.api", "targetrun.model", "targetrun.pipelinefile.schema"}
    assert imports_of("targetrun.engine.x", modules=modules, typing_too=False) == found - {"targetrun.errors"}


def test_no_import_crosses_a_layer_boundary():
    assert violations() == []


def package_of(module: str) -> str:
    """The top-level part of targetrun a module belongs to: ``targetrun.engine.run`` ->
    ``targetrun.engine``; ``targetrun.api`` -> itself."""
    parts = module.split(".")
    return ".".join(parts[:2])


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """A cycle in ``graph`` as a path that ends where it starts, or None.

    >>> find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}})
    ['a', 'b', 'c', 'a']
    >>> find_cycle({"a": {"b"}, "b": set()}) is None
    True
    """
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def test_find_cycle_finds_one():
    assert find_cycle({"a": {"b"}, "b": {"a"}}) == ["a", "b", "a"]
    assert find_cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None


def test_the_package_import_graph_has_no_cycle():
    """Between the parts of targetrun (engine, report, store, api, cli, model, ...), imports
    point one way: the graph of which part imports which has no cycle."""
    graph: dict[str, set[str]] = {}
    for name in MODULES:
        if name == "targetrun":
            continue  # the package's own __init__ (the version) is imported by everything
        source = package_of(name)
        targets = {package_of(imported) for imported in imports_of(name, typing_too=False)} - {source, "targetrun"}
        graph.setdefault(source, set()).update(targets)
    assert find_cycle(graph) is None, " -> ".join(find_cycle(graph) or [])


def test_only_settings_reads_targetrun_variables_from_the_environment():
    """``TARGETRUN_*`` variables are read once, at the command line's start, in
    targetrun/settings.py; deeper layers get values passed in (the api reads them through
    settings only when its caller gives none)."""
    readers = []
    for name, path in MODULES.items():
        if name == "targetrun.settings":
            continue
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value.startswith("TARGETRUN_"):
                if _reads_environment(tree, node):
                    readers.append(f"{name}:{node.lineno} reads {node.value}")
    assert readers == []


def _reads_environment(tree: ast.Module, constant: ast.Constant) -> bool:
    """Whether ``constant`` is the key of an ``os.environ``/``os.getenv`` read."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and constant in node.args:
            func = ast.unparse(node.func)
            if func in ("os.getenv", "getenv") or func.startswith(("os.environ.", "environ.")):
                return True
        if isinstance(node, ast.Subscript) and node.slice is constant and "environ" in ast.unparse(node.value):
            return True
    return False


def test_no_two_modules_import_each_other_even_lazily():
    """Module by module, function-level imports included: no loop (a lazy import inside a
    function hides a loop from the interpreter, not from a reader)."""
    graph = {name: {m for m in imports_of(name, typing_too=False) if m in MODULES and m not in (name, "targetrun")}
             for name in MODULES if name != "targetrun"}
    assert find_cycle(graph) is None, " -> ".join(find_cycle(graph) or [])
