"""What a target was made from, and whether that still holds (DESIGN.md "Staleness").

A checkpoint records, when it is written, four kinds of fingerprints:

* **code** -- for a Python task, its function normalised through the AST (``ast.dump``
  with docstrings removed: comments, docstrings, blank lines and formatting do not count),
  plus, transitively, every function, class and module-level constant of the *project*
  (modules found, as Python would find them, in the Pipelinefile's folder, a ``src/``
  folder in it, or a ``sys.path`` folder inside it) it references by name -- directly, as
  ``module.name`` or ``package.module.name``, or through an import inside the function;
  a constant counts by every assignment to it (``A, B = ...``, ``X += ...``), every
  module-level method call on it (``UNITS.update(...)``) and every module-level loop that
  fills it (with what the loop goes over), a ``for``/``with``/``:=`` at module level that
  binds it, a module-level call given it or of a function that reads it, a function that
  sets it through ``global``, and a module-level statement of any module that runs that
  sets it from outside (``config.LIMIT = 5``: entry ``"tasks.py:config.LIMIT" ->
  "sets:<digest>"``; ``sys.modules["config"].LIMIT = 5`` too; ``builtins.LIMIT = 5`` where a
  name ``LIMIT`` no module binds is read); a module
  imported by a literal name (``importlib.import_module("h5")``) counts whole, as does one
  that sets names where no statement shows which (``exec``, ``globals()``, ``g = globals``: entry
  ``"h.py:(module)" -> "module:<digest>"``, :func:`_dynamic`); a name a module's
  ``__getattr__`` supplies counts by it; a call at import of a project function (a
  decorator, ``h.configure(LIMIT)``: ``"tasks.py:h.configure()" -> "calls:<digest>"``; a
  class statement whose base has an ``__init_subclass__``, or a metaclass) counts where
  state the function reaches is read from outside it; ``vars(h)[k] = ...`` of another
  module counts where anything of ``h`` is used; a module used as a value (``M = pkg.mod``,
  ``getattr(h, name)``, ``vars(h)``, ``sys.modules["h"]``) counts whole, and so does each
  module of a package one is imported from by a computed name (``import_module(f"steps.{x}")``);
  with no package written (``import_module(name)``) an entry ``"tasks.py:make(computed
  import)" -> "unfollowed:1"`` makes the code "cannot tell" while it is unchanged, as does code
  run from a value or a file (``exec(open(p).read())``, ``runpy.run_path``: ``"(computed code)"``); and a name
  defined in an ``if``/``try`` at module level by each branch (a module alias too:
  ``impl.f`` after ``import fast as impl`` / ``import slow as impl`` counts both ``f``). Each object is
  one entry, ``"tasks.py:normalize" -> "def:<digest>"``, so a difference names what
  changed; a project file that does not parse is one entry, ``"helpers.py" ->
  "unparsable:3"`` (``status``: "helpers.py:3 does not parse"). An installed library it
  uses by name counts by its distribution's version (``"pandas" -> "lib:2.2.3"``); the
  standard library a helper uses is Python's own and is left out. A task that *is* a
  library's callable counts by that library's version (``"yaml:safe_dump" -> "dist:PyYAML
  6.0.2"``), one from the standard library by Python's (``"json:dumps" ->
  "python:3.11.7"``). A shell task's code is its command template; a ``version:`` key
  replaces the computed fingerprint.
* **parameters** -- the values the task's templates name (``Checkpoint.made_with``, as
  text), and their typed fingerprints (``Checkpoint.params``): ``1`` and ``"1"`` read the
  same and differ.
* **inputs** -- the content hash of each upstream value (``Checkpoint.inputs``), so an
  upstream rebuilt into the same bytes changes nothing (early cutoff).
* **deps** -- the sha256 of each external file a task declares in ``deps:`` (a folder or
  prefix: each file under it), keyed by its normalised path relative to the Pipelinefile's
  folder (or its URL). Size, mtime, ctime and inode (local) or the ETag (remote) seen last
  time only let hashing be *skipped* when they match.

No fingerprint holds an absolute path or an mtime, so a moved or re-cloned project with
its state has nothing stale. A record written before a kind was kept says nothing about
it: unknown, never stale.

Cost: source files are parsed once per process per content (a dict keyed by path and
sha256), and a function's closure is computed once per :class:`MadeFrom`, i.e. once per
run: 10,000 tasks sharing a function cost one computation.

Taking fingerprints reads files; comparing them with a record does not, and lives in
:mod:`targetrun.stalediff`, which the decision imports without this module's I/O.
"""

from __future__ import annotations

import ast
import errno
import functools
import hashlib
import importlib.util
import itertools
import json
import os
import re
import stat as filemode
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from targetrun import fingerprint, redact, stalediff, templating
from targetrun.errors import StorageError, UsageError
from targetrun.model import Checkpoint, RunContext, Stale, StaleKind, TaskSpec
from targetrun.stalediff import (UNKNOWN_DEP, UNPARSABLE, code_stale, deps_stale, recorded_deps, relative_key,
                                 unparsable_text)
from targetrun.regularfile import NotRegularFile, kind_of, open_regular

# -- code ------------------------------------------------------------------------------


Imports = dict[str, tuple[str, str | None]]  # local name -> (absolute module, attribute or None)


@dataclass(frozen=True)
class _Object:
    """A top-level function, class or constant: its digest, the names it references, and
    the imports made inside it (``from helpers import mul`` in a function body)."""

    kind: str
    digest: str
    references: frozenset[str]
    imports: Imports


@dataclass
class _Module:
    """One parsed source file: its top-level objects and what its names import -- or,
    when it does not parse, the line Python's parser stopped at (then nothing else)."""

    objects: dict[str, _Object]
    imports: Imports
    unparsable: int | None = None
    # a name imports in several branches of an `if`/`try` bind (`try: import fast as impl` /
    # `except ImportError: import slow as impl`): each (module, attribute) it may be
    choices: dict[str, list[tuple[str, str | None]]] = field(default_factory=dict)
    # what module-level statements set in another module (`config.LIMIT = 5`, `T["k"] = 1` after
    # `from helpers import T`): the name as written there -> those statements
    sets: dict[str, _Object] = field(default_factory=dict)
    # the classes whose code a class statement deriving from them runs: an __init_subclass__, a metaclass
    hooks: set[str] = field(default_factory=set)
    # a function (or class) -> the module names it sets through `global`
    setters: dict[str, set[str]] = field(default_factory=dict)
    # a module-level name bound to another module or an imported object (`m = h`, `m = sys.modules["h"]`,
    # `b = __builtins__`) -> the chain it stands for, and the imports that chain is resolved with
    aliases: dict[str, tuple[str, Imports]] = field(default_factory=dict)


_PARSED: dict[tuple[str, str], _Module] = {}  # (path, sha256 of its bytes) -> parsed; per process


def _strip_docstrings(tree: ast.Module) -> None:
    for node in _statements(tree.body):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            _strip_docstring(node)
    _strip_docstring(tree)


def _strip_docstring(node: ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef | ast.Module) -> None:
    body = node.body
    if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
            and isinstance(body[0].value.value, str):
        node.body = body[1:] or [ast.Pass()]


_BLOCKS = ("body", "orelse", "finalbody", "handlers", "cases")  # where statements hold statements


def _statements(body: list[ast.stmt]) -> Iterator[ast.stmt]:
    """Every statement of ``body`` and those nested in them, in functions and classes too
    (each before those in it). A ``def``, a docstring and ``global`` are statements: the
    expressions around them, most of a module's nodes, are not walked to find them."""
    todo: list[ast.AST] = list(reversed(body))
    while todo:
        node = todo.pop()
        if isinstance(node, ast.stmt):
            yield node
        for block in _BLOCKS:  # an except handler or a match case holds statements too
            inner = getattr(node, block, None)
            if inner:
                todo.extend(reversed(inner))


def _dotted(node: ast.Attribute) -> str | None:
    """``pkg.words.upper`` for an attribute chain that starts at a name, else None."""
    parts = [node.attr]
    value = node.value
    while isinstance(value, ast.Attribute):
        parts.append(value.attr)
        value = value.value
    return ".".join([value.id, *reversed(parts)]) if isinstance(value, ast.Name) else None


_SCOPES = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef,
           ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp)


