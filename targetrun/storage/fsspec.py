"""Any fsspec filesystem (memory://, s3://, gs://, ...), imported lazily.

* Existence: ``fs.info`` answers one key; only ``FileNotFoundError`` means missing,
  anything else (403, DNS, timeout) is a :class:`StorageError`. On object stores a missing
  *bucket* also reads as "not found" to s3fs/gcsfs, so "missing" is believed only once
  the bucket is known to exist (one check per bucket). Batches are answered by listings
  chosen per shape (see ``TargetChecker``), with sizes and ages for ``status``. On S3 and
  GCS a listing is made request by request (``list_objects_v2`` / ``objects.list``, 1,000
  keys each), each starting at the first target not yet answered (:func:`_seek`); other
  filesystems list whole.
* No hidden caches: each storage gets its own filesystem instance
  (``skip_instance_cache``) without a listings cache, so a check never answers from an
  earlier listing.
* Writes: the value is written to a local temporary file and then uploaded with one
  ``put_file`` (one PUT, or a multipart upload completed only at the end), so the key
  never holds a partial object.
"""

from __future__ import annotations

import contextlib
import errno
import os
import tempfile
from collections.abc import Callable, Iterator, Mapping
from typing import Any, BinaryIO
from urllib.parse import urlsplit

from targetrun import redact, scratch
from targetrun.envvars import expand_env
from targetrun.errors import MissingExtraError, SpecError, StorageError, UsageError, did_you_mean, install_hint
from targetrun.storage.base import ENDPOINT_HINT, Listing, Stat, Storage, endpoint_problem, shown
from targetrun.storage.local import _REFUSED, _refusal, _refused_as_storage_error

EXTRAS = {"s3": "s3", "s3a": "s3", "gs": "gcs", "gcs": "gcs"}
BUCKETED = frozenset(("s3", "s3a", "gs", "gcs", "az", "abfs", "abfss", "oss"))


