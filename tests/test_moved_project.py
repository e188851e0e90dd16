"""A project folder moved or re-cloned together with its state keeps every record (issue 12).

Local locations are recorded relative to the Pipelinefile's folder (targetrun/store/rooted.py):
a copy of the whole folder (``.targetrun/`` included) at another path, with fresh mtimes,
finds its checkpoint records, cache entries and history as they were -- nothing is stale or
unknown, nothing runs, pickles are still vouched for. Real processes and files throughout:
every command is a fresh ``python -m targetrun``.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from targetrun.store.rooted import Keys

TASKS = '''
import os


def _log(name):
    with open(os.path.join(os.path.dirname(__file__), "calls.log"), "a") as f:
        f.write(name + "\\n")


def up():
    _log("up")
    return {"values": [3, 1, 2]}


def mid(up):
    _log("mid")
    return sorted(up["values"])


def down(up, mid):
    _log("down")
    return {"n": len(up["values"]), "low": mid[0]}
'''

PIPELINE = """
name: moved
{head}
defaults:
  cache_validator: [code]
tasks:
  up:
    run: tasks:up
    target: out/up.pkl
    {up_extra}
  mid:
    run: tasks:mid
    needs: [up]
    cache_for: 1d
  down:
    run: tasks:down
    needs: [up, mid]
    target: out/down.json
"""


class Folder:
    """A project folder driven by real ``python -m targetrun`` processes."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def tr(self, *args: str) -> subprocess.CompletedProcess[str]:
        env = {k: v for k, v in os.environ.items() if k != "TARGETRUN_TRUST"}
        return subprocess.run([sys.executable, "-m", "targetrun", *args], cwd=self.root, env=dict(env, NO_COLOR="1"),
                              capture_output=True, text=True, timeout=120)

    def ok(self, *args: str) -> str:
        done = self.tr(*args)
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout

    def status(self) -> dict[str, dict[str, object]]:
        return {row["task"]: row for row in json.loads(self.ok("status", "--json"))["tasks"]}

    def ran(self, *args: str) -> list[str]:
        """The tasks a ``run`` called (from their own log, not from targetrun's words)."""
        (self.root / "calls.log").unlink(missing_ok=True)
        self.ok("run", *args)
        path = self.root / "calls.log"
        return path.read_text().split() if path.exists() else []

    def edit(self, name: str, old: str, new: str) -> None:
        path = self.root / name
        text = path.read_text()
        assert old in text
        path.write_text(text.replace(old, new))


def make(where: Path, *, head: str = "", up_extra: str = "") -> Folder:
    where.mkdir(parents=True)
    (where / "tasks.py").write_text(TASKS)
    (where / "Pipelinefile.yaml").write_text(textwrap.dedent(PIPELINE.format(head=head, up_extra=up_extra)))
    return Folder(where)


def move(folder: Folder, to: Path) -> Folder:
    """The whole folder, state included, copied elsewhere with new mtimes; the original gone."""
    shutil.copytree(folder.root, to)
    shutil.rmtree(folder.root)
    later = time.time() + 1000
    for path in to.rglob("*"):
        os.utime(path, (later, later))  # a fresh clone: new mtimes everywhere
    return Folder(to)


def assert_all_vouched_for(folder: Folder) -> None:
    """Nothing would run, nothing is stale, and every record is found: a run reads the
    pickled upstreams without --trust, and an edit of a task's code is seen as one."""
    assert folder.tr("status", "--check").returncode == 0
    rows = folder.status()
    assert {name: (row["state"].split(" (")[0], row["stale"]) for name, row in rows.items()} == {
        "up": ("target exists", []), "mid": ("cache hit", []), "down": ("target exists", [])}
    assert folder.ran() == []
    assert folder.ran("--force", "down") == ["down"]  # reads up.pkl and mid's pickle: both still vouched for
    assert json.loads(folder.ok("show", "up")) == {"values": [3, 1, 2]}
    folder.edit("tasks.py", '"low": mid[0]', '"low": mid[0] + 0')
    # Its record is found: a code change is a change (with no record it would be "unknown", never stale)
    assert folder.status()["down"]["stale"] == [{"what": "code", "detail": "tasks.py: down"}]
    assert folder.ran() == ["down"]


