"""Hostile inputs against ``deps:`` (DESIGN.md "Staleness", "Trust and containment",
exit codes): what a folder dep walks into, what a templated dep's values may do, what a
remote dep's URL may carry, and what a dep that cannot be read is called.

Real files, a real HTTP server and the moto S3 server of ``tests/backends.py``; no mocks.
Permission cases drop, for the test's thread only, the root powers that ignore file modes
(CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH), so they hold under root as for any user.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import http.server
import json
import os
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import Project
from tests.test_staleness_deps import put, recorded_deps

PIPELINE = """
name: deps
params:
  which: a
tasks:
  fetch:
    shell: "{shell}"
    target: out/fetch.txt
    cache_validator: [deps]
    deps: {deps}
"""


def make(project, deps: object, head: str = "", shell: str = "echo made > {output}") -> Project:
    return project(head + PIPELINE.format(deps=json.dumps(deps), shell=shell))


def status_row(proj: Project, *args: str) -> dict:
    done = proj.cli("status", "--json", *args)
    assert done.code in (0, 1), done.text
    return next(r for r in json.loads(done.out)["tasks"] if r["task"] == "fetch")


def stale(proj: Project, *args: str) -> list[dict[str, str]]:
    return status_row(proj, *args)["stale"]


def store_text(proj: Project) -> str:
    """Every row of every table of the project's state store, as text."""
    db = sqlite3.connect(proj.root / ".targetrun/state.db")
    try:
        tables = [t for (t,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        return "\n".join(repr(row) for t in tables for row in db.execute(f'SELECT * FROM "{t}"'))
    finally:
        db.close()


# -- file modes enforced for root too -------------------------------------------------------

_libc = ctypes.CDLL(None, use_errno=True)


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32), ("inheritable", ctypes.c_uint32)]


_CAP_V3 = 0x20080522
_DAC_POWERS = (1 << 1) | (1 << 2)  # CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH


def _capabilities(effective: int | None = None) -> int:
    header, data = _CapHeader(_CAP_V3, 0), (_CapData * 2)()
    if _libc.capget(ctypes.byref(header), data) != 0:
        raise OSError(ctypes.get_errno(), "capget")
    before = int(data[0].effective)
    if effective is not None:
        data[0].effective = effective
        if _libc.capset(ctypes.byref(header), data) != 0:
            raise OSError(ctypes.get_errno(), "capset")
    return before


@contextlib.contextmanager
def file_modes_enforced() -> Iterator[None]:
    """This thread (and the threads it starts) without root's power to ignore file modes."""
    if os.geteuid() != 0:
        yield
        return
    saved = _capabilities()
    _capabilities(saved & ~_DAC_POWERS)
    try:
        yield
    finally:
        _capabilities(saved)


@contextlib.contextmanager
def mode(path: Path, bits: int) -> Iterator[None]:
    old = path.stat().st_mode & 0o7777
    path.chmod(bits)
    try:
        yield
    finally:
        path.chmod(old)


# -- 1. a folder dep holds no file targetrun writes ---------------------------------------


@pytest.mark.parametrize("deps", [["."], ["**/*"], ["./"], ["*"]])
def test_a_dep_over_the_whole_project_leaves_out_targetruns_own_files(project, deps):
    """The state store changes on every run and a staging file is gone after it: counted as
    deps, every target under them would be stale for ever."""
    proj = make(project, deps)
    put(proj.root, "data/a.csv", "a\n")
    assert proj.cli("run").code == 0
    keys = recorded_deps(proj)
    assert not [k for k in keys if ".targetrun" in k], keys
    assert stale(proj) == []
    assert proj.cli("run").code == 0
    assert stale(proj) == []
    put(proj.root, "data/a.csv", "b\n")
    assert stale(proj) == [{"what": "deps", "detail": "dep data/a.csv changed"}]


# -- 2. cannot tell is never missing, never a traceback --------------------------------------


