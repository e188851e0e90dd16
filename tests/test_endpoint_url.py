"""A malformed ``endpoint_url`` (``http://[::1:9000``) is the Pipelinefile's mistake, exit 2
naming the file, line and key -- it reached the first existence check, whose "cannot tell
whether ... exists" (exit 3) blamed credentials and network. Written literally it is judged
at load; through ``${VAR}`` once expanded, its value (which may hold a password) unsaid."""

from __future__ import annotations

import pytest

from tests.clirun import in_process, write_project

PIPELINE = """results:
  lake:
    url: s3://bucket/x
    options: {{key: a, secret: b, client_kwargs: {{endpoint_url: "{endpoint}"}}}}
defaults: {{result: lake}}
tasks:
  a: {{shell: 'echo > {{output}}', target: a.txt}}
"""


@pytest.mark.parametrize("endpoint, problem", [("http://[::1:9000", "Invalid IPv6 URL"),
                                               ("http://minio:nine", "Port could not be cast"),
                                               ("minio:9000", "expected http:// or https://")])
def test_a_malformed_endpoint_url_is_the_files_mistake(tmp_path, endpoint, problem):
    write_project(tmp_path, PIPELINE.format(endpoint=endpoint))
    for command in (["status"], ["run"], ["validate"]):
        done = in_process(tmp_path, *command)
        assert done.returncode == 2, done.stdout + done.stderr
        assert "line 4, results.lake.options.client_kwargs.endpoint_url" in done.stderr and problem in done.stderr
        assert "Traceback" not in done.stderr and "cannot tell" not in done.stderr


def test_a_malformed_endpoint_url_from_the_environment_is_exit_2_without_its_value(tmp_path, monkeypatch):
    write_project(tmp_path, PIPELINE.format(endpoint="${S3_ENDPOINT}"))
    monkeypatch.setenv("S3_ENDPOINT", "http://user:hunter2secret@[::1:9000")
    done = in_process(tmp_path, "status")
    assert done.returncode == 2, done.stdout + done.stderr
    assert "results.lake.options.client_kwargs.endpoint_url" in done.stderr and "Invalid IPv6 URL" in done.stderr
    assert "hunter2secret" not in done.stdout + done.stderr and "cannot tell" not in done.stderr
