"""Staleness scenarios from the tenth sweep (DESIGN.md "Staleness"), with real files and
the CLI in-process: the faster walks of the code model take the same fingerprints, and
names set where the task's module does not show it (an alias of ``globals``, the
``builtins`` module, ``sys.modules["m"]``) count.
"""

from __future__ import annotations

import ast
import builtins
import sys
from collections.abc import Mapping
from pathlib import Path

import pytest

from targetrun import stalediff, staleness


SHAPES = """
async def f(a, /, b: int = 1, *c, d, **e) -> None:
    global G
    async with x as (y, *z):
        await y
    async for i in z:
        yield f"{i!r:>{b}} {i=}"
    match a:
        case [1, *rest] | {"k": _, **kw} if rest:
            pass
        case Point(x=0, y=yy) as p:
            del p
    try:
        raise ValueError
    except* ValueError as eg:
        print(eg, b"bytes", 1j, ..., None, True, -1.5)
    lambda q=1, *, r: (q, r)
    {k: v for k, v in e.items() if v}, {s for s in c}, (g for g in c), [h async for h in z]
    x[1:2:3], x[::], not a, a if b else c, a < b <= c, a @ b, (yield), (yield from c)
"""


def _sources() -> list[str]:
    """Every shape of Python 3.11 source: targetrun's own staleness model (large) and a
    module of the rest (match, async, except*, f-string specs, slices, comprehensions)."""
    return [Path(staleness.__file__).read_text(), SHAPES]


@pytest.mark.skipif(sys.version_info[:2] != (3, 11), reason="ast.dump's own text is 3.11's")
def test_the_walks_the_code_model_takes_give_what_ast_gives():
    """The code model walks each project module several times: its own child iteration and
    dump (several times faster than ``ast``'s) must give exactly what ``ast`` gives, or the
    fingerprints of unchanged code would change without the model's number (the pin in
    test_stale_sweep9 holds for one module; this holds it for every node of three large ones)."""
    for source in _sources():
        tree = ast.parse(source)
        for node in ast.walk(tree):
            children = [c for c in ast.iter_child_nodes(node) if not isinstance(c, ast.expr_context)]
            assert staleness._children(node) == children, ast.dump(node)[:200]
        for node in tree.body:
            assert staleness._dump(node) == ast.dump(node)


def test_a_module_skipped_by_its_words_is_never_one_the_walk_finds_dynamic():
    """A module whose text names none of the words the dynamic check looks for is not
    walked for them: each statement of the ast module, and each way of setting names
    unseen, as a module of its own -- every one the walk finds dynamic names one of the
    words, and a name spelled in other Unicode characters (Python reads ``ｇｌｏｂａｌｓ``
    as ``globals``) is always walked."""
    sources = [ast.unparse(node) for node in ast.parse(Path(ast.__file__).read_text()).body]
    sources += ["g = globals()\n", "exec('X = 1')\n", "import sys\nsys.modules[__name__].X = 1\n",
                "ｇｌｏｂａｌｓ()['X'] = 1\n", "ｅｘｅｃ('X = 1')\n"]
    skipped = dynamic = 0
    for source in sources:
        if staleness._dynamic(ast.parse(source)):
            dynamic += 1
            assert staleness._may_be_dynamic(source.encode()), source
        skipped += not staleness._may_be_dynamic(source.encode())
    assert dynamic >= 5 and skipped > 30, (dynamic, skipped)


# -- names set where the task's module does not show it ---------------------------------

from tests.conftest import Project  # noqa: E402
from tests.test_stale_sweep8 import _fresh_import, rows  # noqa: E402

ONE = "name: code\ntasks:\n  make: {run: tasks:make, target: out/make.txt, serializer: text}\n"
HELPERS = ("h10", "setup10", "hc10")
GET = "LIMIT = '0'\n\ndef get():\n    return LIMIT\n"

