"""Object storage that goes away, refuses us, or is not installed: exit 3 (or 2), a message
naming the URL, no partial object, never "missing" on a guess."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import urllib.request

import pytest

FAULTS = '''
STOP = None  # set by the test: stops the S3 server

def stop_server(name="stopper", **upstream):
    STOP()
    return "written while the server is down"
'''

FAST_FAIL = "{config_kwargs: {connect_timeout: 1, read_timeout: 2, retries: {max_attempts: 1}}}"


def test_s3_server_stopped_in_the_middle_of_a_run(project, steps, s3, s3_server, monkeypatch):
    proj = project(f"""
    results:
      lake: {{url: "s3://test-bucket/mid", options: {FAST_FAIL}}}
    defaults: {{result: lake}}
    tasks:
      first:
        run: steps:const
        args: {{name: first}}
        target: first.json
      second:
        run: s3faults:stop_server
        needs: [first]
        target: second.txt
    """, steps=steps, s3faults=FAULTS)
    monkeypatch.syspath_prepend(str(proj.root))
    import s3faults as faults

    monkeypatch.setattr(faults, "STOP", s3_server.stop)
    try:
        result = proj.cli("run")
        assert result.code == 3, result.text
        assert "s3://test-bucket/mid/second.txt" in result.text
    finally:
        s3_server.start()
    assert s3.exists("test-bucket/mid/first.json")
    assert not s3.exists("test-bucket/mid/second.txt")  # nothing partial at the key
    monkeypatch.setattr(faults, "STOP", lambda: None)
    rerun = proj.cli("run", "--json")
    assert rerun.code == 0, rerun.text
    assert {t["task"]: t["state"] for t in json.loads(rerun.out)["tasks"]} == {"first": "skipped", "second": "succeeded"}


@pytest.fixture
def s3_auth(s3_server):
    """Make the S3 server check credentials (moto's own switch), then turn it off again."""
    def switch(value: str) -> None:
        request = urllib.request.Request(f"{s3_server.endpoint}/moto-api/reset-auth", data=value.encode(), method="POST",
                                         headers={"Content-Type": "text/plain"})
        urllib.request.urlopen(request).read()

    yield lambda: switch("0")
    switch("inf")


def test_wrong_s3_credentials_are_exit_3_not_missing(project, steps, s3, s3_auth, monkeypatch):
    monkeypatch.setenv("LAKE_SECRET", "s3cr3t-value")
    proj = project("""
    results:
      lake:
        url: s3://test-bucket/auth
        options: {key: wrong-key, secret: "${LAKE_SECRET}", config_kwargs: {retries: {max_attempts: 1}}}
    defaults: {result: lake}
    tasks:
      t: {run: steps:const, target: t.json}
    """, steps=steps)
    s3_auth()
    for command in (["status"], ["status", "--json"], ["run"], ["run", "--json"]):
        result = proj.cli(*command)
        assert result.code == 3, result.text
        assert "cannot tell whether s3://test-bucket/auth/t.json exists" in result.err
        assert "target missing" not in result.text and "would run" not in result.text
        assert "s3cr3t-value" not in result.text
    assert proj.counts() == {}


def test_missing_bucket_is_exit_3(project, steps, s3):
    proj = project("""
    tasks:
      t: {run: steps:const, target: "s3://no-such-bucket/t.json"}
    """, steps=steps)
    result = proj.cli("status")
    assert result.code == 3 and "the bucket 'no-such-bucket' does not exist" in result.err
    assert proj.counts() == {}


@pytest.mark.parametrize("module, url, extra", [("gcsfs", "gs://b/x.json", "gcs"), ("s3fs", "s3://b/x.json", "s3")])
def test_missing_extra_says_what_to_install(tmp_path, module, url, extra):
    (tmp_path / "Pipelinefile.yaml").write_text(f"tasks:\n  t: {{run: m:f, target: '{url}'}}\n")
    code = textwrap.dedent(f"""
        import sys
        sys.modules[{module!r}] = None  # as if the extra were not installed
        from targetrun.cli import main
        main(["status", "-f", {str(tmp_path / "Pipelinefile.yaml")!r}])
    """)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2, result.stderr
    assert f"the {url.split(':')[0]}:// filesystem is not installed. Install it with: pip install 'targetrun[{extra}]'" in result.stderr
    assert "Traceback" not in result.stderr
