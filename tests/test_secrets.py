"""No credential in any output: a grep over everything a command leaves behind.

Credentials with the characters that break URL parsing (``/ # ? @ :``) are planted in a
Redis URL (percent-encoded, not encoded, as ``?password=``), in an ``endpoint_url``'s
userinfo and in storage ``options`` (literally and through ``${VAR}``), and echoed by a
task. Then ``run``, ``run --json``, ``status``, ``history``, ``logs`` run as real processes
against a closed port, a real redis-server (with a password) and the real moto S3 server,
and their stdout, stderr and every file under ``.targetrun/`` are searched for each secret
in every spelling a library might print.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote, quote_plus

import pytest

from tests.backends import free_port

REDIS_PW = "p/a#ss?w0rd@x:y"  # every character that ends a URL's host part, plus '@' and ':'
QUERY_PW = "qp4ss/w0rd#9"
S3_SECRET = "S3cr/t+Key#?=zz"
S3_KEY = "AKIAPLANTEDKEY01"
EP_PASS = "ep/pa#ss?@99"
ENV_SECRET = "env-Secret/Value#42"
SECRETS = (REDIS_PW, REDIS_PW[::-1], QUERY_PW, S3_SECRET, S3_KEY, EP_PASS, ENV_SECRET)

TASKS = '''
import os

def echo(**upstream):
    secret = os.environ.get("PLANTED", "")
    print(f"the task saw {secret}")
    raise RuntimeError(f"failed while using {secret}")

def ok():
    return "ok"
'''


def spellings(secret: str) -> set[str]:
    return {secret, quote(secret, safe=""), quote_plus(secret), quote(secret)}


def assert_nowhere(folder: Path, *texts: str) -> None:
    """No secret, in any spelling, in ``texts`` or in any file under ``.targetrun/``."""
    blobs: list[tuple[str, bytes]] = [(f"output {i}", text.encode()) for i, text in enumerate(texts)]
    state = folder / ".targetrun"
    if state.exists():
        blobs += [(str(path), path.read_bytes()) for path in state.rglob("*") if path.is_file()]
    for secret in SECRETS:
        for form in spellings(secret):
            for where, blob in blobs:
                assert form.encode() not in blob, f"{form!r} found in {where}"


def targetrun(folder: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([sys.executable, "-m", "targetrun", *args[:1], "-f", str(folder / "Pipelinefile.yaml"),
                             *args[1:]],
                            capture_output=True, text=True, timeout=120, cwd=folder,
                            env={**os.environ, "PLANTED": ENV_SECRET, "S3_SECRET_ENV": S3_SECRET, **(env or {})})
    assert "Traceback" not in result.stderr, result.stderr
    return result


def make(tmp_path: Path, pipeline: str) -> Path:
    folder = tmp_path / "p"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "tasks.py").write_text(TASKS)
    (folder / "Pipelinefile.yaml").write_text(textwrap.dedent(pipeline).lstrip())
    return folder


COMMANDS = (("run",), ("run", "--json"), ("status",), ("status", "--json"), ("history",), ("history", "--json"),
            ("run", "--resume"), ("cache", "list"))


def run_all(folder: Path, expected: int, *, store_commands: bool = True) -> list[str]:
    """Every command in COMMANDS; those that need the backend under test exit ``expected``
    (``history``, ``cache list`` and ``--resume`` need only the state store)."""
    texts = []
    for command in COMMANDS:
        if command[0] == "cache":
            result = subprocess.run([sys.executable, "-m", "targetrun", "cache", "list", "-f",
                                     str(folder / "Pipelinefile.yaml")], capture_output=True, text=True, timeout=120)
        else:
            result = targetrun(folder, *command)
        needs_storage = command[0] in ("run", "status") and "--resume" not in command
        if store_commands or needs_storage:
            assert result.returncode == expected, (command, result.stdout, result.stderr)
        assert result.returncode != 4, result.stderr
        texts += [result.stdout, result.stderr]
    return texts


@pytest.mark.parametrize("url", [
    "redis://:{encoded}@127.0.0.1:{port}/0",
    "rediss://user:{encoded}@127.0.0.1:{port}/0",
    "redis://127.0.0.1:{port}/0?password={query}",
])
def test_an_unreachable_redis_store_never_shows_its_password(tmp_path, url):
    cache = url.format(encoded=quote(REDIS_PW, safe=""), query=quote(QUERY_PW, safe=""), port=free_port())
    folder = make(tmp_path, f"""
        cache: "{cache}"
        tasks:
          a: {{run: tasks:ok, target: out/a.txt}}
    """)
    texts = run_all(folder, expected=3)
    assert "cannot be reached" in texts[1]
    assert_nowhere(folder, *texts)


def test_a_redis_password_with_unencoded_special_characters_is_refused_masked(tmp_path):
    folder = make(tmp_path, f"""
        cache: "redis://:{REDIS_PW}@127.0.0.1:{free_port()}/0"
        tasks:
          a: {{run: tasks:ok, target: out/a.txt}}
    """)
    texts = run_all(folder, expected=2)
    assert "percent-encoded" in texts[1] and "%2F" in texts[1]
    assert_nowhere(folder, *texts)


@pytest.fixture
def redis_with_password(redis_server) -> Iterator[str]:
    """The real redis-server, with REDIS_PW required for this test only."""
    import redis

    client = redis.Redis(host="127.0.0.1", port=redis_server.port)
    client.flushall()
    client.config_set("requirepass", REDIS_PW)
    try:
        yield f"redis://:{quote(REDIS_PW, safe='')}@127.0.0.1:{redis_server.port}/0"
    finally:
        authed = redis.Redis(host="127.0.0.1", port=redis_server.port, password=REDIS_PW)
        authed.config_set("requirepass", "")
        authed.flushall()
        authed.close()
        client.close()


def test_a_real_redis_store_with_a_password_keeps_it_out_of_records_logs_and_output(tmp_path, redis_with_password):
    folder = make(tmp_path, f"""
        cache: "{redis_with_password}"
        tasks:
          a: {{run: tasks:ok, target: out/a.txt}}
          leak: {{run: tasks:echo, needs: [a], target: out/leak.txt}}
          c: {{run: tasks:ok, cache_for: 1h}}
    """)
    # The task prints and raises with a secret the store's URL holds: masked in the
    # console, the JSON, the record in Redis and the log file.
    env = {"PLANTED": REDIS_PW}
    first = targetrun(folder, "run", "--json", env=env)
    assert first.returncode == 1, first.stderr
    assert "\"error\": \"RuntimeError: failed while using ***\"" in first.stdout, first.stdout
    texts = [first.stdout, first.stderr]
    for command in (("run",), ("status", "--json"), ("history", "--json"), ("logs", "leak")):
        result = targetrun(folder, *command, env=env)
        texts += [result.stdout, result.stderr]
    assert "the task saw ***" in texts[-2]  # `targetrun logs leak`: the log was kept, masked
    import redis

    stored = redis.Redis.from_url(redis_with_password, decode_responses=True)
    try:
        texts += [f"{key} {stored.dump(key)!r} {stored.type(key)}" for key in stored.keys("*")]
        texts += [str(stored.hgetall(key)) for key in stored.keys("targetrun:last:*")]
    finally:
        stored.close()
    assert_nowhere(folder, *texts)
    wrong = make(tmp_path / "wrong", f"""
        cache: "{redis_with_password.replace(quote(REDIS_PW, safe=''), quote(REDIS_PW[::-1], safe=''))}"
        tasks:
          a: {{run: tasks:ok, target: out/a.txt}}
    """)
    for command in (("status",), ("run",), ("history", "--json")):
        result = targetrun(wrong, *command)
        assert result.returncode == 3 and "refused the credentials" in result.stderr, result.stderr
        assert_nowhere(wrong, result.stdout, result.stderr)


def test_s3_credentials_in_options_and_endpoint_never_shown(tmp_path):
    endpoint = f"http://epUser:{quote(EP_PASS, safe='')}@127.0.0.1:{free_port()}/?password={quote(QUERY_PW, safe='')}"
    folder = make(tmp_path, f"""
        results:
          lake:
            url: s3://test-bucket/data
            options: {{key: "{S3_KEY}", secret: "{S3_SECRET}", client_kwargs: {{endpoint_url: "{endpoint}"}}}}
        tasks:
          a: {{run: tasks:ok, target: out/a.txt, result: lake}}
    """)
    texts = run_all(folder, expected=3, store_commands=False)
    assert "cannot tell whether s3://test-bucket/data/out/a.txt exists" in texts[1]
    assert_nowhere(folder, *texts)


def test_credentials_written_into_a_bucket_url_never_shown(tmp_path):
    folder = make(tmp_path, f"""
        tasks:
          a: {{run: tasks:ok, target: out/a.txt, result: "s3://{S3_KEY}:{quote(S3_SECRET, safe='')}@test-bucket/x"}}
          b: {{run: tasks:ok, target: out/b.txt, result: "s3://{S3_KEY}:{S3_SECRET}@test-bucket/x"}}
    """)
    texts = run_all(folder, expected=2, store_commands=False)
    assert "holds credentials" in texts[1]  # refused at load (botocore said "Invalid bucket name", quoting them)
    assert "***" not in texts[1].split("Write it as", 1)[1], texts[1]  # the hint itself reads whole
    assert_nowhere(folder, *texts)


def test_credentials_from_the_environment_are_masked_in_task_errors_logs_and_state(tmp_path, s3, s3_server):
    folder = make(tmp_path, f"""
        results:
          lake:
            url: s3://test-bucket/data
            options: {{key: "{S3_KEY}", secret: "${{S3_SECRET_ENV}}", client_kwargs: {{endpoint_url: "{s3_server.endpoint}"}}}}
        tasks:
          a: {{run: tasks:ok, target: out/a.txt, result: lake}}
          leak: {{run: tasks:echo, needs: [a], target: out/leak.txt, result: lake}}
    """)
    env = {"PLANTED": f"{S3_SECRET} and {S3_KEY}"}  # the task prints the credentials it was given
    first = targetrun(folder, "run", env=env)
    assert first.returncode == 1 and "RuntimeError: failed while using *** and ***" in first.stdout, first.stdout
    assert s3.exists("test-bucket/data/out/a.txt")  # the store and storage really worked
    texts = [first.stdout, first.stderr]
    for command in (("run", "--json"), ("status", "--json"), ("history",), ("logs", "leak")):
        result = targetrun(folder, *command, env=env)
        texts += [result.stdout, result.stderr]
    assert (folder / ".targetrun" / "logs").exists()
    assert_nowhere(folder, *texts)


def test_a_parameter_cannot_forge_a_line_of_the_output(tmp_path):
    folder = make(tmp_path, """
        params: {x: plain}
        tasks:
          a: {run: tasks:ok, target: "out/{params.x}.txt"}
          b: {run: tasks:echo, needs: [a], target: "out/b-{params.x}.txt"}
    """)
    texts = []
    # As typed in a shell: x=$'ok\n::error::forged', and as YAML escapes (with ESC and CR).
    for value in ("ok\n::error::forged", '"ok\\n::error::forged\\r\\x1b[2K"'):
        for command in (("status",), ("run", "--dry-run"), ("run",), ("run", "-v"), ("invalidate", "a")):
            result = targetrun(folder, *command, "-p", f"x={value}", env={"PLANTED": "boom\n::error::from the task"})
            texts += [result.stdout, result.stderr]
    history = targetrun(folder, "history")
    texts += [history.stdout, history.stderr]
    joined = "".join(texts)
    assert "ok\\n::error::forged" in joined  # the value is shown, escaped
    for text in texts:
        for line in text.splitlines():
            assert not line.lstrip().startswith("::error::"), line
            assert "\x1b" not in line and "\r" not in line, repr(line)


def test_redaction_covers_library_texts_it_was_never_told_about():
    from targetrun.redact import redact

    assert redact("Custom endpoint `http://u:p/a#ss?@h:9/?password=x1y2` bad") == \
        "Custom endpoint `http://***@h:9/?password=***` bad"
    assert redact("{'secret': 'abc/def', 'token': \"t0k\"}") == "{'secret': '***', 'token': \"***\"}"
    assert redact("https://b.s3.amazonaws.com/k?X-Amz-Credential=AK%2F1&X-Amz-Signature=ff") == \
        "https://b.s3.amazonaws.com/k?X-Amz-Credential=***&X-Amz-Signature=***"
    assert redact("ssh://git@github.com/x and cache_key=weather") == "ssh://git@github.com/x and cache_key=weather"


@pytest.mark.parametrize("secret", ['pässwort"1\\x', "hunter'22<é>", "back\\slash&amp;9"])
def test_a_secret_escaped_by_json_repr_or_html_is_masked_too(tmp_path, secret):
    """--json escapes a secret, a traceback shows its repr, the report HTML-escapes it:
    none of those spellings may get through."""
    folder = tmp_path / "p"
    folder.mkdir()
    (folder / "tasks.py").write_text(
        "import os\n\ndef leak():\n    s = os.environ['S']\n    print(repr(s), s)\n"
        "    raise RuntimeError('could not log in with ' + s + f' {s!r}')\n")
    (folder / "Pipelinefile.yaml").write_text(
        "name: p\nresults:\n  lake:\n    url: memory://bucket/x\n    options: {key: 'AKIAKEYVALUE1', secret: '${S}'}\n"
        "tasks:\n  t: {run: 'tasks:leak', target: t.json, result: lake}\n")
    env = dict(os.environ, S=secret)
    outputs = []
    for command in (["run", "--json"], ["run"], ["history", "--json"], ["logs", "t"], ["report", "-o", "r.html"]):
        done = subprocess.run([sys.executable, "-m", "targetrun", *command], cwd=folder, env=env,
                              capture_output=True, text=True, timeout=120)
        assert "Traceback (most recent call last)" not in done.stderr, done.stderr
        outputs.append(done.stdout + done.stderr)
    files = [p.read_text(errors="replace") for p in folder.rglob("*") if p.is_file() and p.suffix != ".py"]
    files += [(folder / ".targetrun" / "state.db").read_bytes().decode("utf-8", "replace")]
    import html
    import json
    spellings = {secret, repr(secret)[1:-1], json.dumps(secret)[1:-1], json.dumps(secret, ensure_ascii=False)[1:-1],
                 html.escape(secret), quote(secret, safe="")}
    for text in outputs + files:
        for spelled in spellings:
            assert spelled not in text, (spelled, text[:300])


def test_a_redis_password_with_a_space_is_masked_whole(tmp_path):
    folder = tmp_path / "p"
    folder.mkdir()
    (folder / "Pipelinefile.yaml").write_text(
        'cache: "redis://:${RP}@127.0.0.1:%d/0"\ntasks:\n  a: {shell: "echo a > {output}", target: a.txt}\n' % free_port())
    done = subprocess.run([sys.executable, "-m", "targetrun", "run"], cwd=folder, capture_output=True, text=True,
                          env=dict(os.environ, RP="hunter2 secretpart"), timeout=120)
    assert done.returncode == 3, done.stderr
    assert "hunter2" not in done.stdout + done.stderr and "secretpart" not in done.stdout + done.stderr


def _lower_escapes(text: str) -> str:
    import re

    return re.sub(r"%[0-9A-F]{2}", lambda m: m.group().lower(), text)


def test_a_registered_password_is_masked_with_lowercase_escapes_and_as_basic_auth():
    """A library may percent-encode a password with lowercase hex (``%2f``, as RFC 3986
    allows) or send ``user:password`` as HTTP Basic auth (base64) and log that: each is
    the password too."""
    import base64

    from targetrun import redact

    redact.forget_all()
    try:
        redact.register_values("postgres://app:pa/ss w0rd!@db.internal/x")
        basic = base64.b64encode(b"app:pa/ss w0rd!").decode()
        for shown in (_lower_escapes(quote("pa/ss w0rd!", safe="")), _lower_escapes(quote_plus("pa/ss w0rd!")),
                      quote("pa/ss w0rd!", safe=""), basic):
            assert shown not in redact.redact(f"sent {shown} to db.internal"), shown
        assert redact.redact("app and db.internal") == "app and db.internal"  # the user and host are no secret
    finally:
        redact.forget_all()


def test_a_password_from_the_environment_is_masked_however_a_task_encodes_it(tmp_path):
    """DATABASE_URL's password, printed by a task lowercase-percent-encoded and as the
    Basic auth header value it makes, shows in no output and no file."""
    import base64

    password = "s3c/r3t:pa ss"
    folder = tmp_path / "p"
    folder.mkdir()
    (folder / "tasks.py").write_text(textwrap.dedent("""
        import base64, os, re, sys
        from urllib.parse import quote, urlsplit, unquote

        def leak():
            url = urlsplit(os.environ["DATABASE_URL"])
            user, password = unquote(url.username), unquote(url.password)
            low = re.sub(r"%[0-9A-F]{2}", lambda m: m.group().lower(), quote(password, safe=""))
            basic = base64.b64encode(f"{user}:{password}".encode()).decode()
            print("encoded", low, "basic", basic)
            raise RuntimeError(f"login failed: {low} / {basic}")
        """))
    (folder / "Pipelinefile.yaml").write_text("tasks:\n  t: {run: 'tasks:leak', target: t.json}\n")
    env = dict(os.environ, DATABASE_URL=f"postgres://app:{quote(password, safe='')}@db.internal/x")
    outputs = []
    for command in (["run", "--json"], ["run"], ["logs", "t"], ["history", "--json"]):
        done = subprocess.run([sys.executable, "-m", "targetrun", *command], cwd=folder, env=env,
                              capture_output=True, text=True, timeout=120)
        outputs.append(done.stdout + done.stderr)
    assert "login failed" in outputs[1]  # the task did print it (else this tests nothing)
    files = [p.read_bytes().decode("utf-8", "replace") for p in folder.rglob("*") if p.is_file() and p.suffix != ".py"]
    for shown in (_lower_escapes(quote(password, safe="")), base64.b64encode(f"app:{password}".encode()).decode()):
        for text in outputs + files:
            assert shown not in text, (shown, text[:300])
