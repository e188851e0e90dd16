"""Targets that know when they are stale, and say why (issue 12, DESIGN.md "Staleness").

Every scenario is real files and real edits between real processes: each command is a
fresh ``python -m targetrun``, so nothing is remembered in memory between a run and the
status that follows an edit.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest


TASKS = '''
import json, os
from helpers import normalize


def _log(name):
    with open(os.path.join(os.path.dirname(__file__), "calls.log"), "a") as f:
        f.write(name + "\\n")


def fetch(city):
    """Fetch the raw numbers."""
    _log("fetch")
    return {"city": city, "values": [3, 1, 2]}


def clean(fetch):
    _log("clean")
    return normalize(fetch)


def report(clean, city):
    _log("report")
    return {"city": city, "n": len(clean["values"])}
'''

HELPERS = '''
SCALE = 10


def scale(x):
    return x * SCALE


def normalize(d):
    return {"city": d["city"], "values": sorted(scale(v) for v in d["values"])}
'''

PIPELINE = '''
name: demo
params:
  city: berlin
tasks:
  fetch:
    run: tasks:fetch
    args: {{city: "{{params.city}}"}}
    target: out/fetch.json
    {fetch_extra}
  clean:
    run: tasks:clean
    needs: [fetch]
    target: out/clean.json
    {clean_extra}
  report:
    run: tasks:report
    needs: [clean]
    args: {{city: "{{params.city}}"}}
    target: out/report.json
    {report_extra}
'''


class Folder:
    """A project folder driven by real ``python -m targetrun`` processes."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def write(self, name: str, text: str) -> None:
        path = self.root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip("\n"))

    def edit(self, name: str, old: str, new: str) -> None:
        path = self.root / name
        text = path.read_text()
        assert old in text, f"{old!r} not in {name}"
        path.write_text(text.replace(old, new))

    def tr(self, *args: str) -> subprocess.CompletedProcess[str]:
        env = dict(os.environ, NO_COLOR="1")
        return subprocess.run([sys.executable, "-m", "targetrun", *args], cwd=self.root, env=env,
                              capture_output=True, text=True, timeout=120)

    def ok(self, *args: str) -> str:
        done = self.tr(*args)
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout

    def status(self, *args: str) -> dict[str, dict[str, object]]:
        doc = json.loads(self.ok("status", "--json", *args))
        return {row["task"]: row for row in doc["tasks"]}

    def calls(self) -> list[str]:
        path = self.root / "calls.log"
        return path.read_text().split() if path.exists() else []

    def reset_calls(self) -> None:
        (self.root / "calls.log").unlink(missing_ok=True)


def make(tmp_path: Path, *, fetch: str = "", clean: str = "", report: str = "", head: str = "",
         name: str = "proj") -> Folder:
    folder = Folder(tmp_path / name)
    folder.root.mkdir(parents=True)
    folder.write("Pipelinefile.yaml", head + PIPELINE.format(fetch_extra=fetch, clean_extra=clean, report_extra=report))
    folder.write("tasks.py", TASKS)
    folder.write("helpers.py", HELPERS)
    return folder


def stale_of(row: dict[str, object]) -> list[dict[str, str]]:
    stale = row["stale"]
    assert isinstance(stale, list)
    return stale


# -- code ------------------------------------------------------------------------------


def test_a_helper_two_calls_deep_edited_makes_its_caller_stale_and_names_it(tmp_path):
    folder = make(tmp_path)
    folder.ok("run")
    assert all(stale_of(r) == [] for r in folder.status().values())
    folder.edit("helpers.py", "return x * SCALE", "return x * SCALE + 1")  # clean -> normalize -> scale
    rows = folder.status()
    assert stale_of(rows["clean"]) == [{"what": "code", "detail": "helpers.py: helper scale"}]
    assert stale_of(rows["fetch"]) == [] and stale_of(rows["report"]) == []
    text = folder.ok("status")
    assert "not needed (target exists) (stale: code changed — helpers.py: helper scale)" in text
    # a module-level constant the helper reads counts too
    folder.edit("helpers.py", "SCALE = 10", "SCALE = 100")
    assert "constant SCALE" in stale_of(folder.status()["clean"])[0]["detail"]


