"""Code staleness at its edges (DESIGN.md "Staleness"): code that does not parse, tasks
that are library or standard-library callables, src-layout packages, and cache hits.

``status`` runs in-process; a ``run`` that must import edited task code runs in a fresh
``python -m targetrun`` (an in-process run would reuse the modules imported earlier).
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import platform
import sqlite3
import subprocess
import sys

import pytest

from targetrun.model import Reason

TASKS = '''
import os
from helpers import norm


def _log(name):
    with open(os.path.join(os.path.dirname(__file__), "calls.log"), "a") as f:
        f.write(name + "\\n")


def fetch():
    _log("fetch")
    return norm([3, 1, 2])
'''

HELPERS = '''
def norm(values):
    return sorted(values)
'''

PIPELINE = '''
name: demo
tasks:
  fetch:
    run: tasks:fetch
    target: out/fetch.json
'''


def rows(project, *args: str) -> dict[str, dict[str, object]]:
    done = project.cli("status", "--json", *args)
    assert done.code in (0, 1), done.text
    return {row["task"]: row for row in json.loads(done.out)["tasks"]}


def run_fresh(project, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """``targetrun run`` in a new process: task modules are imported from the files as they are."""
    return subprocess.run([sys.executable, "-m", "targetrun", "run", "-f", str(project.file), *args],
                          cwd=project.root, env=dict(os.environ, NO_COLOR="1", **(env or {})),
                          capture_output=True, text=True, timeout=120)


def records(project) -> dict[str, dict[str, object]]:
    db = sqlite3.connect(project.root / ".targetrun/state.db")
    try:
        return {task: json.loads(text) for task, text in db.execute("SELECT task, record FROM checkpoints")}
    finally:
        db.close()


def rewrite_code(project, task: str, code: dict[str, str]) -> None:
    """As if the task's record had been written by other code (another Python, an older library)."""
    db = sqlite3.connect(project.root / ".targetrun/state.db")
    try:
        for location, text in db.execute("SELECT location, record FROM checkpoints WHERE task = ?", (task,)).fetchall():
            record = json.loads(text)
            record["code"] = code
            db.execute("UPDATE checkpoints SET record = ? WHERE location = ?", (json.dumps(record), location))
        db.commit()
    finally:
        db.close()


# -- code that does not parse ----------------------------------------------------------


def test_a_helper_that_does_not_parse_is_named_with_file_and_line_never_gone(project):
    p = project(PIPELINE, tasks=TASKS, helpers=HELPERS)
    assert p.cli("run").code == 0
    p.write("helpers.py", "def norm(values:\n    return sorted(values)\n")
    row = rows(p)["fetch"]
    assert row["stale"] == [{"what": "code", "detail": "helpers.py:1 does not parse"}]
    assert "gone" not in json.dumps(row)
    # never kept silently: the run would import it and fail, so it is what would run
    assert row["action"] == "run" and row["state"] == "will run: code changed (helpers.py:1 does not parse)"
    assert p.cli("status", "--check").code == 1


def test_a_task_module_that_does_not_parse_is_stale_and_the_run_fails_clearly(project):
    p = project(PIPELINE, tasks=TASKS, helpers=HELPERS)
    assert p.cli("run").code == 0
    p.write("tasks.py", TASKS.replace("def fetch():", "def fetch(:"))
    line = TASKS.lstrip("\n").splitlines().index("def fetch():") + 1
    row = rows(p)["fetch"]
    assert row["stale"] == [{"what": "code", "detail": f"tasks.py:{line} does not parse"}]
    assert row["action"] == "run"
    text = p.cli("status").out
    assert f"will run: code changed (tasks.py:{line} does not parse)" in text
    done = run_fresh(p)
    assert done.returncode == 2, done.stdout + done.stderr
    assert "SyntaxError" in done.stderr and f"tasks.py, line {line}" in done.stderr
    assert "Traceback" not in done.stdout + done.stderr
    assert p.exists("out/fetch.json")  # it failed before anything ran: the old target is untouched
    # fixed again: the same code as recorded, nothing stale, nothing runs
    p.write("tasks.py", TASKS)
    assert rows(p)["fetch"]["stale"] == [] and rows(p)["fetch"]["action"] == "skip"


def test_code_that_does_not_parse_in_a_record_is_reported_when_it_is_fixed(project):
    p = project(PIPELINE, tasks=TASKS, helpers=HELPERS)
    assert p.cli("run").code == 0
    rewrite_code(p, "fetch", {"helpers.py": "unparsable:1", **{k: v for k, v in records(p)["fetch"]["code"].items()
                                                             if not k.startswith("helpers.py")}})
    assert rows(p)["fetch"]["stale"] == [{"what": "code", "detail": "helpers.py: helper norm"}]