def _bound(body: list[ast.stmt] | list[ast.expr]) -> set[str]:
    """The names a function binds itself: assigned, deleted, a ``for``/``with``/``except``
    target, a nested ``def`` or ``class``, a ``match`` capture -- found in its own
    statements, not in the scopes nested in them -- less those it declares ``global`` or
    ``nonlocal``. (An import binds a name too, but that one is resolved by the import.)"""
    bound: set[str] = set()
    declared: set[str] = set()
    todo: list[ast.AST] = list(body)
    while todo:
        sub = todo.pop()
        if isinstance(sub, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            bound.add(sub.name)
        if isinstance(sub, _SCOPES):
            continue
        if isinstance(sub, ast.Name) and isinstance(sub.ctx, (ast.Store, ast.Del)):
            bound.add(sub.id)
        elif isinstance(sub, (ast.ExceptHandler, ast.MatchAs, ast.MatchStar)) and sub.name:
            bound.add(sub.name)
        elif isinstance(sub, ast.MatchMapping) and sub.rest:
            bound.add(sub.rest)
        elif isinstance(sub, (ast.Global, ast.Nonlocal)):
            declared.update(sub.names)
        todo.extend(_children(sub))
    return bound - declared


def _arguments(args: ast.arguments) -> list[ast.arg]:
    return [*args.posonlyargs, *args.args, *args.kwonlyargs, *filter(None, (args.vararg, args.kwarg))]


def _references(node: ast.AST, package: str) -> tuple[frozenset[str], Imports]:
    """The names an object mentions: ``x`` and, for attribute access on a name, the whole
    chain (``pkg.words.upper``) -- less the names bound in the scope that mentions them or
    in a function around it, as Python resolves them (an argument called ``fetch`` is not
    the module's function ``fetch``, but ``lambda RATE: RATE`` leaves the module's ``RATE``
    read beside it counted, and a name declared ``global`` is the module's) -- and the
    imports made inside it, by which its names are resolved first (a function that imports
    a helper where it needs it still uses that helper)."""
    names: set[str] = set()
    imports: Imports = {}
    computed: set[str] = set()  # what of _runs_computed_code it does
    todo: list[tuple[ast.AST, frozenset[str]]] = [(node, frozenset())]  # (node, names local where it is)
    while todo:
        sub, local = todo.pop()
        later: list[ast.AST] = []  # looked at where ``sub`` is
        if isinstance(sub, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            arguments = _arguments(sub.args)
            later = [*getattr(sub, "decorator_list", []), *sub.args.defaults, *filter(None, sub.args.kw_defaults),
                     *(a.annotation for a in arguments if a.annotation), *filter(None, [getattr(sub, "returns", None)])]
            body: list[ast.stmt] | list[ast.expr] = sub.body if isinstance(sub.body, list) else [sub.body]
            inner = local | {a.arg for a in arguments} | _bound(body)
            todo.extend((statement, inner) for statement in body)
        elif isinstance(sub, ast.ClassDef):  # the class's own names are not seen by its methods
            later = [*sub.decorator_list, *sub.bases, *sub.keywords, *sub.body]
            for statement in sub.body:  # `class C: from h import K` -- C.K is h's K, read from outside
                if isinstance(statement, (ast.Import, ast.ImportFrom)):
                    names.update(bound for bound in _imports_of(statement, package) if bound.isidentifier())
        elif isinstance(sub, (ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp)):
            later = [sub.generators[0].iter]  # evaluated in the scope around it
            inner = local | {n.id for g in sub.generators for n in ast.walk(g.target) if isinstance(n, ast.Name)}
            parts = [*sub.generators[0].ifs, *sub.generators[1:],
                     *((sub.key, sub.value) if isinstance(sub, ast.DictComp) else (sub.elt,))]
            todo.extend((part, inner) for part in parts)
        elif isinstance(sub, ast.Name):
            if isinstance(sub.ctx, ast.Load) and sub.id not in local:
                names.add(sub.id)
        else:
            later = _children(sub)
            if isinstance(sub, ast.Call) and (how := _runs_computed_code(sub, local)) is not None:
                computed.add(how)
            if isinstance(sub, ast.Attribute) and (chain := _dotted(sub)) is not None:
                if chain.partition(".")[0] not in local:
                    names.add(chain)  # one reference: its head alone would be the module used as a value
                later = []
            elif isinstance(sub, (ast.Import, ast.ImportFrom)) and sub is not node:
                for bound, source in _imports_of(sub, package).items():
                    before = imports.get(bound)
                    if before is not None and before != source:  # `try: from fast import K` / `except: from slow import K`
                        for choice in (before, source):  # each may be the one bound: each counts
                            alias = f"{bound}{ALIAS}{choice[0]}:{choice[1] or ''}"
                            imports[alias] = choice
                            if choice[1] is not None:  # a module (`import fast as impl`): by _bindings
                                names.add(alias)
                    imports[bound] = source
            elif isinstance(sub, ast.Call) and isinstance(sub.func, ast.Name) and sub.func.id in _BY_NAME \
                    and len(sub.args) >= 2 and isinstance(sub.args[1], ast.Constant) \
                    and isinstance(sub.args[1].value, str) and sub.args[1].value.isidentifier() \
                    and isinstance(sub.args[0], (ast.Name, ast.Attribute)) \
                    and (chain := sub.args[0].id if isinstance(sub.args[0], ast.Name) else _dotted(sub.args[0])) \
                    and chain.partition(".")[0] not in local:
                names.add(f"{chain}.{sub.args[1].value}")  # `getattr(helpers, "f")` is `helpers.f`, `setattr` sets it
                later = [sub.func, *sub.args[2:], *sub.keywords]
            elif isinstance(sub, ast.Call) and (by_name := _literal_import(sub, package)) is not None:
                key = MODULE + by_name.replace(".", "/")  # no "." in it: a name, not a chain
                imports[key] = (by_name, None)
                names.add(key)
            elif isinstance(sub, ast.Call) and _imports_by_name(sub):  # a name computed when it runs
                prefix = _package_prefix(sub.args[0])  # a module of it: "steps._x", "._x" (relative to `package`)
                some = _literal_import(_with_name(sub, prefix + ("_x" if not prefix.strip(".") else "._x")), package) \
                    if prefix is not None else None
                inside = some.rpartition(".")[0] if some is not None else None
                if inside:  # import_module(f"steps.{name}"): a module of that package
                    key = PACKAGE + inside.replace(".", "/")
                    imports[key] = (inside, None)
                    names.add(key)
                else:
                    names.add(UNFOLLOWED)
            elif isinstance(sub, ast.Subscript) and _dotted_name(sub.value) == "sys.modules":
                key_node = sub.slice  # sys.modules["h5"]: that module; sys.modules[name]: not told
                if isinstance(key_node, ast.Constant) and isinstance(key_node.value, str) \
                        and all(part.isidentifier() for part in key_node.value.split(".")):
                    key = MODULE + key_node.value.replace(".", "/")
                    imports[key] = (key_node.value, None)
                    names.add(key)
                elif not (isinstance(key_node, ast.Name) and key_node.id == "__name__"):  # the module itself: _dynamic
                    names.add(UNFOLLOWED)
        todo.extend((part, local) for part in later)
    if "file" in computed or {"runs", "reads"} <= computed:  # code from a file: which, and what it holds, is not told
        names.add(COMPUTED)
    return frozenset(names), imports


_BY_NAME = frozenset(("getattr", "setattr", "delattr", "hasattr"))  # `f(h, "X", ...)`: h.X, not all of h


_READS = frozenset(("open", "read", "read_text", "read_bytes", "urlopen", "get_data"))  # calls that read a file


def _runs_computed_code(call: ast.Call, local: frozenset[str]) -> str | None:
    """``"runs"`` for ``exec``/``eval``/``compile`` of a value the function computes (not a
    literal, nor a module constant, which counts as any), ``"reads"`` for a call that reads
    a file; ``"file"`` for ``runpy.run_path`` (a file by path); else None. An object that
    both runs a computed value and reads a file runs code no source of the project shows
    (``exec(open("x.py").read())``); one that runs what it builds from its own text and
    its arguments (``namedtuple``'s ``eval``, ``eval(formula)`` of a parameter) does not.

    >>> calls = ["exec(open('x.py').read())", "eval(f)", "exec('X = 1')", "exec(CODE)", "runpy.run_path('x.py')", "p.read_text()"]
    >>> [_runs_computed_code(ast.parse(c).body[0].value, frozenset({"f"})) for c in calls]
    ['runs', 'runs', None, None, 'file', 'reads']
    """
    func = call.func
    called = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else None
    if called == "run_path":
        return "file"
    if called in _READS:
        return "reads"
    if called not in ("exec", "eval", "compile") or not call.args or isinstance(func, ast.Attribute) \
            and not (isinstance(func.value, ast.Name) and func.value.id in _BUILTINS):
        return None
    code = call.args[0]
    if isinstance(code, ast.Constant):
        return None
    chain = _chain(code)
    return "runs" if chain is None or chain.partition(".")[0] in local else None


def _imports_of(node: ast.Import | ast.ImportFrom, package: str) -> Imports:
    """What an import statement binds: local name -> (absolute module, attribute or None)."""
    found: Imports = {}
    if isinstance(node, ast.Import):
        for alias in node.names:
            if alias.asname:
                found[alias.asname] = (alias.name, None)
            else:
                top = alias.name.split(".")[0]
                found[top] = (top, None)
                if top != alias.name:  # `import pk.plug` binds pk, and runs pk.plug: what it sets counts
                    found[LOADS + alias.name] = (alias.name, None)
        return found
    base = node.module or ""
    if node.level:
        parts = package.split(".") if package else []
        parts = parts[: len(parts) - (node.level - 1)] if node.level > 1 else parts
        base = ".".join([*parts, *([node.module] if node.module else [])])
    for alias in node.names:
        if alias.name == "*":  # `from helpers import *`: its names are looked up there (_lookup)
            found[STAR + base] = (base, None)
        else:
            found[alias.asname or alias.name] = (base, alias.name)
    return found


def _literal_import(call: ast.Call, package: str) -> str | None:
    """The absolute module ``importlib.import_module("h5")`` or ``__import__("h5")`` imports
    by a literal name (``import_module(".b", __package__)`` relative to ``package``); None
    for any other call.

    >>> _literal_import(ast.parse("import_module('..c', __package__)").body[0].value, "pkg.sub")
    'pkg.c'
    >>> _literal_import(ast.parse("__import__('/etc/passwd')").body[0].value, "") is None
    True
    """
    func = call.func
    called = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else None
    if called not in ("import_module", "__import__") or not call.args:
        return None
    name = call.args[0]
    if not isinstance(name, ast.Constant) or not isinstance(name.value, str) or not name.value.strip("."):
        return None
    level = len(name.value) - len(name.value.lstrip("."))
    if not all(part.isidentifier() for part in name.value[level:].split(".")):
        return None  # no module's name ("a/b", "x y"): nothing Python would import
    if not level:
        return name.value
    anchor = call.args[1] if called == "import_module" and len(call.args) > 1 else \
        next((k.value for k in call.keywords if k.arg == "package"), None)
    if isinstance(anchor, ast.Constant) and isinstance(anchor.value, str):
        base = anchor.value
    elif isinstance(anchor, ast.Name) and anchor.id == "__package__":
        base = package
    else:
        return None
    parts = base.split(".") if base else []
    parts = parts[: len(parts) - (level - 1)] if level > 1 else parts
    return ".".join([*parts, name.value[level:]])


def _imports_by_name(call: ast.Call) -> bool:
    """Whether a call is ``import_module(...)`` or ``__import__(...)`` with an argument."""
    func = call.func
    called = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else None
    return called in ("import_module", "__import__") and bool(call.args)


def _package_prefix(name: ast.expr) -> str | None:
    """The package a computed module name starts in, as written: ``steps`` for
    ``f"steps.{x}"`` or ``"steps." + x``, ``.steps`` for ``f".steps.{x}"``; None when its
    start names no package (``f"{x}"``, ``"step_" + x``).

    >>> _package_prefix(ast.parse("f'pkg.steps.s_{n}'").body[0].value), _package_prefix(ast.parse("'x_' + n").body[0].value)
    ('pkg.steps', None)
    """
    start = name.values[0] if isinstance(name, ast.JoinedStr) and name.values else \
        name.left if isinstance(name, ast.BinOp) and isinstance(name.op, ast.Add) else None
    if not isinstance(start, ast.Constant) or not isinstance(start.value, str) or "." not in start.value:
        return None
    return start.value[:start.value.rfind(".")] or "."  # "." alone: the package it is relative to


def _with_name(call: ast.Call, name: str) -> ast.Call:
    """``call`` with the literal module name ``name`` (for :func:`_literal_import`)."""
    return ast.Call(func=call.func, args=[ast.Constant(name), *call.args[1:]], keywords=call.keywords)


def _dotted_name(node: ast.expr) -> str | None:
    return node.id if isinstance(node, ast.Name) else _dotted(node) if isinstance(node, ast.Attribute) else None


STAR = "*"  # an import key "*helpers": what `from helpers import *` brings (no name starts so)
LOADS = "+"  # an import key "+pk.plug": a submodule `import pk.plug` runs (it binds only pk)
MODULE = "%"  # a reference "%pkg/h5": a module imported by a literal name, which counts whole
PACKAGE = "&"  # a reference "&pkg/steps": a module of that package imported by a computed name: each counts whole
UNFOLLOWED = "(computed import)"  # a reference: a module imported by a name no literal tells (its entry: cannot tell)
COMPUTED = "(computed code)"  # a reference: code run from a value or a file (`exec(text)`; its entry: cannot tell)
SETS = ">"  # a walked name ">config.LIMIT": the module-level statements that set it (_Module.sets)
ALIAS = "@"  # a reference "f@fast:f": `from fast import f` as one of the branches binding f (no name holds "@")
WHOLE = "(module)"  # the object "the whole module" of one whose names are set where no statement shows it (_dynamic)
CALLED = "()"  # a sets name "h.configure()": the module-level calls of h.configure (what they set is not told)
SUBCLASSED = "(class)"  # a sets name "Base(class)": the class statements deriving from Base (its hooks run)


def _digest(node: ast.AST) -> str:
    return hashlib.sha256(_dump(node).encode()).hexdigest()[:16]


_ADDED_EMPTY = frozenset(("type_params",))  # list fields Python 3.12 added: empty unless its new syntax is used


def _dump(node: object) -> str:
    """``ast.dump(node)`` as Python 3.11 writes it, on every Python: the same source gets
    the same digest on 3.11, 3.12 and 3.13 (3.12 adds ``type_params=[]`` to every
    function and an empty string to nested f-string format specs; 3.13 leaves empty lists
    out), so a Python upgrade, or machines on two versions sharing a store, change no code
    fingerprint. On 3.11 the text is ``ast.dump``'s exactly: records keep their digests.

    >>> _dump(ast.parse("def f(): pass").body[0])  # no type_params=[], whatever the Python
    "FunctionDef(name='f', args=arguments(posonlyargs=[], args=[], kwonlyargs=[], kw_defaults=[], defaults=[]), body=[Pass()], decorator_list=[])"

    The tree is walked without recursion: a generated expression of thousands of terms
    imports, and is fingerprinted, without reaching Python's recursion limit.
    """
    out: list[str] = []
    todo: list[object] = [node]  # what is left to write, the next last: text (a str) as it is, a node, a list
    while todo:
        item = todo.pop()
        if type(item) is str:
            out.append(item)
            continue
        if isinstance(item, ast.AST):
            kind = type(item)
            plan = _DUMP_PLANS.get(kind)
            if plan is None:
                plan = _dump_plan(kind)
            parts: list[object] = [kind.__name__ + "("]
            for name, optional in plan:
                try:
                    value = getattr(item, name)
                except AttributeError:  # as ast.dump: a field never set is left out
                    continue
                if value is None and optional or (name in _ADDED_EMPTY and value == []):
                    continue  # an optional field left out, as 3.11 leaves it out
                if kind is ast.JoinedStr and name == "values":
                    value = [part for part in value if not (isinstance(part, ast.Constant) and part.value == "")]
                parts.append(f"{', ' if len(parts) > 1 else ''}{name}=")
                parts.append(_leaf(value))
            parts.append(")")
        else:  # a list
            parts = ["["]
            for index, value in enumerate(item):  # type: ignore[arg-type]
                if index:
                    parts.append(", ")
                parts.append(_leaf(value))
            parts.append("]")
        todo += reversed(parts)
    return "".join(out)


_CONTEXTS = {ast.Load: "Load()", ast.Store: "Store()", ast.Del: "Del()"}


def _leaf(value: object) -> object:
    """A value of a node's field as :func:`_dump` writes it: its text when it holds no
    node that is not a name or a constant (most of a tree: written at once), else itself."""
    kind = type(value)
    if kind is ast.Name:
        context = _CONTEXTS.get(type(value.ctx))  # type: ignore[attr-defined]
        if context is not None:
            return f"Name(id={value.id!r}, ctx={context})"  # type: ignore[attr-defined]
    elif kind is ast.Constant:
        if value.kind is None:  # type: ignore[attr-defined]
            return f"Constant(value={value.value!r})"  # type: ignore[attr-defined]
    elif kind is list:
        return value if value else "[]"
    elif kind in _CONTEXTS:
        return _CONTEXTS[kind]
    elif not isinstance(value, ast.AST):
        return repr(value)
    return value


# a node class -> its fields, each with whether it is optional (left out when None, as ast.dump does)
_DUMP_PLANS: dict[type, tuple[tuple[str, bool], ...]] = {}


def _dump_plan(kind: type) -> tuple[tuple[str, bool], ...]:
    plan = tuple((name, getattr(kind, name, ...) is None) for name in kind._fields)  # type: ignore[attr-defined]
    _DUMP_PLANS[kind] = plan
    return plan


# a node class -> the fields that may hold the nodes a walk looks at: not names, strings, numbers, or the
# load/store context of a name (its ASDL signature, ``Name(identifier id, expr_context ctx)``, tells which)
_CHILD_FIELDS: dict[type, tuple[str, ...]] = {}
_LEAF_TYPES = frozenset(("identifier", "string", "constant", "int", "expr_context"))
_SIGNATURE = re.compile(r"(\w+)[*?]? (\w+)")


def _child_fields(kind: type) -> tuple[str, ...]:
    fields: tuple[str, ...] = kind._fields  # type: ignore[attr-defined]
    signature = dict((name, of) for of, name in _SIGNATURE.findall((kind.__doc__ or "").partition("\n")[0]))
    if set(signature) == set(fields):  # else (a signature not as expected): every field
        fields = tuple(name for name in fields if signature[name] not in _LEAF_TYPES)
    _CHILD_FIELDS[kind] = fields
    return fields


def _children(node: ast.AST) -> list[ast.AST]:
    """The nodes directly under ``node``, in order: ``ast.iter_child_nodes`` less those no
    walk here looks at (a name's load/store context), as a list -- several times faster,
    and the code fingerprint walks every node of each project module several times."""
    kind = type(node)
    fields = _CHILD_FIELDS.get(kind)
    if fields is None:
        fields = _child_fields(kind)
    found: list[ast.AST] = []
    for name in fields:
        value = getattr(node, name, None)
        if isinstance(value, ast.AST):
            found.append(value)
        elif isinstance(value, list):
            found += [item for item in value if isinstance(item, ast.AST)]
    return found


def _parse(source: bytes, module: str, is_package: bool) -> _Module:
    try:
        tree = ast.parse(source)
    except SyntaxError as exc:  # the import will fail on the same line: say where
        return _Module({}, {}, unparsable=exc.lineno or 1)
    except (ValueError, RecursionError, MemoryError):  # a NUL byte, nesting too deep: Python refuses the whole file
        return _Module({}, {}, unparsable=1)
    _strip_docstrings(tree)
    parsed = _Module({}, {})
    package = module if is_package else module.rpartition(".")[0]
    _collect(tree.body, parsed, package, branch=False)
    _set_through_global(tree.body, parsed)
    if _may_be_dynamic(source) and _dynamic(tree, parsed.imports):  # every object, and every statement at module level, by one digest
        references: set[str] = set(parsed.objects)
        imports: Imports = {}
        for node in tree.body:
            if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Import, ast.ImportFrom)):
                found, inside = _references(node, package)
                references |= found
                imports.update(inside)
        parsed.objects[WHOLE] = _Object("module", _digest(tree), frozenset(references), imports)
    return parsed