def test_a_moved_project_with_its_sqlite_state_finds_every_record(tmp_path):
    folder = make(tmp_path / "proj")
    assert folder.ran() == ["up", "mid", "down"]
    first_run = folder.ok("history").splitlines()[1].split()[0]
    moved = move(folder, tmp_path / "elsewhere" / "renamed-clone")
    assert_all_vouched_for(moved)
    assert first_run in moved.ok("history")  # and the history from before the move is there


def test_two_clones_sharing_one_redis_store_see_each_others_records(tmp_path, redis_url):
    import redis

    first = make(tmp_path / "a" / "proj", head=f"cache: {redis_url}")
    assert first.ran("up") == ["up"]
    second = Folder(tmp_path / "b" / "clone")
    shutil.copytree(first.root, second.root)  # a second checkout, its own copy of the files
    assert second.ran() == ["mid", "down"]  # up.pkl: vouched for by the first clone's record, no --trust
    # ... and the first clone, given the second's outputs, finds the second's records.
    shutil.copytree(second.root / "out", first.root / "out", dirs_exist_ok=True)
    shutil.copytree(second.root / ".targetrun" / "results", first.root / ".targetrun" / "results", dirs_exist_ok=True)
    assert_all_vouched_for(first)
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    try:
        keys = set(client.keys("targetrun:ckpt:*"))
    finally:
        client.close()
    assert {"targetrun:ckpt:{root}/out/up.pkl", "targetrun:ckpt:{root}/out/down.json"} <= keys
    assert not [key for key in keys if str(tmp_path) in key]  # no clone's path in a shared key


def _as_old_records(db_path: Path, root: Path) -> None:
    """Rewrite a store as a targetrun from before relative keys left it: every local
    location under its absolute path."""
    located = Keys(str(root), "moved").located

    def absolute(text: str) -> str:
        d = json.loads(text)
        place = d["checkpoint"] if "checkpoint" in d else d
        place["location"] = located(place["location"])
        return json.dumps(d)

    db = sqlite3.connect(db_path)
    try:
        for location, record in db.execute("SELECT location, record FROM checkpoints").fetchall():
            db.execute("UPDATE checkpoints SET location = ?, record = ? WHERE location = ?",
                       (located(location), absolute(record), location))
        for key, variant, record in db.execute("SELECT key, variant, record FROM cache").fetchall():
            db.execute("UPDATE cache SET record = ? WHERE key = ? AND variant = ?", (absolute(record), key, variant))
        db.execute("UPDATE task_runs SET target = replace(target, '{root}', ?)", (str(root),))
        db.commit()
        rows = db.execute("SELECT location FROM checkpoints").fetchall()
        assert rows and all(loc.startswith(str(root) + "/") for (loc,) in rows)
    finally:
        db.close()


def test_records_keyed_by_absolute_path_are_still_honoured_where_the_project_is(tmp_path):
    folder = make(tmp_path / "proj")
    assert folder.ran() == ["up", "mid", "down"]
    db_path = folder.root / ".targetrun" / "state.db"
    _as_old_records(db_path, folder.root)
    assert_all_vouched_for(folder)  # the old records: found, vouched for, compared
    db = sqlite3.connect(db_path)
    try:
        locations = {loc for (loc,) in db.execute("SELECT location FROM checkpoints")}
    finally:
        db.close()
    assert "{root}/out/down.json" in locations  # rewritten: now under its relative key
    assert f"{folder.root}/out/up.pkl" in locations  # not rewritten: still the old record
    folder.ok("invalidate", "up")  # removes the target an old record vouches for, and forgets that record
    assert not (folder.root / "out" / "up.pkl").exists()
    db = sqlite3.connect(db_path)
    try:
        assert db.execute("SELECT location FROM checkpoints WHERE task = 'up'").fetchall() == []
    finally:
        db.close()


