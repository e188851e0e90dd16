"""`status` in the user's terms, `show -p` of tasks without a target, `targetrun gc`, and
run records that stay small -- on real files, through the CLI in process and as a
subprocess, with the SQLite and the Redis state stores."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from targetrun.store.sqlite import load_checkpoint

WEATHER = """
name: weather
params:
  city: berlin
{cache}
tasks:
  fetch:
    run: wtasks:fetch
    args: {{city: "{{params.city}}", day: "{{today}}"}}
    target: out/fetch.json
  plain:
    run: wtasks:plain
    target: out/plain.pkl
  summary:
    run: wtasks:summary
    needs: [fetch]
    args: {{city: "{{params.city}}"}}
  clean:
    run: wtasks:clean
    needs: [fetch]
    target: out/clean.json
"""

WTASKS = '''
def fetch(city, day):
    return {"city": city, "day": day}

def plain():
    return 7

def clean(fetch):
    return fetch["city"]

def summary(fetch, city):
    print(f"summary for {city}")
    return f"{fetch['day']} {city}"
'''


@pytest.fixture(params=["sqlite", "redis"])
def store_line(request):
    if request.param == "sqlite":
        return ""
    return f"cache: {request.getfixturevalue('redis_url')}"


@pytest.fixture
def weather(project, store_line):
    return project(WEATHER.format(cache=store_line), wtasks=WTASKS)


# -- status and show in the user's terms -----------------------------------------------


def test_status_shows_relative_paths_and_what_an_existing_target_was_made_with(weather):
    assert weather.cli("run", "--date", "2026-11-29").code == 0
    asked = weather.cli("status", "-p", "city=paris", "--date", "2026-11-29")
    assert asked.code == 0, asked.text
    rows = {line.split()[0]: line for line in asked.out.splitlines()[1:-1]}
    assert "out/fetch.json" in rows["fetch"] and str(weather.root) not in asked.out
    assert "target exists (made with city=berlin)" in rows["fetch"]
    assert "made" not in rows["plain"]  # it uses no parameter: nothing to say
    assert "out/clean.json" in rows["clean"] and "(made with city=berlin)" in rows["clean"]  # made from fetch's value
    other_day = weather.cli("status", "--date", "2026-11-30")
    fetch_row = next(line for line in other_day.out.splitlines() if line.startswith("fetch"))
    assert "(made for 2026-11-29)" in fetch_row and "city" not in fetch_row  # asked for berlin: only the date differs
    doc = json.loads(weather.cli("status", "-p", "city=paris", "--date", "2026-11-30", "--json").out)
    fetch = next(t for t in doc["tasks"] if t["task"] == "fetch")
    assert fetch["target"] == str(weather.root / "out/fetch.json")  # JSON consumers keep the absolute location
    assert fetch["path"] == "out/fetch.json"
    assert fetch["made_with"] == {"city": "berlin"} and fetch["made_for"] == "2026-11-29"
    assert fetch["state"] == "target exists"
    same = json.loads(weather.cli("status", "--date", "2026-11-29", "--json").out)
    assert all(t["made_with"] is None and t["made_for"] is None for t in same["tasks"])


def test_show_of_a_task_without_target_prints_the_value_made_with_the_parameters_asked_for(weather):
    for city in ("berlin", "paris"):
        assert weather.cli("run", "-p", f"city={city}", "--date", "2026-11-29").code == 0
    assert weather.cli("show", "summary", "--date", "2026-11-29").out.strip() == "2026-11-29 berlin"
    assert weather.cli("show", "summary", "-p", "city=paris", "--date", "2026-11-29").out.strip() == "2026-11-29 paris"
    missing = weather.cli("show", "summary", "-p", "city=rome", "--date", "2026-11-29")
    assert missing.code == 2
    assert "city=rome" in missing.err and "city=paris" in missing.err and "Traceback" not in missing.err


def test_a_checkpoint_record_written_before_made_with_existed_still_loads():
    old = json.dumps({"task": "t", "location": "/w/out/t.json", "serializer": "json", "size": 2, "hash": "ab",
                      "run_id": "r1", "written_at": 1.0, "duration": 0.0, "inputs": {}, "params": {},
                      "storage": "local"})
    record = load_checkpoint(old)
    assert record.made_with == {} and record.made_for is None


# -- targetrun gc ----------------------------------------------------------------------

GC = """
name: keep
{cache}
tasks:
  made:
    run: gtasks:made
    target: out/made.pkl
  loose:
    run: gtasks:loose
  cached:
    run: gtasks:cached
    cache_for: 30d
