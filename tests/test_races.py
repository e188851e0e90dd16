"""Concurrent runs, crashed lock holders, and --resume, with real processes."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from targetrun.store.sqlite import SqliteStore
from tests.test_trust_review import AT_FUNCTION_LINE

SLOW = '''
import os, time

def _log(name):
    with open(os.path.join(os.path.dirname(__file__), "calls.log"), "a") as f:
        f.write(name + "\\n")

def work(name, wait=0.15, **upstream):
    _log(name)
    time.sleep(wait)
    return name

def hang(name):
    _log(name)
    time.sleep(60)
'''

RACE = """
cache: {cache}
tasks:
  a: {{run: slow:work, args: {{name: a}}, target: out/a.txt}}
  b: {{run: slow:work, args: {{name: b}}, target: out/b.txt}}
  c: {{run: slow:work, needs: [a, b], args: {{name: c}}, target: out/c.txt}}
  d: {{run: slow:work, needs: [c], args: {{name: d}}, cache_for: 1h}}
  e: {{run: slow:work, needs: [c], args: {{name: e}}, target: out/e.txt}}
  f: {{run: slow:work, needs: [d, e], args: {{name: f}}, target: out/f.txt}}
"""


def start(folder: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "targetrun", "run", "--json", "-f", str(folder / "Pipelinefile.yaml"),
                             *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=dict(os.environ, **(env or {})), start_new_session=True)


def calls(folder: Path) -> list[str]:
    log = folder / "calls.log"
    return log.read_text().split() if log.exists() else []


def race_folder(tmp_path: Path, cache: str, lake: str | None = None) -> Path:
    folder = tmp_path / "race"
    folder.mkdir()
    (folder / "slow.py").write_text(SLOW)
    text = textwrap.dedent(RACE.format(cache=cache))
    if lake:
        text = text.replace("tasks:", f"results:\n  lake: {lake}\ndefaults: {{result: lake}}\ntasks:", 1)
    (folder / "Pipelinefile.yaml").write_text(text)
    return folder


@pytest.mark.parametrize("runs, backend", [(2, "sqlite"), (2, "redis"), (4, "sqlite"), (4, "redis+s3")])
def test_runs_started_together_run_every_task_once(tmp_path, runs, backend, request):
    lake = None
    cache = ".targetrun/state.db"
    if backend.startswith("redis"):
        cache = request.getfixturevalue("redis_url")
    if backend.endswith("s3"):
        request.getfixturevalue("s3")
        endpoint = request.getfixturevalue("s3_server").endpoint
        lake = (f"{{url: 's3://test-bucket/race', options: {{key: testing, secret: testing, "
                f"client_kwargs: {{endpoint_url: '{endpoint}'}}}}}}")
    folder = race_folder(tmp_path, cache, lake)
    processes = [start(folder, "-j", "2") for _ in range(runs)]
    outputs = [process.communicate(timeout=120) for process in processes]
    for process, (out, err) in zip(processes, outputs):
        assert process.returncode == 0, err + out
    assert sorted(calls(folder)) == ["a", "b", "c", "d", "e", "f"]  # every body exactly once in total
    states = [{t["task"]: t["state"] for t in json.loads(out)["tasks"]} for out, _ in outputs]
    for task in "abcdef":
        done = sorted(s[task] for s in states if s[task] != "not needed")
        assert done.count("succeeded") == 1 and set(done) <= {"succeeded", "skipped", "cached"}, (task, states)


def test_cache_clear_during_a_run_does_not_corrupt_it(tmp_path):
    folder = race_folder(tmp_path, ".targetrun/state.db")
    run = start(folder, "-j", "2")
    pipeline = str(folder / "Pipelinefile.yaml")
    while run.poll() is None:
        cleared = subprocess.run([sys.executable, "-m", "targetrun", "cache", "clear", "-f", pipeline],
                                 capture_output=True, text=True, timeout=60)
        assert cleared.returncode == 0, cleared.stderr
    out, err = run.communicate(timeout=60)
    assert run.returncode == 0, err
    again = start(folder)
    out, err = again.communicate(timeout=60)
    assert again.returncode == 0, err
    states = {t["task"]: t["state"] for t in json.loads(out)["tasks"]}
    assert states["f"] == "skipped"  # the outputs stand; only d's cache entry may have been cleared


def test_a_lock_held_elsewhere_is_waited_for_until_its_lease_expires(tmp_path):
    folder = race_folder(tmp_path, ".targetrun/state.db")
    store = SqliteStore(str(folder / ".targetrun/state.db"))
    assert store.acquire(f"target:{folder / 'out/a.txt'}", "another-host/1/run", lease=1.5)
    store.close()
    began = time.monotonic()
    run = start(folder, "a")
    out, err = run.communicate(timeout=60)
    assert run.returncode == 0, err
    assert time.monotonic() - began >= 1.4  # it waited for the other machine's lease
    assert calls(folder) == ["a"]


def test_kill_9_while_holding_a_lock_does_not_block_the_next_run(tmp_path):
    folder = tmp_path / "k"
    folder.mkdir()
    (folder / "slow.py").write_text(SLOW)
    (folder / "Pipelinefile.yaml").write_text("tasks:\n  h: {run: slow:hang, args: {name: h}, target: out/h.txt}\n")
    holder = start(folder, env={"TARGETRUN_LOCK_LEASE": "30"})
    deadline = time.monotonic() + 30
    while "h" not in calls(folder):
        assert time.monotonic() < deadline
        time.sleep(0.02)
    os.killpg(holder.pid, signal.SIGKILL)
    holder.communicate(timeout=10)
    (folder / "slow.py").write_text(SLOW.replace("time.sleep(60)", "return 'done'"))
    began = time.monotonic()
    rerun = start(folder)
    out, err = rerun.communicate(timeout=60)
    assert rerun.returncode == 0, err
    assert time.monotonic() - began < 10  # the dead holder's lock was broken, not waited out (30 s)
    assert (folder / "out/h.txt").read_text() == "done"


def test_resume_runs_only_the_failed_task_and_what_follows(tmp_path):
    from tests.conftest import STEPS

    folder = tmp_path / "resume"
    folder.mkdir()
    (folder / "steps.py").write_text(STEPS + textwrap.dedent('''
        def fragile(x, name):
            _log(name)
            if os.path.exists(os.path.join(os.path.dirname(__file__), "broken")):
                raise RuntimeError("broken")
            return x + 1
    '''))
    lines = ["tasks:", "  t1: {run: steps:const, args: {value: 1, name: t1}}"]
    for i in range(2, 11):
        fn = "fragile" if i == 5 else "inc"
        lines.append(f"  t{i}: {{run: steps:{fn}, needs: {{x: t{i - 1}}}, args: {{name: t{i}}}}}")
    (folder / "Pipelinefile.yaml").write_text("\n".join(lines) + "\n")
    (folder / "broken").write_text("")
    first = start(folder)
    out, _ = first.communicate(timeout=60)
    assert first.returncode == 1
    assert calls(folder) == ["t1", "t2", "t3", "t4", "t5"]
    (folder / "broken").unlink()
    resumed = start(folder, "--resume")
    out, err = resumed.communicate(timeout=60)
    assert resumed.returncode == 0, err
    assert calls(folder)[5:] == ["t5", "t6", "t7", "t8", "t9", "t10"]
    states = {t["task"]: t["state"] for t in json.loads(out)["tasks"]}
    # t4's checkpoint from the failed run is reused, so t1..t3 are not even looked at
    assert [states[f"t{i}"] for i in range(1, 11)] == ["not needed"] * 3 + ["skipped"] + ["succeeded"] * 6
    value = subprocess.run([sys.executable, "-m", "targetrun", "show", "t10", "-f", str(folder / "Pipelinefile.yaml")],
                           capture_output=True, text=True, timeout=60)
    assert value.stdout.strip() == "10"


def _fan_folder(tmp_path: Path, n: int, cache: str = ".targetrun/state.db") -> Path:
    """n independent shell tasks, each logging its name and writing its target."""
    folder = tmp_path / "fan"
    folder.mkdir()
    tasks = "".join(f"  t{i}: {{shell: 'echo t{i} >> calls.log; sleep 0.05; echo {i} > {{output}}', "
                    f"target: out/t{i}.txt}}\n" for i in range(n))
    (folder / "Pipelinefile.yaml").write_text(f"cache: {cache}\ntasks:\n{tasks}")
    return folder


@pytest.mark.parametrize("backend", ["sqlite", "redis"])
def test_runs_sharing_many_ready_tasks_run_each_once_and_share_them(tmp_path, backend, request):
    """A run claims a few ready tasks ahead in one write, not all of them: two runs started
    together over 40 independent tasks run every task exactly once, and both do some."""
    cache = request.getfixturevalue("redis_url") if backend == "redis" else ".targetrun/state.db"
    folder = _fan_folder(tmp_path, 40, cache)
    processes = [start(folder, "-j", "2") for _ in range(2)]
    outputs = [process.communicate(timeout=120) for process in processes]
    for process, (out, err) in zip(processes, outputs):
        assert process.returncode == 0, err + out
    assert sorted(calls(folder)) == sorted(f"t{i}" for i in range(40))  # each command exactly once in all
    ran = [sum(t["state"] == "succeeded" for t in json.loads(out)["tasks"]) for out, _ in outputs]
    assert sum(ran) == 40 and min(ran) > 0, ran
    for i in range(40):
        assert (folder / f"out/t{i}.txt").read_text() == f"{i}\n"


def test_a_stop_lets_go_of_every_task_claimed_ahead(tmp_path):
    """SIGINT while a -j 2 run has claimed ready tasks ahead of their start: it exits 130
    and leaves no lock, no pending write and no staging file; every target it made is
    trusted (the next run skips it and runs only the rest)."""
    folder = _fan_folder(tmp_path, 60)
    run = start(folder, "-j", "2")
    deadline = time.monotonic() + 60
    while len(calls(folder)) < 6:
        assert run.poll() is None and time.monotonic() < deadline
        time.sleep(0.01)
    os.killpg(run.pid, signal.SIGINT)
    out, err = run.communicate(timeout=60)
    assert run.returncode == 130, err
    store = folder / ".targetrun/state.db"
    with sqlite3.connect(store) as db:
        assert db.execute("SELECT count(*) FROM locks").fetchone() == (0,)
        # only the attempts in flight (at most 2 per worker) keep theirs, for the next run to clear;
        # the tasks claimed ahead (up to 16) keep none
        assert db.execute("SELECT count(*) FROM pending").fetchone()[0] <= 4
    assert [p.name for p in (folder / "out").iterdir() if not p.name.startswith("t")] == []
    made = {p.name for p in (folder / "out").iterdir()}
    assert 0 < len(made) < 60
    again = start(folder, "-j", "2")
    out, err = again.communicate(timeout=120)
    assert again.returncode == 0, err
    states = {t["task"]: t["state"] for t in json.loads(out)["tasks"]}
    assert {t for t, s in states.items() if s == "skipped"} == {p[:-4] for p in made}
    assert all(s in ("skipped", "succeeded") for s in states.values()), states
    with sqlite3.connect(store) as db:  # (the killed attempts' pending rows stay for recovery's grace)
        assert db.execute("SELECT count(*) FROM locks").fetchone() == (0,)


# Sends this process a real SIGINT once the run loop holds successes whose records wait for
# a few more (Engine._records_now), and prints their names first.
HELD_AT_A_STOP = """
import os, signal, sys

