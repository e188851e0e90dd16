"""Findings of a fuzzer run over mutated Pipelinefiles and command lines (hostile input,
round 4). Each case was reproduced with real files before it was fixed; each fix is at
the one place the value is made, so every sibling input is covered too."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from targetrun.cli import invoke
from tests.conftest import STEPS, Result


def _refused_plainly(result, *words: str) -> None:
    """Exit 2, one paragraph, no traceback, and each word somewhere in it."""
    assert result.code == 2, result.text
    assert "Traceback" not in result.text and "internal error" not in result.err, result.text
    assert result.err.startswith("targetrun: error: "), result.err
    for word in words:
        assert word in result.err, result.err


# -- 1. a format spec that makes text no file, command or store can hold ---------------------
# `{n:c}` turns an int into a character; 55296 (0xD800) is a lone surrogate, which is not
# UTF-8: the target's length check, the state store and subprocess each failed on it in
# their own way (a traceback, exit 4, or a "failed" task with a traceback, exit 1).

SURROGATE_SITES = {
    "target": "a: {run: steps:const, target: 'o/{params.n:c}.json'}",
    "cache_key": "a: {run: steps:const, cache_for: 1h, cache_key: 'k{params.n:c}'}",
    "shell": "a: {shell: 'echo {params.n:c}'}",
    "args": "a: {run: steps:const, args: {value: 'v{params.n:c}'}}",
    "mapped target": "a: {run: steps:const, foreach: '{params.ns}', target: 'o/{item:c}.json'}",
}


@pytest.mark.parametrize("command", [["validate"], ["run"], ["status"], ["run", "--dry-run"]])
@pytest.mark.parametrize("site", list(SURROGATE_SITES.values()), ids=list(SURROGATE_SITES))
def test_a_field_that_renders_to_a_lone_surrogate_is_refused(project, site, command):
    proj = project(f"params: {{n: 55296, ns: [55296]}}\ntasks:\n  {site}\n", steps=STEPS)
    result = proj.cli(*command)
    assert "Traceback" not in result.text and "internal error" not in result.text, result.text
    if site == SURROGATE_SITES["shell"] and command != ["run"]:
        assert result.code == 0, result.text  # a command is rendered only to run it
    elif site == SURROGATE_SITES["shell"]:
        assert result.code == 2 and "FAILED" in result.out and "not UTF-8" in result.out, result.text
    elif result.code == 0:  # validate cannot know every rendered value (foreach items come later)
        assert command == ["validate"], result.text
    else:
        _refused_plainly(result, "not UTF-8")


# -- 2. `-f ''`: an empty path -------------------------------------------------------------
# `validate -f ''` was an internal error (os.path.relpath('') raises ValueError); the other
# commands said "no such Pipelinefile: ." -- a path the user did not give.

@pytest.mark.parametrize("command", [["validate"], ["validate", "--json"], ["run"], ["run", "-q"], ["status"],
                                     ["graph"], ["show", "a"], ["history"], ["invalidate", "a"], ["gc"]])
def test_an_empty_pipelinefile_path_is_a_usage_error(project, monkeypatch, command):
    proj = project("tasks:\n  a: {run: steps:const}\n", steps=STEPS)
    monkeypatch.chdir(proj.root)  # a Pipelinefile is here: the empty path must not fall back to it
    out, err = io.StringIO(), io.StringIO()
    code = invoke([*command, "-f", ""], out, err)
    result = Result(code, out.getvalue(), err.getvalue())
    _refused_plainly(result, "-f", "empty")


# -- 3. a task that calls sys.exit() or raises a BaseException of its own --------------------
# SystemExit left the engine as if the run itself had ended: every task "cancelled", the run
# recorded broken, the process exiting with the task's own code -- 0 for sys.exit(), so CI
# saw success; 3 for sys.exit(3), "a backend could not be reached". A class derived from
# BaseException printed a traceback. Either is the task's failure: exit 1, the others run
# on with --keep-going, and the run is recorded failed.

EXITING = '''
import os, sys

class Abort(BaseException):
    pass

def leave(code=0):
    sys.exit(code)

def abort():
    raise Abort("the task gave up")

def const(value=1):
    with open(os.path.join(os.path.dirname(__file__), "calls.log"), "a") as f:
        f.write("const\\n")
    return value
'''

ENDINGS = {"sys.exit()": ("steps:leave", "SystemExit"), "sys.exit(3)": ("steps:leave", "SystemExit: 3"),
           "sys.exit('text')": ("steps:leave", "SystemExit: text"), "BaseException": ("steps:abort", "Abort")}


@pytest.mark.parametrize("executor", [[], ["-j", "2", "--executor", "threads"], ["-j", "2", "--executor", "processes"]],
                         ids=["inline", "threads", "processes"])
@pytest.mark.parametrize("ending", list(ENDINGS), ids=list(ENDINGS))
def test_a_task_that_exits_or_raises_a_base_exception_fails_alone(project, ending, executor):
    run, shown = ENDINGS[ending]
    args = {"sys.exit(3)": "{code: 3}", "sys.exit('text')": "{code: text}"}.get(ending, "{}")
    proj = project(f"tasks:\n  a: {{run: {run}, args: {args}, target: o/a.json}}\n"
                   "  b: {run: steps:const, needs: {value: a}, target: o/b.json}\n"
                   "  c: {run: steps:const, target: o/c.json}\n", steps=EXITING)
    result = proj.cli("run", "--keep-going", *executor)
    assert result.code == 1, result.text
    assert "internal error" not in result.text and "cancelled" not in result.text, result.text
    assert "FAILED" in result.out and shown in result.out, result.text
    assert proj.exists("o/c.json") and not proj.exists("o/a.json") and not proj.exists("o/b.json")
    history = proj.cli("history")
    assert history.code == 0 and "failed" in history.out and "broken" not in history.out, history.text
    again = proj.cli("run", "--keep-going", *executor)  # the state store is intact: c is done, a fails again
    assert again.code == 1 and proj.counts() == {"const": 1}, again.text


# -- 4. `foreach: {needs: ...}` naming something that is not a task name ------------------
# A list or a mapping there was an internal error (unhashable type, looked up in a set); a
# number was "foreach over 1, which is not in this task's needs" -- as if 1 were a task.

@pytest.mark.parametrize("upstream, found", [("[a]", "a list"), ("[[a]]", "a list"), ("{a: 1}", "a mapping"),
                                             ("1", "1"), ("null", "null"), ("1.5", "1.5"), ("true", "True")])
def test_foreach_needs_that_is_not_a_task_name_is_refused(project, upstream, found):
    proj = project("tasks:\n  a: {run: steps:const, target: o/a.json}\n"
                   f"  m: {{run: steps:const, needs: {{value: a}}, foreach: {{needs: {upstream}}}, target: 'o/{{item}}.json'}}\n",
                   steps=STEPS)
    for command in (["validate"], ["run", "--dry-run"]):
        result = proj.cli(*command)
        _refused_plainly(result, "line 3", "tasks.m.foreach.needs", "expected the name of a task", found)


# -- 5. a deps glob in a file whose needs name a broken or unknown task ---------------------
# The check that a dep another task makes is read only after it walked the needs graph of
# the file as written; a task left out of it (its own problem reported already) or a need
# naming no task was a KeyError: an internal error instead of the file's own problems.

@pytest.mark.parametrize("first, problem", [
    ("a: {run: steps:const, target: '{nope}'}", "unknown template key 'nope'"),
    ("a: {run: steps:const, target: o/a.json, max_retries: x}", "max_retries"),
    ("z: {run: steps:const, target: o/z.json}", "needs 'a', which is not a task"),
])
def test_a_deps_glob_beside_a_broken_need_reports_the_need(project, first, problem):
    proj = project(f"tasks:\n  {first}\n  b: {{run: steps:const, needs: [a], target: o/b.json}}\n"
                   "  c: {run: steps:const, needs: [b], target: o/c.json, deps: ['*']}\n", steps=STEPS)
    for command in (["validate"], ["run", "--dry-run"]):
        _refused_plainly(proj.cli(*command), problem)


def test_the_deps_check_still_names_a_maker_that_is_not_needed_beside_a_broken_task(project):
    proj = project("tasks:\n  a: {run: steps:const, target: '{nope}'}\n  m: {run: steps:const, target: o/m.json}\n"
                   "  c: {run: steps:const, target: o/c.json, deps: [o/m.json]}\n", steps=STEPS)
    result = proj.cli("validate")
    _refused_plainly(result, "unknown template key 'nope'", "the dep o/m.json of task 'c'")


# -- 6. a Dask scheduler address that is not one -----------------------------------------
# distributed raised ValueError, TypeError or UnicodeError for these (no port, an unknown
# scheme, a host name that cannot be encoded): an internal error with distributed's traceback.

BAD_SCHEDULERS = ["/", "x", "tcp://", "tcp://127.0.0.1", "tcp://[::1", "tcp://127.0.0.1:abc", "tcp://h:99999",
                  "http://127.0.0.1:8786", "ucx://x:1", "inproc://", "tcp://" + "a" * 300 + ":8786", "tcp://:8786"]


@pytest.mark.parametrize("address", BAD_SCHEDULERS)
def test_a_scheduler_address_that_is_not_one_is_a_usage_error(project, monkeypatch, address):
    proj = project("tasks:\n  a: {run: steps:const, checkpoint: false}\n", steps=STEPS)
    _refused_plainly(proj.cli("run", "--dry-run", "--scheduler", address), "--scheduler", "tcp://HOST:PORT")
    monkeypatch.setenv("TARGETRUN_SCHEDULER", address)
    _refused_plainly(proj.cli("run"), "TARGETRUN_SCHEDULER", "tcp://HOST:PORT")
    monkeypatch.delenv("TARGETRUN_SCHEDULER")
    quoted = address.replace("'", "''")
    in_file = project(f"scheduler: '{quoted}'\ntasks:\n  a: {{run: steps:const, checkpoint: false}}\n", steps=STEPS)
    for command in (["validate"], ["run"]):
        _refused_plainly(in_file.cli(*command), "line 1", "scheduler", "tcp://HOST:PORT")


@pytest.mark.parametrize("address", ["tcp://127.0.0.1:9", "127.0.0.1:9", "ws://localhost:9", "tls://[::1]:9", "inproc://x"])
def test_a_well_formed_scheduler_address_is_tried(project, monkeypatch, address):
    monkeypatch.setenv("TARGETRUN_SCHEDULER_TIMEOUT", "0.5s")
    proj = project("tasks:\n  a: {run: steps:const, checkpoint: false}\n", steps=STEPS)
    result = proj.cli("run", "--scheduler", address)
    if address.startswith(("tls://", "inproc://")):  # TLS without Dask's TLS settings; no such in-process cluster
        _refused_plainly(result, "TLS")
    else:
        assert result.code == 3 and "cannot reach the Dask scheduler" in result.err, result.text


# -- 7. a library that logs an error with its traceback ----------------------------------
# gcsfs, for one, logs "_request out of retries on exception" with the exception attached;
# with no logging configured, Python's last-resort handler printed it with a 40-line
# traceback on targetrun's stderr (and unmasked: it bypassed nothing, but nothing shaped it).

LOGGING_LIBRARY = '''
import logging

try:
    raise ConnectionError("Cannot connect to host storage.example:443 token=ghp_ApiP4thT0kenValue0123456789abcdef")
except ConnectionError:
    logging.getLogger("somelib.retry").exception("_request out of retries on exception")
logging.getLogger("somelib").warning("falling back to the default bucket type")
logging.getLogger("somelib").info("an info line nobody asked for")

def const(value=1):
    return value
'''


@pytest.mark.parametrize("command", [["validate"], ["run"]])  # (status reads the code, imports nothing)
def test_a_library_logging_a_traceback_shows_one_line_each_without_it(tmp_path, command):
    (tmp_path / "steps.py").write_text(LOGGING_LIBRARY)
    (tmp_path / "Pipelinefile.yaml").write_text("tasks:\n  a: {run: steps:const, target: o/a.json}\n")
    done = subprocess.run([sys.executable, "-m", "targetrun", *command], cwd=tmp_path, capture_output=True,
                          text=True, timeout=120, env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])})
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr and "ghp_" not in done.stderr, done.stderr
    lines = [line for line in done.stderr.splitlines() if "somelib" in line]
    assert len(lines) == 2, done.stderr
    assert "_request out of retries on exception" in lines[0] and "ConnectionError: Cannot connect" in lines[0]
    assert "falling back to the default bucket type" in lines[1]


# -- 8. a result URL that names no bucket or host -----------------------------------------
# `result: gs://` loaded fine and rendered targets such as gs:/o/a.json; `status` then asked
# Google for the bucket "o" (after ~50 s of retries, with credentials looked up on the way).

@pytest.mark.parametrize("url", ["gs://", "s3://", "s3:///data", "gs:///", "http://", "https:///x", "ftp://"])
@pytest.mark.parametrize("where", ["defaults", "results", "task"])
def test_a_result_url_without_a_bucket_or_host_is_refused_at_load(project, url, where):
    task = "a: {run: steps:const, target: o/a.json%s}" % (", result: lake" if where == "results" else
                                                          f", result: '{url}'" if where == "task" else "")
    head = {"defaults": f"defaults: {{result: '{url}'}}\n", "results": f"results: {{lake: {{url: '{url}'}}}}\n",
            "task": ""}[where]
    proj = project(f"{head}tasks:\n  {task}\n", steps=STEPS)
    line = "line 1" if where != "task" else "line 2"
    _refused_plainly(proj.cli("validate"), line, "names no bucket or host")


@pytest.mark.parametrize("url", ["memory://", "memory://x", "file:///tmp", "s3://{params.b}", "s3://${BUCKET}/x"])
def test_a_result_url_that_needs_no_bucket_or_fills_it_later_is_not_refused_for_it(project, url):
    proj = project(f"params: {{b: x}}\ndefaults: {{result: '{url}'}}\ntasks:\n  a: {{run: steps:const, target: o/a.json}}\n",
                   steps=STEPS)
    assert "names no bucket or host" not in proj.cli("validate").text


# -- the fuzzer's bounded form: a parameter of any type through any format spec --------------
# (findings 1 and 6 were found this way; the long exploration ran outside the test suite)

SPECS = st.sampled_from(["", "c", "d", "x", "e", "%", ">5", "^9", ".3", ",", "_", "#b", "n", "%Y", "s", "05d", "=+8",
                         ">4096", ".4096f", "%%", "%A"]) | st.text(st.sampled_from("<>^=+-# 0123456789,_.%bcdeEfFgGnosxX"),
                                                                   max_size=6)
VALUES = (st.integers(-2, 0x110000 + 2) | st.sampled_from([55296, 57343, 0, 10, 47, 46, 92, 0x10FFFF]) | st.floats()
          | st.text(max_size=8).filter(lambda t: "\0" not in t) | st.booleans() | st.lists(st.integers(), max_size=2))


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(value=VALUES, spec=SPECS, site=st.sampled_from(["target", "cache_key", "args"]))
def test_any_value_through_any_format_spec_is_rendered_or_refused_plainly(tmp_path_factory, value, spec, site):
    folder = tmp_path_factory.mktemp("p")
    (folder / "steps.py").write_text("def const(value=1):\n    return value\n")
    field = "{params.v:%s}" % spec if spec else "{params.v}"
    body = {"target": f"target: 'o/{field}.json'", "cache_key": f"cache_for: 1h, cache_key: 'k{field}'",
            "args": f"args: {{value: 'v{field}'}}"}[site]
    document = {"params": {"v": value}}
    (folder / "Pipelinefile.yaml").write_text(yaml.safe_dump(document, allow_unicode=True)
                                              + f"tasks:\n  a: {{run: steps:const, {body}}}\n")
    for command in (["validate"], ["run", "--dry-run"]):
        out, err = io.StringIO(), io.StringIO()
        code = invoke([*command, "-f", str(folder / "Pipelinefile.yaml")], out, err)
        assert code in (0, 2), (code, out.getvalue(), err.getvalue())
        assert "Traceback" not in out.getvalue() + err.getvalue()
        assert code == 0 or err.getvalue().startswith("targetrun: error: "), err.getvalue()


# -- 9. a cache entry that expires beyond the year 9999 ---------------------------------------
# cache_for is capped at 1,000 years from now; near the end of datetime's range (a clock set
# with TARGETRUN_NOW) the expiry passes 9999-12-31 and showing "cache hit (until T)" -- in
# status, a dry run, the HTML report -- was an internal error: "year 10998 is out of range".

@pytest.mark.parametrize("command", [["status"], ["status", "--json"], ["run", "--dry-run"], ["run"], ["cache", "list"],
                                     ["report", "-o", "report.html"]])
def test_an_expiry_beyond_the_year_9999_is_shown_not_a_crash(project, monkeypatch, command):
    proj = project("tasks:\n  a: {run: steps:const, cache_for: 364999d}\n", steps=STEPS)
    monkeypatch.setenv("TARGETRUN_NOW", "9998-12-30T00:00:00")
    monkeypatch.chdir(proj.root)
    assert proj.cli("run").code == 0
    result = proj.cli(*command)
    assert result.code == 0, result.text
    assert "Traceback" not in result.text and "internal error" not in result.text, result.text
    if command[:1] == ["status"] or command == ["run", "--dry-run"]:
        assert "9999-12-31" in result.out, result.out


# -- 10. one task's target is a folder another task's target lies in --------------------------
# Loaded fine; the run then wrote one and failed the other -- "a file is in the way" or "a
# folder is in the way" -- with exit 3, as if the disk were at fault, not the Pipelinefile.

@pytest.mark.parametrize("first, second", [("o/x", "o/x/y.json"), ("o/x/y.json", "o/x"), ("o/x", "o/x/deep/er/y.json")])
def test_a_target_inside_another_tasks_target_is_refused_at_load(project, first, second):
    proj = project(f"tasks:\n  a: {{run: steps:const, target: {first}}}\n  b: {{run: steps:const, target: {second}}}\n",
                   steps=STEPS)
    for command in (["validate"], ["run"]):
        _refused_plainly(proj.cli(*command), "line 3", "tasks.b.target", "lies in")
    assert not proj.exists("o")


def test_mapped_targets_that_nest_are_refused_before_any_runs(project):
    proj = project("params: {xs: [a]}\n"
                   "tasks:\n  m: {run: steps:const, foreach: '{params.xs}', target: 'o/{item}'}\n", steps=STEPS)
    _refused_plainly(proj.cli("run", "-p", "xs=[x, x/y]"), "lies in")
    assert not proj.exists("o")
    assert proj.cli("run", "-p", "xs=[x, xy, x.y]").code == 0  # a shared prefix is not a folder


# -- 11. a NUL byte in an argument (the in-process CLI: a command line cannot hold one) ----------
# A path option (-f, --params-file, --report, report -o) handed it to os.stat: ValueError,
# an internal error. Every argument is vetted in one place (UTF-8 only); NUL joins it there.

@pytest.mark.parametrize("argv", [["run", "--params-file", "x\0"], ["run", "--report", "a\0b"], ["run", "-f", "a\0"],
                                  ["validate", "-f", "a\0"], ["report", "-o", "a\0"], ["cache", "clear", "x\0"]])
def test_an_argument_holding_a_nul_byte_is_a_usage_error(project, monkeypatch, argv):
    proj = project("tasks:\n  a: {run: steps:const, target: o/a.json}\n", steps=STEPS)
    monkeypatch.chdir(proj.root)
    out, err = io.StringIO(), io.StringIO()
    result = Result(invoke(argv, out, err), out.getvalue(), err.getvalue())
    _refused_plainly(result, "NUL byte")


# -- 9. credentials written into a bucket URL or a scheduler address -------------------------
# `s3://KEY:SECRET@bucket/x` loaded fine; every check of a target then asked S3 for the bucket
# "KEY:SECRET@bucket" (exit 3, "cannot tell whether ... exists", "Invalid bucket name") -- no
# bucket service takes credentials in its URL. `tcp://user:password@host:8786` was "names no
# host", though it names one. Each is refused at load, saying where credentials go, masked.

@pytest.mark.parametrize("url", ["s3://AKIAIOSFODNN7EXAMPLE:wJalrXUtnFEMIK7MDENGbPxRfiCY@bucket/x",
                                 "gs://svc:Sup3rSecret@bucket", "gcs://Sup3rSecret@bucket/x", "az://acct:Sup3rSecret@box/x"])
@pytest.mark.parametrize("where", ["defaults", "results", "task"])
def test_credentials_in_a_bucket_url_are_refused_at_load(project, url, where):
    task = "a: {run: steps:const, target: o/a.json%s}" % (", result: lake" if where == "results" else
                                                          f", result: '{url}'" if where == "task" else "")
    head = {"defaults": f"defaults: {{result: '{url}'}}\n", "results": f"results: {{lake: {{url: '{url}'}}}}\n",
            "task": ""}[where]
    proj = project(f"{head}tasks:\n  {task}\n", steps=STEPS)
    for command in (["validate"], ["status"], ["run"]):
        result = proj.cli(*command)
        _refused_plainly(result, "line 1" if where != "task" else "line 2", "credentials", "options")
        assert "Sup3rSecret" not in result.text and "wJalrXUtnFEMI" not in result.text, result.text


@pytest.mark.parametrize("url", ["sftp://deploy@host/data", "https://user@host/data", "ftp://anonymous@host/x"])
def test_a_user_name_in_a_host_url_is_not_refused_as_credentials(project, url):
    proj = project(f"defaults: {{result: '{url}'}}\ntasks:\n  a: {{run: steps:const, target: o/a.json}}\n", steps=STEPS)
    assert "credentials" not in proj.cli("validate").text


def test_user_info_in_a_scheduler_address_is_refused_as_such(project, monkeypatch):
    proj = project("tasks:\n  a: {run: steps:const, checkpoint: false}\n", steps=STEPS)
    result = proj.cli("run", "--scheduler", "tcp://admin:Sup3rSecret@127.0.0.1:8786")
    _refused_plainly(result, "--scheduler", "user", "tls://")
    assert "names no host" not in result.err and "Sup3rSecret" not in result.text, result.text


# -- 10. an unset ${VAR} in a result's storage options ----------------------------------------
# The error said "storage options.secret: storage options.secret uses ${NOPE}" -- which file,
# which of its results? It names both now (the value is read when the storage is first used).

def test_an_unset_variable_in_storage_options_names_the_file_and_the_result(project, monkeypatch):
    monkeypatch.delenv("NOPE_UNSET_VAR", raising=False)
    proj = project("results:\n  lake: {url: 's3://bucket/x', options: {key: k, secret: '${NOPE_UNSET_VAR}'}}\n"
                   "defaults: {result: lake}\ntasks:\n  a: {run: steps:const, target: a.json}\n", steps=STEPS)
    for command in (["run"], ["status"]):
        result = proj.cli(*command)
        _refused_plainly(result, "Pipelinefile.yaml", "results.lake.options.secret", "${NOPE_UNSET_VAR}", "not set")
