"""A run stopped while writing to an object store leaves its staging keys to the next run.

A request already sent completes at the server whatever the client does next: an upload
that fsspec's own thread goes on with after a Ctrl-C reached the thread waiting for it, or
the last one a worker process sent before it was killed. The end of a stopped run deleted
each staging object and dropped its pending record; an upload landing after that delete
left an object beside the target that no record names and no run ever removes (seen
about once in 70 stops of a run on moto). At a stopped (or broken) end each remote
staging object is still deleted, but its pending record is kept: the next runs delete the
key again, whatever arrived there since, until the stopped run has been gone long enough
for no upload to be late (engine/recovery.py, STRAGGLER_GRACE). (A local file cannot be written by a process
that has exited, and a thread still writing one counts as in flight: those go as before.)
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _env(root: Path) -> dict[str, str]:
    return dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), str(root)]))


def _cli(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "targetrun", *args], cwd=root, env=_env(root), capture_output=True,
                          text=True, timeout=120, stdin=subprocess.DEVNULL)


def _pending(root: Path) -> list[str]:
    with sqlite3.connect(root / ".targetrun" / "state.db") as db:
        return [row[0] for row in db.execute("SELECT staging FROM pending")]


def test_a_late_upload_to_a_staging_key_of_a_stopped_run_is_removed_by_the_next_run(tmp_path, s3, s3_server):
    lines = ["name: late", "results:", "  lake:", "    url: s3://test-bucket/late",
             f"    options: {{key: testing, secret: testing, client_kwargs: {{endpoint_url: '{s3_server.endpoint}'}}}}",
             "defaults: {result: lake}", "tasks:",
             f"  slow: {{shell: \"echo go > {tmp_path}/started; sleep 30; echo x > {{output}}\", target: slow.txt}}"]
    (tmp_path / "Pipelinefile.yaml").write_text("\n".join(lines) + "\n")
    run = subprocess.Popen([sys.executable, "-m", "targetrun", "run"], cwd=tmp_path, env=_env(tmp_path),
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while not (tmp_path / "started").exists():
            assert run.poll() is None and time.monotonic() < deadline, run.communicate()
            time.sleep(0.05)
        run.send_signal(signal.SIGINT)
        out, err = run.communicate(timeout=60)
    finally:
        if run.poll() is None:
            run.kill()
    assert run.returncode == 130, out + err
    staged = _pending(tmp_path)
    assert len(staged) == 1 and ".slow.txt.targetrun-" in staged[0], staged  # kept for the next run
    key = "test-bucket/late/" + staged[0].rsplit("/", 1)[-1]
    assert not s3.exists(key)  # deleted at the end all the same
    s3.pipe(key, b"x\n")  # what an upload sent before the stop puts there after the end
    (tmp_path / "Pipelinefile.yaml").write_text((tmp_path / "Pipelinefile.yaml").read_text().replace("sleep 30; ", ""))
    again = _cli(tmp_path, "run")
    assert again.returncode == 0, again.stdout + again.stderr
    assert sorted(p.rsplit("/", 1)[-1] for p in s3.find("test-bucket/late")) == ["slow.txt"]
    assert _pending(tmp_path) == staged  # until the stopped run is gone long enough for no upload to be late
    later = subprocess.run([sys.executable, "-m", "targetrun", "run"], cwd=tmp_path, capture_output=True, text=True,
                           env=dict(_env(tmp_path), TARGETRUN_NOW=str(time.time() + 120)), timeout=120)
    assert later.returncode == 0, later.stdout + later.stderr
    assert _pending(tmp_path) == []
    check = _cli(tmp_path, "status", "--verify", "--check")
    assert check.returncode == 0, check.stdout + check.stderr
