"""Hostile review, round 3: each case reproduced with real files and processes before it
was fixed."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from targetrun import redact

GHP = "ghp_ApiP4thT0kenValue0123456789abcdef"
PLAIN = "plain-Env-Secret-77"  # no recognisable shape: only the environment says it is one


def _files_under(folder: Path) -> list[tuple[str, bytes]]:
    return [(str(path), path.read_bytes()) for path in folder.rglob("*") if path.is_file()]


# -- 1. the Python API masks the credentials of its environment, as the CLI does ----------

API_SCRIPT = '''
import sys
from targetrun import api
from targetrun.report.logs import LogFileReporter
spec = api.load(sys.argv[1])
summary = api.run(spec, keep_going=True, reporter=LogFileReporter(spec.root))
print(summary)
'''

TASKS = '''
import os

def leak():
    raise RuntimeError("python task failed with " + os.environ["GITHUB_TOKEN"] + " " + os.environ["CI_SECRET"])
'''
SHAPELESS = "xyz_ApiP4thT0kenValue0123456789"


def test_the_python_api_masks_environment_credentials_a_task_echoes(tmp_path: Path) -> None:
    folder = tmp_path / "p"
    folder.mkdir()
    (folder / "tasks.py").write_text(TASKS)
    (folder / "Pipelinefile.yaml").write_text(textwrap.dedent("""
        tasks:
          shell_leak:
            shell: 'echo "saw $GITHUB_TOKEN $CI_SECRET"; echo "saw $GITHUB_TOKEN $CI_SECRET" >&2; exit 3'
            target: out/leak.txt
          py_leak: {run: tasks:leak, target: out/p.txt}
    """).lstrip())
    result = subprocess.run([sys.executable, "-c", API_SCRIPT, str(folder / "Pipelinefile.yaml")],
                            capture_output=True, text=True, timeout=120, cwd=folder,
                            env={**os.environ, "GITHUB_TOKEN": SHAPELESS, "CI_SECRET": PLAIN})
    assert result.returncode == 0, result.stderr
    blobs = _files_under(folder / ".targetrun")  # the store and the task logs (what the API returns is the caller's)
    assert any(b"python task failed with ***" in blob for _, blob in blobs), "the error is in the store, masked"
    assert any(b"saw *** ***" in blob for _, blob in blobs), "the task's output is in its log, masked"
    for secret in (SHAPELESS, PLAIN):
        for where, blob in blobs:
            assert secret.encode() not in blob, f"{secret!r} in {where}"


# -- 2. credential query parameters and webhook URLs whose path is the secret -------------

@pytest.mark.parametrize("text, shown", [
    ("GET https://api.example.com/v1?auth_key=Zk81jd92kd&x=1", "GET https://api.example.com/v1?auth_key=***&x=1"),
    ("https://app.example.com/s?session=9f8e7d6c5b&lang=en", "https://app.example.com/s?session=***&lang=en"),
    ("https://app.example.com/cb?jwt=abc.def.ghi1234", "https://app.example.com/cb?jwt=***"),
    ("https://h/x?a=1&access_token=AT123456", "https://h/x?a=1&access_token=***"),
    ("https://h/x?api_key=k3y-value&apikey=k3y-two", "https://h/x?api_key=***&apikey=***"),
    ("https://h/x?sessionid=s3ss10n&authkey=ak3y9", "https://h/x?sessionid=***&authkey=***"),
    ("https://h/x;jsessionid=0A1B2C3D4E?q=1", "https://h/x;jsessionid=***"),  # a value may hold a ?
    ("https://app.example.com/cb#access_token=T0k3nFrag&state=ok", "https://app.example.com/cb#access_token=***&state=ok"),
    ("https://b.s3.amazonaws.com/k?X-Amz-Credential=AKIAPLANTED%2F20260101%2Fus-east-1&sig=zz9",
     "https://b.s3.amazonaws.com/k?X-Amz-Credential=***&sig=***"),
    ("posting to https://hooks.slack.com/services/T0123ABCD/B0456EFGH/aBcDeFgHiJkLmNoPqRsTuVwX failed",
     "posting to https://hooks.slack.com/services/T0123ABCD/B0456EFGH/*** failed"),
    ("https://discord.com/api/webhooks/123456789012345678/Ab-Cd_Ef.GhIjKlMnOpQrStUv",
     "https://discord.com/api/webhooks/123456789012345678/***"),
    ("https://discordapp.com/api/v10/webhooks/1234567/tok-EN_value?wait=true",
     "https://discordapp.com/api/v10/webhooks/1234567/***?wait=true"),
])
def test_credential_query_parameters_and_webhook_paths_are_masked(text: str, shown: str) -> None:
    assert redact.redact(text) == shown


@pytest.mark.parametrize("text", [
    "https://example.com/search?q=session+planning&page=2",
    "https://example.com/docs/hooks/services/overview",
    "see https://discord.com/channels/123/456 for details",
    "https://hooks.slack.com/",
])
def test_ordinary_urls_are_left_as_they_are(text: str) -> None:
    assert redact.redact(text) == text


def test_a_webhook_url_a_shell_task_echoes_is_masked_in_its_log(tmp_path: Path) -> None:
    hook = "https://hooks.slack.com/services/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"
    folder = tmp_path / "p"
    folder.mkdir()
    (folder / "Pipelinefile.yaml").write_text(textwrap.dedent("""
        tasks:
          notify: {shell: 'echo "curl -X POST $NOTIFY_URL failed" >&2; exit 1', target: out/n.txt}
    """).lstrip())
    result = subprocess.run([sys.executable, "-m", "targetrun", "run"], capture_output=True, text=True,
                            timeout=120, cwd=folder, env={**os.environ, "NOTIFY_URL": f"{hook}?auth_key=Ak3yVal9"})
    assert result.returncode == 1, result.stderr
    blobs = [("stdout", result.stdout.encode()), ("stderr", result.stderr.encode()),
             *_files_under(folder / ".targetrun")]
    assert any(b"B0456EFGH/***?auth_key=***" in blob for _, blob in blobs), blobs
    for where, blob in blobs:
        assert b"zYxWvUtSrQpOnMlKjIhGfEdC" not in blob and b"Ak3yVal9" not in blob, where


# -- 3. `show` does not follow a target replaced by a symlink out of its result location ---

def _show_project(tmp_path: Path) -> tuple[Path, Path]:
    folder = tmp_path / "p"
    folder.mkdir()
    (folder / "Pipelinefile.yaml").write_text(textwrap.dedent("""
        tasks:
          t: {shell: 'echo hello > {output}', target: out/t.txt}
    """).lstrip())
    outside = tmp_path / "private.txt"
    outside.write_text("PRIVATE-CONTENT-of-another-user\n")
    return folder, outside


def _targetrun(folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "targetrun", *args], capture_output=True, text=True,
                          timeout=120, cwd=folder)


@pytest.mark.parametrize("recorded", [True, False])
def test_show_refuses_a_target_that_a_symlink_leads_out_of_its_result_location(tmp_path: Path, recorded: bool) -> None:
    folder, outside = _show_project(tmp_path)
    if recorded:
        assert _targetrun(folder, "run").returncode == 0
        assert _targetrun(folder, "show", "t").stdout.strip() == "hello"
        (folder / "out" / "t.txt").unlink()
    else:
        (folder / "out").mkdir()
    (folder / "out" / "t.txt").symlink_to(outside)
    result = _targetrun(folder, "show", "t")
    assert "PRIVATE-CONTENT" not in result.stdout + result.stderr
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith("targetrun: error:") and "symlink" in result.stderr, result.stderr
    assert str(outside) in result.stderr and "out/t.txt" in result.stderr


def test_show_reads_a_target_symlinked_inside_its_result_location(tmp_path: Path) -> None:
    folder, _outside = _show_project(tmp_path)
    (folder / "out").mkdir()
    (folder / "data.txt").write_text("inside\n")
    (folder / "out" / "t.txt").symlink_to(folder / "data.txt")
    result = _targetrun(folder, "show", "t")
    assert (result.returncode, result.stdout.strip()) == (0, "inside"), result.stderr


# -- 4. a shell task's args and argument names that are no plain Python name are refused ---

def _validate(tmp_path: Path, pipeline: str) -> subprocess.CompletedProcess[str]:
    folder = tmp_path / "p"
    folder.mkdir()
    (folder / "tasks.py").write_text("def f(**kw):\n    return 1\n\ndef b():\n    return 2\n")
    (folder / "Pipelinefile.yaml").write_text(textwrap.dedent(pipeline).lstrip())
    return subprocess.run([sys.executable, "-m", "targetrun", "run"], capture_output=True, text=True,
                          timeout=120, cwd=folder)


def test_a_shell_task_with_args_is_refused_at_load(tmp_path: Path) -> None:
    result = _validate(tmp_path, """
        tasks:
          s:
            shell: 'echo hi > {output}'
            target: out/s.txt
            args: {city: paris}
    """)
    assert result.returncode == 2, result.stderr
    assert "Pipelinefile.yaml, line 5, " in result.stderr and "tasks.s.args" in result.stderr, result.stderr
    assert "shell" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "p" / "out").exists(), "nothing ran"


@pytest.mark.parametrize("where, body, line, key, word", [
    ("needs", "needs: {__class__: b}", 5, "tasks.t.needs.__class__", "__class__"),
    ("needs", "needs: {class: b}", 5, "tasks.t.needs.class", "keyword"),
    ("args", "args: {__init__: 1}", 5, "tasks.t.args.__init__", "__init__"),
    ("args", "args: {lambda: 1}", 5, "tasks.t.args.lambda", "keyword"),
])
def test_an_argument_name_that_is_a_dunder_or_a_keyword_is_refused(tmp_path: Path, where: str, body: str,
                                                                    line: int, key: str, word: str) -> None:
    result = _validate(tmp_path, f"""
        tasks:
          b: {{run: tasks:b, target: out/b.json}}
          t:
            run: tasks:f
            {body}
            target: out/t.json
    """)
    assert result.returncode == 2, result.stderr
    assert f"Pipelinefile.yaml, line {line}, " in result.stderr and key in result.stderr, result.stderr
    assert word in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize("needs", ["needs: {__dict__: b}", "needs: {_private: b}"])
def test_shell_needs_names_follow_the_same_rule(tmp_path: Path, needs: str) -> None:
    result = _validate(tmp_path, f"""
        tasks:
          b: {{shell: 'echo b > {{output}}', target: out/b.txt}}
          t:
            shell: 'cat {{needs.{needs.split('{')[1].split(':')[0]}}} > {{output}}'
            {needs}
            target: out/t.txt
    """)
    dunder = "__dict__" in needs
    assert result.returncode == (2 if dunder else 0), result.stderr
    if dunder:
        assert "tasks.t.needs.__dict__" in result.stderr, result.stderr


def test_show_reads_a_target_in_a_folder_the_template_names_through_a_symlink(tmp_path: Path) -> None:
    folder, _outside = _show_project(tmp_path)
    shared = tmp_path / "shared"
    shared.mkdir()
    (folder / "out").symlink_to(shared)  # the author's own choice: out/ lives elsewhere
    assert _targetrun(folder, "run").returncode == 0
    result = _targetrun(folder, "show", "t")
    assert (result.returncode, result.stdout.strip()) == (0, "hello"), result.stderr


def test_an_environment_registered_again_after_it_gained_a_token_masks_the_new_one() -> None:
    redact.forget_all()
    try:
        environ = {"CI_TOKEN": "first-T0ken-value"}
        redact.register_environment(environ)
        redact.register_environment(environ)  # the same again: nothing new, nothing lost
        environ["DEPLOY_SECRET"] = "second-S3cret-value"
        redact.register_environment(environ)
        assert redact.redact("first-T0ken-value second-S3cret-value") == "*** ***"
        assert not redact.secrets_beyond_environment()
    finally:
        redact.forget_all()


SUMMARY_ERRORS = """
import os, sys
from targetrun import api
summary = api.run(os.path.join(sys.argv[1], "Pipelinefile.yaml"), keep_going=True)
for outcome in summary.outcomes:
    print(outcome.task, outcome.state.value, outcome.error)
"""


def test_the_errors_of_the_summary_the_api_returns_are_masked(tmp_path: Path) -> None:
    """A Python caller prints the summary's errors itself, without the console's masking:
    a credential in a task's exception (the URL it could not reach, a token) is masked
    in the summary too, as in the console, the logs and the store."""
    (tmp_path / "steps.py").write_text(textwrap.dedent("""\
        def boom():
            raise RuntimeError("cannot reach postgres://user:s3cr3tPassw0rd@db.example/x "
                               "with ghp_abcdefghijklmnopqrstuvwxyz0123456789")
        """))
    (tmp_path / "Pipelinefile.yaml").write_text(textwrap.dedent("""\
        tasks:
          a: {run: steps:boom, target: out/a.pkl}
          b: {shell: "exit 3", target: out/b.txt}
        """))
    (tmp_path / "summary.py").write_text(SUMMARY_ERRORS)
    done = subprocess.run([sys.executable, str(tmp_path / "summary.py"), str(tmp_path)], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    printed = done.stdout + done.stderr
    assert "a failed" in printed and "b failed" in printed, printed
    assert "postgres://" in printed and "db.example" in printed, printed  # the message is still there
    assert "s3cr3tPassw0rd" not in printed and "ghp_abcdefghijklmnopqrstuvwxyz0123456789" not in printed, printed
