"""Local writes the disk refuses are storage errors (exit 3) naming the path, with nothing
partial left, and a rerun after the fix succeeds. Real refusals: a 64 KiB tmpfs that fills
up, the process's file size limit (RLIMIT_FSIZE, with SIGXFSZ ignored), a read-only mount,
a folder where the file should be."""

from __future__ import annotations

import os
import resource
import signal
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import mount

TASKS = '''
def big(n=200_000):
    return "x" * n

def frame(n=200_000):
    import pandas as pd
    return pd.DataFrame({"n": range(n), "half": [i / 2 for i in range(n)]})
'''

PIPELINE = """
tasks:
  py: {run: tasks:big, target: out/py.txt}
  sh: {shell: "python -c 'print(\\"y\\" * 200000)'", target: out/sh.txt}
  pq: {run: tasks:frame, target: out/pq.parquet}
"""


def make(tmp_path: Path) -> Path:
    folder = tmp_path / "p"
    (folder / "out").mkdir(parents=True)
    (folder / "tasks.py").write_text(TASKS)
    (folder / "Pipelinefile.yaml").write_text(textwrap.dedent(PIPELINE).lstrip())
    return folder


def targetrun(folder: Path, *args: str, preexec: Callable[[], None] | None = None) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([sys.executable, "-m", "targetrun", *args[:1], "-f", str(folder / "Pipelinefile.yaml"),
                             *args[1:]], capture_output=True, text=True, timeout=120, preexec_fn=preexec)
    assert "Traceback" not in result.stdout + result.stderr, result.stdout + result.stderr  # no storage frames
    return result


def assert_refused(result: subprocess.CompletedProcess[str], path: Path, reason: str) -> None:
    assert result.returncode == 3, result.stdout + result.stderr
    text = result.stdout + result.stderr
    assert f"cannot write {path}: {reason}" in text, text


def leftovers(folder: Path) -> list[str]:
    """Everything under out/ (no partial target, no temporary file)."""
    return sorted(str(p.relative_to(folder)) for p in (folder / "out").rglob("*"))




@pytest.mark.parametrize("task", ["py", "sh"])
def test_a_full_disk_is_a_storage_error_with_nothing_partial(tmp_path, tmpfs, task):
    folder = make(tmp_path)
    tmpfs(folder / "out", "size=64k")
    result = targetrun(folder, "run", task)
    assert_refused(result, folder / "out" / f"{task}.txt", "the disk is full")
    assert "Free space" in result.stdout + result.stderr
    assert leftovers(folder) == []
    subprocess.run(["umount", str(folder / "out")], check=True)  # the fix: room to write
    again = targetrun(folder, "run", task)
    assert again.returncode == 0, again.stderr
    assert len((folder / "out" / f"{task}.txt").read_text().strip()) == 200_000


def _file_size_limit() -> None:
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit then fails with EFBIG
    # the state store and its write-ahead log fit (schema 5: ~90 KB), the 200,000-byte value does not
    resource.setrlimit(resource.RLIMIT_FSIZE, (190 * 1024, 190 * 1024))


@pytest.mark.parametrize("task", ["py", "sh"])
def test_the_file_size_limit_is_a_storage_error_with_nothing_partial(tmp_path, task):
    folder = make(tmp_path)
    result = targetrun(folder, "run", task, preexec=_file_size_limit)
    assert_refused(result, folder / "out" / f"{task}.txt", "the file is larger than this process may write")
    assert leftovers(folder) == []
    again = targetrun(folder, "run", task)
    assert again.returncode == 0, again.stderr
    assert len((folder / "out" / f"{task}.txt").read_text().strip()) == 200_000


