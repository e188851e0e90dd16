"""Parity with Prefect 1.4.1's output cache, the oracle targetrun's caching is checked against.

The expected answers below were read from Prefect 1.4.1's source
(``src/prefect/engine/cache_validators.py``, ``engine/task_runner.py``
``check_task_is_cached``/``cache_result``, ``core/flow.py``'s ``caches``) and, for dates,
from pendulum 2.1.2 (the pendulum of Prefect 1's time), run as a live oracle outside this
repository. Each case names the Prefect rule it pins.
"""

from __future__ import annotations

import datetime as dt
import json
import os

import pytest

from targetrun import fingerprint, templating
from targetrun.engine.cache import new_entry
from targetrun.engine.decide import Facts, decide
from targetrun.errors import TemplateError
from targetrun.model import CachePolicy, Checkpoint, Reason, Validator

T0 = 1_800_000_000.0  # 2027-01-15T08:00:00Z


@pytest.fixture
def at(monkeypatch):
    """``at(t)``: the in-process CLI's clock reads ``t`` (TARGETRUN_NOW), never a sleep."""
    def set_now(when: float) -> None:
        monkeypatch.setenv("TARGETRUN_NOW", str(when))
    set_now(T0)
    return set_now


def states(result) -> dict[str, str]:
    assert result.code in (0, 1), result.text
    return {t["task"]: t["state"] for t in json.loads(result.out)["tasks"] if t["state"] != "not needed"}


# -- partial_inputs_only names any input: an upstream's argument, its task, or an arg --


PARTIAL = """
params: {n: 1, k: 10}
tasks:
  up:
    run: steps:const
    args: {value: "{params.n}", name: up}
  other:
    run: steps:const
    args: {value: 5, name: other}
  cached:
    run: steps:total
    needs: {a: up, b: other}
    args: {name: cached, scale: "{params.k}"}
    cache_for: 1h
    cache_validator: {partial_inputs_only: [NAMES]}
"""


@pytest.mark.parametrize(("names", "reruns_on_n", "reruns_on_k"), [
    ("a", True, False),      # the argument an upstream value arrives as
    ("up", True, False),     # the upstream task itself (as acts_on and the loader accept)
    ("scale", False, True),  # a plain argument: Prefect's inputs are every run() argument
    ("b", False, False),
])
def test_partial_inputs_only_may_name_any_input(project, steps, at, names, reruns_on_n, reruns_on_k):
    proj = project(PARTIAL.replace("NAMES", names), steps=steps)
    assert proj.cli("validate").code == 0, proj.cli("validate").text
    assert states(proj.cli("run", "--json"))["cached"] == "succeeded"
    at(T0 + 60)
    assert states(proj.cli("run", "--json"))["cached"] == "cached"
    at(T0 + 120)
    assert (states(proj.cli("run", "--json", "-p", "n=2"))["cached"] == "succeeded") is reruns_on_n
    at(T0 + 180)
    assert (states(proj.cli("run", "--json", "-p", "k=20"))["cached"] == "succeeded") is reruns_on_k


def test_partial_inputs_only_still_refuses_a_name_that_is_no_input(project, steps):
    proj = project(PARTIAL.replace("NAMES", "scal"), steps=steps)
    result = proj.cli("validate")
    assert result.code == 2 and "'scal'" in result.err and "did you mean 'scale'" in result.err.lower()


# -- {date}: pendulum's ISO 8601, and pendulum tokens without '%' ----------------------

