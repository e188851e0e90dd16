"""Simple commands run without a shell, as GNU make runs them.

``/bin/sh -c "cat a > b"`` costs a shell's start-up and, as dash forks even for the last
command, a second process: about 0.7 ms a task on top of ``cat`` itself. GNU make skips
the shell for a command line with no shell metacharacter whose program is no shell
builtin (``sh_chars`` and ``sh_cmds`` in its job.c) and runs the program itself. This
module does the same for a command that is *certainly* simple -- plain words, optionally
followed by one ``> file`` redirection of stdout (the usual ``cmd ... > {output}``) -- and
gives what the shell would have given:

* **Words**: runs of ``[A-Za-z0-9_./:=,+%@-]`` and single-quoted text (``'a b'``, how
  :func:`shlex.quote` writes a rendered value), separated by spaces or tabs. Nothing
  else: no ``"``, ``\\``, ``$``, globs, ``~``, ``#``, newline, ``;``/``&``/``|``/``<``, no other
  redirection (``>>``, ``2>``, ``>&``, ``>|``); a ``>`` needs a blank before it (``a>b`` and
  ``2>b`` differ in the shell) and its file word ends the command.
* **Program**: not a shell builtin or special builtin (``echo``, ``printf``, ``test``,
  ``[``, ``true``, ``cd``, ``exec``, ``.`` ...) or reserved word of dash or bash, nor an
  assignment (a ``=`` in the first word). A builtin stays the shell's work.
* **Lookup**: a name with ``/`` is used as it is, relative to the task's folder; else the
  first ``PATH`` entry where the name exists must be an executable regular file, executed
  as ``entry/name`` (the path a script sees as its ``$0`` is the one the shell gives it).
  Anything else -- not found, a directory, not executable, no ``PATH``, a ``%`` in
  ``PATH`` (dash's own syntax), found through an empty entry (dash executes the bare
  name) -- goes to the shell.
* **Environment**: as dash passes it on: names that are no shell identifier dropped,
  ``PWD`` the folder (the inherited ``PWD`` kept when it is absolute and the same folder,
  as dash checks), and ``IFS``, ``OPTIND``, ``PPID`` reset when inherited.
* **Redirection**: the file is opened ``O_WRONLY|O_CREAT|O_TRUNC``, mode 0o666 under the
  umask, before the program starts, as the shell does -- when this process opens what the
  shell would: a regular file (or a new one) or ``/dev/null``, on no path through ``/proc``
  (``/dev/stdout``, ``/dev/fd/2`` name the opening process's own files). Else (a FIFO, a
  device) the shell.
* **Failures the shell words**: when the file cannot be opened or the program cannot be
  started (``ENOEXEC``: a script without ``#!``, which the shell runs itself; a vanished
  file; ``EACCES``), the command goes to ``/bin/sh -c`` after all, which gives its own exit
  code (2, 126, 127) and message: nothing of the command ran yet, and opening the file
  again truncates it again. A program killed by a signal is reported as the shell reports
  it: status 128 + the signal, and the signal's name on stderr (not for SIGINT and
  SIGPIPE), with dash's " (core dumped)" when it dumped core.

Only where ``/bin/sh`` is dash, whose behaviour this reproduces (the tests compare the
two on real processes): with any other shell every command goes to the shell as before.
"""

from __future__ import annotations

import functools
import itertools
import os
import re
import signal
import stat
import subprocess
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import IO, Any

SHELL = "/bin/sh"

_BARE = "A-Za-z0-9_./:=,+%@-"
_WORD = re.compile(rf"(?:[{_BARE}]+|'[^']*')+")
_NAME = re.compile(rb"[A-Za-z_][A-Za-z0-9_]*\Z")

# dash's builtins and special builtins, bash's as well, and the reserved words of both:
# such a program is the shell's own work, never run from PATH in its place.
SHELL_WORDS = frozenset("""
    . : [ [[ ]] ! { } alias bg bind break builtin caller case cd chdir command compgen complete
    compopt continue coproc declare dirs disown do done echo elif else enable esac eval exec
    exit export false fc fg fi for function getopts hash help history if in jobs kill let local
    logout login mapfile newgrp popd printf pushd pwd read readarray readonly return select set
    shift shopt source suspend test then time times trap true type typeset ulimit umask
    unalias unset until wait while
""".split())


@dataclass(frozen=True)
class Simple:
    """A command the shell would run as one program: its words and its stdout file."""

    argv: tuple[str, ...]
    redirect: str | None  # the ``> file`` word, or None