_DYNAMIC_WORDS = ("globals", "exec", "eval", "vars", "locals", "__name__")  # what _dynamic looks for


def _may_be_dynamic(source: bytes) -> bool:
    """False when the source names none of the words :func:`_dynamic` looks for, so that
    walking its tree is not needed: its text is ASCII (no other spelling of a name, which
    Python normalises NFKC, can read as one) and none of the words is in it.

    >>> _may_be_dynamic(b"def f():\\n    return 1\\n"), _may_be_dynamic("ｇｌｏｂａｌｓ()".encode())
    (False, True)
    """
    try:
        text = importlib.util.decode_source(source)
    except (SyntaxError, UnicodeError, LookupError):
        return True
    return not text.isascii() or any(word in text for word in _DYNAMIC_WORDS)


def _dynamic(tree: ast.Module, imports: Imports | None = None) -> bool:
    """Whether a module's names may be set (or read) where none of its statements shows
    which: ``exec``/``eval`` at module level, ``globals()`` anywhere, ``vars()`` or
    ``locals()`` at module level, the module itself through ``sys.modules[__name__]`` --
    each also reached through ``builtins``, or given another name (``g = globals``: what
    it is called as later is not told). Such a module counts whole: any edit of it may
    change what a task reads there.

    >>> _dynamic(ast.parse("globals().update(A=1)")), _dynamic(ast.parse("def f(c):\\n    exec(c, {})"))
    (True, False)
    >>> _dynamic(ast.parse("if __name__ == '__main__':\\n    globals()[sys.argv[1]]()"))
    False
    >>> _dynamic(ast.parse("run = exec")), _dynamic(ast.parse("def f():\\n    return builtins.globals"))
    (True, True)
    """
    # (node, runs at module level); what a `__main__` guard runs, only a script does
    todo: list[tuple[ast.AST, bool]] = [(node, True) for node in tree.body if not _main_guard(node)]
    while todo:
        sub, top = todo.pop()
        children = _children(sub)
        if isinstance(sub, ast.Call) and (called := _builtin_name(sub.func, imports or {})) is not None:
            if called == "globals" or top and (called in ("exec", "eval") or called in ("vars", "locals") and not sub.args):
                return True
            children = children[1:]  # the function called: not a use of it as a value
        elif (used := _builtin_name(sub, imports or {})) is not None and (used == "globals" or top and used in _UNSEEN_AT_TOP):
            return True  # given another name (`g = globals`, `run = exec`): what it is called as is not told
        if isinstance(sub, ast.Subscript):
            of, key = sub.value, sub.slice
        elif isinstance(sub, ast.Call) and isinstance(sub.func, ast.Attribute) and sub.args:
            of, key = sub.func.value, sub.args[0]  # sys.modules.get(__name__)
        else:
            of, key = None, None
        if isinstance(of, ast.Attribute) and of.attr == "modules" and isinstance(key, ast.Name) and key.id == "__name__":
            return True
        inner = top and not isinstance(sub, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
        todo.extend((child, inner) for child in children)
    return False


_UNSEEN_AT_TOP = frozenset(("exec", "eval", "vars", "locals"))  # set a module's names unseen when run at its top
_BUILTINS = frozenset(("builtins", "__builtins__"))


def _builtin_name(node: ast.AST, imports: Imports) -> str | None:
    """``globals`` for ``globals``, ``builtins.globals``, ``__builtins__.globals``, or a name
    ``from builtins import globals as g`` binds; the name itself for any other name; None
    for anything else."""
    if isinstance(node, ast.Name):
        source = imports.get(node.id)
        return source[1] if source is not None and source[0] == "builtins" and source[1] else node.id
    if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) \
            and (node.value.id in _BUILTINS or imports.get(node.value.id) == ("builtins", None)):
        return node.attr
    return None


def _set_through_global(body: list[ast.stmt], parsed: _Module) -> None:
    """A module name a function (or a method) declares ``global`` may be set whenever it
    runs: the name counts by those functions too (``def init(): global X; X = ...``), and
    is a constant of the module even when nothing at module level assigns it."""
    setters: dict[str, set[str]] = {}
    todo: list[tuple[ast.AST, tuple[str, ...]]] = [(node, ()) for node in reversed(body)]  # (node, defs around it)
    while todo:
        node, around = todo.pop()
        if isinstance(node, ast.Global):
            for name in node.names:
                setters.setdefault(name, set()).update(around)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and node.name in parsed.objects:
            around = (*around, node.name)  # a Global in it (at any depth) is its
        for block in _BLOCKS:
            inner = getattr(node, block, None)
            if inner:
                todo.extend((child, around) for child in reversed(inner))
    setters = {name: by for name, by in setters.items() if by}
    for name, by in setters.items():
        by.discard(name)
        for setter in by:
            parsed.setters.setdefault(setter, set()).add(name)
        old = parsed.objects.get(name)
        if old is None:
            digest = hashlib.sha256(" ".join(sorted(by)).encode()).hexdigest()[:16]
            parsed.objects[name] = _Object("const", digest, frozenset(by), {})
        elif old.kind == "const" and not by <= old.references:
            parsed.objects[name] = replace(old, references=old.references | by)


def _collect(body: list[ast.stmt], parsed: _Module, package: str, *, branch: bool, runs: bool = True) -> None:
    """The objects and imports a module's statements define. Inside ``if``/``try``/``with``
    at module level (a fallback ``def`` in ``except ImportError:``) each definition counts,
    and one name defined in several branches counts by all of them, an import among them
    too (``try: from fast import f`` / ``except ImportError: from slow import f``); ``f = wrap(f)`` counts
    by the ``def f`` it wraps and the call that wraps it -- a name bound twice at module level
    counts by both bindings (``g = f`` before ``def f`` again saw the first); ``X += ...`` adds to
    ``X``, as ``X[k] = ...`` and ``X.a = ...`` do; ``A, B = ...`` defines ``A`` and ``B``
    by the whole value. ``runs``: the statements run on import (not in a ``__main__`` guard)."""
    objects = parsed.objects

    def define(name: str, kind: str, node: ast.AST, merge: bool) -> None:
        references, imports = _references(node, package)
        new = _Object(kind, _digest(node), references, imports)
        old = objects.get(name)
        if merge and old is not None:
            digest = hashlib.sha256((old.digest + new.digest).encode()).hexdigest()[:16]
            new = _Object(old.kind if kind == "const" else kind, digest, old.references | references,
                          {**old.imports, **imports})
        objects[name] = new

    def alternative(name: str, source: tuple[str, str]) -> None:
        """``name`` may also be ``source``'s (module, name): an import in one branch of an
        ``if``/``try`` of several that bind it (``try: from fast import f`` / ``except
        ImportError: from slow import f`` or ``def f``) -- each counts, as each may run."""
        alias = f"{name}{ALIAS}{source[0]}:{source[1]}"  # no "." in it: a name, not a chain
        new = _Object("const", hashlib.sha256(alias.encode()).hexdigest()[:16], frozenset((alias,)), {alias: source})
        old = objects.get(name)
        if old is not None:
            digest = hashlib.sha256((old.digest + new.digest).encode()).hexdigest()[:16]
            new = _Object(old.kind, digest, old.references | new.references, {**old.imports, **new.imports})
        objects[name] = new

    def sets_imported(target: ast.expr, node: ast.AST) -> None:
        """``config.LIMIT = 5``, ``T["k"] = 1``, ``T.update(...)`` where ``config``/``T`` is
        imported, not the module's own: it changes what the other module's code reads; so do
        ``sys.modules["config"].LIMIT = 5`` and ``builtins.LIMIT = 5`` (any module's ``LIMIT``)."""
        if (builtin := _builtin_set(target, builtins_named)) is not None:
            add_set(builtin, "sets", node, ())
            return
        while _module_of(target, package) is None:
            if isinstance(target, ast.Subscript):
                target = target.value
            elif isinstance(target, ast.Call) and isinstance(target.func, ast.Attribute):
                target = target.func.value
            else:
                break
        written = written_to(target)
        if written is None:
            return
        chain, bound = written
        head = chain.partition(".")[0]
        if "." not in chain and head not in parsed.imports or not bound and (head in objects or head not in parsed.imports):
            return
        add_set(chain, "sets", node, {chain}, bound)

    def written_to(target: ast.expr) -> tuple[str, Imports] | None:
        """The chain an expression names -- ``h.X``, through an alias (``m.X`` after ``m = h``)
        or a module by its literal name (``sys.modules["h"].X``) -- and the imports it is
        resolved with besides the module's; None for anything else."""
        if (through := _through_module(target, package)) is not None:
            top = through[1].partition(".")[0]
            return through[0], {top: (top, None)}
        chain = _chain(target)
        if chain is None:
            return None
        head, dot, rest = chain.partition(".")
        if head in parsed.aliases:
            alias, bound = parsed.aliases[head]
            return alias + dot + rest, bound
        return chain, {}

    def builtins_named(name: str) -> str | None:
        """``__builtins__`` or the name the ``builtins`` module is imported as, for ``name`` or
        an alias of it (``b = __builtins__``); None for any other name."""
        chain = parsed.aliases.get(name, (name, {}))[0]
        return chain if chain == "__builtins__" or parsed.imports.get(chain) == ("builtins", None) else None

    def alias_of(value: ast.expr) -> tuple[str, Imports] | None:
        """What ``m = value`` makes ``m`` stand for: another module or an imported object (or
        ``setattr``/``vars``, which set names unseen)."""
        written = written_to(value)
        if written is None:
            return None
        chain, bound = written
        head = chain.partition(".")[0]
        if chain in ("setattr", "vars") and chain not in objects and chain not in parsed.imports:
            return written
        return written if bound or head == "__builtins__" or head in parsed.imports and head not in objects else None

    def builtins_as() -> dict[str, str]:
        """The module's other names for ``setattr`` and ``vars`` (``s = setattr``, ``from
        builtins import vars as v``)."""
        named = {name: chain for name, (chain, _) in parsed.aliases.items() if chain in ("setattr", "vars")}
        named.update((name, attr) for name, (module, attr) in parsed.imports.items()
                     if module == "builtins" and attr in ("setattr", "vars"))
        return named

    def add_set(key: str, kind: str, node: ast.AST, references: Iterable[str], bound: Imports | None = None) -> None:
        found, imports = _references(node, package)
        imports.update(bound or {})
        new = _Object(kind, _digest(node), found | set(references), imports)
        old = parsed.sets.get(key)
        if old is not None:
            new = _Object(kind, hashlib.sha256((old.digest + new.digest).encode()).hexdigest()[:16],
                          old.references | new.references, {**old.imports, **new.imports})
        parsed.sets[key] = new

    def imported_too(name: str) -> None:  # a name a branch binds again: the import it had counts too
        source = parsed.imports.get(name)
        if branch and name not in objects and source is not None and source[1] is not None:
            alternative(name, (source[0], source[1]))

    def call_at_import(chain: str, node: ast.AST, references: Iterable[str], how: str) -> None:
        """A call at import of ``chain`` (``h.configure(LIMIT)``, ``@register("x")``, a class
        statement's base or metaclass): it may set what that function reaches, wherever
        that is read (:meth:`CodeIndex._setting`)."""
        head, dot, _ = chain.partition(".")
        if head in objects and dot and not references and objects[head].kind != "class":
            return  # `UNITS.update(...)`: the module's own object, which counts by the statement (define)
        if head in objects or head in parsed.imports:  # else no project function
            add_set(chain + how, "calls", node, {chain, *references})

    def written_unseen(chain: str, node: ast.AST) -> None:
        """``vars(h)[k] = ...``, ``h.__dict__.update(...)``, ``setattr(h, name, ...)``: any name of
        ``h`` may be set (of an object of this module: it changes)."""
        head = chain.partition(".")[0]
        if chain.startswith(MODULE):  # of `sys.modules["h"]`
            top = chain[len(MODULE):].partition(".")[0]
            add_set(f"{chain[len(MODULE):]}.{WHOLE}", "sets", node, (), {top: (top, None)})
        elif head in parsed.aliases:  # `vars(m)` after `m = h`
            alias, bound = parsed.aliases[head]
            add_set(f"{alias}{chain[len(head):]}.{WHOLE}", "sets", node, (), bound)
        elif head in objects:
            define(head, "const", node, True)
        elif head in parsed.imports or head in _BUILTINS:
            add_set(f"{chain}.{WHOLE}", "sets", node, {chain})

    for node in body:
        if runs:
            for chain, call, references, how in _calls_at_import(node):
                call_at_import(chain, call, references, how)
            for chain in _written_unseen(node, package, builtins_as()):
                written_unseen(chain, node)
        if isinstance(node, ast.ClassDef) and any(isinstance(d, (ast.FunctionDef, ast.AsyncFunctionDef))
                                                  and d.name == "__init_subclass__" for d in node.body) \
                or isinstance(node, ast.ClassDef) and any(isinstance(b, ast.Name) and b.id == "type" for b in node.bases):
            parsed.hooks.add(node.name)  # a class statement deriving from it runs its code
        for walrus, scope in _walruses(node):  # `if (X := ...):` binds X at module level
            imported_too(walrus.target.id)
            define(walrus.target.id, "const", scope, True)
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            imported_too(node.name)
            # bound again: what ran in between (`g = f`, a decorator that registered it) saw the one before
            define(node.name, "class" if isinstance(node, ast.ClassDef) else "def", node, True)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)) and node.value is not None:
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                for name in ast.walk(target):  # `A = ...`, and each name of `A, (B, *C) = ...`
                    if isinstance(name, ast.Name) and isinstance(name.ctx, ast.Store):
                        # bound again (`K = 1`, `T = K * 2`, `K = 5`): what ran in between saw the value before,
                        # and `helper = lru_cache(helper)` wraps what the name held: each binding counts
                        imported_too(name.id)
                        define(name.id, "const", node.value, True)
                if isinstance(target, ast.Name) and (alias := alias_of(node.value)) is not None:
                    parsed.aliases[target.id] = alias
                root = target
                while isinstance(root, (ast.Attribute, ast.Subscript)):
                    root = root.value
                if root is not target and isinstance(root, ast.Name) and root.id in parsed.aliases:
                    sets_imported(target, node)  # `m.X = ...` after `m = h`: `h.X = ...`
                elif root is not target and isinstance(root, ast.Name) and root.id in objects:
                    define(root.id, "const", node, True)  # `TABLE["b"] = ...`, `Scaler.factor = ...`: it changes
                elif root is not target:
                    sets_imported(target, node)
        elif isinstance(node, ast.Expr) and (attribute := _setattr_target(node.value, builtins_as())) is not None:
            root = attribute.value  # `setattr(h, "V", 1)` is `h.V = 1`
            while isinstance(root, (ast.Attribute, ast.Subscript)):
                root = root.value
            if isinstance(root, ast.Name) and root.id in objects and root.id not in parsed.aliases:
                define(root.id, "const", node, True)
            else:
                sets_imported(attribute, node)
        elif isinstance(node, ast.AugAssign) and isinstance(node.target, ast.Name):
            define(node.target.id, "const", node, True)
        elif isinstance(node, ast.AugAssign):
            sets_imported(node.target, node)
        elif isinstance(node, ast.Expr) and (called := _called_on(node.value)) is not None and called in objects:
            define(called, "const", node, True)  # `UNITS.update({...})`, `NAMES.append(x)`: it changes
        elif isinstance(node, ast.Expr) and isinstance(node.value, ast.Call):
            call = node.value
            if called is not None:  # `T.update(...)` where T is imported: it changes what the other module reads
                sets_imported(call, node)
            # `setup(TABLE)`, `setup()`, `h.fill(TABLE)`: a call at module level may fill the constants
            # it is given and those the function it calls reads; each counts by the call (so by the function)
            given = {a.id for a in [*call.args, *(k.value for k in call.keywords)] if isinstance(a, ast.Name)}
            function = objects.get(call.func.id) if isinstance(call.func, ast.Name) else None
            if function is not None and function.kind == "def":
                given |= {ref.partition(".")[0] for ref in function.references}
            for filled in sorted(given):
                if filled in objects and objects[filled].kind == "const":
                    define(filled, "const", node, True)
        elif isinstance(node, (ast.For, ast.AsyncFor, ast.While)):
            if isinstance(node, (ast.For, ast.AsyncFor)):  # `for X in ...:` binds X, by what it goes over
                for name in ast.walk(node.target):
                    if isinstance(name, ast.Name) and isinstance(name.ctx, ast.Store):
                        imported_too(name.id)
                        define(name.id, "const", node.iter, True)
            before = dict(objects)
            _collect([*node.body, *node.orelse], parsed, package, branch=True, runs=runs)
            for filled in [n for n, obj in objects.items() if before.get(n) is not obj]:
                define(filled, "const", node, True)  # what the loop fills depends on what it loops over
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            imported = _imports_of(node, package)
            for bound, (module, attr) in imported.items():
                if branch and (bound in objects or bound in parsed.imports):
                    if attr is not None:
                        imported_too(bound)
                        alternative(bound, (module, attr))
                    choices = parsed.choices.setdefault(bound, [])  # `impl.compute`: in each module
                    for choice in (parsed.imports.get(bound), (module, attr)):
                        if choice is not None and choice not in choices:
                            choices.append(choice)
            parsed.imports.update(imported)
        elif isinstance(node, ast.Match):  # each case may run; a capture binds by the subject
            for case in node.cases:
                for capture in ast.walk(case.pattern):
                    captured = getattr(capture, "name", None) or getattr(capture, "rest", None)
                    if isinstance(captured, str):
                        imported_too(captured)
                        define(captured, "const", ast.Match(subject=node.subject, cases=[case]), True)
                _collect(case.body, parsed, package, branch=True, runs=runs)
        elif isinstance(node, (ast.If, ast.Try, ast.With)) or type(node).__name__ == "TryStar":
            for item in getattr(node, "items", []):  # `with open(...) as X:` binds X, by what it enters
                for name in ast.walk(item.optional_vars) if item.optional_vars is not None else ():
                    if isinstance(name, ast.Name) and isinstance(name.ctx, ast.Store):
                        imported_too(name.id)
                        define(name.id, "const", item.context_expr, True)
            for block in ("body", "orelse", "finalbody"):
                _collect(getattr(node, block, []), parsed, package, branch=True,
                         runs=runs and not (block == "body" and _main_guard(node)))
            for handler in getattr(node, "handlers", []):
                _collect(handler.body, parsed, package, branch=True, runs=runs)


