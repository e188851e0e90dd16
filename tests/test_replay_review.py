"""The no-op replay against what its certificate left out: cases where the full run would
answer differently -- another store, a refused target, an unknown option, a warning, an
exit code -- while everything the first certificates checked still held. Each case runs
the real command (`python -m targetrun`) and compares the replayed answer with the full
run's on the same project.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from tests.test_replay import PLAIN, Answer, certified, command, replay_in_child, runs


def full_answer(proj, *args: str, env: dict[str, str] | None = None) -> Answer:
    """What the full run answers now: the certificates moved aside for one command."""
    folder = proj.root / ".targetrun" / "replay"
    aside = proj.root.parent / f"{proj.root.name}-certificates"
    shutil.move(str(folder), str(aside))
    try:
        answer = command(proj, *args, env=env)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
        shutil.move(str(aside), str(folder))
    assert not answer.replayed
    return answer


def test_a_shell_variable_the_pipelinefile_names_is_in_the_key(project):
    """PWD is left out of the key (a shell sets it anew), but `cache: ${PWD}/...` makes it
    choose the store: another PWD is another store, where the task has no cache entry."""
    proj = project("name: pwd\ncache: '${PWD}/state.db'\ntasks:\n  d: {shell: 'echo d', cache_for: 1h}\n")
    for name in ("w1", "w2"):
        (proj.root / name).mkdir()
    first = dict(os.environ, PWD=str(proj.root / "w1"))
    command(proj, env=first)
    certified(proj, env=first)
    second = dict(os.environ, PWD=str(proj.root / "w2"))
    expected = full_answer(proj, env=second)
    assert (expected.code, expected.words) == (0, "1 ran")
    (proj.root / "w2" / "state.db").unlink()  # as it was before that full run
    answer = command(proj, env=second)
    assert (answer.code, answer.words, answer.replayed) == (0, "1 ran", False), answer.err
    assert (proj.root / "w2" / "state.db").exists()


def test_a_target_folder_a_symlink_now_leads_outside_is_refused_as_the_full_run_refuses_it(project, tmp_path: Path):
    """Containment: the full run refuses a target that a value leads through a symlink out
    of its result location (exit 2). A folder swapped for such a symlink, the target still
    found through it, must not be replayed as "skipped"."""
    proj = project("name: sym\ntasks:\n  a: {shell: 'echo a > {output}', target: 'data/{today}/a.txt'}\n")
    command(proj)
    certified(proj)
    (day,) = (proj.root / "data").iterdir()
    outside = tmp_path / "outside"
    outside.mkdir()
    (day / "a.txt").rename(outside / "a.txt")
    day.rmdir()
    day.symlink_to(outside)
    answer = command(proj)
    assert answer.code == 2 and not answer.replayed, (answer.code, answer.out, answer.err)
    assert "goes through a symlink" in answer.err
    assert (outside / "a.txt").exists()


def test_a_removed_plugin_is_seen_as_the_full_run_sees_it(project, tmp_path):
    """A task's serializer comes from an installed package's entry point: once that
    package is removed, the full run that validates the Pipelinefile (no spec cache: a
    fresh checkout, or a file holding credentials, which is never cached) refuses it,
    exit 2, even with every target there -- and so must the next identical command.
    (Installed into a folder on PYTHONPATH, as pip --target leaves it, not into this
    venv's site-packages: other tests running meanwhile key their replays on that.)"""
    name = f"replayplug{uuid.uuid4().hex[:8]}"
    site = tmp_path / "site"
    env = dict(os.environ, PYTHONPATH=str(site))
    info = site / f"{name}-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(
        f"[targetrun.serializers]\n{name} = targetrun.serializers.builtin:TextSerializer\n")
    proj = project(f"name: plug\ntasks:\n  a: {{run: 'tasks:make', target: out/a.txt, serializer: {name}}}\n",
                   tasks="def make():\n    return 'a'\n")
    assert command(proj, env=env).words == "1 ran"
    certified(proj, env=env)
    shutil.rmtree(info)
    shutil.rmtree(proj.root / ".targetrun" / "spec")
    answer = command(proj, env=env)
    assert answer.code == 2 and not answer.replayed, (answer.code, answer.out, answer.err)
    assert name in answer.err