"""

GTASKS = '''
def made():
    return {"kept": True}

def loose():
    print("loose ran")
    return 1

def cached():
    print("cached ran")
    return 2
'''


def _tree(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def _run_ids(proj) -> list[str]:
    return [run["run_id"] for run in json.loads(proj.cli("history", "--json").out)]


@pytest.fixture
def four_runs(project, store_line):
    proj = project(GC.format(cache=store_line), gtasks=GTASKS)
    for _ in range(4):
        assert proj.cli("run").code == 0
    return proj


def test_gc_dry_run_removes_nothing(four_runs):
    before = _tree(four_runs.root)
    runs = _run_ids(four_runs)
    result = four_runs.cli("gc", "-f", str(four_runs.file), "--keep-runs", "1", "--dry-run")
    assert result.code == 0, result.text
    assert result.out.startswith("kept ") and "would remove 3 run records, 3 log folders, 3 values" in result.out
    assert _tree(four_runs.root) == before and _run_ids(four_runs) == runs


def test_gc_keeps_the_last_runs_and_what_targets_and_cache_entries_use(four_runs):
    root = four_runs.root
    first, *older = reversed(_run_ids(four_runs))  # oldest first: the first run made `cached`'s value
    newest = _run_ids(four_runs)[:2]
    result = four_runs.cli("gc", "-f", str(four_runs.file), "--keep-runs", "2", "--json")
    assert result.code == 0, result.text
    doc = json.loads(result.out)
    assert sorted(doc["runs"]) == sorted({first, *older} - set(newest))
    assert _run_ids(four_runs) == newest
    results, logs = root / ".targetrun/results", root / ".targetrun/logs"
    assert sorted(p.name for p in logs.iterdir()) == sorted(newest)
    # the first run's folder stays, holding only the value its cache entry points to
    assert sorted(p.name for p in results.iterdir()) == sorted([first, *newest])
    assert [p.name for p in (results / first).iterdir()] == ["cached.pkl"]
    assert doc["kept"] == [{"location": f".targetrun/results/{first}/cached.pkl", "why": "a cache entry points to it"}]
    assert (root / "out/made.pkl").exists()
    assert four_runs.cli("show", "made").out.strip() == json.dumps({"kept": True}, indent=2)  # its record stays
    status = four_runs.cli("status", "--json")
    rows = {t["task"]: t for t in json.loads(status.out)["tasks"]}
    assert rows["made"]["last_run"] is not None  # each task's latest record outlives its run
    assert rows["cached"]["reason"] == "cache hit"
    again = four_runs.cli("run", "--json")
    states = {t["task"]: t["state"] for t in json.loads(again.out)["tasks"]}
    assert states == {"made": "skipped", "loose": "succeeded", "cached": "cached"}, again.out
    everything = four_runs.cli("gc", "-f", str(four_runs.file), "--keep-runs", "0")
    assert everything.code == 0 and _run_ids(four_runs) == []
    assert [p.name for p in results.iterdir()] == [first] and not any(logs.iterdir())
    assert (results / first / "cached.pkl").exists() and (root / "out/made.pkl").exists()
    states = {t["task"]: t["state"] for t in json.loads(four_runs.cli("run", "--json").out)["tasks"]}
    assert states["cached"] == "cached" and states["made"] == "skipped"


def test_gc_by_age_removes_unknown_old_folders_and_stale_spec_caches_but_never_follows_a_symlink(project, tmp_path):
    proj = project(GC.format(cache=""), gtasks=GTASKS)
    assert proj.cli("run").code == 0
    old_spec = {p.name for p in (proj.root / ".targetrun/spec").iterdir()}
    proj.write("Pipelinefile.yaml", GC.format(cache="") + "  extra: {run: gtasks:loose}\n")
    assert proj.cli("run").code == 0
    current = {p.name for p in (proj.root / ".targetrun/spec").iterdir()} - old_spec
    assert len(old_spec) == 1 and len(current) == 1
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "precious.txt").write_text("mine")
    logs = proj.root / ".targetrun/logs"
    (logs / "20200101T000000-dead00").mkdir()  # a run this store has no record of
    (logs / "20200101T000000-dead00" / "t.log").write_text("old")
    (logs / "20200101T000000-link00").symlink_to(outside, target_is_directory=True)
    for name in ("20200101T000000-dead00", "20200101T000000-link00"):
        os.utime(logs / name, (time.time() - 10 * 86400,) * 2, follow_symlinks=False)
    runs = _run_ids(proj)
    result = subprocess.run([sys.executable, "-m", "targetrun", "gc", "-f", str(proj.file), "--older-than", "2d"],
                            capture_output=True, text=True, cwd=proj.root)
    assert result.returncode == 0, result.stderr
    assert "0 run records, 2 log folders" in result.stdout and "1 stale spec cache" in result.stdout
    assert _run_ids(proj) == runs  # both runs are younger than two days
    assert sorted(p.name for p in logs.iterdir()) == sorted(runs)
    assert (outside / "precious.txt").read_text() == "mine"  # the link went, not what it points to
    assert {p.name for p in (proj.root / ".targetrun/spec").iterdir()} == current


def test_gc_refuses_a_bad_duration(project):
    proj = project(GC.format(cache=""), gtasks=GTASKS)
    result = proj.cli("gc", "-f", str(proj.file), "--older-than", "soon")
    assert result.code == 2 and "--older-than" in result.err and "Traceback" not in result.err


# -- run records stay small ------------------------------------------------------------


def test_a_no_op_run_of_many_tasks_stores_a_small_run_record(project):
    tasks = "".join(f"  a_task_with_a_longish_name_{i:04d}: {{run: gtasks:loose, target: out/{i}.json}}\n"
                    for i in range(400))
    proj = project("name: many\ntasks:\n" + tasks, gtasks=GTASKS)
    assert proj.cli("run", "-q").code == 0

    def stored() -> int:
        with sqlite3.connect(proj.root / ".targetrun/state.db") as db:
            runs = db.execute("SELECT sum(length(run_id) + length(pipeline) + length(requested) + length(counts) "
                              "+ length(owner) + 40) FROM runs").fetchone()[0]
            tasks = db.execute("SELECT count(*) FROM task_runs").fetchone()[0]
        return int(runs) + 100 * tasks

    before = stored()
    assert proj.cli("run", "-q").code == 0
    assert stored() - before < 300  # was 15 KB: the names of the 400 sinks, in every run record
    assert proj.cli("run", "-q", "a_task_with_a_longish_name_0001").code == 0
    history = json.loads(proj.cli("history", "--json").out)
    assert [run["requested"] for run in history] == [["a_task_with_a_longish_name_0001"], [], []]


def test_a_parameter_that_looks_like_a_credential_is_recorded_and_shown_only_as_a_digest(project):
    proj = project("""
        name: creds
        params:
          api_token: none
        tasks:
          fetch:
            run: wtasks:fetch
            args: {city: "{params.api_token}", day: x}
            target: out/fetch.json
        """, wtasks=WTASKS)
    assert proj.cli("run", "-p", "api_token=first-Secret-value").code == 0
    status = proj.cli("status", "-p", "api_token=second-Secret-value")
    assert "made with api_token=*** (" in status.out
    assert "Secret-value" not in status.text
    stored = b"".join(p.read_bytes() for p in (proj.root / ".targetrun").glob("state.db*"))
    assert b"first-Secret-value" not in stored


def test_gc_removes_the_values_of_pruned_runs_in_a_remote_result_location(project, s3):
    proj = project("""
        name: remote
        defaults:
          result: s3://test-bucket/lake
        tasks:
          loose:
            run: gtasks:loose
          kept:
            run: gtasks:made
            target: out/kept.json
        """, gtasks=GTASKS)
    for _ in range(3):
        assert proj.cli("run").code == 0
    newest = _run_ids(proj)[0]

    def folders() -> list[str]:
        return sorted(p.rsplit("/", 1)[1] for p in s3.ls("test-bucket/lake/.targetrun/results", refresh=True))

    assert len(folders()) == 3
    result = proj.cli("gc", "-f", str(proj.file), "--keep-runs", "1")
    assert result.code == 0 and "2 values" in result.out, result.text
    assert folders() == [newest] and s3.exists("test-bucket/lake/out/kept.json")
