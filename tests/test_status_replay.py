"""The status replay (targetrun/status_replay.py, certify.certify_status): a repeated
`status` is answered from the last identical status's certificate -- and only while
everything its table rested on still holds. The invariant under test: whenever the replay
answers, it prints what the full status prints at that moment, character for character;
after any change it does not answer (a deleted target is never said to exist).
"""

from __future__ import annotations

import io
import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable

import pytest

from targetrun import api, status_replay
from targetrun.report.status import render_status

PLAIN = """
name: plain
tasks:
  a: {shell: 'echo a > {output}', target: out/a.txt}
  b: {shell: 'cat {needs.a} > {output}', needs: [a], target: 'out/b-{today}.txt'}
  c: {shell: 'echo c > {output}', target: out/c.txt}
  d: {shell: 'echo d > {output}', target: out/d.txt}
  e: {shell: 'echo e'}
"""


def replayed(proj, *args: str, now: float | None = None) -> tuple[int, str] | None:
    out = io.StringIO()
    code = status_replay.answer(["status", "-f", str(proj.file), *args], out, now=now)
    return None if code is None else (code, out.getvalue())


def full(proj, now: float) -> str:
    out = io.StringIO()
    render_status(api.status(str(proj.file)), out, colour=False, now=now)
    return out.getvalue()


def certified(project, text: str = PLAIN):
    """A project whose targets a, b, c exist (d is missing), its status certified."""
    proj = project(text)
    assert proj.cli("run").code == 0
    os.remove(proj.root / "out" / "d.txt")
    assert proj.cli("status").code == 0
    assert replayed(proj) is not None
    return proj


def test_the_replay_prints_what_the_full_status_prints(project):
    proj = certified(project)
    now = time.time()
    for later in (0.0, 0.4, 7.0, 75.0):  # ages under a second, under a minute, from a minute on
        answer = replayed(proj, now=now + later)
        if answer is None:  # the UTC day ended meanwhile
            assert time.gmtime(now + later).tm_yday != time.gmtime(now).tm_yday
            continue
        assert answer == (0, full(proj, now + later))
    assert "target missing" in full(proj, now)
    assert proj.cli("status", "--check").code == 1  # d would run; a command line of its own, certified
    assert replayed(proj, "--check", now=now) == (1, full(proj, now))


def _rewrite_keeping_size_and_mtime(proj) -> None:
    path = proj.root / "out" / "c.txt"
    before = os.stat(path)
    path.write_text("C\n")
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))


def _sql(statement: str) -> Callable[..., None]:
    def change(proj) -> None:
        db = sqlite3.connect(proj.root / ".targetrun" / "state.db")
        db.execute(statement)
        db.commit()
        db.close()
    return change


CHANGES = {
    "a target deleted": lambda proj: os.remove(proj.root / "out" / "a.txt"),
    "a missing target created": lambda proj: (proj.root / "out" / "d.txt").write_text("d\n"),
    "a target rewritten, size and mtime kept": _rewrite_keeping_size_and_mtime,
    "a target replaced by a folder": lambda proj: (os.remove(proj.root / "out" / "c.txt"),
                                                   os.mkdir(proj.root / "out" / "c.txt")),
    "the Pipelinefile edited": lambda proj: proj.write("Pipelinefile.yaml", PLAIN.replace("echo c", "echo C")),
    "a checkpoint record changed": _sql("UPDATE checkpoints SET run_id = 'other' WHERE task = 'c'"),
    "a checkpoint record removed": _sql("DELETE FROM checkpoints WHERE task = 'c'"),
    "a task record added": _sql("INSERT INTO task_runs SELECT 'later', pipeline, task, 'failed', finished + 1, "
                                "duration, attempts, 'boom', target, started, worker FROM task_runs WHERE task = 'c'"),
    "a cache entry written": _sql("INSERT INTO cache VALUES ('k', 'v', 'plain', 'e', 9e9, 1.0, '{}')"),
    "a pending write": _sql("INSERT INTO pending (staging, run_id, location, storage) VALUES ('out/.c.txt.tmp', 'r', 'out/c.txt', 'local')"),
    "the store replaced": lambda proj: os.remove(proj.root / ".targetrun" / "state.db"),
}


