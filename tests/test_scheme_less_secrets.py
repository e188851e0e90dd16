"""Credentials written without a scheme -- ``user:password@host`` or
``user:password@host:5432/db`` in a ``-p`` value or a storage option -- are masked in
everything targetrun shows or keeps, like ``scheme://user:password@host``; ordinary text
with an ``@`` (an e-mail address, ``10:30@home``, a git remote, an image digest) is not.

The rule is in targetrun/redact.py's docstring. The tests go through the real CLI: a task
that echoes the value and fails with it, then ``run``, ``run --json``, ``status``,
``status --json``, ``history``, ``logs`` and ``report``, and every file under ``.targetrun/``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from targetrun.redact import redact

PARAM_PW = "Sup3r/Pw#x"
OPTION_PW = "0ptionPw99"
DSN = f"app:{PARAM_PW}@db.internal:5432/sales"
ORDINARY = ("mail ops@example.com", "at 10:30@home", "git@github.com:org/repo.git",
            "python:3.11@sha256:9f2c", "mailto:ops@example.com", "C:\\data\\a@b")

TASKS = f'''
def load(dsn, note):
    password = dsn.split(":", 1)[1].rsplit("@", 1)[0] if "@" in dsn else ""
    print("connecting to", dsn, "|", note)
    print("the driver said: password", repr(password), "rejected")  # a library printing the password alone
    print("the store said: bad password {OPTION_PW}")
    raise RuntimeError(f"cannot connect to {{dsn}} ({{note}})")
'''

PIPELINE = f"""
params:
  dsn: none
  note: ""
results:
  lake:
    url: memory://scheme-less-test/x
    options: {{dsn: "reader:{OPTION_PW}@warehouse:5439/dw"}}
tasks:
  load:
    run: tasks:load
    args: {{dsn: "{{params.dsn}}", note: "{{params.note}}"}}
    target: loaded.json
    result: lake
"""


def targetrun(folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([sys.executable, "-m", "targetrun", *args], cwd=folder, capture_output=True, text=True,
                          timeout=120, env={**os.environ, "NO_COLOR": "1"})
    assert "Traceback" not in done.stderr, done.stderr
    return done


def outputs_of_every_command(tmp_path: Path, dsn: str, note: str) -> tuple[list[str], list[str]]:
    folder = tmp_path / "p"
    folder.mkdir()
    (folder / "tasks.py").write_text(TASKS)
    (folder / "Pipelinefile.yaml").write_text(PIPELINE)
    params = ["-p", f"dsn={dsn}", "-p", f"note={note}"]
    texts = []
    for command, code in ((["run", *params], 1), (["run", "--json", *params], 1), (["status", *params], 0),
                          (["status", "--json", *params], 0), (["history"], 0), (["history", "--json"], 0),
                          (["logs", "load"], 0), (["report", "-o", "report.html"], 0)):
        done = targetrun(folder, *command)
        assert done.returncode == code, (command, done.stdout, done.stderr)
        texts += [done.stdout, done.stderr]
    files = [(folder / "report.html").read_text()]
    files += [p.read_bytes().decode("utf-8", "replace") for p in (folder / ".targetrun").rglob("*") if p.is_file()]
    return texts, files


def test_a_scheme_less_credential_is_masked_everywhere_and_ordinary_text_is_not(tmp_path):
    note = " ".join(ORDINARY)
    texts, files = outputs_of_every_command(tmp_path, DSN, note)
    everything = "\n".join(texts + files)
    assert "cannot connect to ***@db.internal:5432/sales" in everything  # the task's error, masked in place
    for secret in (PARAM_PW, OPTION_PW, "Sup3r%2FPw%23x"):
        assert secret not in everything, secret
    assert "app:" not in everything  # the user goes with the password, as in scheme://user:password@host
    logs_output = texts[12]  # `logs load`: the task's own lines
    assert "connecting to ***@db.internal:5432/sales | " + note in logs_output, logs_output
    assert "the driver said: password '***' rejected" in logs_output
    assert "the store said: bad password ***" in logs_output
    run_output = texts[0] + texts[1]  # `run`: the task's error message
    assert f"cannot connect to ***@db.internal:5432/sales ({note})" in run_output.replace("\\\\", "\\"), run_output


@pytest.mark.parametrize("text, shown", [
    ("user:pass@host", "***@host"),
    ("user:pass@host:5432/db", "***@host:5432/db"),
    ("psql -d app:p/w#d@db.internal:5432/sales failed", "psql -d ***@db.internal:5432/sales failed"),
    ("dsn=me@corp.com:s3cr@t@10.0.0.7:1521.", "dsn=***@10.0.0.7:1521."),
    ("('reader:pw123@[::1]:6379')", "('***@[::1]:6379')"),
    ("app:hunter22@my_db:5432/x", "***@my_db:5432/x"),  # a host name with "_" (docker-compose services)
    ("_svc:pw@db/x", "***@db/x"),
    ("app:pw@db:sales", "***@db:sales"),
    ('could not connect to \\"app:hunter22@db\\"', 'could not connect to \\"***@db\\"'),  # as JSON escapes it
    ("app:pw@db\\nnext", "***@db\\nnext"),
])
@pytest.mark.parametrize("ordinary", [
    *ORDINARY, "Note: ops@example.com", "ratio 3:1@peak", "key:value@", "10:30@home.", "user@host:22",
])
def test_the_scheme_less_rule_masks_credentials_and_leaves_ordinary_text(text, shown, ordinary):
    assert redact(f"{ordinary} {text} {ordinary}") == f"{ordinary} {shown} {ordinary}"