# -- library and standard-library callables ----------------------------------------------

LIBRARY = '''
name: libs
tasks:
  dumped:
    run: json:dumps
    args: {obj: [1, 2]}
    target: out/dumped.txt
    serializer: text
  reexported:
    run: tasks:dumps
    args: {obj: [1, 2]}
    target: out/reexported.txt
    serializer: text
  yamled:
    run: yaml:safe_dump
    args: {data: [1, 2]}
    target: out/yamled.txt
    serializer: text
    cache_validator: [code]
'''


def test_library_and_stdlib_callables_count_by_their_version(project):
    pyyaml = importlib.metadata.version("PyYAML")
    p = project(LIBRARY, tasks="from json import dumps\n")
    assert p.cli("run").code == 0
    python = platform.python_version()
    made = records(p)
    assert made["dumped"]["code"] == {"json:dumps": f"python:{python}"}
    assert made["reexported"]["code"] == {"json:dumps": f"python:{python}"}  # where it comes from counts
    assert made["yamled"]["code"] == {"yaml:safe_dump": f"dist:PyYAML {pyyaml}"}
    assert all(r["stale"] == [] for r in rows(p).values())
    rewrite_code(p, "dumped", {"json:dumps": "python:3.10.1"})  # made by another Python
    rewrite_code(p, "yamled", {"yaml:safe_dump": "dist:PyYAML 5.4"})  # made by an older PyYAML
    now = rows(p)
    assert now["dumped"]["stale"] == [{"what": "code", "detail": f"json:dumps (python 3.10.1 → {python})"}]
    assert now["dumped"]["action"] == "skip"  # no validator: reported, not acted on
    assert now["yamled"]["stale"] == [{"what": "code", "detail": f"yaml:safe_dump (PyYAML 5.4 → {pyyaml})"}]
    assert now["yamled"]["state"] == f"will run: code changed (yaml:safe_dump (PyYAML 5.4 → {pyyaml}))"
    done = p.cli("run", "--json")
    assert done.code == 0, done.text
    states = {t["task"]: t["state"] for t in json.loads(done.out)["tasks"]}
    assert states == {"dumped": "skipped", "reexported": "skipped", "yamled": "succeeded"}


def test_a_library_a_helper_uses_names_both_versions(project):
    click_version = importlib.metadata.version("click")
    helpers = "import click\n\n\ndef norm(values):\n    return sorted(values) if click.style('') == '' else values\n"
    p = project(PIPELINE, tasks=TASKS, helpers=helpers)
    assert p.cli("run").code == 0
    code = dict(records(p)["fetch"]["code"])
    assert code["click"] == f"lib:{click_version}"
    rewrite_code(p, "fetch", dict(code, click="lib:0.1"))
    assert rows(p)["fetch"]["stale"] == [{"what": "code", "detail": f"library click (0.1 → {click_version})"}]


# -- where modules are found -------------------------------------------------------------

SRC_PIPELINE = '''
name: src
tasks:
  made:
    run: pkg.mod:make
    target: out/made.json
'''


@pytest.mark.parametrize("layout", ["src", "lib"])
def test_a_package_under_src_or_a_sys_path_folder_in_the_project_is_fingerprinted(project, monkeypatch, layout):
    p = project(SRC_PIPELINE)
    p.write(f"{layout}/pkg/__init__.py", "")
    p.write(f"{layout}/pkg/mod.py", "from pkg.util import scale\n\n\ndef make():\n    return scale(2)\n")
    p.write(f"{layout}/pkg/util.py", "def scale(x):\n    return x * 10\n")
    monkeypatch.syspath_prepend(str(p.root / layout))  # as an editable install or PYTHONPATH would
    assert p.cli("run").code == 0
    if layout == "src":
        monkeypatch.undo()  # root/src counts even when it is not on sys.path now (another process)
    assert records(p)["made"]["code"].keys() == {f"{layout}/pkg/mod.py:make", f"{layout}/pkg/util.py:scale", "@model"}
    p.write(f"{layout}/pkg/util.py", "def scale(x):\n    return x * 100\n")
    assert rows(p)["made"]["stale"] == [{"what": "code", "detail": f"{layout}/pkg/util.py: helper scale"}]


