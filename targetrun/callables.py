"""Import a Python task's ``run: module:function``, and check it the way a run would use it.

The engine's workers import the function with :func:`load_callable`.

``validate`` and the engine's preflight both go through :func:`resolve_callable`, so
``validate`` refuses exactly what ``run`` would refuse before anything runs: a module that
is not there (or fails to import), a function the module does not have, and a signature
that does not accept the task's ``args`` and ``needs`` -- each problem named, with a "did
you mean" where one is close. The function is imported, never called.

A task's code runs in targetrun's own process (inline and thread executors), so what it
does to the process is done to the run: ``sys.exit()`` raises, and is the task's failure;
``os._exit()`` would end the run at once -- exit status 0 for ``os._exit(0)``, with
nothing recorded, a CI step told all is well. While a task's code runs (its module's
import included: :func:`user_code`), ``os._exit`` called from it in this thread raises
:class:`ProcessExitCalled` instead, a ``SystemExit``: the task fails, or its module is
refused, like any other. A child it forked exits as asked; targetrun's own calls and other
processes are untouched. A child it forked that returns (or raises) into targetrun ends
right there -- status 0, its ``sys.exit`` code, or 1 when it raised -- without running the process's exit
handlers: it went on as a second copy of the run, recording the task again, running its
dependents on the child's value and replacing their targets with what the child made.

Once the command is over (:func:`command_ends`), ``os._exit`` from a task's code -- an
atexit hook it registered -- ends the process with the command's exit code.

``os.setsid()``, ``os.setpgrp()`` and ``os.closerange()`` in the run's process are refused
(:func:`_refuse_leaving`).

A thread the task's code started is no task's thread: ``os._exit`` there ended the run at
once as well. While a run goes on in the process (:func:`running_tasks`), such a call (from
no targetrun code, in no thread running a task's code) ends that thread instead
(``SystemExit``, which a thread ends on quietly), and every task whose code runs at that
moment fails when it returns: "a thread started by task code called os._exit(0) while this
task ran". After its task ended, it only ends the thread, said in one warning line. Outside
a run (a program using the API, before or after one) it ends the process, as asked.
"""

from __future__ import annotations

import contextlib
import errno
import importlib
import importlib.machinery
import inspect
import os
import pkgutil
import posix
import resource
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from typing import Any, NoReturn

from targetrun import stopping
from targetrun.errors import EXTRA_OF, NO_MORE_FILES, NO_MORE_FILES_HINT, SpecError, did_you_mean, install_hint
from targetrun.model import TaskSpec

_RUN_HINT = "The Pipelinefile's folder is importable: `run: tasks:fetch` finds tasks.py next to it."


class ProcessExitCalled(SystemExit):
    """``os._exit(code)`` called by a task's own code inside targetrun's process."""

    def __str__(self) -> str:
        return f"os._exit({self.code!r}) was called"


class ThreadExitCalled(ProcessExitCalled):
    """``os._exit(code)`` called, while a task's code ran, by a thread that code may have started."""

    def __str__(self) -> str:
        return f"a thread started by task code called os._exit({self.code!r}) while this task ran"


_real_exit = posix._exit
_in_user_code = threading.local()
_running: set[int] = set()  # the threads running a task's code now (their idents)
_runs = 0  # runs going on in this process (running_tasks): outside one, a thread's os._exit is its program's
_stray_exits: dict[int, int] = {}  # such a thread -> the status a thread it may have started passed to os._exit
_guarding_pid: int | None = None
_guard_lock = threading.Lock()

# What a task's code may set for the whole process, as the run had it (see _ProcessState)
_LIMITS = (resource.RLIMIT_FSIZE, resource.RLIMIT_NOFILE)
_getrlimit, _getitimer, _umask, _INFINITY = resource.getrlimit, signal.getitimer, os.umask, resource.RLIM_INFINITY


