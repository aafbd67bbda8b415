"""Key-level differences of configuration files and lockfiles (``project/configs.json``,
``project/lockfiles.json``): the ``configs`` and ``lockfiles`` sections of the environment diff.

**configs** — files are matched by their stored path, by ``--config-map A=B`` and by role (a removed and an
added file of the same format with most keys in common; :mod:`envsnap.diff.config_pairing`, the pairs
named in the section's note); within a file every difference is keyed ``PATH:DOTTED.KEY``
(``conf/app.yaml:model.normalize``, ``A → B:KEY`` for a pair across names, list items as ``[3]``, keys with
dots quoted as ``["a.b"]``): a key added or removed (with its whole subtree as the value), a value changed, a **type**
change (``"false"`` → ``false`` says "type string → boolean"), and a list of scalars changed as one
change whose note lists the items added, removed and moved. A redacted value compares through its keyed
digest, as environment variables do: "redacted value changed" or, without comparable digests, "cannot tell".
A file that could not be read on one side is one change naming both errors.

**lockfiles** — files matched by path; each package keyed ``PATH:NAME`` with its pin (``1.26.4``) or
requirement (``>=1.2``), a file whose content changed while its pins did not, and the disagreements between
the environment and a lock (``uv.lock:numpy (installed)``) that are new, gone or different in ``b`` because
the installed package changed (a disagreement that only the lock's own pin change made or ended is that pin
change's row). A disagreement present on both sides is not a difference; it is stated in the section's note.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from envsnap.diff.env_common import SectionChanges, describe_list_change
from envsnap.diff.env_members import Missing, read_member
from envsnap.diff.model import SectionDiff
from envsnap.errors import EnvsnapError, IntegrityError, OptionError, UnsafeArchiveError

if TYPE_CHECKING:
    from envsnap.snapshot.model import Snapshot

FORK = " || "
MEMBERS = {"configs": "project/configs.json", "lockfiles": "project/lockfiles.json"}
#: How many disagreements present on both sides the lockfiles note spells out.
NOTE_DISAGREEMENTS = 3


def type_name(value: Any) -> str:
    """The JSON type of a parsed value: null, boolean, integer, number, string, array, object."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _json(value: Any) -> str:
    """A short JSON spelling that keeps ``"false"`` and ``false`` apart."""
    import json

    text = json.dumps(value, ensure_ascii=False, sort_keys=True)
    return text if len(text) <= 40 else text[:39] + "…"


def _scalar_list(value: list[Any]) -> bool:
    return all(not isinstance(v, (list, dict)) for v in value)


class TreeDiffer:
    """Compares two parsed config trees into ``out``; ``digests`` says whether redacted digests compare."""

    def __init__(
        self,
        out: SectionChanges,
        prefix: str,
        redacted: tuple[Mapping[str, Any], Mapping[str, Any]],
        comparable: bool,
        why_not: str | None = None,
    ) -> None:
        self.out = out
        self.prefix = prefix
        self.redacted_a, self.redacted_b = redacted
        self.comparable = comparable
        self.why_not = why_not or "cannot tell: the redaction keys differ or are missing"

    def key(self, path: str) -> str:
        return f"{self.prefix}:{path}" if path else self.prefix

    def compare(self, a: Any, b: Any, path: str = "") -> None:
        """Walk both trees from ``path``."""
        from envsnap.capture.config_parsers import join_index, join_key

        if path in self.redacted_a or path in self.redacted_b:
            self._redacted(path)
            return
        ta, tb = type_name(a), type_name(b)
        if ta != tb:
            shown = f"{_json(a)} → {_json(b)}"
            self.out.add(self.key(path), "changed", a, b, note=f"type {ta} → {tb}: {shown}")
            return
        if isinstance(a, dict) and isinstance(b, dict):
            for name in sorted(set(a) | set(b)):
                child = join_key(path, name)
                if name not in b:
                    self.out.add(self.key(child), "removed", a[name], None)
                elif name not in a:
                    self.out.add(self.key(child), "added", None, b[name])
                else:
                    self.compare(a[name], b[name], child)
            return
        if isinstance(a, list) and isinstance(b, list):
            if a == b and all(type_name(x) == type_name(y) for x, y in zip(a, b, strict=True)):
                return
            if _scalar_list(a) and _scalar_list(b):
                try:
                    note = describe_list_change(a, b)
                except TypeError:  # unhashable mix: say what the sizes are
                    note = f"{len(a)} → {len(b)} items"
                note = "same items, other types" if note == "same items" and a == b else note
                self.out.add(self.key(path), "changed", a, b, note=f"list: {note}")
                return
            for index in range(min(len(a), len(b))):
                self.compare(a[index], b[index], join_index(path, index))
            for index in range(len(b), len(a)):
                self.out.add(self.key(join_index(path, index)), "removed", a[index], None, note="list item")
            for index in range(len(a), len(b)):
                self.out.add(self.key(join_index(path, index)), "added", None, b[index], note="list item")
            return
        if a != b:
            self.out.add(self.key(path), "changed", a, b)

    def _redacted(self, path: str) -> None:
        old, new = self.redacted_a.get(path), self.redacted_b.get(path)
        digest_a = old.get("digest") if isinstance(old, Mapping) else None
        digest_b = new.get("digest") if isinstance(new, Mapping) else None
        if old is None or new is None:
            self.out.add(self.key(path), "changed", redacted=True, value_changed=True, note="redacted on one side only")
        elif self.comparable and digest_a is not None and digest_b is not None:
            if digest_a != digest_b:
                self.out.add(
                    self.key(path), "changed", redacted=True, value_changed=True, note="redacted value changed"
                )
        else:
            self.out.add(self.key(path), "changed", redacted=True, value_changed=None, note=self.why_not)


