"""Staleness scenarios from the ninth sweep (DESIGN.md "Staleness"), with real files and
the CLI in-process: names a module's statements do not show (a module ``__getattr__``,
``exec``, ``globals()``), what a call at import -- a decorator, a ``configure(...)`` of
another module, a class statement -- sets where the task reads it, names bound twice,
modules used as values or imported by a computed name, code deeper than Python's
recursion limit, and the fingerprint model's number.
"""

from __future__ import annotations

import json

import pytest

from tests.conftest import Project
from tests.test_stale_sweep8 import _fresh_import, rows


ONE = "name: code\ntasks:\n  make: {run: tasks:make, target: out/make.txt, serializer: text}\n"
HELPERS = ("h9", "reg9", "plugins9", "pkg9", "nsp9", "steps9")

REGISTRY = "REGISTRY = {}\n\ndef register(name):\n    def deco(f):\n        REGISTRY[name] = f\n        return f\n    return deco\n"
CONFIGURED = "_L = None\n\ndef configure(n):\n    global _L\n    _L = n\n\ndef get():\n    return _L\n"
STORED = "_S = {}\n\ndef configure(n):\n    _S['n'] = n\n\ndef get():\n    return _S['n']\n"

# files, the file whose '1' becomes '2' (what `make` returns follows), what status names
HIDDEN = {
    # PEP 562: a module-level __getattr__ supplies names no statement of the module binds
    "a name a module __getattr__ supplies, as h9.LIMIT": (
        {"tasks.py": "import h9\n\ndef make():\n    return h9.LIMIT\n",
         "h9.py": "def __getattr__(name):\n    if name == 'LIMIT':\n        return '1'\n    raise AttributeError(name)\n"},
        "h9.py", "h9.py: helper __getattr__"),
    "a name a module __getattr__ supplies from a table, imported by from": (
        {"tasks.py": "from h9 import LIMIT\n\ndef make():\n    return LIMIT\n",
         "h9.py": "_T = {'LIMIT': '1'}\n\ndef __getattr__(name):\n    if name in _T:\n        return _T[name]\n    raise AttributeError(name)\n"},
        "h9.py", "h9.py: constant _T"),
    # names set where no statement shows which: the module counts whole
    "a name exec defines at module level": (
        {"tasks.py": "exec(\"LIMIT = '1'\")\n\ndef make():\n    return LIMIT\n"}, "tasks.py", "tasks.py: the whole module"),
    "a name exec defines in a helper module": (
        {"tasks.py": "import h9\n\ndef make():\n    return h9.LIMIT\n", "h9.py": "exec(\"LIMIT = '1'\")\n"},
        "h9.py", "h9.py: the whole module"),
    "a function exec defines, from a module constant": (
        {"tasks.py": "CODE = \"def f():\\n    return '1'\"\nexec(CODE)\n\ndef make():\n    return f()\n"},
        "tasks.py", "tasks.py: constant CODE"),
    "globals().update at module level": (
        {"tasks.py": "globals().update({'LIMIT': '1'})\n\ndef make():\n    return LIMIT\n"},
        "tasks.py", "tasks.py: the whole module"),
    "globals()[name] = in a loop": (
        {"tasks.py": "for k, v in [('LIMIT', '1')]:\n    globals()[k] = v\n\ndef make():\n    return LIMIT\n"},
        "tasks.py", "tasks.py: constant k, constant v"),
    "globals()[name] = over a constant assigned before": (
        {"tasks.py": "LIMIT = '0'\nglobals()['LIMIT'] = '1'\n\ndef make():\n    return LIMIT\n"},
        "tasks.py", "tasks.py: the whole module"),
    "vars()[name] = at module level": (
        {"tasks.py": "vars()['LIMIT'] = '1'\n\ndef make():\n    return LIMIT\n"}, "tasks.py", "tasks.py: the whole module"),
    "setattr on sys.modules[__name__]": (
        {"tasks.py": "import sys\nsetattr(sys.modules[__name__], 'LIMIT', '1')\n\ndef make():\n    return LIMIT\n"},
        "tasks.py", "tasks.py: the whole module"),
    "a helper the task picks from globals() by a computed name": (
        {"tasks.py": "def pick_a():\n    return '1'\n\ndef make():\n    return globals()['pick_' + 'a']()\n"},
        "tasks.py", "tasks.py: helper pick_a"),
    # setattr with a literal name is an assignment
    "setattr(module, 'V', ...) of another project module": (
        {"tasks.py": "import h9\nsetattr(h9, 'V', '1')\n\ndef make():\n    return h9.get()\n",
         "h9.py": "V = '0'\n\ndef get():\n    return V\n"}, "tasks.py", "tasks.py: sets h9.V"),
    # a call at import that sets state another module's function reads
    "a constant given to another module's configure() at import": (
        {"tasks.py": "import h9\nLIMIT = '1'\nh9.configure(LIMIT)\n\ndef make():\n    return h9.get()\n",
         "h9.py": CONFIGURED}, "tasks.py", "tasks.py: constant LIMIT"),
    "a literal given to a configure() imported by from": (
        {"tasks.py": "from h9 import configure, get\nconfigure('1')\n\ndef make():\n    return get()\n", "h9.py": CONFIGURED},
        "tasks.py", "tasks.py: calls configure()"),
    "a keyword given to configure() that fills a table": (
        {"tasks.py": "import h9\nh9.configure(n='1')\n\ndef make():\n    return h9.get()\n", "h9.py": STORED},
        "tasks.py", "tasks.py: calls h9.configure()"),
    "the body of the configure() called at import": (
        {"tasks.py": "import h9\nh9.configure('')\n\ndef make():\n    return h9.get()\n",
         "h9.py": STORED.replace("= n\n", "= n + '1'\n")}, "h9.py", "h9.py: helper configure"),
    "a class of another module instantiated at import, whose __init__ sets a class attribute": (
        {"tasks.py": "import h9\nh9.Cfg('1')\n\ndef make():\n    return h9.get()\n",
         "h9.py": "class Cfg:\n    cur = None\n\n    def __init__(self, v):\n        Cfg.cur = v\n\ndef get():\n    return Cfg.cur\n"},
        "tasks.py", "tasks.py: calls h9.Cfg()"),
    "a constant another module's function fills at import, given it (h9.fill(TABLE, ...))": (
        {"tasks.py": "import h9\nTABLE = {}\nh9.fill(TABLE, '1')\n\ndef make():\n    return TABLE['k']\n",
         "h9.py": "def fill(t, v):\n    t['k'] = v\n"}, "tasks.py", "tasks.py: constant TABLE"),
    # a registry filled at import: by a decorator, or by a call given the function
    "a function a decorator registers in the task's module": (
        {"tasks.py": REGISTRY + "\n@register('x')\ndef fx():\n    return '1'\n\ndef make():\n    return REGISTRY['x']()\n"},
        "tasks.py", "tasks.py: helper fx"),
    "a function a decorator of another module registers in a module imported beside": (
        {"tasks.py": "import reg9, plugins9\n\ndef make():\n    return reg9.REGISTRY['x']()\n", "reg9.py": REGISTRY,
         "plugins9.py": "from reg9 import register\n\n@register('x')\ndef fx():\n    return '1'\n"},
        "plugins9.py", "plugins9.py: helper fx"),
    "a function a decorator registers in a submodule imported as pkg9.plug": (
        {"tasks.py": "import pkg9.reg, pkg9.plug\n\ndef make():\n    return pkg9.reg.REGISTRY['x']()\n", "pkg9/__init__.py": "",
         "pkg9/reg.py": REGISTRY, "pkg9/plug.py": "from pkg9.reg import register\n\n@register('x')\ndef fx():\n    return '1'\n"},
        "pkg9/plug.py", "pkg9/plug.py: helper fx"),
    "a function a decorator registers in a module the task imports where it runs": (
        {"tasks.py": "import reg9\n\ndef make():\n    import plugins9\n    return reg9.REGISTRY['x']()\n", "reg9.py": REGISTRY,
         "plugins9.py": "from reg9 import register\n\n@register('x')\ndef fx():\n    return '1'\n"},
        "plugins9.py", "plugins9.py: helper fx"),
    "a function given to another module's add() at import": (
        {"tasks.py": "import reg9\n\ndef fx():\n    return '1'\n\nreg9.add('x', fx)\n\ndef make():\n    return reg9.REGISTRY['x']()\n",
         "reg9.py": "REGISTRY = {}\n\ndef add(name, f):\n    REGISTRY[name] = f\n"}, "tasks.py", "tasks.py: helper fx"),
    # a class statement calls its base's __init_subclass__, or its metaclass
    "a subclass its base's __init_subclass__ registers": (
        {"tasks.py": "import reg9, plugins9\n\ndef make():\n    return reg9.REG['A'].v\n",
         "reg9.py": "REG = {}\n\nclass Base:\n    def __init_subclass__(cls, **kw):\n        REG[cls.__name__] = cls\n",
         "plugins9.py": "from reg9 import Base\n\nclass A(Base):\n    v = '1'\n"}, "plugins9.py", "plugins9.py: class A"),
    "a class its metaclass registers": (
        {"tasks.py": "from reg9 import Meta, REG\n\nclass A(metaclass=Meta):\n    v = '1'\n\ndef make():\n    return REG['A'].v\n",
         "reg9.py": "REG = {}\n\nclass Meta(type):\n    def __init__(cls, *args):\n        REG[cls.__name__] = cls\n"},
        "tasks.py", "tasks.py: class A"),
    "a function a registry object's method decorates": (
        {"tasks.py": "from reg9 import R0\n\n@R0.add\ndef fx():\n    return '1'\n\ndef make():\n    return R0.d['fx']()\n",
         "reg9.py": "class R:\n    def __init__(self):\n        self.d = {}\n\n    def add(self, f):\n        self.d[f.__name__] = f\n"
                    "        return f\n\nR0 = R()\n"}, "tasks.py", "tasks.py: helper fx"),
    "a class attribute of another module's class set at module level": (
        {"tasks.py": "from h9 import C\nC.k = '1'\n\ndef make():\n    return C.get()\n",
         "h9.py": "class C:\n    k = '0'\n\n    @classmethod\n    def get(cls):\n        return cls.k\n"}, "tasks.py", "tasks.py: sets C.k"),
    # another module's names set where no statement shows which
    "vars(module)[name] = of another project module": (
        {"tasks.py": "import h9\nvars(h9)['V'] = '1'\n\ndef make():\n    return h9.get()\n", "h9.py": "def get():\n    return V\n"},
        "tasks.py", "tasks.py: sets h9.(module)"),
    "module.__dict__.update(...) of another project module": (
        {"tasks.py": "import h9\nh9.__dict__.update(V='1')\n\ndef make():\n    return h9.get()\n", "h9.py": "def get():\n    return V\n"},
        "tasks.py", "tasks.py: sets h9.(module)"),
    "setattr(module, name, ...) with a computed name": (
        {"tasks.py": "import h9\nNAME = 'V'\nsetattr(h9, NAME, '1')\n\ndef make():\n    return h9.get()\n",
         "h9.py": "V = '0'\n\ndef get():\n    return V\n"}, "tasks.py", "tasks.py: constant NAME, sets h9.(module)"),
    "a name __all__ lists and __getattr__ supplies, by a star import": (
        {"tasks.py": "from h9 import *\n\ndef make():\n    return LIMIT\n",
         "h9.py": "__all__ = ['LIMIT']\n\ndef __getattr__(name):\n    if name == 'LIMIT':\n        return '1'\n    raise AttributeError(name)\n"},
        "h9.py", "h9.py: helper __getattr__"),
    # a name bound again at module level: what ran in between saw the binding before
    "the first of two implementations functools.singledispatch registers, both named _": (
        {"tasks.py": "import functools\n\n@functools.singledispatch\ndef fmt(x):\n    return 'o'\n\n@fmt.register(int)\n"
                     "def _(x):\n    return '1'\n\n@fmt.register(str)\ndef _(x):\n    return 's'\n\ndef make():\n    return fmt(5)\n"},
        "tasks.py", "tasks.py: helper _"),
    "a function bound to another name before it is defined again": (
        {"tasks.py": "def f():\n    return '1'\n\ng = f\n\ndef f():\n    return '3'\n\ndef make():\n    return g()\n"},
        "tasks.py", "tasks.py: helper f"),
    "a constant read at import before it is assigned again": (
        {"tasks.py": "K = '1'\nT = K * 2\nK = '5'\n\ndef make():\n    return T[0]\n"}, "tasks.py", "tasks.py: constant K"),
    # a module used as a value: what of it is read is not told, so all of it counts
    "a module given a module-level alias (M = pkg9.mod)": (
        {"tasks.py": "import pkg9.mod\nM = pkg9.mod\n\ndef make():\n    return M.K\n", "pkg9/__init__.py": "",
         "pkg9/mod.py": "K = '1'\n"}, "pkg9/mod.py", "pkg9/mod.py: constant K"),
    "a module name read by getattr with a computed name": (
        {"tasks.py": "import h9\nWHICH = 'A'\n\ndef make():\n    return getattr(h9, WHICH)\n", "h9.py": "A = '1'\nB = '5'\n"},
        "h9.py", "h9.py: constant A"),
    "a module name read through vars(module)": (
        {"tasks.py": "import h9\n\ndef make():\n    return vars(h9)['A']\n", "h9.py": "A = '1'\n"}, "h9.py", "h9.py: constant A"),
    "a module name read through module.__dict__": (
        {"tasks.py": "import h9\n\ndef make():\n    return h9.__dict__['A']\n", "h9.py": "A = '1'\n"}, "h9.py", "h9.py: constant A"),
    # import_module(f"steps9.{NAME}"): a module of that package, each counts whole
    "a module imported by a computed name under a literal package": (
        {"tasks.py": "import importlib\nNAME = 'a'\n\ndef make():\n    return importlib.import_module(f'steps9.{NAME}').K\n",
         "steps9/__init__.py": "", "steps9/a.py": "K = '1'\n", "steps9/deeper/b.py": "K = '0'\n"},
        "steps9/a.py", "steps9/a.py: constant K"),
    "a module sys.modules gives by a literal name": (
        {"tasks.py": "import sys, h9\n\ndef make():\n    return sys.modules['h9'].A\n", "h9.py": "A = '1'\n"},
        "h9.py", "h9.py: constant A"),
    # a namespace package (a folder without __init__.py) is a package too
    "a module of a namespace package, by import nsp9.mod": (
        {"tasks.py": "import nsp9.mod\n\ndef make():\n    return nsp9.mod.K\n", "nsp9/mod.py": "K = '1'\n"},
        "nsp9/mod.py", "nsp9/mod.py: constant K"),
    # := inside a module-level comprehension binds by what the comprehension goes over
    "a constant := binds in a module-level comprehension": (
        {"tasks.py": "[(K := i) for i in ['1']]\n\ndef make():\n    return K\n"}, "tasks.py", "tasks.py: constant K"),
}