WHEN = dt.datetime(2026, 12, 1, 22, 8, 40, 123456, tzinfo=dt.timezone.utc)
# format(pendulum.datetime(2026, 12, 1, 22, 8, 40, 123456, tz="UTC"), spec) under pendulum 2.1.2
PENDULUM = {
    "": "2026-12-01T22:08:40.123456+00:00",
    "YYYY-MM-DD": "2026-12-01",
    "YYYY/MM/DD/HH": "2026/12/01/22",
    "YY Q M D DDD DDDD d E": "26 4 12 1 335 335 2 2",
    "MMM MMMM Do Mo Qo DDDo do": "Dec December 1st 12th 4th 335th 2nd",
    "dd ddd dddd": "Tu Tue Tuesday",
    "H HH h hh A m mm s ss": "22 22 10 10 PM 8 08 40 40",
    "S SS SSS SSSS SSSSS SSSSSS": "1 12 123 1234 12345 123456",
    "X x": "1796162920 1796162920123",
    "Z ZZ z zz": "+00:00 +0000 UTC UTC",
    "LT|LTS|L|LL": "10:08 PM|10:08:40 PM|12/01/2026|December 1, 2026",
    "LLL|LLLL": "December 1, 2026 10:08 PM|Tuesday, December 1, 2026 10:08 PM",
    "[day] YYYY \\Y": "day 2026 Y",
    "%Y-%m-%dT%H": "2026-12-01T22",  # a '%' anywhere: strftime, as pendulum does
    "YYYY-%m": "YYYY-12",
}


@pytest.mark.parametrize("spec", list(PENDULUM))
def test_date_specs_render_as_pendulum_does(spec):
    assert templating.render("{date:" + spec + "}" if spec else "{date}", {"date": WHEN}) == PENDULUM[spec]


@pytest.mark.parametrize(("day", "ordinal", "hour", "meridiem"), [
    (1, "1st", 0, "12 AM"), (2, "2nd", 11, "11 AM"), (3, "3rd", 12, "12 PM"), (4, "4th", 13, "1 PM"),
    (11, "11th", 23, "11 PM"), (12, "12th", 1, "1 AM"), (13, "13th", 0, "12 AM"), (21, "21st", 0, "12 AM"),
    (22, "22nd", 0, "12 AM"), (23, "23rd", 0, "12 AM"), (31, "31st", 0, "12 AM"),
])
def test_pendulum_ordinals_and_twelve_hour_clock(day, ordinal, hour, meridiem):
    when = dt.datetime(2026, 1, day, hour, tzinfo=dt.timezone.utc)
    assert templating.render("{date:Do|h A}", {"date": when}) == f"{ordinal}|{meridiem}"


def test_a_midnight_date_has_no_fraction_and_a_week_starts_on_sunday():
    sunday = dt.datetime(2026, 1, 4, tzinfo=dt.timezone.utc)
    assert templating.render("{date}|{date:d E dddd}", {"date": sunday}) == "2026-01-04T00:00:00+00:00|0 7 Sunday"


@pytest.mark.parametrize("token", ["w", "W", "wo", "gggg", "GGGG", "k", "EE", "a", "SSSSSSS"])
def test_pendulum_tokens_it_renders_blank_or_wrong_are_refused_at_load(project, steps, token):
    """pendulum 2 renders these as '' or as the letters themselves (``a``): a target
    written with one would silently collide, so the file is refused and says what to do."""
    proj = project(f"tasks:\n  t:\n    run: steps:const\n    target: out/{{date:YYYY-{token}}}.json\n", steps=steps)
    result = proj.cli("validate")
    assert result.code == 2, result.text
    assert f"{token!r}" in result.err and "[" in result.err  # names the token, says how to write text


def test_pendulum_tokens_are_rendered_in_a_real_run(project, steps):
    proj = project("""
    tasks:
      t:
        shell: "echo {date} > {output}"
        target: "out/{date:YYYY/MM/DD}/{date:dddd}.txt"
    """, steps=steps)
    result = proj.cli("run", "--date", "2026-12-01T22:08:40")
    assert result.code == 0, result.text
    assert proj.read("out/2026/12/01/Tuesday.txt").strip() == "2026-12-01T22:08:40+00:00"


def test_an_item_that_is_a_date_takes_pendulum_tokens_too():
    assert templating.render("{item:YYYY/MM}", {"item": dt.date(2026, 3, 9)}) == "2026/03"
    with pytest.raises(TemplateError, match="'W'"):
        templating.render("{item:W}", {"item": dt.date(2026, 3, 9)})


