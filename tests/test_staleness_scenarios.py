"""A corpus of staleness scenarios (DESIGN.md "Staleness (what made from means)"), as a table.

One project holds a task per mechanism: a task that calls a helper through ``from x import
y``, one through ``import x; x.y()``, one through a package's relative imports, one that
reads a module-level constant, one that uses a class, a decorator, a default value, a
lambda and a ``functools.partial`` defined at module level, a shell task, a task with a
``version:``, a chain whose upstream can be rebuilt into the same or other bytes... Each
scenario makes it, applies one edit, and states for *every* task what is stale and why
(a task not named must not be stale: an edit that reaches too far is a defect too), then:

* ``status --json`` and ``run --dry-run --json`` say exactly that;
* with no validator, ``run`` keeps everything (existence decides), ``run --rebuild-stale``
  runs exactly the expected tasks, and afterwards nothing is stale (status twice);
* with ``cache_validator: [code, all_inputs, all_parameters]``, plain ``run`` runs
  exactly the expected tasks, and afterwards nothing is stale.

Everything runs in-process (CliRunner-style :meth:`Project.cli`); the project's modules
are dropped from ``sys.modules`` before each command, so an edited module is imported
as it is now, and no bytecode is written, so an edit within the same second is never
hidden by a ``.pyc``.
"""

from __future__ import annotations

import importlib
import json
import re
import os
import shutil
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path

import pytest

from targetrun import templating
from targetrun.model import RunContext
from targetrun.pipelinefile import load_pipeline
from targetrun.store.rooted import RootedStore
from targetrun.store.sqlite import SqliteStore
from tests.conftest import Project

HELPERS = '''
"""Project helpers: each task below reaches some of these."""
import functools

SCALE = 10
LIMIT = SCALE * 2
LOW, HIGH = 1, 9


def double(x):
    return x * 2


def inner(x):
    return x + 1


def middle(x):
    return inner(x) * 1


def unused_helper(x):
    return x - 1


def tag(fn):
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        return fn(*args, **kwargs)
    return wrapper


class Scaler:
    factor = 3

    def apply(self, x):
        return x * self.factor


def mul(a, b):
    return a * b


square = lambda x: mul(x, x)  # noqa: E731


def power(x, n):
    return x ** n


cube = functools.partial(power, n=3)


def with_default(x, k=5):
    return x + k


try:
    from a_library_nobody_has import clamp
except ImportError:
    def clamp(x):
        return min(max(x, 0), 100)


EXTRA = [1]
EXTRA += [2]

TABLE = {"a": 1}
TABLE["b"] = 2
'''

EXTRAS = '''
def bump(x):
    return x + 1
'''

PKG_INIT = '''
from .core import shout
'''

PKG_CORE = '''
from . import words
from .words import exclaim


def shout(s):
    return exclaim(words.upper(s))
'''

PKG_WORDS = '''
def upper(s):
    return s.upper()


def exclaim(s):
    return s + "!"


def whisper(s):
    return s.lower()
'''

PKG_SUB_DEEP = '''
from .. import words as w
from ..words import upper


def loud(s):
    return w.exclaim(upper(s))
'''

TASKS = '''
import os

import helpers
import helpers as h
import pkg.words
from helpers import HIGH, LIMIT, SCALE, Scaler, cube, double, middle, square, tag, with_default
from pkg import shout
from extras import *  # noqa: F403


def _log(name):
    with open(os.path.join(os.path.dirname(__file__), "calls.log"), "a") as f:
        f.write(name + "\\n")


def plain(n):
    """Add one."""
    _log("plain")
    total = n + 1  # the sum
    return total


def via_from(n):
    _log("via_from")
    return double(n)


def via_attr(n):
    _log("via_attr")
    return helpers.double(n) + 0


def deep(n):
    _log("deep")
    return middle(n)


def const(n):
    _log("const")
    return n * SCALE


def derived(n):
    _log("derived")
    return n + LIMIT


def unpacked(n):
    _log("unpacked")
    return n + HIGH


def classy(n):
    _log("classy")
    return Scaler().apply(n)


@tag
def decorated(n):
    _log("decorated")
    return n


def defaulted(n, k=2):
    _log("defaulted")
    return n + k + with_default(0)


def lam(n):
    _log("lam")
    return square(n)


def part(n):
    _log("part")
    return cube(n)


def package(s):
    _log("package")
    return shout(s)


def dotted(s):
    _log("dotted")
    return pkg.words.whisper(s)


def lazy(n):
    _log("lazy")
    from helpers import mul
    return mul(n, 3)


def aliased(n):
    _log("aliased")
    return h.power(n, 2)


def clamped(n):
    _log("clamped")
    return helpers.clamp(n)


def extended(n):
    _log("extended")
    return n + sum(helpers.EXTRA)


def starred(n):
    _log("starred")
    return bump(n)  # noqa: F405


def tabled(n):
    _log("tabled")
    return n + helpers.TABLE["b"]


def greet(city, n):
    _log("greet")
    return f"{city}:{n}"


def keyed(api_token):
    _log("keyed")
    return len(api_token)


def dated(day):
    _log("dated")
    return day


def source(n):
    _log("source")
    return [n, n + 1]


def sink(source):
    _log("sink")
    return sum(source)


def pinned(n):
    _log("pinned")
    return n * 7
'''

