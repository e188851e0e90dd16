"""Staleness scenarios from the eighth sweep (DESIGN.md "Staleness"), with real files and
the CLI in-process: the project finder looks only in the project's own folders, a module
alias bound in a ``try``/``if`` counts by each module it may be, and ``status`` says in
advance what ``run`` then does.
"""

from __future__ import annotations

import importlib
import importlib.machinery
import json
import os
import sys
from pathlib import Path

import pytest

from targetrun import callables
from tests.conftest import Project


def rows(out: str) -> dict[str, dict[str, object]]:
    return {row["task"]: row for row in json.loads(out)["tasks"]}


def _fresh_import(*names: str) -> None:
    """Each command imports the project's modules anew, as each ``targetrun`` process does."""
    for name in [n for n in sys.modules if n.split(".")[0] in ("tasks", *names)]:
        del sys.modules[name]


ONE = "name: code\ntasks:\n  make: {run: tasks:make, target: out/make.txt, serializer: text}\n"


# -- the project finder ------------------------------------------------------------------

class _Recorder:
    """A path entry's finder that notes each name it is asked for (and finds none)."""

    def __init__(self) -> None:
        self.asked: list[str] = []

    def find_spec(self, fullname: str, target: object = None) -> None:
        self.asked.append(fullname)

    def invalidate_caches(self) -> None:
        pass


def test_a_library_import_after_a_task_loaded_is_not_looked_up_by_the_project_finder(project, tmp_path, monkeypatch):
    """Once a task has loaded, targetrun's finder comes first on ``sys.meta_path``: a
    library import (any import outside the project) must cost it nothing -- no look in the
    folders outside the project -- while the project's modules, those on a folder it puts
    on ``sys.path`` and a package's submodules included, are still its own (compiled from
    source)."""
    p: Project = project(ONE, tasks="import sys, os\nsys.path.insert(0, os.path.join(os.path.dirname(__file__), 'lib'))\n"
                                    "import helper8a\nimport pkg8a.sub\n\ndef make():\n    return helper8a.X + pkg8a.sub.Y\n")
    p.write("lib/helper8a.py", "X = 'h'\n")
    p.write("pkg8a/__init__.py", "")
    p.write("pkg8a/sub.py", "Y = 's'\n")
    outside = str(tmp_path / "elsewhere")
    monkeypatch.setattr(sys, "path", [*sys.path, outside])
    monkeypatch.setitem(sys.path_importer_cache, outside, _Recorder())
    _fresh_import("helper8a", "pkg8a")
    assert p.cli("run").code == 0 and p.read("out/make.txt") == "hs"
    assert callables._FINDER in sys.meta_path
    recorder = sys.path_importer_cache[outside]
    for name in ("no_such_library_8", "email.mime.nonexistent", "yaml"):
        assert callables._FINDER.find_spec(name, None if "." not in name else [outside]) is None
    assert recorder.asked == []  # type: ignore[attr-defined]
    for name in ("helper8a", "pkg8a", "pkg8a.sub"):
        assert type(sys.modules[name].__spec__.loader) is callables._SourceOnly, name
    sys.modules.pop("helper8a")
    spec = callables._FINDER.find_spec("helper8a")
    assert spec is not None and type(spec.loader) is callables._SourceOnly


def test_a_project_module_on_its_own_path_entry_runs_from_source_not_an_older_bytecode_file(project):
    """The restriction keeps what the finder is for: a module in a folder the project puts on
    ``sys.path``, edited in the same second to the same size, runs as edited."""
    import py_compile

    p: Project = project(ONE, tasks="import sys, os\nsys.path.insert(0, os.path.join(os.path.dirname(__file__), 'lib'))\n"
                                    "from helper8b import value\n\ndef make():\n    return value()\n")
    helper = p.write("lib/helper8b.py", "def value():\n    return 'old'\n")
    py_compile.compile(str(helper), doraise=True)
    then = helper.stat().st_mtime_ns
    helper.write_text("def value():\n    return 'new'\n")
    os.utime(helper, ns=(then, then))
    _fresh_import("helper8b")
    assert p.cli("run").code == 0
    assert p.read("out/make.txt") == "new"


def test_a_project_module_a_folder_earlier_on_the_path_shadows_is_left_to_python(project, tmp_path, monkeypatch):
    """Python takes the first folder on ``sys.path`` that holds a name: when one outside the
    project comes before the project's, the finder does not claim the project's file."""
    p: Project = project(ONE, tasks="def make():\n    return 'x'\n")
    p.write("shadowed8.py", "WHO = 'project'\n")
    _fresh_import()
    assert p.cli("run").code == 0
    earlier = tmp_path / "earlier"
    earlier.mkdir()
    (earlier / "shadowed8.py").write_text("WHO = 'earlier'\n")
    monkeypatch.setattr(sys, "path", [str(earlier), *sys.path])
    importlib.invalidate_caches()
    assert callables._FINDER.find_spec("shadowed8") is None
    monkeypatch.delitem(sys.modules, "shadowed8", raising=False)
    assert importlib.import_module("shadowed8").WHO == "earlier"
    sys.modules.pop("shadowed8", None)


