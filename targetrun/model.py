"""The typed model every other module speaks: specs, decisions, states, outcomes.

Three layers of objects, from the file to the run:

* :class:`PipelineSpec` / :class:`TaskSpec` -- what the Pipelinefile says, validated,
  templates still unrendered. A validated file is cached by content hash
  (:mod:`targetrun.pipelinefile.cachefile`).
* :class:`PlannedTask` -- one task of one run: its templates rendered against a
  :class:`RunContext`, its target resolved to a location in a storage.
* :class:`Decision`, :class:`TaskOutcome`, :class:`RunSummary` -- what the engine decided
  and what happened.

Nothing here does I/O or imports anything but the standard library and ``errors``.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import NamedTuple


class Validator(Enum):
    """Prefect 1's cache validators, by their Pipelinefile names."""

    DURATION_ONLY = "duration_only"
    ALL_INPUTS = "all_inputs"
    ALL_PARAMETERS = "all_parameters"
    PARTIAL_INPUTS_ONLY = "partial_inputs_only"
    PARTIAL_PARAMETERS_ONLY = "partial_parameters_only"
    NEVER_USE = "never_use"
    CODE = "code"  # the task's code fingerprint (see targetrun.staleness)
    DEPS = "deps"  # the content of the external files it declares in `deps:`


@dataclass(frozen=True)
class CachePolicy:
    """``cache_for`` / ``cache_validator`` / ``cache_key`` of one task.

    ``cache_validator`` may be a list (all must pass): the first is ``validator`` /
    ``names``, the others are in ``also``. Without ``cache_for`` the ttl is infinite and
    there is no cache key: the validators only judge an existing target.
    """

    ttl: float
    validator: Validator = Validator.DURATION_ONLY
    names: tuple[str, ...] = ()
    key: str | None = None
    also: tuple[tuple[Validator, tuple[str, ...]], ...] = ()

    @property
    def checks(self) -> tuple[tuple[Validator, tuple[str, ...]], ...]:
        """Every validator with its names, in the order written."""
        return ((self.validator, self.names), *self.also)

    @property
    def validators(self) -> frozenset[Validator]:
        # asked once per task and decision: computed once (a frozen dataclass may cache in __dict__)
        found = self.__dict__.get("_validators")
        if found is None:
            found = self.__dict__["_validators"] = frozenset(v for v, _ in self.checks)
        return found

    @property
    def caches(self) -> bool:
        """Whether the task keeps cache entries under a key (it has ``cache_for``)."""
        return self.ttl != _FOREVER


@dataclass(frozen=True)
class ResultLocation:
    """A named storage location: an fsspec URL or a local folder, plus storage options."""

    name: str
    url: str
    options: Mapping[str, object] = field(default_factory=dict)


# Shared by every task without args (or lines): a spec is never changed in place.
NO_ARGS: Mapping[str, object] = {}
_NO_OFFSETS: Mapping[str, int] = {}


@dataclass(frozen=True, slots=True)  # slots: a plan of 100,000 tasks keeps 100,000 of them (~200 bytes each, not ~600)
class TaskSpec:
    """One task as the Pipelinefile declares it (templates unrendered)."""

    name: str
    run: str | None = None
    shell: str | None = None
    needs: tuple[tuple[str, str], ...] = ()  # (keyword argument, upstream task)
    args: Mapping[str, object] = field(default_factory=lambda: NO_ARGS)
    target: str | None = None
    result: str = "."
    serializer: str | None = None  # the task's own `serializer:` (wins over the target's suffix)
    default_serializer: str | None = None  # from `defaults:` (loses to the target's suffix)
    checkpoint: bool = True
    cache: CachePolicy | None = None
    max_retries: int = 0
    retry_delay: float = 0.0
    foreach: object | None = None
    templated_args: bool = False  # some string in args has a {field}: render per run
    line: int | None = None
    # The line of each key of the task, as an offset from ``line``: tasks written alike share
    # one mapping (a Pipelinefile of 100,000 tasks would otherwise keep 100,000 of them).
    field_offsets: Mapping[str, int] = field(default_factory=lambda: _NO_OFFSETS)
    deps: tuple[str, ...] = ()  # external files (paths or URLs, globs) it reads: `deps:`
    version: str | None = None  # `version:` replaces the computed code fingerprint
    # asked a few times per task by every plan: computed once (see upstream)
    _upstream: tuple[str, ...] | None = field(default=None, init=False, repr=False, compare=False)

    @property
    def upstream(self) -> tuple[str, ...]:
        found = self._upstream
        if found is None:
            found = tuple(task for _, task in self.needs)
            object.__setattr__(self, "_upstream", found)  # frozen: a cache of what ``needs`` says
        return found

    def line_of(self, key: str) -> int | None:
        offset = self.field_offsets.get(key)
        return self.line if offset is None or self.line is None else self.line + offset