PIPELINE = '''
name: scenarios
params:
  n: 1
  city: berlin
  mode: fast
  api_token: s3cr3t-value-1
defaults:
  serializer: json
{defaults}
tasks:
  plain: {{run: "tasks:plain", args: {{n: "{{params.n}}"}}, target: out/plain.json}}
  via_from: {{run: "tasks:via_from", args: {{n: 2}}, target: out/via_from.json}}
  via_attr: {{run: "tasks:via_attr", args: {{n: 2}}, target: out/via_attr.json}}
  deep: {{run: "tasks:deep", args: {{n: 2}}, target: out/deep.json}}
  const: {{run: "tasks:const", args: {{n: 2}}, target: out/const.json}}
  derived: {{run: "tasks:derived", args: {{n: 2}}, target: out/derived.json}}
  unpacked: {{run: "tasks:unpacked", args: {{n: 2}}, target: out/unpacked.json}}
  classy: {{run: "tasks:classy", args: {{n: 2}}, target: out/classy.json}}
  decorated: {{run: "tasks:decorated", args: {{n: 2}}, target: out/decorated.json}}
  defaulted: {{run: "tasks:defaulted", args: {{n: 2}}, target: out/defaulted.json}}
  lam: {{run: "tasks:lam", args: {{n: 2}}, target: out/lam.json}}
  part: {{run: "tasks:part", args: {{n: 2}}, target: out/part.json}}
  package: {{run: "tasks:package", args: {{s: hi}}, target: out/package.json}}
  dotted: {{run: "tasks:dotted", args: {{s: HI}}, target: out/dotted.json}}
  inpkg: {{run: "pkg.core:shout", args: {{s: yo}}, target: out/inpkg.json}}
  nested: {{run: "pkg.sub.deep:loud", args: {{s: ho}}, target: out/nested.json}}
  lazy: {{run: "tasks:lazy", args: {{n: 2}}, target: out/lazy.json}}
  aliased: {{run: "tasks:aliased", args: {{n: 2}}, target: out/aliased.json}}
  clamped: {{run: "tasks:clamped", args: {{n: 2}}, target: out/clamped.json}}
  extended: {{run: "tasks:extended", args: {{n: 2}}, target: out/extended.json}}
  starred: {{run: "tasks:starred", args: {{n: 2}}, target: out/starred.json}}
  tabled: {{run: "tasks:tabled", args: {{n: 2}}, target: out/tabled.json}}
  greet: {{run: "tasks:greet", args: {{city: "{{params.city}}", n: 2}}, target: out/greet.json}}
  per_city: {{run: "tasks:plain", args: {{n: 3}}, target: "out/city-{{params.city}}.json"}}
  keyed: {{run: "tasks:keyed", args: {{api_token: "{{params.api_token}}"}}, target: out/keyed.json}}
  dated: {{run: "tasks:dated", args: {{day: "{{date:%Y-%m-%d}}"}}, target: out/dated.json}}
  daily: {{run: "tasks:plain", args: {{n: 4}}, target: "out/daily-{{today_nodash}}.json"}}
  source: {{run: "tasks:source", args: {{n: 2}}, target: out/source.json}}
  sink: {{run: "tasks:sink", needs: [source], target: out/sink.json}}
  pinned: {{run: "tasks:pinned", args: {{n: 2}}, version: "1", target: out/pinned.json}}
  shelled:
    shell: "echo {{params.mode}} one > {{output}}"
    target: out/shelled.txt
    serializer: text
'''

TASK_NAMES = re.findall(r"^  (\w+):", PIPELINE.partition("\ntasks:\n")[2], re.MULTILINE)
VALIDATED = "  cache_validator: [code, all_inputs, all_parameters]"
DAY, NEXT_DAY = "2026-03-01", "2026-03-02"


