"""A Ctrl-C that arrives while a finalizer (``__del__``) or a weakref callback runs is not
lost: the interpreter cannot raise out of those and drops the exception ("Exception
ignored in ..."), so targetrun delivers the signal again to the code that runs next. The
run stops with exit 130, promptly, and without that message.

``io.IOBase``'s finalizer is the exception: it drops what its ``close``/``flush`` raised
without passing it to ``sys.unraisablehook`` (outside Python's dev mode). A stop landing in
one of targetrun's own streams as it was collected was lost: the run went on, its next task
failed "not started: the run is stopping", and it ended with 1 instead of 130
(test_signals' random-moments test met it about once in 150 stops)."""

from __future__ import annotations

import importlib
import inspect
import io
import pkgutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

import targetrun
from targetrun.stopping import StopSafeFinalizer

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


# The stream is finalized while its flush runs Python code, and a SIGINT is handled right
# there (the Python call after os.kill); nothing else in the program would stop it.
STOPPED_IN_FINALIZER = textwrap.dedent("""
    import io, os, signal, sys, threading, time
    from targetrun import stopping
    from targetrun.capture import _Router, TerminalStream

    def nothing():
        return None

    class Signals(io.StringIO):
        def flush(self):
            os.kill(os.getpid(), signal.SIGINT)
            nothing()

    stopping.install()
    try:
        stream = {make}
        del stream
        for _ in range(100):
            time.sleep(0.01)
            nothing()
    except KeyboardInterrupt as exc:
        print(type(exc).__name__)
        sys.exit(130)
    print("the stop was lost")
""")


@pytest.mark.parametrize("make", ["_Router(Signals(), threading.local())", "TerminalStream(Signals())"])
def test_a_stop_in_a_streams_finalizer_still_stops_the_command(make):
    done = subprocess.run([sys.executable, "-c", STOPPED_IN_FINALIZER.format(make=make)],
                          capture_output=True, text=True, timeout=60)
    assert (done.returncode, done.stdout.strip()) == (130, "Stopped"), done.stdout + done.stderr


def _python_level(cls: type, name: str) -> bool:
    """Whether ``cls`` has ``name`` from Python code (not IOBase's own C method)."""
    for klass in cls.__mro__:
        if name in vars(klass):
            return inspect.isfunction(vars(klass)[name]) or isinstance(vars(klass)[name], property)
    return False


def test_every_stream_class_whose_finalizer_runs_python_code_passes_stops_on():
    for module in pkgutil.walk_packages(targetrun.__path__, "targetrun."):
        importlib.import_module(module.name)
    streams = [cls for cls in _subclasses(io.IOBase) if cls.__module__.startswith("targetrun.")]
    assert {cls.__name__ for cls in streams} >= {"_Router", "TerminalStream", "HashingWriter"}
    runs_python = [cls for cls in streams if any(_python_level(cls, name) for name in ("close", "flush", "closed"))]
    assert runs_python, "the router and the terminal stream flush in Python"
    unsafe = [cls.__qualname__ for cls in runs_python if not issubclass(cls, StopSafeFinalizer)]
    assert unsafe == []


def _subclasses(cls: type) -> list[type]:
    found = []
    for sub in cls.__subclasses__():
        found.append(sub)
        found.extend(_subclasses(sub))
    return found


# A task's own stream class swallows the stop (as any library's io.IOBase subclass with a
# Python flush would): the run must still end as stopped, without failing a task over it.
SWALLOWS_THE_STOP = '''
import io, os, signal


def nothing():
    return None


class Stream(io.IOBase):
    def flush(self):
        os.kill(os.getpid(), signal.SIGINT)
        nothing()  # the stop is raised here, in IOBase's finalizer, which drops it


def swallow():
    Stream()  # collected at once
    return "made after the stop"


def after(swallow):
    return swallow
'''


def test_a_stop_that_something_swallowed_still_ends_the_run_as_stopped(tmp_path: Path):
    (tmp_path / "tasks.py").write_text(SWALLOWS_THE_STOP)
    (tmp_path / "Pipelinefile.yaml").write_text(
        "tasks:\n"
        "  swallow: {run: 'tasks:swallow', target: first.json}\n"
        "  after: {run: 'tasks:after', needs: [swallow], target: second.json}\n")
    done = subprocess.run([sys.executable, "-m", "targetrun", "run"], cwd=tmp_path, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 130, done.stdout + done.stderr
    assert "FAILED" not in done.stdout + done.stderr and "Traceback" not in done.stderr, done.stdout + done.stderr
    assert not (tmp_path / "first.json").exists() and not (tmp_path / "second.json").exists()