def test_installed_packages_inside_the_project_folder_are_not_its_code(tmp_path, monkeypatch):
    from targetrun.staleness import CodeIndex

    site = tmp_path / ".venv" / "lib" / "python3" / "site-packages"
    (site / "vendored").mkdir(parents=True)
    (site / "vendored" / "__init__.py").write_text("def f():\n    return 1\n")
    (tmp_path / "tasks.py").write_text("from vendored import f\n\n\ndef task():\n    return f()\n")
    monkeypatch.syspath_prepend(str(site))
    code = CodeIndex(str(tmp_path)).of_callable("tasks:task")
    assert code is not None and list(code) == ["tasks.py:task"]  # not ".venv/.../vendored/__init__.py:f"


# -- cache hits (cache_for, no target) ---------------------------------------------------

NOW = 1_800_000_000.0


def _entry_made_by(code: dict[str, str] | None, deps: dict[str, str] | None = None):
    from targetrun.model import CacheEntry, Checkpoint

    record = Checkpoint("t", "/r/t.pkl", "pickle", 2, "ab", "run-1", NOW - 60, code=code, deps=deps)
    return CacheEntry("k", "v", "p", "t", record, NOW + 3000)


@pytest.mark.parametrize("validators, rebuild, action, reason", [
    ("code", False, "run", "code changed"),  # the validator names code: the entry is not used
    ("duration_only", False, "skip", "cache hit"),  # Prefect's rule: reported, used
    ("duration_only", True, "run", "code changed"),  # --rebuild-stale
    ("deps", False, "skip", "cache hit"),
])
def test_entry_verdict_judges_the_code_its_record_names(validators, rebuild, action, reason):
    from targetrun.engine.decide import Facts, MadeNow, decide, stale_rules
    from targetrun.model import CachePolicy, Validator, cannot_tell, known_stale

    policy = CachePolicy(3600.0, Validator(validators))
    rules = stale_rules(policy, rebuild_stale=rebuild, report_stale=True)
    made = MadeNow(code={"tasks.py:f": "task:2"}, deps={"a.csv": "sha256:1"}, rules=rules)
    entry = _entry_made_by({"tasks.py:f": "task:1"}, {"a.csv": "sha256:1"})
    decision, hit = decide(Facts(policy, None, False, NOW, entries=(entry,), made=made))
    assert (decision.action.value, decision.reason.value) == (action, reason)
    assert [(s.what.value, s.detail) for s in decision.stale] == [("code", "tasks.py: f")]
    assert (hit is entry) == (action == "skip")
    unknown = decide(Facts(policy, None, False, NOW, entries=(_entry_made_by(None),), made=made))[0]
    # a record without code: unknown, never stale -- said, never acted on
    assert unknown.reason.value == "cache hit" and known_stale(unknown.stale) == ()
    assert [s.detail for s in cannot_tell(unknown.stale)] == \
        ["recorded without a code fingerprint (by an older targetrun): cannot tell if code changed"]


def test_code_that_does_not_parse_keeps_nothing_whatever_the_rules_kept():
    from targetrun.engine.decide import Facts, MadeNow, decide
    from targetrun.model import CachePolicy

    broken = MadeNow("tasks.py:3 does not parse")
    for facts in (Facts(None, "/out/t", True, NOW, made=broken),  # target exists
                  Facts(CachePolicy(3600.0), None, False, NOW, entries=(_entry_made_by(None),), made=broken),  # a hit
                  Facts(None, None, True, NOW, made=broken)):  # a resumed checkpoint
        decision, hit = decide(facts)
        assert decision.runs and decision.reason.value == "code changed" and hit is None
        assert decision.detail == "tasks.py:3 does not parse"
    forced, _ = decide(Facts(None, "/out/t", True, NOW, forced=Reason.FORCED, made=broken))
    assert forced.reason is Reason.FORCED

CACHED = '''
name: cached
tasks:
  fetch:
    run: tasks:fetch
    cache_for: 1h
    {validator}
'''


def _states(done) -> dict[str, tuple[str, str]]:
    assert done.code == 0, done.text
    return {t["task"]: (t["state"], t["decision"]) for t in json.loads(done.out)["tasks"]}


@pytest.mark.parametrize("validator", ["cache_validator: [code]", "cache_validator: [duration_only, code]"])
def test_a_cache_hit_with_a_code_validator_is_not_used_after_the_code_changed(project, validator):
    p = project(CACHED.format(validator=validator), tasks=TASKS, helpers=HELPERS)
    assert _states(p.cli("run", "--json"))["fetch"][0] == "succeeded"
    assert _states(p.cli("run", "--json"))["fetch"][0] == "cached"
    p.write("helpers.py", HELPERS.replace("sorted(values)", "sorted(values, reverse=True)"))
    row = rows(p)["fetch"]
    assert row["action"] == "run" and row["state"] == "will run: code changed (helpers.py: helper norm)"
    assert row["stale"] == [{"what": "code", "detail": "helpers.py: helper norm"}]
    state, decision = _states(p.cli("run", "--json"))["fetch"]  # the run agrees with status
    assert (state, decision) == ("succeeded", "will run: code changed (helpers.py: helper norm)")
    assert p.counts() == {"fetch": 2}
    assert _states(p.cli("run", "--json"))["fetch"][0] == "cached"  # the new entry is used