@dataclass(frozen=True)
class Scenario:
    """One edit and what it must make stale. ``stale``: task -> "kind: detail" (tasks not
    named: nothing stale); ``runs``: what a run that acts rebuilds (default: the stale
    ones); ``args``: given to every command after the edit (``-p``, ``--date``)."""

    id: str
    edits: tuple[tuple[str, str, str], ...] = ()  # (file, old, new)
    stale: dict[str, str] = field(default_factory=dict)
    runs: frozenset[str] | None = None
    args: tuple[str, ...] = ()
    missing: frozenset[str] = frozenset()  # targets the edit moves: they run in every mode
    would: frozenset[str] | None = None  # what status says a validated run would run (default: stale, missing)

    @property
    def rebuilt(self) -> set[str]:
        return set(self.runs if self.runs is not None else self.stale) | set(self.missing)


def e(file: str, old: str, new: str) -> tuple[str, str, str]:
    return (file, old, new)


SCENARIOS = [
    # -- code: what does not count ----------------------------------------------------------
    Scenario("comment-only", (e("tasks.py", "total = n + 1  # the sum", "total = n + 1  # the sum, plus one"),
                              e("helpers.py", "def double(x):\n", "# doubles\ndef double(x):  # twice\n"))),
    Scenario("docstring-only", (e("tasks.py", '"""Add one."""', '"""Add one (rewritten)."""'),
                                e("helpers.py", "def inner(x):\n", 'def inner(x):\n    """Now documented."""\n'),
                                e("helpers.py", "class Scaler:\n", 'class Scaler:\n    """Scales."""\n'))),
    Scenario("whitespace-and-formatting-only", (e("tasks.py", "total = n + 1", "total = (n +   1)\n\n"),
                                                e("helpers.py", "return x * 2", "return (\n        x * 2\n    )"),
                                                e("helpers.py", "cube = functools.partial(power, n=3)",
                                                  "cube = functools.partial(\n    power,\n    n=3,\n)"))),
    Scenario("pipelinefile-comments-and-layout", (e("Pipelinefile.yaml", "\ntasks:\n", "\n# the tasks\ntasks:\n"),
                                                  e("Pipelinefile.yaml", '    target: out/shelled.txt\n',
                                                    '    target: "out/shelled.txt"   # where it goes\n\n'))),
    Scenario("unreferenced-helper-edited", (e("helpers.py", "return x - 1", "return x - 2"),
                                            e("pkg/words.py", "def exclaim", "def unused():\n    return 0\n\n\ndef exclaim"))),
    Scenario("main-block-edited", (e("helpers.py", "EXTRA += [2]\n", "EXTRA += [2]\n\nif __name__ == '__main__':\n    print(double(2))\n"),)),
    Scenario("new-function-added", (e("helpers.py", "def with_default", "def brand_new():\n    return 1\n\n\ndef with_default"),)),
    # -- code: what counts ------------------------------------------------------------------
    Scenario("task-body", (e("tasks.py", "return n * SCALE", "return n * SCALE + 0"),), {"const": "code: tasks.py: const"}),
    Scenario("local-variable-renamed", (e("tasks.py", "total = n + 1  # the sum\n    return total",
                                          "result = n + 1  # the sum\n    return result"),),
             {"plain": "code: tasks.py: plain", "per_city": "code: tasks.py: plain", "daily": "code: tasks.py: plain"}),
    Scenario("from-import-helper", (e("helpers.py", "return x * 2", "return x * 2 + 0"),),
             {"via_from": "code: helpers.py: helper double", "via_attr": "code: helpers.py: helper double"}),
    Scenario("two-levels-deep", (e("helpers.py", "return x + 1\n", "return x + 1 - 0\n"),),
             {"deep": "code: helpers.py: helper inner"}),
    Scenario("constant-read", (e("helpers.py", "SCALE = 10", "SCALE = 11"),),
             {"const": "code: helpers.py: constant SCALE", "derived": "code: helpers.py: constant SCALE"}),
    Scenario("derived-constant", (e("helpers.py", "LIMIT = SCALE * 2", "LIMIT = SCALE * 3"),),
             {"derived": "code: helpers.py: constant LIMIT"}),
    Scenario("tuple-unpacked-constant", (e("helpers.py", "LOW, HIGH = 1, 9", "LOW, HIGH = 1, 8"),),
             {"unpacked": "code: helpers.py: constant HIGH"}),
    Scenario("constant-literal-edited", (e("helpers.py", 'TABLE = {"a": 1}', 'TABLE = {"a": 5}'),),
             {"tabled": "code: helpers.py: constant TABLE"}),
    Scenario("constant-item-assigned-later", (e("helpers.py", 'TABLE["b"] = 2', 'TABLE["b"] = 3'),),
             {"tabled": "code: helpers.py: constant TABLE"}),
    Scenario("class-method", (e("helpers.py", "return x * self.factor", "return x * self.factor + 0"),),
             {"classy": "code: helpers.py: class Scaler"}),
    Scenario("class-attribute", (e("helpers.py", "factor = 3", "factor = 4"),),
             {"classy": "code: helpers.py: class Scaler"}),
    Scenario("project-decorator", (e("helpers.py", "return fn(*args, **kwargs)", "return fn(*args, **kwargs) or 0"),),
             {"decorated": "code: helpers.py: helper tag"}),
    Scenario("task-default-value", (e("tasks.py", "def defaulted(n, k=2)", "def defaulted(n, k=3)"),),
             {"defaulted": "code: tasks.py: defaulted"}),
    Scenario("helper-default-value", (e("helpers.py", "def with_default(x, k=5)", "def with_default(x, k=6)"),),
             {"defaulted": "code: helpers.py: helper with_default"}),
    Scenario("module-level-lambda", (e("helpers.py", "lambda x: mul(x, x)", "lambda x: mul(x, x) + 0"),),
             {"lam": "code: helpers.py: constant square"}),
    Scenario("helper-of-a-lambda", (e("helpers.py", "return a * b", "return a * b * 1"),),
             {"lam": "code: helpers.py: helper mul", "lazy": "code: helpers.py: helper mul"}),
    Scenario("partial-keyword", (e("helpers.py", "functools.partial(power, n=3)", "functools.partial(power, n=4)"),),
             {"part": "code: helpers.py: constant cube"}),
    Scenario("function-behind-a-partial", (e("helpers.py", "return x ** n", "return x ** n + 0"),),
             {"part": "code: helpers.py: helper power", "aliased": "code: helpers.py: helper power"}),
    Scenario("fallback-definition-in-try", (e("helpers.py", "min(max(x, 0), 100)", "min(max(x, 0), 99)"),),
             {"clamped": "code: helpers.py: helper clamp"}),
    Scenario("augmented-constant", (e("helpers.py", "EXTRA += [2]", "EXTRA += [3]"),),
             {"extended": "code: helpers.py: constant EXTRA"}),
    Scenario("relative-from-dot-import", (e("pkg/words.py", "return s.upper()", "return s.upper().strip()"),),
             {"package": "code: pkg/words.py: helper upper", "inpkg": "code: pkg/words.py: helper upper",
              "nested": "code: pkg/words.py: helper upper"}),
    Scenario("relative-from-dot-module-import", (e("pkg/words.py", 'return s + "!"', 'return s + "!!"'),),
             {"package": "code: pkg/words.py: helper exclaim", "inpkg": "code: pkg/words.py: helper exclaim",
              "nested": "code: pkg/words.py: helper exclaim"}),
    Scenario("package-function-itself", (e("pkg/core.py", "return exclaim(words.upper(s))",
                                           "return exclaim(words.upper(s)) + ''"),),
             {"package": "code: pkg/core.py: helper shout", "inpkg": "code: pkg/core.py: shout"}),
    Scenario("import-dotted-module", (e("pkg/words.py", "return s.lower()", "return s.lower().strip()"),),
             {"dotted": "code: pkg/words.py: helper whisper"}),
    Scenario("star-import", (e("extras.py", "return x + 1", "return x + 2"),), {"starred": "code: extras.py: helper bump"}),
    Scenario("version-hides-code", (e("tasks.py", "return n * 7", "return n * 7 + 0"),)),
    Scenario("version-changed", (e("Pipelinefile.yaml", 'version: "1"', 'version: "2"'),), {"pinned": "code: version"}),
    Scenario("version-added", (e("Pipelinefile.yaml", '{run: "tasks:via_from", args', '{run: "tasks:via_from", version: "1", args'),),
             {"via_from": "code: version (added)"}),
    Scenario("version-removed", (e("Pipelinefile.yaml", 'version: "1", ', ""),), {"pinned": "code: version (removed)"}),
    Scenario("shell-command-edited", (e("Pipelinefile.yaml", "one > {output}", "one two > {output}"),),
             {"shelled": "code: command"}),
    # -- parameters ---------------------------------------------------------------------------
    Scenario("shell-param-changed", args=("-p", "mode=slow"), stale={"shelled": "parameters: mode: fast → slow"}),
    Scenario("used-param-changed", args=("-p", "city=paris"), stale={"greet": "parameters: city: berlin → paris"},
             missing=frozenset({"per_city"})),
    Scenario("param-default-edited-in-the-pipelinefile", (e("Pipelinefile.yaml", "  city: berlin", "  city: rome"),),
             {"greet": "parameters: city: berlin → rome"}, missing=frozenset({"per_city"})),
    Scenario("same-values-given", args=("-p", "mode=fast", "-p", "n=1")),
    Scenario("typed-param-changed", args=("-p", "n=5"), stale={"plain": "parameters: n: 1 → 5"}),
    Scenario("secret-param-changed", args=("-p", "api_token=s3cr3t-value-2"), stale={"keyed": "parameters: api_token: *** (…"}),
    Scenario("next-day", args=("--date", NEXT_DAY), stale={"dated": f"parameters: date: {DAY} → {NEXT_DAY}"},
             missing=frozenset({"daily"})),
    # -- inputs -------------------------------------------------------------------------------
    Scenario("upstream-same-bytes", (e("tasks.py", "return [n, n + 1]", "return [n, 1 + n]"),),
             {"source": "code: tasks.py: source"}, would=frozenset({"source", "sink"})),
    Scenario("upstream-other-bytes", (e("tasks.py", "return [n, n + 1]", "return [n, n + 2]"),),
             {"source": "code: tasks.py: source"}, runs=frozenset({"source", "sink"}),
             would=frozenset({"source", "sink"})),
]


