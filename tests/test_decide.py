"""The decision rules alone (targetrun/engine/decide.py): facts in, a decision out.

Planning and the run's late re-check both call these functions, so each rule is pinned
here once, with no file, store or clock involved."""

from __future__ import annotations

import pytest

from targetrun import fingerprint
from targetrun.engine.decide import Facts, decide, stale_rules, with_staleness
from targetrun.fingerprint import Change, Difference
from targetrun.model import Action, CacheEntry, CachePolicy, Checkpoint, Reason, Stale, StaleKind, Validator

NOW = 1_800_000_000.0
T = "/out/t.json"  # the target
HOUR = 3600.0


def _record(written_at: float = NOW - 60, params: dict[str, str] | None = None) -> Checkpoint:
    return Checkpoint("t", "/out/t.json", "json", 2, "ab", "run-1", written_at, params=params or {})


def _entry(written_at: float, ttl: float, params: dict[str, str]) -> CacheEntry:
    return CacheEntry("k", "v", "p", "t", _record(written_at, params), written_at + ttl)


@pytest.mark.parametrize(("facts", "action", "reason"), [
    (Facts(None, T, True, NOW, forced=Reason.FORCED), Action.RUN, Reason.FORCED),
    (Facts(None, T, True, NOW), Action.SKIP, Reason.TARGET_EXISTS),
    (Facts(None, T, False, NOW), Action.RUN, Reason.TARGET_MISSING),
    (Facts(None, None, True, NOW), Action.SKIP, Reason.RESUMED),
    (Facts(None, None, False, NOW), Action.RUN, Reason.NO_TARGET),
    # validators without cache_for judge an existing target only; never_use remakes it
    (Facts(CachePolicy(float("inf"), Validator.NEVER_USE), T, True, NOW), Action.RUN, Reason.CACHE_EXPIRED),
    (Facts(CachePolicy(float("inf"), Validator.CODE), T, False, NOW), Action.RUN, Reason.TARGET_MISSING),
    # cache_for over an existing target: its age decides
    (Facts(CachePolicy(HOUR), T, True, NOW, record=_record(NOW - 60)), Action.SKIP, Reason.TARGET_EXISTS),
    (Facts(CachePolicy(HOUR), T, True, NOW, record=_record(NOW - 2 * HOUR)), Action.RUN, Reason.CACHE_EXPIRED),
    (Facts(CachePolicy(HOUR), T, True, NOW, record=_record(NOW + 2 * HOUR)), Action.RUN, Reason.CACHE_EXPIRED),
    (Facts(CachePolicy(HOUR), T, True, NOW, mtime=NOW - 60), Action.SKIP, Reason.TARGET_EXISTS),
    (Facts(CachePolicy(HOUR), T, True, NOW), Action.RUN, Reason.CACHE_EXPIRED),  # no record, no age
    # cache_for without a target: the entries under its key
    (Facts(CachePolicy(HOUR), None, False, NOW), Action.RUN, Reason.NOT_CACHED),
    (Facts(CachePolicy(HOUR), None, False, NOW, entries=(_entry(NOW - 60, HOUR, {}),)), Action.SKIP, Reason.CACHE_HIT),
    (Facts(CachePolicy(HOUR), None, False, NOW, entries=(_entry(NOW - 2 * HOUR, HOUR, {}),)), Action.RUN,
     Reason.CACHE_EXPIRED),
    (Facts(CachePolicy(HOUR), None, True, NOW), Action.SKIP, Reason.RESUMED),  # no entry, the resumed checkpoint
    # an entry whose value is the target found missing is no hit: that value is gone
    (Facts(CachePolicy(HOUR), "/out/t.json", False, NOW, entries=(_entry(NOW - 60, HOUR, {}),)), Action.RUN,
     Reason.TARGET_MISSING),
    (Facts(CachePolicy(HOUR), "/out/other.json", False, NOW, entries=(_entry(NOW - 60, HOUR, {}),)), Action.SKIP,
     Reason.CACHE_HIT),
])
def test_each_rule(facts: Facts, action: Action, reason: Reason) -> None:
    decision, entry = decide(facts)
    assert (decision.action, decision.reason) == (action, reason), decision
    assert (entry is not None) == (reason is Reason.CACHE_HIT)


