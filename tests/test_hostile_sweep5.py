"""Hostile sweep 5: each case reproduced with the real CLI in a subprocess, on real files,
before it was fixed."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.clirun import in_process, targetrun as _targetrun, write_project as _write


# -- 1. a YAML key holding a line break cannot break the error's one line -----------------

@pytest.mark.parametrize("pipelinefile", [
    'tasks:\n  "a\\n::error::x":\n    shell: "echo > {output}"\n    target: o.txt\n',
    'params:\n  "a\\n::error::x": 1\ntasks:\n  a:\n    shell: "echo > {output}"\n    target: o.txt\n',
    'tasks:\n  a:\n    shell: "echo > {output}"\n    "tar\\n::error::get": o.txt\n',
])
def test_a_key_with_a_line_break_stays_on_the_errors_one_line(tmp_path: Path, pipelinefile: str) -> None:
    folder = _write(tmp_path / "p", pipelinefile)
    for command in (["validate"], ["run"]):
        done = _targetrun(folder, *command)
        assert done.returncode == 2, done.stderr
        lines = done.stderr.splitlines()
        assert len(lines) == 1, done.stderr
        assert "Pipelinefile.yaml, line " in lines[0] and "\\n::error::" in lines[0]
        assert "Traceback" not in done.stderr


# -- 2. a cache_for task made from a kept upstream records that upstream's fingerprint ----

KEPT_UPSTREAM = """\
tasks:
  a:
    run: tasks:a
    target: out/a.pkl
  b:
    run: tasks:b
    needs: [a]
    target: out/b.pkl
    cache_for: 1h
"""
KEPT_TASKS = "def a():\n    return {'a': 1}\n\ndef b(a):\n    return [a] * 10\n"


def test_a_cache_for_task_made_from_a_kept_target_is_not_stale_afterwards(tmp_path: Path) -> None:
    import json
    folder = _write(tmp_path / "p", KEPT_UPSTREAM, **{"tasks.py": KEPT_TASKS})
    assert _targetrun(folder, "run", "a").returncode == 0
    made = _targetrun(folder, "run")  # a is kept (target exists), b runs from it
    assert made.returncode == 0 and "skipped  a" in made.stdout, made.stdout + made.stderr
    status = _targetrun(folder, "status", "--json")
    assert status.returncode == 0, status.stderr
    b = next(t for t in json.loads(status.stdout)["tasks"] if t["task"] == "b")
    assert b["stale"] == [], b  # was: inputs changed -- a (its record said a was "pending")
    again = _targetrun(folder, "run", "--rebuild-stale")
    assert "ran" not in again.stdout, again.stdout


# -- 3. a full or read-only disk under the state store is said as such, not as damage ------

@pytest.fixture
def small_disk(tmp_path: Path):
    """A real 2 MiB tmpfs (root only), remountable read-only."""
    mount = tmp_path / "disk"
    mount.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount)],
                                           capture_output=True).returncode != 0:
        pytest.skip("needs root to mount a small tmpfs")
    try:
        yield mount
    finally:
        subprocess.run(["mount", "-o", "remount,rw", str(mount)], capture_output=True)
        subprocess.run(["umount", str(mount)], capture_output=True)


@pytest.mark.parametrize("trouble", ["full", "read-only"])
def test_a_full_or_read_only_disk_under_the_store_is_not_called_damage(small_disk: Path, trouble: str) -> None:
    folder = _write(small_disk / "p", KEPT_UPSTREAM, **{"tasks.py": KEPT_TASKS})
    assert _targetrun(folder, "run").returncode == 0
    if trouble == "full":
        subprocess.run(["dd", "if=/dev/zero", f"of={small_disk}/filler", "bs=4k", "count=10000"], capture_output=True)
    else:
        subprocess.run(["mount", "-o", "remount,ro", str(small_disk)], check=True)
    for command in (["run", "--force", "b"], ["history"]):
        done = _targetrun(folder, *command)
        assert done.returncode == 3, done.stdout + done.stderr
        assert "move it aside" not in done.stderr, done.stderr  # was: "disk I/O error ... move it aside"
        assert ("is full" if trouble == "full" else "read-only file system") in done.stderr, done.stderr
        assert len(done.stderr.splitlines()) == 1 and "Traceback" not in done.stderr


# -- 4. a FIFO or device at an upstream's target is never handed to a shell command ---------

SHELL_READER = """\
tasks:
  a:
    shell: "echo hi > {output}"
    target: out/a.txt
  b:
    shell: "cat {needs.a} > {output}"
    needs: [a]
    target: b.txt
