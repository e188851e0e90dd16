"""Staleness of file dependencies (``deps:``): outside the project, folders and S3
prefixes, missing files, templated paths and the stat shortcut (DESIGN.md "Staleness").

Everything goes through the CLI in-process (``status --json``, ``run --json``) against
real files; the S3 cases use the moto server of ``tests/backends.py``.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
from pathlib import Path

import pytest

from tests.conftest import Project

PIPELINE = """
name: deps
params:
  which: a
tasks:
  fetch:
    shell: "echo made > {{output}}"
    target: out/fetch.txt
    cache_validator: [deps]
    deps: {deps}
"""


def make(project, deps: str, head: str = "") -> Project:
    return project(head + PIPELINE.format(deps=deps))


def stale(proj: Project, *args: str) -> list[dict[str, str]]:
    done = proj.cli("status", "--json", *args)
    assert done.code in (0, 1), done.text
    row = next(r for r in json.loads(done.out)["tasks"] if r["task"] == "fetch")
    return row["stale"]


def ran(proj: Project, *args: str) -> str:
    done = proj.cli("run", "--json", *args)
    assert done.code == 0, done.text
    row = next(r for r in json.loads(done.out)["tasks"] if r["task"] == "fetch")
    return row["state"]


def recorded_deps(proj: Project) -> dict[str, str]:
    db = sqlite3.connect(proj.root / ".targetrun/state.db")
    try:
        (record,) = db.execute("SELECT record FROM checkpoints WHERE location LIKE '%fetch.txt'").fetchone()
    finally:
        db.close()
    return json.loads(record)["deps"]


def put(root: Path, rel: str, text: str) -> Path:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


# -- 1. keys relative to the project, normalised ------------------------------------------


def test_a_dep_outside_the_project_survives_moving_the_project_with_its_neighbour(project, tmp_path):
    proj = make(project, '["../shared/lookup.csv", "data/./raw.csv", "data//b.csv"]')
    put(proj.root.parent, "shared/lookup.csv", "k,v\n")
    put(proj.root, "data/raw.csv", "a\n")
    put(proj.root, "data/b.csv", "b\n")
    assert ran(proj) == "succeeded"
    keys = recorded_deps(proj)
    assert sorted(keys) == ["../shared/lookup.csv", "data/b.csv", "data/raw.csv"]  # no absolute path
    # the project and its neighbour cloned elsewhere, deeper: nothing is stale
    moved = tmp_path / "elsewhere" / "deeper"
    shutil.copytree(proj.root.parent, moved)
    clone = Project(moved / proj.root.name)
    assert stale(clone) == []
    assert ran(clone) == "skipped"
    # spellings of one path name one key
    clone.file.write_text(PIPELINE.format(deps='["../shared/./lookup.csv", "data/raw.csv", "x/../data/b.csv"]'))
    assert stale(clone) == []


def test_a_record_with_an_old_absolute_key_is_read_without_crashing(project):
    proj = make(project, '["../shared/lookup.csv"]')
    lookup = put(proj.root.parent, "shared/lookup.csv", "k,v\n")
    assert ran(proj) == "succeeded"
    db = sqlite3.connect(proj.root / ".targetrun/state.db")
    for location, record in db.execute("SELECT location, record FROM checkpoints").fetchall():
        d = json.loads(record)
        if d.get("deps"):  # as an older targetrun wrote it: the absolute, un-normalised path
            old = str(proj.root) + "/../shared/lookup.csv"
            d["deps"] = {old: d["deps"]["../shared/lookup.csv"]}
            d["dep_stats"] = {}
            db.execute("UPDATE checkpoints SET record = ? WHERE location = ?", (json.dumps(d), location))
    db.commit()
    db.close()
    assert stale(proj) == []  # the same file, where it was: not stale
    lookup.write_text("k,v\n1,2\n")
    assert stale(proj) == [{"what": "deps", "detail": "dep ../shared/lookup.csv changed"}]


# -- 2. folders and prefixes ---------------------------------------------------------------


@pytest.mark.parametrize("spelling", ['["data/"]', '["data"]', '["dat*"]', '["./data/."]'])
def test_a_folder_dep_is_every_file_under_it(project, spelling):
    proj = make(project, spelling)
    put(proj.root, "data/a.csv", "a\n")
    put(proj.root, "data/sub/b.csv", "b\n")
    assert ran(proj) == "succeeded"
    assert sorted(recorded_deps(proj)) == ["data/a.csv", "data/sub/b.csv"]
    assert stale(proj) == []
    put(proj.root, "data/sub/b.csv", "b2\n")
    assert stale(proj) == [{"what": "deps", "detail": "dep data/sub/b.csv changed"}]
    put(proj.root, "data/sub/deeper/c.csv", "c\n")
    assert stale(proj)[0]["detail"] == "dep data/sub/b.csv changed, new dep data/sub/deeper/c.csv"
    (proj.root / "data/a.csv").unlink()
    assert stale(proj)[0]["detail"] == "dep data/a.csv is gone, dep data/sub/b.csv changed, " \
                                       "new dep data/sub/deeper/c.csv"
    assert ran(proj, "--rebuild-stale") == "succeeded"
    assert stale(proj) == []


def test_a_fifo_in_a_folder_dep_is_skipped_and_one_named_is_a_usage_error(project):
    """A folder stands for its regular files, as git tracks them (see also
    tests/test_deps_folder_contents.py); a FIFO named in deps cannot be fingerprinted."""
    proj = make(project, '["data/"]')
    put(proj.root, "data/a.csv", "a\n")
    os.mkfifo(proj.root / "data/pipe")
    assert ran(proj) == "succeeded"
    assert list(recorded_deps(proj)) == ["data/a.csv"]
    named = make(project, '["data/pipe"]')
    (named.root / "data").mkdir()
    os.mkfifo(named.root / "data/pipe")
    done = named.cli("run")
    assert done.code == 2 and "data/pipe" in done.text and "regular file" in done.text, done.text
    assert "Traceback" not in done.text


@pytest.mark.parametrize("spelling", ["s3://test-bucket/data/", "s3://test-bucket/data", "s3://test-bucket/dat*"])
def test_an_s3_prefix_dep_is_every_object_under_it(project, s3, s3_server, spelling):
    options = json.dumps({"key": "testing", "secret": "testing",
                          "client_kwargs": {"endpoint_url": s3_server.endpoint}})
    head = f"results:\n  lake:\n    url: s3://test-bucket\n    options: {options}\n"
    proj = make(project, json.dumps([spelling]), head=head)
    s3.pipe("test-bucket/data/a.csv", b"a\n")
    s3.pipe("test-bucket/data/sub/b.csv", b"b\n")
    assert ran(proj) == "succeeded"
    assert sorted(recorded_deps(proj)) == ["s3://test-bucket/data/a.csv", "s3://test-bucket/data/sub/b.csv"]
    assert stale(proj) == []
    s3.pipe("test-bucket/data/sub/b.csv", b"b2\n")
    s3.pipe("test-bucket/data/c.csv", b"c\n")
    s3.rm("test-bucket/data/a.csv")
    assert stale(proj) == [{"what": "deps", "detail": "dep s3://test-bucket/data/a.csv is gone, "
                            "new dep s3://test-bucket/data/c.csv, dep s3://test-bucket/data/sub/b.csv changed"}]


@pytest.mark.parametrize("backend", ["s3", "gcs"])
def test_a_prefix_dep_on_either_object_store_is_every_object_under_it(project, request, backend):
    fs = request.getfixturevalue(backend)  # fsspec's config reaches the server
    scheme = "s3" if backend == "s3" else "gs"
    proj = make(project, f'["{scheme}://test-bucket/data/"]')
    fs.pipe("test-bucket/data/a.csv", b"a\n")
    fs.pipe("test-bucket/data/sub/b.csv", b"b\n")
    assert ran(proj) == "succeeded"
    assert sorted(recorded_deps(proj)) == [f"{scheme}://test-bucket/data/a.csv", f"{scheme}://test-bucket/data/sub/b.csv"]
    assert stale(proj) == []
    fs.pipe("test-bucket/data/sub/b.csv", b"b2\n")
    assert stale(proj) == [{"what": "deps", "detail": f"dep {scheme}://test-bucket/data/sub/b.csv changed"}]


# -- 3. what happened to a dep, in words ----------------------------------------------------


def test_a_dep_deleted_says_missing_and_a_dep_dropped_says_gone(project):
    proj = make(project, '["data/a.csv", "data/b.csv"]')
    put(proj.root, "data/a.csv", "a\n")
    put(proj.root, "data/b.csv", "b\n")
    assert ran(proj) == "succeeded"
    (proj.root / "data/a.csv").unlink()
    assert stale(proj) == [{"what": "deps", "detail": "dep data/a.csv is missing"}]
    text = proj.cli("status").out
    assert "dep data/a.csv is missing" in text, text
    put(proj.root, "data/a.csv", "a\n")
    proj.file.write_text(PIPELINE.format(deps='["data/a.csv", "data/c.csv"]'))
    put(proj.root, "data/c.csv", "c\n")
    assert stale(proj) == [{"what": "deps", "detail": "dep data/b.csv is gone, new dep data/c.csv"}]


def test_a_task_whose_dep_is_missing_does_not_run(project):
    """Make: "No rule to make target" (exit 2). A dep is a file no task makes: the task
    fails before its command runs, is not retried, says which file; its dependents do not run."""
    proj = project(PIPELINE.format(deps='["data/nope.csv"]') + """
  after:
    shell: "echo after > {output}"
    needs: [fetch]
    target: out/after.txt