class FsspecStorage(Storage):
    def __init__(self, protocol: str, options: Mapping[str, Any] | None = None, *,
                 where: str = "storage options", file: str | None = None) -> None:
        self.protocol = protocol
        self.options = dict(options or {})
        self.where = where  # what a message calls the options (results.NAME.options), and in which file
        self.file = file
        self._fs: Any = None
        self._buckets: set[str] = set()  # known to exist
        # a filesystem per server a URL names (ftp://user@host:port/...): by what the URL gives
        self._hosted: dict[tuple[tuple[str, str], ...], Any] = {}

    @staticmethod
    def check_protocol(protocol: str) -> None:
        """See :func:`check_protocol`: the registry asks the class, so nothing else is imported."""
        check_protocol(protocol)

    def __getstate__(self) -> dict[str, Any]:
        return {"protocol": self.protocol, "options": self.options, "where": self.where, "file": self.file,
                "_fs": None, "_buckets": set(), "_hosted": {}}

    @property
    def fs(self) -> Any:
        if self._fs is None:
            self._fs = _filesystem(self.protocol, self.options, self.where, self.file)
        return self._fs

    def _fs_of(self, url: str) -> Any:
        """The filesystem that serves ``url``: for a protocol whose paths do not carry the
        server (ftp://, sftp://, hdfs://, smb://), the host, port and user the URL names
        reach the filesystem -- as fsspec's ``url_to_fs`` does, the result's options
        winning -- one filesystem per server; else the storage's one filesystem."""
        given = _url_options(self.protocol, url)
        if not given:
            return self.fs
        kept = tuple(sorted((name, repr(value)) for name, value in given.items()))
        if kept not in self._hosted:
            self._hosted[kept] = _filesystem(self.protocol, self.options, self.where, self.file, given=given)
        return self._hosted[kept]

    def _path(self, url: str) -> str:
        return str(self.fs_class._strip_protocol(url))

    @property
    def fs_class(self) -> Any:
        return type(self.fs) if self._fs is not None else _filesystem_class(self.protocol)

    def info(self, url: str) -> Stat | None:
        fs = self._fs_of(url)  # outside the try: a missing extra is its own error, not "cannot tell"
        # the key a listing knows it by (``key``): gcsfs keeps a trailing slash, and read
        # gs://b/out/x/ as the object "out/x/" -- missing where out/x is a file -- which a
        # listing (and s3fs, which strips it) finds
        path = self._path(url).rstrip("/") or self._path(url)
        try:
            info = _gcs_info(fs, path) if self.protocol in ("gs", "gcs") else fs.info(path)
        except FileNotFoundError:
            self._check_bucket(url)
            return None
        except Exception as exc:  # anything else is "cannot tell", never "missing"
            raise _cannot_tell(url, exc) from None
        return _stat(info)

    def key(self, url: str) -> str:
        """The name a listing knows ``url`` by: its path, after the server (``//user@host:port``,
        never a password) where the URL names one -- two servers' ``/out/a.json`` differ."""
        return _server(self.protocol, url) + self._path(url).rstrip("/")

    def listing(self, parent: str) -> frozenset[str]:
        return frozenset(self.listing_stats(parent))

    def listing_stats(self, parent: str) -> dict[str, Stat]:
        fs = self._fs_of(parent)
        try:
            entries = fs.ls(self._path(parent), detail=True)
        except FileNotFoundError:
            self._check_bucket(parent)
            return {}
        except Exception as exc:
            raise _cannot_tell(parent, exc) from None
        server = _server(self.protocol, parent)
        return {server + str(fs._strip_protocol(e["name"])).rstrip("/"): _stat(e) for e in entries}

    def list_pages(self, parent: str, *, recursive: bool, max_requests: int,
                   urls: list[str] | None = None) -> Listing | None:
        page = {"s3": _s3_page, "s3a": _s3_page, "gs": _gcs_page, "gcs": _gcs_page}.get(self.protocol)
        if page is None:
            return super().list_pages(parent, recursive=recursive, max_requests=max_requests)
        fs = self.fs
        bucket, _, prefix = self._path(parent).rstrip("/").partition("/")
        prefix = prefix + "/" if prefix else ""
        keys = {self.key(url) for url in urls or ()}
        wanted = [k.partition("/")[2] for k in keys if k.startswith(bucket + "/")]
        try:
            found, decided = _seek(lambda start: page(fs, bucket, prefix, recursive, start), wanted, max_requests)
        except FileNotFoundError:
            self._check_bucket(parent)
            return Listing({})
        except Exception:
            # Refused (a grant to read objects but not to list them: 403) or failed: a listing
            # only saves requests, so each key is checked on its own, as it would have been
            # without it -- what exists is told, what that check cannot tell stays "cannot
            # tell". (It was "cannot tell" for every target, even those a read found.)
            return None
        entries: dict[str, Stat | None] = {}
        root = f"{bucket}/{prefix}".rstrip("/")
        for key, stat in found:
            name = f"{bucket}/{key}".rstrip("/")
            entries[name] = stat
            if recursive:  # every folder on the way down exists too (a target may be a folder)
                while (name := name.rsplit("/", 1)[0]) != root and len(name) > len(root) and name not in entries:
                    entries[name] = Stat(0, None)
        if not entries and decided is None:
            self._check_bucket(parent)
        return Listing(entries, None if decided is None else frozenset(f"{bucket}/{k}" for k in decided))

    def _check_bucket(self, url: str) -> None:
        """A missing bucket is "cannot tell" (a typo, or no permission), never "missing"."""
        if self.protocol not in BUCKETED:
            return
        bucket = self._path(url).split("/", 1)[0]
        if bucket in self._buckets:
            return
        try:
            self.fs.info(bucket)
        except FileNotFoundError:
            raise StorageError(f"cannot tell whether {_mask(url)} exists: the bucket {bucket!r} does not exist",
                               hint="Check the bucket name, or create the bucket.") from None
        except Exception as exc:
            raise _cannot_tell(url, exc) from None
        self._buckets.add(bucket)

    def open_read(self, url: str) -> BinaryIO:
        fs = self._fs_of(url)
        try:
            return fs.open(self._path(url), "rb")  # type: ignore[no-any-return]
        except FileNotFoundError:
            raise
        except Exception as exc:
            raise StorageError(f"cannot read {_mask(url)}: {exc}") from None

    @contextlib.contextmanager
    def atomic_write(self, url: str) -> Iterator[BinaryIO]:
        with _refused_as_storage_error(url, _temporary_refused):
            fd, tmp = scratch.mkstemp("out")  # (named for this process: see targetrun/scratch.py)
        try:
            with _refused_as_storage_error(url, _temporary_refused), os.fdopen(fd, "wb") as f:  # closing flushes: a full disk can answer there too
                yield f
            self.put_file(tmp, url)
        finally:
            with contextlib.suppress(OSError):
                os.remove(tmp)

    @contextlib.contextmanager
    def staged(self, url: str) -> Iterator[str]:
        """A local path for a shell command's ``{output}``, uploaded on success. A command
        that failed because the local temporary folder took no more (full, read-only) failed
        for the storage's sake, as on local disk (storage/local.py ``stage_output``)."""
        with super().staged(url) as path:
            try:
                yield path
            except Exception:
                refusal = _refusal(os.path.dirname(path))
                if refusal is not None:
                    raise _temporary_refused(url, OSError(refusal, os.strerror(refusal))) from None
                raise

    def put_file(self, local_path: str, url: str) -> None:
        path = self._path(url)
        fs = self._fs_of(url)
        try:
            parent = path.rsplit("/", 1)[0]
            if "/" in path:
                fs.makedirs(parent, exist_ok=True)
            fs.put_file(local_path, path)
        except Exception as exc:
            raise StorageError(f"cannot write {_mask(shown(url))}: {exc}") from None

    def commit(self, staging: str, url: str) -> None:
        """A server-side move (a copy and a delete on object stores): the target key is
        written in one request, so it never holds a partial object."""
        fs = self._fs_of(url)
        renames = self.protocol in ("file", "local") or _renames(fs)
        try:
            if renames:  # a rename; a copy would be visible half-done (FTP and SFTP copy nothing on the server)
                fs.mv(self._path(staging), self._path(url))
            else:  # not fs.mv or fs.copy: their expansion costs requests (it hung on the GCS emulator) and
                # reads a key as a glob -- `[ab]` or `?` in a value copied the checkpoint into a folder
                fs.cp_file(self._path(staging), self._path(url))
        except Exception as exc:
            raise StorageError(f"cannot move the new checkpoint onto {_mask(url)}: {exc}") from None
        if not renames:
            try:
                fs.rm_file(self._path(staging))
            except FileNotFoundError:
                pass
            except Exception as exc:  # the copy is done: say so, not "cannot move"
                raise StorageError(
                    f"the new checkpoint is at {_mask(url)}, but its staged copy {_mask(staging)} could not be "
                    f"removed: {exc}",
                    hint="The next run removes it and keeps the checkpoint (its record vouches for it).") from None

    def discard(self, staging: str) -> None:
        fs = self._fs_of(staging)
        try:
            fs.rm_file(self._path(staging))
        except FileNotFoundError:
            pass
        except Exception as exc:
            raise StorageError(f"cannot remove {_mask(staging)}: {exc}") from None

    def is_folder(self, url: str) -> bool:
        try:
            return bool(self._fs_of(url).isdir(self._path(url)))
        except FileNotFoundError:
            return False
        except Exception as exc:
            raise StorageError(f"cannot tell whether {_mask(url)} is a folder: {exc}") from None

    def remove(self, url: str) -> None:
        fs = self._fs_of(url)
        try:
            # one key, never fs.rm: that reads the key as a glob and removes folders it matches
            # (invalidating `reports/*.txt` removed every report, not the one targetrun wrote)
            fs.rm_file(self._path(url))
        except FileNotFoundError:
            pass
        except Exception as exc:
            raise StorageError(f"cannot remove {_mask(url)}: {exc}") from None


