"""``targetrun gc``: prune what old runs left behind, never what a target or cache entry uses.

Every run leaves a run record and task records in the state store, the logs of the tasks
that printed (``.targetrun/logs/RUN_ID/``) and the values of its tasks without a target
(``.targetrun/results/RUN_ID/``, in each result location); every edit of the Pipelinefile
leaves a spec cache file (``.targetrun/pipelinefile/``). :func:`collect` decides what of that may
go, :func:`apply` removes it. The rules:

* A run goes when it is older than the window kept: beyond the newest ``keep_runs`` runs
  of this pipeline *and* (if given) started before ``older_than`` ago. A run still
  running, or with a checkpoint write still pending, always stays.
* A pruned run's values without a target go -- unless a cache entry still points to one,
  or a run that stays recorded it (then the file and its record stay). A target is never
  removed, and neither is the record that vouches for its bytes.
* Folders under ``.targetrun/logs`` and ``.targetrun/results`` of runs this store has no
  record of (the store was moved aside, or an earlier gc kept a value a cache entry used)
  go by their age, against the same window.
* Spec cache files other than the current Pipelinefile's go (another Pipelinefile in the
  same folder loses its cache too; that costs its next load one parse).
* Nothing outside the Pipelinefile's ``.targetrun/`` folder is touched on disk, except a
  recorded value without a target inside another result location's ``.targetrun/results/``;
  a symlinked ``.targetrun``, ``logs`` or ``results`` folder is left alone.
"""

from __future__ import annotations

import math
import os
import shutil
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from targetrun.errors import TargetrunError
from targetrun.model import Checkpoint, PipelineSpec
from targetrun.resolve import CHECKPOINT_DIR, INLINE, LOCAL, LOGS, result_base
from targetrun.pipelinefile import SPEC_CACHE_DIR, spec_cache_file
from targetrun.replay import FOLDER as REPLAY_DIR
from targetrun.storage.base import Storage
from targetrun.store.base import RunRecord, RunStatus, StateStore, as_seen

STATE_DIR = ".targetrun"
TMP_GRACE = 3600.0  # a spec cache's temporary file younger than this may still be being written


@dataclass(frozen=True)
class Policy:
    """What is kept: the newest ``keep_runs`` runs and (or) the runs of the last
    ``older_than`` seconds; a run goes only when neither keeps it."""

    keep_runs: int | None = None
    older_than: float | None = None


@dataclass
class Collected:
    """What :func:`apply` removes (or, with ``--dry-run``, would)."""

    runs: list[str] = field(default_factory=list)  # run ids whose records go
    logs: list[str] = field(default_factory=list)  # log folders (absolute paths)
    results: list[Checkpoint] = field(default_factory=list)  # recorded values without a target
    unrecorded: list[str] = field(default_factory=list)  # files in a pruned run's results folder nothing recorded
    folders: list[str] = field(default_factory=list)  # results folders removed once empty
    kept: dict[str, str] = field(default_factory=dict)  # location -> why it stays
    spec_caches: list[str] = field(default_factory=list)
    replays: list[str] = field(default_factory=list)  # no-op certificates (targetrun/replay.py)

    @property
    def freed(self) -> int:
        """Bytes of the values that go (log and spec files are not counted)."""
        return sum(c.size for c in self.results) + sum(_size(p) for p in self.unrecorded)


def collect(spec: PipelineSpec, store: StateStore, policy: Policy, now: float, lease: float) -> Collected:
    runs = store.runs(spec.name, limit=2**31 - 1)  # newest first
    busy = {pending.run_id for pending in store.pending_writes()}
    doomed = [r.run_id for index, r in enumerate(runs) if _expired(policy, index, r.started, now)
              and as_seen(r, now, lease).status is not RunStatus.RUNNING and r.run_id not in busy]
    found = Collected(runs=doomed)
    known = {r.run_id for r in runs}
    window = _window(policy, runs, now)
    orphans = [name for name in _run_folders(spec.root)
               if name not in known and name not in busy and store.run(name) is None
               and _folder_age(spec.root, name) < window]
    gone = {name for name in [*doomed, *orphans] if _safe_name(name)}  # a run id is a folder name: never a path
    if _state_subdir(spec.root, LOGS) is not None:
        found.logs = sorted(path for name in gone if os.path.lexists(path := _folder(spec.root, LOGS, name)))
    _collect_results(spec, store, doomed, gone, found)
    found.spec_caches = _stale_spec_caches(spec, now)
    found.replays = _replay_certificates(spec)
    return found


def apply(found: Collected, spec: PipelineSpec, store: StateStore, storages: Callable[[str], Storage]) -> None:
    """Remove what :func:`collect` found: files first, then the records that named them,
    so an interruption leaves at worst a record of a missing value (read as missing)."""
    for checkpoint in found.results:
        storages(checkpoint.storage).remove(checkpoint.location)
        store.forget_checkpoint(checkpoint.location)
    for path in found.unrecorded:
        _unlink(path)
    for folder in found.folders:
        _prune_empty(folder)
    for folder in found.logs:
        _remove_tree(folder)
    for path in [*found.spec_caches, *found.replays]:
        _unlink(path)
    store.prune_runs(spec.name, found.runs)