def _walruses(node: ast.stmt) -> Iterator[tuple[ast.NamedExpr, ast.expr]]:
    """The ``X := ...`` in a module-level statement that bind ``X`` in the module: those of
    its own expressions (a comprehension's too), not of the statements nested in it or of
    a function or class -- each with what it binds by: its value, or the outermost
    comprehension around it (``[(X := i) for i in ITEMS]`` binds X by what it goes over)."""
    todo: list[tuple[ast.AST, ast.expr | None]] = \
        [(child, None) for child in _children(node) if not isinstance(child, ast.stmt)] \
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) else []
    while todo:
        sub, around = todo.pop()
        if isinstance(sub, ast.NamedExpr) and isinstance(sub.target, ast.Name):
            yield sub, around if around is not None else sub.value
        if isinstance(sub, (ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp)) and around is None:
            around = sub
        if not isinstance(sub, (ast.Lambda, ast.stmt)):
            todo.extend((child, around) for child in _children(sub))


def _calls_at_import(node: ast.stmt) -> Iterator[tuple[str, ast.AST, frozenset[str], str]]:
    """The calls a module-level statement makes when the module is imported, by the name
    called (``h.configure``): those in its own expressions (not in the statements nested
    in it, nor in a function or lambda), each with the call, and its decorators -- each
    called with what it decorates, which counts by its name (``@register("x")`` over
    ``def fx``: ``fx`` is what the registry then holds), a class's bases (``SUBCLASSED``: their
    ``__init_subclass__`` runs) and metaclass. Nothing in a ``__main__`` guard."""
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        for decorator in node.decorator_list:
            chain = _chain(decorator.func if isinstance(decorator, ast.Call) else decorator)
            if chain is not None:
                yield chain, decorator, frozenset((node.name,)), CALLED
        if isinstance(node, ast.ClassDef):  # `class A(Base)` runs Base's __init_subclass__; a metaclass runs
            for base in node.bases:
                if (chain := _chain(base)) is not None:
                    yield chain, base, frozenset((node.name,)), SUBCLASSED
            for keyword in node.keywords:
                if keyword.arg == "metaclass" and (chain := _chain(keyword.value)) is not None:
                    yield chain, keyword.value, frozenset((node.name,)), CALLED
        return
    todo: list[ast.AST] = [child for child in _children(node) if not isinstance(child, ast.stmt)]
    while todo:
        sub = todo.pop()
        if isinstance(sub, ast.Call) and (chain := _chain(sub.func)) is not None:
            yield chain, sub, frozenset(), CALLED
        if not isinstance(sub, (ast.Lambda, ast.stmt)):
            todo.extend(_children(sub))


def _chain(node: ast.expr) -> str | None:
    """``h.configure`` for a name or an attribute chain that starts at a name, else None."""
    return node.id if isinstance(node, ast.Name) else _dotted(node) if isinstance(node, ast.Attribute) else None


def _written_unseen(node: ast.stmt, package: str, named: Mapping[str, str] = {}) -> Iterator[str]:
    """What a module-level statement may set any name of, unseen: ``h`` for ``vars(h)``,
    ``h.__dict__``, ``setattr(h, name, ...)`` with a name not written out. ``named``: the
    module's other names for ``vars`` and ``setattr`` (``s = setattr``)."""
    todo: list[ast.AST] = [child for child in _children(node) if not isinstance(child, ast.stmt)] \
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) else []
    while todo:
        sub = todo.pop()
        target: ast.expr | None = None
        called = named.get(sub.func.id, sub.func.id) if isinstance(sub, ast.Call) and isinstance(sub.func, ast.Name) else None
        if isinstance(sub, ast.Call) and sub.args and (
                called == "vars" or called == "setattr" and _setattr_target(sub, named) is None):
            target = sub.args[0]
        elif isinstance(sub, ast.Attribute) and sub.attr == "__dict__":
            target = sub.value
        if target is not None and (chain := _chain(target)) is not None:
            yield chain
        elif target is not None and (through := _through_module(target, package)) is not None:
            yield MODULE + through[0]  # `vars(sys.modules["h"])`: h's names, h imported or not
        if not isinstance(sub, (ast.Lambda, ast.stmt)):
            todo.extend(_children(sub))


def _setattr_target(value: ast.expr, named: Mapping[str, str] = {}) -> ast.Attribute | None:
    """``h.V`` for ``setattr(h, "V", ...)`` with a literal name (``setattr`` by another name
    in ``named``: ``s = setattr``); None for any other expression.

    >>> ast.unparse(_setattr_target(ast.parse("setattr(cfg.opts, 'n', 1)").body[0].value))
    'cfg.opts.n'
    """
    if not isinstance(value, ast.Call) or not isinstance(value.func, ast.Name) \
            or named.get(value.func.id, value.func.id) != "setattr" \
            or len(value.args) != 3 or not isinstance(value.args[0], (ast.Name, ast.Attribute, ast.Subscript)):
        return None
    name = value.args[1]
    if not isinstance(name, ast.Constant) or not isinstance(name.value, str) or not name.value.isidentifier():
        return None
    return ast.Attribute(value=value.args[0], attr=name.value, ctx=ast.Store())


def _through_module(node: ast.expr, package: str) -> tuple[str, str] | None:
    """``("h.X", "h")`` for ``sys.modules["h"].X``, ``("h", "h")`` for ``sys.modules["h"]``
    (or ``sys.modules.get("h")``, ``import_module("h")``: a module by its literal name);
    None for anything else.

    >>> _through_module(ast.parse("sys.modules['pkg.h'].T.k").body[0].value, "")
    ('pkg.h.T.k', 'pkg.h')
    """
    attributes: list[str] = []
    while isinstance(node, ast.Attribute):
        attributes.append(node.attr)
        node = node.value
    module = _module_of(node, package)
    return (".".join([module, *reversed(attributes)]), module) if module is not None else None


def _module_of(node: ast.expr, package: str) -> str | None:
    """The module an expression is by its literal name: ``sys.modules["h"]``,
    ``sys.modules.get("h")``, ``importlib.import_module("h")``, ``__import__("pkg.h")``
    (``pkg``: what ``__import__`` gives without a from-list); None for anything else."""
    key: ast.expr | None = None
    if isinstance(node, ast.Subscript) and _dotted_name(node.value) == "sys.modules":
        key = node.slice
    elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.args \
            and _dotted_name(node.func) == "sys.modules.get":
        key = node.args[0]
    elif isinstance(node, ast.Call) and (imported := _literal_import(node, package)) is not None:
        called = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
        return imported.partition(".")[0] if called == "__import__" and len(node.args) < 4 and not node.keywords \
            else imported
    if not isinstance(key, ast.Constant) or not isinstance(key.value, str) \
            or not all(part.isidentifier() for part in key.value.split(".")):
        return None
    return key.value


def _builtin_set(target: ast.expr, builtins_named: Callable[[str], str | None]) -> str | None:
    """What a module-level statement sets in the ``builtins`` module, which every module
    reads a name it does not bind from: ``"builtins.X"`` for ``builtins.X = ...``,
    ``setattr(builtins, "X", ...)`` (as ``b.X`` after ``import builtins as b``), ``"__builtins__.X"``
    for ``__builtins__["X"] = ...``; ``"builtins.(module)"`` where the name is not told
    (``__builtins__.update(...)``, ``__builtins__[name] = ...``); None for anything else."""
    node: ast.expr = target
    name: str | None = None
    if isinstance(target, ast.Call) and isinstance(target.func, ast.Attribute):
        node = target.func.value  # `__builtins__.update(...)`
    elif isinstance(target, ast.Attribute):
        node, name = target.value, target.attr
    elif isinstance(target, ast.Subscript):
        key = target.slice
        node, name = target.value, key.value if isinstance(key, ast.Constant) and isinstance(key.value, str) else None
    head = builtins_named(node.id) if isinstance(node, ast.Name) else None
    if head is None:
        return None
    return f"{head}.{name if name is not None and name.isidentifier() else WHOLE}"


def _main_guard(node: ast.stmt) -> bool:
    """``if __name__ == "__main__":`` -- its body never runs on import."""
    test = node.test if isinstance(node, ast.If) else None
    return isinstance(test, ast.Compare) and isinstance(test.left, ast.Name) and test.left.id == "__name__" \
        and len(test.comparators) == 1 and isinstance(test.comparators[0], ast.Constant) \
        and test.comparators[0].value == "__main__"


def _called_on(value: ast.expr) -> str | None:
    """The name a module-level call is a method of: ``UNITS`` for ``UNITS.update(...)`` or
    ``TABLE["k"].append(...)``; None for any other expression.

    >>> _called_on(ast.parse("UNITS.update(b=2)").body[0].value), _called_on(ast.parse("print(1)").body[0].value)
    ('UNITS', None)
    """
    if not isinstance(value, ast.Call) or not isinstance(value.func, ast.Attribute):
        return None
    root = value.func.value
    while isinstance(root, (ast.Attribute, ast.Subscript, ast.Call)):
        root = root.func if isinstance(root, ast.Call) else root.value
    return root.id if isinstance(root, ast.Name) else None