Page = tuple[list[tuple[str, Stat | None]], bool]  # (keys in order, with sizes and ages; more after them?)


def _seek(page: Callable[[str | None], Page], wanted: list[str],
          max_requests: int) -> tuple[list[tuple[str, Stat | None]], set[str] | None]:
    """Answer ``wanted`` keys with listing requests that each start at the first key not
    yet answered, so that every request answers at least that one. Returns what was found
    and the keys decided (None: the listing covered everything).

    A key is decided once seen, or seen with keys below it (``key/...``: a target may be
    a folder), or once the listing has passed it and everything below it. A request that
    fails after the first keeps what the earlier ones decided (the rest are checked per
    key); the first one's error is raised.
    """
    found: list[tuple[str, Stat | None]] = []
    decided: set[str] = set()
    seen: set[str] = set()  # keys found, and every folder above them
    todo = sorted(set(wanted))
    i = 0
    start = todo[0] if todo else None
    for asked in range(max_requests):
        try:
            entries, more = page(start)
        except Exception:
            if not asked:
                raise
            return found, decided
        found += entries
        if not more:
            if start is None:
                return found, None
            decided.update(todo[i:])  # everything from ``start`` on was listed
            return found, decided
        for key, _ in entries:
            while key and key not in seen:
                seen.add(key)
                key = key.rpartition("/")[0]
        last = max((k for k, _ in entries), default="")
        before = i
        while i < len(todo) and (todo[i] in seen or (last > todo[i] + "/" and not last.startswith(todo[i] + "/"))):
            decided.add(todo[i])
            i += 1
        if i >= len(todo):
            break  # all answered
        if todo[i] < last < todo[i] + "/" and (i + 1 == len(todo) or todo[i + 1] > todo[i] + "/"):
            # The page ended among keys that extend the target's name ("t-0001" sorts between
            # "t" and "t/"): it passed where "t" itself would be, so only "t/..." is left to
            # tell. The next request begins there -- begun at "t" again it would page through
            # those keys, or make no progress and leave every target to a per-key check. (Not
            # when another target is among those keys: the jump would pass it unseen.)
            start = todo[i] + "/"
            continue
        if i == before:
            break  # no progress: the rest are checked per key
        start = todo[i]
    return found, decided


