"""The Storage port: where targets and checkpoints live.

A backend implements a few primitives; the rest is derived:

* ``exists(url)`` has three answers: True, False (only for "not found") or
  :class:`StorageError` ("cannot tell": credentials, network, permissions). A backend
  must never turn "cannot tell" into False (fsspec's ``exists`` does; don't call it).
* ``exists_many(urls)`` answers a batch; backends override it to answer a folder or
  prefix with one listing instead of one request per key.
* ``atomic_write(url)`` yields a binary file; the value appears at ``url`` only when the
  block exits without an exception, so no partial target is ever visible.
* ``staged(url)`` yields a local path for a shell command's ``{output}``; it is moved
  onto ``url`` on success.

Checkpoints are written in two phases, so that a checkpoint becomes visible at its target
only together with its record in the state store (DESIGN.md, "Trust and containment"):
the worker writes the value to a *staging* location beside the target
(:meth:`Storage.staging_url`, :meth:`Storage.stage_write` / :meth:`Storage.stage_output`);
the coordinator records it, then :meth:`Storage.commit` moves it onto the target.
Whatever is interrupted in between leaves at most a hidden staging file, which the next run
removes (:meth:`Storage.discard`).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import BinaryIO

from targetrun.registry import Entry, Registry


@dataclass(frozen=True, slots=True)
class Stat:
    size: int | None
    mtime: float | None


class Storage(ABC):
    """One storage backend instance (one fsspec filesystem and its options)."""

    @abstractmethod
    def info(self, url: str) -> Stat | None:
        """Size and modification time, None when missing; StorageError when it cannot tell."""

    @abstractmethod
    def open_read(self, url: str) -> BinaryIO:
        """A readable binary file (FileNotFoundError when missing)."""

    @abstractmethod
    def atomic_write(self, url: str) -> contextlib.AbstractContextManager[BinaryIO]:
        """A writable binary file committed to ``url`` only on success."""

    @abstractmethod
    def put_file(self, local_path: str, url: str) -> None:
        """Move or upload a finished local file onto ``url`` in one commit."""

    @abstractmethod
    def remove(self, url: str) -> None:
        """Delete ``url``; a missing one is not an error."""

    # -- derived -------------------------------------------------------------------

    def exists(self, url: str) -> bool:
        return self.info(url) is not None

    def is_folder(self, url: str) -> bool:
        """Whether ``url`` is a folder (or a prefix with keys under it). ``invalidate``
        removes only files, so it asks first; adapters with folders override this."""
        path = self.local_path(url)
        return path is not None and os.path.isdir(path) and not os.path.islink(path)

    def parent(self, url: str) -> str:
        """The folder or prefix a listing of which answers ``url``'s existence."""
        return url.rstrip("/").rsplit("/", 1)[0]

    def key(self, url: str) -> str:
        """``url`` in the form :meth:`listing` returns (e.g. without its protocol)."""
        return url

    def listing(self, parent: str) -> frozenset[str] | None:
        """The keys of everything directly under ``parent`` (empty when it does not
        exist), or None when this backend cannot list. StorageError when it cannot tell."""
        return None

    def listing_stats(self, parent: str) -> dict[str, Stat] | None:
        """Like :meth:`listing`, with each entry's size and age (None: cannot list)."""
        return None

    def exists_many(self, urls: Iterable[str]) -> dict[str, bool]:
        return TargetChecker(lambda _key: self).check_urls("", list(urls))

    def stat_many(self, urls: list[str], *, threshold: int = 3) -> dict[str, Stat | None]:
        """Size and age of many URLs: one detailed listing per folder or prefix that holds
        several of them, one ``info`` for the others."""
        groups: dict[str, list[str]] = {}
        for url in urls:
            groups.setdefault(self.parent(url), []).append(url)
        found: dict[str, Stat | None] = {}
        for parent, members in groups.items():
            stats = self.listing_stats(parent) if len(members) >= threshold else None
            for url in members:
                found[url] = stats.get(self.key(url)) if stats is not None else self.info(url)
        return found

    def local_path(self, url: str) -> str | None:
        """A local filesystem path for ``url`` if it has one (local storage)."""
        return None

    @contextlib.contextmanager
    def staged(self, url: str) -> Iterator[str]:
        """A local path to write; put onto ``url`` only if the block succeeds."""
        folder = tempfile.mkdtemp(prefix="targetrun-stage-")
        try:
            path = os.path.join(folder, os.path.basename(url.rstrip("/")) or "output")
            yield path
            self.put_file(path, url)
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    @contextlib.contextmanager
    def fetched(self, url: str) -> Iterator[str]:
        """A local copy of ``url`` for a shell command's ``{needs.NAME}``, removed afterwards."""
        local = self.local_path(url)
        if local is not None:
            yield local
            return
        folder = tempfile.mkdtemp(prefix="targetrun-input-")
        try:
            path = os.path.join(folder, os.path.basename(url.rstrip("/")) or "input")
            with self.open_read(url) as src, open(path, "wb") as dst:
                shutil.copyfileobj(src, dst, 1024 * 1024)
            yield path
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    # -- two-phase checkpoint writes -----------------------------------------------------

    def staging_url(self, url: str, token: str) -> str:
        """A hidden sibling of ``url`` for one attempt's write (``token`` names the attempt)."""
        return staging_sibling(url, token)

    @contextlib.contextmanager
    def stage_write(self, staging: str) -> Iterator[BinaryIO]:
        """A writable file at ``staging`` (never trusted as a target; removed on failure)."""
        with self.atomic_write(staging) as f:
            yield f

    @contextlib.contextmanager
    def stage_output(self, staging: str) -> Iterator[str]:
        """A local path for a shell command's ``{output}`` that ends up at ``staging``."""
        with self.staged(staging) as path:
            yield path

    def commit(self, staging: str, url: str) -> None:
        """Move a staged write onto ``url`` in one step. The default copies and removes;
        backends with a rename (local disk) or a server-side copy override it."""
        with self.open_read(staging) as src, self.atomic_write(url) as dst:
            shutil.copyfileobj(src, dst, 1024 * 1024)
        self.discard(staging)

    def discard(self, staging: str) -> None:
        """Remove a staging file (a file only; a missing one is not an error)."""
        self.remove(staging)

    def close(self) -> None:
        pass