""")
    done = proj.cli("run")
    assert done.code == 2, done.text
    assert "dep data/nope.csv is missing" in done.text and "Traceback" not in done.text
    assert not proj.exists("out/fetch.txt") and not proj.exists("out/after.txt")


# -- 4. templated deps ---------------------------------------------------------------------


def test_a_templated_dep_is_rendered_with_the_task_params(project):
    proj = make(project, '["data/{params.which}.csv"]')
    put(proj.root, "data/a.csv", "a\n")
    put(proj.root, "data/b.csv", "b\n")
    assert ran(proj) == "succeeded"
    assert sorted(recorded_deps(proj)) == ["data/a.csv"]
    put(proj.root, "data/a.csv", "a2\n")
    assert stale(proj) == [{"what": "deps", "detail": "dep data/a.csv changed"}]
    assert ran(proj, "--rebuild-stale") == "succeeded"
    details = [s["detail"] for s in stale(proj, "-p", "which=b") if s["what"] == "deps"]
    assert details == ["dep data/a.csv is gone, new dep data/b.csv"]


def test_a_templated_dep_with_an_unknown_key_fails_like_a_bad_target(project):
    bad_target = project(PIPELINE.format(deps="[]").replace("out/fetch.txt", "out/{params.whihc}.txt"))
    bad_dep = make(project, '["data/{params.whihc}.csv"]')
    expected = bad_target.cli("status")
    done = bad_dep.cli("status")
    assert done.code == expected.code == 2, done.text
    assert "params.whihc" in done.err or "whihc" in done.err
    assert "deps" in done.err and "Traceback" not in done.err


# -- 5. the stat shortcut -------------------------------------------------------------------


def test_a_same_size_rewrite_with_its_mtime_restored_is_still_seen(project):
    proj = make(project, '["data/a.csv"]')
    path = put(proj.root, "data/a.csv", "aaaa\n")
    assert ran(proj) == "succeeded"
    before = os.stat(path)
    path.write_text("bbbb\n")  # same size, then the mtime put back (touch -r, rsync -t, git checkout)
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert os.stat(path).st_size == before.st_size and os.stat(path).st_mtime_ns == before.st_mtime_ns
    assert stale(proj) == [{"what": "deps", "detail": "dep data/a.csv changed"}]


def test_a_mapped_task_renders_each_childs_deps_with_its_item(project):
    proj = project("""
