"""Run tasks on a Dask cluster: a LocalCluster started here, or an existing scheduler.

Each task attempt is one ``client.submit`` of :func:`~targetrun.engine.work.execute`; the
worker runs the task and writes its checkpoint to the task's result location, so with a
remote scheduler results must live on shared storage (s3://, gs://). Submissions are not
waited on one by one: a dask future's completion sets a ``concurrent.futures.Future``
(from Dask's callback thread), and the engine keeps several tasks per worker in flight.

``dask[distributed]`` is imported here only, lazily: "Install targetrun[dask]".
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

from targetrun.errors import ExecutorError

IN_FLIGHT_PER_THREAD = 32  # keep workers busy while results travel back (a round trip is ~11 ms)


class DaskExecutor:
    in_process = False

    def __init__(self, max_workers: int = 2, scheduler: str | None = None, client: Any = None) -> None:
        from distributed import Client, LocalCluster

        self.remote = scheduler is not None
        self._cluster: Any = None
        self._owns_client = client is None
        try:
            if client is not None:
                self._client = client
            elif scheduler is not None:
                from targetrun.settings import scheduler_timeout

                timeout = scheduler_timeout()
                self._client = Client(scheduler, timeout=timeout)  # type: ignore[no-untyped-call]
            else:
                settings = dict(n_workers=max_workers, threads_per_worker=1, processes=True, host="127.0.0.1",
                                dashboard_address="127.0.0.1:0", silence_logs=logging.ERROR)
                self._cluster = LocalCluster(**settings)  # type: ignore[no-untyped-call]
                self._client = Client(self._cluster)  # type: ignore[no-untyped-call]
        except BaseException as exc:
            if self._cluster is not None:
                self._cluster.close()
            if not isinstance(exc, (OSError, TimeoutError)):
                raise
            where = scheduler or "a local cluster"
            raise ExecutorError(f"cannot reach the Dask scheduler {where}: {exc}",
                                hint="Check the address (tcp://HOST:8786) and that the scheduler is running.") from None
        threads = sum(self._client.nthreads().values()) or max_workers
        self.max_workers = threads
        self.max_in_flight = threads * IN_FLIGHT_PER_THREAD
        self._pending: set[Any] = set()

    def submit(self, fn: Callable[..., Any], /, *args: Any) -> Future[Any]:
        result: Future[Any] = Future()
        remote = self._client.submit(fn, *args, pure=False)
        self._pending.add(remote)

        def settle(done: Any) -> None:
            self._pending.discard(done)
            try:
                result.set_result(done.result())
            except BaseException as exc:  # the engine decides what it means
                result.set_exception(exc)

        remote.add_done_callback(settle)
        return result

    def shutdown(self, wait: bool = True) -> None:
        for remote in list(self._pending):
            remote.cancel()
        if self._owns_client:
            self._client.close()
        if self._cluster is not None:
            self._cluster.close()