# -- a module bound by an import in each branch of a try/if -----------------------------

ALIASED = {
    "import fast as impl / import slow as impl": (
        "try:\n    import fast as impl\nexcept ImportError:\n    import slow as impl\n\n"
        "def make():\n    return impl.compute()\n", {}),
    "from pkg import fast as impl / from pkg import slow as impl": (
        "try:\n    from pkg import fast as impl\nexcept ImportError:\n    from pkg import slow as impl\n\n"
        "def make():\n    return impl.compute()\n", {"pkg/__init__.py": ""}),
    "import inside an if with an else": (
        "import os\nif os.environ.get('NO_SUCH_VAR_8'):\n    import slow as impl\nelse:\n    import fast as impl\n\n"
        "def make():\n    return impl.compute()\n", {}),
}


@pytest.mark.parametrize("case", list(ALIASED))
@pytest.mark.parametrize("edited", ["fast", "slow"])
def test_a_module_alias_bound_in_each_branch_counts_by_every_module_it_may_be(project, case, edited):
    """``try: import fast as impl`` / ``except ImportError: import slow as impl``: either
    module may be the one that runs (here ``fast``), so an edit of either makes the task
    stale, naming the function -- as a helper name bound so already does."""
    tasks, extra = ALIASED[case]
    folder = "pkg/" if extra else ""
    p: Project = project(ONE, tasks=tasks)
    for name, text in extra.items():
        p.write(name, text)
    p.write(f"{folder}fast.py", "def compute():\n    return 'f1'\n")
    p.write(f"{folder}slow.py", "def compute():\n    return 's1'\n")
    _fresh_import("fast", "slow", "pkg")
    assert p.cli("run").code == 0 and p.read("out/make.txt") == "f1"
    path = p.root / f"{folder}{edited}.py"
    path.write_text(path.read_text().replace("1'", "2'"))
    row = rows(p.cli("status", "--json").out)["make"]
    assert row["stale"] == [{"what": "code", "detail": f"{folder}{edited}.py: helper compute"}], row
    _fresh_import("fast", "slow", "pkg")
    assert p.cli("run", "--rebuild-stale").code == 0
    assert p.read("out/make.txt") == ("f2" if edited == "fast" else "f1")
    assert rows(p.cli("status", "--json").out)["make"]["stale"] == []


# -- what is not fingerprinted ----------------------------------------------------------

def test_an_environment_variable_a_function_reads_is_not_fingerprinted_and_status_says_what_run_does(project,
                                                                                                       monkeypatch):
    """As README says (and Make, Snakemake, DVC do): a variable a task function reads from
    the environment is no part of its record, so another value leaves it fresh -- ``status``
    says nothing is stale and ``run`` keeps it, with every validator on. Passed as a
    parameter into ``args:``, the same value counts, in both."""
    pipeline = """
name: env
params: {region: eu}
defaults: {cache_validator: [code, all_inputs, all_parameters, deps]}
tasks:
  env: {run: tasks:from_env, target: out/env.txt, serializer: text}
  param: {run: tasks:from_arg, args: {region: "{params.region}"}, target: out/param.txt, serializer: text}
"""
    p: Project = project(pipeline, tasks="import os\n\ndef from_env():\n    return os.environ['TR8_REGION']\n\n"
                                          "def from_arg(region):\n    return region\n")
    monkeypatch.setenv("TR8_REGION", "eu")
    _fresh_import()
    assert p.cli("run").code == 0
    monkeypatch.setenv("TR8_REGION", "us")
    found = rows(p.cli("status", "--json", "-p", "region=us").out)
    assert {t: (r["stale"], r["action"]) for t, r in found.items()} == {
        "env": ([], "skip"), "param": ([{"what": "parameters", "detail": "region: eu → us"}], "run")}, found
    ran = rows(p.cli("run", "--json", "-p", "region=us").out)
    assert ran["env"]["state"] != "succeeded" and ran["param"]["state"] == "succeeded", ran
    assert (p.read("out/env.txt"), p.read("out/param.txt")) == ("eu", "us")
    readme = (Path(__file__).parent.parent / "README.md").read_text()
    assert "Environment variables a command or function reads are not\n  fingerprinted" in readme


# -- names bound or filled at module level other than by `=`, and modules imported by name -