class _ProcessState:
    """What a task's code can set for the whole process and leave set when it returns --
    where under make each command's process, and what it set, ends with the command: the
    umask (``os.umask(0o777)``: every later target written mode 000), the file size and
    open files limits (a later write failed as "disk I/O error", an import as "too many
    open files"), the recursion limit (``sys.setrecursionlimit(50)``: targetrun's own code
    failed) and a pending alarm (``signal.alarm(1)``: SIGALRM killed the run a second
    later, nothing said). :meth:`restore` puts them back as the run had them -- a timer the
    run did not have is cancelled -- each time a task's code (or its module's import)
    returns; one restore costs ~3 us, a few system calls. Only what is lower than the run's
    comes back (``sys.setrecursionlimit(10**5)`` on a module's import still holds for its
    function), and a limit only while the hard limit allows: one the task lowered for good
    holds (its writes then fail, said)."""

    __slots__ = ("pid", "umask", "limits", "recursion", "timer")

    def __init__(self) -> None:
        self.pid = os.getpid()
        self.umask = _umask(0o022)
        _umask(self.umask)
        self.limits = [_getrlimit(which) for which in _LIMITS]
        self.recursion = sys.getrecursionlimit()
        self.timer = _getitimer(signal.ITIMER_REAL)[0] > 0

    def restore(self) -> None:
        _umask(self.umask)
        for which, limit in zip(_LIMITS, self.limits):
            now = _getrlimit(which)
            if now[0] != limit[0] and now[0] != _INFINITY and (limit[0] == _INFINITY or now[0] < limit[0]):
                with contextlib.suppress(ValueError, OSError):  # (above a hard limit it lowered)
                    resource.setrlimit(which, (limit[0], now[1]))
        if sys.getrecursionlimit() < self.recursion:
            sys.setrecursionlimit(self.recursion)
        if not self.timer and _getitimer(signal.ITIMER_REAL)[0] > 0:
            signal.setitimer(signal.ITIMER_REAL, 0)


_run_state: _ProcessState | None = None  # the process's state as the run (or a worker's first job) found it


def _depth() -> int:
    depth: int = getattr(_in_user_code, "depth", 0)
    return depth


def _caller(depth: int) -> str:
    """The module that called, ``depth`` frames up; "" for none (a call straight from C:
    an atexit hook, a thread's target), which is no targetrun code either."""
    try:
        return str(sys._getframe(depth + 1).f_globals.get("__name__", ""))
    except ValueError:
        return ""


_command_code: int | None = None  # the command's exit code, once it is over (command_ends)


def command_ends(code: int) -> None:
    """The command is over and exits with ``code``: a task's code that still calls
    ``os._exit`` (``atexit.register(os._exit, 0)``, a library's quick-exit hook) ends the
    process with this code, not its own -- a failed run exited 0, its summary unflushed."""
    global _command_code
    _command_code = code


def _exit(status: int) -> NoReturn:
    """``os._exit`` while targetrun runs a task's code (see the module docstring)."""
    caller = _caller(1)
    if os.getpid() == _guarding_pid and caller != "targetrun" and not caller.startswith("targetrun."):
        if _command_code is not None:
            stopping.flush()
            _real_exit(_command_code)
        if _depth():
            raise ProcessExitCalled(status)
        if _runs and threading.current_thread() is not threading.main_thread():  # a thread a task's code started
            with _guard_lock:
                for ident in _running:
                    _stray_exits.setdefault(ident, status)
                if not _running:
                    sys.stderr.write(f"targetrun: warning: a thread a task started called os._exit({status!r}) after "
                                     "its task ended: that thread ended, not the run\n")
            raise SystemExit(status)
    _real_exit(status)


_real_setsid, _real_setpgrp, _real_setpgid = posix.setsid, posix.setpgrp, posix.setpgid
_real_closerange = posix.closerange
_LEAVES = ("would take the whole run out of its terminal's session and job (Ctrl-C and a closed terminal would no "
           "longer stop it); call it in a child process (subprocess's start_new_session=True)")


def _refuse_leaving(call: str, why: str = _LEAVES) -> None:
    """``os.setsid()``, ``os.setpgrp()`` (``setpgid`` of this process) from a task's code in
    the run's process: the whole run left its terminal's session or foreground group for
    good -- Ctrl-C no longer reached it, nor did a closed terminal's hangup, and it went on
    unstoppable but by ``kill``. ``os.closerange(3, 4096)`` (a daemonizing library's) closed
    the run's own files: its state store, its output. Refused (``PermissionError``, the task
    fails, said); a child it forks, or starts with ``start_new_session=True``, may still."""
    caller = _caller(2)
    if os.getpid() == _guarding_pid and (_depth() or _runs) and caller != "targetrun" \
            and not caller.startswith("targetrun."):
        raise PermissionError(errno.EPERM, f"os.{call}() in a task's code {why}")


