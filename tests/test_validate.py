"""`validate` refuses everything `run` would refuse at load -- every problem of the file
at once, each task's function imported (never called) and its signature checked against
`args` and `needs` -- and `run` refuses the same before anything runs."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

BROKEN = Path(__file__).parent / "broken"
CALLABLE_CASES = ["61-run-missing-module.yaml", "62-run-missing-function.yaml", "63-run-unknown-argument.yaml",
                  "64-run-missing-required-argument.yaml"]

STEPS = '''
import os

def _ran(name):
    with open(os.path.join(os.path.dirname(__file__), "ran.log"), "a") as f:
        f.write(name + "\\n")

def fetch(city, days=7):
    _ran("fetch")
    return [city] * days

def clean(fetch, strict=False):
    _ran("clean")
    return fetch

def report(clean):
    _ran("report")
    return len(clean)
'''

MANY = """
tasks:
  fetch:
    run: steps:fetch
    args: {citi: berlin}
    target: out/fetch.json
  clean:
    run: steps:claen
    needs: [fetch]
    target: out/clean.json
  report:
    run: steps:report
    needs: [clean]
    target: out/report.json
    retry_dealy: 3s
  other:
    run: stepz:report
    target: out/other.json
"""


@pytest.mark.parametrize("name", CALLABLE_CASES)
def test_run_refuses_what_validate_refuses_before_running_anything(tmp_path, name):
    folder = tmp_path / "p"
    shutil.copytree(BROKEN, folder)
    shutil.copy(folder / name, folder / "Pipelinefile.yaml")
    checked = subprocess.run([sys.executable, "-m", "targetrun", "validate"], cwd=folder, capture_output=True,
                             text=True, timeout=60)
    ran = subprocess.run([sys.executable, "-m", "targetrun", "run"], cwd=folder, capture_output=True, text=True,
                         timeout=60)
    assert checked.returncode == 2 and ran.returncode == 2, checked.stderr + ran.stderr
    assert "Traceback" not in checked.stderr + ran.stderr
    assert not (folder / "out").exists()  # nothing ran (the functions raise if called)
    problem = checked.stderr.split(": ", 2)[-1].split(" (run:")[0].split(";")[0]
    assert problem.split(", ", 1)[-1] in ran.stderr  # the same words from both


def test_validate_reports_every_problem_of_the_file(project):
    proj = project(MANY, steps=STEPS)
    result = proj.cli("validate")
    assert result.code == 2, result.text
    lines = result.err.splitlines()
    assert all(line.startswith("targetrun: error: ") for line in lines), lines
    assert len(lines) == 5, lines
    assert "'citi'" in lines[0] and "did you mean 'city'" in lines[0]
    assert "'city', which neither args nor needs gives" in lines[1]
    assert "no function 'claen'" in lines[2] and "did you mean 'clean'" in lines[2]
    assert "unknown key 'retry_dealy'" in lines[3]
    assert "there is no module 'stepz'" in lines[4] and "did you mean 'steps'" in lines[4]
    assert not proj.exists("ran.log")

    # A task with a problem of its own causes no follow-on problems in the tasks that need it.
    proj.write("Pipelinefile.yaml", """
        tasks:
          fetch:
            run: steps:fetch
            args: {city: x}
            taget: out/fetch.json
          clean:
            run: steps:clean
            needs: [fetch]
          report:
            run: steps:report
            needs: [clean]
            args: {extra: 1}
        """)
    result = proj.cli("validate")
    assert result.code == 2 and result.err.count("\n") == 2, result.err  # not "needs 'fetch', not a task"
    assert "unknown key 'taget'" in result.err and "no parameter 'extra'" in result.err


def test_validate_lists_problems_in_line_order_across_kinds(project):
    proj = project(MANY, steps=STEPS)
    doc = json.loads(proj.cli("validate", "--json").out)
    lines = [p["line"] for p in doc["problems"]]
    assert lines == sorted(lines) and len(lines) == 5
    assert "there is no module 'stepz'" in doc["problems"][-1]["message"]
    assert doc["problems"][-1]["hint"] == "did you mean 'steps'?"


def test_validate_json(project):
    proj = project(MANY, steps=STEPS)
    bad = proj.cli("validate", "--json")
    assert bad.code == 2 and bad.err == ""
    doc = json.loads(bad.out)
    assert doc["ok"] is False and doc["command"] == "validate" and doc["file"].endswith("Pipelinefile.yaml")
    assert {"file", "line", "key", "message", "hint", "text"} <= set(doc["problems"][0])
    assert doc["problems"][0]["key"] == "tasks.fetch.run"
    good = project("tasks:\n  fetch: {run: steps:fetch, args: {city: x}, target: out/f.json}\n", steps=STEPS)
    ok = good.cli("validate", "--json")
    assert ok.code == 0 and json.loads(ok.out)["ok"] is True and json.loads(ok.out)["problems"] == []
    assert json.loads(ok.out)["tasks"] == 1


def test_a_module_that_imports_a_missing_package_says_so(project):
    proj = project("tasks:\n  fetch: {run: steps:fetch, target: out/f.json}\n",
                   steps="import no_such_package_xyz\n\ndef fetch():\n    return 1\n")
    result = proj.cli("validate")
    assert result.code == 2 and "imports 'no_such_package_xyz', which is not installed" in result.err, result.err


PLAIN = "def f():\n    return 1\n"


def test_two_named_results_that_reach_one_file_are_one_target(project):
    """Two tasks writing the same URL through two result names (each with its own storage
    options) write one file: refused at load, like any shared target."""
    proj = project("""
    results:
      lake: {url: "memory://bucket", options: {skip_instance_cache: true}}
      raw: {url: "memory://bucket/raw", options: {skip_instance_cache: true}}
    tasks:
      a: {run: plain:f, result: lake, target: raw/x.json}
      b: {run: plain:f, result: raw, target: x.json}
    """, plain=PLAIN)
    for command in ("validate", "run"):
        result = proj.cli(command)
        assert result.code == 2, result.text
        assert "tasks 'a' and 'b' both write the target memory://bucket/raw/x.json" in result.err
        assert "Traceback" not in result.text


def test_a_cache_key_is_rendered_for_a_run_not_for_the_defaults(project):
    """A cache_key that only renders with the -p values of a run does not make the file
    invalid (the defaults are not what a run uses for it)."""
    proj = project("""
    params: {x: abc}
    tasks:
      a: {run: plain:f, cache_for: 1h, cache_key: "k-{params.x:03d}"}
      b: {run: plain:f, target: out/b.json}
    """, plain=PLAIN)
    assert proj.cli("validate").code == 0
    assert proj.cli("run", "b").code == 0
    assert proj.cli("run", "a", "-p", "x=7").code == 0
    failed = proj.cli("run", "a")  # with the default, the key cannot render: exit 2, naming the key
    assert failed.code == 2 and "tasks.a.cache_key" in failed.err, failed.text