def _s3_page(fs: Any, bucket: str, prefix: str, recursive: bool, start: str | None) -> Page:
    """One ``list_objects_v2`` request: up to 1,000 keys under ``prefix`` from ``start`` on."""
    from fsspec.asyn import sync  # type: ignore[import-untyped]

    kwargs: dict[str, Any] = {"Bucket": bucket, "Prefix": prefix, "MaxKeys": 1000}
    if not recursive:
        kwargs["Delimiter"] = "/"
    if start and start > prefix:  # StartAfter is exclusive: begin just before ``start``
        kwargs["StartAfter"] = _just_before(start)
    page = sync(fs.loop, fs._call_s3, "list_objects_v2", **kwargs)  # errors come translated
    keys: list[tuple[str, Stat | None]] = [(p["Prefix"].rstrip("/"), Stat(0, None)) for p in page.get("CommonPrefixes", [])]
    keys += [(c["Key"], Stat(c.get("Size"), _epoch(c.get("LastModified")))) for c in page.get("Contents", [])]
    return _in_order(keys), bool(page.get("IsTruncated"))


def _in_order(keys: list[tuple[str, Stat | None]]) -> list[tuple[str, Stat | None]]:
    """A page's keys in name order, a folder ahead of an object of the same name.

    ``out/a`` can be an object and a folder (``out/a/c``): a listing with a delimiter
    has both, under one name. Sorted as pairs, their stats were compared (a TypeError:
    every target of the prefix was "cannot tell"); kept in this order, the object's size
    and age are the ones the listing keeps, as ``info`` tells them.

    >>> _in_order([("out/a", Stat(0, None)), ("out/", Stat(1, 2.0)), ("out/a", Stat(5, 1.0))])
    [('out/', Stat(size=1, mtime=2.0, signature=None)), ('out/a', Stat(size=0, mtime=None, signature=None)), ('out/a', Stat(size=5, mtime=1.0, signature=None))]
    """
    return sorted(keys, key=lambda entry: entry[0])  # stable: callers put folders first


