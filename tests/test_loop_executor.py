"""The loop executor (the default with ``-j N``): commands side by side from the run's own
thread, Python tasks in threads -- with real processes, pipes and signals.

Its promises: never more attempts running than ``-j`` (commands and Python tasks
together), each command's output collected whole however much it prints and however it
ends (pipes closed early, a background process left holding them), and an attempt whose
files are not local handed to a thread (nothing in the loop waits for the network).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from targetrun import api
from targetrun.executors.base import ExecutorOptions, choose
from targetrun.engine.work import Job, stepped

SPANS = '''
import json, os, time

def span(me, nap=0.2):
    began = time.time()
    time.sleep(nap)
    with open(os.path.join(os.path.dirname(__file__), "spans.log"), "a") as f:
        f.write(json.dumps([me, began, time.time()]) + "\\n")
    return me
'''


def _run(root: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "targetrun", *args], cwd=root, capture_output=True, text=True,
                          timeout=timeout)


def _most_at_once(spans: list[tuple[float, float]]) -> int:
    edges = sorted([(began, 1) for began, _ in spans] + [(ended, -1) for _, ended in spans])
    most = now = 0
    for _, step in edges:
        now += step
        most = max(most, now)
    return most


def test_minus_j_runs_the_loop():
    assert choose("inline", ExecutorOptions(jobs=2)) == "loop"
    assert choose("inline", ExecutorOptions(jobs=1)) == "inline"


@pytest.mark.parametrize("jobs", [2, 3])
def test_never_more_running_than_jobs_commands_and_python_together(tmp_path, jobs):
    """Six commands and six Python tasks, each recording when it ran: at most -j at once,
    and -j at once at some point (they do run side by side)."""
    root = tmp_path / "p"
    root.mkdir()
    (root / "spans.py").write_text(SPANS)
    stamp = 'python3 -c "import time; print(time.time())"'
    lines = ["tasks:"]
    for i in range(6):
        lines.append(f"  sh{i}: {{shell: 'a=$({stamp}); sleep 0.2; b=$({stamp}); echo \"[\\\"sh{i}\\\", $a, $b]\" "
                     f">> spans.log; echo {i} > {{output}}', target: out/sh{i}.txt}}")
        lines.append(f"  py{i}: {{run: spans:span, args: {{me: py{i}}}, target: out/py{i}.json}}")
    (root / "Pipelinefile.yaml").write_text("\n".join(lines) + "\n")
    result = _run(root, "run", "-j", str(jobs))
    assert result.returncode == 0, result.stderr
    spans = [json.loads(line) for line in (root / "spans.log").read_text().splitlines()]
    assert sorted(me for me, _, _ in spans) == sorted([f"sh{i}" for i in range(6)] + [f"py{i}" for i in range(6)])
    # a command's span is measured inside it, a little within its attempt: the bound holds a fortiori
    assert _most_at_once([(began, ended) for _, began, ended in spans]) == jobs


def test_a_command_printing_more_than_a_pipe_holds_does_not_block_the_others(tmp_path):
    """200 kB on stderr (three times a pipe's capacity) while others run: read as it comes,
    the tail is in its log, and the others finish."""
    root = tmp_path / "p"
    root.mkdir()
    loud = "head -c 200000 /dev/zero | tr '\\\\0' x >&2; echo; echo last-line >&2; echo done > {output}"
    (root / "Pipelinefile.yaml").write_text(
        "tasks:\n"
        f"  loud: {{shell: \"{loud}\", target: out/loud.txt}}\n"
        + "".join(f"  q{i}: {{shell: 'echo {i} > {{output}}', target: out/q{i}.txt}}\n" for i in range(6)))
    result = _run(root, "run", "-j", "2", timeout=60)
    assert result.returncode == 0, result.stderr
    assert (root / "out/loud.txt").read_text() == "done\n"
    logs = _run(root, "logs", "loud")
    assert "last-line" in logs.stdout
    assert all((root / f"out/q{i}.txt").read_text() == f"{i}\n" for i in range(6))


def test_a_command_that_closes_its_output_early_is_waited_for_until_it_exits(tmp_path):
    """Its pipes end long before it does: the loop goes on with the others and takes it
    up when it exits (its target is what it wrote last)."""
    root = tmp_path / "p"
    root.mkdir()
    (root / "Pipelinefile.yaml").write_text(
        "tasks:\n"
        "  quiet: {shell: 'exec 2>&- 1>&-; sleep 0.5; echo late > {output}', target: out/quiet.txt}\n"
        + "".join(f"  q{i}: {{shell: 'echo {i} > {{output}}', target: out/q{i}.txt}}\n" for i in range(6)))
    result = _run(root, "run", "-j", "2", "--json", timeout=60)
    assert result.returncode == 0, result.stderr
    assert (root / "out/quiet.txt").read_text() == "late\n"
    assert {t["task"]: t["state"] for t in json.loads(result.stdout)["tasks"]} == {
        "quiet": "succeeded", **{f"q{i}": "succeeded" for i in range(6)}}


def test_a_background_process_holding_the_output_does_not_hold_the_run(tmp_path):
    """A command that leaves a process running with its stderr open (``server &``): the
    command's end is its end; the run does not wait for that process."""
    root = tmp_path / "p"
    root.mkdir()
    (root / "Pipelinefile.yaml").write_text(
        "tasks:\n"
        "  starts: {shell: 'sleep 30 & echo $! > bg.pid; echo up > {output}', target: out/starts.txt}\n"
        "  other: {shell: 'echo other > {output}', target: out/other.txt}\n")
    began = time.monotonic()
    try:
        result = _run(root, "run", "-j", "2", timeout=60)
        assert result.returncode == 0, result.stderr
        assert time.monotonic() - began < 20
        assert (root / "out/starts.txt").read_text() == "up\n"
    finally:
        pid = root / "bg.pid"
        if pid.exists():
            try:
                os.kill(int(pid.read_text()), 9)
            except ProcessLookupError:
                pass


def test_a_command_whose_stdout_is_the_value_writes_it_whole(tmp_path):
    """No ``{output}``: what it prints is its target, streamed from the loop (big enough to
    take several reads), beside others."""
    root = tmp_path / "p"
    root.mkdir()
    (root / "Pipelinefile.yaml").write_text(
        "tasks:\n"
        "  big: {shell: 'seq 1 100000', target: out/big.txt, serializer: text}\n"
        + "".join(f"  q{i}: {{shell: 'echo {i}', target: out/q{i}.txt, serializer: text}}\n" for i in range(4)))
    result = _run(root, "run", "-j", "2", timeout=60)
    assert result.returncode == 0, result.stderr
    assert (root / "out/big.txt").read_text() == "".join(f"{i}\n" for i in range(1, 100001))
    assert (root / "out/q3.txt").read_text() == "3\n"


def test_a_failing_command_in_the_loop_says_why(tmp_path):
    root = tmp_path / "p"
    root.mkdir()
    (root / "Pipelinefile.yaml").write_text(
        "tasks:\n"
        "  bad: {shell: 'echo oops >&2; exit 3', target: out/bad.txt}\n"
        "  good: {shell: 'echo fine > {output}', target: out/good.txt}\n")
    result = _run(root, "run", "-j", "2", "--keep-going")
    assert result.returncode == 1
    assert "exited with status 3" in result.stdout + result.stderr and "oops" in result.stdout + result.stderr
    assert (root / "out/good.txt").read_text() == "fine\n"
    assert not (root / "out/bad.txt").exists()
    assert [p.name for p in (root / "out").iterdir()] == ["good.txt"]  # no staging file left


def test_only_local_shell_attempts_are_stepped(tmp_path):
    """A Python task, or a command whose checkpoint is not a local file, goes to a thread."""
    from targetrun.storage.local import LocalStorage

    from targetrun.storage.fsspec import FsspecStorage

    shell = Job("t", 1, str(tmp_path), "text", checkpoint=str(tmp_path / "t.txt"),
                staging=str(tmp_path / ".t.txt.stage"), storage=LocalStorage(), shell="echo 1 > {output}")
    steps = stepped(shell)
    assert steps is not None
    steps.close()
    assert stepped(Job("t", 1, str(tmp_path), "text", run="steps:const")) is None
    remote = Job("t", 1, str(tmp_path), "text", checkpoint="memory://b/t.txt", staging="memory://b/.t.txt.stage",
                 storage=FsspecStorage("memory"), shell="echo 1 > {output}")
    assert stepped(remote) is None


def test_the_api_runs_a_pipeline_on_the_loop(tmp_path):
    root = tmp_path / "p"
    root.mkdir()
    (root / "Pipelinefile.yaml").write_text(
        "tasks:\n" + "".join(f"  t{i}: {{shell: 'echo {i} > {{output}}', target: out/t{i}.txt}}\n" for i in range(5))
        + "  all: {shell: 'cat out/t*.txt | wc -l > {output}', needs: [t0, t1, t2, t3, t4], target: out/all.txt}\n")
    summary = api.run(str(root / "Pipelinefile.yaml"), executor="loop", jobs=2)
    assert summary.ok
    assert (root / "out/all.txt").read_text().strip() == "5"


# Sends this process a real SIGINT the first time a line of the loop executor's own code
# (argv[1]: function names, argv[2]: that line's text) is about to run, and says so.
AT_LINE = """
import linecache, os, signal, sys

functions, line_text = sys.argv[1].split(","), sys.argv[2]
sent = False

def local(frame, event, arg):
    global sent
    if event == "line" and not sent and linecache.getline(frame.f_code.co_filename, frame.f_lineno).strip() == line_text:
        sent = True
        print("SENT", file=sys.stderr, flush=True)
        os.kill(os.getpid(), signal.SIGINT)
        [None for _ in range(3)]  # the interpreter handles it here, at this very line
    return local

def tracer(frame, event, arg):
    return local if frame.f_code.co_name in functions and frame.f_code.co_filename.endswith("loop.py") else None

sys.settrace(tracer)
sys.argv = ["targetrun", *sys.argv[3:]]
from targetrun.cli import main
main()
"""

_STOPPED_IN = ("submit", "_start_queued", "pump", "_advance", "_start_command", "_take_started", "_watch", "_settle",
               "_forget", "_unwatch_fd")


def _lines_of_the_loop() -> list[str]:
    """The text of each statement of those functions (each found once in the file)."""
    import ast
    import inspect
    import textwrap

    from targetrun.executors.loop import LoopExecutor

    found: list[str] = []
    for name in _STOPPED_IN:
        source = textwrap.dedent(inspect.getsource(getattr(LoopExecutor, name)))
        lines = source.splitlines()
        function = ast.parse(source).body[0]
        for node in ast.walk(function):
            if isinstance(node, ast.stmt) and node is not function and not (
                    isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)):  # docstrings
                text = lines[node.lineno - 1].strip()
                if text not in found and not text.startswith(("try:", "with ", "for ", "if ", "while ")):
                    found.append(text)
    return found