@pytest.mark.parametrize(("template", "varies"), [
    ("{date:YYYY-MM-DD}", False), ("{date:dddd Do MMMM}", False), ("{date:L}", False),
    ("{date:YYYY-MM-DD HH}", True), ("{date:X}", True), ("{date:LT}", True), ("{date:[HH] YYYY}", False),
])
def test_pendulum_specs_say_whether_they_vary_within_a_day(template, varies):
    assert templating.varies_within_a_day(template) is varies


# -- an upstream target nobody recorded is fingerprinted by its content -------------------


UNRECORDED = {
    "shell": """
    tasks:
      src:
        shell: "echo 1 > {output}"
        target: in/src.txt
      use:
        shell: "cat {needs.src} > {output}; echo use >> calls.log"
        needs: [src]
        cache_for: 1h
        cache_validator: all_inputs
    """,
    "python": """
    tasks:
      src:
        run: steps:const
        target: in/src.txt
        serializer: json
      use:
        run: steps:inc
        needs: {x: src}
        args: {name: use}
        cache_for: 1h
        cache_validator: all_inputs
    """,
}


@pytest.mark.parametrize("kind", list(UNRECORDED))
def test_an_unrecorded_upstream_target_is_fingerprinted_by_content(project, steps, at, kind):
    """Prefect's all_inputs compares the input values (dask's tokenize): a target that no
    run recorded (made by hand, by another tool) is compared by its bytes, not its size
    and age -- the same at planning and when the entry is written."""
    proj = project(UNRECORDED[kind], steps=steps)
    src = proj.write("in/src.txt", "17\n")
    os.utime(src, (T0 - 600, T0 - 600))
    assert states(proj.cli("run", "--json")) == {"src": "skipped", "use": "succeeded"}
    at(T0 + 60)
    assert states(proj.cli("run", "--json"))["use"] == "cached"
    # the same bytes written again (a copy, a fresh clone): a new mtime is no change
    src.write_text("17\n")
    os.utime(src, (T0 - 30, T0 - 30))
    at(T0 + 120)
    assert states(proj.cli("run", "--json"))["use"] == "cached"
    # other bytes of the same size, with the old mtime put back: a change all the same
    src.write_text("18\n")
    os.utime(src, (T0 - 30, T0 - 30))
    at(T0 + 180)
    assert states(proj.cli("run", "--json"))["use"] == "succeeded"
    assert proj.counts() == {"use": 2}


# -- tasks sharing a cache_key keep their own entries --------------------------------


SHARED = """
name: shared
tasks:
  a:
    shell: "echo a > {output}; echo a >> calls.log"
    cache_for: 1h
    cache_key: one-key
  b:
    shell: "echo b > {output}; echo b >> calls.log"
    cache_for: 1h
    cache_key: one-key
"""


def test_tasks_sharing_a_cache_key_keep_their_own_entries(project, at):
    """Prefect 1 appends each task's Cached state to the list under the key and checks
    every candidate; one task's write never drops another's."""
    proj = project(SHARED)
    assert states(proj.cli("run", "--json", "a")) == {"a": "succeeded"}
    at(T0 + 60)
    assert states(proj.cli("run", "--json", "--force", "b", "b")) == {"b": "succeeded"}
    listing = json.loads(proj.cli("cache", "list", "--json").out)
    assert sorted(e["task"] for e in listing) == ["a", "b"]
    assert proj.cli("cache", "clear", "--task", "b").code == 0
    at(T0 + 120)
    assert states(proj.cli("run", "--json", "a")) == {"a": "cached"}  # its own entry is still there
    assert proj.counts() == {"a": 1, "b": 1}


# -- each validator against Prefect 1.4.1's, case by case ----------------------------------