@pytest.mark.parametrize("change", list(CHANGES))
def test_after_any_change_the_full_status_answers(project, change):
    proj = certified(project)
    CHANGES[change](proj)
    assert replayed(proj) is None


def test_a_deleted_target_is_never_said_to_exist(project):
    proj = certified(project)
    os.remove(proj.root / "out" / "a.txt")
    assert replayed(proj) is None
    row = proj.cli("status").out.splitlines()[1]
    assert row.split()[:2] == ["a", "out/a.txt"] and "target missing" in row, row


def test_a_run_replayed_meanwhile_keeps_the_certificate(project):
    """A replayed no-op records a run (its row and outcomes), which no status shows."""
    proj = certified(project, PLAIN.replace("  e: {shell: 'echo e'}\n", ""))  # e would run every time
    (proj.root / "out" / "d.txt").write_text("d\n")
    assert proj.cli("status").code == 0  # certified again, with d there
    for _ in range(2):
        assert proj.cli("run", "-q").code == 0
    assert replayed(proj) is not None


@pytest.mark.parametrize("text", [
    PLAIN + "  f: {run: tasks:f, target: out/f.txt}\n",  # a Python task: its code is in files the key does not hold
    PLAIN + "  f: {shell: 'cat in.txt > {output}', deps: [in.txt], target: out/f.txt}\n",
    PLAIN + "  f: {shell: 'echo f > {output}', target: out/f.txt, cache_for: 1h}\n",
    PLAIN + "  f: {shell: 'echo {run_id} > {output}', target: 'out/f.txt'}\n",
], ids=["python", "deps", "cache_for", "run id"])
def test_a_table_resting_on_more_is_not_certified(project, text):
    proj = project(text)
    proj.write("in.txt", "in\n")
    proj.write("tasks.py", "def f():\n    return 1\n")
    proj.cli("run")
    for _ in range(2):
        assert proj.cli("status").code == 0
    assert replayed(proj) is None


def test_other_forms_of_status_are_not_replayed(project):
    proj = certified(project)
    for args in (["--json"], ["--verify"], ["--date", "2026-01-01..2026-01-02"], ["--trust"]):
        assert replayed(proj, *args) is None


def test_the_console_script_answers_before_importing_the_cli(project):
    proj = certified(project)  # certified in this process: a command elsewhere has its own key, and certifies once
    for first in (True, False):
        proc = subprocess.run([sys.executable, "-X", "importtime", "-m", "targetrun", "status", "-f", str(proj.file)],
                              cwd=proj.root, capture_output=True, text=True, timeout=60)
        assert proc.returncode == 0 and ("targetrun.cli" in proc.stderr) == first
    assert [line.split()[:3] for line in proc.stdout.splitlines()] == \
        [line.split()[:3] for line in full(proj, time.time()).splitlines()]


def _many(n: int) -> str:
    tasks = "".join(f"  t{i}: {{shell: 'echo {i} > {{output}}', target: 'out/t{i}.txt'}}\n" for i in range(n))
    half = tasks.index(f"  t{n // 2}:")  # a failed last run amid the succeeded ones
    return (f"name: many\ntasks:\n{tasks[:half]}  fails: {{shell: 'exit 3', target: out/never.txt}}\n"
            f"{tasks[half:]}  bare: {{shell: 'echo x'}}\n")


# Ages around every boundary of the duration words: under a second (ms), tenths, seconds,
# minutes, hours, days; the same age many times; a modification time in the future.
AGES = [0.0, 0.0004, 0.0006, 0.3, 0.9994, 0.9996, 1.0, 1.04, 1.05, 1.06, 5.55, 9.94, 9.96, 10.0, 10.5, 11.5, 59.4,
        59.6, 60.0, 61.0, 119.9, 3599.0, 3600.0, 7199.0, 86399.0, 172799.0, 172800.0, 10 ** 6, -1.0, -0.0004]


