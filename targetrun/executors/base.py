"""The Executor port: ``submit(fn, *args) -> Future``, and the synchronous executor.

The engine has one scheduling loop over ``submit``; threads, processes and dask are
small adapters. :class:`InlineExecutor` runs the function at once in the calling thread
and returns a finished future: it is the default (``-j 1``), the one tests and
debuggers want, and it costs nothing per task.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, Protocol

from targetrun.registry import Entry, Registry


class Executor(Protocol):
    max_workers: int
    #: attempts the engine keeps submitted at once (more than workers: none idles between tasks)
    max_in_flight: int
    #: True when submitted functions run in this process and may share memory with it
    in_process: bool

    def submit(self, fn: Callable[..., Any], /, *args: Any) -> Future[Any]: ...

    def shutdown(self, wait: bool = True) -> None: ...


class InlineExecutor:
    max_workers = 1
    max_in_flight = 1
    in_process = True

    def submit(self, fn: Callable[..., Any], /, *args: Any) -> Future[Any]:
        future: Future[Any] = Future()
        try:
            future.set_result(fn(*args))
        except BaseException as exc:  # the engine decides what an exception means
            if not isinstance(exc, Exception):
                raise
            future.set_exception(exc)
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
        "dask": Entry("targetrun.executors.dask:DaskExecutor", "Install targetrun[dask] to use the dask executor."),
    },
)