def _closerange(low: int, high: int, /) -> None:
    _refuse_leaving("closerange", "would close targetrun's own files (its state store, its output); close the "
                    "files the task opened itself, or call it in a child process")
    _real_closerange(low, high)


def _setsid() -> None:
    _refuse_leaving("setsid")
    _real_setsid()


def _setpgrp() -> None:
    _refuse_leaving("setpgrp")
    _real_setpgrp()


def _setpgid(pid: int, pgrp: int, /) -> None:
    if pid in (0, os.getpid()):
        _refuse_leaving("setpgid")
    _real_setpgid(pid, pgrp)


@contextlib.contextmanager
def running_tasks(fresh: bool = False) -> Iterator[None]:
    """A run goes on in this process: a thread that is no task's and no targetrun's calling
    ``os._exit`` is taken for one a task started (see the module docstring). Outside a run
    -- a program using the API, before or after it -- such a call ends the process as asked.

    The process's state (:class:`_ProcessState`) is taken here, for the tasks' code to leave
    as it was: by the run (``fresh``), or by a worker process before its first job."""
    global _runs, _run_state
    with _guard_lock:
        _runs += 1
        if fresh or _run_state is None or _run_state.pid != os.getpid():
            _run_state = _ProcessState()
    try:
        yield
    finally:
        with _guard_lock:
            _runs -= 1


def _child_status(raised: BaseException | None) -> int:
    """The exit status of a forked child that came back into targetrun, as Python's own exit
    gives it: 0 when it returned, the code of its ``sys.exit(code)`` (None 0, a text 1), 1
    for any other exception.

    >>> [_child_status(e) for e in (None, SystemExit(0), SystemExit(5), SystemExit("no"), ValueError())]
    [0, 0, 5, 1, 1]
    """
    if raised is None:
        return 0
    if isinstance(raised, SystemExit) and not isinstance(raised, ProcessExitCalled):
        code = raised.code
        return 0 if code is None else code if isinstance(code, int) else 1
    return 1


@contextlib.contextmanager
def user_code(restore: bool = True) -> Iterator[None]:
    """Run a task's code (or import its module) in this thread with ``os._exit`` guarded,
    and what it set for the process put back as the run had it when it returns (not with
    ``restore=False``: a section around nested ones that is targetrun's own code)."""
    global _guarding_pid
    if _guarding_pid != os.getpid():
        with _guard_lock:
            if _guarding_pid != os.getpid():
                os._exit = posix._exit = _exit
                os.setsid, os.setpgrp, os.setpgid = _setsid, _setpgrp, _setpgid
                os.closerange = _closerange
                _guarding_pid = os.getpid()
    ident = threading.get_ident()
    # (only the main thread can set a handler, and the outermost call puts them back)
    handlers = stopping.handlers() if not _depth() and threading.current_thread() is threading.main_thread() else None
    _in_user_code.depth = _depth() + 1
    if _in_user_code.depth == 1:
        with _guard_lock:
            _running.add(ident)
            _stray_exits.pop(ident, None)
    called_in = os.getpid()
    dropped_to = sys.unraisablehook  # where a stop a finalizer dropped goes (targetrun.stopping)
    state = None
    if restore:
        state = _run_state if _runs and _run_state is not None and _run_state.pid == called_in else _ProcessState()
    try:
        yield
    finally:
        if os.getpid() != called_in:  # a child the code forked came back: it is no second copy of the run
            _real_exit(_child_status(sys.exc_info()[1]))
        if state is not None:
            state.restore()
        if sys.unraisablehook is not dropped_to:
            sys.unraisablehook = dropped_to
        if handlers is not None:
            stopping.restore_handlers(handlers)
        _in_user_code.depth -= 1
        stray = None
        if _in_user_code.depth == 0:
            with _guard_lock:
                _running.discard(ident)
                stray = _stray_exits.pop(ident, None)
    if stray is not None:  # (not when the code raised: its own failure says more)
        raise ThreadExitCalled(stray)