def test_the_replay_prints_what_the_full_status_prints_at_every_age(project):
    """Many targets, their ages on and around the boundaries of the words that say them, in
    no order (ties, a time in the future); a failed last run, rows without an age or
    without a last run: the replay's table is the full status's, at many moments."""
    n = 90
    proj = project(_many(n))
    proj.cli("run", "--keep-going")  # `fails` fails: a failed last run
    proj.write("Pipelinefile.yaml", _many(n) + "  added: {shell: 'echo a > {output}', target: out/added.txt}\n"
               "  unmade: {shell: 'echo u > {output}', target: out/unmade.txt}\n")
    proj.write("out/added.txt", "a\n")  # a target without a last run
    now = time.time()
    for i in range(n):
        age = AGES[(i * 7) % len(AGES)] if i % 5 else AGES[3]  # every fifth the same
        os.utime(proj.root / "out" / f"t{i}.txt", (now - age, now - age))
    assert proj.cli("status").code == 0
    assert replayed(proj) is not None
    shown = full(proj, now)
    assert "failed" in shown and "target missing" in shown and "ms " in shown and "2d0h" in shown
    for later in (0.0, 0.0005, 0.05, 0.5, 0.96, 4.5, 50.0, 59.5, 3000.0, 86400.0 * 1.5):
        answer = replayed(proj, now=now + later)
        if answer is None:  # the UTC day ended meanwhile
            assert time.gmtime(now + later).tm_yday != time.gmtime(now).tm_yday
            continue
        assert answer == (0, full(proj, now + later)), later


@pytest.mark.parametrize("damage", ["cut short", "a byte more", "a column's size", "rows", "its first line alone"])
def test_a_damaged_certificate_is_not_used(project, damage):
    proj = certified(project)
    folder = proj.root / ".targetrun" / "replay"
    (path,) = [folder / name for name in os.listdir(folder) if (folder / name).read_bytes().find(b'"sizes"') > 0]
    data = path.read_bytes()
    first, columns = data.split(b"\n", 1)
    if damage == "cut short":
        data = data[:-1]
    elif damage == "a byte more":
        data += b"\0"
    elif damage == "a column's size":
        data = first.replace(b'"sizes":[', b'"sizes":[1') + b"\n" + columns
    elif damage == "rows":
        data = first.replace(b'"rows":', b'"rows":1') + b"\n" + columns
    else:
        data = first
    path.write_bytes(data)
    assert replayed(proj) is None
    assert proj.cli("status").code == 0 and replayed(proj) is not None  # the full status certifies it again


def test_a_fifo_at_a_target_is_never_opened_by_status_run_or_their_replays(project):
    """A FIFO where a target was: opening it for reading would wait for a writer forever.
    Every command, full or answered from a certificate, looks at it without opening it."""
    proj = project(PLAIN)
    assert proj.cli("run").code == 0
    os.remove(proj.root / "out" / "c.txt")
    os.mkfifo(proj.root / "out" / "c.txt")
    said = []
    for args in (["status"], ["status"], ["run", "-q"], ["run", "-q"], ["status"], ["status", "--verify"]):
        proc = subprocess.run([sys.executable, "-m", "targetrun", *args], cwd=proj.root, capture_output=True,
                              text=True, timeout=60, stdin=subprocess.DEVNULL)
        said.append((args, proc.returncode, proc.stdout, proc.stderr))
    assert [code for _args, code, _out, _err in said[:5]] == [0] * 5, said
    rows = [[line.split()[:3] for line in out.splitlines()] for args, _code, out, _err in said if args == ["status"]]
    assert rows[0] == rows[1] == rows[2] and ["c", "out/c.txt", "target"] in rows[0], rows
    verified = [line for line in said[5][2].splitlines() if line.startswith("c ")]
    assert said[5][1] == 0 and len(verified) == 1 and "will run" in verified[0], said[5]


