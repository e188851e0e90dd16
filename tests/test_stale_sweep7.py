"""Staleness scenarios from the seventh sweep (DESIGN.md "Staleness"), through the CLI
in-process with real files: what the code fingerprint reaches when a helper is rebound at
module level or a name is bound only in some inner scope, and whether ``status`` says in
advance exactly what ``run`` then does.
"""

from __future__ import annotations

import json

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
}


@pytest.mark.parametrize("case", list(REACHED))
def test_an_edit_of_code_the_task_runs_makes_it_stale_however_the_name_is_bound(project, case):
    """Each edit changes what the task returns, so its target is stale, naming what changed
    -- and a run with ``--rebuild-stale`` makes the new value."""
    source, (old, new), says = REACHED[case]
    p: Project = project(ONE, tasks=source)
    assert p.cli("run").code == 0
    tasks = p.root / "tasks.py"
    tasks.write_text(tasks.read_text().replace(old, new))
    row = rows(p.cli("status", "--json").out)["make"]
    assert row["stale"] == [{"what": "code", "detail": says}], row
    ran = rows(p.cli("run", "--rebuild-stale", "--json").out)["make"]
    assert ran["state"] == "succeeded" and ran["stale"] == row["stale"], ran
    assert rows(p.cli("status", "--json").out)["make"]["stale"] == []
