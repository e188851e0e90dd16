"""stdout is targetrun's alone, task logs are complete, and progress is honest.

These run ``python -m targetrun`` as a real process: output written to file descriptors 1
and 2 (a subprocess, C code, ``os.write``) only shows up at that level, which an in-process
CLI runner does not see. The live view is checked under a real pseudo-terminal.
"""

from __future__ import annotations

import fcntl
import json
import os
import pty
import re
import select
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

import pytest

from targetrun import api
from targetrun.events import RecordingReporter, TaskQueued, TaskStarted, TaskSucceeded

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")

NOISY = '''
import ctypes
import logging
import os
import subprocess
import sys
import time


def talk(me, nap=0.0):
    print(f"print-{me}")
    logging.getLogger("noisy").warning(f"logging-{me}")
    subprocess.run([sys.executable, "-c", f"print('subprocess-{me}')"], check=True)
    os.system(f"echo system-{me} >&2")
    os.write(1, f"fdwrite-{me}\\n".encode())
    ctypes.CDLL(None).printf(f"cprintf-{me}\\n".encode())
    time.sleep(nap)
    print(f"after-{me}", file=sys.stderr)
    return me
'''

WAYS = ("print", "logging", "subprocess", "system", "fdwrite", "cprintf", "after")


def _noisy_project(root: Path, tasks: int, nap: float = 0.0) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "noisy.py").write_text(NOISY)
    lines = ["tasks:"] + [f"  t{i}: {{run: noisy:talk, args: {{me: t{i}, nap: {nap}}}, target: out/t{i}.json}}"
                          for i in range(tasks)]
    (root / "Pipelinefile.yaml").write_text("\n".join(lines) + "\n")
    return root


def _targetrun(root: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "targetrun", *args], cwd=root, capture_output=True, text=True,
                          timeout=timeout)


@pytest.mark.parametrize("executor", ["inline", "threads", "processes"])
def test_json_stdout_parses_and_logs_hold_every_line(tmp_path, executor):
    """Whatever a task prints, and however, ``run --json`` stdout is one JSON document and
    ``logs TASK`` has every line; one task at a time (threads with -j 1), so each line is
    known to be that task's."""
    root = _noisy_project(tmp_path / "p", 2)
    result = _targetrun(root, "run", "--json", "--executor", executor, "-j", "1")
    assert result.returncode == 0, result.stderr
    json.loads(result.stdout)  # nothing the tasks printed is mixed in
    assert not [way for way in WAYS for i in range(2) if f"{way}-t{i}" in result.stdout + result.stderr]
    for i in range(2):
        log = _targetrun(root, "logs", f"t{i}")
        assert log.returncode == 0
        for way in WAYS:
            assert f"{way}-t{i}" in log.stdout, (way, log.stdout)
        assert f"-t{1 - i}" not in log.stdout  # nothing of the other task
    status = _targetrun(root, "status", "--json")
    assert status.returncode == 0 and json.loads(status.stdout)


def test_parallel_threads_keep_stdout_clean_and_lose_no_line(tmp_path):
    """Two tasks at once in threads: Python-level lines stay each task's own; what they
    write to the shared fds cannot be told apart, so it is kept in the run's unattributed
    log (and said so), never on stdout."""
    root = _noisy_project(tmp_path / "p", 2, nap=0.5)
    result = _targetrun(root, "run", "--json", "--executor", "threads", "-j", "2")
    assert result.returncode == 0, result.stderr
    json.loads(result.stdout)
    run_logs = next((root / ".targetrun" / "logs").iterdir())
    stray = (run_logs / "unattributed.txt").read_text()
    for i in range(2):
        log = (run_logs / f"t{i}.log").read_text()
        for way in ("print", "logging", "after"):
            assert f"{way}-t{i}" in log
        for way in WAYS:
            assert f"{way}-t{i}" in log + stray  # nowhere lost
    plain = _targetrun(root, "run", "--force-all", "-j", "2")
    assert "of output no single task can claim" in plain.stdout and "unattributed.txt" in plain.stdout
    assert "subprocess-t0" not in plain.stdout + plain.stderr