"""


def _bounded(folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """The CLI in its own process group with files capped at 16 MiB: were the command handed
    the path again, `cat /dev/zero > {output}` must neither fill the disk nor outlive the
    test (before the fix it wrote 78 GB in a minute)."""
    import resource
    import signal

    def cap() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (16 << 20, 16 << 20))

    process = subprocess.Popen([sys.executable, "-m", "targetrun", *args], cwd=folder, text=True,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, preexec_fn=cap, start_new_session=True)
    try:
        out, err = process.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        out, err = process.communicate()
        pytest.fail(f"the run hung on what was planted at the target:\n{out}{err}")
    return subprocess.CompletedProcess(process.args, process.returncode, out, err)


@pytest.mark.parametrize("plant", ["fifo", "dev-zero"])
def test_a_fifo_or_device_at_a_target_a_shell_task_needs_is_refused_not_read(tmp_path: Path, plant: str) -> None:
    folder = _write(tmp_path / "p", SHELL_READER)
    (folder / "out").mkdir()
    if plant == "fifo":
        os.mkfifo(folder / "out/a.txt")  # `cat` of it waits for a writer forever (the run hung)
    else:
        os.symlink("/dev/zero", folder / "out/a.txt")  # `cat` of it never ends
    done = _bounded(folder, "run")
    text = done.stdout + done.stderr
    assert done.returncode == 3, text
    assert "not a regular file" in text and "Traceback" not in text, text
    assert not (folder / "b.txt").exists()


# -- 5. a link planted in .targetrun/logs is not read through by `logs` or `report` --------

FAILING = "tasks:\n  a:\n    shell: 'echo the-real-log >&2; exit 1'\n"


@pytest.mark.parametrize("plant", ["file", "folder"])
def test_logs_and_report_do_not_read_through_a_link_planted_among_the_logs(tmp_path: Path, plant: str) -> None:
    folder = _write(tmp_path / "p", FAILING)
    assert _targetrun(folder, "run").returncode == 1
    secret = tmp_path / "outside"
    secret.mkdir()
    (secret / "a.log").write_text("SECRET-FILE-CONTENT outside the project\n")
    (run_folder,) = (folder / ".targetrun/logs").iterdir()
    if plant == "file":  # .targetrun/ restored from a CI cache, or committed: a.log -> ~/.aws/credentials
        (run_folder / "a.log").unlink()
        (run_folder / "a.log").symlink_to(secret / "a.log")
    else:
        for entry in run_folder.iterdir():
            entry.unlink()
        run_folder.rmdir()
        run_folder.symlink_to(secret)
    logs = _targetrun(folder, "logs", "a")
    assert "SECRET-FILE-CONTENT" not in logs.stdout + logs.stderr
    assert logs.returncode == 2 and "symlink" in logs.stderr and "Traceback" not in logs.stderr, logs.stderr
    report = _targetrun(folder, "report", "-o", "r.html")
    assert report.returncode == 0, report.stderr
    assert "SECRET-FILE-CONTENT" not in (folder / "r.html").read_text()


def test_a_project_whose_targetrun_folder_is_a_link_still_reads_its_logs(tmp_path: Path) -> None:
    folder = _write(tmp_path / "p", FAILING)
    (tmp_path / "elsewhere").mkdir()
    (folder / ".targetrun").symlink_to(tmp_path / "elsewhere")  # the user's own choice: state on another disk
    assert _targetrun(folder, "run").returncode == 1
    logs = _targetrun(folder, "logs", "a")
    assert logs.returncode == 0 and "the-real-log" in logs.stdout, logs.stdout + logs.stderr
    assert _targetrun(folder, "report", "-o", "r.html").returncode == 0
    assert "the-real-log" in (folder / "r.html").read_text()


@pytest.mark.parametrize("cache, says", [("/dev/null", "a device or other special file"), (".", "a folder"), ("/proc/x.db", "")])
def test_a_cache_that_names_no_database_file_is_not_told_to_be_moved_aside_or_full(tmp_path: Path, cache: str,
                                                                                  says: str) -> None:
    folder = _write(tmp_path / "p", f"cache: {cache}\n" + SHELL_READER)
    done = _targetrun(folder, "status")
    assert done.returncode == 3 and len(done.stderr.splitlines()) == 1, done.stderr
    assert "is full" not in done.stderr, done.stderr  # /proc has no blocks: no room is not its failure
    if says:
        assert f"It is {says}, not a database file" in done.stderr, done.stderr
        assert "move it aside" not in done.stderr, done.stderr  # was: move /dev/null aside


# -- 6. on an object store a key is one key, never a glob ----------------------------------

def test_a_remote_target_whose_key_holds_glob_characters_is_written_and_invalidated_alone(tmp_path: Path,
                                                                                         s3_server) -> None:
    import fsspec

    s3_server.reset()
    options = {"key": "testing", "secret": "testing", "client_kwargs": {"endpoint_url": s3_server.endpoint}}
    bucket = fsspec.filesystem("s3", skip_instance_cache=True, **options)
    bucket.mkdir("test-bucket")
    folder = _write(tmp_path / "p", f"""\