def _module_source(path: str) -> bytes | None:
    """The source of the module file at ``path``; None when no regular file is there (a
    FIFO or a device is no module: it is not read, and would wait or never end)."""
    try:
        with open_regular(path) as f:
            return f.read()
    except NotRegularFile:
        return None
    except OSError as exc:
        if exc.errno in _NO_FILE_THERE:  # what os.path.isfile says False to, as before
            return None
        raise


_NO_FILE_THERE = (errno.ENOENT, errno.ENOTDIR, errno.EISDIR, errno.ENAMETOOLONG, errno.ELOOP)


def _search_path(root: str) -> list[str]:
    """The folders a project's modules are found in, in the order Python looks: the root
    (the runner puts it first on ``sys.path``), the ``sys.path`` folders that lie inside
    it (``PYTHONPATH=src``, an editable install's path entry), then ``root/src`` -- a src
    layout counts even where it is installed by a finder rather than a path entry, or not
    on this process's path at all. A folder of installed packages inside the root (a
    ``.venv`` there) holds libraries, not the project's code."""
    found = [root]
    venvs = {os.path.realpath(p) for p in (sys.prefix, sys.exec_prefix, sys.base_prefix)}
    for entry in [*sys.path, os.path.join(root, "src")]:
        real = os.path.realpath(entry or os.curdir)
        inside = real.startswith(root + os.sep)
        installed = any(real == v or real.startswith(v + os.sep) for v in venvs) or \
            any(part in ("site-packages", "dist-packages") for part in real.split(os.sep))
        if inside and not installed and real not in found and os.path.isdir(real):
            found.append(real)
    return found


@dataclass
class _Closure:
    """What a ``run: module:function`` reaches: each project object it uses ("file:name" ->
    "kind:digest"), the imported names whose library counts by its version, and -- for a
    callable that is not the project's -- the module and name it comes from."""

    entries: dict[str, str] = field(default_factory=dict)
    libraries: set[str] = field(default_factory=set)  # top-level import names
    outside: tuple[str, str] | None = None


class CodeIndex:
    """Code fingerprints of a project's functions, for one run."""

    def __init__(self, root: str) -> None:
        self.root = os.path.realpath(root)
        self._path: list[str] | None = None  # where modules are found: asked for only when code is
        self._files: dict[str, tuple[str, _Module] | None] = {}  # module -> (relative path, parsed)
        self._walked: dict[str, _Closure | None] = {}
        self._unparsable: dict[str, str | None] = {}
        self._closures: dict[str, dict[str, str] | None] = {}
        self._loads: dict[str, frozenset[str]] = {}  # module -> those its import runs that set names elsewhere
        # (module, name it sets) -> where that is, and whether the whole name is there (not an object it is part of)
        self._set_where: dict[tuple[str, str], tuple[tuple[str, str], bool] | None] = {}
        self._uses: dict[tuple[str, str], tuple[list[tuple[str, str]], frozenset[str]]] = {}  # object -> _edges
        self._namespaces: dict[str, bool] = {}  # dotted name -> a namespace package of the project
        self._listed: set[str] = set()  # the folders of packages a module is imported from by a computed name
        self._reached: dict[tuple[str, str], frozenset[tuple[str, str]]] = {}  # object -> _reach
        self._state: dict[tuple[str, str], frozenset[tuple[str, str]]] = {}  # function -> what of _reach is state

    def _module(self, name: str) -> tuple[str, _Module] | None:
        """A project module by its dotted name (None: not a file in the project's folders)."""
        if name in self._files:
            return self._files[name]
        found: tuple[str, _Module] | None = None
        if self._path is None:
            self._path = _search_path(self.root)
        for folder in self._path if name else ():
            base = os.path.join(folder, *name.split("."))
            for path, is_package in ((base + ".py", False), (os.path.join(base, "__init__.py"), True)):
                source = _module_source(path)
                if source is not None:
                    key = (path, hashlib.sha256(source).hexdigest())
                    if key not in _PARSED:
                        _PARSED[key] = _parse(source, name, is_package)
                    found = (os.path.relpath(path, self.root).replace(os.sep, "/"), _PARSED[key])
                    break
            if found is not None:
                break
        self._files[name] = found
        return found

    def _lookup(self, module: str, name: str, depth: int = 0, attribute: bool = True) -> tuple[str, str] | None:
        """Where a top-level name of a project module is defined: (module, name), following
        imports -- or the module that does not parse, where the name cannot be told. A name
        no statement binds is the module's whole when names are set there unseen (exec,
        globals()), else, asked of the module from outside (``attribute``: ``h.LIMIT``,
        ``from h import LIMIT``, not a name its own code reads), its ``__getattr__`` (PEP 562)
        unless a submodule is so named."""
        found = self._module(module)
        if found is None or depth > 10:
            return None
        parsed = found[1]
        if name in parsed.objects or parsed.unparsable is not None:
            return module, name
        if name in parsed.imports:
            source, attr = parsed.imports[name]
            return self._lookup(source, attr, depth + 1) if attr is not None else None
        for key, (source, _) in reversed(parsed.imports.items()):  # `from helpers import *`: the last one wins
            lazy = key.startswith(STAR) and "__all__" in (self._module(source) or ("", _Module({}, {})))[1].objects
            if key.startswith(STAR) and (found_there := self._lookup(source, name, depth + 1, lazy)) is not None:
                return found_there  # (a name `__all__` lists may be one `__getattr__` supplies)
        fallback = WHOLE if WHOLE in parsed.objects else "__getattr__" if attribute and "__getattr__" in parsed.objects \
            else None
        if fallback is None or attribute and self._module(f"{module}.{name}") is not None:
            return None  # nothing supplies it (a builtin, a local), or a submodule: looked up as one
        return module, fallback

    def _origin(self, module: str, name: str, depth: int = 0) -> tuple[str, str] | None:
        """The module outside the project a name comes from, following the project's
        imports (``from json import dumps`` in tasks.py): (module, name), or None."""
        found = self._module(module)
        if found is None:
            return module, name
        imported = found[1].imports.get(name)
        if imported is None or imported[1] is None or depth > 10:
            return None
        return self._origin(imported[0], imported[1], depth + 1)

    def _resolve(self, module: str, ref: str, local: Imports) -> tuple[str, str] | None:
        """The project object a name used in ``module`` stands for, or None (local, builtin,
        library). ``local``: the imports made inside the object that uses it, which come first."""
        head, *attrs = ref.split(".")
        found = self._module(module)
        if found is None:
            return None
        imported = local.get(head) or found[1].imports.get(head)
        if not attrs:
            if head in local:
                source, name = local[head]
                return self._lookup(source, name) if name is not None else None
            return self._lookup(module, head, attribute=False)
        if imported is None:  # `C.method`, `TABLE.get`: the module's own object (or its star import's)
            return self._lookup(module, head, attribute=False)
        # `import helpers` ... `helpers.normalize`; `import pkg.words` ... `pkg.words.upper`
        target = f"{imported[0]}.{imported[1]}" if imported[1] is not None else imported[0]
        if imported[1] is not None and self._module(target) is None and not self._namespace(target):
            return self._lookup(imported[0], imported[1])  # `from reg import R0` ... `R0.d`: that object
        for attr in attrs:
            if self._module(target) is None and not self._namespace(target):
                return None
            where = self._lookup(target, attr)
            if where is not None:
                return where
            target = f"{target}.{attr}"  # a submodule, perhaps
        return None

    def _package_modules(self, package: str) -> list[str]:
        """The project modules in a package (its own ``__init__`` and those under it, at any
        depth), by dotted name, sorted; a folder of installed packages or targetrun's own is none."""
        if self._path is None:
            self._path = _search_path(self.root)
        found: set[str] = set()
        for folder in self._path:
            top = os.path.join(folder, *package.split("."))
            for where, subfolders, files in os.walk(top):
                self._listed.add(where)  # a module added there is one more it may import: what this rests on
                subfolders[:] = sorted(d for d in subfolders if d.isidentifier())
                below = os.path.relpath(where, top)
                dotted = ".".join([package, *([] if below == os.curdir else below.split(os.sep))])
                found.update(dotted if name == "__init__.py" else f"{dotted}.{name[:-3]}"
                             for name in files if name.endswith(".py") and name[:-3].isidentifier())
        return sorted(m for m in found if self._module(m) is not None)

    def _namespace(self, name: str) -> bool:
        """Whether ``name`` is a namespace package of the project: a folder without an
        ``__init__.py`` in a folder modules are found in (PEP 420), whose modules are the project's."""
        if name not in self._namespaces:
            if self._path is None:
                self._path = _search_path(self.root)
            self._namespaces[name] = any(os.path.isdir(os.path.join(folder, *name.split("."))) for folder in self._path)
        return self._namespaces[name]

    def _module_value(self, module: str, ref: str, local: Imports) -> str | None:
        """The project module ``ref`` names as a value -- ``M = pkg.mod``, ``getattr(h, name)``,
        ``vars(h)``, ``h.__dict__`` -- what of it is read is not told: it counts whole. None
        when ``ref`` names no module."""
        head, *attrs = ref.split(".")
        imported = local.get(head) or (self._files.get(module) or ("", _Module({}, {})))[1].imports.get(head)
        if imported is None:
            return None
        if attrs[-1:] == ["__dict__"]:
            attrs = attrs[:-1]
        target = ".".join([f"{imported[0]}.{imported[1]}" if imported[1] is not None else imported[0], *attrs])
        return target if self._module(target) is not None else None

    def _library(self, parsed: _Module, ref: str, local: Imports) -> str | None:
        """The top-level name of the installed library an imported name comes from; None
        for the standard library, the project, and what is not an import."""
        head = ref.partition(".")[0]
        imported = local.get(head) or parsed.imports.get(head)
        if imported is None:
            return None
        top = imported[0].split(".")[0]
        if not top or top in sys.stdlib_module_names or self._module(top) is not None:
            return None
        return top

    def _setting(self, seen: set[tuple[str, str]]) -> list[tuple[str, str]]:
        """The module-level statements that set an object in ``seen`` of another module
        (``config.LIMIT = 5`` in tasks.py, and a helper reads ``LIMIT``), in the modules
        reached and those they import (their module-level code runs too), as ``(module,
        SETS + name)``, not yet in ``seen``."""
        found = []
        loaded: set[str] = set()  # the project modules whose module-level code runs: those reached, what they import
        for module in {mod for mod, _ in seen}:
            loaded |= self._setters_loaded_with(module)
        for mod, name in seen:  # and what the objects reached import where they run (`def make(): import pk.plug`)
            parsed = (self._files.get(mod) or ("", _Module({}, {})))[1]
            obj = parsed.sets.get(name[len(SETS):]) if name.startswith(SETS) else parsed.objects.get(name)
            for source, attr in (obj.imports.values() if obj is not None else ()):
                loaded |= self._setters_loaded_with(source)
                if attr is not None:
                    loaded |= self._setters_loaded_with(f"{source}.{attr}")
        for module in sorted(loaded):
            parsed = (self._files.get(module) or ("", _Module({}, {})))[1]
            for chain, obj in parsed.sets.items():
                if (module, SETS + chain) in seen:
                    continue
                head, _, name = chain.partition(".")
                if head == "__builtins__" or parsed.imports.get(head) == ("builtins", None):  # `builtins.X = ...`
                    if self._reads_builtin(seen, name):
                        found.append((module, SETS + chain))
                    continue
                if chain.endswith("." + WHOLE):  # `vars(h)[k] = ...`: any name of h, read where any object of it is
                    target = self._module_named(module, chain[:-len(WHOLE) - 1], obj.imports)
                    if target is not None and any(mod == target for mod, _ in seen):
                        found.append((module, SETS + chain))
                    continue
                if (module, chain) not in self._set_where:
                    self._set_where[module, chain] = self._resolve_prefix(module, chain.removesuffix(CALLED)
                                                                          .removesuffix(SUBCLASSED), obj.imports)
                where, exact = self._set_where[module, chain] or (None, False)
                if where is None:
                    continue
                if not exact and chain.endswith(CALLED) and self._kind(where) == "class":
                    # `S.setup()`: a class's method may set state elsewhere; where the class is read, the call
                    # counts already (in its digest, or as `sets S` where it is imported)
                    hit = where not in seen and self._state_read(where, seen)
                elif not exact and chain.endswith(CALLED) and chain[:-len(CALLED)].rpartition(".")[0] in parsed.sets:
                    hit = False  # `h.T.update(...)`: said as what it sets, `sets h.T`
                elif not exact or not chain.endswith((CALLED, SUBCLASSED)):  # an object it sets (`C.k = 1`, `R0.add(f)`)
                    hit = where in seen
                elif chain.endswith(SUBCLASSED):  # a class statement: only a hook of the base runs code
                    hit = any(name in self._hooks(mod) for mod, name in self._reach(where)) and self._state_read(where, seen)
                else:
                    hit = self._state_read(where, seen)
                if hit:
                    found.append((module, SETS + chain))
        return found

    def _hooks(self, module: str) -> set[str]:
        return (self._files.get(module) or ("", _Module({}, {})))[1].hooks

    def _resolve_prefix(self, module: str, chain: str, local: Imports) -> tuple[tuple[str, str], bool] | None:
        """The project object ``chain`` names, and True -- or, when only a part of it names one
        (``R0.add``, ``C.k``: a method or an attribute of it), that object, and False."""
        where = self._resolve(module, chain, local)
        if where is None:
            return None
        owner = chain.rpartition(".")[0]  # `h.configure`: h is a module; `R0.add`: R0 is not
        return where, not owner or self._module_value(module, owner, local) is not None

    def _reads_builtin(self, seen: set[tuple[str, str]], name: str) -> bool:
        """Whether an object in ``seen`` reads ``name`` (any name, for WHOLE) where its module
        binds none: from the ``builtins`` module, which a statement elsewhere sets."""
        for mod, of in seen:
            parsed = (self._files.get(mod) or ("?", _Module({}, {}, 1)))[1]
            obj = parsed.sets.get(of[len(SETS):]) if of.startswith(SETS) else parsed.objects.get(of)
            if obj is None or parsed.unparsable is not None:
                continue
            for ref in obj.references:
                head = ref.partition(".")[0]
                if (head == name or name == WHOLE and head.isidentifier()) and head not in obj.imports:
                    where = self._resolve(mod, head, obj.imports)
                    if where is None or where[1] == WHOLE:
                        return True
        return False

    def _module_named(self, module: str, chain: str, local: Imports) -> str | None:
        """The project module ``chain`` (``h``, ``pkg.h``) names in ``module``, or None."""
        head, *attrs = chain.split(".")
        imported = local.get(head) or (self._files.get(module) or ("", _Module({}, {})))[1].imports.get(head)
        if imported is None:
            return None
        target = ".".join([f"{imported[0]}.{imported[1]}" if imported[1] is not None else imported[0], *attrs])
        return target if self._module(target) is not None else None

    def _state_read(self, function: tuple[str, str], seen: set[tuple[str, str]]) -> bool:
        """Whether what ``seen`` holds reads, from outside ``function``, state it reaches (a
        constant, a class): what a call of it at import may have set -- the registry
        ``@register("x")`` fills, the table ``h.configure(LIMIT)`` stores in --, not what
        only the function's own code reads (a memo table a decorator keeps, a log list)."""
        reach = self._reach(function)
        if function not in self._state:
            # a class called (h.Cfg(5)) is state itself: its __init__ may set what it holds
            state = {where for where in reach if (where != function or self._kind(where) == "class")
                     and self._kind(where) in ("const", "class", "module")}
            for mod, name in reach:  # a name a function reached sets through `global`
                parsed = (self._files.get(mod) or ("?", _Module({}, {}, 1)))[1]
                state.update((mod, other) for other in parsed.setters.get(name, ()) if other in parsed.objects)
            self._state[function] = frozenset(state)
        written = self._state[function]
        return not written.isdisjoint(seen) and \
            any(not written.isdisjoint(self._edges(*where)[0]) for where in seen if where not in reach)

    def _kind(self, where: tuple[str, str]) -> str:
        mod, name = where
        parsed = (self._files.get(mod) or ("?", _Module({}, {}, 1)))[1]
        if parsed.unparsable is not None:
            return "unparsable"
        return (parsed.sets[name[len(SETS):]] if name.startswith(SETS) else parsed.objects[name]).kind

    def _setters_loaded_with(self, start: str) -> frozenset[str]:
        """The project modules importing ``start`` runs (it, the packages around it, what
        they import, transitively) that set a name in another module (once per module)."""
        if start not in self._loads:
            loaded: set[str] = set()
            modules = [start]
            while modules:
                module = modules.pop()
                if module in loaded or (there := self._module(module)) is None:
                    continue
                loaded.add(module)
                parts = module.split(".")
                modules.extend(".".join(parts[:i]) for i in range(1, len(parts)))  # a package's __init__ runs first
                for source, attr in there[1].imports.values():
                    modules.extend((source, f"{source}.{attr}") if attr is not None else (source,))
            self._loads[start] = frozenset(m for m in loaded if (self._files.get(m) or ("", _Module({}, {})))[1].sets)
        return self._loads[start]

    def _whole(self, module: str, depth: int = 0) -> tuple[list[tuple[str, str]], set[str]]:
        """What a module imported by a literal name brings: each of its objects, and of the
        names it imports, when it is the project's (the module itself when it does not
        parse), else its library's name."""
        found = self._module(module)
        if found is None:
            top = module.split(".")[0]
            return [], set() if top in sys.stdlib_module_names or self._module(top) is not None else {top}
        if found[1].unparsable is not None:
            return [(module, "")], set()
        objects = [(module, name) for name in found[1].objects]
        # the names it imports are its too (`from hc import V`: `M.V`, `getattr(M, name)`), as are a star import's
        for key, (source, attr) in found[1].imports.items():
            if key.startswith(STAR) and depth < 10:
                objects += self._whole(source, depth + 1)[0]
            elif attr is not None and (where := self._lookup(source, attr, depth + 1)) is not None:
                objects.append(where)
        return objects, set()

    @staticmethod
    def _bindings(parsed: _Module, ref: str, local: Imports) -> list[Imports]:
        """The imports ``ref`` is resolved with: the object's own -- and, for ``impl.f`` where
        branches of the module (or of the function) bind ``impl`` to several modules, one set
        for each of them."""
        head = ref.partition(".")[0]
        if head == ref:
            return [local]
        if head in local:
            inside = [source for key, source in local.items() if key.startswith(head + ALIAS) and source[1] is None]
            return [local, *({**local, head: choice} for choice in inside)]
        if head not in parsed.choices:
            return [local]
        return [local, *({**local, head: choice} for choice in parsed.choices[head])]

    def _walk(self, run: str) -> _Closure | None:
        """What ``run: module:function`` reaches (once per run), without asking any
        library's version; None when it is nowhere to be found."""
        if run in self._walked:
            return self._walked[run]
        module, _, attr = run.partition(":")
        head = attr.split(".")[0]
        start = self._lookup(module, head)
        closure: _Closure | None = _Closure()
        if start is None:
            origin = self._origin(module, head)
            closure = _Closure(outside=(origin[0], origin[1] + attr[len(head):])) if origin is not None else None
        todo = [start] if start is not None else []
        seen = set(todo)
        while closure is not None and start is not None:
            if not todo:  # what the modules that run set in another module, where it is read
                todo.extend(self._setting(seen))
                seen.update(todo)
                if not todo:
                    break
            mod, name = todo.pop()
            rel, parsed = self._files[mod] or ("?", _Module({}, {}, 1))
            if parsed.unparsable is not None:
                closure.entries[rel] = f"{UNPARSABLE}:{parsed.unparsable}"
                continue
            obj = parsed.sets[name[len(SETS):]] if name.startswith(SETS) else parsed.objects[name]
            closure.entries[f"{rel}:{name.removeprefix(SETS)}"] = \
                f"{'task' if (mod, name) == start else obj.kind}:{obj.digest}"
            for marker in (UNFOLLOWED, COMPUTED):  # which module it imports, what code it runs, cannot be told
                if marker in obj.references:  # said each time
                    closure.entries[f"{rel}:{name.removeprefix(SETS)}{marker}"] = f"{stalediff.UNFOLLOWED}:1"
            uses, libraries = self._edges(mod, name)
            closure.libraries.update(libraries)
            for where in uses:
                if where not in seen:
                    seen.add(where)
                    todo.append(where)
        self._walked[run] = closure
        return closure

    def _edges(self, mod: str, name: str) -> tuple[list[tuple[str, str]], frozenset[str]]:
        """The project objects one object uses (its module's whole too, when that counts
        whole), and the installed libraries it uses by name; once per object."""
        if (mod, name) not in self._uses:
            parsed = (self._files.get(mod) or ("?", _Module({}, {}, 1)))[1]
            uses: list[tuple[str, str]] = []
            libraries: set[str] = set()
            if parsed.unparsable is None:
                obj = parsed.sets[name[len(SETS):]] if name.startswith(SETS) else parsed.objects[name]
                if WHOLE in parsed.objects and name != WHOLE:
                    uses.append((mod, WHOLE))
                for ref in sorted(obj.references):
                    if ref in (UNFOLLOWED, COMPUTED):  # said as an entry of its own (_walk)
                        continue
                    if ref.startswith(MODULE):  # `import_module("h5")`: each object of h5, or its library
                        whole, of_library = self._whole(obj.imports[ref][0])
                        uses.extend(whole)
                        libraries |= of_library
                        continue
                    if ref.startswith(PACKAGE):  # `import_module(f"steps.{x}")`: each module of steps, whole
                        for inside in self._package_modules(obj.imports[ref][0]):
                            uses.extend(self._whole(inside)[0])
                        continue
                    for local in self._bindings(parsed, ref, obj.imports):
                        where = self._resolve(mod, ref, local)
                        if where is not None:
                            uses.append(where)
                        elif (whole_of := self._module_value(mod, ref, local)) is not None:
                            uses.extend(self._whole(whole_of)[0])
                        elif (library := self._library(parsed, ref, local)) is not None:
                            libraries.add(library)
            self._uses[mod, name] = (uses, frozenset(libraries))
        return self._uses[mod, name]

    def _reach(self, start: tuple[str, str]) -> frozenset[tuple[str, str]]:
        """The project objects ``start`` uses, transitively, itself included (once per object)."""
        if start not in self._reached:
            seen = {start}
            todo = [start]
            while todo:
                for where in self._edges(*todo.pop())[0]:
                    if where not in seen:
                        seen.add(where)
                        todo.append(where)
            self._reached[start] = frozenset(seen)
        return self._reached[start]

    def sources(self) -> list[str]:
        """The project files read so far (absolute paths), and the folders listed for a module
        imported by a computed name: what the code of the tasks looked at rests on
        (:mod:`targetrun.certify`)."""
        return sorted({os.path.join(self.root, found[0]) for found in self._files.values() if found is not None}
                      | self._listed)

    def unparsable(self, run: str) -> str | None:
        """``"helpers.py:3 does not parse"`` when a project file the callable reaches does
        not parse (the first, by path), else None. Asks no library's version."""
        if run not in self._unparsable:  # asked once per task: 10,000 tasks share a few functions
            closure = self._walk(run)
            broken = sorted((key, value) for key, value in closure.entries.items()
                            if value.startswith(UNPARSABLE + ":")) if closure is not None else []
            self._unparsable[run] = unparsable_text(*broken[0]) if broken else None
        return self._unparsable[run]

    def of_callable(self, run: str) -> dict[str, str] | None:
        """``run: module:function`` -> each project object it reaches, by "file:name" ->
        "kind:digest" (the function itself is ``task``; a file that does not parse is
        "file" -> "unparsable:line"), and each installed library those use, by its
        distribution -> "lib:version". A callable from the standard library counts by
        Python's version ("json:dumps" -> "python:3.11.7"), one from an installed library
        by its distribution's ("yaml:safe_dump" -> "dist:PyYAML 6.0.2"). None when it is
        none of these (then its code is unknown)."""
        if run in self._closures:
            return self._closures[run]
        closure = self._walk(run)
        result: dict[str, str] | None = None
        if closure is not None and closure.outside is not None:
            result = _outside_code(*closure.outside)
        elif closure is not None:
            result = dict(closure.entries)
            for top in sorted(closure.libraries):
                library = _distribution(top)
                if library is not None:
                    result[library[0]] = f"lib:{library[1]}"
        self._closures[run] = result
        return result


