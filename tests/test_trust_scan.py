"""An independent hostile review of two promises of DESIGN.md ("Trust and containment").

1. The spec cache: a file put in ``.targetrun/spec/`` by someone else must never decide
   what runs. It is JSON (it cannot be unpickled), but a JSON spec holds every command
   and function a run calls: rewriting one in the cache ran a command the Pipelinefile
   does not have, past the shell placeholder checks, while the Pipelinefile looked
   innocent (with the state store elsewhere -- Redis -- the folder holds nothing else).
2. Credentials: a private key (PEM) that a task or a library prints -- a service
   account's key, ``cat key.pem``, a JSON blob holding one under a neutral name -- went
   into the console, the task's log, ``targetrun logs`` and the HTML report as it was.

Real files and processes only; nothing is mocked.
"""

from __future__ import annotations

import base64
import json
import os
import sqlite3
from pathlib import Path

import pytest

# -- 1. a spec cache file someone else wrote -----------------------------------------------

SHELL_PIPELINE = """
name: scan
tasks:
  a: {shell: "echo hi > {output}", target: out/a.txt}
"""


def _cache_files(proj) -> list[Path]:
    return sorted((proj.root / ".targetrun" / "spec").glob("*.json"))


def test_a_spec_cache_file_rewritten_by_someone_else_never_decides_what_runs(project):
    proj = project(SHELL_PIPELINE)
    assert proj.cli("status").code == 0
    (cached,) = _cache_files(proj)
    text = cached.read_text()
    assert "echo hi > {output}" in text
    cached.write_text(text.replace("echo hi > {output}", "touch MARKER; echo planted > {output}"))
    result = proj.cli("run")
    assert result.code == 0, result.text
    assert not proj.exists("MARKER"), "a command written only into .targetrun/spec/ ran"
    assert proj.read("out/a.txt") == "hi\n"


def test_a_spec_cache_file_planted_under_the_right_name_is_not_read(project):
    """The attacker needs no earlier run: the cache file's name is computable from what
    anyone who can read the project sees. A file planted under it is a miss."""
    from targetrun.pipelinefile import cachefile, parse_pipeline, spec_cache_file

    proj = project(SHELL_PIPELINE)
    evil = parse_pipeline(SHELL_PIPELINE.replace("echo hi", "touch MARKER; echo planted").encode(), str(proj.file))
    target = Path(spec_cache_file(str(proj.file)))
    target.parent.mkdir(parents=True)
    target.write_bytes(cachefile.dumps(evil))
    for command in (("status",), ("run",)):
        result = proj.cli(*command)
        assert result.code == 0, result.text
        assert not proj.exists("MARKER"), f"`{command[0]}` ran a command planted in the spec cache"
    assert proj.read("out/a.txt") == "hi\n"


def test_the_spec_cache_still_serves_its_own_writer(project):
    """The check is not a way of never using the cache: the file this user's targetrun
    wrote is read back (no parse) on the next load."""
    from targetrun.pipelinefile import load_pipeline

    proj = project(SHELL_PIPELINE)
    first = load_pipeline(str(proj.file))
    (cached,) = _cache_files(proj)
    proj.file.write_text(proj.file.read_text())  # same bytes: same cache file
    again = load_pipeline(str(proj.file))
    assert again == first and again is not first
    assert _cache_files(proj) == [cached]


# -- 2. a private key printed by a task or a library --------------------------------------

def _pem(kind: str = "PRIVATE KEY") -> tuple[str, list[str]]:
    """A PEM block of random key bytes, and its body lines (the secret)."""
    body = base64.b64encode(os.urandom(300)).decode()
    lines = [body[i:i + 64] for i in range(0, len(body), 64)]
    return f"-----BEGIN {kind}-----\n" + "\n".join(lines) + f"\n-----END {kind}-----\n", lines


