"""What a Python task's code leaves set in the process does not break the rest of the run.

A Python task runs in targetrun's process (inline: the main thread; threads: a worker
thread; processes: a worker process's main thread), so what it sets for the process stays
set once it returns -- where under make each command's process, and all it set, ends with
the command. ``os.umask(0o777)`` had every later target (the task's own included) written
mode 000; a file size limit lowered (``RLIMIT_FSIZE``) had the state store fail as "disk
I/O error ... move it aside" (exit 3), a lowered open files limit failed the task as it
returned, ``sys.setrecursionlimit(50)`` failed it in targetrun's own code, and an alarm
left pending (``signal.alarm``, ``setitimer``) killed the run by SIGALRM a second later:
exit -14, nothing said, the next task's work lost. These are put back (a pending timer
cancelled) when the task's code returns.

A library a task imported that patched ``os.replace`` (one that renamed nothing) had every
later target left in its staging file, the run saying "ran" and exit 0, nothing made:
targetrun commits with the function it found when it was imported.

And a command a task of ``--executor processes`` left running in the background
(``os.system("server &")``) inherited the worker's pipes to the run (spawn hands them on
inheritable), and held the run's end -- ``targetrun run | cat`` -- as long as it ran.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.clirun import in_process, targetrun, write_project

TASKS = """
import os, resource, signal, sys, time

def umask():
    os.umask(0o777)
    os.system("sleep 30 & echo $! > bg.pid")  # in the background, left running
    return 1

def limits(x):
    resource.setrlimit(resource.RLIMIT_FSIZE, (10, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))
    resource.setrlimit(resource.RLIMIT_NOFILE, (12, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))
    sys.setrecursionlimit(50)
    return x + 1

def alarm(x):
    signal.setitimer(signal.ITIMER_REAL, 0.05)
    os.replace = lambda *args, **kwargs: None  # a library's patch, which renames nothing
    return x + 1

def later(x):
    time.sleep(0.15)  # the alarm's time is past
    return {"x": x, "big": "y" * 5000}
"""

PIPELINE = """
tasks:
  u: {run: "tasks:umask", target: u.json}
  l: {run: "tasks:limits", needs: {x: u}, target: l.json}
  a: {run: "tasks:alarm", needs: {x: l}, target: a.json}
  z: {run: "tasks:later", needs: {x: a}, target: z.json}
"""


@pytest.mark.parametrize("executor", ["inline", "processes"])
def test_what_a_task_set_for_the_process_is_put_back(tmp_path: Path, executor: str) -> None:
    write_project(tmp_path, PIPELINE, **{"tasks.py": TASKS})
    try:
        done = targetrun(tmp_path, "run", "--executor", executor, "-j", "1", timeout=20)  # before: 30 s, processes
    finally:
        with contextlib.suppress(OSError, ValueError):
            os.kill(int((tmp_path / "bg.pid").read_text()), signal.SIGKILL)
    assert done.returncode == 0, (done.returncode, done.stdout + done.stderr)
    assert json.loads((tmp_path / "z.json").read_text())["x"] == 3
    for name in ("u.json", "l.json", "a.json", "z.json", ".targetrun/state.db"):
        mode = stat.S_IMODE((tmp_path / name).stat().st_mode)
        assert mode & 0o600 == 0o600, (name, oct(mode))  # written as the run's umask has it
    again = in_process(tmp_path, "run")  # each recorded as made
    assert again.returncode == 0 and "ran " not in again.stdout, again.stdout + again.stderr



def test_a_task_reading_stdin_gets_its_end_not_the_terminal(tmp_path: Path) -> None:
    """``input()`` in a Python task, or a command it runs that reads (``read x``), with the
    run's stdin a terminal: it waited on the terminal for a line, its prompt in the task's
    captured output, so the run hung with nothing on the screen. A shell task's stdin is
    /dev/null; a Python task's is too now, while the run goes on: end of input at once."""
    import pty

    write_project(tmp_path, 'tasks:\n  a: {run: "tasks:asks", target: a.json}\n  c: {run: "tasks:reads", target: c.json}\n',
                  **{"tasks.py": "import subprocess\n\ndef asks():\n    return input('name? ')\n\ndef reads():\n"
                                 "    return subprocess.run(['sh', '-c', 'read x; echo $?'], capture_output=True, text=True).stdout\n"})
    leader, follower = pty.openpty()
    try:
        run = subprocess.run([sys.executable, "-m", "targetrun", "run", "-k"], cwd=tmp_path, stdin=follower,
                             capture_output=True, text=True, timeout=20)  # before: waited for a line for ever
    finally:
        os.close(leader)
        os.close(follower)
    assert run.returncode == 1 and "EOFError: EOF when reading a line" in run.stdout, run.stdout + run.stderr
    assert json.loads((tmp_path / "c.json").read_text()) == "1\n"  # read's end of input




SESSION_TASKS = """
import os

def leaves(how, args=()):
    try:
        getattr(os, how)(*args)
    except PermissionError as exc:
        return str(exc)
    return "left"

def after(x, y, z):
    return [x, y, z, os.getpid(), os.getsid(0), os.getpgrp()]
"""

SESSION_PIPELINE = """
tasks:
  s: {run: "tasks:leaves", args: {how: setsid}, target: s.json}
  g: {run: "tasks:leaves", args: {how: setpgrp}, target: g.json}
  c: {run: "tasks:leaves", args: {how: closerange, args: [3, 4096]}, target: c.json}
  b: {run: "tasks:after", needs: {x: s, y: g, z: c}, target: b.json}
"""