def _outside_code(module: str, name: str) -> dict[str, str] | None:
    """The code fingerprint of a callable that is not the project's: the standard
    library's by Python's version, an installed library's by its distribution's; None
    for anything else (a module on a path outside the project: unknown)."""
    top = module.split(".")[0]
    if top in sys.stdlib_module_names or top in sys.builtin_module_names:
        return {f"{module}:{name}": f"python:{sys.version.split()[0]}"}
    library = _distribution(top)
    return {f"{module}:{name}": f"dist:{library[0]} {library[1]}"} if library is not None else None


_DISTRIBUTIONS: dict[str, tuple[str, str] | None] = {}  # import name -> (distribution, version); per process


def _distribution(top: str) -> tuple[str, str] | None:
    """The installed distribution that provides a top-level import name, and its version
    (looked up once per process; the full mapping only when the names differ, as yaml/PyYAML).
    importlib.metadata is imported here, not at the top: it brings email, zipfile and more
    (~10 ms), and a run with no ``code`` validator never asks."""
    if top not in _DISTRIBUTIONS:
        import importlib.metadata

        found: tuple[str, str] | None = None
        try:
            found = (top, importlib.metadata.version(top))
        except importlib.metadata.PackageNotFoundError:
            names = importlib.metadata.packages_distributions().get(top) or []
            if names:
                try:
                    found = (names[0], importlib.metadata.version(names[0]))
                except importlib.metadata.PackageNotFoundError:
                    found = None
        _DISTRIBUTIONS[top] = found
    return _DISTRIBUTIONS[top]


# -- deps ------------------------------------------------------------------------------


@dataclass(frozen=True)
class DepState:
    """Each declared dep's sha256 and the stat seen (only to skip hashing next time)."""

    hashes: dict[str, str]
    stats: dict[str, str]


@dataclass(frozen=True)
class OwnFiles:
    """targetrun's own files wherever they live -- the state store and its journals, which
    every run writes -- by real path, never a dep (a folder dep holding the store would
    otherwise be changed by the very run that records it). ``names``: their file names, so
    that only a file so named is resolved."""

    paths: frozenset[str] = frozenset()
    names: frozenset[str] = frozenset()

    @classmethod
    def of(cls, files: Iterable[str]) -> OwnFiles:
        real = {_real_folder(file) for file in files}
        return cls(frozenset(real), frozenset(os.path.basename(path) for path in real))

    def holds(self, file: str) -> bool:
        return os.path.basename(file) in self.names and _real_folder(file) in self.paths


def _real_folder(file: str) -> str:
    """``file`` with its folder's links resolved (not its own: a journal comes and goes)."""
    folder, name = os.path.split(os.path.abspath(file))
    return os.path.join(os.path.realpath(folder), name)


NO_OWN_FILES = OwnFiles()