params:
  x: a
results:
  lake:
    url: s3://test-bucket/lake
    options: {{key: testing, secret: testing, client_kwargs: {{endpoint_url: "{s3_server.endpoint}"}}}}
tasks:
  a:
    shell: "echo {{params.x}} > {{output}}"
    target: "reports/{{params.x}}.txt"
    result: lake
""")
    for value in ("a", "b", "'*'", "'[ab]'", "'?x'"):  # quoted: the YAML strings *, [ab], ?x
        done = in_process(folder, "run", "-p", f"x={value}")  # `[ab]` and `?` were copied into a folder
        assert done.returncode == 0, done.stdout + done.stderr
    keys = {path.rsplit("/", 1)[1] for path in bucket.ls("test-bucket/lake/reports", refresh=True)}
    assert keys == {"a.txt", "b.txt", "*.txt", "[ab].txt", "?x.txt"}, keys
    done = in_process(folder, "invalidate", "a", "-p", "x='*'")
    assert done.returncode == 0, done.stdout + done.stderr
    keys = {path.rsplit("/", 1)[1] for path in bucket.ls("test-bucket/lake/reports", refresh=True)}
    assert keys == {"a.txt", "b.txt", "[ab].txt", "?x.txt"}, keys  # was: every report the glob matched went


# -- 7. a parameter mapping whose keys mix types is recorded, not an internal error --------

@pytest.mark.parametrize("field", ["{params.m[0]}", "{params.m[a b]}", "{parameters[m][a b]}"])
def test_a_parameter_mapping_with_int_and_text_keys_is_recorded_not_a_crash(tmp_path: Path, field: str) -> None:
    folder = _write(tmp_path / "p", f"""\
params:
  m: {{0: z, 'a b': 1}}
tasks:
  a:
    shell: "echo hi > {{output}}"
    target: "out/{field}.txt"