def exit_call(exc: SystemExit) -> str:
    """How code ended the process: ``os._exit(0)``, ``sys.exit(3)``."""
    if isinstance(exc, ThreadExitCalled):
        return f"os._exit({exc.code!r}) from a thread it started"  # (an import: nothing else runs then)
    return f"os._exit({exc.code!r})" if isinstance(exc, ProcessExitCalled) else f"sys.exit({exc.code!r})"


def resolve_callable(task: TaskSpec, file: str, root: str) -> tuple[Callable[..., Any] | None, list[SpecError]]:
    """The task's function and every problem with it (an empty list: it can be called)."""
    assert task.run is not None
    module_name, _, attr = task.run.partition(":")

    def problem(message: str, hint: str | None = None) -> SpecError:
        return SpecError(f"task {task.name!r}: {message}", file=file, line=task.line_of("run"),
                         key=f"tasks.{task.name}.run", hint=hint)

    try:
        fn = load_callable(task.run, root)
    except ModuleNotFoundError as exc:
        missing = exc.name or module_name
        if module_name == missing or module_name.startswith(missing + "."):
            return None, [problem(f"there is no module {missing!r} (run: {task.run})",
                                  did_you_mean(missing.rpartition(".")[2], _modules_near(missing, root)) or _RUN_HINT)]
        top = missing.split(".")[0]
        return None, [problem(f"importing {module_name!r} failed: it imports {missing!r}, which is not installed",
                              install_hint(EXTRA_OF[top]) if top in EXTRA_OF else f"Install {top!r} in this environment.")]
    except AttributeError:
        module = sys.modules.get(module_name)
        names = [n for n in dir(module) if not n.startswith("_")] if module is not None else []
        return None, [problem(f"module {module_name!r} has no function {attr!r}",
                              did_you_mean(attr.rpartition(".")[2], names) or f"Define {attr}() in {module_name}.")]
    except TypeError as exc:  # load_callable: the name is there but is not callable
        return None, [problem(str(exc))]
    except OSError as exc:
        if exc.errno in (errno.EMFILE, errno.ENFILE):  # not the module's fault: this process ran out (see errors.py)
            return None, [problem(f"importing {module_name!r} failed: {exc.strerror}: {NO_MORE_FILES}",
                                  NO_MORE_FILES_HINT)]
        return None, [problem(f"importing {module_name!r} failed: {type(exc).__name__}: {exc}")]
    except Exception as exc:  # the module's own code failed while importing
        return None, [problem(f"importing {module_name!r} failed: {type(exc).__name__}: {exc}")]
    except SystemExit as exc:  # it tried to end the process (sys.exit, exit(), os._exit)
        return None, [problem(f"importing {module_name!r} called {exit_call(exc)}, which would end the run",
                              "Move that call into a function, or under `if __name__ == '__main__':`.")]
    return fn, [problem(text, hint) for text, hint in signature_problems(fn, task)]