sent = False

def local(frame, event, arg):
    global sent
    if event == "line" and not sent and frame.f_code.co_name == "_loop":
        held = frame.f_locals.get("succeeded")
        if held and "self._worker_freed(scope, progress)" in open(frame.f_code.co_filename).read().splitlines()[frame.f_lineno - 1]:
            sent = True
            print("HELD " + " ".join(name for name, _, _ in held), file=sys.stderr, flush=True)
            os.kill(os.getpid(), signal.SIGINT)
            [None for _ in range(3)]
    return local

def tracer(frame, event, arg):
    return local if frame.f_code.co_name == "_loop" else None

sys.settrace(tracer)
sys.argv = ["targetrun", *sys.argv[1:]]
from targetrun.cli import main
main()
"""


def test_a_stop_while_successes_wait_for_their_records_commits_none_of_them(tmp_path):
    """A -j 2 run of many tiny commands holds a few successes to record them in one write;
    a SIGINT then: exit 130, nothing is committed after the stop -- their targets are not
    made and their staging files are gone -- and the next run makes just them (what the
    stopped run made, it trusts)."""
    folder = _fan_folder(tmp_path, 200)
    (folder / "at.py").write_text(HELD_AT_A_STOP)
    done = subprocess.run([sys.executable, "at.py", "run", "-q", "-j", "2"], cwd=folder, capture_output=True,
                          text=True, timeout=120)
    held = [line.split()[1:] for line in done.stderr.splitlines() if line.startswith("HELD ")]
    assert held and held[0], done.stderr  # the run did hold some (else this tests nothing)
    assert done.returncode == 130, done.stderr
    assert not [p.name for p in (folder / "out").iterdir() if p.name.startswith(".")]
    assert not [name for name in held[0] if (folder / f"out/{name}.txt").exists()]
    made = {p.stem for p in (folder / "out").iterdir()}
    again = start(folder, "-j", "2")
    out, err = again.communicate(timeout=120)
    assert again.returncode == 0, err
    states = {t["task"]: t["state"] for t in json.loads(out)["tasks"]}
    assert {task for task, state in states.items() if state == "skipped"} == made
    assert all(states[name] == "succeeded" for name in held[0])


# Makes the run loop slower than two of _fan_folder's commands, so that both end before it
# looks again and their records are written as one batch however loaded the machine is (on
# time alone, a busy CI machine saw every success come on its own and no batch to stop in).
SLOW_LOOP = """
import time
from targetrun.engine.run import Engine