HOUR = 3600.0
NOW = 1_800_000_000.0
V = Validator
POLICIES = {  # Prefect's validator (with validate_on) -> targetrun's policy
    "duration_only": CachePolicy(HOUR, V.DURATION_ONLY),
    "all_inputs": CachePolicy(HOUR, V.ALL_INPUTS),
    "all_parameters": CachePolicy(HOUR, V.ALL_PARAMETERS),
    "partial_inputs_only[x]": CachePolicy(HOUR, V.PARTIAL_INPUTS_ONLY, ("x",)),
    "partial_parameters_only[p]": CachePolicy(HOUR, V.PARTIAL_PARAMETERS_ONLY, ("p",)),
    "partial_inputs_only[]": CachePolicy(HOUR, V.PARTIAL_INPUTS_ONLY, ()),
    "partial_parameters_only[]": CachePolicy(HOUR, V.PARTIAL_PARAMETERS_ONLY, ()),
    "never_use": CachePolicy(HOUR, V.NEVER_USE),
}
# (age of the entry, recorded inputs, recorded parameters, inputs now, parameters now) and
# which validators keep the entry: Prefect 1.4.1's cache_validators.py run on these very
# values (hashed_inputs by dask's tokenize, cached_parameters compared with ==).
ALL = frozenset(POLICIES) - {"never_use"}
NO_INPUTS = ALL - {"all_inputs", "partial_inputs_only[x]"}
NO_PARAMS = ALL - {"all_parameters", "partial_parameters_only[p]"}
CASES = {
    "same": (60, {"x": 1, "y": "a"}, {"p": 1, "q": "b"}, {"x": 1, "y": "a"}, {"p": 1, "q": "b"}, ALL),
    "a second before expiry": (HOUR - 1, {"x": 1}, {"p": 1}, {"x": 1}, {"p": 1}, ALL),
    # duration_only: `cached_result_expiration > now`, so an entry is gone at its expiry exactly
    "exactly at expiry": (HOUR, {"x": 1}, {"p": 1}, {"x": 1}, {"p": 1}, frozenset()),
    "expired": (HOUR + 1, {"x": 1}, {"p": 1}, {"x": 1}, {"p": 1}, frozenset()),
    "named input changed": (60, {"x": 1, "y": "a"}, {"p": 1}, {"x": 2, "y": "a"}, {"p": 1}, NO_INPUTS),
    "other input changed": (60, {"x": 1, "y": "a"}, {"p": 1}, {"x": 1, "y": "b"}, {"p": 1}, ALL - {"all_inputs"}),
    "input added": (60, {"x": 1}, {"p": 1}, {"x": 1, "z": 0}, {"p": 1}, ALL - {"all_inputs"}),
    "input removed": (60, {"x": 1, "z": 0}, {"p": 1}, {"x": 1}, {"p": 1}, ALL - {"all_inputs"}),
    "named input removed": (60, {"x": 1, "y": "a"}, {"p": 1}, {"y": "a"}, {"p": 1}, NO_INPUTS),
    "named input added": (60, {"y": "a"}, {"p": 1}, {"x": 1, "y": "a"}, {"p": 1}, NO_INPUTS),
    "named parameter changed": (60, {"x": 1}, {"p": 1, "q": "b"}, {"x": 1}, {"p": 2, "q": "b"}, NO_PARAMS),
    "other parameter changed": (60, {"x": 1}, {"p": 1, "q": "b"}, {"x": 1}, {"p": 1, "q": "c"}, ALL - {"all_parameters"}),
    "parameter added": (60, {"x": 1}, {"p": 1}, {"x": 1}, {"p": 1, "r": 0}, ALL - {"all_parameters"}),
    "parameter removed": (60, {"x": 1}, {"p": 1, "r": 0}, {"x": 1}, {"p": 1}, ALL - {"all_parameters"}),
    "None stays None": (60, {"x": None}, {"p": None}, {"x": None}, {"p": None}, ALL),
    "input None to 0": (60, {"x": None}, {"p": 1}, {"x": 0}, {"p": 1}, NO_INPUTS),
    "parameter None to 0": (60, {"x": 1}, {"p": None}, {"x": 1}, {"p": 0}, NO_PARAMS),
    "input 1 to '1'": (60, {"x": 1}, {"p": 1}, {"x": "1"}, {"p": 1}, NO_INPUTS),
    "input 1 to [1]": (60, {"x": 1}, {"p": 1}, {"x": [1]}, {"p": 1}, NO_INPUTS),
    "input 1 to 1.0": (60, {"x": 1}, {"p": 1}, {"x": 1.0}, {"p": 1}, NO_INPUTS),
    "input 1 to True": (60, {"x": 1}, {"p": 1}, {"x": True}, {"p": 1}, NO_INPUTS),
    "input mapping reordered": (60, {"x": {"a": 1, "b": 2}}, {"p": 1}, {"x": {"b": 2, "a": 1}}, {"p": 1}, ALL),
    "parameter 1 to '1'": (60, {"x": 1}, {"p": 1}, {"x": 1}, {"p": "1"}, NO_PARAMS),
    "parameter list reordered": (60, {"x": 1}, {"p": [1, 2]}, {"x": 1}, {"p": [2, 1]}, NO_PARAMS),
}
# Where targetrun deliberately differs, and why. Prefect compares parameters with ==, so
# 1, 1.0 and True are one value to it; targetrun compares fingerprints of the value as
# written, and a task given 1.0 may well write "1.0": it reruns (never serves a value made
# from another parameter value). It differs only towards rerunning.
STRICTER = {
    "parameter 1 to 1.0": (60, {"x": 1}, {"p": 1}, {"x": 1}, {"p": 1.0}, NO_PARAMS),
    "parameter 1 to True": (60, {"x": 1}, {"p": 1}, {"x": 1}, {"p": True}, NO_PARAMS),
}


