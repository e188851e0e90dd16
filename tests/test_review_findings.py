"""What an independent hostile review found, each now a one-paragraph error (exit 2) or
handled -- never a traceback, never a write outside what the user named. Real processes."""

from __future__ import annotations

import os
import sqlite3
import stat
import subprocess
import sys
from pathlib import Path


def targetrun(folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "targetrun", *args], cwd=folder, capture_output=True, text=True,
                          timeout=120)


def project(tmp_path: Path, pipeline: str, tasks: str = "def a():\n    return [1]\n") -> Path:
    folder = tmp_path / "p"
    folder.mkdir()
    (folder / "Pipelinefile.yaml").write_text(pipeline)
    (folder / "tasks.py").write_text(tasks)
    return folder


def assert_refused(done: subprocess.CompletedProcess[str], *fragments: str) -> None:
    assert done.returncode == 2, done.stdout + done.stderr
    assert "Traceback" not in done.stderr and done.stderr.startswith("targetrun: error: "), done.stderr
    for fragment in fragments:
        assert fragment in done.stderr, done.stderr


def test_a_params_file_without_a_size_is_read_only_up_to_the_limit(tmp_path):
    folder = project(tmp_path, "tasks:\n  a: {run: 'tasks:a', target: out/a.json}\n")
    assert_refused(targetrun(folder, "status", "--params-file", "/dev/zero"), "more than")


def test_a_format_spec_that_overflows_is_a_template_error(tmp_path):
    folder = project(tmp_path, "params: {n: 99999999}\ntasks:\n  a: {run: 'tasks:a', target: 'o/{params.n:c}.json'}\n")
    assert_refused(targetrun(folder, "validate"), "{params.n:c}")


def test_an_unrecorded_upstream_nested_too_deeply_is_a_clear_error(tmp_path):
    folder = project(tmp_path, "tasks:\n  a: {run: 'tasks:a', target: out/a.json}\n"
                               "  m: {run: 'tasks:a', needs: {x: a}, foreach: {needs: a}, target: 'out/m{map_index}.json'}\n")
    (folder / "out").mkdir()
    (folder / "out" / "a.json").write_text("[" * 200_000 + "]" * 200_000)
    for command in (["run"], ["status"], ["run", "--dry-run"], ["show", "a"]):
        assert_refused(targetrun(folder, *command), "nested too deep")


def test_gc_reads_around_a_damaged_run_record(tmp_path):
    folder = project(tmp_path, "tasks:\n  a: {run: 'tasks:a', target: out/a.json}\n")
    assert targetrun(folder, "run").returncode == 0
    db = sqlite3.connect(folder / ".targetrun" / "state.db")
    with db:
        db.execute("UPDATE runs SET status = 'zzz'")
    db.close()
    for command in (["gc", "--dry-run"], ["gc"]):
        done = targetrun(folder, *command)
        assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr
        assert "skipped an unreadable run record" in done.stderr


def test_a_path_longer_than_the_filesystem_allows_is_a_usage_error(tmp_path):
    folder = project(tmp_path, "params: {x: a}\ntasks:\n  a: {shell: 'echo > {output}', target: 'out/{params.x}.txt'}\n")
    assert_refused(targetrun(folder, "run", "-p", "x=" + "a" * 5000), "a file name of 5004 bytes")


def test_resume_of_a_run_the_store_does_not_know_is_refused(tmp_path):
    folder = project(tmp_path, "tasks:\n  a: {run: 'tasks:a', target: out/a.json}\n")
    assert_refused(targetrun(folder, "run", "--resume", "20991201T000000-abcdef"), "no such run")
    assert not (folder / "out").exists()


def test_report_writes_into_a_device_and_makes_no_folder_outside(tmp_path):
    folder = project(tmp_path, "tasks:\n  a: {run: 'tasks:a', target: out/a.json}\n")
    assert targetrun(folder, "run").returncode == 0
    assert targetrun(folder, "report", "-o", os.devnull).returncode == 0
    assert stat.S_ISCHR(os.stat(os.devnull).st_mode)  # still the device, not a file put in its place
    outside = tmp_path / "elsewhere" / "deeper" / "r.html"
    assert_refused(targetrun(folder, "report", "-o", str(outside)), "does not exist")
    assert not (tmp_path / "elsewhere").exists()


def test_invalidate_leaves_a_file_whose_bytes_someone_else_replaced(tmp_path):
    folder = project(tmp_path, "tasks:\n  a: {run: 'tasks:a', target: out/a.json}\n")
    assert targetrun(folder, "run").returncode == 0
    (folder / "out" / "a.json").write_text('["not", "ours"]\n')
    assert_refused(targetrun(folder, "invalidate", "a"), "no longer the ones targetrun wrote")
    assert (folder / "out" / "a.json").read_text() == '["not", "ours"]\n'


def test_run_json_prints_a_document_also_when_it_stops_before_any_task(tmp_path):
    import json

    folder = project(tmp_path, "tasks:\n  a: {run: 'tasks:a', target: out/a.json}\n")
    done = targetrun(folder, "run", "--json", "--resume", "nope")
    assert done.returncode == 2
    document = json.loads(done.stdout)
    assert document["ok"] is False and document["exit_code"] == 2 and "no such run" in document["error"]


def test_a_value_that_does_not_fit_json_is_a_usage_error(tmp_path):
    folder = project(tmp_path, "tasks:\n  a: {run: 'tasks:inf', target: out/a.json}\n",
                     "def inf():\n    return float('inf')\n")
    done = targetrun(folder, "run")
    assert done.returncode == 2 and "not JSON" in done.stdout + done.stderr, done.stdout + done.stderr
    assert not (folder / "out" / "a.json").exists()