def _temporary_refused(url: str, exc: OSError) -> StorageError:
    """A write to the local temporary file that the disk refuses (full, over the file size
    limit, read-only) is the storage's failure (exit 3) naming the target, not the task's."""
    reason, todo = _REFUSED[exc.errno or 0] if exc.errno in _REFUSED else (exc.strerror or str(exc), "")
    return StorageError(
        f"cannot write {_mask(shown(url))}: {reason} ({exc.strerror or exc}) in the local temporary folder "
        f"{tempfile.gettempdir()}, where it is written before the upload; nothing was uploaded",
        hint=todo if exc.errno in (errno.EMFILE, errno.ENFILE) else
        "Free space there, or set TMPDIR to a folder with room, and run again.")


def _gcs_info(fs: Any, path: str) -> Any:
    """gcsfs's ``info``, one request at a time: the object's GET, and only when there is no
    such object the one-key listing that tells a folder. gcsfs sends both at once and keeps
    the first answer, so an existing target cost two requests (sometimes one, as the race
    went) -- twice a per-key check's one."""
    get_object = getattr(fs, "_get_object", None)
    if get_object is None or "/" not in path.strip("/"):
        return fs.info(path)  # a bucket, or a gcsfs without it: its own way
    from fsspec.asyn import sync

    try:
        return sync(fs.loop, get_object, path)
    except FileNotFoundError:
        pass
    bucket, key, _ = fs.split_path(path)
    page = sync(fs.loop, fs._call, "GET", "b/{}/o", bucket, json_out=True, prefix=key.rstrip("/") + "/", maxResults=1)
    if page.get("items") or page.get("prefixes"):  # a key below it, or a marker ``key/``
        return {"name": path, "size": 0, "type": "directory"}
    raise FileNotFoundError(path)


def _just_before(key: str) -> str:
    """A string that sorts just before ``key`` (S3 orders keys by their UTF-8 bytes, which is
    code point order): its last letter one lower, then the highest code point many times. Not
    ``key[:-1]``: every key sharing all but the last letter sorts between that and ``key``
    (``t0000``..``t0999`` before ``t1``), and a listing starting there paged through them
    all -- more requests than checking the targets one by one.

    >>> _just_before("crowd/t1") < "crowd/t1" and "crowd/t0999" < _just_before("crowd/t1")
    True
    >>> _just_before("a\ue000") == "a"  # one lower would be a surrogate, not a letter UTF-8 has
    True
    """
    last = ord(key[-1]) - 1
    if last <= 0 or 0xD800 <= last <= 0xDFFF:
        return key[:-1]
    return key[:-1] + chr(last) + "\U0010ffff" * 8


def _gcs_page(fs: Any, bucket: str, prefix: str, recursive: bool, start: str | None) -> Page:
    """Like :func:`_s3_page`, on GCS's JSON API (``objects.list``, ``startOffset`` inclusive)."""
    from fsspec.asyn import sync

    params: dict[str, Any] = {"prefix": prefix or None, "maxResults": 1000}
    if not recursive:
        params["delimiter"] = "/"
    if start and start > prefix:
        params["startOffset"] = start
    page = sync(fs.loop, fs._call, "GET", "b/{}/o", bucket, json_out=True, **params)
    keys: list[tuple[str, Stat | None]] = [(p.rstrip("/"), Stat(0, None)) for p in page.get("prefixes", [])]
    keys += [(o["name"], Stat(int(o["size"]), _epoch(o.get("updated")))) for o in page.get("items", [])]
    return _in_order(keys), bool(page.get("nextPageToken"))