def _fingerprints(values: dict[str, object]) -> dict[str, str]:
    return {name: fingerprint.of_value(value) for name, value in values.items()}


@pytest.mark.parametrize("case", [*CASES, *STRICTER])
@pytest.mark.parametrize("validator", list(POLICIES))
def test_each_validator_keeps_an_entry_when_prefect_does(validator, case):
    age, recorded_inputs, recorded_params, inputs, params, keeps = {**CASES, **STRICTER}[case]
    policy = POLICIES[validator]
    written = NOW - age
    record = Checkpoint("t", "/cache/t.pkl", "pickle", 1, "ab", "run-1", written,
                        inputs=_fingerprints(recorded_inputs), params=_fingerprints(recorded_params))
    entry = new_entry("k", "p", "t", record, policy)
    decision, hit = decide(Facts(policy, None, False, NOW, entries=(entry,), inputs=_fingerprints(inputs),
                                 params=_fingerprints(params)))
    assert (hit is not None) is (validator in keeps), decision
    assert decision.reason is (Reason.CACHE_HIT if validator in keeps else decision.reason)
    if hit is None:  # the reason names what Prefect's validator looked at
        assert decision.runs and decision.reason is not Reason.CACHE_HIT



@pytest.mark.parametrize(("writer_ttl", "reader_ttl", "age", "prefect_hits", "hits"), [
    (60.0, HOUR, 120, False, False),     # the writer's expiry passed: gone for both
    (HOUR, HOUR, 120, True, True),
    (HOUR, 60.0, 30, True, True),
    # Prefect keeps the writer's cached_result_expiration; targetrun also caps it at the
    # reader's own cache_for (README: a value no older than the task's cache_for), so a
    # task with a shorter cache_for under a shared cache_key reruns where Prefect hits.
    (HOUR, 60.0, 120, True, False),
])
def test_a_shared_key_entry_lives_until_the_writers_expiry_or_the_readers_cache_for(
        writer_ttl, reader_ttl, age, prefect_hits, hits):
    record = Checkpoint("writer", "/cache/w.pkl", "pickle", 1, "ab", "run-1", NOW - age)
    entry = new_entry("shared", "p", "writer", record, CachePolicy(writer_ttl, V.DURATION_ONLY, key="shared"))
    reader = CachePolicy(reader_ttl, V.DURATION_ONLY, key="shared")
    decision, hit = decide(Facts(reader, None, False, NOW, entries=(entry,)))
    assert (hit is not None) is hits, decision
    assert prefect_hits is (NOW < record.written_at + writer_ttl)  # Prefect's duration_only, on the same entry
    assert hits is (prefect_hits and age < reader_ttl)

