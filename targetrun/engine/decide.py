"""The decision: skip, cache hit or run, for one task -- pure functions over facts.

Planning (engine/plan.py) and the run's late re-check (engine/run.py) gather the *facts*
about a task -- is it forced, does its target (or a resumed checkpoint) exist, what the
store recorded for it, its cache entries, the fingerprints of its inputs and parameters
now, what is stale about it, the time -- and call :func:`decide`, then
:func:`with_staleness`. Nothing else decides, so ``status`` and ``run`` cannot disagree.
Nothing here reads a file, a clock or a store.

The rules, in order (DESIGN.md §3):

1. forced (``--force``, ``--force-all``, or downstream of a forced task) -> run;
2. no cache policy, or validators without ``cache_for``: an existing target (or a resumed
   checkpoint) is kept, a missing one is made (``never_use`` remakes an existing target);
3. ``cache_for`` and an existing target: kept while it is younger than ``cache_for`` and
   its recorded fingerprints pass the validators (:func:`target_verdict`);
4. ``cache_for`` and no target (or a missing one): a live entry under the cache key whose
   fingerprints pass, and whose record's code and deps are not stale in a way that acts
   (as rule 5 judges a target), is a cache hit (:func:`entry_verdict`); else a resumed
   checkpoint;
5. an existing target that was kept is then judged against what its record says made it:
   a stale kind its validators cover (or ``--rebuild-stale``) rebuilds it, any other is
   only reported (:func:`with_staleness`).

Whatever rules 2-5 keep, a task whose code does not parse now runs (and so fails at its
import, with the parser's file and line), as Make remakes a target whose source changed.
And a task whose final decision -- after rule 5 -- is to run while a dep it declares is
missing (nothing there, and no task of the run makes it) *fails*: the run takes it up and
fails it before it runs (Make's "No rule to make target", Snakemake's
MissingInputException), and status and ``--dry-run`` say so, "will fail: dep data/x.csv
is missing" (:func:`fails_for_missing_deps`, which the planner applies once, last, and the
run asks again through the planner when the task is due).

Clocks are wrong sometimes, and a record outlives the clock that wrote it. So a record
written "in the future" (more than :data:`CLOCK_SKEW` ahead of now: a clock that was
ahead, or that has since gone back) has an unknown age and is not reused, and an entry is
valid only while ``now < min(recorded expiry, written_at + cache_for)`` with today's
``cache_for``: neither a bad clock nor a shortened ``cache_for`` lets an entry outlive it.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field, replace

from targetrun import fingerprint
from targetrun.fingerprint import Difference
from targetrun.model import Action, CacheEntry, CachePolicy, Checkpoint, Decision, Reason, Stale, StaleKind, Validator
from targetrun.stalediff import code_stale, deps_stale

CLOCK_SKEW = 60.0  # seconds a writer's clock may be ahead of ours before its records are "from the future"

NOT_NEEDED = Decision(Action.NOT_NEEDED, Reason.NOT_NEEDED)
# Decisions are immutable: share one object per verdict instead of one per task.
_SKIP_EXISTS = Decision(Action.SKIP, Reason.TARGET_EXISTS)
_RUN_MISSING = Decision(Action.RUN, Reason.TARGET_MISSING)
_SKIP_RESUMED = Decision(Action.SKIP, Reason.RESUMED)
_RUN_NO_TARGET = Decision(Action.RUN, Reason.NO_TARGET)
_FORCED = {reason: Decision(Action.RUN, reason) for reason in (Reason.FORCED, Reason.UPSTREAM_FORCED)}
_NEVER_USE = "cache_validator is never_use"

INPUT_VALIDATORS = frozenset((Validator.ALL_INPUTS, Validator.PARTIAL_INPUTS_ONLY))
_PARAMETER_VALIDATORS = frozenset((Validator.ALL_PARAMETERS, Validator.PARTIAL_PARAMETERS_ONLY))
# the validators that compare input or parameter fingerprints (code and deps: targetrun.staleness)
_FINGERPRINT_VALIDATORS = INPUT_VALIDATORS | _PARAMETER_VALIDATORS


@dataclass(frozen=True)
class StaleRules:
    """What to compare for a task (``looked``: reported) and what of that rebuilds it
    (``acting``), from its cache policy and the run's options."""

    looked: frozenset[StaleKind]
    acting: frozenset[StaleKind]