def _by_path(data: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    return {str(f.get("path")): f for f in data.get("files") or () if isinstance(f, Mapping)}


def _file_errors(out: SectionChanges, path: str, old: Mapping[str, Any], new: Mapping[str, Any]) -> bool:
    """A file unreadable on either side: one change naming both states. True when that is all there is."""
    error_a, error_b = old.get("error"), new.get("error")
    if error_a is None and error_b is None:
        return False
    if error_a != error_b:
        out.add(path, "changed", error_a or "read", error_b or "read", note="the file could not be read on one side")
    return True


def compare_config_entries(
    out: SectionChanges,
    path: str,
    old: Mapping[str, Any],
    new: Mapping[str, Any],
    *,
    comparable: bool,
    why_not: str | None = None,
) -> None:
    """Differences between two entries of one config file (also used against the repository's copy)."""
    if _file_errors(out, path, old, new):
        return
    if old.get("format") != new.get("format"):
        out.add(path, "changed", old.get("format"), new.get("format"), note="format changed")
    redacted = (old.get("redacted") or {}, new.get("redacted") or {})
    TreeDiffer(out, path, redacted, comparable, why_not).compare(old.get("data"), new.get("data"))


def _digests_comparable(a: Mapping[str, Any], b: Mapping[str, Any]) -> tuple[bool, str | None]:
    key_a, key_b = a.get("key_id"), b.get("key_id")
    if key_a is None or key_b is None or key_a == key_b:
        return True, None  # a side without any redaction has no digest to disagree with
    return False, f"cannot tell: different redaction keys (a {key_a}, b {key_b})"


def diff_configs(
    a: Mapping[str, Any], b: Mapping[str, Any], *, config_map: Mapping[str, str] | None = None
) -> SectionDiff:
    """The ``configs`` section: files added or removed, and every key-level difference (module docstring).

    Files pair by path, by ``config_map`` (``a``'s file -> ``b``'s) and by role
    (:func:`~envsnap.diff.config_pairing.pair_config_files`); a pair across names is keyed ``A → B:KEY``
    and named in the section's note.
    """
    from envsnap.diff.config_pairing import pair_config_files

    out = SectionChanges("configs")
    comparable, why_not = _digests_comparable(a, b)
    files_a, files_b = _by_path(a), _by_path(b)
    pairs, removed, added = pair_config_files(files_a, files_b, config_map)
    rows = [(p.path_a, p.path_b, p.key) for p in pairs]
    rows += [(path, "", path) for path in removed] + [("", path, path) for path in added]
    for path_a, path_b, key in sorted(rows, key=lambda r: r[0] or r[1]):
        if not path_b:
            old = files_a[path_a]
            out.add(path_a, "removed", old.get("error") or old.get("format"), None, note="config file")
        elif not path_a:
            new = files_b[path_b]
            out.add(path_b, "added", None, new.get("error") or new.get("format"), note="config file")
        else:
            old, new = files_a[path_a], files_b[path_b]
            compare_config_entries(out, key, old, new, comparable=comparable, why_not=why_not)
    paired = [f"{p.path_a} ↔ {p.path_b} ({p.how})" for p in pairs if p.how]
    return out.result("compared " + "; ".join(paired) if paired else None)


def _packages(entry: Mapping[str, Any]) -> dict[str, str]:
    view = {str(k): (str(v) or "any version") for k, v in (entry.get("requirements") or {}).items()}
    view.update({str(k): str(v) for k, v in (entry.get("pins") or {}).items()})
    return view


def _disagreements(data: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    return {
        f"{d.get('file')}:{d.get('name')} (installed)": d
        for d in data.get("disagreements") or ()
        if isinstance(d, Mapping)
    }


def _wanted(files: Mapping[str, Mapping[str, Any]], drift: Mapping[str, Any]) -> tuple[str, ...] | None:
    """What the lock of a disagreement asks of its package on that side: its pinned versions, or
    ``("spec", SPECIFIER)`` for a requirement; None when the lock does not name the package."""
    entry = files.get(str(drift.get("file")))
    name = str(drift.get("name"))
    pins = entry.get("pins") if entry is not None else None
    pinned = pins.get(name) if isinstance(pins, Mapping) else None
    if pinned:
        return tuple(str(pinned).split(FORK))
    requirements = entry.get("requirements") if entry is not None else None
    specifier = requirements.get(name) if isinstance(requirements, Mapping) else None
    return ("spec", str(specifier)) if specifier is not None else None


def _accepts(wanted: tuple[str, ...], installed: str) -> bool:
    """Whether a lock asking ``wanted`` (:func:`_wanted`) is content with ``installed``."""
    from envsnap.capture.lockfiles import fits, same_version

    if wanted[0] == "spec":
        return not wanted[1] or fits(wanted[1], installed) is not False
    return any(same_version(v, installed, False) for v in wanted)


def _installed_moved(
    old: Mapping[str, Any] | None,
    new: Mapping[str, Any] | None,
    files_a: Mapping[str, Mapping[str, Any]],
    files_b: Mapping[str, Mapping[str, Any]],
) -> bool:
    """Whether a disagreement that differs between the runs is (also) a change of the installed package, not
    only of the lock: an "(installed)" row is shown only then."""
    if old is not None and new is not None:
        return old.get("installed") != new.get("installed")
    drift = new if new is not None else old
    if drift is None:
        return False
    wanted_a, wanted_b = _wanted(files_a, drift), _wanted(files_b, drift)
    if wanted_a == wanted_b:
        return True  # the lock did not move for this package: the installed one did
    installed = str(drift.get("installed"))
    if new is not None:  # new in b: was a's lock content with what b ran (so only the lock moved)?
        return wanted_a is not None and not _accepts(wanted_a, installed)
    # gone in b: the lock dropped the package, or moved to accept what a ran
    return wanted_b is not None and not _accepts(wanted_b, installed)


def _same_pins_note(old: Mapping[str, Any], new: Mapping[str, Any]) -> str:
    """What changed in a lockfile whose pins did not: the packages whose recorded hashes moved, if any."""
    hashes_a, hashes_b = old.get("hashes") or {}, new.get("hashes") or {}
    moved = sorted(n for n in set(hashes_a) & set(hashes_b) if sorted(hashes_a[n]) != sorted(hashes_b[n]))
    if not moved:
        return "content changed; same pins"
    more = f" (+{len(moved) - NOTE_DISAGREEMENTS} more)" if len(moved) > NOTE_DISAGREEMENTS else ""
    return f"content changed; same pins; hashes changed for {', '.join(moved[:NOTE_DISAGREEMENTS])}{more}"


def _git_commit(source: str) -> tuple[str, str] | None:
    """(repository, commit) of a ``git+URL@COMMIT`` source, else None."""
    if not source.startswith("git+") or FORK in source:
        return None
    repo, at, commit = source.rpartition("@")
    return (repo, commit) if at and "/" not in commit and "://" in repo else None


def _source_changes(out: SectionChanges, path: str, old: Mapping[str, Any], new: Mapping[str, Any]) -> int:
    """A source that moved for a package both sides list, keyed ``PATH:NAME (source)``: a git commit bump
    names both commits; how many were added."""
    added = 0
    for name in sorted(set(old) & set(new)):
        before, after = str(old[name]), str(new[name])
        if before == after:
            continue
        git_a, git_b = _git_commit(before), _git_commit(after)
        if git_a and git_b and git_a[0] == git_b[0]:
            note = f"git commit bump of {name}: {git_a[0].removeprefix('git+')}"
            out.add(f"{path}:{name} (source)", "changed", git_a[1][:12], git_b[1][:12], note=note)
        else:
            out.add(f"{path}:{name} (source)", "changed", before, after, note=f"source of {name} changed")
        added += 1
    return added


def diff_lockfiles(a: Mapping[str, Any], b: Mapping[str, Any]) -> SectionDiff:
    """The ``lockfiles`` section: lockfiles added/removed, pins changed, disagreements new/gone (docstring)."""
    out = SectionChanges("lockfiles")
    files_a, files_b = _by_path(a), _by_path(b)
    for path in sorted(set(files_a) | set(files_b)):
        old, new = files_a.get(path), files_b.get(path)
        if new is None and old is not None:
            out.add(path, "removed", old.get("kind"), None, note="lockfile")
            continue
        if old is None and new is not None:
            out.add(path, "added", None, new.get("kind"), note="lockfile")
            continue
        if old is None or new is None or _file_errors(out, path, old, new):
            continue
        before, after = _packages(old), _packages(new)
        out.keyed(f"{path}:", before, after)
        moved = _source_changes(out, path, old.get("sources") or {}, new.get("sources") or {})
        sha_a, sha_b = old.get("sha256"), new.get("sha256")
        if before == after and not moved and sha_a and sha_b and sha_a != sha_b:
            out.add(path, "changed", sha_a[:12], sha_b[:12], note=_same_pins_note(old, new))
    drift_a, drift_b = _disagreements(a), _disagreements(b)
    explained: list[str] = []
    for key in sorted(set(drift_a) | set(drift_b)):
        old, new = drift_a.get(key), drift_b.get(key)
        if not _installed_moved(old, new, files_a, files_b):
            if new is not None and (old is None or dict(old) != dict(new)):
                explained.append(str(new.get("message")))
            continue  # only the lock moved: its pin change is the row that says so
        if new is None and old is not None:
            out.add(key, "removed", old.get("installed"), None, note=f"only in a: {old.get('message')}")
        elif old is None and new is not None:
            out.add(key, "added", None, new.get("installed"), note=str(new.get("message")))
        elif old is not None and new is not None and dict(old) != dict(new):
            out.add(key, "changed", old.get("installed"), new.get("installed"), note=str(new.get("message")))
    both = [str(drift_b[k].get("message")) for k in sorted(set(drift_a) & set(drift_b)) if drift_a[k] == drift_b[k]]
    note = None
    if both:
        shown = "; ".join(both[:NOTE_DISAGREEMENTS])
        more = f" (and {len(both) - NOTE_DISAGREEMENTS} more)" if len(both) > NOTE_DISAGREEMENTS else ""
        note = f"both runs disagree with their lock: {shown}{more}"
    if explained:
        shown = "; ".join(explained[:NOTE_DISAGREEMENTS])
        more = f" (and {len(explained) - NOTE_DISAGREEMENTS} more)" if len(explained) > NOTE_DISAGREEMENTS else ""
        lock_note = f"with the lock's own changes, b disagrees: {shown}{more}"
        note = f"{note}; {lock_note}" if note else lock_note
    return out.result(note)


def load_project_member(snap: Snapshot, name: str, *, validate: bool = True) -> Any:
    """The parsed member of section ``name`` (configs/lockfiles); None when the snapshot predates it."""
    member = MEMBERS[name]
    status = snap.manifest.probes.get(name)
    if member not in snap:
        if status is None:
            return None
        if status.status == "error":
            return Missing(f"the {name} probe failed: {status.error}")
        return Missing("not captured (skipped)")
    try:
        data = read_member(snap, member, validate=validate)
    except (IntegrityError, UnsafeArchiveError):
        raise
    except EnvsnapError as exc:
        return Missing(f"unreadable: {exc}")
    if isinstance(data, dict) and set(data) == {"error"}:
        error = data["error"] if isinstance(data["error"], dict) else {}
        return Missing(f"the probe failed: {error.get('message') or error.get('type') or 'unknown error'}")
    return data


def diff_project_section(
    a: Snapshot, b: Snapshot, name: str, *, validate: bool = True, config_map: Mapping[str, str] | None = None
) -> SectionDiff:
    """The ``configs`` or ``lockfiles`` section of two snapshots, with a note when one side lacks it.

    ``config_map`` pairs config files across names (``--config-map``); given while a side has no configs
    to pair, it is an :class:`~envsnap.errors.OptionError`."""
    data_a = load_project_member(a, name, validate=validate)
    data_b = load_project_member(b, name, validate=validate)
    missing = [f"{side}: {d.reason}" for side, d in (("a", data_a), ("b", data_b)) if isinstance(d, Missing)]
    if config_map and name == "configs" and (missing or data_a is None or data_b is None):
        side = "a" if isinstance(data_a, Missing) or data_a is None else "b"
        raise OptionError(
            f"--config-map: snapshot {side} holds no config files to pair (captured without --config-file)"
        )
    if missing:
        return SectionDiff(name, note="cannot compare: " + "; ".join(missing))
    if data_a is None or data_b is None:
        other = data_b if data_a is None else data_a
        if isinstance(other, Mapping) and other.get("files"):
            side = "a" if data_a is None else "b"
            return SectionDiff(name, note=f"cannot compare: {side} was captured by an envsnap without {MEMBERS[name]}")
        return SectionDiff(name)
    if name == "configs":
        return diff_configs(data_a, data_b, config_map=config_map)
    return diff_lockfiles(data_a, data_b)


__all__ = [
    "MEMBERS",
    "TreeDiffer",
    "compare_config_entries",
    "diff_configs",
    "diff_lockfiles",
    "diff_project_section",
    "load_project_member",
    "type_name",
]
