"""SIGHUP, SIGQUIT and a closed output, as a terminal, an ssh session and a pipe send them.

SIGHUP (the terminal closed, the ssh session dropped) and SIGQUIT (Ctrl-\\) stop a run
exactly as SIGTERM does -- the running commands are killed with their whole process
group, no target is half-written, no staging file is left, the run is recorded as
interrupted -- and exit 128 + the signal number (129, 131), as a shell reports a process
killed by it. ``nohup`` (SIGHUP ignored when targetrun starts) keeps the run going.

A reader that goes away (``targetrun status | head -1``) ends the command quietly, like
git: no traceback, nothing more said, exit 141 (128 + SIGPIPE); a run cut short that way
is recorded as interrupted, like a stop.

Real ``targetrun`` processes and real signals; the helpers are test_signals.py's.
"""

from __future__ import annotations

import json
import os
import select
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.test_signals import _alive, _cli, _start, _staging_files, _wait_for, assert_invariant

SHELL_WITH_A_CHILD = (
    "tasks:\n"
    "  quick: {shell: \"echo quick > {output}\", target: out/quick.txt}\n"
    "  slow:\n"
    "    shell: \"sleep 60 & echo $! > sleeper.pid; echo started > started; wait; echo late > {output}\"\n"
    "    needs: [quick]\n"
    "    target: out/slow.txt\n"
)


def _history(root: Path) -> list[str]:
    """The runs' statuses, newest first (read from the store: a command each costs ~0.4 s)."""
    db = sqlite3.connect(root / ".targetrun" / "state.db")
    try:
        return [status for status, in db.execute("SELECT status FROM runs ORDER BY started DESC")]
    finally:
        db.close()


def _stop(run: subprocess.Popen[str], signum: int) -> tuple[str, str]:
    began = time.monotonic()
    run.send_signal(signum)
    out, err = run.communicate(timeout=30)
    assert time.monotonic() - began < 5
    assert "Traceback" not in err, err
    return out, err


# A session of its own whose controlling terminal is ``stdin``, then the command.
ON_A_TERMINAL = ("import fcntl, os, sys, termios; fcntl.ioctl(0, termios.TIOCSCTTY, 0); "
                 "os.execv(sys.executable, [sys.executable, '-m', 'targetrun', *sys.argv[1:]])")


def _on_a_terminal(root: Path) -> tuple[subprocess.Popen[str], int]:
    """``targetrun run`` in a terminal of its own (a pseudo-terminal, as ssh gives one),
    and the terminal's other end: closing it is the terminal going away."""
    master, slave = os.openpty()
    try:
        run = subprocess.Popen([sys.executable, "-c", ON_A_TERMINAL, "run", "-f", str(root / "Pipelinefile.yaml")],
                               stdin=slave, stdout=slave, stderr=slave, start_new_session=True, text=True)
    finally:
        os.close(slave)
    return run, master


def _read_what_is_shown(terminal: int) -> bool:
    """Read what the terminal shows so far (a live view that nobody reads would fill the
    terminal's buffer and block). True."""
    while select.select([terminal], [], [], 0)[0]:
        try:
            if not os.read(terminal, 65536):
                break
        except OSError:
            break
    return True