@pytest.mark.parametrize("line", _lines_of_the_loop())
def test_a_stop_at_any_line_of_the_loop_leaves_nothing_running_or_half_made(tmp_path, line):
    """Ctrl-C as any line of the loop executor is about to run: exit 130 (or 0, when that
    line never ran), no command runs on after the run, no command's staging file is left
    (none at all after the next run), and every target the run made is trusted by the next
    run (skipped, not made again). A Python task
    among the commands takes the thread path too."""
    root = tmp_path / "p"
    root.mkdir()
    (root / "slow").write_text("#!/bin/sh\nsleep 0.6\necho late > late\necho slow\n")
    (root / "slow").chmod(0o755)
    (root / "py.py").write_text("def one():\n    return 1\n")
    (root / "Pipelinefile.yaml").write_text(
        "tasks:\n"
        "  slow: {shell: './slow > {output}', target: out/slow.txt}\n"
        "  py: {run: 'py:one', target: out/py.json}\n"
        + "".join(f"  q{i}: {{shell: 'echo {i} > {{output}}', target: out/q{i}.txt}}\n" for i in range(4)))
    (root / "at.py").write_text(AT_LINE)
    done = subprocess.run([sys.executable, "at.py", ",".join(_STOPPED_IN), line, "run", "-j", "2"], cwd=root,
                          capture_output=True, text=True, timeout=120)
    sent = "SENT" in done.stderr
    assert done.returncode == (130 if sent else 0), done.stdout + done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    listed = sorted(p.name for p in (root / "out").iterdir()) if (root / "out").exists() else []
    # no command's staging file; a Python task in a thread cannot be stopped, and what it may
    # still stage after the run is removed by the next run (its pending record stays for that)
    assert not [name for name in listed if name.startswith(".") and not name.startswith(".py.")], listed
    made = [name for name in listed if not name.startswith(".")]
    if sent:
        time.sleep(1.0)
        assert not (root / "late").exists() or (root / "out/slow.txt").exists(), "the command ran on after the run"
    again = _run(root, "run", "--json")
    assert again.returncode == 0, again.stderr
    states = {t["task"]: t["state"] for t in json.loads(again.stdout)["tasks"]}
    assert {task for task, state in states.items() if state == "skipped"} == {Path(name).stem for name in made}
    assert not [p.name for p in (root / "out").iterdir() if p.name.startswith(".")]