class DepIndex:
    """Fingerprints of the external files tasks declare, for one run (each file hashed at
    most once, and not at all when its stat or ETag match the last record).

    A dep is keyed by its path relative to the Pipelinefile's folder, normalised
    (``data/./a.csv``, ``data//a.csv`` and ``x/../data/a.csv`` are ``data/a.csv``; a file
    beside the project is ``../shared/a.csv``), so a project moved or cloned with its
    neighbours keeps its keys; an absolute path outside the project keeps its absolute
    spelling, which a move does not change. A folder, an S3 prefix, or a folder a glob
    matches stands for every regular file under it, recursively, in sorted order."""

    def __init__(self, root: str, options_for: Callable[[str], Mapping[str, Any]] | None = None,
                 own_files: OwnFiles = NO_OWN_FILES) -> None:
        self.root = root
        self.options_for = options_for or (lambda url: {})
        self.own_files = own_files
        self._seen: dict[str, tuple[str, str]] = {}  # key -> (hash, stat)
        self._buckets: set[str] = set()  # buckets of remote deps known to exist

    def of_task(self, deps: Iterable[str], previous: Checkpoint | None, own: str | None = None) -> DepState:
        """The deps' fingerprints now; ``own``, the task's target, is none of them (a folder
        dep may hold it: what a task writes is not what it reads)."""
        hashes: dict[str, str] = {}
        stats: dict[str, str] = {}
        old_hashes = recorded_deps(previous.deps, self.root) if previous is not None and previous.deps else {}
        old_stats = recorded_deps(previous.dep_stats, self.root) if previous is not None else {}
        is_own = self._own_target(own)
        for pattern in deps:
            for key, stat, read in self._expand(pattern):
                if is_own(key, stat):
                    continue
                if key not in self._seen:
                    old_hash, old_stat = old_hashes.get(key), old_stats.get(key)
                    if read is None:
                        self._seen[key] = (UNKNOWN_DEP, "")
                    elif old_hash is not None and old_stat is not None and old_stat == stat and stat:
                        self._seen[key] = (old_hash, stat)  # the shortcut: nothing to hash
                    else:
                        self._seen[key] = (_hash_or_missing(read), stat)
                hashes[key], stats[key] = self._seen[key]
        return DepState(hashes, {k: v for k, v in stats.items() if v})

    def _own_target(self, own: str | None) -> Callable[[str, str], bool]:
        """Whether a dep (its key and stat text) is ``own``, the task's target, however the
        deps spell its path: by its key, or -- a local one reached through a linked folder
        (``linked/`` -> ``out/``) -- by its real path, resolved only for a file with the
        target's inode (the last field of a local stat text)."""
        if own is None:
            return lambda key, stat: False
        own_key = self._key_of(own)
        try:
            st = os.stat(own) if not _SCHEME.match(own) else None
        except OSError:  # not there (yet): no other path can lead to it either
            st = None
        if st is None:
            return lambda key, stat: key == own_key
        inode, real = f":{st.st_ino}", os.path.realpath(own)

        def is_own(key: str, stat: str) -> bool:
            return key == own_key or (stat.endswith(inode) and not _SCHEME.match(key)
                                      and os.path.realpath(os.path.join(self.root, key)) == real)

        return is_own

    def _key_of(self, url: str) -> str:
        if _SCHEME.match(url):
            return _remote_key(url.split("://", 1)[0], url)
        return relative_key(os.path.normpath(url), self.root, absolute=os.path.isabs(url))

    def missing(self, deps: Iterable[str]) -> list[str]:
        """The deps named by path that are not there now. A glob that matches nothing is not
        missing (Make's ``$(wildcard)``): it names no file, which the record says."""
        import glob

        return [key for pattern in deps if not glob.has_magic(pattern)
                for key, _, read in self._expand(pattern) if read is None]

    def _expand(self, pattern: str) -> list[tuple[str, str, Callable[[], str] | None]]:
        """(key, stat, how to hash it) for each file a pattern names; (key, "", None) for
        one that names nothing."""
        import glob  # only a task with `deps:` asks

        if pattern[:7].lower() == "file://":  # a local path: read as one (a FIFO, /dev/zero and /proc refused)
            pattern = pattern[7:]
        elif _SCHEME.match(pattern):  # s3://b/k; not data/a://b.csv, a local name holding "://"
            return self._expand_remote(pattern)
        absolute = os.path.isabs(pattern)
        full = os.path.normpath(pattern if absolute else os.path.join(self.root, pattern))  # the path the key names
        magic = glob.has_magic(pattern)
        paths: Iterator[str] = glob.iglob(full, recursive=True) if magic else iter([full])
        first = next(paths, None)
        if first is None and os.path.lexists(full):  # data/report[1].csv matches no report1.csv: the file so named
            first = full
        found: dict[str, tuple[str, str, Callable[[], str] | None]] = {}
        walked: set[str] = set()  # a folder matched is walked whole: what else the glob matches in it is in it
        matched = first is not None  # an empty folder is there: it names no file
        for path in itertools.chain([first] if first is not None else [], paths):
            path = os.path.normpath(path)  # glob yields root/ for root/**
            if magic and _inside(path, walked):
                continue
            walked.add(path)
            for file, st in _files_under(path):
                if len(found) >= MAX_DEP_FILES:  # before the walk of / or a linked /usr takes minutes
                    raise _too_many(pattern)
                if self.own_files.holds(file):  # the state store: this run writes it
                    continue
                key = relative_key(file, self.root, absolute)
                if st is None:
                    found[key] = (key, "", None)
                    continue
                if not filemode.S_ISREG(st.st_mode):  # reading a FIFO waits forever, /dev/zero never ends
                    if magic or file != path:  # found in a folder or by a glob: not a file, as git skips it
                        continue
                    raise UsageError(f"the deps entry {key} is not a regular file (a FIFO, device or socket): it "
                                     "cannot be fingerprinted",
                                     hint="List only files in `deps:`, and check what is at that path.")
                # inode and ctime too (as git and DVC do): a same-size rewrite whose mtime was put
                # back (touch -r, rsync -t, a checkout) still changes them, so it is hashed again
                found[key] = (key, f"{st.st_size}:{st.st_mtime_ns}:{st.st_ctime_ns}:{st.st_ino}",
                              functools.partial(_hash_local, file))
        if not matched:  # nothing there
            key = relative_key(full, self.root, absolute)
            return [(key, "", None)]
        return [found[key] for key in sorted(found)]

    def _expand_remote(self, pattern: str) -> list[tuple[str, str, Callable[[], str] | None]]:
        import glob

        import fsspec  # type: ignore[import-untyped]

        fs, path = fsspec.core.url_to_fs(pattern, **self.options_for(pattern))
        protocol = pattern.split("://", 1)[0]
        files: dict[str, Any] = {}
        try:
            if glob.has_magic(pattern):
                infos: dict[str, Any] = dict(fs.glob(path, detail=True))
            else:
                try:
                    infos = {path: fs.info(path)}
                except FileNotFoundError as exc:
                    if not _not_found(exc, protocol):  # fsspec's HTTP says "not found" for a refused connection too
                        raise
                    infos = {}
            for name, info in sorted(infos.items()):
                if info.get("type") == "directory":  # a prefix: every object under it
                    files.update(fs.find(name, detail=True))
                else:
                    files[name] = info
        except Exception as exc:  # credentials, network: "cannot tell", never "missing"
            raise _cannot_tell(pattern, exc) from None
        if len(files) > MAX_DEP_FILES:
            raise _too_many(_remote_key(protocol, path))
        if not infos:  # nothing there (an empty prefix is there: it names no object)
            self._check_bucket(fs, protocol, path, pattern)
            return [(_remote_key(protocol, path), "", None)]
        return [(_remote_key(protocol, name), _etag(info), functools.partial(_hash_remote, fs, protocol, name))
                for name, info in sorted(files.items()) if info.get("type") != "directory"]

    def _check_bucket(self, fs: Any, protocol: str, path: str, pattern: str) -> None:
        """s3fs and gcsfs say "not found" for a key in a bucket that does not exist: that is
        "cannot tell" (a typo, or no permission), never "missing" -- as for a target
        (:meth:`~targetrun.storage.fsspec.FsspecStorage._check_bucket`). Once per bucket."""
        from targetrun.storage.fsspec import BUCKETED

        bucket = path.split("/", 1)[0]
        if protocol not in BUCKETED or bucket in self._buckets:
            return
        try:
            fs.info(bucket)
        except FileNotFoundError:
            raise StorageError(f"cannot tell whether the dep {redact.redact(pattern)} exists: the bucket {bucket!r} "
                               "does not exist", hint="Check the bucket name, or create the bucket.") from None
        except Exception as exc:
            raise _cannot_tell(pattern, exc) from None
        self._buckets.add(bucket)


def _files_under(path: str) -> Iterable[tuple[str, os.stat_result | None]]:
    """``path`` and its stat, or for a folder every file under it (recursively, sorted,
    linked folders followed once, targetrun's staging files and own folder left out);
    (path, None) when nothing is there. Only stat is asked, never open: the caller leaves
    out what is not a regular file (a FIFO, socket or device) before anything reads it.
    What cannot be looked at (permissions, I/O) is StorageError: a file in a folder that
    cannot be listed is not gone, and not missing -- it cannot be told."""
    try:
        st = os.stat(path)
    except OSError as exc:
        if not _nothing_there(exc):
            raise _cannot_read(path, exc) from None
        yield path, None
        return
    if not filemode.S_ISDIR(st.st_mode):
        yield path, st
        return
    visited = {(st.st_dev, st.st_ino)}

    def unreadable(exc: OSError) -> None:  # os.walk would skip the folder: its files would read as gone
        if not _nothing_there(exc):  # removed meanwhile: nothing under it
            raise _cannot_read(exc.filename or path, exc) from None

    # Linked folders are followed (data/raw -> /mnt/big is common), each real folder once: a loop ends
    for folder, subfolders, names in os.walk(path, onerror=unreadable, followlinks=True):
        subfolders[:] = [d for d in sorted(subfolders)
                         if d != OWN_FOLDER and _first_visit(os.path.join(folder, d), visited)]
        for name in sorted(names):
            if _staging(name):  # a target being written: gone once its run ends
                continue
            file = os.path.join(folder, name)
            try:
                yield file, os.stat(file)
            except OSError as exc:
                if not _nothing_there(exc):
                    raise _cannot_read(file, exc) from None
                # a dangling link, or removed meanwhile: no file under the folder


def _inside(path: str, folders: set[str]) -> bool:
    """Whether ``path`` lies under one of ``folders`` (paths as glob yields them)."""
    parent = os.path.dirname(path)
    while parent not in folders:
        up = os.path.dirname(parent)
        if up == parent:
            return False
        parent = up
    return True


def _too_many(entry: str) -> UsageError:
    return UsageError(f"the deps entry {entry} names more than {MAX_DEP_FILES:,} files: each would be hashed, and "
                      "recorded with every target made from it",
                      hint="Name a narrower folder or glob, or list a manifest (a checksum file) of the folder "
                      "instead, and check for a link to a large tree (/, /usr) inside it.")


def _first_visit(folder: str, visited: set[tuple[int, int]]) -> bool:
    try:
        st = os.stat(folder)
    except OSError as exc:
        if not _nothing_there(exc):
            raise _cannot_read(folder, exc) from None
        return False
    key = (st.st_dev, st.st_ino)
    if key in visited:
        return False
    visited.add(key)
    return True


MAX_DEP_FILES = 100_000  # files one deps entry may name (a link to / or /usr in a folder, a glob like /**)
OWN_FOLDER = ".targetrun"  # the state store, caches, logs and untargeted values: never a dep


_TEMPORARY = re.compile(r"\..+\.tmp-[0-9]+-[0-9a-f]{8}")  # storage.local's temporary sibling of a file it writes


def _staging(name: str) -> bool:
    """A file targetrun is writing, gone once its write ends: a checkpoint's staging sibling
    (``.NAME.targetrun-TOKEN``, storage.base.staging_sibling) or local storage's temporary
    sibling (``.NAME.tmp-PID-HEX``)."""
    return name.startswith(".") and (".targetrun-" in name or _TEMPORARY.fullmatch(name) is not None)


def _nothing_there(exc: OSError) -> bool:
    """An error that says no file is at the path (a dangling or looping link included), as
    opposed to one that says it cannot be looked at (permissions, I/O, a name too long)."""
    return isinstance(exc, (FileNotFoundError, NotADirectoryError)) or exc.errno == errno.ELOOP


def _not_found(exc: FileNotFoundError, protocol: str) -> bool:
    """fsspec's HTTP file system raises FileNotFoundError for any failed request, with the
    real error as its cause: there only an answer of 404 or 410 says nothing is there.
    (s3fs and gcsfs raise it for a "not found" from the store, with the store's error as
    its cause.)"""
    cause = exc.__cause__
    if protocol.lower() not in ("http", "https") or cause is None or isinstance(cause, FileNotFoundError):
        return True
    return getattr(cause, "status", None) in (404, 410)


def _remote_key(protocol: str, path: str) -> str:
    """A remote dep's key: its URL without credentials -- the file, not how to reach it
    (a password in the key would be written to the state store and shown by ``status``).

    >>> _remote_key("s3", "bucket/data/"), _remote_key("https", "https://u:pw@host:8/a.csv")
    ('s3://bucket/data', 'https://host:8/a.csv')
    """
    url = path if _SCHEME.match(path) else f"{protocol}://{path}"  # fsspec's HTTP paths keep their scheme
    scheme, rest = url.split("://", 1)
    head, slash, tail = rest.partition("/")
    return f"{scheme}://{head.rpartition('@')[2]}{slash}{tail}".rstrip("/")


def _etag(info: Mapping[str, Any]) -> str:
    tag = info.get("ETag") or info.get("etag") or info.get("generation") or info.get("md5Hash")
    return f"etag:{str(tag).strip(chr(34))}" if tag else ""


_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://")  # resolve.protocol's test: a URL starts with its scheme


def _hash_or_missing(read: Callable[[], str]) -> str:
    try:
        return "sha256:" + read()
    except FileNotFoundError:  # removed since it was listed
        return UNKNOWN_DEP


