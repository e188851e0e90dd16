"""Staleness scenarios from the seventh sweep (DESIGN.md "Staleness"), through the CLI
in-process with real files: what the code fingerprint reaches when a helper is rebound at
module level or a name is bound only in some inner scope, and whether ``status`` says in
advance exactly what ``run`` then does.
"""

from __future__ import annotations

import json
import os
import random
import re
import sys
import time

import pytest

from tests.conftest import Project


def rows(out: str) -> dict[str, dict[str, object]]:
    return {row["task"]: row for row in json.loads(out)["tasks"]}


ONE = "name: code\ntasks:\n  make: {run: tasks:make, target: out/make.txt, serializer: text}\n"

# (module source, the edit that changes what `make` returns, what status names)
REACHED = {
    # `helper = lru_cache(helper)` rebinds the name: the def it wraps is still what runs
    "a helper rebound to a wrapper of itself": ('''
import functools

def helper(x):
    return x + "1"

helper = functools.lru_cache(helper)

def make():
    return helper("a")
''', ('"1"', '"2"'), "tasks.py: helper helper"),
    # `global STATE` then `STATE = ...`: the function assigns the module's name, and reads it
    "a module name the task declares global": ('''
STATE = "1"

def make():
    global STATE
    STATE = STATE + "x"
    return STATE
''', ('"1"', '"2"'), "tasks.py: constant STATE"),
    # `lambda RATE: RATE` binds RATE in the lambda only: the list reads the module's RATE
    "a module name an inner scope binds for itself": ('''
RATE = "1"

def make():
    rates = [RATE for _ in range(1)]
    scale = lambda RATE: RATE * 2
    return scale(rates[0])
''', ('"1"', '"2"'), "tasks.py: constant RATE"),
    # a comprehension's variable is its own: `normalize` after it is the module's helper
    "a helper a comprehension's variable shadows before it is called": ('''
def normalize(x):
    return x.strip() + "1"

def make():
    names = [normalize for normalize in ("a ",)]
    return normalize(names[0])
''', ('"1"', '"2"'), "tasks.py: helper normalize"),
    # `try: from fast import f` / `except ImportError: from slow import f`: either may run
    "a helper imported in a try with a fallback import": ({"tasks.py": '''
try:
    from fast import helper
except ImportError:
    from slow import helper

def make():
    return helper()
''', "fast.py": "def helper():\n    return '1'\n", "slow.py": "def helper():\n    return 's'\n"},
        ("fast.py", "'1'", "'2'"), "fast.py: helper helper"),
    # an import, and a def of the same name where it fails
    "a helper imported in a try with a fallback def": ({"tasks.py": '''
try:
    from fast import helper
except ImportError:
    def helper():
        return "s"

def make():
    return helper()
''', "fast.py": "def helper():\n    return '1'\n"}, ("fast.py", "'1'", "'2'"), "fast.py: helper helper"),
}


@pytest.mark.parametrize("case", list(REACHED))
def test_an_edit_of_code_the_task_runs_makes_it_stale_however_the_name_is_bound(project, case):
    """Each edit changes what the task returns, so its target is stale, naming what changed
    -- and a run with ``--rebuild-stale`` makes the new value."""
    source, change, says = REACHED[case]
    files = source if isinstance(source, dict) else {"tasks.py": source}
    edited, old, new = change if len(change) == 3 else ("tasks.py", *change)
    p: Project = project(ONE)
    for name, text in files.items():
        p.write(name, text)
    _fresh_import()
    assert p.cli("run").code == 0
    path = p.root / edited
    path.write_text(path.read_text().replace(old, new))
    row = rows(p.cli("status", "--json").out)["make"]
    assert row["stale"] == [{"what": "code", "detail": says}], row
    _fresh_import()
    ran = rows(p.cli("run", "--rebuild-stale", "--json").out)["make"]
    assert ran["state"] == "succeeded" and ran["stale"] == row["stale"], ran
    assert rows(p.cli("status", "--json").out)["make"]["stale"] == []


# -- what status says will run is what run then runs ------------------------------------

CHAIN = """
name: chain
params: {{n: 1}}
{defaults}
tasks:
  a: {{run: tasks:a, deps: [data/in.txt], target: out/a.txt, serializer: text}}
  b: {{run: tasks:b, needs: [a], args: {{n: "{{params.n}}"}}, target: out/b.txt, serializer: text}}
  c: {{run: tasks:c, needs: [b], target: out/c.txt, serializer: text}}
"""

CHAIN_TASKS = '''
import os

A_MARK = "x"


def _log(name):
    with open(os.path.join(os.path.dirname(__file__), "calls.log"), "a") as f:
        f.write(name + "\\n")


def a():
    _log("a")
    with open(os.path.join(os.path.dirname(__file__), "data", "in.txt")) as f:
        return f.read() + A_MARK


def b(a, n):
    _log("b")
    return f"{len(a)}:{n}"


def c(b):
    _log("c")
    return b + "!"
'''