def test_s3_target_keys_are_unchanged_beside_relative_local_ones(tmp_path, s3, s3_server):
    options = json.dumps({"key": "testing", "secret": "testing", "client_kwargs": {"endpoint_url": s3_server.endpoint}})
    head = f"results:\n  lake:\n    url: s3://test-bucket/lake\n    options: {options}"
    folder = make(tmp_path / "proj", head=head, up_extra="result: lake")
    assert folder.ran() == ["up", "mid", "down"]
    assert s3.exists("test-bucket/lake/out/up.pkl")
    db = sqlite3.connect(folder.root / ".targetrun" / "state.db")
    try:
        keys = dict(db.execute("SELECT task, location FROM checkpoints").fetchall())
    finally:
        db.close()
    assert keys["up"] == "s3://test-bucket/lake/out/up.pkl"  # a URL names the same object from anywhere
    assert keys["down"] == "{root}/out/down.json" and keys["mid"].startswith("{root}/.targetrun/results/")
    moved = move(folder, tmp_path / "elsewhere" / "clone")
    assert moved.tr("status", "--check").returncode == 0
    assert moved.ran() == []
    assert moved.ran("--force", "down") == ["down"]  # the pickle on S3 and the local one: both vouched for


def test_a_write_stopped_before_its_commit_is_recovered_where_the_project_moved_to(tmp_path):
    """A run died between moving a pickle onto its target and committing its record, and
    with a staged file it never moved; the folder then moved. The next run finishes both
    in the new place: the moved pickle is committed (and read without --trust), the staged
    file is removed."""
    import hashlib
    import pickle

    from targetrun import api
    from targetrun.model import Checkpoint
    from targetrun.store.base import PendingWrite, RunRecord, RunStatus

    root = tmp_path / "proj"
    root.mkdir()
    (root / "Pipelinefile.yaml").write_text(
        "name: stopped\ntasks:\n  made: {run: m:made, target: out/made.pkl}\n"
        "  user: {run: m:user, needs: [made], target: out/user.pkl}\n")
    (root / "m.py").write_text("def made():\n    return 41\n\ndef user(made):\n    return made + 1\n")
    (root / "out").mkdir()
    data = pickle.dumps(41)
    (root / "out" / "made.pkl").write_bytes(data)  # moved onto its target; the commit never happened
    (root / "out" / ".user.pkl.targetrun-r1-2-cd").write_bytes(pickle.dumps(0))  # staged, never moved
    store = api.open_store(api.load(str(root)))  # as a run of this version writes them
    try:
        store.begin_run(RunRecord("r1", "stopped", 1.0, RunStatus.INTERRUPTED))
        writes = (("made", ".made.pkl.targetrun-r1-1-ab", data),
                  ("user", ".user.pkl.targetrun-r1-2-cd", pickle.dumps(0)))
        for task, staging, value in writes:
            target, staged = str(root / "out" / f"{task}.pkl"), str(root / "out" / staging)
            store.intend_write(PendingWrite("r1", target, staged, "local"))
            digest = hashlib.sha256(value).hexdigest()
            store.prepare_write(staged, Checkpoint(task, target, "pickle", len(value), digest, "r1", 1.0, 0.0, {}, {},
                                                   "local"), None)
    finally:
        store.close()
    moved = move(Folder(root), tmp_path / "elsewhere" / "proj")
    done = moved.ok("run", "--json")  # made.pkl: vouched for by the record the recovery committed
    assert {t["task"]: t["state"] for t in json.loads(done)["tasks"]} == {"made": "skipped", "user": "succeeded"}
    assert pickle.loads((moved.root / "out" / "user.pkl").read_bytes()) == 42
    assert list((moved.root / "out").glob(".*")) == []  # the staged file was found where it is now
    assert moved.tr("status", "--check").returncode == 0


def test_gc_in_a_moved_project_keeps_the_value_a_cache_entry_points_to(tmp_path):
    folder = make(tmp_path / "proj")
    assert folder.ran() == ["up", "mid", "down"]
    first_run = folder.ok("history").splitlines()[1].split()[0]
    moved = move(folder, tmp_path / "elsewhere" / "clone")
    kept = moved.root / ".targetrun" / "results" / first_run / "mid.pkl"
    doc = json.loads(moved.ok("gc", "--keep-runs", "0", "--json"))  # the run that wrote it goes
    assert {"location": f".targetrun/results/{first_run}/mid.pkl", "why": "a cache entry points to it"} in doc["kept"]
    assert kept.exists()  # mid's cached value, where the project is now
    assert moved.ran("--force", "down") == ["down"]  # mid: still a cache hit, its value read without --trust


