"""Run tasks on a Dask cluster: a LocalCluster started here, or an existing scheduler.

Each task attempt is one ``client.submit`` of :func:`~targetrun.engine.work.execute`; the
worker runs the task and writes its checkpoint to the task's result location, so with a
remote scheduler results must live on shared storage (s3://, gs://). Submissions are not
waited on one by one: a dask future's completion sets a ``concurrent.futures.Future``
(from Dask's callback thread), and the engine keeps several tasks per worker in flight.

An attempt is *running* once a worker begins it: the worker logs an event on a topic of
this executor's own, which the scheduler forwards to this client (see
:mod:`targetrun.executors.base`). A local cluster's workers are started while this
process's fds 1 and 2 point at the output sink (:mod:`targetrun.capture`), so what
they write there (their own logs, a task's subprocesses) never reaches targetrun's stdout:
it is kept with the run's unattributed output. A Python task's own ``print`` and logging
are captured per task on the worker as with every executor.

``dask[distributed]`` is imported here only, lazily; the executor registry (``requires``) imports it first, so without it a run says "pip install 'targetrun[dask]'" (exit 2).
"""

from __future__ import annotations

import contextlib
import logging
import secrets
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

from targetrun import stopping
from targetrun.errors import ExecutorError, UsageError
from targetrun.executors.base import ExecutorOptions, StartHook, set_thread_hook

IN_FLIGHT_PER_THREAD = 32  # keep workers busy while results travel back (a round trip is ~11 ms)


class DaskExecutor:
    in_process = False

    @classmethod
    def create(cls, options: ExecutorOptions) -> DaskExecutor:
        return cls(max_workers=options.jobs, scheduler=options.scheduler, timeout=options.scheduler_timeout)

    def __init__(self, max_workers: int = 2, scheduler: str | None = None, client: Any = None,
                 timeout: float = 10.0) -> None:
        from distributed import Client, LocalCluster

        self.remote = scheduler is not None
        self._cluster: Any = None
        self._owns_client = client is None
        try:
            if client is not None:
                self._client = client
            elif scheduler is not None:
                self._client = Client(scheduler, timeout=timeout)  # type: ignore[no-untyped-call]
            else:
                settings = dict(n_workers=max_workers, threads_per_worker=1, processes=True, host="127.0.0.1",
                                dashboard_address="127.0.0.1:0", silence_logs=logging.ERROR)
                from targetrun.capture import process_output

                with process_output():  # the workers inherit the sink as their stdout and stderr
                    self._cluster = LocalCluster(**settings)  # type: ignore[no-untyped-call]
                self._client = Client(self._cluster)  # type: ignore[no-untyped-call]
        except BaseException as exc:
            if self._cluster is not None:
                self._cluster.close()
            if scheduler is not None and isinstance(exc, (ValueError, TypeError)):
                # well formed (api.scheduler_address), yet refused: tls:// without Dask's TLS settings
                raise UsageError(f"cannot use the Dask scheduler {scheduler}: {exc}",
                                 hint="For tls:// or wss://, give Dask its TLS settings (distributed.comm.tls in "
                                      "Dask's configuration); otherwise use tcp://HOST:PORT.") from None
            if not isinstance(exc, (OSError, TimeoutError)):
                raise
            where = scheduler or "a local cluster"
            raise ExecutorError(f"cannot reach the Dask scheduler {where}: {exc}",
                                hint="Check the address (tcp://HOST:8786) and that the scheduler is running.") from None
        threads = sum(self._client.nthreads().values()) or max_workers
        self.max_workers = threads
        self.max_in_flight = threads * IN_FLIGHT_PER_THREAD
        self._pending: dict[Any, Future[Any]] = {}  # dask future -> the engine's, until settled
        self._stopping = False
        self._closed = False
        self._hook: StartHook | None = None
        self._topic = f"targetrun-start-{secrets.token_hex(8)}"  # this client's notices only
        self._client.subscribe_topic(self._topic, self._on_event)

    def watch_starts(self, hook: StartHook | None) -> None:
        self._hook = hook

    def _on_event(self, event: Any) -> None:
        hook = self._hook
        _, (task, ticket) = event
        if hook is not None:
            hook(task, ticket)

    def submit(self, fn: Callable[..., Any], /, *args: Any) -> Future[Any]:
        result: Future[Any] = Future()
        remote = self._client.submit(_on_worker, self._topic, fn, *args, pure=False)
        self._pending[remote] = result

        def settle(done: Any) -> None:
            if self._stopping and done.cancelled():
                # The run stopped (see shutdown): Dask does not stop a running attempt it
                # cancels, and a Python task's thread cannot be -- left unsettled, the run
                # counts it as still able to write and keeps its pending record, for the
                # next run to remove whatever it leaves.
                return
            self._pending.pop(done, None)
            try:
                result.set_result(done.result())
            except BaseException as exc:  # the engine decides what it means
                result.set_exception(exc)

        remote.add_done_callback(settle)
        return result

    def shutdown(self, wait: bool = True) -> None:
        if self._closed:  # the engine's end, then the caller's: once
            return
        self._closed = True
        if not wait:  # the run is stopping: its commands on the workers stop first, and none starts
            self._stopping = True
            with contextlib.suppress(Exception):  # a worker that cannot be told: its attempt stays pending
                stopping.within_grace(lambda: self._client.run(_stop_on_worker, self._topic, on_error="ignore"))
        for remote in list(self._pending):
            remote.cancel()
        if self._owns_client:
            self._client.close()
        if self._cluster is not None:
            self._cluster.close()
            for result in self._pending.values():  # its workers are gone: nothing of them writes any more
                result.cancel()


def _on_worker(topic: str, fn: Callable[..., Any], *args: Any) -> Any:
    """Run ``fn`` on a Dask worker, with start notices sent to the client as events."""
    from distributed import get_worker

    worker = get_worker()

    def started(task: str, ticket: int) -> None:
        worker.log_event(topic, [task, ticket])

    set_thread_hook(started)
    try:
        with stopping.working_for(topic):  # the run stops its own commands here (_stop_on_worker)
            return fn(*args)
    finally:
        set_thread_hook(None)


def _stop_on_worker(topic: str) -> None:
    """On each worker, when the run of ``topic`` stops: kill its commands, start no more."""
    stopping.stop_owner(topic)