def signature_problems(fn: Callable[..., Any], task: TaskSpec) -> list[tuple[str, str | None]]:
    """Why ``fn`` cannot be called with the task's ``args`` and ``needs`` as keywords.

    >>> from targetrun.model import TaskSpec
    >>> def fetch(city, days=7): ...
    >>> signature_problems(fetch, TaskSpec("t", run="m:fetch", args={"citi": "x"}))[0][0]
    "m:fetch has no parameter 'citi' (from args)"
    >>> signature_problems(fetch, TaskSpec("t", run="m:fetch", args={"days": 3}))[0][0]
    "m:fetch needs the argument 'city', which neither args nor needs gives"
    """
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return []  # a builtin without a signature: the call itself will tell
    given = {name: "args" for name in task.args} | {arg: "needs" for arg, _ in task.needs}
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    keywords = {n for n, p in params.items() if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    found: list[tuple[str, str | None]] = []
    if not takes_any:
        for name, source in given.items():
            if name not in keywords:
                found.append((f"{task.run} has no parameter {name!r} (from {source})",
                              did_you_mean(name, keywords) or f"Its parameters: {', '.join(params) or 'none'}."))
    for name, param in params.items():
        required = param.default is inspect.Parameter.empty
        if required and param.kind in (param.POSITIONAL_OR_KEYWORD, param.KEYWORD_ONLY) and name not in given:
            found.append((f"{task.run} needs the argument {name!r}, which neither args nor needs gives",
                          f"Add it to the task's `args:` or `needs:`, or give {name} a default."))
        elif required and param.kind is param.POSITIONAL_ONLY:
            found.append((f"{task.run} takes {name!r} by position only; a task passes keywords", None))
    return found


def _modules_near(module_name: str, root: str) -> list[str]:
    """Module names a misspelt one may have meant: beside the Pipelinefile, or in its package."""
    parent = module_name.rpartition(".")[0]
    if parent:
        package = sys.modules.get(parent)
        paths = list(getattr(package, "__path__", []) or [])
    else:
        paths = [root]
    names = [info.name for info in pkgutil.iter_modules(paths)]
    if not parent:
        names += [n for n in sys.builtin_module_names]
    return [n for n in names if not n.startswith("_") and os.sep not in n]


def load_callable(path: str, root: str) -> Callable[..., Any]:
    """Import ``module:function`` with the Pipelinefile's folder first on ``sys.path``.

    A module of the same name imported earlier from another folder (another pipeline in
    the same process) is dropped first, so each pipeline gets its own ``tasks.py``.
    """
    module_name, _, attr = path.partition(":")
    if root in sys.path:
        sys.path.remove(root)
    sys.path.insert(0, root)
    _forget_foreign(module_name, root)
    _forget_edited(root)
    _compile_from_source(root)
    with user_code(restore=module_name not in sys.modules):  # (imported before: no code of its runs now)
        obj: Any = importlib.import_module(module_name)
    _note_imported(root)
    for part in attr.split("."):
        obj = getattr(obj, part)
    if not callable(obj):
        raise TypeError(f"{path} is a {type(obj).__name__}, not a function")
    return obj  # type: ignore[no-any-return]


def _installed(file: str) -> bool:
    return any(part in ("site-packages", "dist-packages") for part in file.split(os.sep))


class _SourceOnly(importlib.machinery.SourceFileLoader):
    """Loads a project module from its source, never from ``__pycache__``: Python trusts a
    bytecode file while the source keeps its size and its mtime in whole seconds, so an
    edit in the same second that keeps the size would run the old code -- under a record
    of the new, which :mod:`targetrun.staleness` fingerprints from the source. (It writes
    no bytecode either; a project's modules compile in milliseconds.)"""

    def get_code(self, fullname: str) -> Any:
        path = self.get_filename(fullname)
        return self.source_to_code(self.get_data(path), path)


class _ProjectFinder:
    """Finds the modules of a project folder as Python would, and loads them with
    :class:`_SourceOnly`. It comes first on ``sys.meta_path`` and so is asked about every
    import, a library's too: it looks only in the path entries inside a project folder (the
    Pipelinefile's folder, and the folders the project puts on ``sys.path`` there), so a
    library import costs it a few cached lookups, not a second search of the whole path."""

    def __init__(self) -> None:
        self.folders: set[str] = set()
        self._ours: dict[str, bool] = {}  # absolute path entry -> inside a project folder (not installed)

    def add(self, folder: str) -> None:
        self.folders.add(folder)
        self._ours.clear()

    def _is_ours(self, entry: object) -> bool:
        if not isinstance(entry, str):
            return False
        if not os.path.isabs(entry):  # "", "src": under the current folder, whatever it is now
            return self._inside(os.path.abspath(entry))
        ours = self._ours.get(entry)
        if ours is None:
            ours = self._ours[entry] = self._inside(os.path.abspath(entry))
        return ours

    def _inside(self, folder: str) -> bool:
        real = os.path.join(folder, "")
        return not _installed(real) and any(real.startswith(f) for f in self.folders)

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> Any:
        if not self.folders:
            return None
        entries = list(sys.path if path is None else path)
        mine = [entry for entry in entries if self._is_ours(entry)]
        if not mine:
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, mine, target)
        origin = getattr(spec, "origin", None) if spec is not None else None
        if spec is None or type(spec.loader) is not importlib.machinery.SourceFileLoader or not isinstance(origin, str):
            return None  # not a source file: whoever comes next finds it, as before
        real = os.path.abspath(origin)
        if _installed(real) or not any(real.startswith(folder) for folder in self.folders):
            return None
        if self._found_before(fullname, path, entries, real, spec.submodule_search_locations is not None):
            return None  # Python takes what comes first: let it
        spec.loader = _SourceOnly(fullname, origin)
        return spec

    def _found_before(self, fullname: str, path: Any, entries: list[Any], origin: str, package: bool) -> bool:
        """Whether Python would find ``fullname`` before the project's file: a built-in or
        frozen module, or a module in a path entry outside the project that comes earlier."""
        if path is None and (importlib.machinery.BuiltinImporter.find_spec(fullname) is not None
                             or importlib.machinery.FrozenImporter.find_spec(fullname) is not None):
            return True
        where = os.path.dirname(os.path.dirname(origin) if package else origin)
        earlier = []
        for entry in entries:
            if isinstance(entry, str) and os.path.abspath(entry or os.curdir) == where:
                break
            if not self._is_ours(entry):
                earlier.append(entry)
        if not earlier:
            return False
        spec = importlib.machinery.PathFinder.find_spec(fullname, earlier)
        return spec is not None and spec.loader is not None  # a namespace portion yields to a module