# files, the file whose '1' becomes '2' (what `make` returns follows), what status names
HIDDEN = {
    # an alias of globals/vars/exec: the module's names are set where no statement shows which
    "an alias of globals() at module level": (
        {"tasks.py": "g = globals\ng()['LIMIT'] = '1'\n\ndef make():\n    return LIMIT\n"}, "tasks.py",
        "tasks.py: the whole module"),
    "an alias of exec at module level": (
        {"tasks.py": "run = exec\nrun(\"LIMIT = '1'\")\n\ndef make():\n    return LIMIT\n"}, "tasks.py",
        "tasks.py: the whole module"),
    "globals reached through the builtins module": (
        {"tasks.py": "import builtins\nbuiltins.globals()['LIMIT'] = '1'\n\ndef make():\n    return LIMIT\n"},
        "tasks.py", "tasks.py: the whole module"),
    # a builtin set by one module, read as a bare name by the task's
    "builtins.X = in a module the task's imports": (
        {"tasks.py": "import setup10\n\ndef make():\n    return LIMIT\n", "setup10.py": "import builtins\nbuiltins.LIMIT = '1'\n"},
        "setup10.py", "setup10.py: sets builtins.LIMIT"),
    "b.X = after import builtins as b": (
        {"tasks.py": "import setup10\n\ndef make():\n    return LIMIT\n", "setup10.py": "import builtins as b\nb.LIMIT = '1'\n"},
        "setup10.py", "setup10.py: sets b.LIMIT"),
    "setattr(builtins, 'X', ...)": (
        {"tasks.py": "import setup10\n\ndef make():\n    return LIMIT\n",
         "setup10.py": "import builtins\nsetattr(builtins, 'LIMIT', '1')\n"}, "setup10.py", "setup10.py: sets builtins.LIMIT"),
    "__builtins__['X'] = in an imported module": (
        {"tasks.py": "import setup10\n\ndef make():\n    return LIMIT\n", "setup10.py": "__builtins__['LIMIT'] = '1'\n"},
        "setup10.py", "setup10.py: sets __builtins__.LIMIT"),
    "builtins.X = read in a helper module": (
        {"tasks.py": "import setup10, h10\n\ndef make():\n    return h10.get()\n", "setup10.py": "import builtins\nbuiltins.LIMIT = '1'\n",
         "h10.py": "def get():\n    return LIMIT\n"}, "setup10.py", "setup10.py: sets builtins.LIMIT"),
    # another module's name set through sys.modules
    "sys.modules['m'].X = of another project module": (
        {"tasks.py": "import sys, h10\nsys.modules['h10'].LIMIT = '1'\n\ndef make():\n    return h10.get()\n", "h10.py": GET},
        "tasks.py", "tasks.py: sets h10.LIMIT"),
    "setattr(sys.modules['m'], 'X', ...)": (
        {"tasks.py": "import sys, h10\nsetattr(sys.modules['h10'], 'LIMIT', '1')\n\ndef make():\n    return h10.get()\n",
         "h10.py": GET}, "tasks.py", "tasks.py: sets h10.LIMIT"),
    "sys.modules.get('m').X =": (
        {"tasks.py": "import sys, h10\nsys.modules.get('h10').LIMIT = '1'\n\ndef make():\n    return h10.get()\n", "h10.py": GET},
        "tasks.py", "tasks.py: sets h10.LIMIT"),
    "importlib.import_module('m').X =": (
        {"tasks.py": "import importlib\nimportlib.import_module('h10').LIMIT = '1'\n\ndef make():\n    import h10\n"
                     "    return h10.get()\n", "h10.py": GET}, "tasks.py", "tasks.py: sets h10.LIMIT"),
    # a module given another name at module level, then set through it
    "m = module; m.X =": (
        {"tasks.py": "import h10\nm = h10\nm.LIMIT = '1'\n\ndef make():\n    return h10.get()\n", "h10.py": GET},
        "tasks.py", "tasks.py: sets h10.LIMIT"),
    "m = sys.modules['m']; setattr(m, 'X', ...)": (
        {"tasks.py": "import sys, h10\nm = sys.modules['h10']\nsetattr(m, 'LIMIT', '1')\n\ndef make():\n    return h10.get()\n",
         "h10.py": GET}, "tasks.py", "tasks.py: sets h10.LIMIT"),
    "b = __builtins__; b['X'] =": (
        {"tasks.py": "import setup10\n\ndef make():\n    return LIMIT\n", "setup10.py": "b = __builtins__\nb['LIMIT'] = '1'\n"},
        "setup10.py", "setup10.py: sets __builtins__.LIMIT"),
    "from builtins import globals as g": (
        {"tasks.py": "from builtins import globals as g\ng()['LIMIT'] = '1'\n\ndef make():\n    return LIMIT\n"},
        "tasks.py", "tasks.py: the whole module"),
    # setattr with a literal name in a function called at import is an assignment there too
    "setattr(module, 'X', ...) in a function called at import": (
        {"tasks.py": "import h10\n\ndef init():\n    setattr(h10, 'LIMIT', '1')\n\ninit()\n\ndef make():\n    return h10.get()\n",
         "h10.py": GET}, "tasks.py", "tasks.py: helper init"),
    # a module used as a value counts whole: the names it imports are its too
    "a name a module used as a value imports (M = h10; M.V)": (
        {"tasks.py": "import h10\nM = h10\n\ndef make():\n    return M.V\n", "h10.py": "from hc10 import V\n", "hc10.py": "V = '1'\n"},
        "hc10.py", "hc10.py: constant V"),
    "a name a module a task imports by a literal name brings by a star import": (
        {"tasks.py": "import importlib\n\ndef make():\n    return importlib.import_module('h10').V\n",
         "h10.py": "from hc10 import *\n", "hc10.py": "V = '1'\n"}, "hc10.py", "hc10.py: constant V"),
    # a class's method called at import may set state anywhere, as a function does
    "a staticmethod of the task module's class called at import sets another module's name": (
        {"tasks.py": "import h10\n\nclass S:\n    @staticmethod\n    def go():\n        h10.LIMIT = '1'\n\nS.go()\n\n"
                     "def make():\n    return h10.get()\n", "h10.py": GET}, "tasks.py", "tasks.py: class S"),
    "a classmethod of an imported class called at import": (
        {"tasks.py": "import h10\nfrom hc10 import S\nS.go()\n\ndef make():\n    return h10.get()\n", "h10.py": GET,
         "hc10.py": "import h10\n\nclass S:\n    @classmethod\n    def go(cls):\n        h10.LIMIT = '1'\n"},
        "hc10.py", "hc10.py: class S"),
    # imports that bind a name where the reference does not show which
    "a name a class body imports, read as the class's attribute": (
        {"tasks.py": "class C:\n    from h10 import LIMIT\n\ndef make():\n    return C.LIMIT\n", "h10.py": "LIMIT = '1'\n"},
        "h10.py", "h10.py: constant LIMIT"),
    "the fallback of a try/except ImportError inside the task's function": (
        {"tasks.py": "def make():\n    try:\n        from nonexistent10 import LIMIT\n    except ImportError:\n"
                     "        from h10 import LIMIT\n    return LIMIT\n", "h10.py": "LIMIT = '1'\n"}, "h10.py", "h10.py: constant LIMIT"),
    "the fallback module alias of a try/except ImportError inside the task's function": (
        {"tasks.py": "def make():\n    try:\n        import nonexistent10 as impl\n    except ImportError:\n"
                     "        import h10 as impl\n    return impl.LIMIT\n", "h10.py": "LIMIT = '1'\n"}, "h10.py", "h10.py: constant LIMIT"),
    # setattr and vars by another name
    "s = setattr; s(module, 'X', ...) in a module the task imports": (
        {"tasks.py": "import setup10, h10\n\ndef make():\n    return h10.get()\n",
         "setup10.py": "import h10\ns = setattr\ns(h10, 'LIMIT', '1')\n", "h10.py": GET}, "setup10.py", "setup10.py: sets h10.LIMIT"),
    "from builtins import vars as v; v(module)[k] =": (
        {"tasks.py": "import setup10, h10\n\ndef make():\n    return h10.get()\n",
         "setup10.py": "import h10\nfrom builtins import vars as v\nv(h10)['LIMIT'] = '1'\n", "h10.py": GET},
        "setup10.py", "setup10.py: sets h10.(module)"),
    "vars(sys.modules['m'])['X'] =": (
        {"tasks.py": "import sys, h10\nvars(sys.modules['h10'])['LIMIT'] = '1'\n\ndef make():\n    return h10.get()\n",
         "h10.py": GET}, "tasks.py", "tasks.py: sets h10.(module)"),
}


