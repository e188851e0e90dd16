"""A stop reaches the commands a run started on Dask workers: none runs on, none writes.

The threads and processes executors kill a stopped run's commands (tests/test_signals.py).
On Dask the run only cancelled its futures and closed the cluster: a running attempt is
not cancelled by Dask, and its command, in a session of its own, outlived the worker --
it wrote its staging file seconds after the run had ended and removed the pending record
that would have had the next run remove it (an orphan beside the target, for ever).

Now the workers are told, before anything is cancelled, to kill this run's commands and to
start nothing more for it (:func:`targetrun.stopping.stop_owner`); and an attempt the run
could not see end is left pending, so the next run removes whatever it leaves.
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

pytest.importorskip("distributed")

ROOT = Path(__file__).resolve().parents[1]


def _env(root: Path) -> dict[str, str]:
    return dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), str(root)]))


def _cli(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "targetrun", *args], cwd=root, env=_env(root), capture_output=True,
                          text=True, timeout=120, stdin=subprocess.DEVNULL)


def _wait_for(predicate, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def _sleepers(nap: str) -> list[str]:
    """The processes of this test's commands still alive: ``sleep NAP``, a duration of this
    test's own (the shell around it may be gone while it runs on)."""
    found = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout.splitlines()
    return [line for line in found if line.strip() == f"sleep {nap}" or f"; sleep {nap} " in line]


@pytest.mark.parametrize("signum, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_stopped_run_on_a_local_dask_cluster_leaves_no_command_running_and_nothing_written(tmp_path, signum, code):
    nap = f"8.0{signum}"  # its own, as the test's instances run side by side
    lines = ["name: daskstop", "tasks:"]
    for i in range(2):
        lines.append(f"  sh{i}: {{shell: \"echo go > {tmp_path}/started{i}; sleep {nap} && echo {tmp_path} > {{output}}\", "
                     f"target: out/sh{i}.txt}}")
    (tmp_path / "Pipelinefile.yaml").write_text("\n".join(lines) + "\n")
    run = subprocess.Popen([sys.executable, "-m", "targetrun", "run", "-j", "2", "--executor", "dask"], cwd=tmp_path,
                           env=_env(tmp_path), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        _wait_for(lambda: all((tmp_path / f"started{i}").exists() for i in range(2)) or run.poll() is not None)
        assert run.poll() is None, run.communicate()
        time.sleep(0.3)
        began = time.monotonic()
        run.send_signal(signum)
        out, err = run.communicate(timeout=60)
        took = time.monotonic() - began
    finally:
        if run.poll() is None:
            run.kill()
    assert run.returncode == code, out + err
    assert took < 6, took  # the running commands (7.7 s or more to go) were not waited for
    assert _sleepers(nap) == [], "a command of the stopped run is still running"
    time.sleep(8.5 - took)  # long enough for a command left running to have written
    written = sorted(p.name for p in (tmp_path / "out").iterdir()) if (tmp_path / "out").exists() else []
    assert written == [], written  # no target, and no staging file  # no target, and no staging file
    history = json.loads(_cli(tmp_path, "history", "--json").stdout)
    assert history[0]["status"] == "interrupted"
    (tmp_path / "Pipelinefile.yaml").write_text((tmp_path / "Pipelinefile.yaml").read_text().replace(f"sleep {nap} && ", ""))
    again = _cli(tmp_path, "run")
    assert again.returncode == 0, again.stdout + again.stderr
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["sh0.txt", "sh1.txt"]
    check = _cli(tmp_path, "status", "--verify", "--check")
    assert check.returncode == 0, check.stdout + check.stderr


@pytest.fixture(scope="module")
def remote_cluster():
    """A cluster of worker processes this run does not own, reached by --scheduler."""
    import logging

    import distributed

    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                                       dashboard_address="127.0.0.1:0", silence_logs=logging.ERROR)
    yield cluster
    cluster.close()


def test_a_stopped_run_on_a_shared_cluster_stops_its_own_commands_only(tmp_path, s3, s3_server, remote_cluster):
    """The cluster goes on serving (another run's command there runs to its end); the
    stopped run's commands end at once, and what it staged in the bucket is gone by the
    next run, which makes every target."""
    other = tmp_path / "other"
    other.mkdir()
    (other / "Pipelinefile.yaml").write_text(
        "name: other\ntasks:\n"
        f"  long: {{shell: \"sleep 3.07 && echo done > {other}/long.txt\", checkpoint: false}}\n")
    root = tmp_path / "stopped"
    root.mkdir()
    nap = "8.03"
    lines = ["name: shared", "results:", "  lake:", "    url: s3://test-bucket/shared",
             f"    options: {{key: testing, secret: testing, client_kwargs: {{endpoint_url: '{s3_server.endpoint}'}}}}",
             "defaults: {result: lake}", "tasks:"]
    lines.append(f"  sh0: {{shell: \"echo go > {root}/started0; sleep {nap} && echo {root} > {{output}}\", "
                 "target: sh0.txt}")
    (root / "Pipelinefile.yaml").write_text("\n".join(lines) + "\n")
    address = remote_cluster.scheduler_address
    neighbour = subprocess.Popen([sys.executable, "-m", "targetrun", "run", "--scheduler", address], cwd=other,
                                 env=_env(other), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    run = subprocess.Popen([sys.executable, "-m", "targetrun", "run", "--scheduler", address], cwd=root,
                           env=_env(root), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        _wait_for(lambda: (root / "started0").exists() or run.poll() is not None)
        assert run.poll() is None, run.communicate()
        time.sleep(0.3)
        run.send_signal(signal.SIGINT)
        out, err = run.communicate(timeout=60)
        n_out, n_err = neighbour.communicate(timeout=60)
    finally:
        for process in (run, neighbour):
            if process.poll() is None:
                process.kill()
    assert run.returncode == 130, out + err
    assert _sleepers(nap) == [], "the stopped run's command is still running"
    assert neighbour.returncode == 0 and (other / "long.txt").exists(), n_out + n_err  # the other run's went on
    time.sleep(8.5)  # long enough for a command left running to have written
    (root / "Pipelinefile.yaml").write_text((root / "Pipelinefile.yaml").read_text().replace(f"sleep {nap} && ", ""))
    again = subprocess.run([sys.executable, "-m", "targetrun", "run", "--scheduler", address], cwd=root,
                           env=_env(root), capture_output=True, text=True, timeout=120)
    assert again.returncode == 0, again.stdout + again.stderr
    assert sorted(p.rsplit("/", 1)[-1] for p in s3.find("test-bucket/shared")) == ["sh0.txt"]  # nothing staged is left
    check = _cli(root, "status", "--verify", "--check")
    assert check.returncode == 0, check.stdout + check.stderr