def _change(p: Project, rng: random.Random, params: list[str]) -> str:
    """One random change of a kind a target can be stale by (or not): what it was."""
    tasks, data = p.root / "tasks.py", p.root / "data" / "in.txt"
    kind = rng.choice(["code a", "comment", "code c", "touch dep", "same-size dep", "dep", "param", "delete",
                       "nothing"])
    if kind == "code a":  # a new mark of the same length is cut off at b; another length reaches c
        mark = rng.choice(["x", "y", "yy"])
        tasks.write_text(re.sub(r'A_MARK = "\w*"', f'A_MARK = "{mark}"', tasks.read_text()))
    elif kind == "comment":
        tasks.write_text(tasks.read_text().replace('    _log("b")\n', '    _log("b")  # noted\n', 1))
    elif kind == "code c":  # code that changes, a value that does not
        tasks.write_text(tasks.read_text().replace('    _log("c")\n', '    _log("c")\n    unused = 1\n', 1))
    elif kind == "touch dep":
        os.utime(data, (time.time() + 5, time.time() + 5))
    elif kind in ("same-size dep", "dep"):
        text = data.read_text()
        data.write_text(rng.choice("pq") * len(text) if kind == "same-size dep" else text + "z")
    elif kind == "param":
        params[:] = ["-p", f"n={rng.choice([1, 2])}"]
    elif kind == "delete":
        (p.root / "out" / f"{rng.choice('abc')}.txt").unlink(missing_ok=True)
    return kind


def _fresh_import() -> None:
    """Each command imports tasks.py anew, as each ``targetrun`` process does."""
    sys.modules.pop("tasks", None)


@pytest.mark.parametrize("defaults", ["", "defaults: {cache_validator: [code, deps, all_inputs, all_parameters]}",
                                      "defaults: {cache_validator: [code, all_inputs, all_parameters], cache_for: 1h}"],
                         ids=["existence", "validators", "cache"])
def test_status_and_dry_run_say_what_run_then_runs_and_why_after_random_changes(project, defaults):
    """After each random change (code that changes the value or not, a comment, a dep
    touched or rewritten in the same size, a parameter, a deleted target), with or without
    ``--rebuild-stale``: ``status`` says what ``run --dry-run`` says; ``run`` runs every task
    the dry run said will run, for the reason it said -- except one that waits on an upstream
    ("kept if it comes out the same"), which may be kept -- and no other; the task bodies
    that ran are those; and afterwards ``status --check`` finds nothing to run."""
    p: Project = project(CHAIN.format(defaults=defaults), tasks=CHAIN_TASKS)
    p.write("data/in.txt", "abc")
    rng = random.Random(7 + len(defaults))
    params: list[str] = []
    _fresh_import()
    assert p.cli("run").code == 0
    for step in range(12):
        changes = [_change(p, rng, params) for _ in range(rng.choice([1, 2]))]
        stale_flag = ["--rebuild-stale"] if rng.random() < 0.4 else []
        (p.root / "calls.log").unlink(missing_ok=True)
        _fresh_import()
        predicted = {t["task"]: t for t in json.loads(p.cli("run", "--dry-run", "--json", *stale_flag, *params).out)["tasks"]
                     if t["state"] == "would run"}
        if not stale_flag:
            status = json.loads(p.cli("status", "--json", *params).out)
            assert set(status["would_run"]) == set(predicted), (changes, status["would_run"], predicted)
            assert {t["task"]: t["reason"] for t in status["tasks"] if t["action"] == "run"} == \
                {t: row["reason"] for t, row in predicted.items()}, changes
        _fresh_import()
        result = p.cli("run", "--json", *stale_flag, *params)
        assert result.code == 0, (changes, result.err)
        ran = {t["task"]: t for t in json.loads(result.out)["tasks"] if t["state"] == "succeeded"}
        context = (step, changes, stale_flag, {t: r["decision"] for t, r in predicted.items()}, list(ran))
        assert set(ran) <= set(predicted), context
        for task, said in predicted.items():
            if "kept if it comes out the same" in said["decision"] and task not in ran:
                continue
            assert task in ran and ran[task]["reason"] == said["reason"], context
        assert set(p.counts()) == set(ran), context
        _fresh_import()
        assert p.cli("status", "--check", *params).code == 0, context


def test_an_input_validator_rebuilds_for_an_argument_a_parameter_changed_in_status_as_in_run(project):
    """``b`` takes ``n: "{params.n}"`` and validates ``all_inputs``: with ``-p n=2`` its
    argument is another input, so the run remakes it (as Prefect's ``all_inputs`` and a
    ``cache_for`` entry do) -- and ``status`` and ``run --dry-run`` now say so, for that
    reason, instead of keeping it because the change reads as a parameter's."""
    p: Project = project(CHAIN.format(defaults="defaults: {cache_validator: [all_inputs]}"), tasks=CHAIN_TASKS)
    p.write("data/in.txt", "abc")
    _fresh_import()
    assert p.cli("run").code == 0
    status = rows(p.cli("status", "--json", "-p", "n=2").out)
    assert (status["b"]["action"], status["b"]["reason"]) == ("run", "inputs changed"), status["b"]
    assert status["b"]["stale"] == [{"what": "parameters", "detail": "n: 1 → 2"}]
    dry = rows(p.cli("run", "--dry-run", "--json", "-p", "n=2").out)
    assert dry["b"]["decision"] == "will run: inputs changed (argument n)", dry["b"]
    _fresh_import()
    ran = rows(p.cli("run", "--json", "-p", "n=2").out)
    assert ran["b"]["state"] == "succeeded" and ran["b"]["decision"] == dry["b"]["decision"], ran["b"]
    assert p.read("out/b.txt") == "4:2"


