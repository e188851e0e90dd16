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
import urllib.parse
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import BinaryIO

from targetrun import scratch
from targetrun.registry import Entry, Registry



def endpoint_problem(url: str) -> str | None:
    """What is wrong with an ``endpoint_url`` storage option (s3fs and gcsfs take one), or
    None: it must be an http(s) URL with a host (an IPv6 address in brackets) and a numeric
    port. A malformed one reached the first existence check, whose "cannot tell" (exit 3)
    blamed the network. The URL itself is not quoted: it may carry credentials.

    >>> endpoint_problem("http://[::1]:9000") is None, endpoint_problem("http://[::1:9000")
    (True, 'Invalid IPv6 URL')
    """
    try:
        parts = urllib.parse.urlsplit(url)
        parts.port  # (a port that is no number raises here)
    except ValueError as exc:
        return str(exc)
    return None if parts.scheme in ("http", "https") and parts.hostname else "expected http:// or https:// and a host"


ENDPOINT_HINT = "Write it as http://HOST:PORT (an IPv6 address in brackets: http://[::1]:9000)."

@dataclass(frozen=True, slots=True)
class Stat:
    size: int | None
    mtime: float | None
    # A local file's size, modification and change times in nanoseconds as one number
    # (targetrun.status_replay.signature), from the same system call as the rest: the status
    # certificate records it, so the table's targets are not looked at a second time. None:
    # not known (any other storage, or one answer at a time). Not compared: it adds no fact.
    signature: int | None = field(default=None, compare=False)


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

    def list_pages(self, parent: str, *, recursive: bool, max_requests: int,
                   urls: list[str] | None = None) -> Listing | None:
        """One listing of ``parent`` (all depths when ``recursive``) that answers ``urls``
        in at most ``max_requests`` requests; None when this backend
        cannot list that way. The default lists a folder whole (local disk: one system
        call, no requests to count)."""
        if recursive:
            return None
        stats = self.listing_stats(parent)
        if stats is not None:
            return Listing(dict(stats))
        names = self.listing(parent)
        if names is None:
            return None
        # A name that is one of ``urls`` is kept as that URL's own string: a folder of
        # 100,000 targets would otherwise hold each path twice all run long (~9 MB).
        entries: dict[str, Stat | None] = dict.fromkeys(key for key in map(self.key, urls or ()) if key in names)
        entries.update(dict.fromkeys(names))  # an equal key already in keeps its string
        return Listing(entries)

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
            stats = self.listing_stats(parent) if len(members) >= threshold and lists_as_named(parent) else None
            for url in members:
                found[url] = stats.get(self.key(url)) if stats is not None else self.info(url)
        return found

    def local_path(self, url: str) -> str | None:
        """A local filesystem path for ``url`` if it has one (local storage)."""
        return None

    @contextlib.contextmanager
    def staged(self, url: str) -> Iterator[str]:
        """A local path to write; put onto ``url`` only if the block succeeds."""
        folder = scratch.mkdtemp("stage")  # (named for this process: see targetrun/scratch.py)
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
            # The command is handed the path, not bytes targetrun read: opened here first (without
            # waiting), a FIFO, device or socket put where the checkpoint belongs is refused as a
            # Python task's read refuses it, instead of the command waiting on it forever.
            with self.open_read(url):
                pass
            yield local
            return
        folder = scratch.mkdtemp("input")
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

    def commit_inside(self, staging: str, url: str, root: str, real_root: str) -> None:
        """:meth:`commit`, for a target a value led into the result location ``root``
        (``real_root``: its real path): the move must not land anywhere else. Only a local
        disk has symlinks that could lead it out (LocalStorage); elsewhere it is commit."""
        self.commit(staging, url)

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


def is_staging_of(staging: str, url: str) -> bool:
    """Whether ``staging`` is a staging name :func:`staging_sibling` gives ``url`` (some
    token without a ``/``): what a pending write read from a state store -- data another
    process may have written -- must name before its file is removed.

    >>> is_staging_of("/p/out/.x.json.targetrun-r1-3", "/p/out/x.json")
    True
    >>> is_staging_of("/home/me", "/p/out/x.json"), is_staging_of("/p/out/.x.json.targetrun-", "/p/out/x.json")
    (False, False)
    >>> is_staging_of("/p/out/.x.json.targetrun-a/../../../etc", "/p/out/x.json")
    False
    """
    prefix = staging_sibling(url, "")
    token = staging[len(prefix):] if staging.startswith(prefix) else ""
    return bool(token) and "/" not in token and "\\" not in token and "\0" not in token


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