# -- which runs --------------------------------------------------------------------------


def _expired(policy: Policy, index: int, started: float, now: float) -> bool:
    beyond = policy.keep_runs is None or index >= policy.keep_runs
    old = policy.older_than is None or started < now - policy.older_than
    return beyond and old


def _window(policy: Policy, runs: list[RunRecord], now: float) -> float:
    """Folders of unknown runs older than this (epoch seconds) are outside the window kept."""
    limit = math.inf
    if policy.older_than is not None:
        limit = now - policy.older_than
    if policy.keep_runs is not None and policy.keep_runs > 0:
        limit = min(limit, runs[policy.keep_runs - 1].started if len(runs) >= policy.keep_runs else -math.inf)
    return limit


# -- values without a target ---------------------------------------------------------------


def _collect_results(spec: PipelineSpec, store: StateStore, doomed: list[str], gone: set[str], found: Collected) -> None:
    """The values without a target of the runs that go: each one recorded in a run's
    results folder (any result location), and files in a local results folder of such a
    run. A value stays when a cache entry or a run that stays points to it."""
    candidates: dict[str, Checkpoint | None] = {}
    folders = _results_folders(spec)
    for run_id in doomed:
        for checkpoint in store.run_checkpoints(run_id).values():
            if _in_results_of(folders, checkpoint, run_id) and not _has_target(spec, checkpoint.task):
                candidates[checkpoint.location] = checkpoint
    local = [] if _state_subdir(spec.root, CHECKPOINT_DIR) is None else \
        sorted(_folder(spec.root, CHECKPOINT_DIR, name) for name in gone)
    for folder in local:
        for path in _files(folder):
            candidates.setdefault(path, None)
    if not candidates:
        return
    records = store.checkpoints(list(candidates))
    cached = {entry.checkpoint.location for entry in store.list_cache(None)}
    for location in candidates:
        record = records.get(location)
        if location in cached:
            found.kept[location] = "a cache entry points to it"
        elif record is not None and record.run_id not in gone:
            found.kept[location] = f"run {record.run_id} recorded it"
        elif record is not None and _has_target(spec, record.task):
            found.kept[location] = f"it is the target of {record.task!r}"
        elif record is not None and _through_a_symlink(folders, record):
            found.kept[location] = "its folder is reached through a symlink, which gc does not follow"
        elif record is not None:
            found.results.append(record)
        else:
            found.unrecorded.append(location)
    found.folders = [folder for folder in local if os.path.isdir(folder)]


def _results_folders(spec: PipelineSpec) -> set[tuple[str, str]]:
    """(storage, folder or URL prefix) of each result location this pipeline's tasks use:
    where their values without a target are kept, under ``.targetrun/results/RUN_ID/``."""
    bases = {result_base(spec, task.result) for task in spec.tasks.values() if task.result != INLINE}
    return {(base.result, base.url.rstrip("/")) for base in bases}


def _in_results_of(folders: set[tuple[str, str]], checkpoint: Checkpoint, run_id: str) -> bool:
    """Whether a recorded value lies directly in the ``.targetrun/results/RUN_ID/`` folder
    of one of ``folders``, served by that folder's storage. The record comes from the state
    store -- data another process may have written --, so a location that leaves that folder
    (a ``..`` segment, another project's results folder, another storage) is never removed.

    >>> folders = {("local", "/w"), ("s3", "s3://b/lake")}
    >>> def at(location, storage="local"):
    ...     return _in_results_of(folders, Checkpoint("t", location, "json", 1, "h", "r1", 0.0, storage=storage), "r1")
    >>> at("/w/.targetrun/results/r1/a.pkl"), at("s3://b/lake/.targetrun/results/r1/a", "s3")
    (True, True)
    >>> at("/w/out/r1/a.pkl"), at("/w/.targetrun/results/r10/a.pkl"), at("/w/.targetrun/results/r1/../../../x")
    (False, False, False)
    >>> at("/elsewhere/.targetrun/results/r1/a.pkl"), at("/w/.targetrun/results/r1/a.pkl", "s3")
    (False, False)
    """
    if not _safe_name(run_id):
        return False
    location = checkpoint.location
    for storage, folder in folders:
        inside = f"{folder}/{CHECKPOINT_DIR}/{run_id}/" if storage != LOCAL else \
            os.path.join(folder, CHECKPOINT_DIR, run_id) + os.sep
        if checkpoint.storage == storage and location.startswith(inside) and _safe_name(location[len(inside):]):
            return True
    return False


def _through_a_symlink(folders: set[tuple[str, str]], checkpoint: Checkpoint) -> bool:
    """Whether a recorded local value in a run's results folder (:func:`_in_results_of`)
    is reached through a symlink below its result location -- a symlinked ``.targetrun``,
    ``results`` or run folder, which may lead anywhere: removing the recorded path would
    remove a file there. (The result location's own folder may be a symlink: the author's.)"""
    if checkpoint.storage != LOCAL:
        return False
    folder = os.path.dirname(checkpoint.location)
    real = os.path.realpath(folder)
    return not any(storage == LOCAL and folder.startswith(base.rstrip(os.sep) + os.sep)
                   and real == os.path.join(os.path.realpath(base), os.path.relpath(folder, base))
                   for storage, base in folders)