NOTHING_LOOKED = StaleRules(frozenset(), frozenset())


@dataclass(frozen=True, slots=True)
class MadeNow:
    """What makes a task now, besides its inputs and parameters. ``unparsable``: why its
    code cannot be imported as it is (a file it reaches does not parse), else None. For
    judging a cache entry's record (:func:`entry_verdict`): its ``code`` and ``deps``
    fingerprints now (None: not asked, or unknown) and which stale kinds are looked at
    and which of those act (:func:`stale_rules`)."""

    unparsable: str | None = None
    code: Mapping[str, str] | None = None
    deps: Mapping[str, str] | None = None
    rules: StaleRules = NOTHING_LOOKED
    root: str = ""  # the project folder deps keys are relative to (old records kept absolute ones)


NOTHING_KNOWN = MadeNow()


@dataclass(slots=True)  # not frozen: built once per task (10,000 in a no-op), frozen init is 7x slower
class Facts:
    """What is known about one task when it is decided (nothing here changes it).

    ``target`` is the task's target URL (None: it has none); ``exists`` is about that
    target, or (a task without one) the checkpoint of the run being resumed. ``record`` is the store's record of an existing target, ``mtime`` its
    age from the storage when no record exists (only asked under ``cache_for``).
    ``inputs`` is only needed under ``cache_for`` (see :func:`needs_inputs`); ``made``
    says whether the code parses and, for a cache entry, what else made it.
    """

    policy: CachePolicy | None
    target: str | None
    exists: bool
    now: float
    forced: Reason | None = None
    record: Checkpoint | None = None
    mtime: float | None = None
    entries: Sequence[CacheEntry] = ()
    inputs: Mapping[str, str] = field(default_factory=dict)
    params: Mapping[str, str] = field(default_factory=dict)
    made: MadeNow = NOTHING_KNOWN


def needs_inputs(policy: CachePolicy | None, forced: Reason | None) -> bool:
    """Whether :func:`decide` compares input fingerprints (only ``cache_for`` does)."""
    return forced is None and policy is not None and policy.caches


def by_existence(policy: CachePolicy | None) -> bool:
    """Whether rules 1-4 look at nothing but whether the target (or a resumed checkpoint)
    exists: no cache policy, or validators without ``cache_for`` and without ``never_use``."""
    return policy is None or (not policy.caches and Validator.NEVER_USE not in policy.validators)


def decide(facts: Facts) -> tuple[Decision, CacheEntry | None]:
    """Rules 1-4: the task's decision, and the cache entry it hits (if any). Nothing is
    kept for a task whose code does not parse now, whatever the validators: as Make
    remakes a target whose source changed, the run then imports the code and fails with
    the parser's message (nothing silently stands on code that cannot run)."""
    if facts.forced is not None:
        return _FORCED[facts.forced], None
    decision, entry = _unforced(facts)
    if facts.made.unparsable is not None and not decision.runs:
        detail = facts.made.unparsable
        decision, entry = Decision(Action.RUN, Reason.CODE_CHANGED, detail=detail,
                                   stale=(Stale(StaleKind.CODE, detail),)), None
    return decision, entry


def fails_for_missing_deps(decision: Decision, missing: Sequence[str]) -> Decision:
    """A task whose final decision (rules 1-5) is to run while declared deps are missing
    fails instead (the run takes it up and fails it before it runs); one that is kept needs
    none of them (its target is only stale). ``missing``: their keys, as
    :meth:`~targetrun.staleness.DepIndex.missing` gives them. Asked again when the task is due (the run), a task planned to fail whose
    deps are all there by then runs: something put them there meanwhile."""
    if not missing and decision.reason is Reason.DEPS_MISSING:
        appeared = decision.detail.replace(" is missing", " appeared")
        return Decision(Action.RUN, Reason.DEPS_CHANGED, detail=f"{appeared} since planning", stale=decision.stale)
    if not missing or not decision.runs:
        return decision
    detail = ", ".join(f"dep {key} is missing" for key in missing)
    return Decision(Action.RUN, Reason.DEPS_MISSING, detail=detail, stale=decision.stale)