looked = Engine._wait

def _wait(self, progress):
    time.sleep(0.2)
    return looked(self, progress)

Engine._wait = _wait
"""


@pytest.mark.parametrize("function, line", [
    ("_record_all", "prepared = True"),  # the batch's records prepared, no target moved yet
    ("_record_all", "self._record(scope, progress, m, prepared=prepared)"),  # between two moves of a batch
    ("claim_many", "self._held[task] = name"),  # locks taken ahead, not yet known to be held
    ("claim_many", "taken = self.store.acquire_many("),
])
def test_a_stop_inside_a_batch_leaves_no_staging_file_and_no_lock(tmp_path, function, line):
    """SIGINT at the seams of this run's batched writes: exit 130; no staging file, no
    pending intent without its file, no lock left in the store; every target in place is
    trusted by the next run, which makes only the rest."""
    folder = _fan_folder(tmp_path, 120)
    (folder / "at.py").write_text((SLOW_LOOP if function == "_record_all" else "") + AT_FUNCTION_LINE)
    done = subprocess.run([sys.executable, "at.py", function, line, "run", "-q", "-j", "2"], cwd=folder,
                          capture_output=True, text=True, timeout=120)
    assert "SENT" in done.stderr, done.stderr  # the line ran (else this tests nothing)
    assert done.returncode == 130, done.stderr
    listed = list((folder / "out").iterdir()) if (folder / "out").exists() else []  # (a stop before any write)
    assert not [p.name for p in listed if p.name.startswith(".")]
    with sqlite3.connect(folder / ".targetrun/state.db") as db:
        assert db.execute("SELECT count(*) FROM locks").fetchone() == (0,)
    made = {p.stem for p in listed}
    again = start(folder, "-j", "2")
    out, err = again.communicate(timeout=120)
    assert again.returncode == 0, err
    states = {t["task"]: t["state"] for t in json.loads(out)["tasks"]}
    assert {task for task, state in states.items() if state == "skipped"} == made