def _has_target(spec: PipelineSpec, task: str) -> bool:
    declared = spec.tasks.get(task.split("[", 1)[0])
    return declared is not None and declared.target is not None


# -- local folders -------------------------------------------------------------------------


def _safe_name(name: str) -> bool:
    return bool(name) and name not in (".", "..") and os.path.basename(name) == name and "/" not in name


def _folder(root: str, kind: str, name: str) -> str:
    assert _safe_name(name), name
    return os.path.join(root, kind, name)


def _state_subdir(root: str, kind: str) -> str | None:
    """A folder under the project's ``.targetrun`` (``logs``, ``results``, ``spec``,
    ``replay``), or None when it (or ``.targetrun``) is missing or a symlink: gc never
    follows one out of the project."""
    state = os.path.join(root, STATE_DIR)
    sub = os.path.join(root, kind)
    if os.path.islink(state) or os.path.islink(sub) or not os.path.isdir(sub):
        return None
    return sub


def _run_folders(root: str) -> list[str]:
    """Run ids that have a logs or results folder in the project."""
    names: set[str] = set()
    for kind in (LOGS, CHECKPOINT_DIR):
        sub = _state_subdir(root, kind)
        if sub is not None:
            names.update(entry.name for entry in os.scandir(sub) if _safe_name(entry.name)
                         and (entry.is_dir(follow_symlinks=False) or entry.is_symlink()))
    return sorted(names)


def _folder_age(root: str, name: str) -> float:
    """When a run's folders were last written (the newest of its logs and results folders)."""
    times = [os.lstat(path).st_mtime for kind in (LOGS, CHECKPOINT_DIR)
             if os.path.lexists(path := _folder(root, kind, name))]
    return max(times, default=math.inf)


def _files(folder: str) -> Iterable[str]:
    """Every file (and symlink) in a run's results folder; a symlinked folder is not entered."""
    if os.path.islink(folder) or not os.path.isdir(folder):
        return []
    found: list[str] = []
    for parent, dirs, files in os.walk(folder):  # does not follow symlinked folders
        found.extend(os.path.join(parent, name) for name in files)
        found.extend(os.path.join(parent, name) for name in dirs if os.path.islink(os.path.join(parent, name)))
    return found


def _remove_tree(folder: str) -> None:
    """A folder under ``.targetrun/``; a symlink is removed as a link, never followed."""
    try:
        if os.path.islink(folder):
            os.unlink(folder)
        else:
            shutil.rmtree(folder)
    except FileNotFoundError:
        pass
    except OSError as exc:
        raise TargetrunError(f"cannot remove {folder}: {exc.strerror or exc}") from None


def _prune_empty(folder: str) -> None:
    """Remove a results folder's empty subfolders and the folder itself, bottom up; a
    folder that still holds a kept value stays."""
    if os.path.islink(folder) or not os.path.isdir(folder):
        return
    for parent, _, _ in sorted(os.walk(folder), key=lambda step: -len(step[0])):
        try:
            os.rmdir(parent)
        except OSError:
            pass  # not empty: something in it stays


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    except OSError as exc:
        raise TargetrunError(f"cannot remove {path}: {exc.strerror or exc}") from None


def _size(path: str) -> int:
    try:
        return os.lstat(path).st_size
    except OSError:
        return 0


# -- spec caches ---------------------------------------------------------------------------


def _stale_spec_caches(spec: PipelineSpec, now: float) -> list[str]:
    """Spec cache files of other contents or versions of the Pipelinefile (and temporary
    files a writer left more than an hour ago)."""
    folder = _state_subdir(spec.root, SPEC_CACHE_DIR)
    if folder is None:
        return []
    try:
        current = os.path.basename(spec_cache_file(spec.path))
    except TargetrunError:
        current = ""  # the file went away meanwhile: every cache is stale
    stale = []
    for entry in os.scandir(folder):
        if not entry.is_file(follow_symlinks=False):
            continue
        if entry.name.endswith(".json") and entry.name != current:
            stale.append(entry.path)
        elif entry.name.startswith(".tmp-") and entry.stat(follow_symlinks=False).st_mtime < now - TMP_GRACE:
            stale.append(entry.path)
    return sorted(stale)


def _replay_certificates(spec: PipelineSpec) -> list[str]:
    """Every no-op certificate: each is only a shortcut, and the next no-op that finds none
    checks in full once and certifies itself again (a certificate never goes stale by
    itself: all it rests on is checked whenever it is used)."""
    folder = _state_subdir(spec.root, REPLAY_DIR)
    if folder is None:
        return []
    return sorted(entry.path for entry in os.scandir(folder) if entry.is_file(follow_symlinks=False))
