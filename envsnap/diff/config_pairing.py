"""Which config file of ``a`` is compared with which of ``b``: by stored path, by ``--config-map A=B``, and by
role when the names differ.

Files with the same stored path pair first. ``--config-map A=B`` pairs ``a``'s file ``A`` with ``b``'s file
``B`` whatever their names (``A``/``B`` are the stored paths, or a unique ending of one, such as the file
name); a name that fits no file, or more than one, is an :class:`~envsnap.errors.OptionError` listing the
side's files. Then, among the files left over (removed from ``a``, added in ``b``), a removed and an added
file of the same format pair **by role** when most of their keys are in common: more than half of the keys
of both files together (:data:`MIN_SHARED`), counting every leaf key path (a list is one leaf). The best
scoring pairs are taken first; a file that could not be read never pairs on its own.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from envsnap.errors import OptionError

__all__ = ["MIN_SHARED", "FilePair", "leaf_keys", "pair_config_files", "parse_config_map"]

#: The share of the union of two files' leaf keys they must have in common to pair by role.
MIN_SHARED = 0.5


@dataclass(frozen=True)
class FilePair:
    """``a``'s file ``path_a`` compared with ``b``'s ``path_b``; ``how`` says why when the paths differ."""

    path_a: str
    path_b: str
    how: str | None = None

    @property
    def key(self) -> str:
        """The prefix of the pair's keys: the path, or ``A → B`` for files paired across names."""
        return self.path_a if self.path_a == self.path_b else f"{self.path_a} → {self.path_b}"


def parse_config_map(items: Iterable[str]) -> dict[str, str]:
    """``["A=B", ...]`` as ``{A: B}``; an item without ``=``, with an empty side, or naming a file twice is an
    :class:`OptionError`."""
    pairs: dict[str, str] = {}
    taken: set[str] = set()
    for item in items:
        name_a, sep, name_b = item.partition("=")
        name_a, name_b = name_a.strip(), name_b.strip()
        if not sep or not name_a or not name_b:
            raise OptionError(
                f"--config-map {item!r}: expected A=B, the config file of snapshot a and the one of b to compare "
                "it with (e.g. --config-map config.yaml=config-prod.yaml)"
            )
        if name_a in pairs or name_b in taken:
            raise OptionError(f"--config-map {item!r}: each config file may be mapped once")
        pairs[name_a] = name_b
        taken.add(name_b)
    return pairs


def leaf_keys(tree: Any, path: str = "") -> set[str]:
    """Every leaf key path of a parsed config (``model.lr``); a list or a scalar is a leaf."""
    from envsnap.capture.config_parsers import join_key

    if not isinstance(tree, Mapping) or (path and not tree):
        return {path} if path else set()
    out: set[str] = set()
    for name, value in tree.items():
        out |= leaf_keys(value, join_key(path, str(name)))
    return out


def _resolve(name: str, files: Mapping[str, Mapping[str, Any]], side: str) -> str:
    """The stored path ``name`` means on ``side``: itself, else the one path that ends with ``/name``."""
    if name in files:
        return name
    ending = "/" + name.lstrip("/")
    found = [p for p in files if p.endswith(ending)]
    if len(found) == 1:
        return found[0]
    listed = ", ".join(sorted(files)) or "none"
    if found:
        raise OptionError(f"--config-map: {name!r} fits several config files of {side} ({', '.join(sorted(found))})")
    raise OptionError(f"--config-map: {side} has no config file {name!r} (its config files: {listed})")


def _shared(old: Mapping[str, Any], new: Mapping[str, Any]) -> tuple[int, int]:
    """(leaf keys in common, leaf keys in all) of two readable entries."""
    keys_a, keys_b = leaf_keys(old.get("data")), leaf_keys(new.get("data"))
    return len(keys_a & keys_b), len(keys_a | keys_b)


def _readable(entry: Mapping[str, Any]) -> bool:
    return entry.get("error") is None and entry.get("data") is not None


def pair_config_files(
    files_a: Mapping[str, Mapping[str, Any]],
    files_b: Mapping[str, Mapping[str, Any]],
    config_map: Mapping[str, str] | None = None,
) -> tuple[list[FilePair], list[str], list[str]]:
    """The pairs to compare (sorted by ``a``'s path), ``a``'s files left unpaired (removed) and ``b``'s
    (added); see the module docstring for the order of the rules."""
    pairs: list[FilePair] = []
    for name_a, name_b in (config_map or {}).items():
        path_a, path_b = _resolve(name_a, files_a, "a"), _resolve(name_b, files_b, "b")
        if any(p.path_a == path_a or p.path_b == path_b for p in pairs):
            raise OptionError(f"--config-map {name_a}={name_b}: each config file may be mapped once")
        pairs.append(FilePair(path_a, path_b, "paired by --config-map"))
    mapped_a = {p.path_a for p in pairs}
    mapped_b = {p.path_b for p in pairs}
    for path in sorted(set(files_a) & set(files_b)):
        if path not in mapped_a and path not in mapped_b:
            pairs.append(FilePair(path, path))
    paired_a = {p.path_a for p in pairs}
    paired_b = {p.path_b for p in pairs}
    removed = [p for p in sorted(files_a) if p not in paired_a]
    added = [p for p in sorted(files_b) if p not in paired_b]
    candidates: list[tuple[float, str, str, int, int]] = []
    for path_a in removed:
        old = files_a[path_a]
        if not _readable(old):
            continue
        for path_b in added:
            new = files_b[path_b]
            if not _readable(new) or old.get("format") != new.get("format"):
                continue
            common, union = _shared(old, new)
            if union and common / union > MIN_SHARED:
                candidates.append((-common / union, path_a, path_b, common, union))
    for _, path_a, path_b, common, union in sorted(candidates):
        if path_a in removed and path_b in added:
            how = f"paired by role: {common} of {union} keys in common"
            pairs.append(FilePair(path_a, path_b, how))
            removed.remove(path_a)
            added.remove(path_b)
    pairs.sort(key=lambda p: (p.path_a, p.path_b))
    return pairs, removed, added
