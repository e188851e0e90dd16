"""The end-to-end scenario on every executor; Dask runs use S3 storage on the moto server,
with in-process workers and with worker processes."""

from __future__ import annotations

import logging
import time

import pytest

from tests.test_storage_e2e import PIPELINE, REPORT, scenario

S3_OPTIONS = "{{key: testing, secret: testing, client_kwargs: {{endpoint_url: '{endpoint}'}}}}"


@pytest.mark.parametrize("executor", ["inline", "threads", "processes"])
def test_scenario_on_local_executors(project, steps, tmp_path, executor):
    lake = str(tmp_path / "lake")
    scenario(project(PIPELINE.format(url=lake), steps=steps + REPORT), lake, "--executor", executor, "-j", "2")


@pytest.fixture(scope="module")
def dask_processes():
    distributed = pytest.importorskip("distributed")
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                                       dashboard_address="127.0.0.1:0", silence_logs=logging.ERROR)
    yield cluster
    cluster.close()


@pytest.mark.parametrize("workers", ["in-process", "processes"])
def test_scenario_on_dask_with_s3(project, steps, s3, s3_server, request, workers):
    cluster = request.getfixturevalue("dask_cluster" if workers == "in-process" else "dask_processes")
    lake = f"s3://test-bucket/dask-{workers}"
    pipeline = PIPELINE.format(url=lake).replace(
        f"url: {lake}", f"url: {lake}\n    options: {S3_OPTIONS.format(endpoint=s3_server.endpoint)}")
    proj = project(pipeline, steps=steps + REPORT)
    scenario(proj, lake, "--scheduler", cluster.scheduler_address)


def test_remote_scheduler_refuses_local_results(project, steps, dask_cluster):
    proj = project("tasks:\n  t: {run: steps:const, target: out/t.json}\n", steps=steps)
    result = proj.cli("run", "--scheduler", dask_cluster.scheduler_address)
    assert result.code == 2 and "shared storage" in result.err and "out/t.json" in result.err
    assert proj.counts() == {}


def test_unreachable_scheduler_is_exit_3(project, steps, s3, monkeypatch):
    monkeypatch.setenv("TARGETRUN_SCHEDULER_TIMEOUT", "2")
    proj = project("tasks:\n  t: {run: steps:const, target: 's3://test-bucket/t.json'}\n", steps=steps)
    began = time.monotonic()
    result = proj.cli("run", "--scheduler", "tcp://127.0.0.1:1")
    assert result.code == 3 and "cannot reach the Dask scheduler tcp://127.0.0.1:1" in result.err
    assert time.monotonic() - began < 10


def test_eight_half_second_tasks_on_two_threads(project, tmp_path):
    """-j 2 runs two commands at once, never three: read from when each command began and
    ended (not from the wall time of the whole run, which a loaded machine stretches)."""
    log = tmp_path / "spans.log"
    lines = ["tasks:"] + [f"  t{i}: {{shell: 'echo $(date +%s%N) 1 >> {log}; sleep 0.5; "
                          f"echo $(date +%s%N) -1 >> {log}; echo {i}', target: out/t{i}.txt}}" for i in range(8)]
    proj = project("\n".join(lines) + "\n")
    result = proj.cli("run", "-j", "2")
    assert result.code == 0, result.text
    events = sorted((int(at), int(step)) for at, step in (line.split() for line in log.read_text().splitlines()))
    assert len(events) == 16
    running = [sum(step for _, step in events[:i + 1]) for i in range(len(events))]
    assert max(running) == 2, running  # two at once, and no more than the two workers