def test_a_cache_entry_waiting_on_a_recomputed_input_says_it_may_be_kept_as_a_target_does(project):
    """With ``cache_for`` and ``all_inputs``, ``c`` cannot be judged before ``b`` is made
    again: ``status`` says it runs because ``b`` is recomputed -- and, as for a target a
    validator judges, that it is kept if ``b`` comes out the same, which the run then does."""
    p: Project = project(CHAIN.format(defaults="defaults: {cache_validator: [all_inputs], cache_for: 1h}"),
                         tasks=CHAIN_TASKS)
    p.write("data/in.txt", "abc")
    _fresh_import()
    assert p.cli("run").code == 0
    (p.root / "out" / "b.txt").unlink()
    said = rows(p.cli("status", "--json").out)["c"]["state"]
    assert said == "will run: inputs changed (input 'b' is recomputed in this run: kept if it comes out the same)", said
    _fresh_import()
    done = {t: r["state"] for t, r in rows(p.cli("run", "--json").out).items()}
    assert done == {"a": "skipped", "b": "succeeded", "c": "skipped"}, done


def test_a_dep_file_swapped_for_a_link_to_the_same_bytes_is_no_change_and_a_hidden_file_is_new(project):
    """Deps compare by content: a file replaced by a symlink to a copy of it (another inode,
    another mtime) is hashed again and found the same; a hidden file that appears in a
    folder dep is a new dep, as git would track it; and one removed is gone."""
    p: Project = project("name: d\ntasks:\n  a: {shell: 'cat data/f.txt > {output}', deps: [data/], target: out/a.txt}\n")
    p.write("data/f.txt", "same\n")
    assert p.cli("run").code == 0
    p.write("elsewhere/f.txt", "same\n")
    (p.root / "data" / "f.txt").unlink()
    (p.root / "data" / "f.txt").symlink_to(p.root / "elsewhere" / "f.txt")
    assert rows(p.cli("status", "--json").out)["a"]["stale"] == []
    p.write("data/.hidden", "x")
    assert rows(p.cli("status", "--json").out)["a"]["stale"] == [{"what": "deps", "detail": "new dep data/.hidden"}]
    (p.root / "data" / ".hidden").unlink()
    (p.root / "data" / "f.txt").unlink()
    assert rows(p.cli("status", "--json").out)["a"]["stale"] == [{"what": "deps", "detail": "dep data/f.txt is gone"}]


def test_a_process_that_ran_a_task_before_runs_its_code_as_edited_since(project):
    """One process that runs the pipeline twice -- a long-lived Dask worker, or the API
    called again -- with tasks.py and a helper module edited in between: the second run
    records the new code's fingerprint, so it must run the new code, not the modules it
    imported the first time (the record would vouch for bytes other code made)."""
    p: Project = project("name: again\ntasks:\n  make: {run: tasks:make, target: out/make.txt, serializer: text}\n",
                         tasks="from helpers import suffix\n\ndef make():\n    return 'a' + suffix()\n",
                         helpers="def suffix():\n    return '1'\n")
    _fresh_import()
    assert p.cli("run").code == 0 and p.read("out/make.txt") == "a1"
    p.write("helpers.py", "def suffix():\n    return '22'\n")
    assert p.cli("run", "--rebuild-stale").code == 0
    assert p.read("out/make.txt") == "a22"
    p.write("tasks.py", "from helpers import suffix\n\ndef make():\n    return 'bb' + suffix()\n")
    assert p.cli("run", "--rebuild-stale").code == 0
    assert p.read("out/make.txt") == "bb22"
    assert rows(p.cli("status", "--json").out)["make"]["stale"] == []


def test_the_code_that_runs_is_the_source_fingerprinted_never_an_older_bytecode_file(project):
    """Python trusts ``__pycache__/tasks.*.pyc`` while the source's size and mtime (in whole
    seconds) match its header: an edit in the same second that keeps the size -- a script
    that edits and runs, a checkout -- would run the old code under a record of the new.
    The project's own modules are compiled from their source."""
    import py_compile

    p: Project = project("name: pyc\ntasks:\n  make: {run: tasks:make, target: out/make.txt, serializer: text}\n",
                         tasks="def make():\n    return 'old'\n")
    tasks = p.root / "tasks.py"
    py_compile.compile(str(tasks), doraise=True)  # what an earlier import wrote
    then = tasks.stat().st_mtime_ns
    tasks.write_text("def make():\n    return 'new'\n")  # the same size, in the same second
    os.utime(tasks, ns=(then, then))
    _fresh_import()
    assert p.cli("run").code == 0
    assert p.read("out/make.txt") == "new"
