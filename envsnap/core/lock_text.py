"""The text of ``env/requirements.lock`` read back: one :class:`LockedRequirement` per requirement.

The lock is written by the capture probe (:mod:`envsnap.capture.lock`, the only module that imports
pip-tools); the lock differ reads it with :func:`parse_lock`. The comment markers the writer
emits and the reader recognises are defined here, once.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

from envsnap.core.naming import normalize_name

__all__ = [
    "NOTE_INDEX",
    "NOTE_INSTALLED",
    "NOTE_LOCAL",
    "UNSAFE_HEADER",
    "LockedRequirement",
    "logical_lines",
    "parse_lock",
]

#: The heading of the trailing section of pip, setuptools and wheel, as ``pip-compile --allow-unsafe`` writes it.
UNSAFE_HEADER = "# The following packages are considered to be unsafe in a requirements file:"
#: Comment markers under a requirement: a hash kept as a note (from the installed files or the index), and
#: the ``name==version`` of a requirement written as a URL or an editable.
NOTE_LOCAL = "hash known locally"
NOTE_INDEX = "hash from the index"
NOTE_INSTALLED = "installed as"


@dataclass(frozen=True)
class LockedRequirement:
    """One requirement read back from a lock (see :func:`parse_lock`)."""

    name: str
    version: str | None
    url: str | None
    editable: bool
    hashes: tuple[str, ...]
    noted_hashes: tuple[str, ...]
    via: tuple[str, ...]
    unsafe: bool
    line: str

    @property
    def pin(self) -> str:
        """``name==version`` of what was installed."""
        return f"{self.name}=={self.version}"


def _logical_lines(text: str) -> Iterator[tuple[str, list[str]]]:
    """(requirement with its options joined, indented comment lines that follow it) per requirement."""
    current: str | None = None
    comments: list[str] = []
    continued = False
    for raw in text.splitlines():
        stripped = raw.strip()
        if continued and current is not None:
            current += " " + stripped.rstrip("\\").strip()
            continued = stripped.endswith("\\")
            continue
        if stripped.startswith("#") and raw[:1].isspace() and current is not None:
            comments.append(stripped[1:].strip())
            continue
        if current is not None:
            yield current, comments
            current, comments = None, []
        if stripped and not stripped.startswith("#"):
            current = stripped.rstrip("\\").strip()
            continued = stripped.endswith("\\")
        elif stripped == UNSAFE_HEADER:
            yield UNSAFE_HEADER, []
    if current is not None:
        yield current, comments


def parse_lock(text: str) -> list[LockedRequirement]:
    """Read a lock written by :mod:`envsnap.capture.lock` back into its requirements, annotations included."""
    out: list[LockedRequirement] = []
    unsafe = False
    for line, comments in _logical_lines(text):
        if line == UNSAFE_HEADER:
            unsafe = True
            continue
        parts = line.split()
        hashes = tuple(p.split("=", 1)[1] for p in parts if p.startswith("--hash="))
        spec = " ".join(p for p in parts if not p.startswith("--hash="))
        editable = spec.startswith("-e ")
        name: str | None = None
        version: str | None = None
        url: str | None = None
        if editable:
            url = spec[3:].strip()
        elif " @ " in spec:
            left, _, url = spec.partition(" @ ")
            name = normalize_name(left.strip())
        elif "://" in spec:
            url = spec  # pip's URL form (git+file:///repo@commit#egg=name): the name comes from the note
        else:
            left, _, version = spec.partition("===") if "===" in spec else spec.partition("==")
            name = normalize_name(left.strip())
        noted: list[str] = []
        via: list[str] = []
        in_via = False
        for comment in comments:
            if comment.startswith(f"{NOTE_INSTALLED} "):
                pinned = comment[len(NOTE_INSTALLED) + 1 :]
                pin_name, _, version = pinned.partition("==")
                name = name or normalize_name(pin_name)
            elif comment.startswith((f"{NOTE_LOCAL}:", f"{NOTE_INDEX}:")):
                noted.append(comment.split(":", 1)[1].strip())
            elif comment == "via":
                in_via = True
            elif comment.startswith("via "):
                via.append(comment[4:].strip())
            elif in_via and comment:
                via.append(comment.strip())
        out.append(
            LockedRequirement(
                name=name or "",
                version=version,
                url=url,
                editable=editable,
                hashes=hashes,
                noted_hashes=tuple(noted),
                via=tuple(via),
                unsafe=unsafe,
                line=spec,
            )
        )
    return out


def logical_lines(text: str) -> Iterator[tuple[int, str]]:
    """(line number, line) of a requirements-format text: ``\\`` continuations joined, comments removed.

    The number is the first physical line of each logical line (for messages that name a line).
    """
    pending, start = "", 0
    for number, raw in enumerate(text.splitlines(), 1):
        if not pending:
            start = number
        line = f"{pending} {raw.strip()}" if pending else raw
        if line.rstrip().endswith("\\"):
            pending = line.rstrip()[:-1].rstrip()
            continue
        pending = ""
        line = re.sub(r"(^|\s)#.*$", "", line).strip()
        if line:
            yield start, line
    last = re.sub(r"(^|\s)#.*$", "", pending).strip()
    if last:
        yield start, last
