"""A Ctrl-C that arrives while a finalizer (``__del__``) or a weakref callback runs is not
lost: the interpreter cannot raise out of those and drops the exception ("Exception
ignored in ..."), so targetrun delivers the signal again to the code that runs next. The
run stops with exit 130, promptly, and without that message."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

TASKS = '''
import time

SLOW = [True]


class Finalized:
    def __del__(self):
        if SLOW and SLOW.pop():  # the first one only: the stop arrives in here
            open("started", "w").close()
            end = time.monotonic() + 3
            while time.monotonic() < end:
                pass


def spin():
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        Finalized()  # finalized at once
    return "finished"
'''


def test_a_stop_arriving_in_a_finalizer_still_stops_the_run(tmp_path: Path):
    (tmp_path / "tasks.py").write_text(TASKS)
    (tmp_path / "Pipelinefile.yaml").write_text('tasks:\n  spin: {run: "tasks:spin", target: out.json}\n')
    process = subprocess.Popen([sys.executable, "-m", "targetrun", "run"], cwd=tmp_path,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while not (tmp_path / "started").exists():
        assert process.poll() is None and time.monotonic() < deadline, process.communicate()
        time.sleep(0.01)
    time.sleep(0.3)  # well inside the finalizer
    sent = time.monotonic()
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=60)
    assert process.returncode == 130, (out, err)
    assert time.monotonic() - sent < 10  # not when the task ends by itself (20 s)
    assert b"Exception ignored" not in err and b"Traceback" not in err, err
    assert not (tmp_path / "out.json").exists()
