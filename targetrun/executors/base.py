"""The Executor port: ``submit(fn, *args) -> Future``, and the synchronous executor.

The engine has one scheduling loop over ``submit``; threads, processes and dask are
small adapters. :class:`InlineExecutor` runs the function at once in the calling thread
and returns a finished future: it is the default (``-j 1``), the one tests and
debuggers want, and it costs nothing per task.

**Queued versus running.** A submitted attempt is *queued*; it is *running* once a worker
begins it. The worker says so by calling :func:`announce_start` first thing, which calls
the hook its executor installed where the work runs (a thread-local for the calling
thread and pool threads, a process-wide one in pool processes, which send the notice back
over a queue). An executor that can tell offers ``watch_starts(hook)``: the engine passes
a thread-safe hook and counts an attempt as running only when it is called. One without
``watch_starts`` has its attempts counted as running when submitted.

**Meanwhile.** A worker that started a command calls :func:`command_started` before it
waits for it. The inline executor's worker is the engine's own thread, which would
otherwise sit idle while the command runs on another core: its ``overlap(hook)`` has
that call run the engine's hook there, for work the command does not wait for.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, Protocol

StartHook = Callable[[str, int], None]  # (task, ticket): that submission began on a worker

_thread_hook = threading.local()  # a hook for work running in this thread
_process_hook: StartHook | None = None  # a hook for work running anywhere in this process


def set_thread_hook(hook: StartHook | None) -> None:
    _thread_hook.hook = hook


def set_process_hook(hook: StartHook | None) -> None:
    global _process_hook
    _process_hook = hook


def announce_start(task: str, ticket: int) -> None:
    """Called by the worker as an attempt begins: tell the coordinator, if it listens."""
    hook: StartHook | None = getattr(_thread_hook, "hook", None) or _process_hook
    if hook is not None:
        hook(task, ticket)


def command_started() -> None:
    """Called by the worker once the command it started runs, before it waits for it: the
    coordinator's own work goes on meanwhile, when the worker is its thread (inline)."""
    hook: Callable[[], None] | None = getattr(_thread_hook, "meanwhile", None)
    if hook is not None:
        hook()

from targetrun.registry import Entry, Registry


class Executor(Protocol):
    max_workers: int
    #: attempts the engine keeps submitted at once (more than workers: none idles between tasks)
    max_in_flight: int
    #: True when submitted functions run in this process and may share memory with it
    in_process: bool
    # Optional: ``runs_in_caller = True`` when ``submit`` runs the function itself, in the
    # calling thread (then what ``submit`` raises comes once the attempt is over).
    # Optional: ``explain_loss(exc) -> str | None``, what ended the worker a future's error
    # ``exc`` says was lost ("killed by signal 9 (SIGKILL ...)"), for the task's message.

    def submit(self, fn: Callable[..., Any], /, *args: Any) -> Future[Any]: ...

    def shutdown(self, wait: bool = True) -> None: ...


@dataclass(frozen=True)
class ExecutorOptions:
    """What the command line says about where tasks run; each executor takes what it uses."""

    jobs: int = 1  # workers (-j)
    scheduler: str | None = None  # an existing Dask scheduler's address (--scheduler)
    scheduler_timeout: float = 10.0  # seconds to wait for that scheduler (TARGETRUN_SCHEDULER_TIMEOUT)


DEFAULT = "inline"  # -j 1 and no scheduler
PARALLEL = "threads"  # what the default becomes with -j N > 1
REMOTE = "dask"  # what a scheduler address implies


def choose(name: str, options: ExecutorOptions) -> str:
    """The registry name to use: a scheduler address implies dask; the default with ``-j N``
    is a thread pool.

    >>> choose("inline", ExecutorOptions(jobs=4)), choose("processes", ExecutorOptions(scheduler="tcp://h:1"))
    ('threads', 'dask')
    """
    if options.scheduler is not None:
        return REMOTE
    return PARALLEL if name == DEFAULT and options.jobs > 1 else name


def create(factory: Any, options: ExecutorOptions) -> Executor:
    """An executor from its registry entry: ``factory.create(options)`` when the class has
    one (every built-in), else ``factory(max_workers=jobs)`` (a plugin's pool)."""
    make = getattr(factory, "create", None)
    if make is not None:
        return make(options)  # type: ignore[no-any-return]
    return factory(max_workers=options.jobs)  # type: ignore[no-any-return]


class InlineExecutor:
    """Runs each attempt at once, in the calling thread: it is running as soon as submitted."""

    max_workers = 1
    max_in_flight = 1
    in_process = True
    runs_in_caller = True

    @classmethod
    def create(cls, options: ExecutorOptions) -> InlineExecutor:
        return cls()  # one attempt at a time, whatever -j says

    def __init__(self) -> None:
        self._hook: StartHook | None = None
        self._meanwhile: Callable[[], None] | None = None

    def watch_starts(self, hook: StartHook | None) -> None:
        self._hook = hook

    def overlap(self, hook: Callable[[], None] | None) -> None:
        """Run ``hook`` (the caller's own work) while an attempt's command runs: see
        :func:`command_started`."""
        self._meanwhile = hook

    def submit(self, fn: Callable[..., Any], /, *args: Any) -> Future[Any]:
        future: Future[Any] = Future()
        before, before_meanwhile = getattr(_thread_hook, "hook", None), getattr(_thread_hook, "meanwhile", None)
        set_thread_hook(self._hook)
        _thread_hook.meanwhile = self._meanwhile
        try:
            future.set_result(fn(*args))
        except BaseException as exc:  # the engine decides what an exception means
            if not isinstance(exc, Exception):
                raise
            future.set_exception(exc)
        finally:
            set_thread_hook(before)
            _thread_hook.meanwhile = before_meanwhile
        return future

    def shutdown(self, wait: bool = True) -> None:
        pass


EXECUTORS = Registry(
    "executor",
    "targetrun.executors",
    {
        "inline": Entry("targetrun.executors.base:InlineExecutor"),
        "threads": Entry("targetrun.executors.local:ThreadExecutor"),
        "processes": Entry("targetrun.executors.local:ProcessExecutor"),
        "dask": Entry("targetrun.executors.dask:DaskExecutor", extra="dask", requires=("dask", "distributed")),
    },
)