@pytest.mark.parametrize("case", list(HIDDEN))
def test_an_edit_that_changes_what_the_task_returns_makes_it_stale_wherever_the_name_is_set(project, case):
    """Each edit (``'1'`` -> ``'2'``) changes what ``make`` returns: the code it was made
    from differs, naming what changed -- for a few, through the CLI: ``status`` says it is
    stale and ``run --rebuild-stale`` makes the new value (the others take the same path
    from the fingerprint on; each was checked against a real import, before and after)."""
    files, edited, says = HIDDEN[case]
    p: Project = project(ONE)
    for name, text in files.items():
        p.write(name, text)
    path = p.root / edited
    if case not in REBUILT:
        before = _code(p.root)
        path.write_text(path.read_text().replace("'1'", "'2'"))
        stale = stalediff.code_stale(before, _code(p.root))
        assert stale is not None and stale.detail == says, stale
        return
    try:
        _fresh_import(*HELPERS)
        assert p.cli("run").code == 0 and p.read("out/make.txt") == "1"
        path.write_text(path.read_text().replace("'1'", "'2'"))
        row = rows(p.cli("status", "--json").out)["make"]
        assert row["stale"] == [{"what": "code", "detail": says}], row
        _fresh_import(*HELPERS)
        assert p.cli("run", "--rebuild-stale").code == 0 and p.read("out/make.txt") == "2"
        assert rows(p.cli("status", "--json").out)["make"]["stale"] == []
    finally:
        vars(builtins).pop("LIMIT", None)  # what the task's modules set in this process