@dataclass(frozen=True)
class PipelineSpec:
    """A validated Pipelinefile."""

    name: str
    path: str  # the Pipelinefile itself
    root: str  # its folder: default result location, importable for ``run:``
    tasks: Mapping[str, TaskSpec]
    params: Mapping[str, object] = field(default_factory=dict)
    results: Mapping[str, ResultLocation] = field(default_factory=dict)
    cache_url: str = ".targetrun/state.db"
    scheduler: str | None = None  # a Dask scheduler address (`scheduler:`)
    allow_outside_targets: bool = False

    def task(self, name: str) -> TaskSpec:
        return self.tasks[name]


@dataclass(frozen=True, slots=True)
class RunContext:
    """What templates may name for one run (DESIGN.md §2)."""

    flow_name: str
    date: dt.datetime
    params: Mapping[str, object]
    run_id: str


class Location(NamedTuple):
    """Where a value lives: a URL (or absolute local path) in a named result location.

    A NamedTuple rather than a dataclass: plans hash tens of thousands of these.
    """

    result: str  # the storage that holds it: "local", a name under results:, or a protocol
    url: str

    def __str__(self) -> str:
        return self.url


@dataclass(frozen=True, slots=True)
class PlannedTask:
    """A task of one run, with its templates rendered."""

    spec: TaskSpec
    target: Location | None  # declared target, rendered
    checkpoint: Location | None  # where the value is written (target or default place)
    serializer: str
    args: Mapping[str, object]
    cache_key: str | None = None  # rendered; only for tasks with cache_for
    map_index: int | None = None  # a child of a mapped task (`foreach`)
    item: object = None  # ... and its item
    children: tuple[str, ...] | None = None  # a mapped task's children, once its items are known
    deps: tuple[str, ...] = ()  # spec.deps with their templates rendered

    @property
    def name(self) -> str:
        return self.spec.name if self.map_index is None else child_name(self.spec.name, self.map_index)

    @property
    def is_gather(self) -> bool:
        """A mapped task itself: it runs nothing, its value is its children's values in order."""
        return self.spec.foreach is not None and self.map_index is None

    @property
    def mapped_upstream(self) -> str | None:
        """The upstream task whose value a `foreach: {needs: TASK}` maps over."""
        foreach = self.spec.foreach
        return str(foreach["needs"]) if isinstance(foreach, Mapping) else None


def child_name(task: str, map_index: int) -> str:
    """The name of a mapped task's child.

    >>> child_name("per_city", 3)
    'per_city[3]'
    """
    return f"{task}[{map_index}]"


class Action(Enum):
    SKIP = "skip"
    RUN = "run"
    NOT_NEEDED = "not needed"


_RUN = Action.RUN  # an enum member read from its class costs 5x a global's lookup


class Reason(Enum):
    """Why a task is skipped or run; the value is what ``status`` prints."""

    TARGET_EXISTS = "target exists"
    CACHE_HIT = "cache hit"
    RESUMED = "checkpoint of a resumed run"
    TARGET_MISSING = "target missing"
    CACHE_EXPIRED = "cache expired"
    INPUTS_CHANGED = "inputs changed"
    PARAMETERS_CHANGED = "parameters changed"
    CODE_CHANGED = "code changed"
    DEPS_CHANGED = "deps changed"
    NOT_CACHED = "no cache entry"
    FORCED = "forced"
    UPSTREAM_FORCED = "upstream forced"
    NO_TARGET = "no target"
    MAPPED = "mapped"  # a mapped task: some children run
    CHILDREN_DONE = "all children done"  # a mapped task: no child runs
    MAP_PENDING = "items known after upstream runs"
    CORRUPT = "checkpoint corrupt"
    NOT_NEEDED = "not needed"
    DEPS_MISSING = "dep missing"  # a declared dep is not there and no task makes it: the run fails it
    UPSTREAM_FAILS = "upstream will fail"  # a task it needs will fail (its dep is missing): it will not run


class StaleKind(Enum):
    """What a target was made from that differs now (``status`` says "code changed")."""

    CODE = "code"
    PARAMETERS = "parameters"
    INPUTS = "inputs"
    DEPS = "deps"

    __hash__ = object.__hash__  # members are singletons: identity hashing, in C (sets of kinds per task)

    @property
    def reason(self) -> Reason:
        return _STALE_REASONS[self]