_TEMPLATES: dict[bool, Path] = {}  # validated -> a project built once per session, copied per test


@pytest.fixture
def fresh_imports(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Each command imports the project's modules from the files as they are now."""
    monkeypatch.setattr(sys, "dont_write_bytecode", True)
    monkeypatch.setattr(sys, "path", list(sys.path))
    yield
    _forget()


def _forget() -> None:
    """Drop every module these tests imported (any project: the template's too)."""
    for name, module in list(sys.modules.items()):
        if (getattr(module, "__file__", None) or "").startswith(str(_BASE)):
            del sys.modules[name]
    importlib.invalidate_caches()


_BASE = Path("/nonexistent")


@pytest.fixture
def make(tmp_path_factory: pytest.TempPathFactory, tmp_path: Path, fresh_imports: None) -> Callable[..., Project]:
    """``make(validated=...)``: a copy of a project in which every task was run once, on DAY
    (built once per session: the copy is a move, which must leave nothing stale)."""
    global _BASE
    _BASE = tmp_path_factory.getbasetemp()

    def copy(*, validated: bool) -> Project:
        if validated not in _TEMPLATES:
            template = write_project(tmp_path_factory.mktemp("template"), validated=validated)
            assert ran(template, "--date", DAY) == set(TASK_NAMES)
            _TEMPLATES[validated] = template.root
        p = Project(tmp_path / "proj")
        shutil.copytree(_TEMPLATES[validated], p.root)
        return p

    return copy


def write_project(root: Path, *, validated: bool) -> Project:
    files = {"Pipelinefile.yaml": PIPELINE.format(defaults=VALIDATED if validated else ""),
             "helpers.py": HELPERS, "tasks.py": TASKS, "extras.py": EXTRAS,
             "pkg/__init__.py": PKG_INIT, "pkg/core.py": PKG_CORE, "pkg/words.py": PKG_WORDS,
             "pkg/sub/__init__.py": "", "pkg/sub/deep.py": PKG_SUB_DEEP}
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text.lstrip("\n"))
    return Project(root)