def _unforced(facts: Facts) -> tuple[Decision, CacheEntry | None]:
    policy = facts.policy
    if by_existence(policy):
        return _by_existence(facts), None
    assert policy is not None
    if not policy.caches:  # never_use without cache_for: an existing target is remade
        if facts.exists and facts.target is not None:
            return Decision(Action.RUN, Reason.CACHE_EXPIRED, detail=_NEVER_USE), None
        return _by_existence(facts), None
    if facts.target is not None and facts.exists:
        return target_verdict(policy, facts.record, facts.mtime, facts.inputs, facts.params, facts.now), None
    missing = Reason.TARGET_MISSING if facts.target is not None else Reason.NOT_CACHED
    # an entry whose value is the very target found missing has no value left to reuse
    entries = [e for e in facts.entries if e.checkpoint.location != facts.target]
    decision, entry = entry_verdict(policy, entries, facts.inputs, facts.params, facts.now, missing=missing,
                                    made=facts.made)
    if entry is None and decision.runs and facts.target is None and facts.exists:
        return _SKIP_RESUMED, None  # no entry, but the resumed run's checkpoint
    return decision, entry


def _by_existence(facts: Facts) -> Decision:
    if facts.target is not None:
        return _SKIP_EXISTS if facts.exists else _RUN_MISSING
    return _SKIP_RESUMED if facts.exists else _RUN_NO_TARGET


# -- cache_for -------------------------------------------------------------------------


def _written_in_future(written: float, now: float) -> bool:
    return not math.isfinite(written) or written > now + CLOCK_SKEW


def valid_until(entry: CacheEntry, policy: CachePolicy) -> float:
    """When ``entry`` stops being valid under today's ``cache_for``: never later than
    ``cache_for`` after it was written, whatever expiry was recorded."""
    return min(entry.expires, entry.checkpoint.written_at + policy.ttl)


def _alive(entry: CacheEntry, policy: CachePolicy, now: float) -> bool:
    return not _written_in_future(entry.checkpoint.written_at, now) and now < valid_until(entry, policy)


def _changed(difference: Difference) -> Decision:
    return Decision(Action.RUN, difference.kind.reason, detail=str(difference))


def target_verdict(
    policy: CachePolicy,
    record: Checkpoint | None,
    mtime: float | None,
    inputs: Mapping[str, str],
    params: Mapping[str, str],
    now: float,
) -> Decision:
    """An existing target under ``cache_for``: fresh and valid, or stale and why."""
    if Validator.NEVER_USE in policy.validators:
        return Decision(Action.RUN, Reason.CACHE_EXPIRED, detail=_NEVER_USE)
    written = record.written_at if record is not None else mtime
    if written is None:
        return Decision(Action.RUN, Reason.CACHE_EXPIRED, detail="the target's age is unknown")
    if _written_in_future(written, now):
        return Decision(Action.RUN, Reason.CACHE_EXPIRED,
                        detail="the target's age is unknown (it was recorded in the future: a clock was ahead)")
    until = written + policy.ttl
    if until <= now:
        return Decision(Action.RUN, Reason.CACHE_EXPIRED, detail="the target is older than cache_for", until=until)
    if policy.validators & _FINGERPRINT_VALIDATORS:
        if record is None:
            return Decision(Action.RUN, Reason.INPUTS_CHANGED,
                            detail="input/parameter fingerprints were never recorded for this target")
        difference = _mismatch(policy, record.inputs, record.params, inputs, params)
        if difference is not None:
            return _changed(difference)
    return Decision(Action.SKIP, Reason.TARGET_EXISTS, until=until if math.isfinite(until) else None)