def staging_sibling(url: str, token: str) -> str:
    """The hidden staging name beside ``url`` (same folder or prefix, so a rename or a
    server-side copy commits it).

    >>> staging_sibling("s3://b/out/x.json", "r1-3")
    's3://b/out/.x.json.targetrun-r1-3'
    >>> staging_sibling("/p/out/x.json", "r1-3")
    '/p/out/.x.json.targetrun-r1-3'
    """
    head, _, name = url.rstrip("/").rpartition("/")
    return f"{head}/.{name}.targetrun-{token}" if head else f".{name}.targetrun-{token}"


def shown(url: str) -> str:
    """The URL a user knows: a staging file is named by the target it is for.

    >>> shown("s3://b/out/.x.json.targetrun-r1-3"), shown("s3://b/out/x.json")
    ('s3://b/out/x.json', 's3://b/out/x.json')
    """
    head, _, name = url.rstrip("/").rpartition("/")
    if not (name.startswith(".") and ".targetrun-" in name):
        return url
    target = name[1:].rsplit(".targetrun-", 1)[0]
    return f"{head}/{target}" if head else target


class TargetChecker:
    """Answers "does it exist?" for many targets with few requests.

    Told up front which URLs a run may ask about, it answers a URL by one listing of its
    folder or prefix when that prefix holds at least ``threshold`` of them (the listing is
    reused for the rest), and by one ``info`` call otherwise. Prefixes nobody asks about
    are never listed, so a target below an existing one costs nothing.
    """

    def __init__(self, storages: Callable[[str], Storage], *, threshold: int = 3) -> None:
        self._storages = storages
        self._threshold = threshold
        self._expected: Counter[tuple[str, str]] = Counter()
        self._group_of: dict[tuple[str, str], tuple[str, str]] = {}
        self._listings: dict[tuple[str, str], frozenset[str] | None] = {}
        self._stats: dict[tuple[str, str], Stat] = {}  # from detailed listings

    def expect(self, storage_key: str, urls: Iterable[str]) -> None:
        parent = self._storages(storage_key).parent
        for url in urls:
            group = self._group_of[(storage_key, url)] = (storage_key, parent(url))
            self._expected[group] += 1

    def check_urls(self, storage_key: str, urls: list[str]) -> dict[str, bool]:
        if not self._expected:
            self.expect(storage_key, urls)
        storage = self._storages(storage_key)
        answers: dict[str, bool] = {}
        for url in urls:
            group = self._group_of.get((storage_key, url)) or (storage_key, storage.parent(url))
            names = self._listing(storage, group)
            answers[url] = storage.exists(url) if names is None else storage.key(url) in names
        return answers

    def _listing(self, storage: Storage, group: tuple[str, str]) -> frozenset[str] | None:
        if group in self._listings:
            return self._listings[group]
        if self._expected[group] < self._threshold:
            return None
        stats = storage.listing_stats(group[1])  # sizes and ages come with the same request
        if stats is not None:
            self._stats.update(((group[0], key), stat) for key, stat in stats.items())
            names: frozenset[str] | None = frozenset(stats)
        else:
            names = storage.listing(group[1])
        self._listings[group] = names
        return names

    def known_stat(self, storage_key: str, url: str) -> tuple[bool, Stat | None]:
        """(True, stat) when a listing already answered ``url`` (stat None: missing)."""
        storage = self._storages(storage_key)
        group = self._group_of.get((storage_key, url)) or (storage_key, storage.parent(url))
        names = self._listings.get(group)
        if names is None:
            return False, None  # never listed
        key = storage.key(url)
        if (storage_key, key) in self._stats:
            return True, self._stats[(storage_key, key)]
        if key in names:
            return False, None  # listed by name only: size and age unknown
        return True, None


STORAGES = Registry(
    "storage",
    "targetrun.storage",
    {
        "local": Entry("targetrun.storage.local:LocalStorage"),
        "inline": Entry("targetrun.storage.inline:InlineStorage"),
        "fsspec": Entry("targetrun.storage.fsspec:FsspecStorage", "Install targetrun to get fsspec."),
    },
)