def cli(p: Project, *args: str) -> dict[str, object]:
    _forget()
    done = p.cli(*args, "--json")
    assert done.code in (0, 1), done.text
    assert "Traceback" not in done.text
    doc = json.loads(done.out)
    assert isinstance(doc, dict)
    return doc


def stale_of(p: Project, *args: str) -> dict[str, list[str]]:
    doc = cli(p, "status", *args)
    return {row["task"]: [f"{s['what']}: {s['detail']}" for s in row["stale"]] for row in doc["tasks"]}  # type: ignore[attr-defined]


def ran(p: Project, *args: str) -> set[str]:
    doc = cli(p, "run", *args)
    assert doc["ok"], doc
    return {t["task"] for t in doc["tasks"] if t["state"] == "succeeded"}  # type: ignore[attr-defined]


def expected_stale(scenario: Scenario, tasks: list[str]) -> dict[str, list[str]]:
    return {task: [scenario.stale[task]] if task in scenario.stale else [] for task in tasks}


def apply(p: Project, scenario: Scenario) -> None:
    for rel, old, new in scenario.edits:
        path = p.root / rel
        text = path.read_text()
        assert text.count(old) == 1, f"{old!r} is not once in {rel}"
        path.write_text(text.replace(old, new))


def check_secret_hidden(p: Project, *args: str) -> None:
    for command in (("status",), ("run", "--dry-run"), ("status", "--json"), ("run", "--dry-run", "--json")):
        done = p.cli(*command, *args)
        assert "s3cr3t" not in done.text, done.text


def matches(got: dict[str, list[str]], want: dict[str, list[str]]) -> bool:
    """``want``'s details ending in "…" are prefixes (a secret's digest is not spelt out)."""
    return got.keys() == want.keys() and all(
        len(got[t]) == len(want[t]) and all(g == w or (w.endswith("…") and g.startswith(w[:-1]))
                                            for g, w in zip(got[t], want[t])) for t in got)