def test_dask_workers_output_stays_off_stdout(tmp_path):
    """On a local Dask cluster, what workers write to their fds (a task's subprocesses, the
    workers' own log lines such as "Compute Failed") never reaches targetrun's stdout or
    stderr nor a failure message; a task's Python output is still its own."""
    pytest.importorskip("distributed")
    root = _noisy_project(tmp_path / "p", 1)
    (root / "bad.py").write_text("def boom():\n    print('before the failure')\n    raise ValueError('nope')\n")
    with (root / "Pipelinefile.yaml").open("a") as f:
        f.write("  bad: {run: bad:boom, target: out/bad.json}\n")
    result = _targetrun(root, "run", "--json", "-k", "--executor", "dask", "-j", "1", timeout=180)
    assert result.returncode == 1, result.stderr
    doc = json.loads(result.stdout)
    assert "ValueError: nope" in json.dumps(doc) and "Compute Failed" not in json.dumps(doc)
    assert "t0" not in result.stderr and "Compute Failed" not in result.stderr  # the workers' fds: the run's sink
    log = _targetrun(root, "logs", "t0").stdout
    assert "print-t0" in log and "logging-t0" in log and "after-t0" in log
    failed = _targetrun(root, "logs", "bad").stdout
    assert "before the failure" in failed and "Compute Failed" not in failed
    plain = _targetrun(root, "run", "--force", "bad", "--executor", "dask", "-j", "1", timeout=180)
    assert "FAILED   bad" in plain.stdout and "Compute Failed" not in plain.stdout + plain.stderr


# -- queued versus running ---------------------------------------------------------

NAPS = '''
import time


def nap(me, seconds=1.0):
    time.sleep(seconds)
    return me


def clocked_nap(me, seconds=1.0):
    """A nap that says when it ended, by the system-wide monotonic clock the test reads too."""
    time.sleep(seconds)
    return {"me": me, "ended": time.monotonic()}
'''


def _nap_project(root: Path, tasks: int, seconds: float, nap: str = "nap") -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "naps.py").write_text(NAPS)
    lines = ["tasks:"] + [f"  t{i}: {{run: naps:{nap}, args: {{me: t{i}, seconds: {seconds}}}, target: out/t{i}.json}}"
                          for i in range(tasks)]
    (root / "Pipelinefile.yaml").write_text("\n".join(lines) + "\n")
    return root


