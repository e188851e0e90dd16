"""Hostile review, round 8: the trust guarantees under kill -9 of the whole run, a symlink
swapped in at the commit, and hostile text in every output.

A task's own code can write its target path (``printf half > o/a.txt``). When the attempt
fails, or is stopped, the run removes what it made there (engine/work.py). A ``kill -9`` of
the whole run -- the inline executor runs the task in the run's own process -- leaves
nobody to undo it: the next run found the half file and took it as made ("skipped: target
exists"). The pending write of the attempt now says whether its target was absent before
it began, and the next command's recovery removes such a target that no committed record
vouches for, once its run is dead; a file that was there before is never removed.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.clirun import in_process, write_project

STEPS = '''
import os, time

HERE = os.path.dirname(os.path.abspath(__file__))

def half():
    with open(os.path.join(HERE, "o", "p.txt"), "w") as f:
        f.write("half a value")
    open(os.path.join(HERE, "o", "started"), "w").close()
    time.sleep(30)
    return "whole"
'''


def _killed_while_writing(root: Path, *args: str) -> None:
    """Start ``targetrun run ARGS`` (inline executor), wait until its task said it wrote its
    target itself, then kill -9 the whole run. (A short lease: its task's lock is free soon
    after, for a later run.)"""
    process = subprocess.Popen([sys.executable, "-m", "targetrun", "run", *args], cwd=root, start_new_session=True,
                               env={**os.environ, "TARGETRUN_LOCK_LEASE": "0.3"},
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while not (root / "o/started").exists():
        assert process.poll() is None and time.monotonic() < deadline, process.communicate()[0]
        time.sleep(0.01)
    os.killpg(process.pid, signal.SIGKILL)
    process.communicate(timeout=10)
    (root / "o/started").unlink()


def _states(root: Path) -> dict[str, str]:
    done = in_process(root, "status", "--json")
    assert done.returncode == 0, done.stdout + done.stderr
    return {t["task"]: t["state"] for t in json.loads(done.stdout)["tasks"]}


TASKS = {
    "shell": '  a: {shell: "printf half > o/a.txt; touch o/started; sleep 30", target: o/a.txt}\n',
    "python": "  a: {run: steps:half, target: o/p.txt}\n",
}


@pytest.mark.parametrize("store", ["sqlite", "redis"])
@pytest.mark.parametrize("kind", ["shell", "python"])
def test_kill_9_of_the_run_leaves_no_half_target_it_wrote_itself(tmp_path: Path, kind: str, store: str,
                                                                   request: pytest.FixtureRequest) -> None:
    cache = f"cache: {request.getfixturevalue('redis_url')}\n" if store == "redis" else ""
    root = write_project(tmp_path, f"name: killed\n{cache}tasks:\n" + TASKS[kind], **{"steps.py": STEPS})
    (root / "o").mkdir()
    _killed_while_writing(root)
    target = root / ("o/a.txt" if kind == "shell" else "o/p.txt")
    assert target.exists()  # what the task wrote itself, before the kill
    states = _states(root)
    assert not target.exists(), "the half-made target of a killed run was left for the next run to skip"
    assert states["a"].startswith("will run"), states
    assert not [p.name for p in (root / "o").iterdir()], "a staging file was left"


def test_kill_9_keeps_a_target_that_was_there_before_the_attempt(tmp_path: Path) -> None:
    root = write_project(tmp_path, "name: killed\ntasks:\n"
                                   '  a: {shell: "printf more >> o/a.txt; touch o/started; sleep 30", target: o/a.txt}\n')
    (root / "o").mkdir()
    (root / "o/a.txt").write_text("mine ")
    _killed_while_writing(root, "--force", "a")
    _states(root)
    assert (root / "o/a.txt").read_text() == "mine more", "a file that was there before the attempt was removed"


def test_a_schema_7_store_with_a_pending_write_is_upgraded(tmp_path: Path) -> None:
    """The mark is a new column (schema 8): a pending write an older targetrun left reads
    as "cannot tell" (never removes a target), and a new one keeps its mark."""
    import sqlite3

    from targetrun.store.base import PendingWrite
    from targetrun.store.sqlite import SqliteStore

    path = tmp_path / "state.db"
    SqliteStore(str(path)).close()
    db = sqlite3.connect(path)
    db.executescript("ALTER TABLE pending DROP COLUMN absent; PRAGMA user_version = 7; "
                     "INSERT INTO pending VALUES ('/p/o/.a.targetrun-r-1-00', 'r', '/p/o/a', 'local', NULL, NULL);")
    db.close()
    store = SqliteStore(str(path))
    try:
        assert [p.absent for p in store.pending_writes()] == [False]
        store.intend_write(PendingWrite("r", "/p/o/b", "/p/o/.b.targetrun-r-1-00", "local", absent=True))
        assert {p.location: p.absent for p in store.pending_writes()} == {"/p/o/a": False, "/p/o/b": True}
    finally:
        store.close()


def test_after_a_kill_9_a_target_another_run_made_since_or_someone_put_there_is_kept(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The pending write of the killed run stays a while (engine/recovery.py STRAGGLER_GRACE)
    and is looked at by every command meanwhile: a target a later run made, its record
    vouching for it, stays; and so does one changed after the killed run's last sign of life."""
    from targetrun.engine import recovery

    root = write_project(tmp_path, "name: killed\ntasks:\n" + TASKS["shell"])
    (root / "o").mkdir()
    _killed_while_writing(root)
    assert _states(root)["a"].startswith("will run") and not (root / "o/a.txt").exists()
    (root / "Pipelinefile.yaml").write_text('name: killed\ntasks:\n  a: {shell: "printf whole > {output}", target: o/a.txt}\n')
    made = in_process(root, "run")
    assert made.returncode == 0, made.stdout + made.stderr
    assert not _states(root)["a"].startswith("will run") and (root / "o/a.txt").read_text() == "whole"
    (root / "o/a.txt").unlink()
    (root / "o/a.txt").write_text("put here by hand")  # no record vouches for it; changed after the kill
    monkeypatch.setattr(recovery, "_LAST_SIGN_SLACK", -60.0)  # (a minute's wait, without waiting)
    _states(root)
    assert (root / "o/a.txt").read_text() == "put here by hand"