def after_edit(scenario: Scenario) -> tuple[str, ...]:
    return scenario.args if "--date" in scenario.args else ("--date", DAY, *scenario.args)


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.id)
def test_without_a_validator_status_reports_run_keeps_and_rebuild_stale_rebuilds(make, scenario):
    p = make(validated=False)
    apply(p, scenario)
    args = after_edit(scenario)
    want = expected_stale(scenario, TASK_NAMES)
    status = {row["task"]: row for row in cli(p, "status", *args)["tasks"]}  # type: ignore[attr-defined]
    got = {t: [f"{s['what']}: {s['detail']}" for s in row["stale"]] for t, row in status.items()}
    assert matches(got, want), got
    assert {t for t, row in status.items() if row["action"] == "run"} == set(scenario.missing), \
        "no validator: existence decides"
    for task in scenario.stale:  # kept (the JSON's `stale` says why: checked above)
        assert status[task]["reason"] in ("target exists", "not needed"), status[task]
    dry = {t["task"]: [f"{s['what']}: {s['detail']}" for s in t["stale"]]
           for t in cli(p, "run", "--dry-run", *args)["tasks"]}  # type: ignore[attr-defined]
    assert matches({t: s for t, s in dry.items() if s}, {t: s for t, s in want.items() if s}), dry
    if scenario.id.startswith("secret"):
        check_secret_hidden(p, *args)
    assert ran(p, *args) == set(scenario.missing)  # nothing stale is rebuilt without a validator
    assert ran(p, "--rebuild-stale", *args) == scenario.rebuilt - set(scenario.missing)
    nothing: dict[str, list[str]] = {t: [] for t in TASK_NAMES}
    assert stale_of(p, *args) == nothing
    assert stale_of(p, *args) == nothing  # a second look agrees: the rebuild recorded what made it


# One scenario per way a validated run acts (which edits are seen is the table above's business)
ACTING = ("comment-only", "task-body", "two-levels-deep", "relative-from-dot-import", "version-changed",
          "shell-command-edited", "shell-param-changed", "used-param-changed", "same-values-given",
          "secret-param-changed", "next-day", "upstream-same-bytes", "upstream-other-bytes")


@pytest.mark.parametrize("scenario", [s for s in SCENARIOS if s.id in ACTING], ids=lambda s: s.id)
def test_with_code_and_input_validators_a_run_rebuilds_exactly_the_stale(make, scenario):
    p = make(validated=True)
    apply(p, scenario)
    args = after_edit(scenario)
    status = {row["task"]: row for row in cli(p, "status", *args)["tasks"]}  # type: ignore[attr-defined]
    got = {t: [f"{s['what']}: {s['detail']}" for s in row["stale"]] for t, row in status.items()}
    assert matches(got, expected_stale(scenario, TASK_NAMES)), got
    would = scenario.would if scenario.would is not None else set(scenario.stale) | set(scenario.missing)
    assert {t for t, row in status.items() if row["action"] == "run"} == would
    for task, detail in scenario.stale.items():  # the validator acts on it: "will run: code changed (...)"
        assert status[task]["reason"] == f"{detail.partition(': ')[0]} changed", status[task]
    assert ran(p, *args) == scenario.rebuilt
    assert stale_of(p, *args) == {t: [] for t in TASK_NAMES}
    assert ran(p, *args) == set()


def test_a_moved_project_with_its_state_has_nothing_stale(make, tmp_path):
    p = make(validated=True)  # a copy of the template already: moved once
    moved = Project(tmp_path / "elsewhere" / "deeper" / "second")
    shutil.copytree(p.root, moved.root)
    later = time.time() + 5000
    for path in moved.root.rglob("*"):
        os.utime(path, (later, later))  # a re-clone: new mtimes everywhere
    shutil.rmtree(p.root)  # the original is gone: nothing may point back at it
    nothing: dict[str, list[str]] = {t: [] for t in TASK_NAMES}
    assert stale_of(moved, "--date", DAY) == nothing
    assert ran(moved, "--date", DAY) == set()
    assert ran(moved, "--rebuild-stale", "--date", DAY) == set()


FORCED = '''
name: forced
tasks:
  source: {run: "tasks:source", target: out/source.json, serializer: json}
  sink: {run: "tasks:sink", needs: {values: source}, target: out/sink.json, serializer: json}
'''

FORCED_TASKS = '''
import os


def source():
    with open(os.path.join(os.path.dirname(__file__), "value.txt")) as f:  # read, not declared: not a dep
        return [int(f.read())]


def sink(values):
    return sum(values)
'''


