"""Simple commands run without a shell (targetrun/direct.py) give what ``/bin/sh -c`` gives.

Real processes, real files: each command runs both ways in the same folder and the exit
status, the bytes of its output file, its stdout and its stderr are compared.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from targetrun import direct
from targetrun.templating import render_shell

pytestmark = pytest.mark.skipif(not direct.enabled(), reason="/bin/sh is not dash")

# (command, whether it runs directly: simple, and it could be started without the shell)
COMMANDS = [
    ("cat a.txt > out", True),
    ("cat a.txt", True),
    ("cat a.txt 'sp ace/in.txt' > 'o ut'", True),
    ("  cat\ta.txt   >out  ", True),
    ("cat missing.txt > out", True),  # the program's own failure: exit 1, its message
    ("./bin/tool x 'b c' '' a=b -- > out", True),
    ("bin/tool stdout-only", True),
    ("'./my tool' one > out", True),
    ("./bin/selfkill TERM > out", True),  # killed by a signal: 143 and "Terminated"
    ("./bin/selfkill SEGV", True),
    ("./bin/selfkill PIPE", True),  # the shell says nothing for SIGPIPE
    ("./bin/selfkill INT", True),
    ("env > out", True),
    ("nosuchprogram x > out", False),  # 127, "not found"
    ("./nothere > out", False),
    ("./noexec.sh > out", False),  # 126, "Permission denied"
    ("./adir > out", False),
    ("./noshebang > out", False),  # ENOEXEC: the shell runs it as a script itself
    ("./badshebang > out", False),
    ("cat a.txt > nodir/out", False),  # 2, "cannot create"
    ("cat a.txt > adir", False),
    ("echo hi > out", False),  # builtins stay the shell's
    ("'echo' hi > out", False),
    ("./bin/stdin-probe > out", True),
    ("./bin/stdin-probe", True),
    ("printf x > out", False),
    ("true", False),
    ("[ -f a.txt ]", False),
    ("cat a.txt >> out", False),
    ("cat a.txt 2> out", False),
    ("cat a.txt>out", False),
    ("cat a.txt > out; cat a.txt", False),
    ("cat $HOME > out", False),
    ("cat ~/x > out", False),
    ("cat *.txt > out", False),
    ("X=1 env > out", False),
    ('cat "a.txt" > out', False),
    ("cat a.txt | cat > out", False),
]


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    (tmp_path / "a.txt").write_text("alpha\n")
    (tmp_path / "sp ace").mkdir()
    (tmp_path / "sp ace" / "in.txt").write_text("spaced\n")
    (tmp_path / "adir").mkdir()
    (tmp_path / "bin").mkdir()
    _script(tmp_path / "bin" / "tool", 'for a in "$@"; do echo "[$a]"; done; echo "to stderr" >&2; exit 3')
    _script(tmp_path / "my tool", 'echo "tool $1"')
    _script(tmp_path / "bin" / "selfkill", 'echo before; kill -s "$1" $$; echo after')
    # what a command's stdin is: /dev/null, at its end, and open for writing too (as subprocess.DEVNULL opens it)
    _script(tmp_path / "bin" / "stdin-probe",
            'readlink /proc/self/fd/0; if read x; then echo "read $x"; else echo end; fi; echo w >&0 && echo writable')
    (tmp_path / "noexec.sh").write_text("#!/bin/sh\necho no\n")
    (tmp_path / "noshebang").write_text("echo from a script without a first line\nexit 4\n")
    (tmp_path / "noshebang").chmod(0o755)
    (tmp_path / "badshebang").write_text("#!/no/such/interpreter\necho x\n")
    (tmp_path / "badshebang").chmod(0o755)
    return tmp_path


def _script(path: Path, body: str) -> None:
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(0o755)


def _run(folder: Path, command: str, *, shell: bool) -> tuple[int, bytes, bytes, bytes | None]:
    """(exit status, stdout, stderr, bytes of ./out or ./o ut) of one way of running it."""
    return _started(folder, command, shell=shell)[1]


def _started(folder: Path, command: str, *, shell: bool) -> tuple[bool, tuple[int, bytes, bytes, bytes | None]]:
    for name in ("out", "o ut"):
        (folder / name).unlink(missing_ok=True)
    if shell:
        started = direct.Started(direct._popen([direct.SHELL, "-c", command], None, str(folder), subprocess.PIPE,
                                               subprocess.PIPE, None), False)
    else:
        started = direct.start(command, str(folder), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = started.process.communicate(timeout=30)
    code, said = started.status(started.process.returncode)
    written = next(((folder / n).read_bytes() for n in ("out", "o ut") if (folder / n).exists()), None)
    return started.direct, (code, out or b"", err + said.encode(), written)


def _lines(data: bytes | None) -> object:
    return None if data is None else sorted(data.splitlines())


@pytest.mark.parametrize("command,is_direct", COMMANDS)
def test_direct_gives_what_the_shell_gives(folder: Path, command: str, is_direct: bool) -> None:
    by_shell = _run(folder, command, shell=True)
    went_direct, by_us = _started(folder, command, shell=False)
    assert went_direct == is_direct
    if command.startswith("env"):  # dash lists the environment in its own order
        assert (by_us[0], _lines(by_us[3])) == (by_shell[0], _lines(by_shell[3]))
    else:
        assert by_us == by_shell


def test_the_simple_ones_really_skip_the_shell(folder: Path) -> None:
    """The program's parent is this process, not a shell (else the comparison above proves nothing)."""
    _script(folder / "bin" / "parent", 'cat /proc/$PPID/comm')
    started = direct.start("bin/parent > out", str(folder), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    started.process.communicate(timeout=30)
    assert started.direct
    assert (folder / "out").read_text().strip() == Path(f"/proc/{os.getpid()}/comm").read_text().strip()
    started = direct.start("bin/parent; true", str(folder), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, _ = started.process.communicate(timeout=30)
    assert not started.direct and out.strip() in (b"sh", b"dash")


def test_every_command_reads_dev_null_open_for_writing_too(folder: Path) -> None:
    """A command's stdin is ``/dev/null``, at its end and writable, as ``subprocess.DEVNULL``
    gave it -- the second command too (the one descriptor behind it stays open)."""
    for shell in (False, True, False):
        _, (code, out, _, written) = _started(folder, "./bin/stdin-probe > out", shell=shell)
        assert (code, out, written) == (0, b"", b"/dev/null\nend\nwritable\n")


def test_rendered_paths_with_spaces_and_quotes(folder: Path) -> None:
    """Values the templates quote: plain, with spaces (single quotes: direct), with a quote
    (``'"'"'``: the shell)."""
    for name, is_direct in (("plain.txt", True), ("with space.txt", True), ("it's.txt", False)):
        (folder / name).write_text(f"content of {name}\n")
        command = render_shell("cat {x} > {output}", {"x": name, "output": str(folder / f"copy {name}")})
        assert (direct.parse(command) is not None) == is_direct, command
        for shell in (True, False):
            (folder / f"copy {name}").unlink(missing_ok=True)
            code, _, err, _ = _run(folder, command, shell=shell)
            assert (code, err) == (0, b"")
            assert (folder / f"copy {name}").read_text() == f"content of {name}\n"


@pytest.mark.parametrize("variables", [
    {"PWD": "/"},  # wrong: dash uses the folder
    {"PATH": ":/usr/bin:/bin", "IFS": "x", "OPTIND": "7", "PPID": "1"},  # an empty entry is the folder itself
    {"ODD-NAME": "1", "1X": "2", "EMPTY": ""},  # not shell names: dash drops them
])
def test_environment_is_the_one_the_shell_passes(folder: Path, monkeypatch: pytest.MonkeyPatch,
                                                 variables: dict[str, str]) -> None:
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    for command in ("env > out", "bin/tool > out"):
        by_shell, by_us = _run(folder, command, shell=True), _run(folder, command, shell=False)
        assert (by_us[0], _lines(by_us[3])) == (by_shell[0], _lines(by_shell[3]))
    if variables.get("PATH", "").startswith(":"):
        _script(folder / "localprog", "echo local")  # found through the empty PATH entry
        assert _run(folder, "localprog > out", shell=False) == _run(folder, "localprog > out", shell=True)
        assert (folder / "out").read_text() == "local\n"


def test_an_environment_dash_would_pass_as_it_is_is_inherited(folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """When filtering changes nothing and ``PWD`` names the folder, the program inherits
    this process's environment (no copy built per command), and it is still dash's."""
    for name in list(os.environ):
        if name in ("IFS", "OPTIND", "PPID") or not name.isidentifier() or not name.isascii():
            monkeypatch.delenv(name)
    monkeypatch.setenv("PWD", str(folder))
    assert direct._environment(str(folder))[0] is None
    for command in ("env > out", "bin/tool > out"):
        by_shell, by_us = _run(folder, command, shell=True), _run(folder, command, shell=False)
        assert (by_us[0], _lines(by_us[3])) == (by_shell[0], _lines(by_shell[3]))
    monkeypatch.setenv("PPID", "1")  # one to reset: a copy again
    assert direct._environment(str(folder))[0] is not None


def test_an_inherited_pwd_through_a_symlink_is_kept_where_it_names_the_folder(folder: Path,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """dash keeps an inherited PWD that names its folder by another path, and replaces one
    that does not: the same from one command to the next, whatever folder came before."""
    (folder.parent / f"{folder.name}-link").symlink_to(folder)
    monkeypatch.setenv("PWD", str(folder.parent / f"{folder.name}-link"))
    for where in (folder / "adir", folder, folder / "adir", folder):
        _script(where / "pwd-of", 'echo "$PWD"')
        by_shell, by_us = _run(where, "./pwd-of > out", shell=True), _run(where, "./pwd-of > out", shell=False)
        assert by_us == by_shell
        assert (where / "out").read_text().strip() == str(folder.parent / f"{folder.name}-link" if where == folder
                                                          else where.resolve())


def test_a_direct_command_is_killed_with_the_run(tmp_path: Path) -> None:
    """SIGTERM stops the run and kills the program it started without a shell (exit 143)."""
    _script(tmp_path / "slow", 'echo $$ > slow.pid; cat /proc/$PPID/comm > parent; exec sleep 60')
    (tmp_path / "Pipelinefile.yaml").write_text(
        "name: p\ntasks:\n  slow:\n    shell: \"./slow > {output}\"\n    target: out/slow.txt\n")
    run = subprocess.Popen([sys.executable, "-m", "targetrun", "run", "-q"], cwd=tmp_path,
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 30
    while not (tmp_path / "parent").exists() or not (tmp_path / "parent").read_text():
        assert time.monotonic() < deadline and run.poll() is None
        time.sleep(0.05)
    assert "python" in (tmp_path / "parent").read_text()  # run directly, not through a shell
    pid = int((tmp_path / "slow.pid").read_text())
    run.send_signal(signal.SIGTERM)
    _, err = run.communicate(timeout=30)
    assert run.returncode == 143, err.decode()
    deadline = time.monotonic() + 10
    while Path(f"/proc/{pid}").exists() and "Z" not in Path(f"/proc/{pid}/stat").read_text().split()[2]:
        assert time.monotonic() < deadline, "the command outlived the stopped run"
        time.sleep(0.05)
    assert not (tmp_path / "out" / "slow.txt").exists()


def _script_name(folder: Path) -> None:
    _script(folder / "bin" / "whoami", 'echo "$0"; echo "usage: $0" >&2')
    _script(folder / "whoami", 'echo "$0"')


@pytest.mark.parametrize("path_before, command, is_direct", [
    ("", "./bin/whoami > out", True),
    ("", "bin//whoami > out", True),
    ("bin", "whoami > out", True),  # a relative entry: the script is bin/whoami, as the shell runs it
    ("bin/", "whoami > out", True),  # dash joins entry and name with one more slash: bin//whoami
    ("{folder}/bin/", "whoami > out", True),
    (".", "whoami > out", True),
    ("", "whoami > out", False),  # an empty entry: dash executes the bare name
])
def test_a_script_is_given_the_name_the_shell_gives_it(folder: Path, monkeypatch: pytest.MonkeyPatch,
                                                      path_before: str, command: str, is_direct: bool) -> None:
    """The interpreter of a ``#!`` script gets the path it was executed by as the script's
    name (``$0``, ``sys.argv[0]``, usage messages, ``dirname "$0"``): it is the path the
    shell builds (it was this folder joined to it: ``/tmp/.../bin//whoami`` for ``bin/``)."""
    _script_name(folder)
    monkeypatch.setenv("PATH", path_before.format(folder=folder) + ":" + os.environ["PATH"])
    by_shell = _run(folder, command, shell=True)
    went_direct, by_us = _started(folder, command, shell=False)
    assert went_direct == is_direct
    assert by_us == by_shell


@pytest.mark.parametrize("target", ["/dev/stdout", "/dev/stderr", "/dev/fd/1", "/proc/self/fd/2", "link-to-stderr",
                                    "fd-dir/2"])
def test_a_redirect_to_the_processs_own_files_is_the_shells(folder: Path, target: str) -> None:
    """``> /dev/stderr`` (and any path through /proc: ``/dev/fd/N``, a link to one) names
    the *opening* process's file: in the shell the command's own stderr (the task's log),
    opened here it was this process's own stderr -- the output went to the terminal, and
    the open truncated the file this process writes to."""
    (folder / "link-to-stderr").symlink_to("/dev/stderr")
    (folder / "fd-dir").symlink_to("/dev/fd")
    command = f"cat a.txt > {target}"
    by_shell = _run(folder, command, shell=True)
    went_direct, by_us = _started(folder, command, shell=False)
    assert by_us == by_shell
    assert not went_direct


def test_a_redirect_through_proc_never_opens_this_processs_files(folder: Path, tmp_path_factory: pytest.TempPathFactory
                                                                  ) -> None:
    """A file this process holds open (its state store, say) as ``/dev/fd/N``: the shell
    has no such descriptor (exit 2), and this process's file is left as it was."""
    kept = tmp_path_factory.mktemp("kept") / "store.db"
    kept.write_bytes(b"records\n")
    with open(kept, "rb+") as held:
        command = f"cat a.txt > /dev/fd/{held.fileno()}"
        by_shell = _run(folder, command, shell=True)
        assert kept.read_bytes() == b"records\n"
        by_us = _run(folder, command, shell=False)
    assert kept.read_bytes() == b"records\n"
    assert by_us == by_shell and by_shell[0] == 2
    _what_stays_direct(folder)


def _what_stays_direct(folder: Path) -> None:
    """What the narrowing keeps direct: a regular file (also through a link), /dev/null."""
    (folder / "link-to-out").symlink_to("out")
    for command in ("cat a.txt > out", "cat a.txt > link-to-out", "cat a.txt > /dev/null"):
        went_direct, by_us = _started(folder, command, shell=False)
        assert went_direct and by_us[0] == 0, command


def test_a_redirect_to_a_fifo_is_the_shells(folder: Path) -> None:
    """A FIFO with a reader: a program that cannot be started directly (no ``#!``) goes to
    the shell after its file was opened here -- closing the FIFO ended the reader, and the
    shell's open then waited forever for another. The shell opens it once: the reader
    gets what the script printed."""
    (folder / "noshebang").write_text("echo from a script without a first line\n")
    os.mkfifo(folder / "fifo")
    reader = subprocess.Popen(["cat", "fifo"], cwd=folder, stdout=subprocess.PIPE)
    try:
        time.sleep(0.2)  # the reader has the FIFO open
        started = direct.start("./noshebang > fifo", str(folder), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            started.process.communicate(timeout=10)
        finally:
            started.process.kill()
        out, _ = reader.communicate(timeout=10)
    finally:
        reader.kill()
    assert (started.process.returncode, out) == (0, b"from a script without a first line\n")


@pytest.mark.parametrize("name", ["SEGV", "QUIT", "ABRT"])
def test_a_program_that_dumps_core_is_reported_as_the_shell_reports_it(folder: Path, name: str) -> None:
    """With core dumps on, dash says "Segmentation fault (core dumped)": so does the direct path."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_CORE)
    if hard == 0:
        pytest.skip("core dumps are not allowed here")
    resource.setrlimit(resource.RLIMIT_CORE, (hard, hard))
    try:
        by_shell = _run(folder, f"./bin/selfkill {name}", shell=True)
        went_direct, by_us = _started(folder, f"./bin/selfkill {name}", shell=False)
    finally:
        resource.setrlimit(resource.RLIMIT_CORE, (soft, hard))
        for core in folder.glob("core*"):
            core.unlink()
    assert went_direct
    if b"core dumped" not in by_shell[2]:
        pytest.skip("no core was dumped (the system's core_pattern)")
    assert by_us == by_shell
