"""Cache verdicts (``cache_for``, ``cache_validator``): pure functions over records.

Two questions, answered from what the store recorded when an output was written:

* :func:`target_verdict` -- a task with a target that exists *and* ``cache_for``: is the
  target still fresh (younger than ``cache_for``) and do its recorded input and parameter
  fingerprints still pass the validator?
* :func:`entry_verdict` -- a task whose target is missing (or that has none): is one of
  the entries under its cache key unexpired and valid? A key keeps one entry per
  distinct fingerprint set, so switching a parameter back hits the first entry again.

``never_use`` never reuses anything. Expiry uses the injected clock's ``now``.

Clocks are wrong sometimes, and a record outlives the clock that wrote it. So a record
written "in the future" (more than :data:`CLOCK_SKEW` ahead of now: a clock that was
ahead, or that has since gone back) has an unknown age and is not reused, and an entry is
valid only while ``now < min(recorded expiry, written_at + cache_for)`` with today's
``cache_for``: neither a bad clock nor a shortened ``cache_for`` lets an entry outlive it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence

from targetrun import fingerprint
from targetrun.model import Action, CacheEntry, CachePolicy, Checkpoint, Decision, PlannedTask, Reason, Validator


CLOCK_SKEW = 60.0  # seconds a writer's clock may be ahead of ours before its records are "from the future"


def _written_in_future(written: float, now: float) -> bool:
    return not math.isfinite(written) or written > now + CLOCK_SKEW


def valid_until(entry: CacheEntry, policy: CachePolicy) -> float:
    """When ``entry`` stops being valid under today's ``cache_for``: never later than
    ``cache_for`` after it was written, whatever expiry was recorded."""
    return min(entry.expires, entry.checkpoint.written_at + policy.ttl)


def _alive(entry: CacheEntry, policy: CachePolicy, now: float) -> bool:
    return not _written_in_future(entry.checkpoint.written_at, now) and now < valid_until(entry, policy)


def _changed(problem: str) -> Decision:
    reason = Reason.PARAMETERS_CHANGED if problem.startswith("parameter") else Reason.INPUTS_CHANGED
    return Decision(Action.RUN, reason, detail=problem)


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
        return Decision(Action.RUN, Reason.CACHE_EXPIRED, detail="cache_validator is never_use")
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
            return _changed("input/parameter fingerprints were never recorded for this target")
        problem = _mismatch(policy, record.inputs, record.params, inputs, params)
        if problem:
            return _changed(problem)
    return Decision(Action.SKIP, Reason.TARGET_EXISTS, until=until if math.isfinite(until) else None)


# the validators that compare input or parameter fingerprints (code and deps: targetrun.staleness)
_FINGERPRINT_VALIDATORS = frozenset((Validator.ALL_INPUTS, Validator.ALL_PARAMETERS, Validator.PARTIAL_INPUTS_ONLY,
                                     Validator.PARTIAL_PARAMETERS_ONLY))


def _mismatch(policy: CachePolicy, recorded_inputs: Mapping[str, str], recorded_params: Mapping[str, str],
              inputs: Mapping[str, str], params: Mapping[str, str]) -> str | None:
    """The first validator of the list that fails, and why (all must pass)."""
    for validator, names in policy.checks:
        problem = fingerprint.mismatch(validator, names, recorded_inputs, recorded_params, inputs, params)
        if problem:
            return problem
    return None


def entry_verdict(
    policy: CachePolicy,
    entries: Sequence[CacheEntry],
    inputs: Mapping[str, str],
    params: Mapping[str, str],
    now: float,
    *,
    missing: Reason,
) -> tuple[Decision, CacheEntry | None]:
    """A valid entry under the task's key (newest first), or why none is.

    ``missing`` is the reason to give when there is no entry at all (``target missing``
    for a task with a target, ``no cache entry`` otherwise).
    """
    if Validator.NEVER_USE in policy.validators:
        return Decision(Action.RUN, missing, detail="cache_validator is never_use"), None
    live = [e for e in entries if _alive(e, policy, now)]
    for entry in live:
        if _mismatch(policy, entry.inputs, entry.params, inputs, params) is None:
            return Decision(Action.SKIP, Reason.CACHE_HIT, until=valid_until(entry, policy)), entry
    if not entries:
        return Decision(Action.RUN, missing), None
    if not live:
        newest = entries[0]
        if _written_in_future(newest.checkpoint.written_at, now):
            return Decision(Action.RUN, Reason.CACHE_EXPIRED,
                            detail="the cache entry was recorded in the future (a clock was ahead)"), None
        return Decision(Action.RUN, Reason.CACHE_EXPIRED, until=valid_until(newest, policy)), None
    problem = _mismatch(policy, live[0].inputs, live[0].params, inputs, params)
    return _changed(problem or "no entry matches"), None


def task_inputs(task: PlannedTask, output_of: Callable[[str], str]) -> dict[str, str]:
    """One fingerprint per keyword argument a task runs with: each upstream's output (for a
    mapped child, its own item in place of the list it maps over) and each rendered arg.

    Planning and running both call this, each with its own ``output_of``, so ``status``
    and ``run`` judge a cache entry by the same fingerprints.
    """
    inputs: dict[str, str] = {}
    for arg, up in task.spec.needs:
        if task.map_index is not None and up == task.mapped_upstream:
            inputs[arg] = fingerprint.of_value(task.item)
        else:
            inputs[arg] = output_of(up)
    inputs.update((name, fingerprint.of_value(value)) for name, value in task.args.items())
    return inputs


def new_entry(key: str, pipeline: str, task: str, checkpoint: Checkpoint, policy: CachePolicy) -> CacheEntry:
    return CacheEntry(key, fingerprint.variant(checkpoint.inputs, checkpoint.params), pipeline, task, checkpoint,
                      checkpoint.written_at + policy.ttl)