@pytest.mark.parametrize("refusal", ["full disk", "file size limit"])
def test_a_parquet_value_the_disk_refuses_is_a_storage_error_not_a_format_error(tmp_path, tmpfs, refusal):
    """Parquet is encoded by Arrow, which writes to the checkpoint's file through its own
    stream: the disk's refusal comes back wrapped in the library's error, and is still the
    storage's failure (exit 3, what to do), not "pandas cannot write this value" (exit 2)."""
    pytest.importorskip("pandas")
    pytest.importorskip("pyarrow")
    folder = make(tmp_path)
    if refusal == "full disk":
        tmpfs(folder / "out", "size=64k")
        result = targetrun(folder, "run", "pq")
        assert_refused(result, folder / "out" / "pq.parquet", "the disk is full")
    else:
        result = targetrun(folder, "run", "pq", preexec=_file_size_limit)
        assert_refused(result, folder / "out" / "pq.parquet", "the file is larger than this process may write")
    assert "cannot write this value" not in result.stdout + result.stderr
    assert leftovers(folder) == []
    if refusal == "full disk":
        subprocess.run(["umount", str(folder / "out")], check=True)  # the fix: room to write
    again = targetrun(folder, "run", "pq")
    assert again.returncode == 0, again.stderr
    import pyarrow.parquet as pq

    assert pq.read_table(folder / "out" / "pq.parquet").num_rows == 200_000


def test_a_read_only_folder_is_a_storage_error(tmp_path, tmpfs):
    folder = make(tmp_path)
    tmpfs(folder / "out", "ro,size=64k")
    result = targetrun(folder, "run", "py")
    assert_refused(result, folder / "out" / "py.txt", "the file system is read-only")
    assert leftovers(folder) == []
    assert mount("-o", "remount,rw,size=1m", str(folder / "out"))
    again = targetrun(folder, "run", "py")
    assert again.returncode == 0, again.stderr


def test_a_folder_where_the_target_should_be_is_a_storage_error(tmp_path):
    folder = make(tmp_path)
    (folder / "out" / "py.txt" / "keep").mkdir(parents=True)
    result = targetrun(folder, "run", "py", "--force", "py")
    assert_refused(result, folder / "out" / "py.txt", "a folder is in the way")
    assert leftovers(folder) == ["out/py.txt", "out/py.txt/keep"]  # the folder untouched, no temporary file
    (folder / "out" / "py.txt" / "keep").rmdir()
    (folder / "out" / "py.txt").rmdir()
    again = targetrun(folder, "run", "py")
    assert again.returncode == 0, again.stderr
    assert (folder / "out" / "py.txt").is_file()


def test_the_run_record_says_the_storage_broke(tmp_path):
    folder = make(tmp_path)
    result = targetrun(folder, "run", "py", "--json", preexec=_file_size_limit)
    assert result.returncode == 3
    import json

    doc = json.loads(result.stdout)
    assert doc["exit_code"] == 3 and doc["tasks"][0]["error"].startswith(f"cannot write {folder}/out/py.txt")
    history = targetrun(folder, "history")
    assert "broken" in history.stdout, history.stdout  # a backend failure, not a task failure
    assert os.listdir(folder / "out") == []


OUTPUT_PIPELINE = """
tasks:
  out: {shell: "head -c 200000 /dev/zero | tr '\\\\0' z > {output}", target: out/out.txt}
"""


@pytest.mark.parametrize("refusal", ["read-only", "full disk"])
def test_a_shell_command_writing_output_where_the_disk_refuses_is_a_storage_error(tmp_path, tmpfs, refusal):
    """A shell task that writes ``{output}`` itself meets the disk's refusal inside its
    command (``sh: cannot create ...: Read-only file system``): still the storage's failure
    (exit 3, the path, what to do), not a failed task (exit 1)."""
    folder = make(tmp_path)
    (folder / "Pipelinefile.yaml").write_text(textwrap.dedent(OUTPUT_PIPELINE).lstrip())
    tmpfs(folder / "out", "ro,size=64k" if refusal == "read-only" else "size=64k")
    result = targetrun(folder, "run")
    assert_refused(result, folder / "out" / "out.txt",
                   "the file system is read-only" if refusal == "read-only" else "the disk is full")
    assert leftovers(folder) == []
    assert mount("-o", "remount,rw,size=1m", str(folder / "out"))
    again = targetrun(folder, "run")
    assert again.returncode == 0, again.stderr
    assert len((folder / "out" / "out.txt").read_text().strip()) == 200_000
