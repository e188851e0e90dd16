"""What a cache entry and a record are made of: the fingerprints of a task's inputs, and
the entry written for a value. (The verdicts over them are in :mod:`targetrun.engine.decide`.)
"""

from __future__ import annotations

from collections.abc import Callable

from targetrun import fingerprint
from targetrun.model import CacheEntry, CachePolicy, Checkpoint, PlannedTask


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
    return CacheEntry(key, fingerprint.variant(checkpoint.inputs, checkpoint.params, (pipeline, task)), pipeline, task,
                      checkpoint, checkpoint.written_at + policy.ttl)
