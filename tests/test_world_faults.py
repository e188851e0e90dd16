"""The world breaking in the middle of a run, with real processes, mounts and servers.

* the state store's disk fills up while a task runs (a 64 KiB tmpfs holding the store);
* the targets' folder turns read-only while a task runs (a tmpfs remounted ``ro``);
* Redis restarts while a task runs (its data kept, or lost).

After each: exit 3 with a one-paragraph error (no traceback), no target half-written or
visible without a record that vouches for it, no target the next run calls untrusted
or corrupt, and once the fault is cleared a plain re-run skips what exists and finishes.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from tests.conftest import mount

TASKS = '''
import os, subprocess

HERE = os.path.dirname(os.path.abspath(__file__))

def _log(name):
    with open(os.path.join(HERE, "calls.log"), "a") as f:
        f.write(name + "\\n")

def make(name, **upstream):
    _log(name)
    return name + ":" + ",".join(sorted(str(v) for v in upstream.values()))

HOOK = None  # set by an in-process test: called instead of a FAULT file's command

def fault(name, **upstream):
    """Breaks the world as FAULT-<name> says (once: the file is removed), then returns a value."""
    _log(name)
    flag = os.path.join(HERE, "FAULT-" + name)
    if os.path.exists(flag):
        with open(flag) as f:
            command = f.read()
        os.remove(flag)
        if HOOK is not None:
            HOOK()
        else:
            subprocess.run(command, shell=True, check=True, cwd=HERE)
    return name + ":" + ",".join(sorted(str(v) for v in upstream.values()))
'''

PIPELINE = """
cache: {cache}
defaults: {{serializer: json}}
tasks:
  a: {{run: tasks:fault, args: {{name: a}}, target: out/a.json}}
  b: {{run: tasks:fault, args: {{name: b}}, needs: [a], target: out/b.json}}
  c: {{run: tasks:fault, args: {{name: c}}, needs: [b], target: out/c.json}}