BOUND = {
    # `importlib.import_module("h5")` with a literal: the module counts whole (what of it is used is not told)
    "a module imported by importlib.import_module with a literal name": (
        {"tasks.py": "import importlib\n\ndef make():\n    return importlib.import_module('h5').v()\n"},
        "h5.py", "h5.py: helper v"),
    "a module __import__ brings, kept in a module constant": (
        {"tasks.py": "M = __import__('h5')\n\ndef make():\n    return M.v()\n"}, "h5.py", "h5.py: helper v"),
    "a relative import_module in a package, into a local variable": (
        {"tasks.py": "from pkg.a import make\n", "pkg/__init__.py": "",
         "pkg/a.py": "from importlib import import_module\n\ndef make():\n    b = import_module('.h5', __package__)\n"
                     "    return b.v()\n"}, "pkg/h5.py", "pkg/h5.py: helper v"),
    "a constant bound by a module-level for": (
        {"tasks.py": "for X in ['1']:\n    pass\n\ndef make():\n    return X\n"}, "tasks.py", "tasks.py: constant X"),
    "a constant bound by a module-level with ... as": (
        {"tasks.py": "import contextlib\n\nwith contextlib.nullcontext('1') as X:\n    pass\n\ndef make():\n    return X\n"},
        "tasks.py", "tasks.py: constant X"),
    "a constant bound by := in a module-level if": (
        {"tasks.py": "if (X := '1'):\n    pass\n\ndef make():\n    return X\n"}, "tasks.py", "tasks.py: constant X"),
    "a constant a module-level call of a helper fills": (
        {"tasks.py": "X = {}\n\ndef setup(d):\n    d['k'] = '1'\n\nsetup(X)\n\ndef make():\n    return X['k']\n"},
        "tasks.py", "tasks.py: helper setup"),
    "a constant a module-level call of a helper fills through global": (
        {"tasks.py": "X = ['0']\n\ndef setup():\n    X[0] = '1'\n\nsetup()\n\ndef make():\n    return X[0]\n"},
        "tasks.py", "tasks.py: helper setup"),
    "a constant bound in a module-level match": (
        {"tasks.py": "match ['1']:\n    case [X]:\n        pass\n\ndef make():\n    return X\n"},
        "tasks.py", "tasks.py: constant X"),
    "a constant only a function sets, through global, called at import": (
        {"tasks.py": "def init():\n    global X\n    X = '1'\n\ninit()\n\ndef make():\n    return X\n"},
        "tasks.py", "tasks.py: helper init"),
    "a helper got by getattr with a literal name": (
        {"tasks.py": "import h5\n\ndef make():\n    return getattr(h5, 'v')()\n"}, "h5.py", "h5.py: helper v"),
    # `config.LIMIT = 5` at module level: the other module's code reads the value set here
    "a name of another project module set at module level": (
        {"tasks.py": "import h11\nh11.V = '1'\n\ndef make():\n    return h11.get()\n",
         "h11.py": "V = '0'\n\ndef get():\n    return V\n"}, "tasks.py", "tasks.py: sets h11.V"),
    "a name set by a module the task's module only imports": (
        {"tasks.py": "import conf, setup8\n\ndef make():\n    return conf.get()\n",
         "setup8.py": "import conf\nconf.V += '1'\n", "conf.py": "V = ''\n\ndef get():\n    return V\n"},
        "setup8.py", "setup8.py: sets conf.V"),
}


@pytest.mark.parametrize("case", list(BOUND))
def test_an_edit_that_changes_what_the_task_returns_makes_it_stale_however_the_value_reaches_it(project, case):
    """Each edit (``'1'`` -> ``'2'``) changes what ``make`` returns: ``status`` says it is
    stale, naming what changed, and ``run --rebuild-stale`` makes the new value."""
    files, edited, says = BOUND[case]
    p: Project = project(ONE)
    for name, text in files.items():
        p.write(name, text)
    if edited.endswith("h5.py"):
        p.write(edited, "def v():\n    return '1'\n\ndef unused():\n    return 0\n")
    _fresh_import("h5", "h11", "conf", "setup8", "pkg")
    assert p.cli("run").code == 0 and p.read("out/make.txt") == "1"
    path = p.root / edited
    path.write_text(path.read_text().replace("'1'", "'2'"))
    row = rows(p.cli("status", "--json").out)["make"]
    assert row["stale"] == [{"what": "code", "detail": says}], row
    _fresh_import("h5", "h11", "conf", "setup8", "pkg")
    assert p.cli("run", "--rebuild-stale").code == 0 and p.read("out/make.txt") == "2"
    assert rows(p.cli("status", "--json").out)["make"]["stale"] == []