# -- a symlink swapped in between the last check and the commit ---------------------------

SWAP = '''
import os, shutil

HERE = os.path.dirname(os.path.abspath(__file__))

def swap(city, victim):
    folder = os.path.join(HERE, "out", city)
    shutil.rmtree(folder)  # after the run's last look at the folder, before the value is written
    os.symlink(victim, folder)
    return {"city": city}
'''


def test_a_symlink_swapped_in_after_the_last_check_does_not_lead_the_commit_out(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.mkdir()
    root = write_project(tmp_path / "p", "name: swapped\nparams:\n  city: paris\n  victim: x\ntasks:\n"
                                         "  a: {run: swap:swap, args: {city: '{params.city}', victim: '{params.victim}'},"
                                         " target: 'out/{params.city}/x.json'}\n", **{"swap.py": SWAP})
    (root / "out/paris").mkdir(parents=True)
    done = in_process(root, "run", "-p", f"victim={victim}")
    assert sorted(p.name for p in victim.iterdir()) == [], "the value was moved out of its result location"
    assert done.returncode == 2 and "Traceback" not in done.stdout + done.stderr, done.stdout + done.stderr
    assert "symlink" in done.stdout and str(victim) in done.stdout, done.stdout


def test_a_symlink_inside_the_result_location_still_commits(tmp_path: Path) -> None:
    """The check at the commit is where the folder really is, not "no symlink at all": a
    value led through a symlink that stays inside is written as planning allowed it."""
    root = write_project(tmp_path, "name: inside\nparams:\n  city: latest\ntasks:\n"
                                   "  a: {shell: 'printf v > {output}', target: 'out/{params.city}/x.txt'}\n")
    (root / "out/2026").mkdir(parents=True)
    (root / "out/latest").symlink_to("2026", target_is_directory=True)
    done = in_process(root, "run")
    assert done.returncode == 0, done.stdout + done.stderr
    assert (root / "out/2026/x.txt").read_text() == "v"


# -- hostile input: one paragraph, a distinct exit code, never a traceback or a secret ------


@pytest.mark.parametrize("command", [["status"], ["validate"]])
def test_a_cache_url_with_a_broken_ipv6_host_is_a_usage_error_without_its_password(tmp_path: Path,
                                                                                   command: list[str]) -> None:
    root = write_project(tmp_path, 'name: p\ncache: "redis://:s3cr3tpw@[::1:6379/0"\n'
                                   'tasks:\n  a: {shell: "echo hi > {output}", target: out/a.txt}\n')
    done = in_process(root, *command)
    said = done.stdout + done.stderr
    assert done.returncode == 2 and "Traceback" not in said and "internal error" not in said, said
    assert "line 2" in said and "cache" in said and "s3cr3tpw" not in said, said


# -- gc never follows a symlink out of .targetrun ---------------------------------------------

GC_STEPS = "def a():\n    return 1\n\ndef b(a):\n    return a\n"


@pytest.mark.parametrize("linked", ["run folder", "results folder"])
def test_gc_does_not_remove_a_recorded_value_through_a_symlinked_folder(tmp_path: Path, linked: str) -> None:
    """A pruned run's value without a target is recorded at .targetrun/results/RUN/a.pkl;
    with that run's folder (or the results folder) now a symlink to elsewhere, removing the
    recorded path removed a file outside the project (gc's docstring: a symlinked folder is
    left alone)."""
    root = write_project(tmp_path / "p", "name: g\ntasks:\n  a: {run: steps:a}\n"
                                         "  b: {run: steps:b, needs: [a], target: out/b.json}\n", **{"steps.py": GC_STEPS})
    assert in_process(root, "run", "-q").returncode == 0
    results = root / ".targetrun/results"
    (old,) = [p.name for p in results.iterdir()]
    assert in_process(root, "run", "-q", "--force-all").returncode == 0
    elsewhere = tmp_path / "elsewhere"
    if linked == "run folder":
        (elsewhere).mkdir()
        (elsewhere / "a.pkl").write_text("precious")
        for path in (results / old).iterdir():
            path.unlink()
        (results / old).rmdir()
        (results / old).symlink_to(elsewhere, target_is_directory=True)
        victim = elsewhere / "a.pkl"
    else:
        results.rename(elsewhere)
        results.symlink_to(elsewhere, target_is_directory=True)
        victim = elsewhere / old / "a.pkl"
        victim.write_text("precious")
    done = in_process(root, "gc", "--keep-runs", "1")
    assert done.returncode == 0, done.stdout + done.stderr
    assert victim.read_text() == "precious", "gc removed a file outside the project through a symlink"


def test_a_url_password_in_json_with_escaped_slashes_is_masked_in_the_output_and_the_log(tmp_path: Path) -> None:
    r"""PHP's json_encode, Jackson and others write ``https:\/\/user:pw@host\/x``: still
    ``scheme://user:password@host`` (README, Security), printed by a task that fails."""
    emit = 'def a():\n    print(r\'{"url":"https:\\/\\/app:hunter2secret@db.example.com\\/x"}\')\n    raise RuntimeError("no")\n'
    root = write_project(tmp_path, "name: p\ntasks:\n  a: {run: emit:a, target: out/a.json}\n", **{"emit.py": emit})
    done = in_process(root, "run")
    assert done.returncode == 1, done.stdout + done.stderr
    shown = in_process(root, "logs", "a")
    assert "db.example.com" in shown.stdout, shown.stdout + shown.stderr
    kept = "".join(p.read_text() for p in (root / ".targetrun/logs").rglob("*") if p.is_file())
    for said in (done.stdout, done.stderr, shown.stdout, kept):
        assert "hunter2secret" not in said, said


# -- YAML aliases multiplying a long value -------------------------------------------------


def test_aliases_multiplying_a_long_string_are_refused_before_anything_is_built(tmp_path: Path) -> None:
    """A 900 KB Pipelinefile whose params alias one 900 KB string 2,000 times passed the
    alias limit (it counts values: 2,001) and `run` rendered and fingerprinted 1.8 GB: 5 GB
    of memory and minutes. The text aliases expand to is bounded as the file is (64 MiB)."""
    big = "x" * 900_000
    root = write_project(tmp_path, f'name: p\nparams:\n  s: &s "{big}"\n  big: [' + ", ".join(["*s"] * 2000) + "]\n"
                                   'tasks:\n  a: {shell: "echo {params.big} > {output}", target: out/a.txt}\n')
    started = time.monotonic()
    for command in ("validate", "run"):
        done = in_process(root, command)
        said = done.stdout + done.stderr
        assert done.returncode == 2 and "line 4" in said and "MiB of text" in said and "Traceback" not in said, said
    assert time.monotonic() - started < 5


def test_aliases_of_long_text_within_the_bound_still_load(tmp_path: Path) -> None:
    text = "y" * 100_000
    root = write_project(tmp_path, f'name: p\nparams:\n  s: &s "{text}"\n  many: [' + ", ".join(["*s"] * 50) + "]\n"
                                   'tasks:\n  a: {shell: "echo hi > {output}", target: out/a.txt}\n')
    done = in_process(root, "validate")
    assert done.returncode == 0, done.stdout + done.stderr


# -- result URLs that silently became local folders -------------------------------------------


CHAINED = "simplecache::s3://key:pw9secretx@bucket/x"


@pytest.mark.parametrize(("where", "url"), [
    ("results", "file://app:pw7secretx@localhost/tmp/x"), ("results", CHAINED),
    ("task", "file://app:pw7secretx@localhost/tmp/x"), ("task", CHAINED), ("target", CHAINED + ".txt"),
    ("deps", CHAINED + ".csv")])
def test_a_url_that_is_no_path_nor_a_url_targetrun_reads_is_refused(tmp_path: Path, url: str, where: str) -> None:
    """``file://HOST/...`` dropped ``file://`` and wrote under ``HOST/...`` in the project; a
    chained fsspec URL (``simplecache::s3://...``) was a relative path: the task "ran" into
    a local folder named after the URL, and `status --json` printed the path, credentials
    and all (normalised to ``s3:/KEY:SECRET@bucket``, which no redaction rule reads)."""
    task = '  a: {shell: "echo hi > {output}", target: a.txt'
    body = {"results": f'results:\n  lake: {{url: "{url}"}}\ntasks:\n{task}, result: lake}}\n',
            "task": f'tasks:\n{task}, result: "{url}"}}\n',
            "target": f'tasks:\n  a: {{shell: "echo hi > {{output}}", target: "{url}"}}\n',
            "deps": f'tasks:\n{task}, deps: ["{url}"]}}\n'}[where]
    root = write_project(tmp_path / "p", "name: p\n" + body)
    for command in ("validate", "run"):
        done = in_process(root, command)
        said = done.stdout + done.stderr
        assert done.returncode == 2 and "Traceback" not in said and "secretx" not in said, said
        assert "line 3" in said and ("chained" in said or "file://" in said), said
    assert sorted(p.name for p in root.iterdir()) == [".targetrun", "Pipelinefile.yaml"] or \
        sorted(p.name for p in root.iterdir()) == ["Pipelinefile.yaml"]


# -- a command longer than the system lets one command be ------------------------------------


def test_a_command_too_long_to_start_fails_in_one_paragraph_without_targetruns_traceback(tmp_path: Path) -> None:
    """A 200 KB parameter in a shell command: `sh -c` takes at most 128 KiB in one argument
    (Linux), the start fails with E2BIG, and the failure showed targetrun's own frames
    (direct.py, subprocess.py) as if they were the task's; it is a usage error, not retried."""
    root = write_project(tmp_path, f'name: p\nparams:\n  s: "{"x" * 200_000}"\n'
                                   'tasks:\n  a: {shell: "echo {params.s} > {output}", target: out/a.txt, max_retries: 2}\n')
    done = in_process(root, "run")
    said = done.stdout + done.stderr
    assert done.returncode == 2, said[-2000:]
    assert "Traceback" not in said and "direct.py" not in said and "Argument list too long" in said, said[-2000:]
    assert "attempt 2" not in said and said.count("\n") < 10, said[-2000:]