PRINTS_KEY = '''
import json, os, sys

def plain():
    print("loading the service account key:")
    print(os.environ["PEM"], end="")
    raise RuntimeError("invalid key")

def as_json():
    print(json.dumps({"kind": "sa", "pem": os.environ["PEM"]}))
    raise RuntimeError("invalid key")

def in_error():
    raise ValueError("could not parse " + os.environ["PEM"])
'''


def _everything_shown(proj, env_pem: str, task: str) -> list[str]:
    """Run ``task`` (it fails) and gather every output: both streams of run and run --json,
    `logs`, the log files, the HTML report and the state store's text."""
    os.environ["PEM"] = env_pem
    try:
        texts = []
        for command in (("run", task), ("run", "--json", task), ("logs", task), ("history", "--json")):
            result = proj.cli(*command)
            texts += [result.out, result.err]
        report = proj.root / "report.html"
        result = proj.cli("report", "-f", str(proj.file), "-o", str(report))
        assert result.code == 0, result.text
        texts += [result.text, report.read_text()]
    finally:
        del os.environ["PEM"]
    texts += [p.read_text() for p in (proj.root / ".targetrun" / "logs").rglob("*") if p.is_file()]
    with sqlite3.connect(proj.root / ".targetrun" / "state.db") as db:
        for (table,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall():
            texts += [repr(row) for row in db.execute(f"SELECT * FROM {table}")]  # noqa: S608 (a name it listed)
    return texts


@pytest.mark.parametrize("task", ["plain", "as_json", "in_error"])
@pytest.mark.parametrize("kind", ["PRIVATE KEY", "RSA PRIVATE KEY", "OPENSSH PRIVATE KEY", "ENCRYPTED PRIVATE KEY"])
def test_a_private_key_a_task_prints_is_never_shown(project, task, kind):
    proj = project(f"""
    name: keys
    tasks:
      {task}: {{run: keys:{task}, target: out/{task}.json}}
    """, keys=PRINTS_KEY)
    pem, body = _pem(kind)
    texts = _everything_shown(proj, pem, task)
    joined = "\n".join(texts)
    assert "invalid key" in joined or "could not parse" in joined  # the failure is shown ...
    assert f"BEGIN {kind}" in joined  # ... and says what was hidden
    for line in body:
        assert line not in joined and json.dumps(line)[1:-1] not in joined, f"a line of the key was shown: {line}"


def test_a_private_key_printed_by_a_shell_task_is_never_shown(project):
    proj = project("""
    name: keys
    tasks:
      sh: {shell: "cat key.pem >&2; exit 1", target: out/sh.txt}
    """)
    pem, body = _pem()
    (proj.root / "key.pem").write_text(pem)
    joined = "\n".join(_everything_shown(proj, "", "sh"))
    assert "BEGIN PRIVATE KEY" in joined
    for line in body:
        assert line not in joined, f"a line of the key was shown: {line}"


def test_redact_masks_a_private_key_in_every_spelling_and_only_its_body():
    from targetrun.redact import redact

    pem, body = _pem()
    for text in (pem, json.dumps({"k": pem}), repr({"k": pem}), "key=" + pem.replace("\n", "\\n"),
                 pem[: len(pem) // 2]):  # cut off before its END line (a log's last lines)
        shown = redact(text)
        assert "BEGIN PRIVATE KEY" in shown
        assert not any(line[:20] in shown for line in body), shown
        assert redact(shown) == shown  # masking twice changes nothing
    assert redact("a line after -----END PRIVATE KEY----- stays") == "a line after -----END PRIVATE KEY----- stays"
    certificate = "-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIU\n-----END CERTIFICATE-----"
    assert redact(certificate) == certificate  # a certificate is public


# -- 3. a credential inside a parameter's value, kept in the state store ----------------------

PARAM_STEPS = '''
def use(db):
    return 1
'''


def _store_text(proj) -> str:
    """Every byte the SQLite store holds, compressed blobs opened."""
    import zlib

    texts = []
    with sqlite3.connect(proj.root / ".targetrun" / "state.db") as db:
        for (table,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall():
            for row in db.execute(f"SELECT * FROM {table}"):  # noqa: S608 (a name it listed)
                for cell in row:
                    if isinstance(cell, bytes):
                        try:
                            cell = zlib.decompress(cell)
                        except zlib.error:
                            pass
                        cell = cell.decode("utf-8", "replace")
                    texts.append(str(cell))
    return "\n".join(texts)


@pytest.mark.parametrize("dsn", ["postgres://app:{pw}@db.internal:5432/sales", "app:{pw}@db.internal/sales",
                                 '["x", {{"url": "https://u:{pw}@h/x"}}]'])
def test_a_credential_inside_a_parameter_value_never_lands_in_the_state_store(project, dsn):
    """``param_text`` keeps only a digest of a parameter *named* like a credential; a DSN
    under a neutral name (``db``) went into the store's records as it was (``made_with``),
    where anyone reading ``.targetrun/state.db`` -- a CI artifact -- finds it."""
    proj = project("""
    name: dsn
    params: {db: none}
    tasks:
      a: {run: steps:use, args: {db: "{params.db}"}, target: out/a.json}
    """, steps=PARAM_STEPS)
    password, other = "Pw-7f3kQ9zX", "Pw-other-8Lm2"
    given = dsn.format(pw=password)
    assert proj.cli("run", "-p", f"db={given}").code == 0
    assert password not in _store_text(proj)
    same = proj.cli("status", "-p", f"db={given}")
    assert same.code == 0 and "made with" not in same.out, same.out  # the same value: not stale
    changed = proj.cli("status", "-p", f"db={dsn.format(pw=other)}")
    assert changed.code == 0 and "made with db=" in changed.out, changed.out  # another password: told apart
    assert password not in changed.text and other not in changed.text


def test_the_spec_cache_key_is_private_to_its_user_and_outside_the_project(project, tmp_path, monkeypatch):
    """The key is made 0600 in the user's cache folder; one others can read is no secret,
    and without a key nothing is cached (a planted file could not be told from ours)."""
    from targetrun.pipelinefile import load_pipeline, signing

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "user-cache"))
    signing._key_at.cache_clear()
    try:
        proj = project(SHELL_PIPELINE)
        load_pipeline(str(proj.file))
        key = Path(signing.key_path())
        assert key.is_file() and key.stat().st_mode & 0o777 == 0o600
        assert not str(key).startswith(str(proj.root))
        (cached,) = _cache_files(proj)
        key.chmod(0o644)
        signing._key_at.cache_clear()
        cached.unlink()
        assert load_pipeline(str(proj.file)).tasks["a"].shell == "echo hi > {output}"
        assert _cache_files(proj) == []  # nothing cached without a private key
    finally:
        signing._key_at.cache_clear()


# -- 4. a recorded checkpoint read as something else than it was written ---------------------

def test_a_checkpoint_is_read_as_it_was_recorded_on_every_path(project):
    """Planning reads a checkpoint with the serializer its record names ("as it was
    written, never by a guess"), and re-labels the task for the run -- except for an
    upstream it had already read to expand a mapped task: the run then handed the worker
    the serializer the Pipelinefile now implies, and a checkpoint recorded as JSON went to
    pickle.load. The record's serializer now travels with its size and sha256."""
    proj = project("""
    name: relabel
    tasks:
      u: {run: steps:items, target: out/u.dat, serializer: json}
      m: {run: steps:each, foreach: {needs: u}, needs: {i: u}, target: "out/m/{item}.json"}
      d: {run: steps:use, needs: {x: u}, target: out/d.json}
    """, steps='''
def items():
    return [1, 2]

def each(i):
    return i

def use(x):
    return len(x)
''')
    assert proj.cli("run").code == 0
    assert proj.read("out/u.dat").strip() == "[1, 2]"
    proj.file.write_text(proj.file.read_text().replace(", serializer: json", ""))  # .dat: pickle, by default
    result = proj.cli("run", "--force", "d")
    assert result.code == 0, result.text
    assert proj.read("out/d.json").strip() == "2"
    shown = proj.cli("show", "u")
    assert shown.code == 0 and json.loads(shown.out) == [1, 2], shown.text


# -- 5. a credential as a quoted keyword argument or config value ------------------------------

QUOTED_FORMS = [
    ("S3FileSystem(key='minio', secret='{s}', token=None)", "secret='***'"),
    ('Redis<password="{s}">', 'password="***"'),
    ("Credentials(client_secret='{s}', refresh_token='{s}')", "client_secret='***', refresh_token='***'"),
    ('export DB_PASSWORD="{s} with spaces"', 'DB_PASSWORD="***"'),
    ("aws_secret_access_key = '{s}'", "aws_secret_access_key = '***'"),
    ('token: "{s} x"', 'token: "***"'),
    ("{{b'password': b'{s}'}}", "b'password': b'***'"),
    ("connect(password='{s}\\'q')", "password='***'"),
]


@pytest.mark.parametrize(("form", "masked"), QUOTED_FORMS)
def test_a_quoted_credential_value_is_masked_without_being_registered(form, masked):
    """README: ``password=``, ``secret=`` and config lines such as ``password: ...``
    become ``***``. A repr of a client (``Redis(password='...')``), a keyword argument or
    a quoted config value put quotes around the value, and it went through."""
    from targetrun.redact import redact

    secret = "Sx9-unregistered"
    shown = redact(form.format(s=secret))
    assert secret not in shown and masked in shown, shown
    assert redact(shown) == shown


def test_a_repr_with_a_quoted_password_a_task_raises_is_never_shown(project):
    proj = project("""
    name: repr
    tasks:
      a: {run: steps:connect, target: out/a.json}
    """, steps='''
def connect():
    print("connecting with Connection(host='db', password='Kq7-from-a-vault')")
    raise ConnectionError("cannot connect: Connection(host='db', password='Kq7-from-a-vault')")
''')
    texts = _everything_shown(proj, "", "a")
    joined = "\n".join(texts)
    assert "cannot connect" in joined and "password='***'" in joined
    assert "Kq7-from-a-vault" not in joined


# -- 6. a parameter named like a credential, printed alone by a task ---------------------------

@pytest.mark.parametrize("name", ["db_password", "api_token", "service_key"])
def test_a_parameter_named_like_a_credential_is_masked_where_a_task_prints_it_alone(project, name):
    """The store keeps only a digest of such a parameter (``param_text``), but its value was
    never registered: a driver's message quoting it alone went to the console, the log and
    the run's error record. Named as the environment rule names credentials
    (``*_PASSWORD``, ``*_TOKEN``, ``*_KEY`` of a kind), a parameter now is one too."""
    proj = project(f"""
    name: named
    params: {{{name}: none, city: paris}}
    tasks:
      a: {{run: steps:login, args: {{pw: "{{params.{name}}}", city: "{{params.city}}"}}, target: out/a.json}}
    """, steps='''
def login(pw, city):
    print("login to", city, "failed with", pw)
    raise PermissionError(f"authentication failed ({pw})")
''')
    secret = "Vv4-given-with-p"
    texts = []
    for command in (("run", "-p", f"{name}={secret}"), ("run", "--json", "-p", f"{name}={secret}"), ("logs", "a")):
        result = proj.cli(*command)
        texts += [result.out, result.err]
    texts += [p.read_text() for p in (proj.root / ".targetrun" / "logs").rglob("*") if p.is_file()]
    texts.append(_store_text(proj))
    joined = "\n".join(texts)
    assert "authentication failed (***)" in joined and "login to paris failed with ***" in joined
    assert secret not in joined