def check_protocol(protocol: str) -> None:
    """Refuse a URL protocol fsspec does not know (:class:`UsageError`), or one whose
    library is not installed (:class:`MissingExtraError` naming the extra), without
    importing that library: fsspec's own table (``known_implementations``, which also
    holds the ``fsspec.specs`` entry points of installed packages) says which module
    serves a protocol, and ``find_spec`` whether it is there. ``validate`` asks this for
    every URL of a Pipelinefile, and every filesystem is opened through it."""
    import importlib.util

    try:
        from fsspec.registry import known_implementations, registry  # type: ignore[import-untyped]
    except ImportError:  # pragma: no cover - fsspec is a core dependency
        raise MissingExtraError("fsspec is not installed", hint="Install targetrun.") from None
    if protocol in registry:  # registered at run time (fsspec.register_implementation): imported already
        return
    known = known_implementations.get(protocol)
    if known is None:
        names = sorted(set(known_implementations) | set(registry))
        raise UsageError(
            f"unknown storage protocol {protocol}://",
            hint=did_you_mean(protocol, names)
            or f"Use a local path or a URL of a protocol fsspec knows: {', '.join(n + '://' for n in names)}.",
        )
    module = str(known["class"]).rpartition(".")[0]
    try:
        found = importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # its parent package is missing (or blocked)
        found = False
    if not found:
        raise MissingExtraError(f"the {protocol}:// filesystem is not installed", hint=_install_hint(protocol, known))


def _install_hint(protocol: str, known: Mapping[str, Any] | None) -> str:
    """Which extra to install for ``protocol``: targetrun's own, else what fsspec says."""
    if protocol in EXTRAS:
        return install_hint(EXTRAS[protocol])
    said = str((known or {}).get("err") or "").strip()
    return f"{said.rstrip('.')}." if said else f"Install the fsspec implementation of {protocol}://."


def _renames(fs: Any) -> bool:
    """Whether a filesystem copies nothing on the server but renames there (fsspec's FTP
    and SFTP filesystems: no ``cp_file`` of their own, an ``mv`` that is one rename). An
    async one (s3, gs) has its ``cp_file`` made on the instance, from ``_cp_file``."""
    from fsspec.spec import AbstractFileSystem  # type: ignore[import-untyped]

    return getattr(fs.cp_file, "__func__", None) is AbstractFileSystem.cp_file and \
        getattr(fs.mv, "__func__", None) is not AbstractFileSystem.mv


_CLASSES: dict[str, Any] = {}


def _filesystem_class(protocol: str) -> Any:
    """fsspec's filesystem class of ``protocol`` (exit 2 or 3 naming what to install)."""
    import fsspec  # type: ignore[import-untyped]

    known = _CLASSES.get(protocol)
    if known is not None and fsspec.registry.get(protocol) is known:  # not replaced since
        return known

    check_protocol(protocol)
    try:
        cls = fsspec.get_filesystem_class(protocol)
    except ImportError:  # installed, but a library it needs is not (http:// without aiohttp)
        from fsspec.registry import known_implementations

        raise MissingExtraError(
            f"the {protocol}:// filesystem is not installed",
            hint=_install_hint(protocol, known_implementations.get(protocol)),
        ) from None
    except ValueError:
        raise UsageError(f"unknown storage protocol {protocol}://", hint="Use a local path or an fsspec URL such as s3:// or gs://.") from None
    _CLASSES[protocol] = cls
    return cls