@pytest.mark.parametrize("case", list(HIDDEN))
def test_an_edit_that_changes_what_the_task_returns_makes_it_stale_however_the_name_is_set(project, case):
    """Each edit (``'1'`` -> ``'2'``) changes what ``make`` returns: ``status`` says it is
    stale, naming what changed, and ``run --rebuild-stale`` makes the new value."""
    files, edited, says = HIDDEN[case]
    p: Project = project(ONE)
    for name, text in files.items():
        p.write(name, text)
    _fresh_import(*HELPERS)
    assert p.cli("run").code == 0 and p.read("out/make.txt") == "1"
    path = p.root / edited
    path.write_text(path.read_text().replace("'1'", "'2'"))
    row = rows(p.cli("status", "--json").out)["make"]
    assert row["stale"] == [{"what": "code", "detail": says}], row
    _fresh_import(*HELPERS)
    assert p.cli("run", "--rebuild-stale").code == 0 and p.read("out/make.txt") == "2"
    assert rows(p.cli("status", "--json").out)["make"]["stale"] == []


MEMO = ("_CACHE = {}\n\ndef cached(f):\n    def w(*a):\n        if (f, a) not in _CACHE:\n            _CACHE[f, a] = f(*a)\n"
        "        return _CACHE[f, a]\n    return w\n")