def test_comments_docstrings_and_formatting_do_not_make_anything_stale(tmp_path):
    folder = make(tmp_path, clean="cache_validator: [code]")
    folder.ok("run")
    folder.edit("tasks.py", '"""Fetch the raw numbers."""', '"""Fetch the raw numbers (docs rewritten)."""\n    # a comment')
    folder.edit("helpers.py", "return x * SCALE", "return (x *   SCALE)  # same thing")
    folder.edit("helpers.py", "def normalize(d):\n", "def normalize(d):\n    '''Now documented.'''\n\n")
    rows = folder.status()
    assert [stale_of(r) for r in rows.values()] == [[], [], []]
    folder.reset_calls()
    out = folder.ok("run", "--rebuild-stale")
    assert folder.calls() == [], out


def test_a_shell_task_is_stale_when_its_command_changes_and_version_replaces_the_code(tmp_path):
    folder = Folder(tmp_path / "sh")
    folder.root.mkdir()
    folder.write("Pipelinefile.yaml", '''
        name: sh
        tasks:
          words:
            shell: "echo one two > {output}"
            target: out/words.txt
          counted:
            run: tasks:fetch
            args: {city: x}
            version: "1"
            target: out/counted.json
    ''')
    folder.write("tasks.py", TASKS)
    folder.write("helpers.py", HELPERS)
    folder.ok("run")
    folder.edit("Pipelinefile.yaml", "echo one two", "echo one two three")
    folder.edit("tasks.py", '"values": [3, 1, 2]', '"values": [3, 1, 2, 4]')  # hidden by version: "1"
    rows = folder.status()
    assert stale_of(rows["words"]) == [{"what": "code", "detail": "command"}]
    assert stale_of(rows["counted"]) == []
    folder.edit("Pipelinefile.yaml", 'version: "1"', 'version: "2"')
    assert stale_of(folder.status()["counted"]) == [{"what": "code", "detail": "version"}]


# -- early cutoff ----------------------------------------------------------------------


def test_an_upstream_rewritten_into_the_same_bytes_reruns_and_its_dependents_do_not(tmp_path):
    folder = make(tmp_path, fetch="cache_validator: [code]", clean="cache_validator: [all_inputs]",
                  report="cache_validator: [all_inputs]")
    folder.ok("run")
    folder.reset_calls()
    folder.edit("tasks.py", '"values": [3, 1, 2]', '"values": [3, 2 - 1, 2]')  # same value, other code
    assert "will run: code changed (tasks.py: fetch)" in folder.ok("status")
    assert "code changed (tasks.py: fetch)" in folder.ok("run", "--dry-run")
    out = folder.ok("run")
    assert folder.calls() == ["fetch"], out
    assert "found when about to run it" in out
    # an upstream rewritten into *other* bytes does make the dependents run
    folder.reset_calls()
    folder.edit("tasks.py", '"values": [3, 2 - 1, 2]', '"values": [3, 1, 2, 5]')
    folder.ok("run")
    assert folder.calls() == ["fetch", "clean", "report"]


def test_rebuild_stale_rebuilds_the_stale_upstream_and_stops_where_the_bytes_match(tmp_path):
    folder = make(tmp_path)
    folder.ok("run")
    folder.reset_calls()
    folder.edit("tasks.py", '"values": [3, 1, 2]', '"values": [3, 1, 1 + 1]')
    out = folder.ok("run", "--rebuild-stale")
    assert folder.calls() == ["fetch"], out


# -- deps ------------------------------------------------------------------------------