def lists_as_named(folder: str) -> bool:
    """Whether a listing of ``folder`` (a :meth:`Storage.parent`) lists that folder. Not
    when one of its names is empty: ``s3://b/a/`` holds ``s3://b/a//x`` (a template's empty
    value), but its URL loses the slash on the way (fsspec, :meth:`Storage.key`) and the
    listing is one of ``a``, where ``a//x`` is under a folder, not a key; s3fs finds no
    folder ``s3://b//f`` at all. ``status`` read either as "missing", and the planner's
    listing answered none of them. Such targets are checked one by one (or by a recursive
    listing above them, which sees every key).

    >>> lists_as_named("s3://b/a"), lists_as_named("s3://b/a/"), lists_as_named("s3://b//f")
    (True, False, False)
    """
    return not folder.endswith("/") and "//" not in folder.partition("://")[2 if "://" in folder else 0]


@dataclass(frozen=True, slots=True)
class Listing:
    """What one listing saw: each key found (with its size and age, or None when the
    backend lists names only), and which keys it decides. ``decided`` None: the listing is
    complete, so a key it did not find is missing; otherwise only the keys in ``decided``
    are answered (a listing that stopped early, or one that sought its targets out)."""

    entries: dict[str, Stat | None]
    decided: frozenset[str] | None = None

    def answers(self, key: str) -> bool:
        return self.decided is None or key in self.decided


_UNSEEN = Stat(-1, None)  # a marker: no listing saw the key