# files, (old, new) in tasks.py: an edit that changes nothing `make` returns
UNRELATED = {
    "another function a memo decorator of another module wraps": (
        {"tasks.py": "from h9 import cached\n\n@cached\ndef other():\n    return 'a'\n\n@cached\ndef make():\n    return '1'\n",
         "h9.py": MEMO}, ("return 'a'", "return 'b'")),
    "what a call at import logs, where only the logger reads it": (
        {"tasks.py": "from h9 import log\nlog('a')\n\ndef make():\n    log('b')\n    return '1'\n",
         "h9.py": "_LINES = []\n\ndef log(m):\n    _LINES.append(m)\n"}, ("log('a')", "log('c')")),
    "another subclass of a base that has no __init_subclass__": (
        {"tasks.py": "from h9 import Base, DEFAULT\n\nclass A(Base):\n    def v(self):\n        return DEFAULT\n\n"
                     "class B(Base):\n    w = 'a'\n\ndef make():\n    return A().v()\n",
         "h9.py": "DEFAULT = '1'\n\nclass Base:\n    def run(self):\n        return DEFAULT\n"}, ("w = 'a'", "w = 'b'")),
    "another function a __main__ guard picks from globals()": (
        {"tasks.py": "def other():\n    return 'a'\n\ndef make():\n    return '1'\n\nif __name__ == '__main__':\n"
                     "    globals()['other']()\n"}, ("return 'a'", "return 'b'")),
    "a call under a __main__ guard": (
        {"tasks.py": "import h9\n\ndef make():\n    return h9.get()\n\nif __name__ == '__main__':\n    h9.configure('a')\n",
         "h9.py": CONFIGURED.replace("_L = None", "_L = '1'")}, ("configure('a')", "configure('b')")),
}


