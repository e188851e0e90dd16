"""What a newcomer and a CI job meet first: configuration errors name the variable (exit
2), contradictory flags are usage errors, and ``--json`` has one shape whatever the
number of dates."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

PIPELINE = """
tasks:
  a:
    run: steps:const
    args: {value: 7, name: a}
    target: "out/{today}/a.json"
  b:
    run: steps:inc
    needs: {x: a}
    args: {name: b}
    target: "out/{today}/b.json"
"""


def _cli(proj, *args, env=None):
    import os

    return subprocess.run([sys.executable, "-m", "targetrun", *args], cwd=proj.root, capture_output=True,
                          text=True, timeout=120, env={**os.environ, **(env or {})})


@pytest.mark.parametrize("name,value", [
    ("TARGETRUN_LOCK_LEASE", "abc"),
    ("TARGETRUN_LOCK_LEASE", "-5"),
    ("TARGETRUN_NOW", "inf"),
    ("TARGETRUN_NOW", "abc"),
    ("TARGETRUN_TRUST", "maybe"),
    ("TARGETRUN_SCHEDULER_TIMEOUT", "soon"),
])
@pytest.mark.parametrize("command", [["run"], ["status"]])
def test_bad_environment_value_is_exit_2_naming_it(project, steps, name, value, command):
    proj = project(PIPELINE, steps=steps)
    done = _cli(proj, *command, env={name: value})
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith("targetrun: error: ") and done.stderr.count("\n") == 1, done.stderr
    assert name in done.stderr and repr(value) in done.stderr
    assert "Traceback" not in done.stderr
    assert not (proj.root / "out").exists()  # refused before anything ran


def test_good_environment_values_are_accepted(project, steps):
    proj = project(PIPELINE, steps=steps)
    done = _cli(proj, "run", env={"TARGETRUN_LOCK_LEASE": "2m", "TARGETRUN_NOW": "2026-11-01T00:00:00",
                                  "TARGETRUN_TRUST": "no"})
    assert done.returncode == 0, done.stderr


def test_unset_variable_in_storage_options_is_exit_2_naming_it(project, steps, monkeypatch):
    monkeypatch.delenv("TARGETRUN_TEST_UNSET_KEY", raising=False)
    proj = project("""
        results:
          lake:
            url: memory://first-contact
            options: {skip_instance_cache: true, key: "${TARGETRUN_TEST_UNSET_KEY}"}
        defaults: {result: lake}
        tasks:
          a: {run: steps:const, target: a.json}
        """, steps=steps)
    result = proj.cli("run")
    assert result.code == 2, result.text
    assert "TARGETRUN_TEST_UNSET_KEY" in result.err and "is not set" in result.err
    assert proj.counts() == {}


def test_unset_variable_in_cache_url_is_exit_2_naming_it(project, steps, monkeypatch):
    monkeypatch.delenv("TARGETRUN_TEST_UNSET_PASSWORD", raising=False)
    proj = project("""
        cache: "redis://:${TARGETRUN_TEST_UNSET_PASSWORD}@127.0.0.1:1/0"
        tasks:
          a: {run: steps:const, target: a.json}
        """, steps=steps)
    result = proj.cli("run")
    assert result.code == 2, result.text
    assert "TARGETRUN_TEST_UNSET_PASSWORD" in result.err and "cache" in result.err


def test_quiet_and_verbose_together_is_a_usage_error(project, steps):
    proj = project(PIPELINE, steps=steps)
    result = proj.cli("run", "-q", "-v")
    assert result.code == 2 and "--quiet" in result.err and "--verbose" in result.err, result.text
    assert proj.counts() == {}


def _keys(doc):
    return sorted(doc), sorted(doc["runs"][0])


@pytest.mark.parametrize("command", ["run", "status"])
def test_json_has_one_shape_for_one_date_or_several(project, steps, command):
    proj = project(PIPELINE, steps=steps)
    one = proj.cli(command, "--json", "--date", "2026-11-01")
    several = proj.cli(command, "--json", "--date", "2026-11-02..2026-11-04")
    assert one.code == several.code == 0, one.text + several.text
    one_doc, several_doc = json.loads(one.out), json.loads(several.out)
    assert isinstance(one_doc, dict) and isinstance(several_doc, dict)
    assert _keys(one_doc) == _keys(several_doc)
    assert len(one_doc["runs"]) == 1 and len(several_doc["runs"]) == 3
    assert len(one_doc["tasks"]) == 2 and len(several_doc["tasks"]) == 6


def test_run_json_totals_add_up_across_dates(project, steps):
    proj = project(PIPELINE, steps=steps)
    doc = json.loads(proj.cli("run", "--json", "--date", "2026-11-01..2026-11-03").out)
    assert doc["counts"] == {"succeeded": 6} and doc["ok"] is True and doc["exit_code"] == 0
    assert {task["run_id"] for task in doc["tasks"]} == {run["run_id"] for run in doc["runs"]}


def test_history_json_counts_are_numbers(project, steps):
    proj = project(PIPELINE, steps=steps)
    assert proj.cli("run").code == 0
    assert proj.cli("run").code == 0
    runs = json.loads(proj.cli("history", "--json").out)
    assert [run["counts"] for run in runs] == [{"skipped": 1, "not needed": 1}, {"succeeded": 2}]


def test_a_bad_store_timeout_is_refused_before_any_command(project, steps):
    """TARGETRUN_STORE_TIMEOUT is read with the other settings at the start, not when a
    SQLite store happens to be opened: a command that opens none refuses it too."""
    proj = project(PIPELINE, steps=steps)
    done = _cli(proj, "graph", env={"TARGETRUN_STORE_TIMEOUT": "soon"})
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith("targetrun: error: ") and done.stderr.count("\n") == 1, done.stderr
    assert "TARGETRUN_STORE_TIMEOUT='soon'" in done.stderr and "Traceback" not in done.stderr
