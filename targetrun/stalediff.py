"""What differs between what a record says made a target and what makes it now, in
words: the comparisons the staleness report (:mod:`targetrun.staleness`) and the
decision (:mod:`targetrun.engine.decide`, for a cache entry's record) both make.

Pure: it reads fingerprints already taken (code entries, deps hashes) and touches no
file, so the decision stays free of I/O. The fingerprints themselves are taken in
:mod:`targetrun.staleness`.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping

from targetrun.model import Stale, StaleKind

UNKNOWN_DEP = "missing"  # a declared dep that is not there (or a glob that matches nothing)
UNPARSABLE = "unparsable"  # the kind of a code entry for a project file that does not parse
UNFOLLOWED = "unfollowed"  # the kind of a code entry for a module imported by a name, or code run, computed when it runs
_GLOB_CHARS = re.compile(r"[*?[]")  # glob.has_magic's test, without importing glob


# -- code ------------------------------------------------------------------------------


# The fingerprint model of a Python task's project code: how it is fingerprinted (what is
# normalised, what is reached, how entries are keyed and digested). A targetrun that
# fingerprints it another way has another model, and records name theirs under MODEL_KEY in
# their code fingerprints -- except model "1", named by no key (every record written before
# models were named is model 1). Fingerprints of two models are not comparable: a record of
# another model cannot tell whether the code changed. Any change to the rules that changes
# the fingerprints of code nobody edited bumps it (tests/test_stale_sweep9.py pins one
# module's fingerprints to the number). A shell command, a ``version:`` and a library's
# callable are fingerprinted as in model 1 and name no model: their records stay comparable.
# Model 2: constants bound or filled by module-level loops, with, match, := and calls, set
# through ``global`` or from another module; modules imported by a literal or computed name,
# used as values, or counted whole when they set names unseen (exec, globals());
# ``__getattr__``; calls at import (decorators, class statements); names bound twice.
# Model 3: what a module sets in ``builtins`` (read as a bare name elsewhere) or through
# ``sys.modules["h"]``, ``import_module("h")`` or an alias (``m = h``); ``globals``/``exec``
# given another name, as are ``setattr``/``vars``; ``setattr(h, "X", ...)`` in a function is
# ``h.X``, not all of ``h``; what a module used as a value imports; a class's method called at
# import; each import a function or class body binds; code run from a file (cannot tell).
CODE_MODEL = "3"
MODEL_KEY = "@model"  # no project object's key ("file.py:name") nor a library's starts with "@"


def modelled(code: Mapping[str, str], model: str = "1") -> Mapping[str, str]:
    """Code fingerprints as a record keeps them: with the model that took them, unless it is 1."""
    return code if model == "1" else {**code, MODEL_KEY: model}


def code_stale(recorded: Mapping[str, str] | None, now: Mapping[str, str] | None) -> Stale | None:
    """How the code a record names differs from the code now (None: the same, or either
    unknown); a record of another fingerprint model cannot tell (an unknown Stale).

    >>> code_stale({"shell": "shell:a", MODEL_KEY: "0"}, {"shell": "shell:b"}).describe()
    'recorded by an older fingerprint model: cannot tell if code changed'

    A task that became another kind of code (a command, a function) changed, whatever the models:

    >>> code_stale({"tasks.py:f": "task:1", MODEL_KEY: "2"}, {"shell": "shell:b"}).describe()
    'code changed — command; tasks.py: f (gone)'
    """
    if recorded is None and now is not None:
        return Stale(StaleKind.CODE, "recorded without a code fingerprint (by an older targetrun): cannot tell if code changed",
                     unknown=True)
    if recorded is None or now is None:
        return None
    if now == recorded:
        return _unfollowed(now)
    then, present = recorded.get(MODEL_KEY, "1"), now.get(MODEL_KEY, "1")
    if then != present and (set(recorded) & set(now)) - {MODEL_KEY}:  # none in common: other code, by any model
        return Stale(StaleKind.CODE, f"recorded by {_model_age(then, present)} fingerprint model: cannot tell if code changed",
                     unknown=True)
    return Stale(StaleKind.CODE, code_detail(recorded, now))


def _unfollowed(now: Mapping[str, str]) -> Stale | None:
    """Code the same as recorded that imports a module by a name computed when it runs: what
    runs cannot be told, so it is never called fresh -- unknown, said, never acted on.

    >>> _unfollowed({"tasks.py:make": "task:1", "tasks.py:make(computed import)": "unfollowed:1"}).describe()
    'tasks.py: make imports a module by a name computed when it runs: cannot tell if code changed'
    """
    keys = sorted(key for key, value in now.items() if value.startswith(UNFOLLOWED + ":"))
    if not keys:
        return None
    file, _, name = keys[0].rpartition(":")
    what = "runs code computed when it runs (exec, eval, runpy)" if name.endswith("(computed code)") else \
        "imports a module by a name computed when it runs"
    return Stale(StaleKind.CODE, f"{file}: {name.partition('(')[0]} {what}: cannot tell if code changed", unknown=True)


def _model_age(then: str, present: str) -> str:
    """``an older`` / ``a newer`` / ``another``: the record's model against today's.

    >>> _model_age("1", "2"), _model_age("3", "2"), _model_age("x", "2")
    ('an older', 'a newer', 'another')
    """
    if then.isdigit() and present.isdigit():
        return "an older" if int(then) < int(present) else "a newer"
    return "another"


def unparsable_text(file: str, value: str) -> str:
    return f"{file}:{value.partition(':')[2]} does not parse"


_LABELS = {"task": "{}", "def": "helper {}", "class": "class {}", "const": "constant {}", "sets": "sets {}", "shell": "command",
           "version": "version", "lib": "library {}", "calls": "calls {}", "module": "the whole module", "unfollowed": "{}"}


def code_detail(recorded: Mapping[str, str], now: Mapping[str, str]) -> str:
    """What changed, grouped by file; a version (a library's, Python's) with both sides.

    >>> code_detail({"tasks.py:clean": "task:1", "tasks.py:normalize": "def:1", "tasks.py:N": "const:1"},
    ...             {"tasks.py:clean": "task:2", "tasks.py:normalize": "def:2", "tasks.py:N": "const:1"})
    'tasks.py: clean, helper normalize'
    >>> code_detail({"shell": "shell:a"}, {"shell": "shell:b"})
    'command'
    >>> code_detail({"h.py:(module)": "module:1", "h.py:f": "def:1"}, {"h.py:(module)": "module:2", "h.py:f": "def:2"})
    'h.py: helper f'
    >>> code_detail({"h.py:(module)": "module:1", "h.py:f": "def:1"}, {"h.py:f": "def:1"})
    'h.py: the whole module (no longer counted whole)'
    >>> code_detail({"json:dumps": "python:3.11.7", "click": "lib:8.1"}, {"json:dumps": "python:3.12.1", "click": "lib:8.2"})
    'library click (8.1 → 8.2), json:dumps (python 3.11.7 → 3.12.1)'

    A file that does not parse hides what it defines: its objects are not "gone".

    >>> code_detail({"tasks.py:f": "task:1", "helpers.py:g": "def:1"}, {"tasks.py:f": "task:1", "helpers.py": "unparsable:3"})
    'helpers.py:3 does not parse'

    A ``version:`` put on a task (or taken off) replaces the computed fingerprint: nothing
    it stood for is "gone".

    >>> code_detail({"tasks.py:f": "task:1", "helpers.py:g": "def:1"}, {"version": "version:1"})
    'version (added)'
    >>> code_detail({"version": "version:1"}, {"tasks.py:f": "task:1"})
    'version (removed)'
    """
    if ("version" in recorded) != ("version" in now):
        return "version (added)" if "version" in now else "version (removed)"
    incomplete = any(v.startswith(UNPARSABLE + ":") for v in now.values())
    by_file: dict[str, list[str]] = {}
    for key in sorted((set(recorded) | set(now)) - {MODEL_KEY}):
        old, new = recorded.get(key), now.get(key)
        if old == new or (new is None and (incomplete or (old or "").startswith(UNPARSABLE + ":"))):
            continue  # unchanged; or not known now (behind a file that does not parse), or parses again
        file, _, name = key.rpartition(":")
        kind, _, value = (new or old or "").partition(":")
        if kind == UNPARSABLE:
            file, label = "", unparsable_text(key, new or "")
        elif kind in ("python", "dist"):  # a callable outside the project, by the version of what holds it
            file, label = "", f"{key} ({_versions(old, new)})"
        else:
            label = _LABELS.get(kind, "{}").format(name)
            if kind == "lib" and old is not None and new is not None:
                label += f" ({old.partition(':')[2]} → {value})"
        if new is None:
            label += " (no longer counted whole)" if kind == "module" else " (gone)"
        by_file.setdefault(file, []).append(label)
    for file, names in by_file.items():  # a module counted whole changes with each object of it: named, those say more
        if len(names) > 1 and names[0].startswith(_LABELS["module"]):
            del names[0]
    return "; ".join(f"{file}: {', '.join(names)}" if file else ", ".join(names) for file, names in by_file.items())


def _versions(old: str | None, new: str | None) -> str:
    """``python:3.11.7``, ``python:3.12.1`` -> ``python 3.11.7 → 3.12.1``; a distribution
    replaced by another (or by Python) names both.

    >>> _versions("dist:PyYAML 5.4", "dist:PyYAML 6.0"), _versions("dist:simplejson 3.1", "python:3.12.1")
    ('PyYAML 5.4 → 6.0', 'simplejson 3.1 → python 3.12.1')
    """
    def named(entry: str | None) -> tuple[str, str]:
        kind, _, value = (entry or ":?").partition(":")
        name, _, version = (f"python {value}" if kind == "python" else value).rpartition(" ")
        return name, version

    (old_name, old_version), (new_name, new_version) = named(old), named(new)
    before = f"{old_name} {old_version}".strip()
    return f"{before} → {new_version}" if old_name == new_name else f"{before} → {new_name} {new_version}".strip()


# -- deps ------------------------------------------------------------------------------


def deps_stale(recorded: Mapping[str, str] | None, now: Mapping[str, str] | None, root: str) -> Stale | None:
    """Which declared deps differ from a record's hashes (None: none, or either unknown).
    ``root``: the project folder, to read a record that kept absolute keys (:func:`recorded_deps`)."""
    if recorded is None or now is None:
        return None
    then = recorded_deps(recorded, root)
    changed = [k for k in sorted(set(now) | set(then)) if now.get(k) != then.get(k)]
    return Stale(StaleKind.DEPS, deps_detail(then, now), tuple(changed)) if changed else None


def relative_key(path: str, root: str, absolute: bool = False) -> str:
    """A local dep's key: relative to the project, normalised, with ``/`` -- except a path
    declared absolute that lies outside the project, which stays absolute (normalised).

    >>> relative_key("/p/proj/data/./a//b.csv", "/p/proj"), relative_key("/p/proj/../shared/x", "/p/proj")
    ('data/a/b.csv', '../shared/x')
    >>> relative_key("/etc/x/../hosts", "/p/proj", absolute=True)
    '/etc/hosts'
    """
    relative = os.path.relpath(path, root).replace(os.sep, "/")
    if absolute and (relative == ".." or relative.startswith("../")):
        return os.path.normpath(path).replace(os.sep, "/")
    return relative


def recorded_deps(recorded: Mapping[str, str], root: str) -> dict[str, str]:
    """A record's deps by today's keys. Records written before keys were normalised kept a
    dep outside the project as the absolute join of the project folder and the path
    (``/p/proj/../shared/x``): such a key under the same folder reads as ``../shared/x``.

    >>> recorded_deps({"/p/proj/../shared/x": "h", "data/a": "i", "s3://b/k": "j"}, "/p/proj")
    {'../shared/x': 'h', 'data/a': 'i', 's3://b/k': 'j'}
    """
    if not any(key.startswith("/") for key in recorded):
        return dict(recorded)
    prefix = root.rstrip(os.sep) + os.sep
    return {(relative_key(key, root) if key.startswith(prefix) else os.path.normpath(key)) if key.startswith("/")
            else key: value for key, value in recorded.items()}


def deps_detail(recorded: Mapping[str, str], now: Mapping[str, str]) -> str:
    """What differs between a record's deps and the present, by key, in words.

    >>> deps_detail({"a": "1", "b": "2", "c": "3"}, {"a": "9", "c": UNKNOWN_DEP, "d": "4"})
    'dep a changed, dep b is gone, dep c is missing, new dep d'
    >>> deps_detail({"conf/x.ini": "1"}, {"conf/*.ini": UNKNOWN_DEP})
    'dep conf/*.ini matches nothing, dep conf/x.ini is gone'
    """
    words: list[str] = []
    for key in sorted(set(recorded) | set(now)):
        old, new = recorded.get(key), now.get(key)
        if old == new:
            continue
        if new == UNKNOWN_DEP:
            words.append(f"dep {key} matches nothing" if _GLOB_CHARS.search(key) else f"dep {key} is missing")
        elif new is None:
            words.append(f"dep {key} is gone")
        elif old is None or old == UNKNOWN_DEP:
            words.append(f"new dep {key}")
        else:
            words.append(f"dep {key} changed")
    return ", ".join(words)