class TargetChecker:
    """Answers "does it exist?" for many targets with few requests.

    Told up front which URLs a run may ask about, it chooses per group of targets (the
    targets sharing a folder or prefix) between three ways to answer, from what is known
    before any request: how many targets each folder holds and how they spread.

    * a folder holding at least ``threshold`` targets is listed once (with sizes and ages);
    * targets alone or nearly alone in their folders but sharing a parent (Hive-style
      ``events/dt=2025-01-01/part.json`` x 365) are answered by one *recursive* listing of
      that parent -- about one request per 1,000 objects below it;
    * the rest are checked one key at a time (``info``).

    A listing never costs more than the per-key checks it replaces. Object stores list in
    key order, 1,000 keys a request, and can start a listing at any key (S3's
    ``StartAfter``, GCS's ``startOffset``); so each request starts at the first target not
    yet answered and answers it and every target among the next 1,000 keys: at most one
    request per target (a missing key costs per-key checks two), about one per 1,000 keys
    where targets are dense, and a few targets among thousands of other objects cost one
    request each at most. Targets a listing did not reach within its budget (as many
    requests as targets) are checked per key. Backends that cannot list page by page
    (local disk, where a listing is one cheap system call) list folders whole.
    Prefixes nobody asks about are never listed, so a target below an existing one costs
    nothing.
    """

    def __init__(self, storages: Callable[[str], Storage], *, threshold: int = 3) -> None:
        self._storages = storages
        self._threshold = threshold
        self._expected: Counter[tuple[str, str]] = Counter()
        # by storage, then by URL or key: 100,000 targets would otherwise be 100,000 tuples each
        self._group_of: dict[str, dict[str, tuple[str, str]]] = {}
        self._members: dict[tuple[str, str], list[str]] = {}  # group -> the URLs expected in it
        self._families: dict[tuple[str, str], set[tuple[str, str]]] = {}  # parent of folders -> folders
        self._tried: set[tuple[str, str]] = set()  # folders (and parents) already listed or declined
        # (storage, prefix) -> for each listing: recursive?, which keys it answers (None: all)
        self._listings: dict[tuple[str, str], list[tuple[bool, frozenset[str] | None]]] = {}
        self._found: dict[str, dict[str, Stat | None]] = {}  # keys seen by a listing

    def expect(self, storage_key: str, urls: Iterable[str]) -> None:
        parent = self._storages(storage_key).parent
        by_folder: dict[str, list[str]] = {}
        for url in urls:
            by_folder.setdefault(parent(url), []).append(url)
        group_of = self._group_of.setdefault(storage_key, {})
        for folder, members in by_folder.items():
            group = (storage_key, folder)
            group_of.update(dict.fromkeys(members, group))
            self._expected[group] += len(members)
            self._members.setdefault(group, []).extend(members)
            self._families.setdefault((storage_key, parent(folder)), set()).add(group)

    def check_urls(self, storage_key: str, urls: list[str]) -> dict[str, bool]:
        if not self._expected:
            self.expect(storage_key, urls)
        storage = self._storages(storage_key)
        by_group: dict[tuple[str, str], list[str]] = {}
        group_of = self._group_of.get(storage_key, {})
        for url in urls:
            group = group_of.get(url) or (storage_key, storage.parent(url))
            by_group.setdefault(group, []).append(url)
        answers: dict[str, bool] = {}
        found, key = self._found.setdefault(storage_key, {}), storage.key
        for group, members in by_group.items():
            self._list_for(storage, group)
            for url in members:
                name = key(url)
                if name in found:
                    answers[url] = True
                    continue
                known = self._known(storage_key, name)
                answers[url] = storage.exists(url) if known is None else known
        if len(by_group) == 1:
            return answers  # one group: already in the order asked
        return dict(zip(urls, (answers[url] for url in urls)))  # in the order asked

    def _known(self, storage_key: str, key: str) -> bool | None:
        """True/False when a listing answered ``key``; None when none did."""
        if key in self._found.get(storage_key, ()):
            return True
        if not self._listings:
            return None
        prefix, depth = key, 0
        while True:  # the folder holding ``key``, then each folder above it
            prefix = prefix.rsplit("/", 1)[0] if "/" in prefix else ""
            for recursive, decided in self._listings.get((storage_key, prefix), ()):
                if (recursive or depth == 0) and (decided is None or key in decided):
                    return False
            if not prefix:
                return None
            depth += 1

    def _list_for(self, storage: Storage, group: tuple[str, str]) -> None:
        """List what answers ``group``'s targets best, once (or decide not to)."""
        if group in self._tried:
            return
        self._tried.add(group)
        count = self._expected[group]
        if count >= self._threshold:
            if lists_as_named(group[1]):
                self._list(storage, group, recursive=False, urls=self._members.get(group, []))
            return
        family = (group[0], storage.parent(group[1]))
        if family in self._tried or family[1] == group[1]:
            return
        self._tried.add(family)
        lonely = [g for g in self._families.get(family, ()) if self._expected[g] < self._threshold]
        count = sum(self._expected[g] for g in lonely)
        if count >= self._threshold:
            self._list(storage, family, recursive=True, urls=[u for g in lonely for u in self._members.get(g, [])])

    def _list(self, storage: Storage, where: tuple[str, str], *, recursive: bool, urls: list[str]) -> None:
        # at most one request per target: per-key checks would cost at least that
        listing = storage.list_pages(where[1], recursive=recursive, max_requests=max(1, len(set(urls))), urls=urls)
        if listing is None:
            return
        # what it found is kept once, in _found (the listing itself goes: a second mapping of every target)
        self._listings.setdefault((where[0], storage.key(where[1])), []).append((recursive, listing.decided))
        self._found.setdefault(where[0], {}).update(listing.entries)

    def known_stats(self, storage_key: str, urls: list[str]) -> dict[str, Stat | None]:
        """What listings already told about ``urls``: a URL a listing found with its size
        and age maps to its stat, one a listing shows missing to None; a URL not in the
        answer was not seen, or seen by name only (size unknown). ``status`` asks for
        every target at once."""
        key = self._storages(storage_key).key
        found = self._found.get(storage_key, {})
        answers: dict[str, Stat | None] = {}
        for url in urls:
            name = key(url)
            stat = found.get(name, _UNSEEN)
            if stat is _UNSEEN:
                if self._known(storage_key, name) is False:
                    answers[url] = None
            elif stat is not None:
                answers[url] = stat
        return answers

STORAGES = Registry(
    "storage",
    "targetrun.storage",
    {
        "local": Entry("targetrun.storage.local:LocalStorage"),
        "inline": Entry("targetrun.storage.inline:InlineStorage"),
        "fsspec": Entry("targetrun.storage.fsspec:FsspecStorage", "Install targetrun to get fsspec."),
    },
)


def check_protocol(protocol: str) -> None:
    """Refuse a URL protocol no storage serves, before anything runs: a storage registered
    under the protocol's own name (a plugin) serves it, else fsspec must know it and its
    library be installed (:func:`targetrun.storage.fsspec.check_protocol`: exit 2, naming
    the extra to install). Nothing is imported but fsspec's table of protocols."""
    if protocol == "file" or (protocol != "fsspec" and protocol in STORAGES):
        return
    STORAGES.get("fsspec").check_protocol(protocol)
