"""An independent hostile review of the trust guarantees (DESIGN.md §3, README "Security
model"): each test is an attack that broke a promise at its mechanism before the fix.

Real files, real processes and real FIFOs; nothing is mocked.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from targetrun import redact
from targetrun.cli import invoke

TASKS = '''
def f(n="x"):
    return {"n": n}

def g(a):
    return a
'''


def _one_target(project, target: str, cache: str = ""):
    return project(f"""
        name: hostile
        {cache}
        params:
          n: a
        tasks:
          a:
            run: t:f
            args: {{n: "{{params.n}}"}}
            target: "{target}"
    """, t=TASKS)


# -- a value may not aim a target at targetrun's own files ----------------------------


@pytest.mark.parametrize("value", [".targetrun/state.db", ".targetrun/spec/x.json", "sub/.targetrun/x.json",
                                   ".TargetRun/state.db", "Pipelinefile.yaml", "pipelinefile.YAML"])
def test_a_value_cannot_overwrite_the_state_store_or_the_pipelinefile(project, value):
    proj = _one_target(project, "{params.n}")
    assert proj.cli("run").code == 0  # a store with records to lose
    before_store = (proj.root / ".targetrun/state.db").read_bytes()
    before_file = proj.file.read_bytes()

    result = proj.cli("run", "--force-all", "-p", f"n={value}")

    assert result.code == 2, result.text
    assert "Traceback" not in result.text
    assert "targetrun" in result.err and "tasks.a.target" in result.err, result.err
    assert (proj.root / ".targetrun/state.db").read_bytes() == before_store
    assert proj.file.read_bytes() == before_file
    assert proj.cli("status").code == 0


def test_a_value_cannot_overwrite_a_state_store_kept_elsewhere(project):
    proj = _one_target(project, "{params.n}", cache="cache: db/my-state.db")
    assert proj.cli("run").code == 0
    for value in ("db/my-state.db", "db/my-state.db-wal"):
        result = proj.cli("run", "--force-all", "-p", f"n={value}")
        assert result.code == 2, result.text
        assert "state store" in result.err, result.err
    with sqlite3.connect(proj.root / "db/my-state.db") as db:
        assert db.execute("pragma integrity_check").fetchone() == ("ok",)


# -- arguments that are not UTF-8 ------------------------------------------------------


@pytest.mark.parametrize("argv", [["run", "-p", "n=a\udcffb"], ["cache", "clear", "a\udcffb"],
                                  ["report", "--run", "a\udcffb"], ["run", "a\udcffb"]])
def test_an_argument_that_is_not_utf8_is_a_usage_error(project, argv):
    proj = _one_target(project, "out/{params.n}.json")
    os.chdir(proj.root)
    from io import StringIO

    out, err = StringIO(), StringIO()
    code = invoke(argv, out, err)
    assert code == 2, err.getvalue()
    assert "Traceback" not in err.getvalue() and "UTF-8" in err.getvalue(), err.getvalue()
    assert err.getvalue().count("\n") == 1


def test_a_non_utf8_argument_end_to_end(project):
    proj = _one_target(project, "out/{params.n}.json")
    done = subprocess.run([os.fsencode(sys.executable), b"-m", b"targetrun", b"run", b"-p", b"n=a\xffb"],
                          cwd=proj.root, capture_output=True, timeout=60)
    assert done.returncode == 2, done.stderr
    assert b"Traceback" not in done.stderr and b"UTF-8" in done.stderr
    assert not (proj.root / "out").exists()


def test_the_python_api_refuses_a_parameter_that_is_not_utf8(project):
    from targetrun import api
    from targetrun.errors import UsageError

    proj = _one_target(project, "out/{params.n}.json")
    with pytest.raises(UsageError, match="UTF-8"):
        api.run(str(proj.file), params={"n": "a\udcffb"})


# -- what is planted at a target or a dep is read only if it is a regular file -------------


def _cli(root: Path, *args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    """The real command in its own process: a hang is a failed test, not a stuck suite."""
    return subprocess.run([sys.executable, "-m", "targetrun", *args], cwd=root, capture_output=True,
                          text=True, timeout=timeout)


def _reader(project):
    return project("""
        name: hostile
        tasks:
          a:
            run: t:f
            target: out/a.json
          b:
            run: t:g
            needs: [a]
            target: out/b.json
    """, t=TASKS)


@pytest.mark.parametrize("plant", ["fifo", "dev-zero"])
def test_a_fifo_or_device_at_a_target_is_refused_not_read(project, plant):
    proj = _reader(project)
    (proj.root / "out").mkdir()
    if plant == "fifo":
        os.mkfifo(proj.root / "out/a.json")  # opening it for reading waits for a writer forever
    else:
        os.symlink("/dev/zero", proj.root / "out/a.json")  # never ends: all memory, then MemoryError
    for command in (["run", "b"], ["show", "a"]):
        done = _cli(proj.root, *command)
        text = done.stdout + done.stderr
        assert done.returncode == 3, text
        assert "not a regular file" in text and "Traceback" not in text, text
    assert not (proj.root / "out/b.json").exists()


@pytest.mark.parametrize("plant", ["fifo", "dev-zero"])
def test_a_fifo_or_device_in_place_of_the_spec_cache_is_a_miss_not_read(project, plant):
    """``.targetrun/spec/<key>.json`` is read by every run and status before anything else:
    a FIFO there (opening it waits for a writer forever) or a link to /dev/zero (never
    ends) is no cache -- the Pipelinefile is parsed, and the cache written again."""
    from targetrun.pipelinefile import spec_cache_file

    proj = project("""
        name: plain
        tasks:
          a: {shell: 'echo a > {output}', target: out/a.txt}
    """)
    assert _cli(proj.root, "run").returncode == 0
    cache = spec_cache_file(str(proj.file))
    os.remove(cache)
    if plant == "fifo":
        os.mkfifo(cache)
    else:
        os.symlink("/dev/zero", cache)
    for command in (["status"], ["run"]):
        done = _cli(proj.root, *command)
        assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr
    assert os.path.isfile(cache) and not os.path.islink(cache)  # written again, in the plant's place


@pytest.mark.parametrize("plant", ["fifo", "dev-zero"])
def test_a_fifo_or_device_among_deps_is_refused_not_read(project, plant):
    proj = project("""
        name: hostile
        tasks:
          a:
            shell: "echo made > {output}"
            target: out/a.txt
            deps: [data/in.csv]
            cache_validator: deps
    """)
    (proj.root / "data").mkdir()
    (proj.root / "data/in.csv").write_text("x\n")
    assert proj.cli("run").code == 0  # a record with the dep's size and mtime, which now change
    (proj.root / "data/in.csv").unlink()
    if plant == "fifo":
        os.mkfifo(proj.root / "data/in.csv")
    else:
        os.symlink("/dev/zero", proj.root / "data/in.csv")
    for command in (["status"], ["run"]):
        done = _cli(proj.root, *command)
        assert done.returncode == 2, done.stderr
        assert "data/in.csv is not a regular file" in done.stderr and "Traceback" not in done.stderr, done.stderr


def test_a_deps_glob_that_matches_folders_fingerprints_their_files(project):
    proj = project("""
        name: hostile
        tasks:
          a:
            shell: "echo made > {output}"
            target: out/a.txt
            deps: ["data/**"]
            cache_validator: deps
    """)
    (proj.root / "data/sub").mkdir(parents=True)
    (proj.root / "data/sub/x.csv").write_text("1\n")
    first = proj.cli("run")
    assert first.code == 0, first.text  # was: IsADirectoryError, exit 4
    assert proj.cli("status", "--check").code == 0
    (proj.root / "data/sub/x.csv").write_text("2\n")
    changed = proj.cli("status")
    assert "deps changed" in changed.out or "data/sub/x.csv" in changed.out, changed.out


# -- credentials in the shapes HTTP clients, SDKs and config files print ----------------

LEAKS = {
    "BEARERTOKEN1": "requests: 401 for GET https://api.example.com/v1 headers={'Authorization': 'Bearer BEARERTOKEN1'}",
    "BASICCRED2": "Authorization: Basic BASICCRED2",
    "BEARERTOKEN3": "curl -H 'Authorization: bearer BEARERTOKEN3' https://api.example.com",
    "SIGNATURE4": "Authorization': b'AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20261201/us-east-1/s3/aws4_request, "
                  "SignedHeaders=host;x-amz-date, Signature=SIGNATURE4'",
    "AWSSECRET5": "aws_secret_access_key = AWSSECRET5",
    "DBPASSWORD6": "database:\n  password: DBPASSWORD6\n  host: db",
    "GHTOKEN7": "Bearer GHTOKEN7 was rejected",
    # lower case throughout, hyphenated header names, cookies
    "lowercasebearertokenvalue": "authorization failed: bearer lowercasebearertokenvalue",
    "xapikey8": "X-Api-Key: xapikey8",
    "xapikey9": "{'x-api-key': 'xapikey9'}",
    "authtoken10": "x-auth-token: authtoken10",
    "glpat-token11": "PRIVATE-TOKEN: glpat-token11",
    "cookievalue12": "Cookie: session=cookievalue12; theme=dark",
    "setcookie13": "set-cookie: sid=setcookie13; Path=/; HttpOnly",
}


def test_redaction_masks_authorization_headers_and_config_lines():
    for secret, text in LEAKS.items():
        assert secret not in redact.redact(text), text
    for harmless in ("cache_key=weather", "max_tokens = 5", "tokens: 12", "the key: value pairs",
                     "Basic checks passed", "a bearer of bad news", "the bearer instruments were sold",
                     "max-tokens: 5", "cookie jar: empty", "the api-key header is missing"):
        assert redact.redact(harmless) == harmless


def test_a_task_printing_and_raising_headers_leaks_nothing_anywhere(project):
    lines = "\n".join(f"    print({text!r})" for text in LEAKS.values())
    proj = project("""
        name: hostile
        tasks:
          a:
            run: t:f
            target: out/a.json
    """, t=f"def f():\n{lines}\n    raise RuntimeError({LEAKS['BEARERTOKEN1']!r})\n")
    shown = [proj.cli("run"), proj.cli("run", "--json"), proj.cli("logs", "a"), proj.cli("history", "--json"),
             proj.cli("report", "-o", str(proj.root / "r.html"))]
    assert shown[0].code == 1, shown[0].text
    files = [*(proj.root / ".targetrun").rglob("*"), proj.root / "r.html"]  # t.py holds them, of course
    kept = [path.read_bytes().decode("utf-8", "replace") for path in files if path.is_file()]
    for secret in LEAKS:
        for result in shown:
            assert secret not in result.text, (secret, result.text)
        for text in kept:
            assert secret not in text, secret


# -- a file name too long for targetrun's staging sibling is refused before anything runs --


def test_a_target_name_too_long_for_its_staging_file_is_refused_before_the_task_runs(project):
    proj = project("""
        name: hostile
        params:
          n: a
        tasks:
          a:
            shell: "echo ran >> ran.log; echo made > {output}"
            target: "out/{params.n}.txt"
    """)
    for command in ("status", "run"):
        result = proj.cli(command, "-p", "n=" + "é" * 100)  # 204 bytes: a file, but no room for .NAME.targetrun-...
        assert result.code == 2, result.text
        assert "tasks.a.target" in result.err and "bytes" in result.err, result.err
    assert not proj.exists("ran.log")
    fits = proj.cli("run", "-p", "n=" + "a" * 160)
    assert fits.code == 0, fits.text


# -- two targets that one case-insensitive or normalising disk sees as one file ------------


@pytest.mark.parametrize("items", ["[Report, report]", "[\u00e9, e\u0301]"])
def test_mapped_targets_that_are_one_file_on_macos_are_refused(project, items):
    proj = project("""
        name: hostile
        params:
          items: [a, b]
        tasks:
          m:
            run: t:f
            foreach: "{params.items}"
            args: {n: "{item}"}
            target: "out/{item}.json"
    """, t=TASKS)
    result = proj.cli("run", "-p", f"items={items}")
    assert result.code == 2, result.text
    assert "case-insensitive" in result.err and "tasks.m.target" in result.err, result.err
    assert not proj.exists("out")


def test_two_tasks_whose_targets_differ_only_by_case_are_refused_at_load(project):
    proj = project("""
        name: hostile
        tasks:
          a: {shell: "echo 1 > {output}", target: out/Data.txt}
          b: {shell: "echo 2 > {output}", target: out/data.txt}
    """)
    result = proj.cli("validate")
    assert result.code == 2 and "line 4" in result.err and "tasks.b.target" in result.err, result.err


# -- a Pipelinefile that is not UTF-8 names its line ------------------------------------


def test_a_pipelinefile_that_is_not_utf8_names_the_line(project):
    proj = project("name: x\ntasks:\n  a:\n    shell: \"echo hi\"\n")
    proj.file.write_bytes(b"name: x\ntasks:\n  a:\n    shell: \"echo \xff\xfe\"\n")
    result = proj.cli("validate")
    assert result.code == 2 and "line 4" in result.err and "not UTF-8" in result.err, result.err