def test_an_upstream_forced_into_the_same_bytes_leaves_its_dependent_fresh_and_into_other_bytes_not(
        tmp_path, fresh_imports):
    p = Project(tmp_path / "forced")
    p.root.mkdir()
    p.file.write_text(FORCED.lstrip("\n"))
    (p.root / "tasks.py").write_text(FORCED_TASKS.lstrip("\n"))
    (p.root / "value.txt").write_text("1")
    assert ran(p) == {"source", "sink"}
    assert ran(p, "--force", "source", "source") == {"source"}  # the same bytes again
    assert stale_of(p) == {"source": [], "sink": []}
    (p.root / "value.txt").write_text("2")
    assert stale_of(p) == {"source": [], "sink": []}  # an undeclared file is nobody's business
    assert ran(p, "--force", "source", "source") == {"source"}  # other bytes: sink is stale by its input
    assert stale_of(p) == {"source": [], "sink": ["inputs: source"]}
    assert ran(p) == set()  # no validator: existence decides
    assert ran(p, "--rebuild-stale") == {"sink"}
    assert stale_of(p) == {"source": [], "sink": []}
    assert json.loads((p.root / "out/sink.json").read_text()) == 2


MAPPED = '''
name: mapped
params:
  cities: [berlin, paris]
tasks:
  per_city:
    run: tasks:fetch
    foreach: "{params.cities}"
    args: {city: "{item}"}
    target: "raw/{item}.json"
    serializer: json
  report: {run: "tasks:report", needs: [per_city], target: out/report.json, serializer: json}
'''

MAPPED_TASKS = '''
def fetch(city):
    return city.upper()


def report(per_city):
    return list(per_city)
'''


def mapped_project(tmp_path: Path) -> Project:
    p = Project(tmp_path / "mapped")
    p.root.mkdir()
    p.file.write_text(MAPPED.lstrip("\n"))
    (p.root / "tasks.py").write_text(MAPPED_TASKS.lstrip("\n"))
    assert ran(p) == {"per_city", "per_city[0]", "per_city[1]", "report"}
    return p


def test_the_stale_children_of_a_mapped_task_are_reported_when_it_is_requested(tmp_path, fresh_imports):
    p = mapped_project(tmp_path)
    (p.root / "tasks.py").write_text(MAPPED_TASKS.lstrip("\n").replace("city.upper()", "city.upper().strip()"))
    stale = stale_of(p, "per_city")
    assert stale == {"per_city[0]": ["code: tasks.py: fetch"], "per_city[1]": ["code: tasks.py: fetch"], "per_city": []}
    assert ran(p, "--rebuild-stale") == {"per_city", "per_city[0]", "per_city[1]"}  # the same bytes: report stays
    assert stale_of(p, "per_city") == {"per_city[0]": [], "per_city[1]": [], "per_city": []}


def test_the_stale_children_of_a_mapped_upstream_nothing_requested_needs_are_reported(tmp_path, fresh_imports):
    """``report``'s target exists, so nothing needs ``per_city``: status and the dry run
    still expand it and say its children are stale -- what ``--rebuild-stale`` rebuilds."""
    p = mapped_project(tmp_path)
    (p.root / "tasks.py").write_text(MAPPED_TASKS.lstrip("\n").replace("city.upper()", "city.upper().strip()"))
    stale = {"per_city[0]": ["code: tasks.py: fetch"], "per_city[1]": ["code: tasks.py: fetch"], "per_city": [],
             "report": []}
    assert stale_of(p) == stale
    dry = cli(p, "run", "--dry-run")["tasks"]
    assert {t["task"]: (t["state"], [f"{s['what']}: {s['detail']}" for s in t["stale"]])  # type: ignore[index]
            for t in dry} == {name: ("skipped" if name == "report" else "not needed", said)  # type: ignore[union-attr]
                              for name, said in stale.items()}
    _forget()
    text = p.cli("run", "--dry-run").out
    assert "not needed (code changed — tasks.py: fetch): --rebuild-stale rebuilds it" in text, text
    assert [line.split()[:2] for line in text.splitlines() if line.startswith("stale")] == \
        [["stale", "per_city[0]"], ["stale", "per_city[1]"]]
    assert ran(p) == set()  # no validator: existence decides
    assert ran(p, "--rebuild-stale") == {"per_city", "per_city[0]", "per_city[1]"}  # the same bytes: report stays
    assert stale_of(p) == {name: [] for name in stale}


MAPPED_OVER_A_TASK = '''
name: over
tasks:
  cities: {run: "tasks:cities", target: out/cities.json, serializer: json}
  per_city:
    run: tasks:fetch
    needs: {city: cities}
    foreach: {needs: cities}
    target: "raw/{item}.json"
    serializer: json
  report: {run: "tasks:report", needs: [per_city], target: out/report.json, serializer: json}
'''