""")
    for command in (["run"], ["status"], ["run", "-p", "m={1: x, 'a b': 2, 0: z}"], ["status", "--json"]):
        done = _targetrun(folder, *command)
        assert done.returncode == 0, done.stdout + done.stderr  # was: exit 4, json.dumps TypeError after the task ran
        assert "Traceback" not in done.stderr


# -- 8. a bad value under defaults: is reported at its own line ----------------------------

@pytest.mark.parametrize("default, key", [
    ("result: nowhere", "defaults.result"), ("max_retries: -1", "defaults.max_retries"),
    ("retry_delay: forever", "defaults.retry_delay"), ("cache_for: soon", "defaults.cache_for"),
    ("cache_validator: nope", "defaults.cache_validator"), ("checkpoint: 'no'", "defaults.checkpoint"),
])
def test_a_bad_default_is_reported_at_the_defaults_line_not_at_a_task(tmp_path: Path, default: str, key: str) -> None:
    folder = _write(tmp_path / "p", f"defaults:\n  {default}\n" + SHELL_READER)
    done = _targetrun(folder, "validate")
    assert done.returncode == 2, done.stdout + done.stderr
    assert f"Pipelinefile.yaml, line 2, {key}:" in done.stderr, done.stderr  # was: line 7, tasks.b.<key>


def test_a_task_that_sets_the_key_itself_is_still_reported_at_the_task(tmp_path: Path) -> None:
    folder = _write(tmp_path / "p", "defaults:\n  max_retries: 1\n" + SHELL_READER + "    max_retries: -3\n")
    done = _targetrun(folder, "validate")
    assert "line 11, tasks.b.max_retries:" in done.stderr, done.stderr


# -- 9. the report is never written over targetrun's own files ------------------------------

@pytest.mark.parametrize("command", [["run", "--report", ".targetrun/state.db"], ["report", "-o", "Pipelinefile.yaml"],
                                     ["report", "-o", ".targetrun/state.db-wal"], ["report", "-o", "store-link.html"]])
def test_the_report_is_not_written_over_the_state_store_or_the_pipelinefile(tmp_path: Path, command: list[str]) -> None:
    folder = _write(tmp_path / "p", SHELL_READER)
    assert _targetrun(folder, "run").returncode == 0
    (folder / "store-link.html").symlink_to(folder / ".targetrun/state.db")
    pipelinefile = (folder / "Pipelinefile.yaml").read_bytes()
    done = _targetrun(folder, *command)
    assert done.returncode == (0 if command[0] == "run" else 2), done.stdout + done.stderr  # a run's report never changes its exit code
    assert "not writing the report" in done.stderr and "Traceback" not in done.stderr, done.stderr
    assert (folder / "Pipelinefile.yaml").read_bytes() == pipelinefile
    history = _targetrun(folder, "history")  # was: the store replaced by HTML, every record gone (exit 3)
    assert history.returncode == 0 and "succeeded" in history.stdout, history.stdout + history.stderr


# -- 10. a date format that names no part of the date gives every date one target: refused ---
# (The time zone is a part: `--date ...+02:00` keeps its offset, and Prefect 1's pendulum
# renders Z / zz -- tests/test_oracle_prefect.py.)

@pytest.mark.parametrize("spec", ["%%", "%%Y", "[abc]", "[", "-"])
def test_a_date_format_that_names_no_part_of_the_date_is_refused_at_load(tmp_path: Path, spec: str) -> None:
    folder = _write(tmp_path / "p", f'tasks:\n  a:\n    shell: "echo hi > {{output}}"\n    target: "out/{{date:{spec}}}.txt"\n')
    done = _targetrun(folder, "validate")
    assert done.returncode == 2, done.stdout + done.stderr  # was: ok, and `--date A..B` wrote one file for every date
    assert "names no part of the date" in done.stderr and "line 4, tasks.a.target" in done.stderr, done.stderr


@pytest.mark.parametrize("spec", ["%%%Y", "%p", "[day] D", "%-d", "%Z", "%z", "Z", "Z ZZ z zz"])
def test_a_date_format_with_a_date_code_among_literal_text_stands(tmp_path: Path, spec: str) -> None:
    folder = _write(tmp_path / "p", f'tasks:\n  a:\n    shell: "echo hi > {{output}}"\n    target: "out/{{date:{spec}}}.txt"\n')
    done = _targetrun(folder, "validate")
    assert done.returncode == 0, done.stdout + done.stderr