@pytest.mark.parametrize("how", ["terminal closed", "SIGQUIT"])
def test_a_hangup_or_quit_while_a_shell_task_runs_kills_its_process_group(tmp_path, how):
    """The terminal closing (an ssh session dropped): the kernel sends SIGHUP, and from then
    on every write to the terminal fails (EIO); or Ctrl-\\ (SIGQUIT)."""
    (tmp_path / "Pipelinefile.yaml").write_text(SHELL_WITH_A_CHILD)
    if how == "terminal closed":
        run, terminal = _on_a_terminal(tmp_path)
        _wait_for(lambda: _read_what_is_shown(terminal) and (tmp_path / "started").exists())
    else:
        run = _start(tmp_path)
        _wait_for(lambda: (tmp_path / "started").exists())
    sleeper = int((tmp_path / "sleeper.pid").read_text())
    if how == "terminal closed":
        os.close(terminal)
        run.wait(timeout=30)
        assert run.returncode == 129
    else:
        out, err = _stop(run, signal.SIGQUIT)
        assert run.returncode == 131, out + err
        assert "interrupted (SIGQUIT)" in err
    _wait_for(lambda: not _alive(sleeper), timeout=5)  # the command's own child went with it
    assert not (tmp_path / "out" / "slow.txt").exists() and _staging_files(tmp_path) == []
    assert _history(tmp_path) == ["interrupted"]
    assert_invariant(tmp_path, after_rerun=False)
    if how != "terminal closed":
        return  # (the same stop: one resume is enough)
    (tmp_path / "Pipelinefile.yaml").write_text(SHELL_WITH_A_CHILD.replace("sleep 60", "sleep 0"))
    rerun = _cli(tmp_path, "run", "--json")
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    states = {t["task"]: t["state"] for t in json.loads(rerun.stdout)["tasks"]}
    assert states == {"quick": "skipped", "slow": "succeeded"}  # resumed: what was done stays done
    assert (tmp_path / "out" / "slow.txt").read_text() == "late\n"
    assert_invariant(tmp_path, after_rerun=True)


PYTHON_STEPS = '''
import os, time

HERE = os.path.dirname(__file__)

def first():
    return 1

def second(first):
    open(os.path.join(HERE, "second.started"), "w").close()
    time.sleep(float(os.environ.get("SECOND_DELAY", "0")))
    return first + 1

def third(second):
    return second + 1
'''

PYTHON_CHAIN = (
    "tasks:\n"
    "  first: {run: steps:first, target: out/first.pkl}\n"
    "  second: {run: steps:second, needs: [first], target: out/second.pkl}\n"
    "  third: {run: steps:third, needs: [second], target: out/third.pkl}\n"
)


@pytest.mark.parametrize("moment", ["in a python task", "between tasks"])
def test_a_hangup_while_python_tasks_run_is_recorded_and_resumed(tmp_path, moment):
    (tmp_path / "Pipelinefile.yaml").write_text(PYTHON_CHAIN)
    (tmp_path / "steps.py").write_text(PYTHON_STEPS)
    if moment == "between tasks":  # right after the first task's target appears: as the run goes on to the next
        run = _start(tmp_path, env={"SECOND_DELAY": "0"})
        _wait_for(lambda: (tmp_path / "out" / "first.pkl").exists() or run.poll() is not None)
    else:
        run = _start(tmp_path, env={"SECOND_DELAY": "30"})
        _wait_for(lambda: (tmp_path / "second.started").exists())
    out, err = _stop(run, signal.SIGHUP)
    made = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert_invariant(tmp_path, after_rerun=False)
    if run.returncode == 0:  # the whole run was over before the signal
        assert moment == "between tasks" and _history(tmp_path) == ["succeeded"]
    else:
        assert run.returncode == 129, out + err
        # All tasks done, the signal landed after the last commit: before the run recorded its
        # end it is interrupted (as its exit code says), while it recorded it, succeeded. A run
        # with a task left undone is interrupted, always.
        assert _history(tmp_path) in ([["succeeded"], ["interrupted"]] if len(made) == 3 else [["interrupted"]]), made
    if moment == "in a python task":
        assert made == ["first.pkl"]
    kept = {name: (tmp_path / "out" / name).stat().st_mtime_ns for name in made}
    rerun = _cli(tmp_path, "run", "-q")
    assert rerun.returncode == 0 and "--trust" not in rerun.stdout + rerun.stderr, rerun.stdout + rerun.stderr
    assert {name: (tmp_path / "out" / name).stat().st_mtime_ns for name in made} == kept  # resumed, not redone
    assert_invariant(tmp_path, after_rerun=True)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["first.pkl", "second.pkl", "third.pkl"]