def test_a_mapped_upstream_nothing_needs_is_expanded_from_its_upstreams_value_when_it_maps_over_one(
        tmp_path, fresh_imports):
    p = Project(tmp_path / "over")
    p.root.mkdir()
    p.file.write_text(MAPPED_OVER_A_TASK.lstrip("\n"))
    (p.root / "tasks.py").write_text(MAPPED_TASKS.lstrip("\n") + "\n\ndef cities():\n    return ['berlin', 'paris']\n")
    assert ran(p) == {"cities", "per_city", "per_city[0]", "per_city[1]", "report"}
    (p.root / "tasks.py").write_text((p.root / "tasks.py").read_text().replace("city.upper()", "city.upper().strip()"))
    assert stale_of(p) == {"cities": [], "per_city[0]": ["code: tasks.py: fetch"],
                           "per_city[1]": ["code: tasks.py: fetch"], "per_city": [], "report": []}
    (p.root / "out/cities.json").unlink()  # its value is gone: nothing to map over, nothing said
    assert stale_of(p) == {"cities": [], "per_city": [], "report": []}


def test_a_consumer_of_a_mapped_task_is_stale_when_the_list_parameter_changes(tmp_path, fresh_imports):
    p = mapped_project(tmp_path)
    other = ("-p", "cities=[berlin, rome]")
    assert stale_of(p, *other) == {"per_city[0]": [], "per_city[1]": [], "per_city": [],
                                   "report": ['parameters: cities: ["berlin", "paris"] → ["berlin", "rome"]']}
    dry = cli(p, "run", "--dry-run", *other)["tasks"]
    assert [t["stale"] for t in dry if t["task"] == "report"] == [[  # type: ignore[union-attr]
        {"what": "parameters", "detail": 'cities: ["berlin", "paris"] → ["berlin", "rome"]'}]]
    assert ran(p, *other) == set()  # no validator: existence decides
    assert ran(p, "--rebuild-stale", *other) == {"per_city", "per_city[1]", "report"}
    assert stale_of(p, *other) == {"per_city[0]": [], "per_city[1]": [], "per_city": [], "report": []}
    assert json.loads((p.root / "out/report.json").read_text()) == ["BERLIN", "ROME"]
    assert stale_of(p)["report"] == ['parameters: cities: ["berlin", "rome"] → ["berlin", "paris"]', "inputs: per_city"]


def test_a_long_list_parameter_is_recorded_downstream_by_a_digest_not_item_by_item(tmp_path, fresh_imports):
    """10,000 items must not be copied into every record downstream: the text kept is
    short, and still tells one list from another (a digest of the whole)."""
    p = mapped_project(tmp_path)
    many = [f"city{i:05d}" for i in range(10_000)]
    other = [*many[:-1], "elsewhere"]
    store = RootedStore(SqliteStore(str(p.root / ".targetrun/state.db")), str(p.root), "mapped")  # as targetrun opens it
    try:
        record = store.checkpoint(str(p.root / "out/report.json"))
        assert record is not None and record.made_with == {"cities": '["berlin", "paris"]'}
        store.record_task(None, replace(record, made_with={"cities": templating.param_text("cities", many)},
                                        inputs={"per_city": "sha256:" + "0" * 64}))  # as 10,000 children made it
    finally:
        store.close()
    kept = templating.list_made_with(load_pipeline(str(p.file)).tasks["per_city"],
                                     RunContext("mapped", datetime(2026, 12, 1), {"cities": many}, "r"))[0]
    assert len(kept["cities"]) < 80 and kept["cities"] == templating.param_text("cities", many)
    assert kept != templating.list_made_with(load_pipeline(str(p.file)).tasks["per_city"],
                                             RunContext("mapped", datetime(2026, 12, 1), {"cities": other}, "r"))[0]
    detail, inputs = stale_of(p)["report"]
    assert inputs == "inputs: per_city"
    assert detail.startswith('parameters: cities: ["city00000", ') and detail.endswith(' → ["berlin", "paris"]')
    assert len(detail) < 140


def test_a_record_of_a_consumer_made_before_lists_were_recorded_is_not_stale(tmp_path, fresh_imports):
    """Records written before a consumer kept the list parameter say nothing about it
    (unknown, not changed): upgrading targetrun makes nothing stale."""
    p = mapped_project(tmp_path)
    store = RootedStore(SqliteStore(str(p.root / ".targetrun/state.db")), str(p.root), "mapped")  # as targetrun opens it
    try:
        record = store.checkpoint(str(p.root / "out/report.json"))
        assert record is not None
        store.record_task(None, replace(record, made_with={}))
    finally:
        store.close()
    assert stale_of(p, "-p", "cities=[berlin, rome]")["report"] == []
    assert stale_of(p)["report"] == []