def test_a_deps_file_touched_is_not_stale_and_edited_is(tmp_path):
    folder = make(tmp_path, fetch="deps: [data/raw.csv, \"conf/*.ini\"]\n    cache_validator: [deps]")
    folder.write("data/raw.csv", "a,b\n1,2\n")
    folder.write("conf/x.ini", "[x]\n")
    folder.ok("run")
    folder.reset_calls()
    later = time.time() + 100
    os.utime(folder.root / "data/raw.csv", (later, later))  # mtime only: a fresh clone, a touch
    assert stale_of(folder.status()["fetch"]) == []
    folder.ok("run", "fetch")
    assert folder.calls() == []
    folder.write("data/raw.csv", "a,b\n1,3\n")
    assert stale_of(folder.status()["fetch"]) == [{"what": "deps", "detail": "dep data/raw.csv changed"}]
    assert "will run: deps changed (dep data/raw.csv changed)" in folder.ok("status", "fetch")
    assert "deps changed (dep data/raw.csv changed)" in folder.ok("run", "fetch", "--dry-run")
    folder.write("conf/y.ini", "[y]\n")  # a new file matching the glob
    assert stale_of(folder.status()["fetch"]) == [{"what": "deps", "detail": "new dep conf/y.ini, dep data/raw.csv changed"}]
    folder.ok("run", "fetch")
    assert folder.calls() == ["fetch"]
    assert stale_of(folder.status()["fetch"]) == []


# -- parameters ------------------------------------------------------------------------


def test_another_value_of_a_parameter_the_target_does_not_mention_is_stale(tmp_path):
    folder = make(tmp_path)
    folder.ok("run")
    rows = folder.status("-p", "city=paris")
    assert {"what": "parameters", "detail": "city: berlin → paris"} in stale_of(rows["report"])
    assert "(made with city=berlin)" in folder.ok("status", "-p", "city=paris")  # the text says it so
    folder.reset_calls()
    folder.ok("run", "-p", "city=paris")  # no validator: existence decides, as before
    assert folder.calls() == []
    out = folder.ok("run", "-p", "city=paris", "--rebuild-stale", "--dry-run", "--json")
    fetch = next(t for t in json.loads(out)["tasks"] if t["task"] == "fetch")
    assert fetch["decision"] == "will run: parameters changed (city: berlin → paris)"
    assert fetch["stale"] == [{"what": "parameters", "detail": "city: berlin → paris"}]
    folder.ok("run", "-p", "city=paris", "--rebuild-stale")
    assert folder.calls() == ["fetch", "clean", "report"]
    assert json.loads((folder.root / "out/report.json").read_text())["city"] == "paris"


# -- no validator: run unchanged, status reports, --rebuild-stale rebuilds ---------------


def test_without_a_validator_run_is_unchanged_status_reports_and_rebuild_stale_rebuilds(tmp_path):
    folder = make(tmp_path)
    folder.ok("run")
    folder.reset_calls()
    folder.edit("tasks.py", "return {\"city\": city, \"n\": len(clean[\"values\"])}",
                "return {\"city\": city, \"n\": len(clean[\"values\"]), \"v\": 2}")
    assert folder.ok("run") and folder.calls() == []  # existence-based, as before
    rows = folder.status()
    assert stale_of(rows["report"]) == [{"what": "code", "detail": "tasks.py: report"}]
    assert rows["report"]["action"] == "skip"
    assert "target exists (stale: code changed — tasks.py: report)" in folder.ok("status")
    assert folder.tr("status", "--check").returncode == 0  # stale is not "would run" without a validator
    folder.ok("run", "--rebuild-stale")
    assert folder.calls() == ["report"]
    assert stale_of(folder.status()["report"]) == []


def test_an_upstream_rebuilt_into_other_bytes_makes_its_dependent_stale_by_input(tmp_path):
    folder = make(tmp_path)
    folder.ok("run")
    folder.edit("tasks.py", '"values": [3, 1, 2]', '"values": [3, 1, 2, 9]')
    folder.ok("run", "--force", "fetch", "fetch")
    rows = folder.status()
    assert stale_of(rows["clean"]) == [{"what": "inputs", "detail": "fetch"}]
    assert "inputs changed (fetch)" in folder.ok("run", "--rebuild-stale", "--dry-run", "clean")


