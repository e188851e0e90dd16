"""Hostile review, round 2: cases a previous round left open, each reproduced with real
files and processes before it was fixed."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest


# Credentials a CI job or a shell session has in its environment, which the Pipelinefile never names.
ENV_SECRETS = {
    "AWS_SECRET_ACCESS_KEY": "wJalrXUtnFEMI/K7MDENG+bPxRfiCYzz",
    "GITHUB_TOKEN": "ghp_R3alL00kingT0kenValue0123456789",
    "PGPASSWORD": "pg-Hunter2-pass",
    "MY_SERVICE_API_KEY": "sk-live-4f9a8b7c6d5e",
    "REDISCLI_AUTH": "r3dis-auth-Value",
}
DSN_PASSWORD = "dsnPw-9x8y7z"
ORDINARY = {"XDG_SESSION_TYPE": "wayland", "SESSION_NAME": "nightlybuild", "KEYBOARD_LAYOUT": "dvorak-intl",
            "SORT_KEY": "population"}

ECHO_TASKS = '''
import os

def leak():
    names = ("AWS_SECRET_ACCESS_KEY", "GITHUB_TOKEN", "PGPASSWORD", "MY_SERVICE_API_KEY", "REDISCLI_AUTH")
    said = " ".join(os.environ[n] for n in names)
    print("python task saw", said, os.environ["DATABASE_URL"].split(":")[2].split("@")[0])
    raise RuntimeError("python task failed with " + said)
'''


def _cli(folder: Path, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([sys.executable, "-m", "targetrun", *args], capture_output=True, text=True,
                            timeout=120, cwd=folder, env={**os.environ, **env})
    assert "Traceback" not in result.stderr, result.stderr
    return result


def test_secrets_in_the_environment_that_a_failing_task_echoes_are_masked_everywhere(tmp_path: Path) -> None:
    folder = tmp_path / "p"
    folder.mkdir()
    (folder / "tasks.py").write_text(ECHO_TASKS)
    names = " ".join(f"${name}" for name in ENV_SECRETS)
    (folder / "Pipelinefile.yaml").write_text(textwrap.dedent(f"""
        tasks:
          shell_leak:
            shell: 'echo "shell saw {names} $XDG_SESSION_TYPE $SESSION_NAME $KEYBOARD_LAYOUT $SORT_KEY" >&2; echo "$DATABASE_URL" | cut -d: -f3 >&2; exit 3'
            target: out/s.txt
          py_leak: {{run: tasks:leak, target: out/p.txt}}
    """).lstrip())
    env = {**ENV_SECRETS, **ORDINARY, "DATABASE_URL": f"postgres://app:{DSN_PASSWORD}@db.internal:5432/sales"}
    texts = []
    for command in (("run", "-v", "--keep-going"), ("run", "--json", "--keep-going"),
                    ("run", "-j", "2", "--executor", "processes", "--keep-going"), ("history",), ("logs", "shell_leak"),
                    ("logs", "py_leak"), ("report", "-o", "r.html")):
        result = _cli(folder, *command, env=env)
        texts += [result.stdout, result.stderr]
    joined = "".join(texts)
    assert "shell saw" in joined and "python task saw" in joined, joined  # the tasks did print
    assert "wayland nightlybuild dvorak-intl population" in joined  # ordinary values stay readable
    blobs = [("output", joined.encode())]
    blobs += [(str(p), p.read_bytes()) for p in (folder / ".targetrun").rglob("*") if p.is_file()]
    blobs += [("report", (folder / "r.html").read_bytes())]
    for secret in (*ENV_SECRETS.values(), DSN_PASSWORD):
        for where, blob in blobs:
            assert secret.encode() not in blob, f"{secret!r} found in {where}"


# Credentials a library or a command prints that no option named: the shapes themselves give them away.
GHP = "ghp_" + "R3alL00kingT0kenValue0123456789ab"
SHAPED = [
    ("DefaultEndpointsProtocol=https;AccountName=acct;AccountKey=abcdEFGH1234+/q==;EndpointSuffix=core.windows.net",
     "DefaultEndpointsProtocol=https;AccountName=acct;AccountKey=***;EndpointSuffix=core.windows.net"),
    (f"git clone https://{GHP}@github.com/org/repo.git failed", "git clone https://***@github.com/org/repo.git failed"),
    (f"GITHUB_TOKEN is {GHP}.", "GITHUB_TOKEN is ***."),
    ("github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyzABCDEFG rejected", "*** rejected"),
    ("glpat-AbCdEfGh1234567890xyz expired", "*** expired"),
    ("slack said xoxb-123456789012-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx", "slack said ***"),
    ("key AIzaSyA1234567890abcdefghijklmnopqrstuv invalid", "key *** invalid"),
    ("openai: sk-proj-AbCdEf0123456789AbCdEf0123456789 invalid", "openai: *** invalid"),
    ("jwt eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U end",
     "jwt *** end"),
    ("mysql --password hunter2pw -u app", "mysql --password *** -u app"),
    ("curl --token s3cr3tT0ken https://h/x", "curl --token *** https://h/x"),
    ("openssl ... -passin pass:Hunter2pw", "openssl ... -passin pass:***"),
    ("https://h/p?passphrase=abcdef123456&x=1", "https://h/p?passphrase=***&x=1"),
]
# Text of the same look that is no credential.
NOT_SHAPED = ["sk-learn is a package", "ghp_ alone", "use --password-file /run/secrets/pw", "eyJ alone.eyJ",
              "the password policy", "AccountName=acct;EndpointSuffix=core.windows.net", "git@github.com:org/repo",
              "--token-file /run/t", "task-a ran"]


@pytest.mark.parametrize(("text", "shown"), SHAPED)
def test_a_credential_recognised_by_its_shape_is_masked(text: str, shown: str) -> None:
    from targetrun.redact import redact

    assert redact(text) == shown


@pytest.mark.parametrize("text", NOT_SHAPED)
def test_text_that_only_looks_like_a_credential_stays(text: str) -> None:
    from targetrun.redact import redact

    assert redact(text) == text


def test_a_credential_shape_a_failing_shell_command_prints_is_masked_in_the_log_and_the_store(tmp_path: Path) -> None:
    folder = tmp_path / "p"
    folder.mkdir()
    connection = "DefaultEndpointsProtocol=https;AccountName=acct;AccountKey=abcdEFGH1234+/q==;EndpointSuffix=x"
    (folder / "Pipelinefile.yaml").write_text(textwrap.dedent(f"""
        tasks:
          t:
            shell: 'echo "cloning https://{GHP}@github.com/o/r.git with {connection}" >&2; exit 2'
            target: out/t.txt
    """).lstrip())
    texts = [_cli(folder, *command, env={}).stdout + _cli(folder, *command, env={}).stderr
             for command in (("run", "-v"), ("history", "--json"), ("logs", "t"))]
    assert "https://***@github.com" in "".join(texts)
    blobs = [("output", "".join(texts).encode())]
    blobs += [(str(p), p.read_bytes()) for p in (folder / ".targetrun").rglob("*") if p.is_file()]
    for secret in (GHP, "abcdEFGH1234+/q=="):
        for where, blob in blobs:
            assert secret.encode() not in blob, f"{secret!r} found in {where}"


def _project(tmp_path: Path, pipeline: str) -> Path:
    folder = tmp_path / "p"
    folder.mkdir()
    (folder / "Pipelinefile.yaml").write_text(textwrap.dedent(pipeline).lstrip())
    return folder


def _sql(folder: Path, statement: str, *args: str) -> list[tuple[str, ...]]:
    import sqlite3

    db = sqlite3.connect(folder / ".targetrun" / "state.db")
    try:
        with db:
            return db.execute(statement, args).fetchall()
    finally:
        db.close()


@pytest.mark.parametrize("planted", [
    "{root}/.targetrun/results/{run}/../../../../victim.txt",  # a `..` out of the run's folder
    "{outside}/.targetrun/results/{run}/victim.txt",  # another project's results folder
    "{root}/.targetrun/results/{run}/sub/../../../../../victim.txt",
])
def test_gc_removes_no_file_a_tampered_record_points_outside_its_runs_results_folder(tmp_path: Path,
                                                                                       planted: str) -> None:
    """A state store is data another process (or a shared Redis) may have written: a
    record of a value without a target that names a file elsewhere is not a licence to
    remove it."""
    folder = _project(tmp_path, """
        tasks:
          a: {shell: "echo hi"}
          b: {shell: "cat {needs.a}", needs: [a], target: out/b.txt}
    """)
    assert _cli(folder, "run", env={}).returncode == 0
    victim = tmp_path / "victim.txt"
    outside = tmp_path / "other" / ".targetrun" / "results"
    (run,), = _sql(folder, "SELECT run_id FROM checkpoints WHERE task = 'a'")
    (outside / run).mkdir(parents=True)
    for path in (victim, outside / run / "victim.txt"):
        path.write_text("precious")
    (old,), = _sql(folder, "SELECT location FROM checkpoints WHERE task = 'a'")
    new = planted.format(root="{root}", run=run, outside=tmp_path / "other")
    _sql(folder, "UPDATE checkpoints SET location = ?, record = replace(record, ?, ?) WHERE task = 'a'", new, old, new)
    assert _cli(folder, "run", "--force-all", env={}).returncode == 0  # a newer run: the first one may go
    result = _cli(folder, "gc", "--keep-runs", "1", env={})
    assert result.returncode in (0, 3), result.stderr
    assert victim.read_text() == "precious"
    assert (outside / run / "victim.txt").read_text() == "precious"


@pytest.mark.parametrize("kind", ["file", "folder", "beside its target"])
def test_recovery_removes_no_file_a_tampered_pending_write_names_as_its_staging(tmp_path: Path, kind: str) -> None:
    """A pending write's staging file is removed by the next command -- but only a staging
    file beside its target (``.NAME.targetrun-TOKEN``), never whatever path the row names."""
    folder = _project(tmp_path, """
        tasks:
          a: {shell: "echo hi", target: out/a.txt}
    """)
    assert _cli(folder, "run", env={}).returncode == 0
    victim = {"file": tmp_path / "victim.txt", "folder": tmp_path / "victim",
              "beside its target": folder / "out" / "notes.txt"}[kind]
    if kind == "folder":
        victim.mkdir()
        (victim / "inside.txt").write_text("precious")
    else:
        victim.write_text("precious")
    _sql(folder, "INSERT INTO pending (staging, run_id, location, storage, record, entry) VALUES (?, ?, ?, ?, NULL, NULL)",
         str(victim), "20200101T000000-dead00", "{root}/out/a.txt", "local")
    result = _cli(folder, "run", "--force-all", env={})
    assert result.returncode == 0, result.stderr
    assert victim.exists(), "the pending row's 'staging' path was removed"
    assert (folder / "out" / "a.txt").read_text() == "hi\n"


@pytest.mark.parametrize(("spec", "named"), [
    ("%Q", "%Q"),  # no such code: the C library prints it as it stands
    ("%Y-%m-%", "%"),  # a lone '%' at the end
    ("%Y%+", "%+"),  # BSD's, not glibc's
    ("%99999d", "%99999d"),  # a width past the C library's buffer renders as nothing
    ("%:z", "%:z"),  # Python 3.12's, not 3.11's
])
def test_a_strftime_code_that_renders_the_same_for_every_date_is_refused_at_load(tmp_path: Path, spec: str,
                                                                                   named: str) -> None:
    """``{date:%Q}`` comes out as ``%Q`` (and ``{date:%99999d}`` as nothing) on every date:
    one target for every run, which the run would then skip as existing."""
    folder = _project(tmp_path, f"""
        tasks:
          ok: {{shell: "echo", target: "out/{{date:%G-W%V}}/{{date:%-d}}-{{date:%Ey}}-{{date:%10Y}}%%.txt"}}
          a:
            shell: "echo"
            target: "out/{{date:{spec}}}.txt"
    """)
    for command in ("validate", "run", "status"):
        result = _cli(folder, command, env={})
        assert result.returncode == 2, (command, result.stdout, result.stderr)
        message = result.stderr
        assert "Pipelinefile.yaml, line 5, tasks.a.target" in message and repr(named)[1:-1] in message, message
        assert "ok" not in result.stdout
    assert not (folder / "out").exists()


@pytest.mark.parametrize("made", [False, True])
def test_a_folder_name_too_long_in_a_target_is_refused_before_the_task_runs_whether_or_not_its_parent_exists(
        tmp_path: Path, made: bool) -> None:
    """A value making a folder name of more than 255 bytes is the values' fault (exit 2),
    said before the task runs -- not a storage failure after it ran (exit 3) just because
    the folder above it did not exist yet."""
    folder = _project(tmp_path, """
        params: {x: a}
        tasks:
          a: {shell: "echo ran >> ran.log; echo hi", target: "out/{params.x}/a.txt"}
    """)
    if made:
        (folder / "out").mkdir()
    for command in ("run", "status"):
        result = _cli(folder, command, "-p", "x=" + "b" * 300, env={})
        assert result.returncode == 2, (command, result.stdout, result.stderr)
        assert "300 bytes" in result.stderr and "255" in result.stderr, result.stderr
    assert not (folder / "ran.log").exists()