def _mismatch(policy: CachePolicy, recorded_inputs: Mapping[str, str], recorded_params: Mapping[str, str],
              inputs: Mapping[str, str], params: Mapping[str, str]) -> Difference | None:
    """The first validator of the list that fails, and why (all must pass)."""
    for validator, names in policy.checks:
        difference = fingerprint.mismatch(validator, names, recorded_inputs, recorded_params, inputs, params)
        if difference is not None:
            return difference
    return None


def entry_verdict(
    policy: CachePolicy,
    entries: Sequence[CacheEntry],
    inputs: Mapping[str, str],
    params: Mapping[str, str],
    now: float,
    *,
    missing: Reason,
    made: MadeNow = NOTHING_KNOWN,
) -> tuple[Decision, CacheEntry | None]:
    """A valid entry under the task's key (newest first), or why none is.

    ``missing`` is the reason to give when there is no entry at all (``target missing``
    for a task with a target, ``no cache entry`` otherwise). An entry is judged by what
    made it, as an existing target is (rule 5): its record's code and deps against
    ``made``'s -- a stale kind that acts (a ``code`` or ``deps`` validator, or
    ``--rebuild-stale``) leaves the entry unused, any other is reported with the hit.
    """
    if Validator.NEVER_USE in policy.validators:
        return Decision(Action.RUN, missing, detail=_NEVER_USE), None
    live = [e for e in entries if _alive(e, policy, now)]
    stale_entry: Decision | None = None
    for entry in live:
        if _mismatch(policy, entry.inputs, entry.params, inputs, params) is None:
            stale = _made_differently(entry.checkpoint, made)
            acting = next((s for s in stale if s.what in made.rules.acting and not s.unknown), None)
            if acting is None:
                return Decision(Action.SKIP, Reason.CACHE_HIT, until=valid_until(entry, policy), stale=stale), entry
            if stale_entry is None:
                stale_entry = Decision(Action.RUN, acting.what.reason, detail=acting.detail, stale=stale)
    if stale_entry is not None:
        return stale_entry, None
    if not entries:
        return Decision(Action.RUN, missing), None
    if not live:
        newest = entries[0]
        if _written_in_future(newest.checkpoint.written_at, now):
            return Decision(Action.RUN, Reason.CACHE_EXPIRED,
                            detail="the cache entry was recorded in the future (a clock was ahead)"), None
        return Decision(Action.RUN, Reason.CACHE_EXPIRED, until=valid_until(newest, policy)), None
    difference = _mismatch(policy, live[0].inputs, live[0].params, inputs, params)
    assert difference is not None, "a live entry that passes was returned above"
    return _changed(difference), None


def _made_differently(record: Checkpoint, made: MadeNow) -> tuple[Stale, ...]:
    """What of the code and deps a cache entry's record names differs now (kinds looked at only)."""
    looked = made.rules.looked
    found = (code_stale(record.code, made.code) if StaleKind.CODE in looked else None,
             deps_stale(record.deps, made.deps, made.root) if StaleKind.DEPS in looked else None)
    return tuple(s for s in found if s is not None)


# -- staleness (rule 5) ----------------------------------------------------------------


def stale_rules(policy: CachePolicy | None, *, rebuild_stale: bool, report_stale: bool) -> StaleRules:
    """Everything acts with ``--rebuild-stale``; else what the validators cover -- ``code``
    and ``deps`` always, the input and parameter validators when there is no ``cache_for``
    (with ``cache_for`` the Prefect 1 rules above judge those, unchanged)."""
    acting: set[StaleKind] = set()
    if rebuild_stale:
        acting = set(StaleKind)
    elif policy is not None:
        validators = policy.validators
        acting.update(kind for v, kind in ((Validator.CODE, StaleKind.CODE), (Validator.DEPS, StaleKind.DEPS))
                      if v in validators)
        if not policy.caches:
            if validators & INPUT_VALIDATORS:
                acting.add(StaleKind.INPUTS)
            if validators & _PARAMETER_VALIDATORS:
                acting.add(StaleKind.PARAMETERS)
    looked = set(StaleKind) if report_stale else acting
    return StaleRules(frozenset(looked), frozenset(acting))


