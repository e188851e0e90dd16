"""A run's outcomes blob (targetrun/store/base.py): it round-trips, and encoding it holds
no more than a slice of the rows at once -- a no-op of 100,000 tasks otherwise built every
row, the whole JSON text and its bytes together (~27 MB above the run's own heap, the
peak of the process)."""

from __future__ import annotations

import tracemalloc

from targetrun.model import Action, Decision, Reason, TaskOutcome, TaskState
from targetrun.store.base import decode_outcomes, encode_outcomes


def _outcomes(n: int) -> list[TaskOutcome]:
    skipped = Decision(Action.SKIP, Reason.TARGET_EXISTS)
    return [TaskOutcome(f"t{i}", TaskState.SKIPPED if i % 3 else TaskState.NOT_NEEDED, skipped,
                        f"out/t{i}.txt" if i % 2 else None) for i in range(n)]


def test_outcomes_round_trip_across_slices() -> None:
    for n in (0, 1, 999, 1000, 1001, 2500):
        outcomes = _outcomes(n)
        decoded = decode_outcomes(encode_outcomes(outcomes, "2026-12-02"))
        assert decoded is not None and decoded.date == "2026-12-02"
        assert [(m.task, m.state, m.reason, m.target) for m in decoded.marks] == \
            [(o.task, o.state, "target exists", o.target) for o in outcomes]


def test_encoding_holds_a_slice_not_every_row() -> None:
    outcomes = _outcomes(50_000)  # encoded whole, the peak was ~10 MB; in slices ~0.9 MB (zlib's state, the output)
    tracemalloc.start()
    try:
        encode_outcomes(outcomes, "2026-12-02")
        _current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 2_000_000, f"encoding 50,000 outcomes peaked at {peak:,} bytes"
