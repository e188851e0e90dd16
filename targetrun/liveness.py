"""Is a run (or a lock holder) still alive? By its heartbeat, and by its PID only when safe.

A run records its owner as ``host/pidns/pid`` -- the PID namespace (the inode of
``/proc/self/ns/pid``) matters because two containers on one machine can share a host name
and reuse each other's PIDs: a PID is only evidence about a process in *our* namespace.
While it runs, it renews a heartbeat in the state store. It is *dead* when its owner is a
process of our namespace on this host that no longer exists (``kill -9``: seen at once),
or when its heartbeat is older than the lease (any machine: seen once the lease passes).
"""

from __future__ import annotations

import os
import time


def new_run_id(now: float | None = None) -> str:
    """A run's id: its start time (UTC, to the second) and six random hex digits.

    >>> new_run_id(0.0)[:16]
    '19700101T000000-'
    """
    when = time.gmtime(time.time() if now is None else now)
    return f"{time.strftime('%Y%m%dT%H%M%S', when)}-{os.urandom(3).hex()}"


def owner_id() -> str:
    """``host/pidns/pid`` of this process."""
    return f"{host()}/{_pid_namespace()}/{os.getpid()}"


def is_dead(owner: str, heartbeat: float | None, now: float, lease: float) -> bool:
    """Whether the process behind ``owner`` is gone (see the module docstring).

    >>> is_dead("elsewhere/1/1", heartbeat=100.0, now=110.0, lease=60.0)
    False
    >>> is_dead("elsewhere/1/1", heartbeat=100.0, now=200.0, lease=60.0)
    True
    >>> is_dead("", heartbeat=None, now=200.0, lease=60.0)  # an old record: cannot tell
    False
    """
    if heartbeat is not None and now - heartbeat > lease:
        return True
    return gone_here(owner)


def gone_here(owner: str) -> bool:
    """Whether ``owner`` (``host/pidns/pid``) is a process of this host and PID namespace
    that no longer exists. Anything else -- another machine, another namespace, an owner
    written in another form -- cannot be told by its PID (False).

    >>> gone_here("another-host/4026531836/1")
    False
    """
    parts = owner.split("/")
    if len(parts) != 3 or not parts[2].isdigit():
        return False
    host_name, namespace, pid = parts
    if host_name != host() or namespace != _pid_namespace():
        return False
    return not pid_exists(int(pid))


def pid_exists(pid: int) -> bool:
    """Whether process ``pid`` exists in this PID namespace (one we may not signal counts)."""
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, OverflowError):  # (a number no process can have: a forged owner)
        return False
    except PermissionError:
        return True
    return True


def _pid_namespace() -> str:
    try:
        return str(os.stat("/proc/self/ns/pid").st_ino)
    except OSError:
        return "0"


def host() -> str:
    """This machine's name, as ``socket.gethostname()`` gives it: both ask the kernel's
    uname, and this way no run imports :mod:`socket` (a few ms) only for this."""
    global _HOST
    if _HOST is None:
        if hasattr(os, "uname"):
            _HOST = os.uname().nodename
        else:  # (Windows)
            import socket

            _HOST = socket.gethostname()
    return _HOST


_HOST: str | None = None