@pytest.mark.parametrize("case", list(UNRELATED))
def test_a_call_at_import_counts_only_where_state_it_sets_is_read(project, case):
    """A call at import counts for a task that reads, from outside the function called,
    what that function may set -- not for one whose only link to it is the function itself
    (a memo decorator, a logger): an edit there leaves the task fresh."""
    files, (old, new) = UNRELATED[case]
    p: Project = project(ONE)
    for name, text in files.items():
        p.write(name, text)
    _fresh_import(*HELPERS)
    assert p.cli("run").code == 0 and p.read("out/make.txt") == "1"
    tasks = p.root / "tasks.py"
    tasks.write_text(tasks.read_text().replace(old, new))
    assert rows(p.cli("status", "--json").out)["make"]["stale"] == []


def test_a_module_imported_by_a_name_computed_at_run_time_says_it_cannot_tell(project):
    """``importlib.import_module(name)`` with a name only the run knows: which module's code
    the task runs cannot be told. ``status`` never claims it fresh: it says so, under
    ``unknown`` (no validator acts on it), while the rest of the code is still compared."""
    p: Project = project(ONE, tasks="import importlib\n\ndef make(name='h9'):\n    return importlib.import_module(name).A\n",
                         h9="A = '1'\n")
    _fresh_import(*HELPERS)
    assert p.cli("run").code == 0
    cannot = [{"what": "code", "detail": "tasks.py: make imports a module by a name computed when it runs: cannot tell if "
                                         "code changed"}]
    (p.root / "h9.py").write_text("A = '2'\n")
    row = rows(p.cli("status", "--json").out)["make"]
    assert (row["stale"], row["unknown"]) == ([], cannot), row
    assert "cannot tell if code changed" in p.cli("status").out
    (p.root / "tasks.py").write_text((p.root / "tasks.py").read_text().replace(".A", ".A * 2"))
    row = rows(p.cli("status", "--json").out)["make"]
    assert row["stale"] == [{"what": "code", "detail": "tasks.py: make"}], row