def _cannot_tell(done, path: str) -> None:
    assert done.code == 3, done.text
    assert path in done.text and "Traceback" not in done.text, done.text
    assert "is missing" not in done.text and "is gone" not in done.text, done.text


def test_an_unreadable_folder_inside_a_folder_dep_is_cannot_tell(project):
    proj = make(project, ["data/"])
    put(proj.root, "data/a.csv", "a\n")
    put(proj.root, "data/sub/b.csv", "b\n")
    assert proj.cli("run").code == 0
    with file_modes_enforced(), mode(proj.root / "data/sub", 0):
        _cannot_tell(proj.cli("status"), "data/sub")
        _cannot_tell(proj.cli("run", "--rebuild-stale"), "data/sub")
    assert sorted(recorded_deps(proj)) == ["data/a.csv", "data/sub/b.csv"]  # the record was not narrowed
    assert stale(proj) == []


@pytest.mark.parametrize("deps", [["data/"], ["data/sub/b.csv"], ["data/sub/*.csv"]])
def test_an_unreadable_file_in_deps_is_cannot_tell(project, deps):
    proj = make(project, deps)
    put(proj.root, "data/sub/b.csv", "b\n")
    assert proj.cli("run").code == 0
    put(proj.root, "data/sub/b.csv", "b2\n")  # changed: status must read it
    with file_modes_enforced(), mode(proj.root / "data/sub/b.csv", 0):
        _cannot_tell(proj.cli("status"), "data/sub/b.csv")
        _cannot_tell(proj.cli("run", "--rebuild-stale"), "data/sub/b.csv")


def test_a_dep_under_an_unsearchable_folder_is_cannot_tell_not_missing(project):
    proj = make(project, ["data/sub/b.csv"])
    put(proj.root, "data/sub/b.csv", "b\n")
    with file_modes_enforced(), mode(proj.root / "data/sub", 0o600):  # listable, not searchable
        _cannot_tell(proj.cli("run"), "data/sub/b.csv")
    assert not proj.exists("out/fetch.txt")


# -- 3. what a dep's name may be ----------------------------------------------------------


@pytest.mark.parametrize("name", ["data/a://b.csv", "data/s3://x"])
def test_a_local_name_holding_a_scheme_separator_is_a_local_file(project, name):
    proj = make(project, [name])
    put(proj.root, name, "a\n")
    done = proj.cli("run")
    assert done.code == 0, done.text
    assert list(recorded_deps(proj)) == [os.path.normpath(name)]  # a file, its key normalised (a:/b.csv)


# -- 4. a templated dep's values stay where its template says -----------------------------


CLIMBING = ["../../../../etc/hostname", "a/../../../etc/hostname", "a/../.."]
ELSEWHERE = ["/etc/hostname", "s3://other-bucket/x", "file:///etc/hostname", "http://169.254.169.254/latest"]


@pytest.mark.parametrize(("template", "value"), [("data/{params.which}", v) for v in CLIMBING]
                         + [("{params.which}", v) for v in CLIMBING + ELSEWHERE]
                         + [("s3://test-bucket/in/{params.which}", v) for v in CLIMBING])
def test_a_value_may_not_lead_a_dep_out_of_its_folder_or_protocol(project, template, value):
    proj = make(project, [template])
    put(proj.root, "data/a", "a\n")
    done = proj.cli("run", "-p", f"which={value}")
    assert done.code == 2, done.text
    assert "tasks.fetch.deps" in done.text and "may not" in done.text, done.text
    assert "is missing" not in done.text and "Traceback" not in done.text, done.text
    assert not proj.exists("out/fetch.txt")


@pytest.mark.parametrize("value", ELSEWHERE)
def test_a_value_after_a_folder_names_a_file_inside_it(project, value):
    """``data/{params.which}`` with /etc/hostname or s3://x is a (missing) file inside data/."""
    proj = make(project, ["data/{params.which}"])
    done = proj.cli("run", "-p", f"which={value}")
    assert done.code == 2, done.text
    assert "dep data/" in done.text and "is missing" in done.text and "Traceback" not in done.text, done.text