def parse(command: str) -> Simple | None:
    """The command's words and redirection when it is certainly simple, else None.

    >>> parse("cat out/t0.txt > '/tmp/a b/t1.txt'")
    Simple(argv=('cat', 'out/t0.txt'), redirect='/tmp/a b/t1.txt')
    >>> parse("echo hi > x") is None, parse("cat a >> x") is None, parse("cat $HOME") is None
    (True, True, True)
    """
    words: list[str] = []
    redirect = None
    pos = _skip_blanks(command, 0)
    while pos < len(command):
        if command[pos] == ">":
            if not words or pos == 0 or command[pos - 1] not in " \t":
                return None
            pos = _skip_blanks(command, pos + 1)
            word = _WORD.match(command, pos)
            if word is None:
                return None
            redirect = _unquote(word.group())
            pos = _skip_blanks(command, word.end())
            if pos != len(command):  # something after the file word: not the plain form
                return None
            break
        word = _WORD.match(command, pos)
        if word is None:
            return None
        end = _skip_blanks(command, word.end())
        if end == word.end() and end < len(command):  # a word runs into something else
            return None
        words.append(_unquote(word.group()))
        if len(words) == 1 and words[0] in SHELL_WORDS:  # ``echo ... > {output}``: the shell's, whatever follows
            return None
        pos = end
    if not words or not _program_ok(command.lstrip(" \t"), words[0]):
        return None
    return Simple(tuple(words), redirect)


def _skip_blanks(text: str, pos: int) -> int:
    while pos < len(text) and text[pos] in " \t":
        pos += 1
    return pos


def _unquote(word: str) -> str:
    return word.replace("'", "") if "'" in word else word  # quotes hold no quote: dropping them is the value


def _program_ok(text: str, program: str) -> bool:
    first = _WORD.match(text)
    assert first is not None
    return program != "" and "=" not in first.group() and program not in SHELL_WORDS


def resolve(program: str, cwd: str, search: str | None) -> str | None:
    """The path the shell would execute for ``program``, when that is certain -- spelt
    as the shell spells it, relative to ``cwd`` as the shell's is: a script's interpreter
    gets that path as the script's name (``$0``, ``sys.argv[0]``).

    A name with ``/`` is that path; else the first entry of ``search`` (the ``PATH`` the
    shell would have) where the name exists, as ``entry + "/" + name``, when it is an
    executable regular file. None for anything else (the shell decides) -- also for a
    name found through an empty entry, which the shell executes as the bare name."""
    if "/" in program:
        return program if _executable(os.path.join(cwd, program)) else None
    if search is None or "%" in search:
        return None
    for entry in search.split(":"):
        path = os.path.join(cwd, entry or ".", program)
        try:
            info = os.stat(path)
        except (FileNotFoundError, NotADirectoryError):
            continue
        except OSError:
            return None
        if not entry or not _runs(path, info):
            return None
        return entry + "/" + program
    return None


def _executable(path: str) -> bool:
    try:
        info = os.stat(path)
    except OSError:
        return False
    return _runs(path, info)


def _runs(path: str, info: os.stat_result) -> bool:
    """Whether the file at ``path`` (``info``: its stat) is one the shell would execute."""
    return stat.S_ISREG(info.st_mode) and os.access(path, os.X_OK)


def _filtered(environ: Mapping[bytes, bytes]) -> dict[bytes, bytes]:
    env = {name: value for name, value in environ.items() if _NAME.match(name)}
    if b"IFS" in env:
        env[b"IFS"] = b" \t\n"
    if b"OPTIND" in env:
        env[b"OPTIND"] = b"1"
    return env


def _per_call(inherited: dict[bytes, bytes], cwd: str, as_is: bool) -> dict[bytes, bytes] | None:
    """The parts that change with the folder and the process, on a copy of ``inherited``;
    None when this process's environment is already that (``as_is``: filtering changed
    nothing, the inherited ``PWD`` stays and there is no ``PPID`` to reset): the program
    then inherits it, and no copy is built and encoded for every command."""
    pwd = _pwd(cwd, inherited.get(b"PWD"))
    if as_is and b"PPID" not in inherited and pwd == inherited.get(b"PWD"):
        return None
    env = dict(inherited)
    env[b"PWD"] = pwd
    if b"PPID" in env:
        env[b"PPID"] = str(os.getpid()).encode()  # the shell's parent: this process
    return env


