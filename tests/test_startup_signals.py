"""Ctrl-C (SIGINT) at any moment of start-up: exit 130, no traceback.

Real processes -- the ``targetrun`` console script and ``python -m targetrun`` -- get
SIGINT after a range of small delays, from before the interpreter is up to well into the
run. The outcome allowed depends only on where the signal landed:

* once any code of targetrun has run (the first statements of ``targetrun/_entry.py``):
  exit 130 and no traceback, whatever is being imported or done;
* before that the interpreter is still starting itself (its streams, ``site``, ``.pth``
  files, the search for the ``targetrun`` package) and no package code can run: it dies of
  the signal (return code -2; a shell reports 130, the convention for "killed by SIGINT")
  or reports that its own start-up was interrupted and exits 1 ("Fatal Python error:
  init_import_site", "failed to set __main__.__loader__"), or -- rarely -- loses it
  inside a finalizer, a ``.pth`` file or its check of the console script as a zip archive
  and goes on ("Exception ignored in ...", exit 0).
  In every case no statement of targetrun may show in the output (a frame of its package
  at "line 0" is the interpreter creating the module, before its first statement).

A launcher can close that gap by starting targetrun with SIGINT blocked: the signal then
stays pending and is delivered to targetrun's first statements, which exit 130.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

SCRIPT = Path(sys.executable).parent / "targetrun"
COMMANDS = {"console script": [str(SCRIPT), "run"], "python -m": [sys.executable, "-m", "targetrun", "run"]}
# A frame of targetrun's files at a statement: "line 0" is a module the interpreter is
# creating, before its first statement (the package's __init__ while the signal lands in
# the import machinery) -- none of targetrun's code has run yet.
OUR_FRAME = re.compile(r'File "[^"]*[/\\]targetrun[/\\][^"]*\.py", line (?!0\b)\d+')
DELAYS_MS = list(range(0, 85, 5))
# What CPython prints when a SIGINT lands in its own start-up code, which reports the
# KeyboardInterrupt and goes on (then targetrun runs to the end, unaware of it): a
# finalizer, a .pth file, or the check whether the console script is a zip archive to put
# on sys.path (seen under load: "Failed checking if argv[0] is an import path entry").
INTERPRETER_LOST_IT = ("Exception ignored in", "Remainder of file ignored",
                       "Failed checking if argv[0] is an import path entry")
LATER_MS = [150, 300, 600, 1200, 2000, 2000, 2000, 2000, 2000, 2000]  # a slow start-up still ends in the run


@pytest.fixture
def pipeline(tmp_path: Path) -> Path:
    (tmp_path / "Pipelinefile.yaml").write_text('tasks:\n  slow: {shell: "sleep 5; echo done > {output}", target: a.txt}\n')
    return tmp_path


def start(command: list[str], folder: Path) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TARGETRUN_")}
    return subprocess.Popen(command, cwd=folder, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)


def verdict(code: int, err: str) -> str | None:
    """What is wrong with this outcome of a SIGINT at start-up, or None."""
    if OUR_FRAME.search(err) or "Stopped" in err:
        return f"exit {code} with targetrun's own code in a traceback"
    if code == 130:
        return "a traceback" if "Traceback" in err else None
    if code in (-signal.SIGINT, 1):
        return None  # before targetrun's first statement: the interpreter's own start-up
    if code == 0 and any(lost in err for lost in INTERPRETER_LOST_IT):
        return None  # the interpreter lost the signal in its own start-up (a finalizer, a .pth file)
    return f"exit {code}"


@pytest.mark.skipif(not SCRIPT.exists(), reason="the console script is not installed next to this Python")
@pytest.mark.parametrize("entry", list(COMMANDS))
def test_ctrl_c_at_any_moment_of_start_up_exits_130_without_a_traceback(pipeline, entry):
    outcomes: list[tuple[int, int]] = []
    for delay in DELAYS_MS * 2 + LATER_MS:
        if delay in LATER_MS and sum(code == 130 for _, code in outcomes) >= 6:
            break  # enough signals landed in targetrun (a loaded machine starts slower: wait longer)
        process = start(COMMANDS[entry], pipeline)
        time.sleep(delay / 1000)
        process.send_signal(signal.SIGINT)
        _, err_bytes = process.communicate(timeout=60)
        err = err_bytes.decode(errors="replace")
        problem = verdict(process.returncode, err)
        assert problem is None, f"SIGINT after {delay} ms: {problem}\n{err}"
        if process.returncode == 130:
            assert not (pipeline / "a.txt").exists()  # stopped before the task finished
        (pipeline / "a.txt").unlink(missing_ok=True)
        outcomes.append((delay, process.returncode))
    assert sum(code == 130 for _, code in outcomes) >= 6, outcomes  # the test saw targetrun handle them


@pytest.mark.skipif(not hasattr(signal, "pthread_sigmask"), reason="POSIX signal masks")
@pytest.mark.parametrize("entry", list(COMMANDS))
@pytest.mark.parametrize("signum, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143), (signal.SIGHUP, 129),
                                          (signal.SIGQUIT, 131)])
def test_a_signal_a_launcher_kept_pending_is_handled_by_the_first_statements(pipeline, entry, signum, code):
    """Started with the signal blocked (how a launcher closes the interpreter's own start-up
    gap), sent at once: targetrun receives it as soon as its code runs and exits."""
    if entry == "console script" and not SCRIPT.exists():
        pytest.skip("the console script is not installed next to this Python")
    old = signal.pthread_sigmask(signal.SIG_BLOCK, {signum})
    try:
        process = start(COMMANDS[entry], pipeline)  # the child inherits the blocked signal
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)
    process.send_signal(signum)
    started = time.monotonic()
    out, err = process.communicate(timeout=60)
    assert process.returncode == code, (out, err)
    assert b"Traceback" not in err, err
    assert time.monotonic() - started < 4  # it did not run the 5 s task first
    assert not (pipeline / "a.txt").exists()