def _code(root: Path) -> Mapping[str, str] | None:
    """The code fingerprint of ``tasks:make`` now, as a record keeps it."""
    code = staleness.CodeIndex(str(root)).of_callable("tasks:make")
    return stalediff.modelled(code, stalediff.CODE_MODEL) if code is not None else None


REBUILT = ("builtins.X = in a module the task's imports", "sys.modules['m'].X = of another project module",
           "a classmethod of an imported class called at import")


# files, (file, old, new): an edit that changes nothing `make` returns
UNRELATED = {
    "a builtin the task does not read": (
        {"tasks.py": "import setup10\n\ndef make():\n    return str(len('x'))\n",
         "setup10.py": "import builtins\nbuiltins.OTHER = 'a'\n"}, ("setup10.py", "'a'", "'b'")),
    "a name set through sys.modules that the module's code does not read": (
        {"tasks.py": "import sys, h10\nsys.modules['h10'].OTHER = 'a'\n\ndef make():\n    return str(len(h10.get()))\n",
         "h10.py": GET}, ("tasks.py", "'a'", "'b'")),
}


@pytest.mark.parametrize("case", list(UNRELATED))
def test_a_name_set_elsewhere_counts_only_where_it_is_read(project, case):
    files, (edited, old, new) = UNRELATED[case]
    p: Project = project(ONE)
    for name, text in files.items():
        p.write(name, text)
    _fresh_import(*HELPERS)
    assert p.cli("run").code == 0 and p.read("out/make.txt") == "1"
    path = p.root / edited
    path.write_text(path.read_text().replace(old, new))
    assert rows(p.cli("status", "--json").out)["make"]["stale"] == []


@pytest.mark.parametrize("make", [
    "import os\n\ndef make():\n    ns = {}\n    exec(open(os.path.join(os.path.dirname(__file__), 'x10.py')).read(), ns)\n"
    "    return ns['K']\n",
    "import os, runpy\n\ndef make():\n    return runpy.run_path(os.path.join(os.path.dirname(__file__), 'x10.py'))['K']\n",
])
def test_code_run_from_a_file_or_a_computed_value_says_it_cannot_tell(project, make):
    """``exec(open("x10.py").read())``, ``runpy.run_path("x10.py")``: the code that runs is
    no project module's, and an edit of it changed what ``make`` returns while ``status``
    called it fresh. It is never called fresh now: ``unknown``, said, no validator acts on it
    (as for a module imported by a computed name) -- list the file in ``deps:`` to track it."""
    p: Project = project(ONE, tasks=make)
    p.write("x10.py", "K = '1'\n")
    assert p.cli("run").code == 0 and p.read("out/make.txt") == "1"
    p.write("x10.py", "K = '2'\n")
    row = rows(p.cli("status", "--json").out)["make"]
    assert (row["stale"], row["unknown"]) == ([], [{"what": "code", "detail": "tasks.py: make runs code computed when it "
                                                    "runs (exec, eval, runpy): cannot tell if code changed"}]), row


def test_code_a_function_builds_from_its_own_text_and_arguments_is_followed():
    """``eval`` of what a function builds from its own text and its arguments (namedtuple's
    way, ``eval(formula)`` of a parameter) runs nothing the fingerprint does not see: no
    "cannot tell"; ``eval`` of text the same function reads from a file is one."""
    def refs(source: str) -> frozenset[str]:
        return staleness._references(ast.parse(source).body[0], "")[0]

    assert staleness.COMPUTED not in refs("def f(formula, x):\n    return eval(formula, {'x': x})\n")
    assert staleness.COMPUTED not in refs("def f(n):\n    code = f'lambda: {n}'\n    return eval(code)\n")
    assert staleness.COMPUTED in refs("def f(p):\n    text = open(p).read()\n    return eval(text)\n")