_STALE_REASONS = {StaleKind.CODE: Reason.CODE_CHANGED, StaleKind.PARAMETERS: Reason.PARAMETERS_CHANGED,
                  StaleKind.INPUTS: Reason.INPUTS_CHANGED, StaleKind.DEPS: Reason.DEPS_CHANGED}


@dataclass(frozen=True, slots=True)
class Stale:
    """One way a target is out of date, e.g. ``Stale(StaleKind.PARAMETERS, "city: berlin → paris")``."""

    what: StaleKind
    detail: str
    names: tuple[str, ...] = ()  # the inputs or parameters that changed (for the partial validators)
    # A parameter change that changed the task's arguments too (``args: {n: "{params.n}"}``):
    # the input change it is, which an input validator acts on as it would on its own (said
    # as the parameter change, once).
    inputs: Stale | None = None
    # Not known to differ: what the record says cannot be compared with the present (its code
    # fingerprint was taken by another fingerprint model). Said, never acted on, never stale.
    unknown: bool = False

    def describe(self) -> str:
        if self.unknown:
            return self.detail
        return f"{self.what.reason.value} — {self.detail}" if self.detail else self.what.reason.value


def known_stale(stale: tuple[Stale, ...]) -> tuple[Stale, ...]:
    """What is stale, less what cannot be told (:attr:`Stale.unknown`)."""
    return stale if not any(s.unknown for s in stale) else tuple(s for s in stale if not s.unknown)


def also_stale(decision: Decision) -> str:
    """What else is stale about a target that runs for another reason (``cache_for``
    expired, say), as the human lines say it after the decision: `` (also stale: code
    changed — command)``; "" when nothing else is. (``--json`` lists it under ``stale``.)"""
    if not decision.runs or not decision.stale:
        return ""
    also = [s for s in known_stale(decision.stale) if s.what.reason is not decision.reason]
    return f" (also stale: {'; '.join(s.describe() for s in also)})" if also else ""


def cannot_tell(stale: tuple[Stale, ...]) -> tuple[Stale, ...]:
    """What cannot be told about a target (:attr:`Stale.unknown`)."""
    return tuple(s for s in stale if s.unknown) if stale else stale


@dataclass(frozen=True, slots=True)
class Decision:
    """The plan's verdict for one task."""

    action: Action
    reason: Reason
    detail: str = ""
    until: float | None = None  # cache expiry, epoch seconds
    stale: tuple[Stale, ...] = ()  # what differs from the record (reported; acted on only when asked)

    @property
    def runs(self) -> bool:
        return self.action is _RUN  # a module constant: asked ~7 times per task of a plan

    def describe(self, *, stale: bool = True) -> str:
        """Human words, e.g. ``will run: target missing`` or ``target exists (stale: code
        changed — tasks.py: clean)`` (``stale=False``: without what is stale)."""
        if self.action is Action.NOT_NEEDED:
            return "not needed"
        if self.reason is Reason.DEPS_MISSING:  # taken up by the run, and failed before it runs
            return f"will fail: {self.detail}"
        if self.reason is Reason.UPSTREAM_FAILS:
            return f"will not run: {self.detail}"
        text = self.reason.value
        if self.until is not None:
            text += f" (until {_utc_text(self.until)})"
        if self.detail:
            text += f" ({self.detail})"
        if stale and self.stale and not self.runs:
            if found := known_stale(self.stale):
                text += f" (stale: {'; '.join(s.describe() for s in found)})"
            text += "".join(f" ({s.describe()})" for s in cannot_tell(self.stale))
        return f"will run: {text}" if self.runs else text


_FOREVER = float("inf")
_LAST_SECOND = 253402300799  # 9999-12-31T23:59:59Z: datetime's limit


def _utc_text(when: float) -> str:
    """``2026-11-30 12:00:00Z``: the UTC second ``when`` falls in, as datetime shows it.

    ``time.gmtime`` takes a third of datetime's time (a cache-hit no-op describes 10,000
    expiries); it floors, where datetime first rounds to the microsecond, so a time within
    half a microsecond of the next second, or beyond datetime's range, goes to datetime.

    >>> _utc_text(0.0), _utc_text(59.9999996), _utc_text(1796088948.25)
    ('1970-01-01 00:00:00Z', '1970-01-01 00:01:00Z', '2026-12-01 01:35:48Z')
    >>> _utc_text(_LAST_SECOND + 0.5), _utc_text(_LAST_SECOND + 86400.0)
    ('9999-12-31 23:59:59Z', 'after 9999-12-31 23:59:59Z')
    """
    if 0 <= when < _LAST_SECOND and when % 1 < 0.9999995:
        return time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime(when))
    if when >= _LAST_SECOND + 1:  # an expiry past the last date datetime can hold (a clock near its end)
        return "after 9999-12-31 23:59:59Z"
    return f"{dt.datetime.fromtimestamp(when, dt.timezone.utc):%Y-%m-%d %H:%M:%S}Z"