def test_a_run_that_warned_is_not_replayed_silently(project):
    """An unreadable cache row under the hit's key: the full run skips it with a warning on
    stderr, every time. A replay would answer without it: such a run is not certified."""
    proj = project(PLAIN)
    command(proj)
    db = sqlite3.connect(proj.root / ".targetrun" / "state.db")
    try:
        row = db.execute("SELECT key, pipeline, task, expires, created FROM cache").fetchone()
        db.execute("INSERT INTO cache (key, variant, pipeline, task, expires, created, record) "
                   "VALUES (?, 'other', ?, ?, ?, ?, 'not json')", row)
        db.commit()
    finally:
        db.close()
    for _ in range(3):
        answer = command(proj)
        assert (answer.code, answer.words, answer.replayed) == (0, "2 skipped, 1 cached", False), answer.err
        assert "warning: skipped an unreadable cache entry" in answer.err
    assert not list((proj.root / ".targetrun").glob("replay/*"))


def _closed_pipe(proj) -> tuple[int, str]:
    """The command with its stdout a pipe nobody reads: (exit code, stderr)."""
    proc = subprocess.Popen([sys.executable, "-m", "targetrun", "run", "-q", "-f", str(proj.file)], cwd=proj.root,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()
    err = proc.stderr.read().decode()
    proc.stderr.close()
    return proc.wait(timeout=60), err


def _full_disk(proj) -> int:
    with open("/dev/full", "w") as full:
        return subprocess.run([sys.executable, "-m", "targetrun", "run", "-q", "-f", str(proj.file)], cwd=proj.root,
                              stdout=full, stderr=subprocess.DEVNULL, timeout=60).returncode


@pytest.mark.parametrize("how", ["a closed pipe", "a full disk"])
def test_output_that_cannot_be_written_exits_as_the_full_run_exits(project, how):
    """The final line cannot be written: the full run exits with its own code for that
    (1 for a closed pipe, as click answers EPIPE). The replay must not answer 0 -- it
    takes back its record and leaves the command to the full run, which records it once."""
    if how == "a full disk" and not os.path.exists("/dev/full"):
        pytest.skip("no /dev/full")
    attempt = _closed_pipe if how == "a closed pipe" else _full_disk
    proj = project(PLAIN)
    command(proj)
    certified(proj)
    certificates = proj.root / ".targetrun" / "replay"
    shutil.move(str(certificates), str(proj.root / "aside"))
    expected = attempt(proj)
    shutil.rmtree(certificates, ignore_errors=True)
    shutil.move(str(proj.root / "aside"), str(certificates))
    assert expected != 0
    before = len(runs(proj))
    result = attempt(proj)
    code = result[0] if isinstance(result, tuple) else result
    assert code == (expected[0] if isinstance(expected, tuple) else expected)
    assert len(runs(proj)) == before + 1  # recorded once, by the full run
    assert command(proj).replayed  # the certificate still holds for a readable stdout


@pytest.mark.parametrize("kind", ["a FIFO", "a symlink"])
def test_a_certificate_that_is_not_a_regular_file_is_not_read(project, tmp_path: Path, kind):
    """The certificate's name is predictable from the folder and the command line, so a
    checkout or an archive can put something there: a FIFO (opening it would wait for a
    writer forever) or a symlink (to /dev/zero, read until memory runs out -- here to a
    valid certificate, which shows it is followed). Neither is read; the full run answers."""
    proj = project(PLAIN)
    command(proj)
    certified(proj)
    (path,) = (proj.root / ".targetrun" / "replay").iterdir()
    if kind == "a FIFO":
        path.unlink()
        os.mkfifo(path)
    else:
        elsewhere = tmp_path / "elsewhere.json"
        path.rename(elsewhere)
        path.symlink_to(elsewhere)
    try:
        answer = command(proj, timeout=20)
    except subprocess.TimeoutExpired:
        pytest.fail("the command waited on the certificate")
    assert (answer.code, answer.words, answer.replayed) == (0, "2 skipped, 1 cached", False), answer.err


def test_a_closed_stdout_is_no_traceback_on_either_path(project):
    """Started with stdout closed (`>&-`: Python's sys.stdout is None), a no-op -- certified
    or not -- exits 0 without a traceback and is recorded once, as `print` would discard
    the line. (It was an internal error on the full path, and the replay recorded the run
    and then crashed.)"""
    proj = project(PLAIN)
    command(proj)
    certified(proj)
    before = len(runs(proj))
    for _ in range(2):
        proc = subprocess.run([sys.executable, "-m", "targetrun", "run", "-q", "-f", str(proj.file)], cwd=proj.root,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, timeout=60,
                              preexec_fn=lambda: os.close(1))
        assert (proc.returncode, proc.stderr) == (0, "")
    assert len(runs(proj)) == before + 2
    assert all(row[2] == "succeeded" and row[5] is not None for row in runs(proj))


def test_the_replay_waits_for_the_store_no_longer_than_the_full_run_would(project):
    """TARGETRUN_STORE_TIMEOUT=0: the full run does not wait for another writer's lock
    (exit 3). The replay waited up to 0.5 s regardless, and answered 0 where the full run
    fails; now it waits no longer than the setting allows."""
    env = dict(os.environ, TARGETRUN_STORE_TIMEOUT="0")
    proj = project(PLAIN)
    command(proj, env=env)
    certified(proj, env=env)
    assert replay_in_child(proj, env=env) == 0  # the certificate holds in such a child
    assert replay_in_child(proj, hold=0.3, env=env) is None
    assert replay_in_child(proj, hold=0.3) is None  # another environment: another command
    relaxed = dict(os.environ, TARGETRUN_STORE_TIMEOUT="30")
    command(proj, env=relaxed)
    certified(proj, env=relaxed)
    assert replay_in_child(proj, hold=0.3, env=relaxed) == 0  # waits its 0.5 s at most, as before


def test_a_hit_on_an_entry_another_task_wrote_is_valid_for_the_hitting_tasks_cache_for(project, tmp_path: Path):
    """Two tasks share a cache_key: `a` (cache_for 10d) writes the entry, `b` (cache_for
    1h) hits it. The full run keeps b's hit for an hour; the certificate's window came
    from the writer's cache_for (ten days), so two hours later the replay still said
    "cached" where the full run runs b."""
    proj = project("name: share\ntasks:\n  a: {shell: 'echo a', cache_for: 10d, cache_key: k}\n"
                   "  b: {shell: 'echo b', cache_for: 1h, cache_key: k}\n")
    assert command(proj, "a").words == "1 ran"
    assert certified(proj).words == "2 cached"
    later = time.time() + 7200
    copy = tmp_path / "copy"
    shutil.copytree(proj.root, copy)
    full = subprocess.run([sys.executable, "-m", "targetrun", "run", "-q"], cwd=copy, capture_output=True, text=True,
                          env=dict(os.environ, TARGETRUN_NOW=str(later)), timeout=60)
    assert full.stdout.rpartition(" in ")[0] == "1 ran, 1 cached", full.stderr  # what the full run says then
    assert replay_in_child(proj, now=later) is None
    assert replay_in_child(proj) == 0  # and the certificate holds now


# A no-op run (the key of `run -q -f FILE` from the project folder) during which another
# command clears the cache: between this run's decisions and its certificate.
CLEARED_MEANWHILE = """
import subprocess, sys
from targetrun import api, replay
from targetrun.events import RunFinished
FILE = sys.argv[1]
class ClearMeanwhile:
    def handle(self, event):
        if isinstance(event, RunFinished):
            subprocess.run([sys.executable, "-m", "targetrun", "cache", "clear", "-f", FILE], check=True,
                           capture_output=True)
ticket = replay.Ticket.take(["run", "-q", "-f", FILE])
(summary,) = api.run_dates(FILE, (), dates=[None], reporter=ClearMeanwhile(), ticket=ticket)
print(summary.ok)
"""


def test_a_cache_cleared_while_a_no_op_decided_is_not_certified(project):
    """The certificate read the cache rows back after the run: cleared meanwhile, it
    vouched for no rows at all, and the replay then said "cached" where the full run,
    finding no entry, runs the task."""
    proj = project("name: race\ntasks:\n  d: {shell: 'echo d', cache_for: 1h}\n")
    assert command(proj).words == "1 ran"
    child = subprocess.run([sys.executable, "-c", CLEARED_MEANWHILE, str(proj.file)], cwd=proj.root,
                           capture_output=True, text=True, timeout=120)
    assert child.stdout.strip() == "True", child.stderr
    answer = command(proj)
    assert (answer.code, answer.words, answer.replayed) == (0, "1 ran", False), answer.err


DOWN_EXECUTOR = '''
import os
from targetrun.errors import ExecutorError
from targetrun.executors.base import InlineExecutor


class Down(InlineExecutor):
    """Connects to its cluster when created (as dask does): fails while it is down."""

    @classmethod
    def create(cls, options):
        if os.path.exists(os.environ["CLUSTER_DOWN_MARKER"]):
            raise ExecutorError("the cluster is down")
        return cls()
'''


def test_an_executor_that_fails_when_created_is_not_replayed(project, tmp_path: Path):
    """The full run creates the executor before it decides anything, even for a no-op: a
    plugin (or dask) that reaches a cluster then fails when the cluster is down (exit 3).
    The replay creates none, so it answered 0: it now answers only for the executors that
    start nothing when created (inline, threads, processes)."""
    plugins = tmp_path / "plugins"
    (plugins / "downexec-0.1.dist-info").mkdir(parents=True)
    (plugins / "downexec.py").write_text(DOWN_EXECUTOR)
    (plugins / "downexec-0.1.dist-info" / "METADATA").write_text("Metadata-Version: 2.1\nName: downexec\nVersion: 0.1\n")
    (plugins / "downexec-0.1.dist-info" / "entry_points.txt").write_text("[targetrun.executors]\ndown = downexec:Down\n")
    marker = tmp_path / "cluster-is-down"
    env = dict(os.environ, PYTHONPATH=str(plugins), CLUSTER_DOWN_MARKER=str(marker))
    proj = project(PLAIN)
    assert command(proj, "--executor", "down", env=env).code == 0
    for _ in range(2):
        assert command(proj, "--executor", "down", env=env).words == "2 skipped, 1 cached"
    marker.touch()
    answer = command(proj, "--executor", "down", env=env)
    assert answer.code == 3 and not answer.replayed, (answer.code, answer.out, answer.err)
    assert "the cluster is down" in answer.err


def _from_a_pipe(proj, *args: str) -> tuple[int, str]:
    """`targetrun run ARGS -f <(cat Pipelinefile.yaml)`: the file is a pipe, readable once."""
    read, write = os.pipe()
    try:
        proc = subprocess.Popen([sys.executable, "-m", "targetrun", "run", *args, "-f", f"/dev/fd/{read}"],
                                cwd=proj.root, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                pass_fds=(read,))
    finally:
        os.close(read)
    with os.fdopen(write, "wb") as pipe:
        pipe.write(proj.file.read_bytes())
    out, err = proc.communicate(timeout=60)
    return proc.returncode, err


def test_a_pipelinefile_read_from_a_pipe_is_left_whole_for_the_full_run(project):
    """`-f <(generate)`: the replay read the pipe to compute its key, and the full run then
    found it empty (exit 2, "the file is empty") where without -q it answers otherwise.
    A file that is not a regular one is not read for a certificate."""
    proj = project(PLAIN)
    command(proj)
    verbose_code, verbose_err = _from_a_pipe(proj)
    quiet_code, quiet_err = _from_a_pipe(proj, "-q")
    assert (quiet_code, quiet_err) == (verbose_code, verbose_err)
    assert "the file is empty" not in quiet_err


@pytest.mark.parametrize("created", ["'x'", "X'00'"])
def test_a_damaged_cache_row_never_fails_a_no_op(project, created):
    """A cache row whose `created` column holds text (SQLite keeps what it is given): the
    full run decides from the record and answers "cached"; writing the certificate
    compared that text with a number and the run ended in an internal error, exit 4."""
    proj = project("name: damaged\ntasks:\n  d: {shell: 'echo d', cache_for: 1h}\n")
    assert command(proj).words == "1 ran"
    db = sqlite3.connect(proj.root / ".targetrun" / "state.db")
    try:
        db.execute(f"UPDATE cache SET created = {created}")
        db.commit()
    finally:
        db.close()
    for _ in range(2):
        answer = command(proj)
        assert (answer.code, answer.words) == (0, "1 cached"), answer.err
        assert "Traceback" not in answer.err
