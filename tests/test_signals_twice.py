"""A second stop signal during the clean-up of the first ends the command at once -- with
the *first* signal's exit code: the command was stopped by it, and a CI step or a shell
script reads that code (a SIGTERM from the CI runner, then a Ctrl-C, is still 143).

Real ``targetrun run`` processes and real signals. The clean-up is held open by the test
holding the state store's write lock: the run, stopping, waits for it (a short wait, see
targetrun/stopping.py's STOP_GRACE) -- the second signal arrives in that wait.
"""

from __future__ import annotations

import signal
import sqlite3
import time
from pathlib import Path

import pytest

from tests.test_signals import _alive, _start, _wait_for

SLOW = (
    "tasks:\n"
    "  slow:\n"
    "    shell: \"sleep 60 & echo $! > sleeper.pid; echo started > started; wait; echo late > {output}\"\n"
    "    target: out/slow.txt\n"
)

STOPS = [(signal.SIGTERM, signal.SIGINT), (signal.SIGINT, signal.SIGTERM), (signal.SIGHUP, signal.SIGINT),
         (signal.SIGQUIT, signal.SIGTERM), (signal.SIGINT, signal.SIGINT)]


@pytest.mark.parametrize(("first", "second"), STOPS, ids=lambda s: signal.Signals(s).name)
def test_a_second_signal_during_the_clean_up_keeps_the_first_signals_exit_code(tmp_path: Path, first: int,
                                                                            second: int) -> None:
    (tmp_path / "Pipelinefile.yaml").write_text(SLOW)
    run = _start(tmp_path)
    _wait_for(lambda: (tmp_path / "started").exists())
    store = sqlite3.connect(tmp_path / ".targetrun" / "state.db", isolation_level=None, timeout=30)
    try:
        store.execute("BEGIN IMMEDIATE")  # the run's clean-up waits for this lock
        run.send_signal(first)
        sleeper = int((tmp_path / "sleeper.pid").read_text())
        _wait_for(lambda: not _alive(sleeper), timeout=10)  # the first is handled: its command is killed
        assert run.poll() is None, "the clean-up did not wait for the store"  # it waits for the lock
        run.send_signal(second)
        out, err = run.communicate(timeout=30)
    finally:
        store.execute("ROLLBACK")
        store.close()
    assert run.returncode == 128 + first, (run.returncode, out, err)
    assert "Traceback" not in err, err
    assert not (tmp_path / "out" / "slow.txt").exists()


# -- a closed output noticed in another thread ---------------------------------------------

CHATTY = '''
import os, threading, time

def talk():
    def chatter():  # not a task's thread: what it prints goes to the command's own output
        while not os.path.exists(os.path.join(os.path.dirname(__file__), "started")):  # the slow task runs
            time.sleep(0.01)
        while True:
            print("chatter " * 20, flush=True)
            time.sleep(0.01)
    threading.Thread(target=chatter, daemon=True).start()
    return 1
'''

TALK_AND_WAIT = (
    "tasks:\n"
    "  talk: {run: chatty:talk, target: out/talk.json}\n"
    "  slow:\n"
    "    shell: \"sleep 60 & echo $! > sleeper.pid; echo started > started; wait; echo late > {output}\"\n"
    "    target: out/slow.txt\n"
)


def test_a_closed_output_noticed_in_another_thread_stops_the_run_quietly_with_141(tmp_path: Path) -> None:
    """`targetrun run -j 2 | head -c 1`, where what head reads and what then fails to be
    written comes from a thread that is not the main one: the run stops as when the main
    thread notices it -- at once, exit 141, nothing said, recorded as interrupted, the
    running command killed, no target it did not finish."""
    from tests.test_hangup_and_pipe import _history, _piped_to_head
    from tests.test_signals import _cli, _staging_files, assert_invariant

    (tmp_path / "Pipelinefile.yaml").write_text(TALK_AND_WAIT)
    (tmp_path / "chatty.py").write_text(CHATTY)
    began = time.monotonic()
    code, err = _piped_to_head(tmp_path, "run", "-q", "-j", "2")
    assert (code, err) == (141, ""), err
    assert time.monotonic() - began < 20, "the run went on after its output was closed"
    _wait_for(lambda: not _alive(int((tmp_path / "sleeper.pid").read_text())), timeout=5)
    assert _history(tmp_path) == ["interrupted"]
    assert not (tmp_path / "out" / "slow.txt").exists()
    # every target there is recorded; a staging file of the Python task (its write under way
    # in its worker thread when the stop came, as with any signal) is the next run's to clean
    assert_invariant(tmp_path, after_rerun=False)
    (tmp_path / "Pipelinefile.yaml").write_text(TALK_AND_WAIT.replace("sleep 60", "sleep 0"))
    rerun = _cli(tmp_path, "run", "slow")
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert _staging_files(tmp_path) == []
    assert_invariant(tmp_path, after_rerun=True)


DROPPED_IN_A_FINALIZER = '''
import sys, time
from targetrun import stopping

stopping.install()

class Closing:
    def __del__(self):  # the interpreter drops what a finalizer raises: the stop is delivered again
        stopping.output_closed()

try:
    Closing()
    time.sleep(2)
    sys.exit(0)
except KeyboardInterrupt as exc:
    sys.exit(stopping.exit_code_of(exc))
'''


def test_a_closed_output_stop_dropped_by_a_finalizer_is_delivered_again_as_141() -> None:
    """SIGPIPE itself stays ignored, so the stop cannot be delivered again as that signal is."""
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", DROPPED_IN_A_FINALIZER], capture_output=True, text=True, timeout=30)
    assert done.returncode == 141, (done.returncode, done.stderr)
