"""``result: inline``: small values kept in the state store itself (Prefect's PrefectResult).

Useful for a few bytes of JSON that every machine sharing a Redis store should see,
without a bucket. A value above :data:`LIMIT` bytes is refused with a message that says
to use a storage location instead.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Iterator
from typing import Any, BinaryIO

from targetrun.regularfile import read_upto
from targetrun.serializers.base import SerializationError
from targetrun.storage.base import Stat, Storage
from targetrun.store.base import STORES, StateStore, StoreOptions

LIMIT = 64 * 1024


class InlineStorage(Storage):
    def __init__(self, store: StateStore, store_kind: str, store_location: str,
                 options: StoreOptions | None = None) -> None:
        self._store: StateStore | None = store
        self._kind = store_kind  # how a worker in another process reopens the store
        self._location = store_location
        self._options = options or StoreOptions()

    def __getstate__(self) -> dict[str, Any]:
        return {"_store": None, "_kind": self._kind, "_location": self._location, "_options": self._options}

    @property
    def store(self) -> StateStore:
        if self._store is None:
            self._store = STORES.get(self._kind).open(self._location, self._options)
        return self._store

    def info(self, url: str) -> Stat | None:
        data = self.store.get_blob(url)
        return None if data is None else Stat(len(data), None)

    def open_read(self, url: str) -> BinaryIO:
        data = self.store.get_blob(url)
        if data is None:
            raise FileNotFoundError(url)
        return io.BytesIO(data)

    @contextlib.contextmanager
    def atomic_write(self, url: str) -> Iterator[BinaryIO]:
        buffer = io.BytesIO()
        yield buffer
        self._put(url, buffer.getvalue())

    def put_file(self, local_path: str, url: str) -> None:
        with open(local_path, "rb") as f:
            self._put(url, read_upto(f, LIMIT))

    def _put(self, url: str, data: bytes) -> None:
        if len(data) > LIMIT:
            raise SerializationError(
                f"the value is more than {LIMIT:,} bytes, the most `result: inline` keeps in the state store; "
                "give the task a storage location instead (result: . or a URL)")
        self.store.put_blob(url, data)

    def remove(self, url: str) -> None:
        self.store.delete_blob(url)