class TaskState(Enum):
    """Where a task ended up in a run."""

    SKIPPED = "skipped"
    CACHED = "cached"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    UPSTREAM_FAILED = "upstream failed"
    CANCELLED = "cancelled"
    NOT_NEEDED = "not needed"
    WOULD_RUN = "would run"


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """The store's record of a value written by a task."""

    task: str
    location: str
    serializer: str
    size: int
    content_hash: str
    run_id: str
    written_at: float
    duration: float = 0.0
    inputs: Mapping[str, str] = field(default_factory=dict)  # fingerprints it was made from
    params: Mapping[str, str] = field(default_factory=dict)
    storage: str = "local"  # the storage key (Location.result) that holds it
    # What the run that wrote it asked for, in the user's terms: the values (as text, see
    # templating.made_with) of the parameters the task's templates name, and the run date
    # when they name one. ``status`` compares them with the ones asked about.
    made_with: Mapping[str, str] = field(default_factory=dict)
    made_for: str | None = None
    # What made it (targetrun.staleness): None in records written before these were kept,
    # which makes that part unknown -- never stale. ``code`` maps each project object the
    # task's code reaches ("tasks.py:clean") to its normalised digest; ``deps`` each declared
    # external file (relative to the Pipelinefile's folder, or its URL) to its sha256, and
    # ``dep_stats`` keeps the stat / ETag seen then, only to skip hashing next time.
    code: Mapping[str, str] | None = None
    deps: Mapping[str, str] | None = None
    dep_stats: Mapping[str, str] = field(default_factory=dict)

    @property
    def where(self) -> Location:
        return Location(self.storage, self.location)


@dataclass(frozen=True, slots=True)
class CacheEntry:
    """An output cached under a key (``cache_for``), valid until ``expires``."""

    key: str
    variant: str  # one entry per distinct set of input and parameter fingerprints
    pipeline: str
    task: str
    checkpoint: Checkpoint
    expires: float

    @property
    def inputs(self) -> Mapping[str, str]:
        return self.checkpoint.inputs

    @property
    def params(self) -> Mapping[str, str]:
        return self.checkpoint.params


@dataclass(frozen=True, slots=True)
class TaskOutcome:
    task: str
    state: TaskState
    decision: Decision
    target: str | None = None
    duration: float = 0.0
    attempts: int = 0
    error: str | None = None
    checkpoint: Checkpoint | None = None
    backend_error: bool = False  # failed because storage could not be reached: exit 3
    usage_error: bool = False  # failed because the value does not fit its format or a library is missing: exit 2


@dataclass(frozen=True, slots=True)
class RunSummary:
    run_id: str
    pipeline: str
    outcomes: tuple[TaskOutcome, ...]
    started: float
    finished: float
    requested: tuple[str, ...] = ()
    dry_run: bool = False
    # How many outcomes are in each state, and whether any failed for want of a backend
    # or of a usable value: counted in one pass when first asked. The run's end, the
    # console, the record and the exit code ask a dozen times; 10,000 outcomes each time
    # cost more than the rest of a no-op's end.
    _tally: tuple[dict[TaskState, int], bool, bool] | None = field(default=None, init=False, repr=False,
                                                                     compare=False)

    @property
    def failed(self) -> tuple[TaskOutcome, ...]:
        return tuple(o for o in self.outcomes if o.state is TaskState.FAILED)

    @property
    def ok(self) -> bool:
        counts = self._counted()[0]
        return not any(counts.get(state) for state in (TaskState.FAILED, TaskState.UPSTREAM_FAILED, TaskState.CANCELLED))

    @property
    def backend_failed(self) -> bool:
        return self._counted()[1]

    @property
    def usage_failed(self) -> bool:
        return self._counted()[2]

    def count(self, state: TaskState) -> int:
        return self._counted()[0].get(state, 0)

    def _counted(self) -> tuple[dict[TaskState, int], bool, bool]:
        tally = self._tally
        if tally is None:
            counts: dict[TaskState, int] = {}
            backend = usage = False
            for o in self.outcomes:
                counts[o.state] = counts.get(o.state, 0) + 1
                if o.backend_error or o.usage_error:
                    backend, usage = backend or o.backend_error, usage or o.usage_error
            tally = (counts, backend, usage)
            object.__setattr__(self, "_tally", tally)  # frozen: a cache of what the fields say
        return tally