def _url_options(protocol: str, url: str) -> dict[str, Any]:
    """What a URL itself tells its filesystem (fsspec's ``_get_kwargs_from_urls``): the
    host, port, user and password of ftp://user:pw@host:port/path; nothing for a protocol
    whose paths keep what follows ``://`` (s3://, gs://: the bucket; memory://, http://)."""
    if not _takes_server(protocol):
        return {}
    try:
        given = _filesystem_class(protocol)._get_kwargs_from_urls(url)
    except (ValueError, TypeError):  # a port that is not a number: the filesystem says so when used
        return {}
    return dict(given) if isinstance(given, Mapping) else {}


_TAKES_SERVER: dict[str, bool] = {}


def _takes_server(protocol: str) -> bool:
    """Whether ``protocol``'s filesystem takes the part after ``://`` as its server, not
    as the start of a path: fsspec strips it from the path (once per protocol)."""
    if protocol not in _TAKES_SERVER:
        stripped = str(_filesystem_class(protocol)._strip_protocol(f"{protocol}://server.invalid/a/b"))
        _TAKES_SERVER[protocol] = "server.invalid" not in stripped
    return _TAKES_SERVER[protocol]


def _server(protocol: str, url: str) -> str:
    """``//user@host:port`` of a URL whose filesystem takes its server from the URL (never
    its password), or "" -- the part of a listing's names that tells two servers apart."""
    if not _takes_server(protocol):
        return ""
    user, at, host = urlsplit(url).netloc.rpartition("@")
    return f"//{user.partition(':')[0]}{at}{host}"


def _filesystem(protocol: str, options: Mapping[str, Any], where: str = "storage options",
                file: str | None = None, *, given: Mapping[str, Any] | None = None) -> Any:
    """The filesystem of ``protocol`` with the result's ``options`` (``${VAR}`` expanded),
    over what a URL ``given`` (host, port, user: see :func:`_url_options`)."""
    cls = _filesystem_class(protocol)
    settings = {"skip_instance_cache": True, **(given or {}), **_expand_env(options, where, file)}
    redact.register_options(settings, expand=False)  # a library's message may quote any of them
    if protocol in BUCKETED:
        settings.setdefault("use_listings_cache", False)
    try:
        return cls(**settings)
    except Exception as exc:
        raise StorageError(f"cannot open {protocol}:// storage: {exc}") from None


def _expand_env(options: Mapping[str, Any], where: str = "storage options", file: str | None = None) -> dict[str, Any]:
    """``${VAR}`` in option strings comes from the environment, so no secret lives in the
    file; an unset one is exit 2 naming it, the option and the file
    (:func:`targetrun.envvars.expand_env`)."""

    expanded: dict[str, Any] = {}
    for key, value in options.items():
        if isinstance(value, str):
            expanded[key] = expand_env(value, f"{where}.{key}", file=file)
            if key == "endpoint_url" and "$" in value and (problem := endpoint_problem(expanded[key])) is not None:
                raise SpecError(f"not a URL a client can reach once expanded ({problem})",
                                file=file, key=f"{where}.{key}", hint=ENDPOINT_HINT)
        elif isinstance(value, Mapping):
            expanded[key] = _expand_env(value, f"{where}.{key}", file)
        else:
            expanded[key] = value
    return expanded


def _stat(info: Mapping[str, Any]) -> Stat:
    mtime = info.get("mtime") or info.get("LastModified") or info.get("updated") or info.get("created")
    return Stat(info.get("size"), _epoch(mtime))


def _epoch(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if hasattr(value, "timestamp"):
        return float(value.timestamp())
    import datetime as dt

    try:
        return dt.datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def _mask(url: str) -> str:
    """Hide credentials embedded in a URL (``s3://key:secret@bucket``)."""
    return redact.redact(url)


def _cannot_tell(url: str, exc: BaseException) -> StorageError:
    return StorageError(
        f"cannot tell whether {_mask(shown(url))} exists: {type(exc).__name__}: {exc}",
        hint="Check the credentials, network and bucket; targetrun never treats this as missing.",
    )