def test_records_from_before_fingerprints_are_unknown_never_stale(tmp_path):
    import sqlite3

    folder = make(tmp_path, clean="cache_validator: [code, deps, all_inputs]")
    folder.ok("run")
    db = sqlite3.connect(folder.root / ".targetrun/state.db")
    for location, record in db.execute("SELECT location, record FROM checkpoints").fetchall():
        d = json.loads(record)
        for key in ("code", "deps", "dep_stats"):
            d.pop(key, None)
        db.execute("UPDATE checkpoints SET record = ? WHERE location = ?", (json.dumps(d), location))
    db.commit()
    db.close()
    folder.edit("helpers.py", "return x * SCALE", "return x * SCALE + 1")
    folder.reset_calls()
    assert [stale_of(r) for r in folder.status().values()] == [[], [], []]
    folder.ok("run", "--rebuild-stale")
    assert folder.calls() == []


def test_a_project_copied_elsewhere_with_its_state_has_nothing_stale(tmp_path):
    folder = make(tmp_path, fetch="deps: [data/raw.csv]",
                  head="defaults:\n  cache_validator: [code, deps, all_inputs, all_parameters]\n")
    folder.write("data/raw.csv", "a,b\n")
    folder.ok("run")
    copy = Folder(tmp_path / "elsewhere" / "clone")
    shutil.copytree(folder.root, copy.root)
    later = time.time() + 1000
    for path in copy.root.rglob("*"):
        os.utime(path, (later, later))  # a fresh clone: new mtimes everywhere
    assert copy.tr("status", "--check").returncode == 0
    assert [stale_of(r) for r in copy.status().values()] == [[], [], []]
    assert folder.tr("status", "--check").returncode == 0  # and the original is fine too


# -- decisions -------------------------------------------------------------------------


def test_defaults_validator_list_without_cache_for_rebuilds_a_stale_target(tmp_path):
    folder = make(tmp_path, head="defaults:\n  cache_validator: [code, all_parameters]\n")
    folder.ok("run")
    folder.reset_calls()
    folder.edit("helpers.py", "return x * SCALE", "return x * SCALE * 2")
    done = folder.tr("status", "--check")
    assert done.returncode == 1
    assert "will run: code changed (helpers.py: helper scale)" in done.stdout
    folder.ok("run")
    assert folder.calls() == ["clean"]  # report's input is clean's bytes: changed, but it has no all_inputs
    folder.reset_calls()
    folder.ok("run", "-p", "city=rome")
    # fetch and report name city; clean was made from berlin's fetch (its record says so)
    assert sorted(folder.calls()) == ["clean", "fetch", "report"]


def test_a_bad_validator_list_is_a_spec_error(tmp_path):
    folder = make(tmp_path, clean="cache_validator: [code, nope]")
    done = folder.tr("status")
    assert done.returncode == 2
    assert "unknown cache validator 'nope'" in done.stderr and "Traceback" not in done.stderr
    folder = make(tmp_path, clean="deps: [3]", name="p2")
    done = folder.tr("status")
    assert done.returncode == 2 and "deps" in done.stderr and "Traceback" not in done.stderr


# -- S3 and Redis ----------------------------------------------------------------------


def test_staleness_on_s3_targets(tmp_path, s3, s3_server):
    options = json.dumps({"key": "testing", "secret": "testing", "client_kwargs": {"endpoint_url": s3_server.endpoint}})
    head = f"results:\n  lake:\n    url: s3://test-bucket/lake\n    options: {options}\n" \
           "defaults:\n  result: lake\n  cache_validator: [code, all_inputs]\n"
    folder = make(tmp_path, head=head, fetch="deps: [s3://test-bucket/lake/ref/units.csv]")
    s3.pipe("test-bucket/lake/ref/units.csv", b"unit\nC\n")
    folder.ok("run")
    assert s3.exists("test-bucket/lake/out/report.json")
    s3.pipe("test-bucket/lake/ref/units.csv", b"unit\nF\n")  # a remote dep: its ETag changes, then its sha256
    assert stale_of(folder.status()["fetch"]) == [{"what": "deps", "detail": "dep s3://test-bucket/lake/ref/units.csv changed"}]
    s3.pipe("test-bucket/lake/ref/units.csv", b"unit\nC\n")  # the same bytes again: not stale
    assert stale_of(folder.status()["fetch"]) == []
    folder.reset_calls()
    folder.edit("helpers.py", "return x * SCALE", "return x * (SCALE + 0)")  # same bytes out
    assert stale_of(folder.status()["clean"]) == [{"what": "code", "detail": "helpers.py: helper scale"}]
    folder.ok("run")
    assert folder.calls() == ["clean"]  # report's input bytes are the same: early cutoff
    assert all(stale_of(r) == [] for r in folder.status().values())