def test_nohup_keeps_the_run_going(tmp_path, executor="processes"):
    """SIGHUP ignored when targetrun starts (nohup): a hangup of the whole process group
    (as a terminal sends it) stops neither the run nor its worker processes."""
    (tmp_path / "Pipelinefile.yaml").write_text(
        "tasks:\n  a: {shell: \"echo go > started; sleep 0.5; echo done > {output}\", target: out/a.txt}\n")
    run = subprocess.Popen(["nohup", sys.executable, "-m", "targetrun", "run", "-q", "--executor", executor, "-f",
                            str(tmp_path / "Pipelinefile.yaml")], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           text=True, start_new_session=True)
    _wait_for(lambda: (tmp_path / "started").exists())
    os.killpg(run.pid, signal.SIGHUP)
    out, err = run.communicate(timeout=30)
    assert run.returncode == 0, out + err
    assert (tmp_path / "out" / "a.txt").read_text() == "done\n"


MANY = "tasks:\n" + "".join(f"  t{i}: {{shell: \"echo {i} > {{output}}\", target: out/t{i}.txt}}\n"
                            for i in range(1500))


def _piped_to_head(root: Path, *args: str) -> tuple[int, str]:
    """``targetrun ARGS | head -c 1``: the command's exit code and its stderr."""
    targetrun = subprocess.Popen([sys.executable, "-m", "targetrun", *args, "-f", str(root / "Pipelinefile.yaml")],
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert targetrun.stdout is not None and targetrun.stderr is not None
    head = subprocess.run(["head", "-c", "1"], stdin=targetrun.stdout, capture_output=True, timeout=60)
    targetrun.stdout.close()  # only head holds the pipe's reading end now
    with targetrun.stderr:
        err = targetrun.stderr.read().decode()
    targetrun.wait(timeout=60)
    assert head.stdout, "head read nothing"
    return targetrun.returncode, err


def test_a_reader_that_goes_away_ends_a_listing_quietly(tmp_path):
    """(``status --json`` is one write, of which Python's text stream drops what the pipe
    did not take without an error: it ends quietly too, exit 0.)"""
    (tmp_path / "Pipelinefile.yaml").write_text(MANY)
    assert _piped_to_head(tmp_path, "status") == (141, "")


def test_a_run_whose_reader_goes_away_stops_cleanly_and_resumes(tmp_path):
    """A failure's lines are flushed at once: ``head -c 1`` has read the first one and gone
    when the second comes, while a shell task with a child runs."""
    pipeline = (
        "tasks:\n"
        "  f0: {shell: \"exit 1\", target: out/f0.txt}\n"
        "  f1: {shell: \"sleep 0.5; exit 1\", target: out/f1.txt}\n"
        "  slow: {shell: \"sleep 60 & echo $! > sleeper.pid; wait; echo late > {output}\", target: out/slow.txt}\n")
    (tmp_path / "Pipelinefile.yaml").write_text(pipeline)
    code, err = _piped_to_head(tmp_path, "run", "-j", "2", "--keep-going")
    assert (code, err) == (141, "")
    _wait_for(lambda: not _alive(int((tmp_path / "sleeper.pid").read_text())), timeout=5)
    assert _history(tmp_path) == ["interrupted"]
    assert _staging_files(tmp_path) == [] and not (tmp_path / "out" / "slow.txt").exists()
    (tmp_path / "Pipelinefile.yaml").write_text(pipeline.replace("sleep 60", "sleep 0"))
    rerun = _cli(tmp_path, "run", "slow")
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert (tmp_path / "out" / "slow.txt").read_text() == "late\n"
    assert_invariant(tmp_path, after_rerun=True)


def test_the_exit_codes_of_every_stop_are_documented():
    readme = (Path(__file__).parent.parent / "README.md").read_text()
    from targetrun import cli

    for code, name in ((129, "SIGHUP"), (130, "Ctrl-C"), (131, "SIGQUIT"), (141, "SIGPIPE"), (143, "SIGTERM")):
        assert f"| {code} |" in readme and name in readme, code
        assert f"{code} " in cli.EPILOG and name in cli.EPILOG, code
