"""Thread and process pools over :mod:`concurrent.futures`."""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor
from typing import Any


class ThreadExecutor:
    in_process = True

    def __init__(self, max_workers: int = 2) -> None:
        self.max_workers = max_workers
        self.max_in_flight = 2 * max_workers
        self._pool = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="targetrun")

    def submit(self, fn: Callable[..., Any], /, *args: Any) -> Future[Any]:
        return self._pool.submit(fn, *args)

    def shutdown(self, wait: bool = True) -> None:
        self._pool.shutdown(wait=wait, cancel_futures=not wait)


class ProcessExecutor:
    """Worker processes (``spawn``: no fork of a process that holds threads and sockets)."""

    in_process = False

    def __init__(self, max_workers: int = 2) -> None:
        self.max_workers = max_workers
        self.max_in_flight = 2 * max_workers
        context = multiprocessing.get_context("spawn")
        self._pool = ProcessPoolExecutor(max_workers=max_workers, mp_context=context)

    def submit(self, fn: Callable[..., Any], /, *args: Any) -> Future[Any]:
        return self._pool.submit(fn, *args)

    def shutdown(self, wait: bool = True) -> None:
        self._pool.shutdown(wait=wait, cancel_futures=not wait)