# -- what a run stores: on a miss, an entry with every input and parameter; on a hit, nothing


STORED = """
params: {n: 1, unused: a}
tasks:
  up:
    run: steps:const
    args: {value: "{params.n}", name: up}
    target: out/up-{params.n}.json
  t:
    run: steps:inc
    needs: {x: up}
    args: {name: t}
    cache_for: 1h
    cache_validator: VALIDATOR
"""


def test_a_hit_stores_nothing_so_the_entry_expires_when_first_written_plus_cache_for(project, steps, at):
    """Prefect's cache_result runs only for a task that ran (a Cached state from a hit is
    returned as it is): a hit never extends the entry's expiry."""
    proj = project(STORED.replace("VALIDATOR", "duration_only"), steps=steps)
    assert states(proj.cli("run", "--json"))["t"] == "succeeded"
    at(T0 + HOUR / 2)
    assert states(proj.cli("run", "--json"))["t"] == "cached"
    at(T0 + HOUR - 1)
    assert states(proj.cli("run", "--json"))["t"] == "cached"
    at(T0 + HOUR)  # expiry > now fails at the expiry itself
    assert states(proj.cli("run", "--json"))["t"] == "succeeded"
    assert proj.counts() == {"up": 1, "t": 2}


def test_an_entry_keeps_every_input_and_parameter_whatever_its_validator(project, steps, at):
    """Prefect's Cached state holds hashed_inputs of every input and all the flow's
    parameters, whichever validator the task had: a stricter validator written later
    judges the same entry."""
    proj = project(STORED.replace("VALIDATOR", "duration_only"), steps=steps)
    assert states(proj.cli("run", "--json"))["t"] == "succeeded"
    proj.write("Pipelinefile.yaml", STORED.replace("VALIDATOR", "[all_inputs, all_parameters]"))
    at(T0 + 60)
    assert states(proj.cli("run", "--json"))["t"] == "cached"
    at(T0 + 120)
    assert states(proj.cli("run", "--json", "-p", "unused=b"))["t"] == "succeeded"  # every parameter counts


def test_a_shared_key_serves_the_newest_valid_entry_as_prefects_backend_does(project, at):
    """When entries of two tasks under one key both pass, the newest is served. Prefect 1.4.1
    answers two ways: ``flow.run``'s in-memory ``context.caches`` list is checked oldest
    first, but the persistent store targetrun's model is -- ``CloudTaskRunner`` asking the
    backend's ``get_latest_cached_states``, ``order_by: state_timestamp desc`` -- gives the
    newest first. The newest is also the one valid longest."""
    proj = project(SHARED + """
  use:
    shell: "cat {needs.a} >> seen.txt"
    needs: [a]
""")
    assert states(proj.cli("run", "--json", "use")) == {"a": "succeeded", "use": "succeeded"}
    at(T0 + 60)
    assert states(proj.cli("run", "--json", "--force", "b", "b")) == {"b": "succeeded"}
    at(T0 + 120)
    result = proj.cli("run", "--json", "use")
    assert states(result) == {"a": "cached", "use": "succeeded"}
    hit = next(t for t in json.loads(result.out)["tasks"] if t["task"] == "a")
    assert proj.read("seen.txt").split() == ["a", "b"], hit  # b's value, written at T0 + 60
    assert proj.counts() == {"a": 1, "b": 1}