def test_a_cache_hit_without_a_code_validator_is_used_and_reported_stale(project):
    p = project(CACHED.format(validator=""), tasks=TASKS, helpers=HELPERS)
    assert p.cli("run").code == 0
    p.write("helpers.py", HELPERS.replace("sorted(values)", "sorted(values, reverse=True)"))
    row = rows(p)["fetch"]
    assert row["action"] == "skip" and row["reason"] == "cache hit"
    assert row["stale"] == [{"what": "code", "detail": "helpers.py: helper norm"}]
    assert _states(p.cli("run", "--json"))["fetch"][0] == "cached"  # Prefect's rule: duration only
    state, decision = _states(p.cli("run", "--json", "--rebuild-stale"))["fetch"]
    assert state == "succeeded" and decision == "will run: code changed (helpers.py: helper norm)"


def test_a_cache_hit_with_a_deps_validator_is_not_used_after_a_dep_changed(project):
    pipeline = CACHED.format(validator="cache_validator: [deps]\n    deps: [data/raw.csv]")
    p = project(pipeline, tasks=TASKS, helpers=HELPERS)
    p.write("data/raw.csv", "a\n1\n")
    assert p.cli("run").code == 0
    assert _states(p.cli("run", "--json"))["fetch"][0] == "cached"
    p.write("helpers.py", HELPERS.replace("sorted(values)", "sorted(values, reverse=True)"))
    assert _states(p.cli("run", "--json"))["fetch"][0] == "cached"  # code is not what it validates
    p.write("data/raw.csv", "a\n2\n")
    row = rows(p)["fetch"]
    assert row["state"] == "will run: deps changed (dep data/raw.csv changed)"
    assert _states(p.cli("run", "--json"))["fetch"] == ("succeeded", "will run: deps changed (dep data/raw.csv changed)")


# -- the no-op replay (`run -q` answered from the last identical no-op) -------------------


def test_a_replayed_no_op_never_stands_on_code_that_no_longer_parses(project):
    p = project(PIPELINE, tasks=TASKS, helpers=HELPERS)
    assert run_fresh(p, "-q").returncode == 0
    assert run_fresh(p, "-q").returncode == 0  # a no-op: it leaves a certificate for the next one
    assert any((p.root / ".targetrun" / "replay").iterdir())
    p.write("helpers.py", "def norm(values:\n    return sorted(values)\n")
    done = run_fresh(p, "-q")
    assert done.returncode == 2, done.stdout + done.stderr
    assert "helpers.py, line 1" in done.stderr and "Traceback" not in done.stderr


def test_a_replayed_no_op_never_uses_a_cache_hit_its_code_validator_refuses(project):
    p = project(CACHED.format(validator="cache_validator: [code]"), tasks=TASKS, helpers=HELPERS)
    assert run_fresh(p, "-q").returncode == 0
    assert run_fresh(p, "-q").returncode == 0
    assert p.counts() == {"fetch": 1}
    p.write("helpers.py", HELPERS.replace("sorted(values)", "sorted(values, reverse=True)"))
    assert run_fresh(p, "-q").returncode == 0
    assert p.counts() == {"fetch": 2}


# -- a task function that is nowhere now ---------------------------------------------------


@pytest.mark.parametrize("how", ["renamed", "module deleted"])
def test_a_task_function_found_when_made_and_nowhere_now_is_stale_as_gone(project, how):
    p = project(PIPELINE, tasks=TASKS, helpers=HELPERS)
    assert p.cli("run").code == 0
    if how == "renamed":
        p.write("tasks.py", TASKS.replace("def fetch():", "def fetch_all():"))
    else:
        (p.root / "tasks.py").unlink()
    row = rows(p)["fetch"]
    assert row["stale"] == [{"what": "code", "detail": "tasks.py: fetch (gone)"}]
    assert row["action"] == "skip"  # no validator: reported; the existing target stands
    p.file.write_text(PIPELINE + "    cache_validator: [code]\n")
    assert rows(p)["fetch"]["state"] == "will run: code changed (tasks.py: fetch (gone))"
    done = run_fresh(p)  # it runs, so the missing function is a clear error, not a silent skip
    assert done.returncode == 2 and "tasks" in done.stderr and "Traceback" not in done.stderr, done.stderr