name: mapped
tasks:
  per:
    shell: "echo made > {output}"
    foreach: [a, b]
    target: "out/{item}.txt"
    deps: ["data/{item}.csv"]
    cache_validator: [deps]
""")
    put(proj.root, "data/a.csv", "a\n")
    put(proj.root, "data/b.csv", "b\n")
    assert proj.cli("run").code == 0
    put(proj.root, "data/b.csv", "b2\n")
    rows = {r["task"]: r["stale"] for r in json.loads(proj.cli("status", "--json").out)["tasks"]}
    stale_children = {name: s for name, s in rows.items() if s}
    assert list(stale_children.values()) == [[{"what": "deps", "detail": "dep data/b.csv changed"}]], rows
    (proj.root / "data/a.csv").unlink()
    done = proj.cli("run", "--keep-going")
    assert done.code == 2 and "dep data/a.csv is missing" in done.text, done.text
    assert "per[1]" in done.text and "dep data/b.csv" not in done.text  # the other child ran


def test_a_glob_that_matches_nothing_does_not_stop_the_run_and_says_so(project):
    proj = make(project, '["conf/*.ini"]')
    put(proj.root, "conf/x.ini", "[x]\n")
    assert ran(proj) == "succeeded"
    (proj.root / "conf/x.ini").unlink()
    assert stale(proj) == [{"what": "deps", "detail": "dep conf/*.ini matches nothing, dep conf/x.ini is gone"}]
    assert ran(proj, "--rebuild-stale") == "succeeded"  # like Make's $(wildcard): no file, no error
    assert stale(proj) == []


def test_a_remote_dep_that_cannot_be_reached_is_cannot_tell_not_missing(project):
    """DESIGN: never treat "cannot tell" as missing -- exit 3, one paragraph, no secret."""
    options = json.dumps({"key": "AKIDSECRETKEYID", "secret": "verysecretvalue",
                          "client_kwargs": {"endpoint_url": "http://127.0.0.1:9"},
                          "config_kwargs": {"retries": {"max_attempts": 1}}})
    head = f"results:\n  lake:\n    url: s3://test-bucket\n    options: {options}\n"
    proj = make(project, '["s3://test-bucket/ref/units.csv"]', head=head)
    done = proj.cli("run")
    assert done.code == 3, done.text
    assert "s3://test-bucket/ref/units.csv" in done.text and "is missing" not in done.text, done.text
    assert "Traceback" not in done.text and "verysecretvalue" not in done.text
    assert not proj.exists("out/fetch.txt")  # it did not run


def test_a_folder_dep_follows_a_linked_folder_inside_it_once_and_skips_a_dangling_link(project):
    proj = make(project, '["data/"]')
    put(proj.root, "data/a.csv", "a\n")
    put(proj.root, "elsewhere/big.csv", "1\n")
    os.symlink("../elsewhere", proj.root / "data/linked")  # data/raw -> /mnt/big, as people do
    os.symlink(".", proj.root / "data/loop")  # a cycle: listed once, not forever
    os.symlink("nowhere", proj.root / "data/dangling")  # no file: not one of the folder's files
    assert ran(proj) == "succeeded"
    assert sorted(recorded_deps(proj)) == ["data/a.csv", "data/linked/big.csv"]
    put(proj.root, "elsewhere/big.csv", "2\n")
    assert stale(proj) == [{"what": "deps", "detail": "dep data/linked/big.csv changed"}]
