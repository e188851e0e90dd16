"""Cache verdicts (``cache_for``, ``cache_validator``): pure functions over records.

Two questions, answered from what the store recorded when an output was written:

* :func:`target_verdict` -- a task with a target that exists *and* ``cache_for``: is the
  target still fresh (younger than ``cache_for``) and do its recorded input and parameter
  fingerprints still pass the validator?
* :func:`entry_verdict` -- a task whose target is missing (or that has none): is one of
  the entries under its cache key unexpired and valid? A key keeps one entry per
  distinct fingerprint set, so switching a parameter back hits the first entry again.

``never_use`` never reuses anything. Expiry uses the injected clock's ``now``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from targetrun import fingerprint
from targetrun.model import Action, CacheEntry, CachePolicy, Checkpoint, Decision, PlannedTask, Reason, Validator


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
    if policy.validator is Validator.NEVER_USE:
        return Decision(Action.RUN, Reason.CACHE_EXPIRED, detail="cache_validator is never_use")
    written = record.written_at if record is not None else mtime
    if written is None:
        return Decision(Action.RUN, Reason.CACHE_EXPIRED, detail="the target's age is unknown")
    until = written + policy.ttl
    if until <= now:
        return Decision(Action.RUN, Reason.CACHE_EXPIRED, detail="the target is older than cache_for", until=until)
    if policy.validator is not Validator.DURATION_ONLY:
        if record is None:
            return _changed("input/parameter fingerprints were never recorded for this target")
        problem = fingerprint.mismatch(policy.validator, policy.names, record.inputs, record.params, inputs, params)
        if problem:
            return _changed(problem)
    return Decision(Action.SKIP, Reason.TARGET_EXISTS, until=until)


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
    if policy.validator is Validator.NEVER_USE:
        return Decision(Action.RUN, missing, detail="cache_validator is never_use"), None
    live = [e for e in entries if e.expires > now]
    for entry in live:
        if fingerprint.mismatch(policy.validator, policy.names, entry.inputs, entry.params, inputs, params) is None:
            return Decision(Action.SKIP, Reason.CACHE_HIT, until=entry.expires), entry
    if not entries:
        return Decision(Action.RUN, missing), None
    if not live:
        return Decision(Action.RUN, Reason.CACHE_EXPIRED, until=entries[0].expires), None
    problem = fingerprint.mismatch(policy.validator, policy.names, live[0].inputs, live[0].params, inputs, params)
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