def test_a_task_cannot_take_the_run_out_of_its_terminals_job(tmp_path: Path) -> None:
    """``os.setsid()`` (or ``os.setpgrp()``) in a task's code, in targetrun's process: the
    whole run left its terminal's session (or foreground group) for good -- Ctrl-C no longer
    reached it, nor did a closed terminal's hangup: it went on, unstoppable but by kill,
    with exit 0. ``os.closerange(3, 4096)`` (as a daemonizing library does) closed the run's
    own files: its state store, its output (nothing more was shown), 13 s and exit 1. Now the
    call raises PermissionError, said; a child may still call it."""
    write_project(tmp_path, SESSION_PIPELINE, **{"tasks.py": SESSION_TASKS})
    done = targetrun(tmp_path, "run")
    assert done.returncode == 0, done.stdout + done.stderr
    setsid, setpgrp, closerange, pid, sid, group = json.loads((tmp_path / "b.json").read_text())
    assert setsid.startswith("[Errno 1] os.setsid() in a task's code would take the whole run out of its terminal's")
    assert setpgrp.startswith("[Errno 1] os.setpgrp() in a task's code")
    assert closerange.startswith("[Errno 1] os.closerange() in a task's code would close targetrun's own files")
    assert sid != pid and group != pid  # still in the session and group it was started in


def test_the_hook_a_dropped_stop_goes_to_is_put_back() -> None:
    """A task that replaced ``sys.unraisablehook`` (a library's quiet one) had the run drop
    a stop that arrived while a finalizer ran: Python hands it to that hook, and the run went
    on as if never stopped (targetrun.stopping delivers it again through its own hook)."""
    from targetrun import callables

    before = sys.unraisablehook
    with callables.user_code():
        sys.unraisablehook = lambda unraisable: None
    assert sys.unraisablehook is before


MASK_TASKS = """
import os, signal, time

def blocks():
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
    return 1

def waits(x):
    open(os.path.join(os.path.dirname(__file__), "waiting"), "w").close()
    time.sleep(60)
    return x
"""


def test_a_run_stops_after_a_task_blocked_the_stop_signals(tmp_path: Path) -> None:
    """``signal.pthread_sigmask(SIG_BLOCK, {SIGINT, SIGTERM})`` in a task's code, inline (the
    run's main thread): Ctrl-C and ``kill`` stayed pending for good -- the run went on, only
    ``kill -9`` ended it. The stop signals are unblocked again when the task's code returns."""
    write_project(tmp_path, 'tasks:\n  deaf: {run: "tasks:blocks", target: deaf.json}\n'
                  '  slow: {run: "tasks:waits", needs: {x: deaf}, target: slow.json}\n', **{"tasks.py": MASK_TASKS})
    run = subprocess.Popen([sys.executable, "-m", "targetrun", "run"], cwd=tmp_path, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)
    try:
        while not (tmp_path / "waiting").exists():
            assert run.poll() is None, run.communicate()
            time.sleep(0.02)
        run.send_signal(signal.SIGTERM)
        out, err = run.communicate(timeout=10)  # before: never, but for kill -9
    finally:
        if run.poll() is None:
            run.kill()
            run.communicate()
    assert run.returncode == 128 + signal.SIGTERM, out + err
    assert (tmp_path / "deaf.json").exists() and not (tmp_path / "slow.json").exists()


def test_a_failed_command_is_failed_after_a_task_ignored_sigchld(tmp_path: Path) -> None:
    """``signal.signal(SIGCHLD, SIG_IGN)`` in a task's code (inline, or in a worker process):
    the kernel then reaps children itself, Python's wait gets no status and takes 0 -- every
    later shell task's command that failed (``exit 3``) was recorded as made, "ran", exit 0,
    its half-written target kept and its dependents run on it. The handler is put back."""
    write_project(tmp_path, 'tasks:\n  a: {run: "tasks:ignores", target: a.json}\n'
                  '  b: {shell: "cat {needs.x} > {output}; exit 3", needs: {x: a}, target: b.txt}\n',
                  **{"tasks.py": "import signal\n\ndef ignores():\n    signal.signal(signal.SIGCHLD, signal.SIG_IGN)\n"
                                 "    return 1\n"})
    done = targetrun(tmp_path, "run")
    assert done.returncode == 1 and "FAILED   b" in done.stdout, done.stdout + done.stderr
    assert not (tmp_path / "b.txt").exists()


def test_an_exit_a_task_left_for_the_end_does_not_change_the_commands_code(tmp_path: Path) -> None:
    """``atexit.register(os._exit, 0)`` in a task's code (a library's "exit quickly" hook):
    at the end of a run whose other task failed it printed a traceback ("call stack is not
    deep enough", from targetrun's own os._exit guard) -- and, that fixed, would have ended
    the command with status 0, its summary unflushed. The command ends with its own code."""
    write_project(tmp_path, 'tasks:\n  a: {run: "tasks:leaves", target: a.json}\n'
                  '  b: {run: "tasks:fails", needs: {x: a}, target: b.json}\n',
                  **{"tasks.py": "import atexit, os\n\ndef leaves():\n    atexit.register(os._exit, 0)\n"
                                 "    atexit.register(lambda: os._exit(0))\n    return 1\n\n"
                                 "def fails(x):\n    raise ValueError('b fails')\n"})
    done = targetrun(tmp_path, "run")
    assert done.returncode == 1 and "1 ran, 1 failed" in done.stdout, done.stdout + done.stderr
    assert "Traceback" not in done.stderr, done.stderr
