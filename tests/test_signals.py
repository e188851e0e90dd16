"""Signals as a terminal and CI send them, and the crash-consistency of write + record.

Real ``targetrun run`` processes, real SIGINT / SIGTERM / SIGKILL, at chosen and at
random moments. After every fault the invariant of issue 9 is checked: every file at a
target path is the complete output of a successful attempt with a matching record (or is
absent), no staging file survives the next run, and the next run never asks for
``--trust`` for the project's own outputs.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from targetrun.store.rooted import Keys

CHAIN_STEPS = '''
import os, time

def first():
    return list(range(100))

def step(prev, n=0):
    open(os.path.join(os.path.dirname(__file__), "alive"), "a").close()  # the run is under way
    time.sleep(float(os.environ.get("STEP_DELAY", "0")))
    return prev[1:] + [prev[0] + n]
'''


def _chain(root: Path, length: int) -> None:
    lines = ["tasks:", "  t0: {run: chain:first, target: out/t0.pkl}"]
    for i in range(1, length):
        lines.append(f"  t{i}: {{run: chain:step, needs: {{prev: t{i - 1}}}, args: {{n: {i}}}, target: out/t{i}.pkl}}")
    (root / "Pipelinefile.yaml").write_text("\n".join(lines) + "\n")
    (root / "chain.py").write_text(CHAIN_STEPS)


def _start(root: Path, *args: str, env: dict[str, str] | None = None, pipes: bool = True) -> subprocess.Popen[str]:
    stream = subprocess.PIPE if pipes else subprocess.DEVNULL
    return subprocess.Popen([sys.executable, "-m", "targetrun", "run", "-q", "-f", str(root / "Pipelinefile.yaml"), *args],
                            env=dict(os.environ, **(env or {})), stdout=stream, stderr=stream,
                            text=True, start_new_session=True)


def _cli(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "targetrun", *args, "-f", str(root / "Pipelinefile.yaml")],
                          capture_output=True, text=True, timeout=120)


def _wait_for(predicate, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def _records(root: Path) -> dict[str, dict[str, object]]:
    db = sqlite3.connect(root / ".targetrun" / "state.db")
    try:
        located = Keys(str(root), "").located  # records inside the project are keyed relative to it
        return {located(loc): json.loads(rec) for loc, rec in db.execute("SELECT location, record FROM checkpoints")}
    finally:
        db.close()


def _staging_files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob(".*.targetrun-*"))


def assert_invariant(root: Path, *, after_rerun: bool) -> None:
    """Every target file has a record whose size and sha256 match its bytes."""
    records = _records(root)
    out = root / "out"
    for path in sorted(out.glob("*")) if out.exists() else []:
        if path.name.startswith("."):
            assert not after_rerun, f"a staging file survived the next run: {path}"
            continue
        record = records.get(str(path))
        assert record is not None, f"{path.name} is at its target without a record"
        data = path.read_bytes()
        assert (len(data), hashlib.sha256(data).hexdigest()) == (record["size"], record["hash"]), path.name


def test_sigterm_stops_a_shell_task_and_its_whole_process_group(tmp_path):
    (tmp_path / "Pipelinefile.yaml").write_text(
        "tasks:\n"
        "  slow:\n"
        "    shell: \"sleep 60 & echo $! > sleeper.pid; echo started > started; wait; echo late > {output}\"\n"
        "    target: out/slow.txt\n"
    )
    run = _start(tmp_path)
    _wait_for(lambda: (tmp_path / "started").exists())
    sleeper = int((tmp_path / "sleeper.pid").read_text())
    began = time.monotonic()
    run.send_signal(signal.SIGTERM)
    out, err = run.communicate(timeout=30)
    assert run.returncode == 143, out + err
    assert time.monotonic() - began < 5
    assert "Traceback" not in err and "interrupted" in err
    _wait_for(lambda: not _alive(sleeper), timeout=5)  # the command's own child went with it
    assert not (tmp_path / "out" / "slow.txt").exists()
    assert _staging_files(tmp_path) == []
    history = json.loads(_cli(tmp_path, "history", "--json").stdout)
    assert [r["status"] for r in history] == ["interrupted"]


@pytest.mark.parametrize("executor", ["threads", "processes"])
@pytest.mark.parametrize("signum, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_stopped_parallel_run_writes_no_target_afterwards(tmp_path, signum, code, executor):
    lines = ["tasks:"]
    for i in range(3):
        lines += [f"  py{i}: {{run: waits:nap, target: out/py{i}.pkl}}",
                  f"  sh{i}: {{shell: \"echo go > started{i}; sleep 5; echo done > {{output}}\", target: out/sh{i}.txt}}"]
    (tmp_path / "Pipelinefile.yaml").write_text("\n".join(lines) + "\n")
    (tmp_path / "waits.py").write_text("import time\n\ndef nap():\n    time.sleep(5)\n    return 'late'\n")
    run = _start(tmp_path, "-j", "3", "--executor", executor)
    _wait_for(lambda: any((tmp_path / f"started{i}").exists() for i in range(3)))
    time.sleep(0.3)
    began = time.monotonic()
    run.send_signal(signum)
    out, err = run.communicate(timeout=30)
    assert run.returncode == code, out + err
    assert time.monotonic() - began < 3.5  # running tasks were not waited for (they had 4.7 s or more to go)
    # the stop's own line and nothing else: no warning of a helper process (multiprocessing's
    # resource tracker, which shares stderr, warned of "leaked semaphore objects")
    assert [line for line in err.splitlines() if line.strip() and not line.startswith("targetrun:")] == [], err
    time.sleep(5.5)  # long enough for any task left running (or queued in a worker) to have written
    written = sorted(p.name for p in (tmp_path / "out").iterdir()) if (tmp_path / "out").exists() else []
    assert written == []  # no target, and not even a staging file: nothing ran on after the stop
    history = json.loads(_cli(tmp_path, "history", "--json").stdout)
    assert history[0]["status"] == "interrupted"


def test_kill_9_shows_as_died_and_the_next_run_cleans_its_staging(tmp_path):
    (tmp_path / "Pipelinefile.yaml").write_text(
        "tasks:\n"
        "  slow:\n"
        "    shell: \"echo partial > {output}; echo $$ > shell.pid; exec sleep 60\"\n"
        "    target: out/slow.txt\n"
    )
    run = _start(tmp_path, pipes=False)  # the orphaned command would hold pipes open
    _wait_for(lambda: (tmp_path / "shell.pid").exists() and _staging_files(tmp_path))
    os.kill(run.pid, signal.SIGKILL)
    run.wait(timeout=10)
    os.kill(int((tmp_path / "shell.pid").read_text()), signal.SIGKILL)  # the orphaned command
    history = json.loads(_cli(tmp_path, "history", "--json").stdout)
    assert history[0]["status"] == "died"
    assert not (tmp_path / "out" / "slow.txt").exists()  # the staged half never became the target
    (tmp_path / "Pipelinefile.yaml").write_text(
        "tasks:\n  slow:\n    shell: \"echo whole > {output}\"\n    target: out/slow.txt\n")
    rerun = _cli(tmp_path, "run")
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert (tmp_path / "out" / "slow.txt").read_text() == "whole\n"
    assert _staging_files(tmp_path) == []
    assert_invariant(tmp_path, after_rerun=True)


def test_interrupted_at_random_moments_never_leaves_untrusted_outputs(tmp_path):
    """SIGINT or SIGTERM at random points of a chain of pickled values; after each, the next
    run must not ask for --trust, and the invariant holds."""
    _chain(tmp_path, 120)
    rng = random.Random(9)
    for round_ in range(12):
        (tmp_path / "alive").unlink(missing_ok=True)
        run = _start(tmp_path, env={"STEP_DELAY": "0.002"})
        # Once tasks run (Python's own start-up is before any of targetrun's code: see
        # test_sigterm_at_any_moment_of_start_up_is_quiet), at a random moment of the run.
        _wait_for(lambda: (tmp_path / "alive").exists() or run.poll() is not None)
        time.sleep(rng.uniform(0.0, 0.6))
        run.send_signal(rng.choice([signal.SIGINT, signal.SIGTERM]))
        out, err = run.communicate(timeout=60)
        assert run.returncode in (0, 130, 143), out + err
        assert "Traceback" not in err, err
        assert_invariant(tmp_path, after_rerun=False)
        if round_ % 4 == 3:  # now and then, a whole run: it completes without --trust
            rerun = _cli(tmp_path, "run", "-q")
            assert rerun.returncode == 0, rerun.stdout + rerun.stderr
            assert "--trust" not in rerun.stdout + rerun.stderr
            assert_invariant(tmp_path, after_rerun=True)
            for i in range(rng.randrange(60, 120), 120):  # give the next rounds work to be stopped in
                (tmp_path / "out" / f"t{i}.pkl").unlink()
    final = _cli(tmp_path, "run", "-q")
    assert final.returncode == 0, final.stdout + final.stderr
    assert_invariant(tmp_path, after_rerun=True)
    assert _cli(tmp_path, "status", "--check").returncode == 0


def test_store_deleted_mid_run_leaves_no_unrecorded_target(tmp_path):
    (tmp_path / "Pipelinefile.yaml").write_text(
        "tasks:\n"
        "  first: {run: wipe:first, target: out/first.pkl}\n"
        "  second: {run: wipe:second, needs: [first], target: out/second.pkl}\n"
    )
    (tmp_path / "wipe.py").write_text(
        "import os, shutil\n\n"
        "def first():\n    return 1\n\n"
        "def second(first):\n"
        "    here = os.path.dirname(__file__)\n"
        "    if not os.path.exists(os.path.join(here, 'wiped')):  # the first time only\n"
        "        open(os.path.join(here, 'wiped'), 'w').close()\n"
        "        shutil.rmtree(os.path.join(here, '.targetrun'))\n"
        "    return first + 1\n")
    result = _cli(tmp_path, "run")
    assert result.returncode == 3, result.stdout + result.stderr
    assert "removed or replaced" in result.stdout + result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "out" / "second.pkl").exists()
    # The records made before the store was deleted went with it; a forced run records anew.
    rerun = _cli(tmp_path, "run", "--force-all")
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert_invariant(tmp_path, after_rerun=True)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/status") as f:
            return "\nState:\tZ" not in f.read()
    except FileNotFoundError:
        return False


def test_a_write_stopped_between_move_and_commit_is_trusted_by_the_next_command(tmp_path):
    """The narrowest window: the staged pickle was moved onto its target, the process died
    before the record committed. The prepared record vouches for it: show, status and run
    read it without --trust."""
    import pickle

    from targetrun.model import Checkpoint
    from targetrun.store.base import PendingWrite, RunRecord, RunStatus
    from targetrun.store.sqlite import SqliteStore

    (tmp_path / "Pipelinefile.yaml").write_text(
        "tasks:\n  made: {run: m:made, target: out/made.pkl}\n  user: {run: m:user, needs: [made], target: out/user.pkl}\n")
    (tmp_path / "m.py").write_text("def made():\n    return 41\n\ndef user(made):\n    return made + 1\n")
    target = tmp_path / "out" / "made.pkl"
    target.parent.mkdir()
    data = pickle.dumps(41)
    target.write_bytes(data)
    store = SqliteStore(str(tmp_path / ".targetrun" / "state.db"))
    store.begin_run(RunRecord("r1", "pipeline", 1.0, RunStatus.INTERRUPTED))
    staging = str(target.parent / ".made.pkl.targetrun-r1-1-ab")
    store.intend_write(PendingWrite("r1", str(target), staging, "local"))
    store.prepare_write(staging, Checkpoint("made", str(target), "pickle", len(data), hashlib.sha256(data).hexdigest(),
                                            "r1", 1.0, 0.0, {}, {}, "local"), None)
    store.close()
    shown = _cli(tmp_path, "show", "made")
    assert shown.returncode == 0 and shown.stdout.strip() == "41", shown.stdout + shown.stderr
    run = _cli(tmp_path, "run", "--json")
    assert run.returncode == 0, run.stdout + run.stderr
    assert (tmp_path / "out" / "user.pkl").exists()
    assert_invariant(tmp_path, after_rerun=True)


def test_sigterm_at_any_moment_of_start_up_is_quiet(tmp_path):
    """From the first millisecond: no traceback, and the code a shell expects (143, or the
    signal itself before Python has started)."""
    (tmp_path / "Pipelinefile.yaml").write_text("tasks:\n  a: {shell: \"echo a > {output}\", target: out/a.txt}\n")
    for delay in (0.0, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.12, 0.2):
        run = subprocess.Popen([sys.executable, "-m", "targetrun", "status", "-f", str(tmp_path / "Pipelinefile.yaml")],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        time.sleep(delay)
        run.send_signal(signal.SIGTERM)
        out, err = run.communicate(timeout=30)
        assert run.returncode in (143, -signal.SIGTERM, 0), (delay, run.returncode, err)
        assert "Traceback" not in err, (delay, err)


# In a worker process (--executor processes) a stop's handler runs in the very thread that
# starts the task's command: landing between the start and the tracking, it ended the
# worker with the command untracked, which wrote its staging file after the run had
# cleaned up (found by stopping a processes run at random moments).
WORKER_STOPPED_WHILE_STARTING = '''
import os, signal, subprocess, sys, time
from targetrun import stopping

stopping.install_in_worker()
with stopping.starting():
    command = subprocess.Popen(["/bin/sh", "-c", "sleep 0.3; echo late > " + sys.argv[1]], start_new_session=True)
    os.kill(os.getpid(), signal.SIGTERM)  # the stop lands before the command is tracked
    [n for n in range(10)]  # (Python code: the handler runs here)
    stopping.track(command)
time.sleep(10)
'''


def test_a_worker_stopped_while_starting_a_command_takes_that_command_with_it(tmp_path):
    late = tmp_path / "late"
    worker = subprocess.run([sys.executable, "-c", WORKER_STOPPED_WHILE_STARTING, str(late)], timeout=30)
    assert worker.returncode == 143
    time.sleep(0.6)  # twice what the command would take
    assert not late.exists()


def _take_the_lock_and_die(queue) -> None:
    queue._wlock.acquire()  # as a worker killed in the middle of putting a start notice
    os._exit(0)


@pytest.mark.parametrize("wait", [False, True])
def test_a_worker_killed_while_it_tells_a_start_does_not_hang_the_runs_end(wait):
    """A worker terminated by a stop while it put a start notice held that queue's lock
    for ever: the run's end, putting the reader's None, hung (a processes run stopped at a
    random moment never exited)."""
    import multiprocessing

    from targetrun.executors.local import ProcessExecutor

    executor = ProcessExecutor(1)
    holder = multiprocessing.get_context("fork").Process(target=_take_the_lock_and_die, args=(executor._starts,))
    holder.start()
    holder.join(30)
    began = time.monotonic()
    executor.shutdown(wait=wait)
    assert time.monotonic() - began < 3