# -- the fingerprint model --------------------------------------------------------------

PINNED_TASKS = '''
import helpers

TABLE = {}
for name in ("a", "b"):
    TABLE[name] = len(name)


def fill(table):
    table["c"] = 3


fill(TABLE)
helpers.configure(TABLE)


def make():
    return helpers.get() + helpers.LIMIT
'''
PINNED_HELPERS = '''
_T = None


def configure(table):
    global _T
    _T = table


def get():
    return sum(_T.values())


def __getattr__(name):
    if name == "LIMIT":
        return 1
    raise AttributeError(name)
'''


def test_the_fingerprints_of_unchanged_code_are_pinned_to_the_model_that_takes_them(tmp_path):
    """Records of one model compare with the code now only while the rules that take them
    are those of that model: a change of the rules that changes these digests (of code
    nobody edited) must bump ``stalediff.CODE_MODEL`` -- then records of the older model
    say "cannot tell", never a misleading "code changed" -- and update this pin. Model 1
    reached four of these objects: a loop-filled, call-filled constant given to another
    module at import, and a ``__getattr__`` name, were each a false "fresh"."""
    from targetrun import stalediff
    from targetrun.staleness import CodeIndex

    (tmp_path / "tasks.py").write_text(PINNED_TASKS)
    (tmp_path / "helpers.py").write_text(PINNED_HELPERS)
    assert (stalediff.CODE_MODEL, CodeIndex(str(tmp_path)).of_callable("tasks:make")) == ("3", {
        "helpers.py:_T": "const:8f2cda988d9ca730",
        "helpers.py:__getattr__": "def:7f4cead0c5ec6dc8",
        "helpers.py:configure": "def:bd9d68248bfaaaed",
        "helpers.py:get": "def:5bd21d0905d5a458",
        "tasks.py:TABLE": "const:ef27bad236ef408f",
        "tasks.py:fill": "def:2422c5baed27633d",
        "tasks.py:helpers.configure()": "calls:4f8ccb4d66303947",
        "tasks.py:make": "task:666a8cc54e97f5e1",
        "tasks.py:name": "const:61e86ecde35f7dfe",
    })