def _environment(cwd: str) -> tuple[dict[bytes, bytes] | None, bytes | None]:
    """The environment dash gives the programs it runs from ``cwd``, from this process's
    environment, its filtering done again only when that changed since the last command --
    None when it is this process's own, unchanged -- and the ``PATH`` in it."""
    global _LAST
    entries, last = _inherited(), _LAST  # one read: other threads start commands too
    if last is None or last[0] != entries:
        filtered = _filtered(dict(entry.split(b"=", 1) for entry in entries if b"=" in entry))
        as_is = tuple(name + b"=" + value for name, value in filtered.items()) == entries
        last = _LAST = entries, filtered, as_is
    return _per_call(last[1], cwd, last[2]), last[1].get(b"PATH")


_LAST: tuple[tuple[bytes, ...], dict[bytes, bytes], bool] | None = None


def _inherited() -> tuple[bytes, ...]:
    """This process's environment as a program it starts inherits it: the C library's
    ``environ`` (``NAME=value`` entries), which a library may have changed without
    ``os.environ`` (ncurses sets ``LINES`` and ``COLUMNS``, say)."""
    global _ENVIRON
    try:
        if _ENVIRON is None:
            import ctypes

            _ENVIRON = ctypes.POINTER(ctypes.c_char_p).in_dll(ctypes.CDLL(None), "environ")  # the variable itself
        entries = []
        for i in itertools.count():
            entry = _ENVIRON[i]
            if entry is None:
                break
            entries.append(entry)
    except (OSError, ValueError, AttributeError):  # no C library to ask
        return tuple(name + b"=" + value for name, value in os.environb.items())
    return tuple(entries)


_ENVIRON: Any = None


def _pwd(cwd: str, inherited: bytes | None) -> bytes:
    """dash keeps an inherited absolute ``PWD`` naming the folder it starts in, else asks getcwd()."""
    if inherited and inherited.startswith(b"/"):
        try:
            if os.path.samestat(os.stat(inherited), os.stat(cwd)):
                return inherited
        except OSError:
            pass
    return os.fsencode(os.path.realpath(cwd))


def enabled() -> bool:
    """Whether ``/bin/sh`` is dash (the shell whose behaviour this reproduces)."""
    global _ENABLED
    if _ENABLED is None:
        # (and a Popen that still reports the raw wait status, for " (core dumped)")
        _ENABLED = os.path.basename(os.path.realpath(SHELL)) == "dash" and \
            hasattr(subprocess.Popen, "_handle_exitstatus")
    return _ENABLED


_ENABLED: bool | None = None


class _Process(subprocess.Popen[bytes]):
    """A Popen that keeps whether the program dumped core: the shell says so (" (core
    dumped)"), and the exit code alone does not tell."""

    core_dumped = False

    def _handle_exitstatus(self, sts: int, *args: Any, **kwargs: Any) -> None:
        self.core_dumped = os.WIFSIGNALED(sts) and os.WCOREDUMP(sts)
        super()._handle_exitstatus(sts, *args, **kwargs)  # type: ignore[misc]


class Started:
    """A started command: its process, and whether the shell runs it (not the program directly)."""

    def __init__(self, process: subprocess.Popen[bytes], direct: bool) -> None:
        self.process = process
        self.direct = direct

    def status(self, code: int) -> tuple[int, str]:
        """The exit status and the stderr line the shell would have given for ``code``."""
        if not self.direct or code >= 0:
            return code, ""
        signum = -code
        try:
            name = signal.strsignal(signum) or f"Signal {signum}"
        except ValueError:
            name = f"Signal {signum}"
        if getattr(self.process, "core_dumped", False):
            name += " (core dumped)"
        said = "" if signum in (signal.SIGINT, signal.SIGPIPE) else name + "\n"
        return 128 + signum, said


def start(command: str, cwd: str, *, stdout: int | IO[Any] | None, stderr: int,
          allow_redirect: bool = True) -> Started:
    """Start ``command`` in ``cwd`` in a session of its own: directly when it is certainly
    simple (see the module's docstring), else -- or when that fails before the program
    runs -- with ``/bin/sh -c``. ``allow_redirect=False`` keeps a ``> file`` command for
    the shell (stdout is then the caller's pipe)."""
    cwd = os.path.abspath(cwd)
    simple = parse(command) if enabled() else None
    if simple is not None and (simple.redirect is None or allow_redirect):
        process = _start_direct(simple, cwd, stdout, stderr)
        if process is not None:
            return Started(process, True)
    return Started(_popen([SHELL, "-c", command], None, cwd, stdout, stderr, None), False)


