"""What a folder named in ``deps:`` stands for: the regular files under it, as git tracks
them -- not a FIFO, socket or device found there (never opened: reading a FIFO waits
forever), not targetrun's own files wherever they live (the state store and its journals,
staging files), not the task's own target however its path is spelled.

Each run is a real ``python -m targetrun`` subprocess with a timeout, against real files.
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import subprocess
import sys
from pathlib import Path

from tests.conftest import Project

PIPELINE = """
name: folder
{head}tasks:
  fetch:
    shell: "echo made > {{output}}"
    target: {target}
    cache_validator: [deps]
    deps: ["{deps}"]
"""


def pipeline(deps: str = "data/", target: str = "out/fetch.txt", head: str = "") -> str:
    return PIPELINE.format(deps=deps, target=target, head=head)


def cli(proj: Project, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """``targetrun ARGS`` in a subprocess: a run that opened a FIFO would hang, and be killed here."""
    return subprocess.run([sys.executable, "-m", "targetrun", *args], cwd=proj.root, capture_output=True,
                          text=True, timeout=timeout, stdin=subprocess.DEVNULL)


def fetch_row(proj: Project) -> dict:
    done = cli(proj, "status", "--json")
    assert done.returncode in (0, 1), done.stdout + done.stderr
    return next(r for r in json.loads(done.stdout)["tasks"] if r["task"] == "fetch")


def recorded_deps(store: Path) -> dict[str, str]:
    db = sqlite3.connect(store)
    try:
        (record,) = db.execute("SELECT record FROM checkpoints WHERE location LIKE '%fetch.txt'").fetchone()
    finally:
        db.close()
    return json.loads(record)["deps"]


# -- 3. special files in a folder dep --------------------------------------------------------


def test_a_fifo_socket_or_device_in_a_folder_dep_is_skipped_unopened(project, tmp_path):
    proj = project(pipeline())
    proj.write("data/a.csv", "a\n")
    os.mkfifo(proj.root / "data/pipe")
    (proj.root / "data/sub").mkdir()
    os.mkfifo(proj.root / "data/sub/deeper-pipe")
    os.symlink("/dev/null", proj.root / "data/null")  # a device, reached through a link
    listening = socket.socket(socket.AF_UNIX)
    short = Path(f"/tmp/trustfix-sock-{os.getpid()}")  # a socket path must be short: link to it
    short.mkdir(exist_ok=True)
    try:
        listening.bind(str(short / "s"))
        os.symlink(short / "s", proj.root / "data/sock")
        done = cli(proj, "run")
        assert done.returncode == 0, done.stdout + done.stderr
        assert list(recorded_deps(proj.root / ".targetrun/state.db")) == ["data/a.csv"]
        row = fetch_row(proj)
        assert (row["reason"], row["stale"]) == ("target exists", []), row
        again = cli(proj, "run", "--json")
        assert json.loads(again.stdout)["counts"] == {"skipped": 1}, again.stdout + again.stderr
    finally:
        listening.close()
        (short / "s").unlink(missing_ok=True)
        short.rmdir()


def test_a_fifo_a_glob_matches_is_skipped_but_one_named_is_refused(project):
    proj = project(pipeline(deps="data/*"))
    proj.write("data/a.csv", "a\n")
    os.mkfifo(proj.root / "data/pipe")
    done = cli(proj, "run")
    assert done.returncode == 0, done.stdout + done.stderr
    assert list(recorded_deps(proj.root / ".targetrun/state.db")) == ["data/a.csv"]

    named = project(pipeline(deps="data/pipe"))
    (named.root / "data").mkdir()
    os.mkfifo(named.root / "data/pipe")
    done = cli(named, "run")
    assert done.returncode == 2 and "data/pipe" in done.stderr and "regular file" in done.stderr, done.stderr


# -- 4. targetrun's own files in a folder dep -----------------------------------------------


def test_a_state_store_inside_a_folder_dep_is_not_a_dep(project):
    """`cache: data/state.db` with `deps: [data/]`: the run's own writes to the store (and
    its -wal/-shm/-journal) are not what the task read, so the next run has nothing stale."""
    proj = project(pipeline(head="cache: data/state.db\n"))
    proj.write("data/a.csv", "a\n")
    for _ in range(2):
        done = cli(proj, "run")
        assert done.returncode == 0, done.stdout + done.stderr
    assert list(recorded_deps(proj.root / "data/state.db")) == ["data/a.csv"]
    row = fetch_row(proj)
    assert (row["reason"], row["stale"]) == ("target exists", []), row
    proj.write("data/a.csv", "changed\n")  # a real dep's change is still seen
    assert fetch_row(proj)["reason"] == "deps changed"


def test_a_state_store_reached_through_a_linked_folder_is_not_a_dep(project, tmp_path):
    """The store lives outside the project; the folder dep reaches it through a link."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    proj = project(pipeline(head=f"cache: {elsewhere}/state.db\n"))
    proj.write("data/a.csv", "a\n")
    os.symlink(elsewhere, proj.root / "data/linked")
    for _ in range(2):
        assert cli(proj, "run").returncode == 0
    assert list(recorded_deps(elsewhere / "state.db")) == ["data/a.csv"]
    row = fetch_row(proj)
    assert (row["reason"], row["stale"]) == ("target exists", []), row


def test_staging_files_of_targetrun_in_a_folder_dep_are_not_deps(project):
    """A target being written beside a folder's files (a checkpoint's staging sibling, a
    local temporary sibling) is targetrun's, gone once its write ends."""
    proj = project(pipeline())
    proj.write("data/a.csv", "a\n")
    proj.write("data/.b.csv.targetrun-20261202T000000-abcdef-1", "staged\n")
    proj.write("data/.b.csv.tmp-4242-0123abcd", "temporary\n")
    assert cli(proj, "run").returncode == 0
    assert list(recorded_deps(proj.root / ".targetrun/state.db")) == ["data/a.csv"]


# -- 5. the task's own target, however the folder dep spells it -------------------------------


def test_the_tasks_own_target_reached_through_a_linked_folder_is_not_its_dep(project):
    """`deps: [linked/]` where linked -> out, the folder the task writes out/fetch.txt into:
    what it writes is not what it reads, whatever path leads there."""
    proj = project(pipeline(deps="linked/"))
    proj.write("out/input.csv", "in\n")
    os.symlink("out", proj.root / "linked")
    for _ in range(2):
        done = cli(proj, "run", "--json")
        assert done.returncode == 0, done.stdout + done.stderr
    assert json.loads(done.stdout)["counts"] == {"skipped": 1}, done.stdout
    assert list(recorded_deps(proj.root / ".targetrun/state.db")) == ["linked/input.csv"]
    row = fetch_row(proj)
    assert (row["reason"], row["stale"]) == ("target exists", []), row