"""


def make(tmp_path: Path, cache: str = "state/state.db") -> Path:
    folder = tmp_path / "p"
    for sub in ("out", "state"):
        (folder / sub).mkdir(parents=True)
    (folder / "tasks.py").write_text(TASKS)
    (folder / "Pipelinefile.yaml").write_text(textwrap.dedent(PIPELINE.format(cache=cache)).lstrip())
    return folder


def targetrun(folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([sys.executable, "-m", "targetrun", *args[:1], "-f", str(folder / "Pipelinefile.yaml"),
                             *args[1:]], capture_output=True, text=True, timeout=120)
    assert "Traceback" not in result.stdout + result.stderr, result.stdout + result.stderr
    return result


def counts(folder: Path) -> dict[str, int]:
    found: dict[str, int] = {}
    path = folder / "calls.log"
    for line in path.read_text().split() if path.exists() else ():
        found[line] = found.get(line, 0) + 1
    return found


def outputs(folder: Path) -> dict[str, bytes]:
    """Everything under out/ (a staging file shows up here too)."""
    return {p.name: p.read_bytes() for p in sorted((folder / "out").iterdir())}


def states(result: subprocess.CompletedProcess[str]) -> dict[str, str]:
    return {t["task"]: t["state"] for t in json.loads(result.stdout)["tasks"]}


def error_paragraph(result: subprocess.CompletedProcess[str], says: str) -> None:
    assert result.returncode == 3, result.stdout + result.stderr
    text = result.stdout + result.stderr
    assert any(says in line for line in text.splitlines()), text


def assert_recovers(folder: Path, kept: dict[str, bytes]) -> None:
    """A plain re-run: what exists is not re-run or rewritten, trusted (c reads b's value
    from its checkpoint), and the rest is made."""
    before = counts(folder)
    again = targetrun(folder, "run", "--json")
    assert again.returncode == 0, again.stdout + again.stderr
    done = outputs(folder)
    assert set(done) == {"a.json", "b.json", "c.json"}, done  # and no staging file left
    assert {k: done[k] for k in kept} == kept
    for task in "abc":
        if f"{task}.json" in kept:
            assert counts(folder).get(task) == before.get(task), (task, counts(folder), before)
    assert json.loads(done["c.json"]) == "c:" + json.loads(done["b.json"])
    assert "untrusted" not in again.stdout + again.stderr and "corrupt" not in again.stdout + again.stderr
    last = targetrun(folder, "run", "--json")
    assert last.returncode == 0 and states(last)["c"] == "skipped", last.stdout




MADE_BEFORE = {"a": set(), "b": {"a.json"}, "c": {"a.json", "b.json"}}


@pytest.mark.parametrize("during", "abc")
def test_the_state_stores_disk_fills_up_while_a_task_runs(tmp_path, tmpfs, during):
    folder = make(tmp_path)
    tmpfs(folder / "state", "size=1m")
    (folder / f"FAULT-{during}").write_text("dd if=/dev/zero of=state/filler bs=4k count=1000 2>/dev/null || true")
    result = targetrun(folder, "run")
    error_paragraph(result, "state.db cannot be written: database or disk is full")
    kept = outputs(folder)
    assert set(kept) == MADE_BEFORE[during], kept  # nothing half-written, no staging file, none unrecorded
    (folder / "state" / "filler").unlink()
    assert_recovers(folder, kept)


@pytest.mark.parametrize("during", "abc")
def test_the_targets_folder_turns_read_only_while_a_task_runs(tmp_path, tmpfs, during):
    folder = make(tmp_path)
    tmpfs(folder / "out", "size=1m")
    (folder / f"FAULT-{during}").write_text(f"mount -o remount,ro {folder / 'out'}")
    result = targetrun(folder, "run")
    error_paragraph(result, f"cannot write {folder / 'out' / f'{during}.json'}")
    kept = outputs(folder)
    assert set(kept) == MADE_BEFORE[during], kept
    assert mount("-o", "remount,rw", str(folder / "out"))
    assert_recovers(folder, kept)


# -- Redis restarting -------------------------------------------------------------------


@pytest.fixture
def in_process(tmp_path, redis_url, monkeypatch):
    """The pipeline on the Redis store, run by the CLI in this process (a task's HOOK can
    then restart the test's redis-server)."""
    from targetrun.cli import invoke

    folder = make(tmp_path, cache=redis_url)
    monkeypatch.syspath_prepend(str(folder))
    monkeypatch.delitem(sys.modules, "tasks", raising=False)
    import tasks

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        import io

        out, err = io.StringIO(), io.StringIO()
        code = invoke([args[0], "-f", str(folder / "Pipelinefile.yaml"), *args[1:]], out, err)
        assert "Traceback" not in out.getvalue() + err.getvalue(), out.getvalue() + err.getvalue()
        return subprocess.CompletedProcess(list(args), code, out.getvalue(), err.getvalue())

    yield folder, tasks, run
    monkeypatch.delitem(sys.modules, "tasks", raising=False)


@pytest.mark.parametrize("keeps_data", [True, False])
@pytest.mark.parametrize("during", "bc")
def test_redis_restarts_while_a_task_runs(in_process, redis_server, monkeypatch, keeps_data, during):
    """Redis restarts while b (or c) runs, with its data saved or lost: redis-py reconnects
    and the run finishes. Records the run wrote before the restart are gone when Redis kept
    nothing; the run writes them again at its end, so the pickles it made stay trusted --
    they were refused as "no targetrun run recorded" (exit 2, asking for --trust) when a
    task that needs them ran later."""
    import redis

    folder, tasks, run = in_process
    pipeline = folder / "Pipelinefile.yaml"
    pipeline.write_text(pipeline.read_text().replace("serializer: json", "serializer: pickle").replace(".json", ".pkl"))

    def restart() -> None:
        if keeps_data:  # an RDB snapshot, loaded when it starts again
            client = redis.Redis.from_url(redis_server.url)
            client.save()
            client.close()
        redis_server.stop()
        redis_server.start()
        with contextlib.suppress(FileNotFoundError):  # later restarts (other tests) must start empty
            os.remove(os.path.join(redis_server.folder, "dump.rdb"))

    monkeypatch.setattr(tasks, "HOOK", restart)
    (folder / f"FAULT-{during}").write_text("restart")
    result = run("run", "--json")
    assert result.returncode == 0, result.stdout + result.stderr
    made = outputs(folder)
    assert set(made) == {"a.pkl", "b.pkl", "c.pkl"}, made
    monkeypatch.setattr(tasks, "HOOK", None)

    history = run("history", "--json")
    run_id = json.loads(result.stdout)["tasks"][0]["run_id"]
    assert history.returncode == 0 and run_id in history.stdout, history.stdout
    assert "skipped" not in history.stderr, history.stderr  # no damaged run record
    for rebuilt, reads in (("b", "a"), ("c", "b")):  # each rebuild loads the checkpoint before it
        (folder / "out" / f"{rebuilt}.pkl").unlink()
        again = run("run", rebuilt, "--json")
        assert again.returncode == 0, again.stdout + again.stderr
        assert states(again)[reads] == "skipped" and states(again)[rebuilt] == "succeeded", again.stdout
    assert outputs(folder) == made
    assert counts(folder) == {"a": 1, "b": 2, "c": 2}


# -- kill -9 at any moment, on the Redis store ---------------------------------------------


def test_sigkill_anywhere_with_the_redis_store(tmp_path, redis_url, monkeypatch):
    """tests/test_crashes.py's kills (10 moments spread over the run, where that file takes 20),
    with the state (records, pending writes, locks) in Redis: every target there is vouched for
    by a record, and the next plain run finishes without --trust and without waiting out a lease."""
    from targetrun.store.redis import RedisStore
    from targetrun.store.rooted import RootedStore
    from tests import test_crashes

    monkeypatch.setattr(test_crashes, "PIPELINE", f"cache: {redis_url}\n" + textwrap.dedent(test_crashes.PIPELINE))

    def store_answers(folder: Path, base: str, found: dict[str, bytes]) -> None:
        test_crashes.vouches_for_every_target(RootedStore(RedisStore(redis_url), str(folder), "crash"), base, found)

    monkeypatch.setattr(test_crashes, "store_answers", store_answers)
    started = time.monotonic()
    test_crashes.kill_and_recover(tmp_path, lambda name, _options: str(tmp_path / name / "lake"), kills=10)
    assert time.monotonic() - started < 120


# -- the local temporary folder of an object store's writes fills up ------------------------


@pytest.mark.parametrize("task", ["py", "sh"])
def test_a_full_temporary_folder_under_an_s3_write_is_a_storage_error(tmp_path, tmpfs, s3, s3_server, task):
    """A checkpoint bound for S3 is written to a local temporary file first (TMPDIR). That
    disk filling up was the task's failure (exit 1) with targetrun's own traceback in the
    table, for a Python task's value; now it is exit 3 naming the target and the folder."""
    folder = tmp_path / "p"
    folder.mkdir()
    (folder / "jobs.py").write_text("def big():\n    return 'x' * 300000\n")
    (folder / "Pipelinefile.yaml").write_text(textwrap.dedent(f"""
    results:
      lake: {{url: "s3://test-bucket/t", options: {{client_kwargs: {{endpoint_url: "{s3_server.endpoint}"}}}}}}
    defaults: {{result: lake}}
    tasks:
      py: {{run: jobs:big, target: py.pkl}}
      sh: {{shell: "yes | head -c 300000 > {{output}}", target: sh.txt}}
    """))
    small = tmp_path / "tmp"
    small.mkdir()
    tmpfs(small, "size=64k")

    def run(tmpdir: Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "targetrun", "run", "-f", str(folder / "Pipelinefile.yaml"), task],
                              capture_output=True, text=True, timeout=120, env={**os.environ, "TMPDIR": str(tmpdir)})

    result = run(small)
    text = result.stdout + result.stderr
    assert result.returncode == 3 and "Traceback" not in text, text
    assert f"cannot write s3://test-bucket/t/{task}" in text and "the disk is full" in text and str(small) in text, text
    assert s3.find("test-bucket/t") == [] and os.listdir(small) == []
    again = run(tmp_path)
    assert again.returncode == 0, again.stdout + again.stderr
    assert s3.find("test-bucket/t") == [f"test-bucket/t/{task}.{'pkl' if task == 'py' else 'txt'}"]
