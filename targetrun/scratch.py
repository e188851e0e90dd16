"""Local temporary files and folders that name their process, and the sweep of a dead one's.

A write to an object store goes through ``$TMPDIR`` (the value is written to a local file,
then uploaded; a shell command's ``{output}`` is a local path, uploaded when it exits 0;
an input is fetched to a local copy). A process killed meanwhile (``kill -9``, the OOM
killer, a lost machine's container restarted) cannot remove its file, and nothing could
tell it from a live run's: it stayed forever. So each is named
``targetrun-KIND-TAG-PID-RANDOM``: ``TAG`` names this host and PID namespace (a ``$TMPDIR``
shared between containers holds other namespaces' PIDs), ``PID`` the process that made it.
:func:`sweep` -- run by the first temporary file of each process and before a run --
removes those of this host and namespace whose process no longer exists, and never one
whose process does (a reused PID keeps a dead one's file: the safe side). Only entries
this user owns are touched, a symlink is removed as itself, never followed.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import stat
import tempfile
import threading

from targetrun import liveness

KINDS = ("out", "stage", "input")
PID_LIMIT = 1 << 22  # the largest process number Linux gives (PID_MAX_LIMIT)
_swept = False
_lock = threading.Lock()


def _tag() -> str:
    place = liveness.owner_id().rsplit("/", 1)[0]  # host/pidns
    return hashlib.sha256(place.encode()).hexdigest()[:8]


def _prefix(kind: str) -> str:
    return f"targetrun-{kind}-{_tag()}-{os.getpid()}-"


def mkstemp(kind: str) -> tuple[int, str]:
    """``tempfile.mkstemp`` named for this process (see the module docstring)."""
    sweep_once()
    return tempfile.mkstemp(prefix=_prefix(kind))


def mkdtemp(kind: str) -> str:
    """``tempfile.mkdtemp`` named for this process (see the module docstring)."""
    sweep_once()
    return tempfile.mkdtemp(prefix=_prefix(kind))


def sweep_once() -> None:
    """:func:`sweep`, the first time this process asks."""
    global _swept
    with _lock:
        if _swept:
            return
        _swept = True
    sweep()


def sweep() -> int:
    """Remove the temporary files and folders of dead processes of this host and PID
    namespace from ``$TMPDIR``; return how many. Never fails: what cannot be listed or
    removed stays."""
    folder = tempfile.gettempdir()
    mine = re.compile(rf"targetrun-(?:{'|'.join(KINDS)})-{_tag()}-([0-9]+)-")
    try:
        names = os.listdir(folder)
    except OSError:
        return 0
    removed = 0
    uid = os.getuid()
    for name in names:
        found = mine.match(name)
        if found is None:
            continue
        pid = int(found.group(1))
        if not 0 < pid <= PID_LIMIT or pid == os.getpid() or liveness.pid_exists(pid):
            continue  # (a number no process has is no process of ours: a name someone else chose)
        path = os.path.join(folder, name)
        try:
            info = os.lstat(path)
            if info.st_uid != uid:
                continue
            if stat.S_ISDIR(info.st_mode):
                shutil.rmtree(path)
            else:
                os.unlink(path)
        except OSError:
            continue
        removed += 1
    return removed