_FINDER = _ProjectFinder()


def _compile_from_source(root: str) -> None:
    """Have the modules of the project at ``root`` compiled from their source from now on."""
    folder = os.path.join(os.path.abspath(root), "")
    if folder not in _FINDER.folders:
        _FINDER.add(folder)
    if _FINDER not in sys.meta_path:
        sys.meta_path.insert(0, _FINDER)


# The project's modules this process imported, per Pipelinefile folder: name -> (file, its
# size and mtime then). A process that runs tasks again (a Dask worker, the API called twice)
# imports them anew once one changed, as a new process would: the run records the code's
# fingerprint as it is now, so the code it runs must be that code.
_IMPORTED: dict[str, dict[str, tuple[str, tuple[int, int] | None]]] = {}
_IMPORTED_LOCK = threading.Lock()


def _stat(file: str) -> tuple[int, int] | None:
    try:
        st = os.stat(file)
    except OSError:
        return None
    return st.st_size, st.st_mtime_ns


def _forget_edited(root: str) -> None:
    """Drop every project module this process imported from ``root`` when one of their
    files changed (or went) since: they import each other, so all are imported anew. The
    modules another project's tasks imported go too (its ``helpers`` is not this one's)."""
    dropped = False
    with _IMPORTED_LOCK:
        for folder, known in _IMPORTED.items():
            if not known or (folder == root and all(_stat(file) == then for file, then in known.values())):
                continue
            for name, (file, _) in known.items():
                if getattr(sys.modules.get(name), "__file__", None) == file:
                    del sys.modules[name]
            known.clear()
            _SCANNED.pop(folder, None)
            dropped = True
    if dropped:
        importlib.invalidate_caches()


_SCANNED: dict[str, int] = {}  # root -> how many modules sys.modules held when last looked through


def _note_imported(root: str) -> None:
    """Remember the project modules now imported from ``root`` and their files' stat (not
    the installed packages of a virtual environment inside it: libraries are not reloaded)."""
    folder = os.path.join(os.path.abspath(root), "")
    with _IMPORTED_LOCK:
        if _SCANNED.get(root) == len(sys.modules):  # nothing imported since: 10,000 tasks look once
            return
        known = _IMPORTED.setdefault(root, {})
        for name, module in list(sys.modules.items()):
            file = getattr(module, "__file__", None)
            if name in known or not isinstance(file, str) or not os.path.abspath(file).startswith(folder):
                continue
            if not _installed(file):
                known[name] = (file, _stat(file))
        _SCANNED[root] = len(sys.modules)


def _forget_foreign(module_name: str, root: str) -> None:
    top = module_name.split(".")[0]
    local = os.path.exists(os.path.join(root, top + ".py")) or os.path.isdir(os.path.join(root, top))
    loaded = sys.modules.get(top)
    if not local or loaded is None:
        return
    origin = os.path.abspath(getattr(loaded, "__file__", None) or root)
    if origin.startswith(os.path.join(root, "")):
        return
    for name in [n for n in sys.modules if n == top or n.startswith(top + ".")]:
        del sys.modules[name]
    importlib.invalidate_caches()
