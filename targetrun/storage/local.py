"""Local disk, with plain ``os`` calls (importing fsspec alone costs ~70 ms).

Writes go to a hidden temporary sibling (``.NAME.tmp-PID-RANDOM``) in the destination
folder and are renamed onto the target with ``os.replace`` only on success: a crash or a
``kill -9`` leaves at most a hidden temporary file, never a partial target. Batches of
existence checks list each folder once (see ``TargetChecker``).

A write that the disk refuses -- full (ENOSPC, EDQUOT), over the file size limit (EFBIG),
read-only (EROFS), not permitted (EACCES, EPERM), a folder where the file should be
(EISDIR) -- is a :class:`StorageError` (exit 3) naming the path and what to do, exactly
like a refused S3 write, and its temporary file is removed: it is not the task's failure.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
from collections.abc import Callable, Iterator
from typing import BinaryIO

from targetrun.errors import NO_MORE_FILES, NO_MORE_FILES_HINT, StorageError, UsageError
from targetrun.regularfile import NotRegularFile, open_regular
from targetrun.storage.base import Stat, Storage, shown

# Errors that mean "this path cannot exist", as opposed to "cannot tell".
_MISSING = (errno.ENOENT, errno.ENOTDIR)
# Errors of a write that the storage refused, with what to do about each.
_REFUSED = {
    errno.ENOSPC: ("the disk is full", "Free space on that disk, or point the result elsewhere, and run again."),
    errno.EDQUOT: ("the disk quota is used up", "Free space within your quota, or point the result elsewhere."),
    errno.EFBIG: ("the file is larger than this process may write",
                  "Raise the file size limit (`ulimit -f`) or the file system's limit, and run again."),
    errno.EROFS: ("the file system is read-only", "Mount it writable, or point the result at a writable folder."),
    errno.EACCES: ("permission denied", "Check the permissions of that folder, or point the result elsewhere."),
    errno.EPERM: ("the operation is not permitted", "Check the permissions of that folder, or point the result elsewhere."),
    errno.EISDIR: ("a folder is in the way", "Move or remove that folder (targetrun only replaces files), and run again."),
    errno.ENOTDIR: ("a file is in the way of a folder on that path", "Move or remove that file, and run again."),
    errno.EIO: ("the disk reported an I/O error", "Check the disk, and run again."),
    errno.EMFILE: (NO_MORE_FILES, NO_MORE_FILES_HINT[0].upper() + NO_MORE_FILES_HINT[1:] + ", and run again."),
    errno.ENFILE: (NO_MORE_FILES, NO_MORE_FILES_HINT[0].upper() + NO_MORE_FILES_HINT[1:] + ", and run again."),
}

# The rename that commits a target, as found when targetrun was imported: a library a task
# imports that patches ``os.replace`` (in targetrun's process) had every later target left in
# its staging file -- "ran", exit 0, nothing made.
_replace = os.replace


class LocalStorage(Storage):
    def __init__(self, **options: object) -> None:
        self.options = options

    def info(self, url: str) -> Stat | None:
        try:
            st = os.stat(url)
        except OSError as exc:
            if exc.errno in _MISSING:
                return None
            if exc.errno == errno.ENAMETOOLONG:  # the values that made the path are wrong, not the disk
                raise UsageError(f"the path {url[:120]}... is longer than this filesystem allows",
                                 hint="Shorten the values or names that make up this target.") from None
            raise _cannot_tell(url, exc) from None
        return Stat(st.st_size, st.st_mtime)

    def stat_many(self, urls: list[str], *, threshold: int = 3) -> dict[str, Stat | None]:
        """One ``os.stat`` per path, as :meth:`info` answers it (local disk has no listing
        with sizes to save calls on), with its signature (the status certificate's): the loop
        ``status`` runs over 10,000 targets, kept tight. Anything but success goes through
        :meth:`info` for its answer or error."""
        found: dict[str, Stat | None] = {}
        stat = os.stat
        for url in urls:
            try:
                st = stat(url)
            except (OSError, ValueError):
                found[url] = self.info(url)
            else:
                size = st.st_size  # signature: status_replay.signature(st), inlined
                found[url] = Stat(size, st.st_mtime, hash((size, st.st_mtime_ns, st.st_ctime_ns)))
        return found

    def parent(self, url: str) -> str:
        cut = url.rfind(os.sep)
        if cut > 0 and url[cut - 1] != os.sep:  # the usual /a/b/c.txt: what dirname returns
            return url[:cut]
        return os.path.dirname(url)

    def listing(self, parent: str) -> frozenset[str]:
        try:
            head = parent if parent.endswith(os.sep) or not parent else parent + os.sep
            return frozenset([head + name for name in os.listdir(parent)])  # os.path.join's result, faster
        except OSError as exc:
            if exc.errno in _MISSING:
                return frozenset()
            raise _cannot_tell(parent, exc) from None

    def open_read(self, url: str) -> BinaryIO:
        """The file at ``url``, which must be a regular file: a FIFO planted at a target
        would make the reader wait forever, and ``/dev/zero`` (or a symlink to it) never
        ends, so neither is read -- not even opened in a way that waits for a writer."""
        try:
            return open_regular(url)
        except FileNotFoundError:
            raise
        except IsADirectoryError as exc:
            raise StorageError(f"{url} is a folder, not a file: {exc.strerror}") from None
        except NotRegularFile as exc:
            raise StorageError(f"{url} is {exc.strerror}: targetrun does not read it",
                               hint="Move it away (targetrun writes targets as regular files), and run again.") from None
        except OSError as exc:
            raise _cannot_tell(url, exc) from None

    @contextlib.contextmanager
    def atomic_write(self, url: str) -> Iterator[BinaryIO]:
        with self._temporary_sibling(url) as tmp, _refused_as_storage_error(url):
            with open(tmp, "wb") as f:  # closing flushes: a full disk can answer there too
                yield f

    def put_file(self, local_path: str, url: str) -> None:
        self._makedirs(os.path.dirname(url))
        try:
            _replace(local_path, url)
        except OSError as exc:
            if exc.errno != errno.EXDEV:
                raise _write_failed(url, exc) from None
            with self._temporary_sibling(url) as tmp, _refused_as_storage_error(url):
                shutil.move(local_path, tmp)

    @contextlib.contextmanager
    def staged(self, url: str) -> Iterator[str]:
        with self._temporary_sibling(url) as tmp:
            yield tmp

    # -- two-phase checkpoint writes (see storage/base.py) ----------------------------

    @contextlib.contextmanager
    def stage_write(self, staging: str) -> Iterator[BinaryIO]:
        with self.stage_output(staging) as path, _refused_as_storage_error(shown(staging)):
            with os.fdopen(_create_new(path), "wb") as f:  # closing flushes: a full disk can answer there too
                yield f

    @contextlib.contextmanager
    def stage_output(self, staging: str) -> Iterator[str]:
        """``staging`` for a command to write itself. The disk's refusal then reaches the
        command, not targetrun (``sh: cannot create ...: Read-only file system``), so it is
        looked for here once the command failed: a folder that takes no new file (read-only,
        no permission) or a disk now full is the storage's failure, not the task's. (Only
        then: a trial file before every command cost a create and an unlink a task, which
        doubled the system time of a cold fan-out.)"""
        folder = os.path.dirname(staging)
        self._makedirs(folder)
        try:
            yield staging
        except Exception:
            refusal = _refusal(folder)  # before the partial file goes, which makes room again
            _discard(staging)
            if refusal is not None:
                raise _write_failed(shown(staging), OSError(refusal, os.strerror(refusal))) from None
            raise
        except BaseException:  # a stop: nothing to tell, only the staging file to remove
            _discard(staging)
            raise

    def commit(self, staging: str, url: str) -> None:
        try:
            _replace(staging, url)
        except OSError as exc:
            raise _write_failed(url, exc) from None

    def commit_inside(self, staging: str, url: str, root: str, real_root: str) -> None:
        """The move, into the target's folder as opened -- held by a descriptor, so a symlink
        swapped in after the look cannot redirect it -- once that folder is known to lie in
        ``real_root``. The run's last look (Placer.check_again) comes before the attempt; a
        symlink put in a value's folder while the attempt ran (by an upstream, anyone) led
        the move out. An open, a readlink and a close more than :meth:`commit`."""
        folder, name = os.path.split(url)
        staged_folder, staged_name = os.path.split(staging)
        try:
            fd = os.open(folder, _DIRECTORY)
        except OSError as exc:
            raise _write_failed(url, exc) from None
        try:
            where = _opened_at(fd, folder)
            if where is None or not (where == real_root or where.startswith(real_root.rstrip(os.sep) + os.sep)):
                raise UsageError(
                    f"cannot write {url}: its folder is now {where or 'somewhere else'}, outside {root} (a symlink "
                    "put there since the run planned); nothing was written there",
                    hint="A value may not lead a target out of its result location; check the symlinks in it.")
            if staged_folder != folder:  # (a staging file is always its target's sibling)
                _replace(staging, url)
            else:
                _replace(staged_name, name, src_dir_fd=fd, dst_dir_fd=fd)
        except OSError as exc:
            raise _write_failed(url, exc) from None
        finally:
            os.close(fd)

    def discard(self, staging: str) -> None:
        _discard(staging)

    def remove(self, url: str) -> None:
        try:
            if os.path.isdir(url) and not os.path.islink(url):
                shutil.rmtree(url)
            else:
                os.remove(url)
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise _cannot_tell(url, exc) from None

    def local_path(self, url: str) -> str | None:
        return url

    @contextlib.contextmanager
    def _temporary_sibling(self, url: str) -> Iterator[str]:
        folder, name = os.path.split(url)
        self._makedirs(folder)
        tmp = os.path.join(folder, f".{name}.tmp-{os.getpid()}-{os.urandom(4).hex()}")
        try:
            yield tmp
            if os.path.lexists(tmp):
                try:
                    _replace(tmp, url)
                except OSError as exc:
                    raise _write_failed(url, exc) from None
        except BaseException:
            _discard(tmp)
            raise

    def _makedirs(self, folder: str) -> None:
        if os.path.isdir(folder):  # the usual case, one stat (makedirs: a stat, a failed mkdir and a stat)
            return
        try:
            os.makedirs(folder, exist_ok=True)
        except OSError as exc:
            reason, todo = _REFUSED.get(exc.errno or 0, (exc.strerror or str(exc), None))
            if exc.errno == errno.EEXIST:  # makedirs says so when a file has the folder's name
                reason, todo = "a file is in the way", "Move or remove that file, and run again."
            raise StorageError(f"cannot create the folder {folder}: {reason}", hint=todo) from None


_DIRECTORY = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_CLOEXEC", 0)


def _opened_at(fd: int, folder: str) -> str | None:
    """Where the folder open as ``fd`` really is (``folder``: the path it was opened by);
    None when that cannot be told (it moved while asked)."""
    try:
        return os.readlink(f"/proc/self/fd/{fd}")  # Linux: the folder itself, whatever path led to it
    except OSError:
        pass
    real = os.path.realpath(folder)  # elsewhere: its real path, if that is still the folder held open
    try:
        now, held = os.stat(real), os.fstat(fd)
    except OSError:
        return None
    return real if (now.st_dev, now.st_ino) == (held.st_dev, held.st_ino) else None


def _create_new(path: str) -> int:
    """Create ``path`` for writing; never follow or reuse what is already there (a planted
    symlink at a staging name must not redirect the write)."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        return os.open(path, flags, 0o666)
    except OSError as exc:
        raise _write_failed(shown(path), exc) from None


def _refusal(folder: str) -> int | None:
    """Why ``folder`` takes no new file, as an errno, if it does not: a read-only mount,
    no permission to write there, or a disk with no block (or no inode) left for this
    process; None when it would take one."""
    try:
        st = os.statvfs(folder)
    except OSError:
        return None
    if st.f_flag & os.ST_RDONLY:
        return errno.EROFS
    if not os.access(folder, os.W_OK | os.X_OK):
        return errno.EACCES
    if st.f_bavail == 0 or (st.f_files > 0 and st.f_favail == 0):
        return errno.ENOSPC
    return None


def _discard(path: str) -> None:
    with contextlib.suppress(OSError):
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path)
        else:
            os.remove(path)


@contextlib.contextmanager
def _refused_as_storage_error(url: str, error: Callable[[str, OSError], StorageError] | None = None) -> Iterator[None]:
    """Turn the storage's refusal of a write (see ``_REFUSED``) into a StorageError
    (``error(url, exc)``; by default :func:`_write_failed`'s); other errors, such as a
    task's own, pass unchanged."""
    try:
        yield
    except OSError as exc:
        if exc.errno not in _REFUSED:
            raise
        raise (error or _write_failed)(url, exc) from None


def _write_failed(url: str, exc: OSError) -> StorageError:
    reason, todo = _REFUSED.get(exc.errno or 0, (exc.strerror or str(exc), "Check that path, and run again."))
    return StorageError(f"cannot write {url}: {reason} ({exc.strerror or exc}); nothing was written there", hint=todo)


def _cannot_tell(url: str, exc: OSError) -> StorageError:
    return StorageError(
        f"cannot tell whether {url} exists: {exc.strerror or exc}",
        hint="Check the permissions of that path; targetrun never treats this as missing.",
    )
