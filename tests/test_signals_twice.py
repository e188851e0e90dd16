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

from tests.test_signals import _start, _wait_for

SLOW = (
    "tasks:\n"
    "  slow:\n"
    "    shell: \"echo started > started; sleep 60; echo late > {output}\"\n"
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
        time.sleep(0.3)  # the first is handled: the clean-up waits for the store
        assert run.poll() is None, "the clean-up did not wait for the store"
        run.send_signal(second)
        out, err = run.communicate(timeout=30)
    finally:
        store.execute("ROLLBACK")
        store.close()
    assert run.returncode == 128 + first, (run.returncode, out, err)
    assert "Traceback" not in err, err
    assert not (tmp_path / "out" / "slow.txt").exists()
