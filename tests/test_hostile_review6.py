"""Hostile review 6: each case reproduced with the real CLI in a subprocess, on real files
(or with the loader itself), before it was fixed."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.clirun import targetrun as _targetrun, write_project as _write

from targetrun.errors import SpecError
from targetrun.pipelinefile import yamlnodes


# -- 1. a mapping key longer than YAML's 1024-character limit for a simple key -------------

LONG = "k" * 1100
LONG_KEYS = {  # the text, and the line of its long key
    "task name": (f"tasks:\n  {LONG}:\n    shell: 'echo > {{output}}'\n    target: o.txt\n", 2),
    "second key of a block": (f"tasks:\n  a:\n    shell: 'echo > {{output}}'\n    target: o.txt\n  {LONG}: 1\n", 5),
    "flow mapping": (f"tasks:\n  a:\n    shell: 'echo > {{output}}'\n    target: o.txt\n    args: {{{LONG}: 1}}\n", 5),
    "flow sequence": (f"tasks:\n  a:\n    shell: 'echo > {{output}}'\n    target: o.txt\n    needs: [{LONG}: 1]\n", 5),
    "quoted key": (f'params:\n  "{LONG}": 1\ntasks:\n  a:\n    shell: "echo > {{output}}"\n    target: o.txt\n', 2),
    "quoted key with commas": (f"params:\n  '{'a, b' * 300}': 1\n", 2),
    "key of non-ASCII letters": (f"params:\n  {'é' * 1100}: 1\n", 2),
    "first key of the file": (f"{LONG}: 1\n", 1),
}


@pytest.mark.parametrize(("text", "line"), LONG_KEYS.values(), ids=LONG_KEYS.keys())
def test_a_key_longer_than_yaml_allows_is_named_as_such(text: str, line: int) -> None:
    with pytest.raises(SpecError) as caught:
        yamlnodes.load_document(text, "P.yaml")
    message = caught.value.format()
    assert "1024 characters" in message, message
    assert message.startswith("P.yaml, line ")
    assert caught.value.line == line
    assert "? " in message  # what to do: a shorter key, or an explicit one


def test_a_key_longer_than_yaml_allows_exits_2_with_one_paragraph(tmp_path: Path) -> None:
    folder = _write(tmp_path, LONG_KEYS["flow mapping"][0])
    done = _targetrun(folder, "run")
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    assert "Pipelinefile.yaml, line 5:" in done.stderr
    assert "1024 characters" in done.stderr
    assert done.stderr.count("\n") == 1
    done = _targetrun(folder, "run", "-p", f"{{{LONG}: 1}}")
    assert done.returncode == 2


def test_an_explicit_long_key_still_loads() -> None:
    doc = yamlnodes.load_document(f"? {LONG}\n: 1\n", "P.yaml")
    assert doc.value == {LONG: 1}


def test_a_short_key_syntax_error_keeps_the_yaml_message() -> None:
    with pytest.raises(SpecError) as caught:
        yamlnodes.load_document("a: b: c\n", "P.yaml")
    assert "1024" not in caught.value.format()


# -- 2. a secret of several lines, or one cut where a long log is cut, leaks no part ---------

SECRET = "Zq8firstHALFsecret\nSECONDhalfKq9w"
SHOWN = ("firstHALF", "SECONDhalf", "NDhalf", "Kq9w")  # any part


def _leaks(folder: Path, *texts: str) -> list[str]:
    """The places under ``folder`` (files, the state store) and among ``texts`` that hold a part of SECRET."""
    found = [f"output {i}" for i, text in enumerate(texts) if any(part in text for part in SHOWN)]
    for path in folder.rglob("*"):
        if path.is_file() and any(part.encode() in path.read_bytes() for part in SHOWN):
            found.append(str(path.relative_to(folder)))
    return found


@pytest.mark.parametrize("command", [
    # one line of the secret alone (a tool that prints a key line by line, `tail -1`)
    'printf "%s\\n" "$DEPLOY_TOKEN" | tail -n 1 >&2; exit 4',
    # the secret with Windows line breaks (a log, a terminal, a .env file edited on Windows)
    "python3 -c \"import os,sys; sys.stderr.write(os.environ['DEPLOY_TOKEN'].replace(chr(10), chr(13) + chr(10)))\"; exit 5",
    # a chatty task whose log is cut to its last million characters inside the secret
    "python3 -c \"import os,sys; sys.stderr.write(os.environ['DEPLOY_TOKEN'] + chr(10) + 'y' * (1000000 - 12) + chr(10))\"; exit 3",
    # a single-line secret cut the same way
    "python3 -c \"import os,sys; sys.stderr.write(os.environ['DEPLOY_TOKEN'].replace(chr(10), '-') + chr(10) + 'y' * (1000000 - 12) + chr(10))\"; exit 3",
], ids=["one line alone", "crlf", "log cut inside it", "single-line secret cut inside it"])
def test_no_part_of_a_multi_line_or_cut_secret_is_shown_or_kept(tmp_path: Path, command: str) -> None:
    text = "tasks:\n  a:\n    shell: |-\n      " + command + "\n    target: a.txt\n"
    folder = _write(tmp_path / "p", text)
    done = _targetrun(folder, "run", "--report", "r.html", env={"DEPLOY_TOKEN": SECRET})
    assert done.returncode == 1, done.stderr
    assert "***" in done.stdout + done.stderr  # the part was shown, masked
    logs = _targetrun(folder, "logs", "a")
    assert _leaks(folder, done.stdout, done.stderr, logs.stdout, logs.stderr) == []


def test_each_line_of_a_registered_secret_is_a_secret() -> None:
    from targetrun import redact
    redact.forget_all()
    try:
        redact.register("-----BEGIN PRIVATE KEY-----\r\nMIIEvQIBADANBgkq\r\n  hkiG9w0BAQEFAASC\nnull,\n}\n  4430,\n")
        assert redact.redact("MIIEvQIBADANBgkq and hkiG9w0BAQEFAASC") == "*** and ***"
        kept = '{"a": null, "b": "}", "size": 4430, "n": 1}'
        assert redact.redact(kept) == kept  # no line of punctuation, keywords or a number
    finally:
        redact.forget_all()


def test_a_cut_log_starts_at_a_line_or_a_word() -> None:
    from targetrun.capture import tail
    assert tail("head\nsecret-value-x\nend-of-log\n", 18) == "[... 20 characters cut ...]\nend-of-log\n"
    assert tail("head secret-value end", 8) == "[... 18 characters cut ...]\nend"
    assert tail("x" * 20, 5) == "[... 15 characters cut ...]\nxxxxx"  # one word: nothing better to do


# -- 3. a forged pending row removes no file recovery cannot prove it staged -----------------

RUN_ID = "20261203T070416-0a4d7d"
TOKEN = f"{RUN_ID}-1-f9fd7766"


def _pend(folder: Path, staging: str, location: str, run_id: str = RUN_ID, storage: str = "local") -> None:
    """What someone editing the store does: a row of their own, by a second connection."""
    import sqlite3
    db = sqlite3.connect(folder / ".targetrun/state.db", isolation_level=None)
    try:
        db.execute("INSERT INTO pending (staging, run_id, location, storage) VALUES (?, ?, ?, ?)", (staging, run_id, location, storage))
    finally:
        db.close()


@pytest.mark.parametrize("command", ["status", "run"])
def test_a_forged_pending_row_removes_nothing_recovery_did_not_stage(tmp_path: Path, command: str) -> None:
    folder = _write(tmp_path / "p", "tasks:\n  a:\n    shell: 'echo hi > {output}'\n    target: out/a.txt\n")
    assert _targetrun(folder, "run").returncode == 0
    outside = tmp_path / "victim"
    outside.mkdir()
    (folder / "linked").symlink_to(outside)
    root = f"{{root:{folder}}}"
    kept = {
        # outside the project altogether, named like a staging file
        outside / ".x.txt.targetrun-evil": (f"{outside}/.x.txt.targetrun-evil", f"{outside}/x.txt"),
        outside / f".y.txt.targetrun-{TOKEN}": (f"{outside}/.y.txt.targetrun-{TOKEN}", f"{outside}/y.txt"),
        # climbing out of the project with '..'
        outside / f".z.txt.targetrun-{TOKEN}": (f"{root}/../victim/.z.txt.targetrun-{TOKEN}", f"{root}/../victim/z.txt"),
        # through a symlink inside the project that leads out
        outside / f".w.txt.targetrun-{TOKEN}": (f"{root}/linked/.w.txt.targetrun-{TOKEN}", f"{root}/linked/w.txt"),
        # inside the project, but no token this tool makes (a user's own file)
        folder / "out/.keep.txt.targetrun-mine": (f"{root}/out/.keep.txt.targetrun-mine", f"{root}/out/keep.txt"),
        # a token of another run than the row's
        folder / f"out/.b.txt.targetrun-{TOKEN}": (f"{root}/out/.b.txt.targetrun-{TOKEN}", f"{root}/out/b.txt"),
        # a storage this pipeline does not have
        folder / f"out/.c.txt.targetrun-{TOKEN}": (f"{root}/out/.c.txt.targetrun-{TOKEN}", f"{root}/out/c.txt"),
    }
    for path, (staging, location) in kept.items():
        path.write_text("precious")
        run_id = "20261203T070416-ffffff" if path.name == f".b.txt.targetrun-{TOKEN}" else RUN_ID
        storage = "s3" if path.name == f".c.txt.targetrun-{TOKEN}" else "local"
        _pend(folder, staging, location, run_id, storage)
    # and one the tool did stage (a run killed mid-write): removed as before
    ours = folder / f"out/.a.txt.targetrun-{TOKEN}"
    ours.write_text("half")
    _pend(folder, f"{root}/out/.a.txt.targetrun-{TOKEN}", f"{root}/out/a.txt")
    done = _targetrun(folder, command)
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    assert [str(p) for p in kept if not p.exists()] == []
    assert all(p.read_text() == "precious" for p in kept)
    assert not ours.exists()


# -- 4. a task module that exits the process: never a silent exit, never "all done" ---------

EXITS = {
    "sys.exit on import": ("import sys\nsys.exit(3)\ndef f():\n    return 1\n", 2, "sys.exit(3)"),
    "exit(0) on import": ("exit(0)\ndef f():\n    return 1\n", 2, "exit(0)"),
    "os._exit(0) on import": ("import os\nos._exit(0)\ndef f():\n    return 1\n", 2, "os._exit(0)"),
    "os._exit(0) in the task": ("import os\ndef f():\n    os._exit(0)\n", 1, "os._exit(0)"),
    "posix._exit(0) in the task": ("import posix\ndef f():\n    posix._exit(0)\n", 1, "os._exit(0)"),
    "from os import _exit": ("from os import _exit\ndef f():\n    _exit(5)\n", 1, "os._exit(5)"),
}


@pytest.mark.parametrize(("module", "code", "said"), EXITS.values(), ids=EXITS.keys())
@pytest.mark.parametrize("jobs", [[], ["-j", "2", "--executor", "threads"]], ids=["inline", "threads"])
def test_a_task_module_that_exits_is_an_error_not_a_silent_exit(tmp_path: Path, module: str, code: int, said: str,
                                                               jobs: list[str]) -> None:
    folder = _write(tmp_path / "p", "tasks:\n  a: {run: steps:f, target: a.json}\n  b: {shell: 'echo > {output}', target: b.txt}\n",
                    **{"steps.py": module})
    done = _targetrun(folder, "run", "-k", *jobs)
    assert done.returncode == code, (done.stdout, done.stderr)
    assert said in done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    assert not (folder / "a.json").exists()
    if code == 1:  # the run went on: the other task was made and recorded
        assert (folder / "b.txt").exists()
        assert _targetrun(folder, "status", "b").returncode == 0


def test_a_forked_child_of_a_task_still_exits_with_os_exit(tmp_path: Path) -> None:
    module = ("import os\ndef f():\n    pid = os.fork()\n    if pid == 0:\n        os._exit(7)\n"
              "    return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])\n")
    folder = _write(tmp_path / "p", "tasks:\n  a: {run: steps:f, target: a.json}\n", **{"steps.py": module})
    done = _targetrun(folder, "run")
    assert done.returncode == 0, done.stderr
    assert (folder / "a.json").read_text().strip() == "7"


# -- 5. a shell command killed by a signal is said so, in a sentence -------------------------

def test_a_command_killed_by_a_signal_is_named_with_the_signal(tmp_path: Path) -> None:
    folder = _write(tmp_path / "p", "tasks:\n  a: {shell: 'kill -KILL $$', target: a.txt}\n")
    done = _targetrun(folder, "run")
    assert done.returncode == 1
    assert "the command was killed by signal 9 (SIGKILL)" in done.stdout, done.stdout
    assert not (folder / "a.txt").exists()


# -- 6. a long value cut for an error message is masked before it is cut --------------------

LONG_PASSWORD = "S3cr" + "q" * 250


@pytest.mark.parametrize("how", ["--scheduler", "TARGETRUN_SCHEDULER", "scheduler:", "-p bad name"])
def test_a_long_password_in_a_refused_value_is_not_shown_cut(tmp_path: Path, how: str) -> None:
    address = f"tcp://user:{LONG_PASSWORD}@host:99999"
    pipeline = "tasks:\n  a: {shell: 'echo > {output}', target: a.txt}\n"
    args, env = ["run"], {}
    if how == "--scheduler":
        args += ["--scheduler", address]
    elif how == "TARGETRUN_SCHEDULER":
        env["TARGETRUN_SCHEDULER"] = address
    elif how == "scheduler:":
        pipeline = f"scheduler: '{address}'\n" + pipeline
    else:
        args += ["-p", f"a b=postgres://user:{LONG_PASSWORD}@db/x"]
    folder = _write(tmp_path / "p", pipeline)
    done = _targetrun(folder, *args, env=env)
    assert done.returncode == 2, done.stderr
    assert "S3cr" not in done.stdout + done.stderr, done.stderr
    assert "qqqq" not in done.stdout + done.stderr, done.stderr


# -- 7. a task named as the output shows it: a mapped child, another case --------------------

@pytest.mark.parametrize(("args", "said"), [
    (["run", "m[1]"], "'m[1]' is a child of the mapped task 'm'"),
    (["invalidate", "m[0]"], "'m[0]' is a child of the mapped task 'm'"),  # (show m[0] shows it)
    (["run", "FETCH"], "did you mean 'fetch'?"),
])
def test_an_unknown_task_named_like_a_known_one_gets_a_hint(tmp_path: Path, args: list[str], said: str) -> None:
    folder = _write(tmp_path / "p", "tasks:\n  fetch: {shell: 'echo > {output}', target: f.txt}\n"
                    "  m: {foreach: [1, 2], shell: 'echo {item} > {output}', target: 'm{item}.txt'}\n")
    assert _targetrun(folder, "run").returncode == 0
    done = _targetrun(folder, *args)
    assert done.returncode == 2
    assert said in done.stderr, done.stderr


def test_show_of_a_mapped_task_says_it_is_mapped_not_that_it_never_ran(tmp_path: Path) -> None:
    folder = _write(tmp_path / "p", "tasks:\n  m: {foreach: [1, 2], shell: 'echo {item} > {output}', target: 'm{item}.txt'}\n")
    assert _targetrun(folder, "run").returncode == 0
    done = _targetrun(folder, "show", "m")
    assert done.returncode == 2
    assert "is mapped" in done.stderr and "Run it first" not in done.stderr, done.stderr


# -- 8. a refused shell command quotes its words as written, not the scanner's marks ---------

def test_a_refused_command_names_its_placeholders_not_a_nul_mark(tmp_path: Path) -> None:
    folder = _write(tmp_path / "p", "params:\n  x: a\ntasks:\n  f:\n    shell: |\n"
                    "      find . -name {params.x} -exec sh -c {params.x} \\; > {output}\n    target: o.txt\n")
    done = _targetrun(folder, "validate")
    assert done.returncode == 2
    assert "`find . -name {...} -exec sh -c` runs" in done.stderr, done.stderr
    assert "\\x00" not in done.stderr


def test_a_p_value_with_a_key_past_yamls_limit_is_refused_not_taken_as_text(tmp_path: Path) -> None:
    folder = _write(tmp_path / "p", "params:\n  x: a\ntasks:\n  a: {shell: 'echo {params.x} > {output}', target: o.txt}\n")
    done = _targetrun(folder, "run", "-p", f"x={{{LONG}: 1}}")
    assert done.returncode == 2, done.stdout
    assert "-p x, line 1: this key is 1,100 characters long" in done.stderr, done.stderr
    assert not (folder / "o.txt").exists()


# -- 9. a value that cannot cross to or from a worker process is the task's failure ----------

def test_a_value_that_cannot_leave_its_worker_process_is_the_tasks_failure_not_the_executors(tmp_path: Path) -> None:
    folder = _write(tmp_path / "p", "tasks:\n  a: {run: mm:f, checkpoint: false}\n"
                    "  b: {run: mm:g, needs: [a], target: b.json}\n  c: {run: mm:h, target: c.json}\n",
                    **{"mm.py": "import threading\ndef f():\n    return threading.Lock()\ndef g(a):\n    return 1\n"
                                "def h():\n    return 2\n"})
    done = _targetrun(folder, "run", "-k", "-j", "2", "--executor", "processes")
    assert done.returncode == 2, (done.stdout, done.stderr)  # the value does not fit the executor; it is fine
    assert "cannot pickle '_thread.lock' object" in done.stdout
    assert "--executor threads" in done.stdout
    assert "lost the task" not in done.stdout
    assert (folder / "c.json").exists() and not (folder / "b.json").exists()


# -- 10. a `cache:` path that names no database is told what it is, not to be moved aside ----

@pytest.mark.parametrize(("cache", "said"), [
    ("steps.py", "not a SQLite database"),
    ("Pipelinefile.yaml", "not a SQLite database"),
])
def test_a_cache_path_that_is_no_database_is_named_for_what_it_is(tmp_path: Path, cache: str, said: str) -> None:
    folder = _write(tmp_path / "p", f"cache: {cache}\ntasks:\n  a: {{run: steps:f, target: a.json}}\n",
                    **{"steps.py": "def f():\n    return 1\n"})
    before = {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}
    done = _targetrun(folder, "run")
    assert done.returncode in (2, 3), done.stderr
    assert said in done.stderr, done.stderr
    assert "move it aside" not in done.stderr
    assert {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()} == before


def test_a_cache_path_that_climbs_past_the_root_opens_where_the_file_system_says(tmp_path: Path) -> None:
    """SQLite normalises a path itself and refuses a '..' past '/', which the OS allows."""
    depth = len(tmp_path.parts) + 3
    cache = "../" * depth + str(tmp_path / "shared" / "state.db").lstrip("/")
    folder = _write(tmp_path / "p", f"cache: {cache}\ntasks:\n  a: {{shell: 'echo > {{output}}', target: a.txt}}\n")
    done = _targetrun(folder, "run")
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "shared" / "state.db").is_file()


# -- 11. the report is not written over a target a run recorded ------------------------------

@pytest.mark.parametrize("command", [["report", "-o", "out/a.txt"], ["run", "--report", "out/a.txt"]])
def test_the_report_is_not_written_over_a_recorded_target(tmp_path: Path, command: list[str]) -> None:
    folder = _write(tmp_path / "p", "tasks:\n  a: {shell: 'echo made > {output}', target: out/a.txt}\n")
    assert _targetrun(folder, "run").returncode == 0
    done = _targetrun(folder, *command)
    # `report` refuses (exit 2); `run --report` says so, and keeps the run's own exit code
    assert done.returncode == (2 if command[0] == "report" else 0), (done.stdout, done.stderr)
    assert "not writing the report to out/a.txt: it is the target of task 'a'" in done.stderr, done.stderr
    assert (folder / "out" / "a.txt").read_text() == "made\n"
    assert _targetrun(folder, "status", "--verify").returncode == 0