def acts_on(policy: CachePolicy | None, needs: Sequence[tuple[str, str]], item: Stale, *, rebuild_stale: bool) -> bool:
    """Whether a partial validator (``partial_inputs_only: [x]``) names what changed
    (``needs``: the task's (argument, upstream task) pairs)."""
    if rebuild_stale or policy is None:
        return True
    partial = {StaleKind.INPUTS: Validator.PARTIAL_INPUTS_ONLY, StaleKind.PARAMETERS: Validator.PARTIAL_PARAMETERS_ONLY}
    full = {StaleKind.INPUTS: Validator.ALL_INPUTS, StaleKind.PARAMETERS: Validator.ALL_PARAMETERS}
    if item.what not in partial or full[item.what] in policy.validators:
        return True
    upstream_of = dict(needs)
    names = {n for v, ns in policy.checks if v is partial[item.what] for n in ns}
    return any(n in names or upstream_of.get(n) in names for n in item.names) or \
        any(upstream_of.get(n) in item.names for n in names)


def as_parameter_change(decision: Decision, dep_params: Collection[str]) -> Decision:
    """A deps change that a parameter named in the deps' templates caused
    (``data/{params.which}.csv``, which: a → b) reads as that parameter's change; what
    differs in the deps follows in ``stale``."""
    if decision.reason is not Reason.DEPS_CHANGED or not dep_params:
        return decision
    for item in decision.stale:
        if item.what is StaleKind.PARAMETERS and not set(item.names).isdisjoint(dep_params):
            return replace(decision, reason=Reason.PARAMETERS_CHANGED, detail=item.detail)
    return decision


def judged(decision: Decision) -> bool:
    """Whether rule 5 applies: an existing target that rules 1-4 kept."""
    return not decision.runs and decision.reason is Reason.TARGET_EXISTS


_RUNS_FOR_ITS_RECORD = frozenset((Reason.CACHE_EXPIRED, Reason.INPUTS_CHANGED, Reason.PARAMETERS_CHANGED))


def said_too(decision: Decision) -> bool:
    """Whether an existing target that rule 3 (``cache_for``) remakes -- expired, or its
    recorded fingerprints fail a validator -- is judged as rule 5 judges a kept one, only
    to say what else is stale about it: it runs anyway (:func:`with_staleness`)."""
    return decision.runs and decision.reason in _RUNS_FOR_ITS_RECORD and not decision.stale


def with_staleness(decision: Decision, stale: Sequence[Stale], pending: Sequence[str], rules: StaleRules,
                   policy: CachePolicy | None, needs: Sequence[tuple[str, str]], *, rebuild_stale: bool) -> Decision:
    """Rule 5: a kept target with what is stale about it (``stale``), given which of its
    inputs are recomputed in this run (``pending``): run when a validator covers a stale
    kind (or ``--rebuild-stale``), else the same decision saying why it is stale."""
    found = tuple(stale)
    if decision.runs:  # remade for another reason (said_too): what is stale is only said
        return replace(decision, stale=found) if found else decision

    def acting(item: Stale) -> bool:  # what cannot be told never acts: it is not known to differ
        return not item.unknown and item.what in rules.acting and acts_on(policy, needs, item, rebuild_stale=rebuild_stale)

    if pending and acting(Stale(StaleKind.INPUTS, "", tuple(pending))):
        # planning cannot foresee the early cutoff: the run judges it again once the input is made
        return Decision(Action.RUN, Reason.INPUTS_CHANGED,
                        detail=f"{pending[0]} is recomputed in this run: kept if it comes out the same", stale=found)
    for item in found:
        if acting(item):
            return Decision(Action.RUN, item.what.reason, detail=item.detail, stale=found)
        if item.inputs is not None and acting(item.inputs):  # a parameter that changed the task's arguments
            return Decision(Action.RUN, Reason.INPUTS_CHANGED, detail=item.inputs.detail, stale=found)
    return replace(decision, stale=found) if found else decision