MIXED = """
name: mixed
defaults: {cache_validator: [code]}
tasks:
  make: {run: tasks:make, target: out/make.txt, serializer: text}
  echo: {shell: "echo hi > {output}", target: out/echo.txt}
  dumps: {run: json:dumps, args: {obj: 1}, target: out/dumps.txt, serializer: text}
"""


def test_a_record_of_model_1_reads_cannot_tell_for_project_code_and_compares_for_a_command(project):
    """After an upgrade to model 2, a Python task's record written by model 1 (no model key,
    digests taken by the older rules) says once, plainly, that it cannot tell -- not "code
    changed" with a list of helpers nobody touched -- and neither a ``code`` validator nor
    ``--rebuild-stale`` rebuilds it. A shell command and a library's callable are
    fingerprinted as model 1 did: their records still compare (nothing unknown)."""
    import sqlite3

    p: Project = project(MIXED, tasks="import h9\n\ndef make():\n    return h9.LIMIT\n",
                         h9="def __getattr__(name):\n    return 'v'\n")
    _fresh_import(*HELPERS)
    assert p.cli("run").code == 0
    with sqlite3.connect(p.root / ".targetrun" / "state.db") as db:  # as model 1 wrote it: h9 unseen, no key
        for location, record in db.execute("SELECT location, record FROM checkpoints").fetchall():
            doc = json.loads(record)
            assert ("@model" in doc["code"]) == location.endswith("make.txt"), doc["code"]
            if "@model" in doc["code"]:
                doc["code"] = {k: v for k, v in doc["code"].items() if k.startswith("tasks.py:")}
            db.execute("UPDATE checkpoints SET record = ? WHERE location = ?", (json.dumps(doc), location))
    found = rows(p.cli("status", "--json").out)
    assert {t: (r["stale"], r["unknown"]) for t, r in found.items()} == {
        "make": ([], [{"what": "code", "detail": "recorded by an older fingerprint model: cannot tell if code changed"}]),
        "echo": ([], []), "dumps": ([], [])}, found
    ran = rows(p.cli("run", "--rebuild-stale", "--json").out)
    assert all(r["state"] != "succeeded" for r in ran.values()), ran


# -- code that is deep, not wrong -------------------------------------------------------

def test_a_module_with_an_expression_deeper_than_the_recursion_limit_is_fingerprinted_not_a_crash(project):
    """A generated constant of 1,500 terms (``X = 1 + 1 + ...``) imports and runs: taking its
    fingerprint walked the tree by recursion and ended in an internal error. It counts as
    any constant; one Python cannot compile at all (5,000 terms) is said as code that does
    not parse, and the run fails importing it with exit 2 -- never a traceback."""
    p: Project = project(ONE, tasks="X = " + " + ".join(["1"] * 1500) + "\n\ndef make():\n    return str(X)\n")
    _fresh_import()
    assert p.cli("run").code == 0 and p.read("out/make.txt") == "1500"
    tasks = p.root / "tasks.py"
    tasks.write_text(tasks.read_text().replace("1 + 1\n", "1 + 2\n"))
    assert rows(p.cli("status", "--json").out)["make"]["stale"] == [{"what": "code", "detail": "tasks.py: constant X"}]
    tasks.write_text("X = " + " + ".join(["1"] * 5000) + "\n\ndef make():\n    return str(X)\n")
    status = p.cli("status", "--json")
    assert status.code == 0 and rows(status.out)["make"]["stale"] == [
        {"what": "code", "detail": "tasks.py:1 does not parse"}], status
    _fresh_import()
    ran = p.cli("run", "--rebuild-stale")
    assert ran.code == 2 and "RecursionError" in ran.err and "Traceback" not in ran.err, ran