def test_keys_round_trip_and_never_confuse_two_locations():
    """Whatever the path: a location comes back as itself (where the project is), two
    locations never share a key, and only paths inside the project are root-marked."""
    from hypothesis import given, settings
    from hypothesis import strategies as st

    keys = Keys("/w/pro}j", "p")
    names = st.text(st.sampled_from("ab/.}{%:"), max_size=12)
    locations = st.one_of(names.map(lambda n: f"/w/pro}}j/{n}"), names.map(lambda n: f"/w/{n}"),
                          names.map(lambda n: f"s3://b/{n}"))

    @settings(max_examples=300, deadline=None)
    @given(locations, locations)
    def check(a: str, b: str) -> None:
        for key in (keys.stored, keys.placed):
            assert keys.located(key(a)) == a and keys.located(key(a), own=False) == a
            assert (key(a) == key(b)) == (a == b)
        assert (keys.stored(a) != a) == a.startswith("/w/pro}j/")
        assert Keys("/else/where", "p").located(keys.stored(a)) == (
            "/else/where/" + a[len("/w/pro}j/"):] if a.startswith("/w/pro}j/") else a)

    check()


def test_a_clone_sharing_the_store_leaves_another_clones_stopped_writes_where_they_are(tmp_path):
    """Two clones of one pipeline, side by side on this machine, share one state store. A
    run of clone A died between moving a pickle onto its target and committing its record,
    with another value still staged. Clone B's next command resolves those writes in A's
    folder -- where they are -- never as its own: A's staged file is removed, A's pickle is
    committed and read without --trust, and nothing appears in B."""
    import hashlib
    import pickle

    from targetrun import api
    from targetrun.model import Checkpoint
    from targetrun.store.base import PendingWrite, RunRecord, RunStatus

    pipeline = (f"name: shared\ncache: {tmp_path / 'shared.db'}\ntasks:\n  made: {{run: m:made, target: out/made.pkl}}\n"
                "  user: {run: m:user, needs: [made], target: out/user.pkl}\n")
    clones = []
    for name in ("a", "b"):
        root = tmp_path / name
        (root / "out").mkdir(parents=True)
        (root / "Pipelinefile.yaml").write_text(pipeline)
        (root / "m.py").write_text("def made():\n    return 41\n\ndef user(made):\n    return made + 1\n")
        clones.append(Folder(root))
    a, b = clones
    data = pickle.dumps(41)
    (a.root / "out" / "made.pkl").write_bytes(data)  # moved onto its target; the commit never happened
    (a.root / "out" / ".user.pkl.targetrun-r1-2-cd").write_bytes(pickle.dumps(0))  # staged, never moved
    store = api.open_store(api.load(str(a.root)))
    try:
        store.begin_run(RunRecord("r1", "shared", 1.0, RunStatus.INTERRUPTED))
        for task, staging, value in (("made", ".made.pkl.targetrun-r1-1-ab", data),
                                     ("user", ".user.pkl.targetrun-r1-2-cd", pickle.dumps(0))):
            target, staged = str(a.root / "out" / f"{task}.pkl"), str(a.root / "out" / staging)
            store.intend_write(PendingWrite("r1", target, staged, "local"))
            store.prepare_write(staged, Checkpoint(task, target, "pickle", len(value), hashlib.sha256(value).hexdigest(),
                                                   "r1", 1.0, 0.0, {}, {}, "local"), None)
    finally:
        store.close()
    b.ok("status")  # B settles first
    assert list((b.root / "out").iterdir()) == []
    assert list((a.root / "out").glob(".*")) == []  # A's staged file: removed where it is
    done = a.ok("run", "--json")  # made.pkl: vouched for by the record B's command committed
    assert {t["task"]: t["state"] for t in json.loads(done)["tasks"]} == {"made": "skipped", "user": "succeeded"}
    assert pickle.loads((a.root / "out" / "user.pkl").read_bytes()) == 42