def test_a_templated_dep_inside_its_folder_is_fine(project):
    proj = make(project, ["data/{params.which}", "{params.which}.txt"])
    put(proj.root, "data/sub/x.csv", "a\n")
    put(proj.root, "sub/x.csv.txt", "b\n")
    assert proj.cli("run", "-p", "which=sub/x.csv").code == 0
    assert sorted(recorded_deps(proj)) == ["data/sub/x.csv", "sub/x.csv.txt"]


# -- 5. a remote dep's credentials and reachability ---------------------------------------


@pytest.fixture
def http_files(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    folder = tmp_path / "www"
    folder.mkdir()

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(folder)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"127.0.0.1:{server.server_address[1]}", folder
    server.shutdown()
    server.server_close()


SECRET = "hunter2secretvalue"


def test_credentials_in_a_remote_dep_url_are_kept_nowhere(project, http_files):
    host, folder = http_files
    (folder / "f.csv").write_text("a\n")
    url = f"http://alice:{SECRET}@{host}/f.csv"
    proj = make(project, [url])
    done = proj.cli("run", "--json")
    assert done.code == 0, done.text
    assert list(recorded_deps(proj)) == [f"http://{host}/f.csv"]  # the file, not how to reach it
    (folder / "f.csv").write_text("b\n")
    for args in (("status",), ("status", "--json"), ("run", "--json", "--dry-run")):
        done = proj.cli(*args)
        assert f"dep http://{host}/f.csv changed" in done.out, done.text
        assert SECRET not in done.text
    assert SECRET not in store_text(proj)
    leaks = [p for p in proj.root.rglob("*") if p.is_file() and p.name != "Pipelinefile.yaml"
             and SECRET.encode() in p.read_bytes()]
    assert leaks == []


def test_an_http_dep_that_cannot_be_reached_is_cannot_tell(project, http_files):
    host, _ = http_files
    proj = make(project, ["http://127.0.0.1:9/f.csv"])  # nothing listens on port 9
    _cannot_tell(proj.cli("run"), "http://127.0.0.1:9/f.csv")
    proj = make(project, [f"http://{host}/nope.csv"])  # the server answers 404: missing
    done = proj.cli("run")
    assert done.code == 2 and f"dep http://{host}/nope.csv is missing" in done.text, done.text


def test_credentials_in_an_s3_dep_url_are_never_shown(project, s3, s3_server):
    url = f"s3://AKIDLEAKED:{SECRET}@test-bucket/ref.csv"
    proj = make(project, [url])
    done = proj.cli("run")
    assert done.code in (2, 3), done.text
    assert SECRET not in done.text and "Traceback" not in done.text, done.text


# -- 6. what a dep was when the task read it ----------------------------------------------


def test_a_dep_rewritten_while_its_task_runs_leaves_the_target_stale(project):
    """The record says what the task read: fingerprinted before it runs, not afterwards."""
    proj = make(project, ["data/a.csv"], shell="echo made > {output}; echo later > data/a.csv")
    put(proj.root, "data/a.csv", "before\n")
    assert proj.cli("run").code == 0
    assert proj.read("data/a.csv") == "later\n"
    assert stale(proj) == [{"what": "deps", "detail": "dep data/a.csv changed"}]


# -- 7. a "regular" file that is not a file on disk ---------------------------------------


def _run_within(proj: Project, seconds: float, *args: str):
    """The command's result, or a failure if it has not ended in ``seconds`` (a hang)."""
    box: list = []
    worker = threading.Thread(target=lambda: box.append(proj.cli(*args)), daemon=True)
    worker.start()
    worker.join(seconds)
    assert box, f"`targetrun {' '.join(args)}` still running after {seconds}s"
    return box[0]


@pytest.mark.skipif(not os.path.exists("/proc/kmsg"), reason="Linux /proc")
def test_a_proc_file_that_waits_for_data_is_cannot_tell_not_a_hang(project):
    """/proc/kmsg is a "regular" file whose read waits for the next kernel message."""
    proj = make(project, ["/proc/kmsg"])
    _cannot_tell(_run_within(proj, 20, "run"), "/proc/kmsg")


@pytest.mark.skipif(not os.path.exists("/proc/self/mem"), reason="Linux /proc")
def test_a_file_whose_read_fails_is_cannot_tell_not_a_traceback(project):
    """Reading /proc/self/mem from offset 0 fails with EIO, as a failing disk does."""
    proj = make(project, ["/proc/self/mem"])
    _cannot_tell(proj.cli("run"), "/proc/self/mem")


# -- 8. a file whose name reads as a glob -------------------------------------------------


@pytest.mark.parametrize("name", ["data/report[1].csv", "data/what?.csv", "data/*star*.csv"])
def test_a_dep_named_with_glob_characters_is_that_file_when_the_pattern_matches_nothing(project, name):
    """As the shell does without nullglob: ``report[1].csv`` matches no report1.csv, so it
    is the file of that name -- tracked, not silently "matches nothing"."""
    proj = make(project, [name])
    put(proj.root, name, "a\n")
    assert proj.cli("run").code == 0
    assert list(recorded_deps(proj)) == [name]
    put(proj.root, name, "b\n")
    assert stale(proj) == [{"what": "deps", "detail": f"dep {name} changed"}]


# -- 9. file:// deps are local files; impossible names --------------------------------------


@pytest.mark.parametrize("target", ["fifo", "/dev/zero", "/proc/kmsg"])
def test_a_file_url_dep_is_held_to_the_rules_of_a_local_dep(project, tmp_path, target):
    """file:///dev/zero never ends and a FIFO waits for a writer: read through fsspec, as
    any other URL, neither was refused and the run hung."""
    if target == "fifo":
        target = str(tmp_path / "fifo")
        os.mkfifo(target)
    if not os.path.exists(target):
        pytest.skip(f"no {target} here")
    proj = make(project, [f"file://{target}"])
    done = _run_within(proj, 20, "run")
    assert done.code in (2, 3) and target in done.text and "Traceback" not in done.text, done.text
    assert not proj.exists("out/fetch.txt")


def test_a_file_url_dep_is_fingerprinted_as_its_path(project, tmp_path):
    ref = put(tmp_path, "ref/units.csv", "a\n")
    proj = make(project, [f"file://{ref}"])
    assert proj.cli("run").code == 0
    ref.write_text("b\n")
    assert stale(proj) == [{"what": "deps", "detail": f"dep {ref} changed"}]


def test_a_dep_name_too_long_to_exist_is_a_usage_error(project):
    proj = make(project, ["data/" + "a" * 300 + ".csv"])
    done = proj.cli("run")
    assert done.code == 2 and "Traceback" not in done.text, done.text


def test_an_item_from_upstream_data_may_not_lead_a_dep_out_of_its_folder(project):
    """foreach items can come from data a task fetched: the same rule as -p values."""
    proj = project("""
name: mapped
tasks:
  items:
    run: items:items
    target: out/items.json
  per:
    shell: "echo made > {output}"
    foreach: {needs: items}
    needs: [items]
    target: "out/{map_index}.txt"
    deps: ["data/{item}"]
""", items="def items():\n    return ['a', '../../../../etc/hostname']\n")
    put(proj.root, "data/a", "a\n")
    done = proj.cli("run", "--keep-going")
    assert done.code == 2, done.text
    assert "tasks.per.deps.0" in done.text and "may not" in done.text and "Traceback" not in done.text, done.text
    assert "is missing" not in done.text


@pytest.mark.parametrize("backend", ["s3", "gcs"])
def test_an_object_not_there_is_missing_on_either_object_store(project, request, backend):
    """Not found from the store itself (a 404 under boto's or gcsfs's error) is missing, exit 2."""
    request.getfixturevalue(backend)
    scheme = "s3" if backend == "s3" else "gs"
    proj = make(project, [f"{scheme}://test-bucket/ref/nope.csv"])
    done = proj.cli("run")
    assert done.code == 2 and f"dep {scheme}://test-bucket/ref/nope.csv is missing" in done.text, done.text


@pytest.mark.parametrize("dep", ["data/a\\u0000b.csv", "s3://test-bucket/a\\u0000b.csv"])
def test_a_dep_holding_a_nul_byte_is_refused_when_the_file_loads(project, dep):
    proj = project(PIPELINE.format(deps=f'["{dep}"]', shell="echo made > {output}"))
    done = proj.cli("run")
    assert done.code == 2 and "NUL" in done.text and "tasks.fetch.deps" in done.text, done.text
    assert "Traceback" not in done.text


# -- 10. an empty folder, and a bound on what one entry may name --------------------------


@pytest.mark.parametrize("deps", [["data/"], ["dat*"]])
def test_an_empty_folder_dep_is_there_and_names_no_file(project, deps):
    proj = make(project, deps)
    (proj.root / "data").mkdir()
    done = proj.cli("run")
    assert done.code == 0, done.text
    assert recorded_deps(proj) == {}
    put(proj.root, "data/a.csv", "a\n")
    assert stale(proj) == [{"what": "deps", "detail": "new dep data/a.csv"}]


def test_a_folder_dep_with_a_link_to_a_huge_tree_stops_at_the_bound(project, monkeypatch):
    """A link to /usr inside data/ (or a glob such as /**) would hash every file under it,
    for minutes, and record each in every checkpoint: refused once the bound is passed."""
    from targetrun import staleness

    monkeypatch.setattr(staleness, "MAX_DEP_FILES", 500)
    proj = make(project, ["data/"])
    put(proj.root, "data/a.csv", "a\n")
    os.symlink("/usr", proj.root / "data/usr")
    done = _run_within(proj, 20, "run")
    assert done.code == 2 and "data/ names more than 500 files" in done.text, done.text
    proj = make(project, ["/usr/**"])
    done = _run_within(proj, 20, "run")
    assert done.code == 2 and "/usr/** names more than 500 files" in done.text, done.text


def test_a_glob_matching_folders_and_their_files_walks_each_file_once(project):
    proj = make(project, ["**"])
    for i in range(3):
        put(proj.root, f"data/d{i}/x/y/f.csv", f"{i}\n")
    assert proj.cli("run").code == 0
    assert sorted(recorded_deps(proj)) == ["Pipelinefile.yaml"] + [f"data/d{i}/x/y/f.csv" for i in range(3)]


def test_status_with_an_s3_dep_that_cannot_be_reached_is_exit_3_and_shows_no_secret(project, s3, s3_server):
    def head(endpoint: str) -> str:
        options = json.dumps({"key": "testing", "secret": SECRET, "client_kwargs": {"endpoint_url": endpoint},
                              "config_kwargs": {"retries": {"max_attempts": 1}}})
        return f"results:\n  lake:\n    url: s3://test-bucket\n    options: {options}\n"

    s3.pipe("test-bucket/ref/a.csv", b"a\n")
    proj = make(project, ["s3://test-bucket/ref/"], head=head(s3_server.endpoint))
    assert proj.cli("run").code == 0
    proj.file.write_text(head("http://127.0.0.1:9") + PIPELINE.format(deps='["s3://test-bucket/ref/"]',
                                                                      shell="echo made > {output}"))
    done = proj.cli("status", "--json")  # each command waits out s3fs's retries: one is enough
    _cannot_tell(done, "s3://test-bucket/ref")
    assert SECRET not in done.text
    assert sorted(recorded_deps(proj)) == ["s3://test-bucket/ref/a.csv"]
