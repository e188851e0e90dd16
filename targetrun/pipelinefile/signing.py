"""Spec cache files only this user's targetrun wrote: an HMAC with a key kept outside the project.

A cached spec decides what runs -- every ``shell:`` command and ``run:`` function, after
the placeholder checks the Pipelinefile passed -- and it sits in the project's
``.targetrun/spec/``, a folder CI caches restore, artifacts carry and other people's
tasks or checkouts may write. JSON cannot run code when it is read, but a rewritten
command runs when the spec is used. So a cache file carries an HMAC-SHA256 of its bytes
under a random key in the user's own cache folder (``$XDG_CACHE_HOME/targetrun/`` or
``~/.cache/targetrun/``, mode 0600, made on first use): a file whose MAC does not match
-- planted, rewritten, restored from elsewhere or written under another user's key -- is
a cache miss and the Pipelinefile is parsed. Without a usable key (no home folder, a
read-only one) nothing is cached: a parse costs time, a planted spec would cost more.

The MAC is the file's first JSON member, so the file stays one JSON document:
``{"mac":"<64 hex>",`` then the spec's own object from its second byte on.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import os
import stat
import tempfile

KEY_BYTES = 32
_HEAD = b'{"mac":"'
_MAC_HEX = 64
_BODY_AT = len(_HEAD) + _MAC_HEX + len(b'",')


def sign(data: bytes) -> bytes | None:
    """The cache file's bytes for the spec's JSON ``data`` (an object), or None without a key.

    >>> framed = _sign(b'{"a":1}', b"k" * 32)
    >>> framed[:8], framed[-8:], len(framed) == _BODY_AT + 6
    (b'{"mac":"', b'",\"a":1}', True)
    """
    return _sign(data, _user_key())


def verified(framed: bytes) -> bytes | None:
    """The spec's JSON if ``framed`` carries this user's MAC of it, else None.

    >>> key = b"k" * 32
    >>> _verified(_sign(b'{"a":1}', key) or b"", key), _verified((_sign(b'{"a":2}', key) or b"")[:-2] + b'3}', key)
    (b'{"a":1}', None)
    >>> _verified(_sign(b'{"a":1}', key) or b"", b"j" * 32)  # another user's key
    
    """
    return _verified(framed, _user_key())


def _sign(data: bytes, key: bytes | None) -> bytes | None:
    if key is None or not data.startswith(b"{") or data == b"{}":
        return None
    body = data[1:]
    mac = hmac.new(key, b"{" + body, hashlib.sha256).hexdigest().encode("ascii")
    return _HEAD + mac + b'",' + body


def _verified(framed: bytes, key: bytes | None) -> bytes | None:
    if key is None or not framed.startswith(_HEAD) or framed[_BODY_AT - 2:_BODY_AT] != b'",':
        return None
    data = b"{" + framed[_BODY_AT:]
    mac = hmac.new(key, data, hashlib.sha256).hexdigest().encode("ascii")
    return data if hmac.compare_digest(mac, framed[len(_HEAD):len(_HEAD) + _MAC_HEX]) else None


def _user_key() -> bytes | None:
    return _key_at(key_path())


def key_path() -> str:
    """Where this user's key is: in the user's cache folder, never in a project."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "targetrun", "spec-cache.key")


@functools.lru_cache(maxsize=4)
def _key_at(path: str) -> bytes | None:
    """The key at ``path``, made (random, 0600) if there is none yet; None when it cannot
    be made or is not this user's own, private, regular file."""
    try:
        return _read_key(path)
    except FileNotFoundError:
        pass
    except OSError:
        return None
    try:
        os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
        _create_key(path)
        return _read_key(path)
    except OSError:
        return None


def _read_key(path: str) -> bytes | None:
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or info.st_uid != os.getuid() or info.st_mode & 0o077:
            return None  # someone else's, or readable by others: not a secret of this user's
        key = os.read(fd, KEY_BYTES + 1)
    finally:
        os.close(fd)
    return key if len(key) == KEY_BYTES else None


def _create_key(path: str) -> None:
    """Write a new key under a temporary name and link it into place: two processes (or
    threads) making it at once end up with the same one (the first link wins)."""
    fd, temporary = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".key-")  # (mode 0600)
    try:
        os.write(fd, os.urandom(KEY_BYTES))
        os.fsync(fd)
    finally:
        os.close(fd)
    try:
        os.link(temporary, path)
    except FileExistsError:
        pass
    finally:
        os.unlink(temporary)