def _under_a_terminal(root: Path, *args: str, timeout: float = 60) -> str:
    """Run targetrun with a pseudo-terminal as its stdin, stdout and stderr; what it drew."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 160, 0, 0))
    env = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "COLUMNS", "LINES")}
    process = subprocess.Popen([sys.executable, "-m", "targetrun", *args], cwd=root, stdin=slave, stdout=slave,
                               stderr=slave, env=dict(env, TERM="xterm-256color"))
    os.close(slave)
    drawn = b""
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.1)
            if ready:
                try:
                    chunk = os.read(master, 65536)
                except OSError:  # the terminal closed: the process is gone
                    break
                if not chunk:
                    break
                drawn += chunk
            elif process.poll() is not None:
                break
    finally:
        process.kill() if process.poll() is None else None
        process.wait()
        os.close(master)
    assert process.returncode == 0, drawn.decode(errors="replace")
    return ANSI.sub("", drawn.decode(errors="replace"))


COUNTS = re.compile(r"(\d+)/(\d+)\s+done \d+\s+skipped \d+\s+failed \d+\s+queued (\d+)\s+running (\d+)")


def test_live_view_shows_at_most_two_running_with_two_jobs(tmp_path):
    """``run -j 2`` with four one-second tasks on a terminal: every frame the live view
    draws counts and lists at most two running tasks, the others queued."""
    root = _nap_project(tmp_path / "p", 4, 1.0)
    screen = _under_a_terminal(root, "run", "-j", "2")
    frames = list(COUNTS.finditer(screen))
    assert len(frames) >= 4, screen  # sampled a few times a second over about two seconds
    running = [int(m.group(4)) for m in frames]
    queued = [int(m.group(3)) for m in frames]
    assert max(running) == 2 and all(n <= 2 for n in running), running
    assert max(queued) >= 1, queued  # the others were shown waiting, not running
    ends = [m.end() for m in frames] + [len(screen)]
    for match, end in zip(frames, ends[1:]):  # the rows listed under each frame's counts
        listed = set(re.findall(r"\b(t\d)\s+\d+(?:\.\d+)?m?s\b", screen[match.end():end]))
        assert len(listed) <= 2, listed
    assert "4 ran" in screen


def test_verbose_start_lines_come_when_workers_begin(project):
    """``-v`` prints ``start`` when a worker begins a task: with two threads and four
    tasks, the third start comes after the first task ran, not at submit time."""
    proj = project("tasks:\n" + "".join(
        f"  t{i}: {{run: naps:nap, args: {{me: t{i}, seconds: 0.4}}, target: out/t{i}.json}}\n" for i in range(4)),
        naps=NAPS)
    result = proj.cli("run", "-v", "-j", "2", "--executor", "threads")
    assert result.code == 0, result.err
    lines = [line.split()[0] for line in result.out.splitlines() if line.split()[:1] in (["start"], ["ran"])]
    assert lines.count("start") == 4 and lines.count("ran") == 4
    assert lines[:2] == ["start", "start"] and lines.index("ran") < [i for i, w in enumerate(lines) if w == "start"][2]


class _Timed(RecordingReporter):
    def __init__(self) -> None:
        super().__init__()
        self.at: dict[tuple[str, str], float] = {}

    def handle(self, event) -> None:
        super().handle(event)
        if isinstance(event, (TaskStarted, TaskSucceeded)):
            self.at[(type(event).__name__, event.task)] = time.monotonic()


@pytest.mark.parametrize("executor", ["inline", "threads", "processes", "dask"])
def test_every_attempt_is_queued_then_started_then_done(tmp_path, executor):
    """The events say when a worker really begins an attempt: never more running at once
    than the executor has workers, each attempt queued, then started (while it runs, not
    when it ends), then done."""
    if executor == "dask":
        pytest.importorskip("distributed")
    root = _nap_project(tmp_path / "p", 4, 0.5, nap="clocked_nap")
    events = _Timed()
    summary = api.run(str(root / "Pipelinefile.yaml"), executor=executor, jobs=2 if executor != "inline" else 1,
                      reporter=events)
    assert summary.ok
    for i in range(4):  # the notice came from the worker as it began, not with the result: before the nap ended
        ended = json.loads((root / "out" / f"t{i}.json").read_text())["ended"]
        assert events.at[("TaskStarted", f"t{i}")] < ended < events.at[("TaskSucceeded", f"t{i}")]
    running: set[str] = set()
    most = 0
    seen: dict[str, list[str]] = {}
    for event in events.events:
        if isinstance(event, (TaskQueued, TaskStarted, TaskSucceeded)):
            seen.setdefault(event.task, []).append(type(event).__name__)
        if isinstance(event, TaskStarted):
            running.add(event.task)
            most = max(most, len(running))
        elif isinstance(event, TaskSucceeded):
            running.discard(event.task)
    assert all(kinds == ["TaskQueued", "TaskStarted", "TaskSucceeded"] for kinds in seen.values()), seen
    assert len(seen) == 4 and most == (1 if executor == "inline" else 2)


def test_logs_show_the_latest_attempt_of_the_latest_run(project):
    """``logs TASK`` shows the latest attempt (``--all-attempts``: each one); a later run in
    which the task printed nothing says so instead of showing an older run's lines."""
    proj = project("""
    tasks:
      t:
        run: moody:work
        max_retries: 1
        args: {loud: true}
        target: out/t.txt
    """, moody='''
from pathlib import Path


def work(loud):
    tries = Path(__file__).with_name("tries.txt")  # next to this module, in the project
    n = int(tries.read_text()) + 1 if tries.exists() else 1
    tries.write_text(str(n))
    if loud:
        print(f"try {n}")
    if n == 1:
        raise RuntimeError("first try fails")
    return "ok"
''')
    assert proj.cli("run").code == 0
    latest = proj.cli("logs", "t")
    assert latest.code == 0 and "try 2" in latest.out and "try 1" not in latest.out, latest.out
    every = proj.cli("logs", "t", "--all-attempts").out
    assert "try 1" in every and "first try fails" in every and "try 2" in every
    proj.write("Pipelinefile.yaml", proj.file.read_text().replace("loud: true", "loud: false"))
    assert proj.cli("run", "--force", "t").code == 0
    quiet = proj.cli("logs", "t")
    assert quiet.code == 0 and "attempt 1 printed nothing" in quiet.out and "try" not in quiet.out