def _start_direct(simple: Simple, cwd: str, stdout: int | IO[Any] | None, stderr: int) -> subprocess.Popen[bytes] | None:
    env, search = _environment(cwd)
    program = resolve(simple.argv[0], cwd, None if search is None else os.fsdecode(search))
    if program is None:
        return None
    target = None
    if simple.redirect is not None:
        target = _open_redirect(os.path.join(cwd, simple.redirect))
        if target is None:
            return None
    try:
        return _popen(list(simple.argv), program, cwd, target if target is not None else stdout, stderr, env)
    except OSError:
        return None  # it could not start (no #!, gone, not executable): the shell says why
    finally:
        if target is not None:
            os.close(target)


def _open_redirect(path: str) -> int | None:
    """The redirection's file, opened as the shell opens it; None when it cannot be
    (the shell then fails with its own words), or would not be the file the shell opens:
    see :func:`_same_for_the_shell`."""
    if not _same_for_the_shell(path):
        return None
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOCTTY | os.O_NONBLOCK, 0o666)
    except OSError:  # (a signal's Stopped is no OSError: it goes through)
        return None
    os.set_blocking(fd, True)
    return fd


def _same_for_the_shell(path: str) -> bool:
    """Whether opening ``path`` here opens what the shell would open. Not so for a path
    through ``/proc`` (``/dev/stdout``, ``/dev/stderr``, ``/dev/fd/N``, ``/proc/self/...``
    name the *opening* process's files: here this process's own output or its store,
    which the open would truncate, there the command's pipe), nor for a device other than
    ``/dev/null`` (``/dev/tty`` is the opening process's terminal; the command runs in a
    session without one), nor for a FIFO: a program that then cannot be started goes to
    the shell, and closing the FIFO here ended its reader (the shell's open then waited
    for another one forever). A regular file, ``/dev/null`` or a new file is: opened
    again by the shell, it is the same."""
    try:
        info = os.stat(path)
    except FileNotFoundError:
        pass  # a new file, unless a component on the way is /proc's (checked below)
    except OSError:
        return False
    else:
        if not (stat.S_ISREG(info.st_mode) or _is_null(info)):
            return False
    return not _through_proc(path)


def _is_null(info: os.stat_result) -> bool:
    null = _device_of(os.devnull, "st_rdev")
    return null is not None and stat.S_ISCHR(info.st_mode) and info.st_rdev == null


@functools.cache
def _device_of(path: str, field: str) -> int | None:
    """``field`` of ``path``'s stat (``/dev/null``'s device, ``/proc``'s file system), looked
    up once: every direct command with a redirection asks, and neither changes."""
    try:
        return int(getattr(os.stat(path), field))
    except OSError:
        return None


def _through_proc(path: str) -> bool:
    """Whether resolving the absolute ``path`` (its symbolic links followed one by one, as
    the kernel does) enters the ``/proc`` file system, whose links name what the process
    resolving them has open. Never follows a link inside ``/proc`` itself."""
    proc = _device_of("/proc", "st_dev")
    if proc is None:
        return False
    parts = path.split("/")
    parts.reverse()  # a stack: the next component last
    current, links = "/", 0
    while parts:
        part = parts.pop()
        if part in ("", "."):
            continue
        if part == "..":
            current = os.path.dirname(current)
            continue
        candidate = os.path.join(current, part)
        try:
            info = os.lstat(candidate)
        except OSError:
            return False  # not there (a new file) or not reachable: the open decides, on the same path
        if info.st_dev == proc:
            return True
        if stat.S_ISLNK(info.st_mode):
            links += 1
            if links > 40:  # the kernel's own limit: ELOOP, which the shell reports
                return True
            try:
                target = os.readlink(candidate)
            except OSError:
                return True  # changed under us: the shell decides
            if target.startswith("/"):
                current = "/"
            parts.extend(reversed(target.split("/")))
            continue
        current = candidate
    return False


def _popen(argv: list[str], program: str | None, cwd: str, stdout: int | IO[Any] | None, stderr: int,
           env: dict[bytes, bytes] | None) -> subprocess.Popen[bytes]:
    # Its own process group, so that stopping it stops everything it started. (env None:
    # the program inherits this process's environment.)
    return _Process(argv, executable=program, cwd=cwd, env=env, stdin=_null_input(), stdout=stdout,
                    stderr=stderr, start_new_session=True)


def _null_input() -> int:
    """``/dev/null``, opened once for every command's stdin (not inherited by anything
    else: close-on-exec): ``stdin=subprocess.DEVNULL`` opens and closes it for each command."""
    global _NULL
    with _NULL_GUARD:  # commands start in several threads: one descriptor for them all
        if _NULL is None:
            _NULL = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)  # as subprocess.DEVNULL opens it
        return _NULL


_NULL: int | None = None
_NULL_GUARD = threading.Lock()