def test_a_parameter_change_is_a_typed_difference_and_its_own_reason() -> None:
    policy = CachePolicy(HOUR, Validator.ALL_PARAMETERS)
    before, after = fingerprint.of_value("berlin"), fingerprint.of_value("paris")
    difference = fingerprint.mismatch(Validator.ALL_PARAMETERS, (), {}, {"city": before}, {}, {"city": after})
    assert difference == Difference(StaleKind.PARAMETERS, "city", Change.CHANGED)
    decision, entry = decide(Facts(policy, None, False, NOW, entries=(_entry(NOW - 60, HOUR, {"city": before}),),
                                   params={"city": after}))
    assert entry is None
    assert (decision.reason, decision.detail) == (Reason.PARAMETERS_CHANGED, "parameter 'city' changed")
    same, hit = decide(Facts(policy, None, False, NOW, entries=(_entry(NOW - 60, HOUR, {"city": before}),),
                             params={"city": before}))
    assert same.reason is Reason.CACHE_HIT and hit is not None


@pytest.mark.parametrize(("validator", "names", "recorded", "now", "expected"), [
    (Validator.ALL_INPUTS, (), {"x": "1", "y": "2"}, {"x": "1"}, Difference(StaleKind.INPUTS, "y", Change.GONE)),
    (Validator.PARTIAL_INPUTS_ONLY, ("z",), {}, {"x": "1"}, Difference(StaleKind.INPUTS, "z", Change.UNKNOWN)),
    (Validator.ALL_INPUTS, (), {"x": "1"}, {"x": fingerprint.PENDING}, Difference(StaleKind.INPUTS, "x", Change.PENDING)),
    (Validator.PARTIAL_INPUTS_ONLY, ("x",), {"x": "1", "y": "2"}, {"x": "1", "y": "3"}, None),
])
def test_input_differences(validator: Validator, names: tuple[str, ...], recorded: dict[str, str],
                           now: dict[str, str], expected: Difference | None) -> None:
    assert fingerprint.mismatch(validator, names, recorded, {}, now, {}) == expected


def test_staleness_is_reported_unless_a_validator_covers_it() -> None:
    kept = decide(Facts(None, T, True, NOW))[0]
    code = Stale(StaleKind.CODE, "tasks.py: clean")
    reported = stale_rules(None, rebuild_stale=False, report_stale=True)
    assert reported.acting == frozenset() and StaleKind.CODE in reported.looked
    said = with_staleness(kept, [code], [], reported, None, (), rebuild_stale=False)
    assert (said.action, said.reason, said.stale) == (Action.SKIP, Reason.TARGET_EXISTS, (code,))
    policy = CachePolicy(float("inf"), Validator.CODE)
    acted = with_staleness(kept, [code], [], stale_rules(policy, rebuild_stale=False, report_stale=False), policy, (),
                           rebuild_stale=False)
    assert (acted.action, acted.reason, acted.detail) == (Action.RUN, Reason.CODE_CHANGED, "tasks.py: clean")
    rebuilt = with_staleness(kept, [code], [], stale_rules(None, rebuild_stale=True, report_stale=False), None, (),
                             rebuild_stale=True)
    assert rebuilt.runs


def test_a_partial_validator_acts_only_on_the_inputs_it_names() -> None:
    kept = decide(Facts(None, T, True, NOW))[0]
    policy = CachePolicy(float("inf"), Validator.PARTIAL_INPUTS_ONLY, ("rows",))
    rules = stale_rules(policy, rebuild_stale=False, report_stale=True)
    needs = (("rows", "fetch"), ("lookup", "countries"))
    other = Stale(StaleKind.INPUTS, "countries", ("lookup",))
    named = Stale(StaleKind.INPUTS, "fetch", ("rows",))
    assert not with_staleness(kept, [other], [], rules, policy, needs, rebuild_stale=False).runs
    assert with_staleness(kept, [named], [], rules, policy, needs, rebuild_stale=False).reason is Reason.INPUTS_CHANGED
    assert with_staleness(kept, [], ["fetch"], rules, policy, needs, rebuild_stale=False).runs  # recomputed now