def test_logging_configured_at_import_stays_each_tasks_own(tmp_path):
    """``logging.basicConfig()`` when the module is imported binds a handler to the
    original stderr; while tasks run it writes through the per-thread router, so two
    tasks logging at once on two threads each keep their own records."""
    root = tmp_path / "p"
    root.mkdir()
    (root / "Pipelinefile.yaml").write_text("tasks:\n" + "".join(
        f"  t{i}: {{run: chatty:work, args: {{me: t{i}}}, target: out/t{i}.json}}\n" for i in range(2)))
    (root / "chatty.py").write_text('''
import logging
import time

logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")


def work(me):
    for n in range(3):
        logging.getLogger("chatty").info(f"record-{me}-{n}")
        time.sleep(0.1)
    return me
''')
    result = _targetrun(root, "run", "--json", "-j", "2", "--executor", "threads")
    assert result.returncode == 0, result.stderr
    json.loads(result.stdout)
    assert "record-" not in result.stdout + result.stderr
    for me, other in (("t0", "t1"), ("t1", "t0")):
        log = _targetrun(root, "logs", me).stdout
        assert all(f"INFO record-{me}-{n}" in log for n in range(3)), log
        assert f"record-{other}" not in log


def test_a_quiet_retry_after_a_loud_attempt_gets_its_own_section_and_a_quiet_task_no_log(project):
    """The log writer remembers which tasks have a log in this run: a retry that printed
    nothing still gets its section (so the latest section is the latest attempt), and a task
    that never printed gets no file."""
    proj = project("""
    tasks:
      flaky:
        shell: "if [ -f tried ]; then echo ok > {output}; else touch tried; echo first try fails >&2; exit 1; fi"
        max_retries: 1
        target: out/flaky.txt
      quiet:
        shell: "echo 1 > {output}"
        target: out/quiet.txt
    """)
    assert proj.cli("run").code == 0
    latest = proj.cli("logs", "flaky")
    assert latest.code == 0 and "--- attempt 2: succeeded ---" in latest.out and "first try" not in latest.out, latest.out
    assert "first try fails" in proj.cli("logs", "flaky", "--all-attempts").out
    logs = [p.name for p in (proj.root / ".targetrun" / "logs").rglob("*.log")]
    assert logs == ["flaky.log"]


LYING = r'''
import sys


def lie(fail=False):
    print("plain\tline")
    print("\x1b[2J\x1b[H\x1b]0;pwned\x07\x1b]8;;https://evil.example/\x1b\\https://bank.example/\x1b]8;;\x1b\\")
    print("over\rwritten \u202egnp.exe", file=sys.stderr)
    if fail:
        raise RuntimeError("bad\x1b[31m red")
    return 1
'''


def test_a_tasks_escape_sequences_never_reach_the_terminal_unless_asked_for(project):
    """`logs` printed a task's captured output as it was: its escape sequences (clear the
    screen, set the window title, a hyperlink whose text lies about where it goes, a
    carriage return or a right-to-left override that hides text) acted on the user's
    terminal. They are shown as escapes now (``\\x1b``), newlines and tabs kept; ``--raw``
    prints the text as captured. The failure summary of a run already showed them escaped."""
    proj = project("tasks:\n  t: {run: lying:lie, target: out/t.json}\n"
                   "  f: {run: lying:lie, args: {fail: true}, target: out/f.json}\n", lying=LYING)
    run = proj.cli("run")
    assert run.code != 0 and "\x1b" not in run.out + run.err and "\\x1b[31m" in run.out + run.err, run.out + run.err
    for task in ("t", "f"):
        shown = proj.cli("logs", task)
        assert shown.code == 0, shown.err
        assert not any(c in shown.out for c in "\x1b\x07\r\u202e"), repr(shown.out)
        assert "plain\tline\n" in shown.out and "\\x1b[2J\\x1b[H\\x1b]0;pwned\\x07" in shown.out
        assert "\\x1b]8;;https://evil.example/\\x1b\\https://bank.example/" in shown.out
        assert "over\\rwritten \\u202egnp.exe\n" in shown.out
        raw = proj.cli("logs", task, "--raw")
        assert raw.code == 0 and "\x1b[2J\x1b[H\x1b]0;pwned\x07" in raw.out and "over\rwritten \u202egnp" in raw.out
        assert raw.out.replace("\r", "") != shown.out