def test_staleness_with_the_redis_store(tmp_path, redis_url):
    folder = make(tmp_path, head=f"cache: {redis_url}\n")
    folder.ok("run")
    folder.reset_calls()
    folder.edit("helpers.py", "SCALE = 10", "SCALE = 11")
    rows = folder.status()
    assert stale_of(rows["clean"]) == [{"what": "code", "detail": "helpers.py: constant SCALE"}]
    rows = folder.status("-p", "city=oslo")
    assert {"what": "parameters", "detail": "city: berlin → oslo"} in stale_of(rows["report"])
    folder.ok("run", "--rebuild-stale")
    assert folder.calls() == ["clean", "report"]
    assert all(stale_of(r) == [] for r in folder.status().values())


def test_an_installed_library_counts_by_its_version_and_the_standard_library_not_at_all(tmp_path):
    import sqlite3

    folder = make(tmp_path)
    folder.edit("helpers.py", "SCALE = 10", "import json\nimport click\n\nSCALE = 10")
    folder.edit("helpers.py", "return x * SCALE", "return x * SCALE + len(click.style('') + json.dumps(0)) - 1")
    folder.ok("run")
    db = sqlite3.connect(folder.root / ".targetrun/state.db")
    (location, text), = db.execute("SELECT location, record FROM checkpoints WHERE task = 'clean'").fetchall()
    record = json.loads(text)
    assert record["code"]["click"].startswith("lib:") and "json" not in record["code"]
    record_click = record["code"]["click"].partition(":")[2]
    record["code"]["click"] = "lib:0.1"  # as if it had been made with an older click
    db.execute("UPDATE checkpoints SET record = ? WHERE location = ?", (json.dumps(record), location))
    db.commit()
    db.close()
    assert stale_of(folder.status()["clean"]) == [{"what": "code", "detail": f"library click (0.1 → {record_click})"}]


@pytest.mark.parametrize("store", ["sqlite", "redis"])
def test_a_code_validator_alone_rebuilds_what_changed_and_leaves_unknown_records_alone(tmp_path, store, request):
    head = "defaults:\n  cache_validator: [code]\n"
    if store == "redis":
        head = f"cache: {request.getfixturevalue('redis_url')}\n" + head
    folder = make(tmp_path, head=head)
    folder.ok("run")
    if store == "sqlite":  # report's record from before code fingerprints were kept
        import sqlite3

        db = sqlite3.connect(folder.root / ".targetrun/state.db")
        (location, text), = db.execute("SELECT location, record FROM checkpoints WHERE task = 'report'").fetchall()
        record = json.loads(text)
        del record["code"]
        db.execute("UPDATE checkpoints SET record = ? WHERE location = ?", (json.dumps(record), location))
        db.commit()
        db.close()
    folder.reset_calls()
    folder.ok("run")
    assert folder.calls() == []
    folder.edit("helpers.py", "return x * SCALE", "return x * SCALE - 1")
    folder.edit("tasks.py", '"n": len(clean["values"])', '"n": len(clean["values"]) + 0')
    folder.ok("run")
    assert folder.calls() == (["clean"] if store == "sqlite" else ["clean", "report"])
    folder.reset_calls()
    folder.ok("run")
    assert folder.calls() == []