def test_a_percent_sign_in_a_target_is_printed_as_it_is(project):
    """The replay formats its table with ``%``: a row's own ``%`` is text, not a placeholder."""
    proj = certified(project, PLAIN.replace("out/c.txt", "out/100%s%%.txt"))
    now = time.time()
    answer = replayed(proj, now=now)
    assert answer is not None and answer == (0, full(proj, now)) and "out/100%s%%.txt" in answer[1], answer


def test_targets_are_looked_at_folder_by_folder_a_missing_folder_holding_none(project):
    proj = project(PLAIN + "  g: {shell: 'echo g > {output}', target: gone/deeper/g.txt}\n")
    assert proj.cli("run").code == 0
    os.remove(proj.root / "gone" / "deeper" / "g.txt")
    os.rmdir(proj.root / "gone" / "deeper")
    assert proj.cli("status").code == 0
    now = time.time()
    assert replayed(proj, now=now) == (0, full(proj, now))  # its folder missing: g is missing
    os.mkdir(proj.root / "gone" / "deeper")
    assert replayed(proj, now=now) == (0, full(proj, now))  # the folder back, empty: g still missing
    (proj.root / "gone" / "deeper" / "g.txt").write_text("g\n")
    assert replayed(proj) is None  # g made since
    os.remove(proj.root / "gone" / "deeper" / "g.txt")
    os.rmdir(proj.root / "gone" / "deeper")
    (proj.root / "gone" / "deeper").write_text("a file where the folder was\n")
    assert replayed(proj) is None  # cannot tell from there: the full status says


def _certify_after(proj, change: Callable[..., object]) -> str:
    """The full status of ``proj`` in this process -- its table built, then ``change``
    made, then the table certified, as the CLI does after printing: the certificate's path."""
    from targetrun.certify import StatusWitness, certify_status

    ticket = status_replay.ticket(["status", "-f", str(proj.file)])
    assert ticket is not None
    witness = StatusWitness()
    report = api.status(str(proj.file), witness=witness)
    now = time.time()
    out = io.StringIO()
    render_status(report, out, colour=False, now=now)
    change()
    certify_status(ticket, witness, report, out.getvalue(), now)
    return ticket.path


def test_the_certificate_holds_each_target_as_the_table_saw_it(project):
    """The certificate records every target as the table's look at it saw it, not as a
    second look finds it: a target removed between the two is certified there, and the
    replay, finding it gone, lets the full status answer."""
    proj = project(PLAIN)
    assert proj.cli("run").code == 0
    path = _certify_after(proj, lambda: os.remove(proj.root / "out" / "a.txt"))
    assert os.path.exists(path)  # certified: the table's own look, not another one
    assert replayed(proj) is None
    row = proj.cli("status").out.splitlines()[1]
    assert row.split()[:2] == ["a", "out/a.txt"] and "target missing" in row, row


def test_a_target_made_after_the_tables_look_is_not_replayed_as_missing(project):
    proj = project(PLAIN)
    assert proj.cli("run").code == 0
    os.remove(proj.root / "out" / "d.txt")
    path = _certify_after(proj, lambda: (proj.root / "out" / "d.txt").write_text("d\n"))
    assert os.path.exists(path)
    assert replayed(proj) is None


def test_the_local_storage_signs_each_target_as_the_replay_does(tmp_path):
    """The signature a local stat keeps is the replay's: the certificate records the one and
    the replay compares the other."""
    from targetrun.storage.local import LocalStorage

    target = tmp_path / "t.txt"
    target.write_text("t\n")
    found = LocalStorage().stat_many([str(target), str(tmp_path / "missing.txt")])
    seen = found[str(target)]
    assert seen is not None and seen.signature == status_replay.signature(os.stat(target))
    assert found[str(tmp_path / "missing.txt")] is None