def _hash_local(path: str) -> str:
    """The sha256 of a local dep. Read without waiting: a file on disk reads the same, and a
    "regular" pseudo-file that would wait for data (/proc/kmsg) says so instead of hanging
    the run. Any error but "not found" (EIO, EAGAIN, permissions) is "cannot tell"."""
    try:
        try:
            opened = open_regular(path)  # a FIFO put there since the stat is refused, not read forever
        except NotRegularFile as exc:
            raise UsageError(f"the deps entry {path} is not a regular file ({kind_of(exc.mode)}): it cannot be fingerprinted",
                             hint="List only files in `deps:`, and check what is at that path.") from None
        with opened:
            os.set_blocking(opened.fileno(), False)
            digest = hashlib.sha256()
            while chunk := _read_now(opened):
                digest.update(chunk)
        return digest.hexdigest()
    except FileNotFoundError:  # removed since it was listed
        raise
    except OSError as exc:
        raise _cannot_read(path, exc) from None


def _read_now(f: Any) -> bytes:
    chunk = f.raw.read(1024 * 1024)
    if chunk is None:  # no data yet: not a file on disk
        raise BlockingIOError(errno.EAGAIN, "it waits for data instead of reading as a file on disk does")
    return bytes(chunk)


def _hash_remote(fs: Any, protocol: str, path: str) -> str:
    try:
        return _hash_open(fs.open(path, "rb"))
    except FileNotFoundError as exc:
        if _not_found(exc, protocol):  # removed since it was listed
            raise
        raise _cannot_tell(path, exc) from None
    except Exception as exc:
        raise _cannot_tell(path, exc) from None


def _cannot_read(path: str, exc: OSError) -> StorageError | UsageError:
    reason = exc.strerror or type(exc).__name__
    if exc.errno == errno.ENAMETOOLONG:  # no such file can exist: the path is written wrong
        return UsageError(f"the deps entry {path} is not a possible path: {reason}",
                          hint="Shorten the name in `deps:` (a file name holds at most 255 bytes).")
    return StorageError(f"cannot read the dep {path}: {reason}; targetrun cannot tell whether it changed",
                        hint="Check the permissions of that file and the folders above it, or leave it out of `deps:`.")


def _cannot_tell(url: str, exc: BaseException) -> StorageError:
    return StorageError(f"cannot read the dep {redact.redact(url)}: {type(exc).__name__}: {redact.redact(str(exc))}",
                        hint="Check the credentials, network and bucket; targetrun never treats this as missing.")


def _hash_open(f: Any) -> str:
    with f:
        return fingerprint.stream_digest(f)[1]


# -- one task: what makes it now, and how that compares with its record -----------------


@dataclass
class MadeFrom:
    """Per run: the code and deps fingerprints of tasks, computed once each."""

    root: str
    context: RunContext
    options_for: Callable[[str], Mapping[str, Any]] | None = None
    own_files: OwnFiles = NO_OWN_FILES  # the state store's files: never a dep
    code_index: CodeIndex = field(init=False)
    dep_index: DepIndex = field(init=False)

    def __post_init__(self) -> None:
        self._texts: dict[tuple[str | None, str | None, str | None], str | None] = {}
        self._params: dict[str, str] = {}
        self.code_index = CodeIndex(self.root)
        self.dep_index = DepIndex(self.root, self.options_for, self.own_files)

    def code(self, spec: TaskSpec) -> Mapping[str, str] | None:
        """The task's code fingerprints now, as records keep them (with their model,
        :func:`~targetrun.stalediff.modelled`); None when its code is unknown."""
        if spec.version is not None:
            return {"version": "version:" + spec.version}
        if spec.shell is not None:
            return {"shell": _shell_digest(spec.shell)}
        if spec.run is not None:
            code = self.code_index.of_callable(spec.run)
            if code is None:
                return None
            outside = any(value.startswith(("python:", "dist:")) for value in code.values())  # a library's callable
            return stalediff.modelled(code, "1" if outside else stalediff.CODE_MODEL)
        return None

    def param_fingerprint(self, name: str) -> str:
        """The fingerprint of a parameter's value now, as records keep it (``Checkpoint.params``)."""
        if name not in self._params:
            self._params[name] = fingerprint.of_value(self.context.params[name])
        return self._params[name]

    def unparsable(self, spec: TaskSpec) -> str | None:
        """Why a Python task's code cannot be imported as it is now (``"tasks.py:3 does not
        parse"``), else None -- whatever its ``version:`` says: the import fails all the same."""
        return self.code_index.unparsable(spec.run) if spec.run is not None else None

    def code_text(self, spec: TaskSpec) -> str | None:
        """:meth:`code` as one canonical text (computed once per function per run)."""
        key = (spec.version, spec.shell, spec.run)
        if key not in self._texts:
            code = self.code(spec)
            self._texts[key] = fingerprint.canonical(code) if code is not None else None
        return self._texts[key]

    def deps(self, spec: TaskSpec, previous: Checkpoint | None, rendered: Sequence[str] | None = None,
             own: str | None = None) -> DepState:
        """The deps' fingerprints now: ``rendered`` are the task's deps with their templates
        rendered (:class:`~targetrun.resolve.TaskRenderer`); ``spec.deps`` when it has none.
        ``own``: the task's target, never one of its deps."""
        return self.dep_index.of_task(spec.deps if rendered is None else rendered, previous, own)


@functools.lru_cache(maxsize=4096)
def _shell_digest(command: str) -> str:
    """A shell task's code fingerprint; 10,000 tasks often share a few command templates."""
    return "shell:" + hashlib.sha256(command.encode()).hexdigest()[:16]


def compare(
    spec: TaskSpec,
    record: Checkpoint,
    made_from: MadeFrom,
    inputs: Callable[[str], str | None],
    kinds: frozenset[StaleKind],
    deps: Sequence[str] | None = None,
    upstream_made_with: Callable[[], MadeWith | None] | None = None,
) -> tuple[list[Stale], list[str]]:
    """What differs between a target's record and the present, for the kinds asked about,
    and the upstream tasks whose value is recomputed in this run (known only afterwards).

    ``inputs(arg)`` is the present fingerprint of an input, PENDING, or None (unknown);
    ``deps``, the task's deps rendered (None: ``spec.deps`` as written);
    ``upstream_made_with()``, what the values the task reads are made with now, as their
    records say (None: not known) -- see :func:`_explained_by_inputs`.
    """
    found: list[Stale] = []
    pending: list[str] = []
    if StaleKind.CODE in kinds:  # a record without code fingerprints: cannot tell (said, never stale)
        code = code_stale(record.code, _or_gone(record.code, made_from.code(spec)) if record.code is not None
                          else made_from.code(spec))
        if code is not None:
            found.append(code)
    if StaleKind.PARAMETERS in kinds and (record.made_with or record.made_for):
        made_with, made_for = templating.made_differently(record.made_with, record.made_for, made_from.context)
        params = made_from.context.params
        changes = [(name, old, templating.param_text(name, params[name]) if name in params else "(unset)")
                   for name, old in made_with.items()]
        changes += [_type_change(name, text, params[name]) for name, text in record.made_with.items()
                    if name not in made_with and name in params and record.params.get(name) is not None
                    and record.params[name] != made_from.param_fingerprint(name)
                    and _was_retyped(name, text, record.params[name], params[name])]
        if made_for:
            changes.append(("date", made_for, f"{made_from.context.date:%Y-%m-%d}"))
        if changes and upstream_made_with is not None:
            changes = _explained_by_inputs(changes, spec, record, made_from, inputs, upstream_made_with)
        if changes:
            found.append(Stale(StaleKind.PARAMETERS, ", ".join(f"{n}: {a} → {b}" for n, a, b in changes),
                               tuple(n for n, _, _ in changes)))
    if StaleKind.INPUTS in kinds and record.code is not None and record.inputs:
        upstream_of = dict(spec.needs)
        changed: list[str] = []
        for arg, recorded in record.inputs.items():
            now_fp = inputs(arg)
            if now_fp is None or recorded.startswith("stat:"):
                continue  # nothing to compare with (an older targetrun kept an unrecorded input's size and age)
            if now_fp == "pending":
                pending.append(upstream_of.get(arg, arg))
            elif now_fp != recorded:
                changed.append(arg)
        added, gone = _input_set_change(spec, record, inputs)

        def inputs_stale(args: list[str]) -> Stale | None:
            words = list(dict.fromkeys(upstream_of.get(a, f"argument {a}") for a in args))
            words += [f"new input {upstream_of.get(a, f'argument {a}')}" for a in added]
            words += [f"input {a} is gone" for a in gone]
            return Stale(StaleKind.INPUTS, ", ".join(words), (*args, *added, *gone)) if words else None

        said_as = next((i for i, s in enumerate(found) if s.what is StaleKind.PARAMETERS), None)
        if said_as is not None and any(a not in upstream_of for a in changed):
            # templated args follow the parameters: said as the parameter change, and still the
            # input change they are, to what acts on inputs (as when the parameters are not looked at)
            found[said_as] = replace(found[said_as], inputs=inputs_stale(changed))
            changed = [a for a in changed if a in upstream_of]
        if (stale := inputs_stale(changed)) is not None:
            found.append(stale)
    if StaleKind.DEPS in kinds and record.deps is not None:
        now_deps = made_from.deps(spec, record, deps, record.location).hashes  # the target is none of its deps
        found_deps = deps_stale(record.deps, now_deps, made_from.root)
        if found_deps is not None:
            found.append(found_deps)
    return found, pending


def _input_set_change(spec: TaskSpec, record: Checkpoint,
                      inputs: Callable[[str], str | None]) -> tuple[list[str], list[str]]:
    """The inputs (arguments) a task has now that its record has none for, and those the
    record has that the task no longer has: a changed input set, as Snakemake and DVC count
    it (an upstream added to ``needs`` that a shell command reads by path, one dropped). An
    argument renamed (``needs: {d: day}`` -> ``{days: day}``) that holds what the old name
    held is neither: the value is the same (a Python task's code tells the rename itself)."""
    present = [arg for arg, _ in spec.needs] + list(spec.args)
    added = [a for a in present if a not in record.inputs]
    gone = [a for a in record.inputs if a not in present]
    for arg in list(added):
        value = inputs(arg)
        twin = next((old for old in gone if value is not None and record.inputs[old] == value), None)
        if twin is not None:
            added.remove(arg)
            gone.remove(twin)
    return added, gone


MadeWith = tuple[Mapping[str, str], str | None]  # parameter texts by name, and the run date


def _explained_by_inputs(
    changes: list[tuple[str, str, str]],
    spec: TaskSpec,
    record: Checkpoint,
    made_from: MadeFrom,
    inputs: Callable[[str], str | None],
    upstream_made_with: Callable[[], MadeWith | None],
) -> list[tuple[str, str, str]]:
    """The parameter changes that still hold once early cutoff is applied. A parameter the
    task's own templates do not name reaches it only through the values it reads (its record
    keeps what they were made with). When those values are now made with the present value
    (their upstream was rebuilt for it) and their content is what the task read, the change
    made no difference to it: an upstream rebuilt into the same bytes leaves its dependents
    fresh, for a parameter as for code. While the upstream still holds the old value, the
    change stands (the dependent is stale with it, as ``status`` has always said)."""
    own, own_date = templating.made_with(spec, made_from.context)
    inherited = [c for c in changes if (c[0] == "date" and own_date is None) or (c[0] != "date" and c[0] not in own)]
    if not inherited or not _inputs_unchanged(spec, record, inputs):
        return changes
    now = upstream_made_with()
    if now is None:
        return changes
    texts, date = now
    explained = {c for c in inherited if (date if c[0] == "date" else texts.get(c[0])) == c[2]}
    return [c for c in changes if c not in explained]


def _inputs_unchanged(spec: TaskSpec, record: Checkpoint, inputs: Callable[[str], str | None]) -> bool:
    """Whether the task has the inputs its record names, each known now with the content recorded."""
    if not record.inputs or any(_input_set_change(spec, record, inputs)):
        return False
    for arg, recorded in record.inputs.items():
        now_fp = inputs(arg)
        if now_fp is None or now_fp == fingerprint.PENDING or recorded.startswith("stat:") or now_fp != recorded:
            return False
    return True


def _or_gone(recorded: Mapping[str, str], now: Mapping[str, str] | None) -> Mapping[str, str] | None:
    """The code now -- or, for a task whose function its record found and that is nowhere
    now (its module deleted, the function renamed), the record less that function: it is
    gone, not unknown (what it reached is not known to have changed)."""
    if now is not None:
        return now
    callable_kinds = ("task:", "dist:")  # the function itself, in the project or a library
    if not any(value.startswith(callable_kinds) for value in recorded.values()):
        return None
    return {key: value for key, value in recorded.items() if not value.startswith(callable_kinds)}


def _was_retyped(name: str, text: str, recorded: str, value: object) -> bool:
    """Whether a value that reads as ``text`` both then and now was another type then:
    its record's typed fingerprint is that of the other reading of the text (the string
    ``text``, or the JSON value it spells). Anything else -- a fingerprint of some other
    making -- is not known to differ: never stale on a guess. A secret's text is a digest:
    its fingerprint alone tells.

    >>> from targetrun.fingerprint import of_value
    >>> _was_retyped("n", "1", of_value(1), "1"), _was_retyped("n", "1", of_value("1"), 1)
    (True, True)
    >>> _was_retyped("n", "1", "sha256:0000", "1")
    False
    """
    if templating.param_text(name, value) != templating.value_text(value):
        return True
    if not isinstance(value, str):
        return recorded == fingerprint.of_value(text)
    try:
        return recorded == fingerprint.of_value(json.loads(text))
    except ValueError:
        return False


def _type_change(name: str, text: str, value: object) -> tuple[str, str, str]:
    """A parameter whose value reads the same and is another type (``1`` and ``"1"``,
    ``true`` and ``"true"``): the string side quoted, as YAML and ``-p`` tell them apart.
    A secret's value stays hidden; only its new type is said.

    >>> _type_change("n", "1", "1"), _type_change("flag", "true", True)
    (('n', '1', "'1'"), ('flag', "'true'", 'true'))
    """
    if templating.param_text(name, value) != templating.value_text(value):  # a secret: kept as a digest
        return name, text, f"{text} (now a {type(value).__name__})"
    return (name, text, repr(text)) if isinstance(value, str) else (name, repr(text), text)
