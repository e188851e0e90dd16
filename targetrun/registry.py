"""Lazy registries: a name maps to ``"module:attribute"`` plus an install hint.

Built-ins and plugins share one table per kind. Nothing is imported until a name is
looked up, so ``targetrun --help`` never pays for s3fs, redis or dask. Plugins add names
through entry points (groups ``targetrun.storage``, ``targetrun.cache_stores``,
``targetrun.executors``, ``targetrun.serializers``), which are read only when a name is
not a built-in (reading entry points costs tens of ms).

An entry may also say which URL schemes it serves (the state stores: ``redis://`` is
the ``redis`` store, a plain path the ``sqlite`` one), so callers look a URL up here
instead of keeping a list of names of their own; a plugin serves the scheme of its name.
"""

from __future__ import annotations

import importlib
import importlib.util
from dataclasses import dataclass
from typing import Any

from targetrun.errors import MissingExtraError, UsageError, did_you_mean


@dataclass(frozen=True)
class Entry:
    path: str  # "package.module:Attribute"
    hint: str | None = None  # what to do when its module cannot be imported (without an extra)
    schemes: tuple[str, ...] = ()  # URL schemes this entry serves; "" is a plain path
    extra: str | None = None  # the targetrun extra that installs what it needs ...
    requires: tuple[str, ...] = ()  # ... namely these libraries (its module may import them late)


class Registry:
    """One table of named implementations for one kind (storage, executors, ...)."""

    def __init__(self, kind: str, group: str, entries: dict[str, Entry]) -> None:
        self.kind = kind
        self.group = group
        self._entries = dict(entries)
        self._builtins = tuple(entries)  # in the order given: the order lookups try them
        self._loaded: dict[str, Any] = {}
        self._plugins_read = False

    def register(self, name: str, obj: Any, *, clobber: bool = False) -> None:
        if not clobber and (name in self._entries or name in self._loaded):
            raise ValueError(f"{self.kind} {name!r} is already registered")
        self._loaded[name] = obj

    def names(self, *, plugins: bool = False) -> list[str]:
        if plugins:
            self._read_plugins()
        return sorted(set(self._entries) | set(self._loaded))

    def builtins(self) -> list[str]:
        """The built-in names, in the order they were declared (no entry point is read)."""
        return list(self._builtins)

    def for_scheme(self, scheme: str) -> str | None:
        """The name that serves URLs of ``scheme`` ("" for a plain path): the built-in
        entry that declares it, else a plugin registered under the scheme itself.

        >>> table = Registry("store", "no.such.group", {"db": Entry("m:C", schemes=("", "db"))})
        >>> table.for_scheme(""), table.for_scheme("db"), table.for_scheme("nope")
        ('db', 'db', None)
        """
        for name, entry in self._entries.items():
            if scheme in entry.schemes:
                return name
        return scheme if scheme and scheme in self else None

    def __contains__(self, name: str) -> bool:
        if name in self._entries or name in self._loaded:
            return True
        self._read_plugins()
        return name in self._entries

    def get(self, name: str) -> Any:
        if name in self._loaded:
            return self._loaded[name]
        if name not in self:
            raise UsageError(
                f"unknown {self.kind} {name!r}",
                hint=did_you_mean(name, self.names()) or f"Known: {', '.join(self.names())}.",
            )
        entry = self._entries[name]
        module_name, _, attr = entry.path.partition(":")
        try:
            for library in entry.requires:  # now, not half-way through starting it (dask's are late)
                self._import(name, entry, library)
            module = importlib.import_module(module_name)
        except ImportError as exc:
            if entry.hint is None:
                raise
            raise MissingExtraError(f"cannot load {self.kind} {name!r} ({exc})", hint=entry.hint) from None
        obj = getattr(module, attr)
        self._loaded[name] = obj
        return obj

    def missing(self, name: str) -> MissingExtraError | None:
        """Why ``name`` could not be used here -- a library it requires is not installed --
        found without importing anything (``validate`` asks, and must stay cheap), or None.

        >>> table = Registry("executor", "no.such.group", {
        ...     "ok": Entry("m:C", requires=("json",)), "far": Entry("m:C", extra="far", requires=("no_such_lib_x",))})
        >>> table.missing("ok") is None, str(table.missing("far"))
        (True, "the far executor needs the no_such_lib_x library, which is not installed. Install it with: pip install 'targetrun[far]'")
        """
        entry = self._entries.get(name)
        for library in entry.requires if entry else ():
            try:
                found = importlib.util.find_spec(library) is not None
            except (ImportError, ValueError):  # a parent package is missing, or blocked
                found = False
            if not found:
                return self._needs(name, entry, library) if entry else None
        return None

    def _import(self, name: str, entry: Entry, library: str) -> None:
        try:
            importlib.import_module(library)
        except ImportError:
            raise self._needs(name, entry, library) from None

    def _needs(self, name: str, entry: Entry, library: str) -> MissingExtraError:
        return MissingExtraError.needs(f"the {name} {self.kind}", library, entry.extra or name)

    def _read_plugins(self) -> None:
        if self._plugins_read:
            return
        self._plugins_read = True
        from importlib.metadata import entry_points

        for ep in entry_points(group=self.group):
            self._entries.setdefault(ep.name, Entry(ep.value))
