"""The exception hierarchy.

One root, :class:`EnvsnapError`. Errors caused by what the user handed us (a bad snapshot, a path that is
not a Python) also subclass :class:`ValueError`. Every exception keeps structured fields and builds its
one-line message in ``__str__`` so that the CLI can print it as is. ``exit_code`` is the documented CLI
exit status for the error.
"""

from __future__ import annotations

__all__ = [
    "EnvsnapError",
    "FormatVersionError",
    "InputError",
    "IntegrityError",
    "InterpreterError",
    "NotFoundError",
    "OptionError",
    "OutputError",
    "SchemaError",
    "SnapshotError",
    "StorageError",
    "UnsafeArchiveError",
]


class EnvsnapError(Exception):
    """Root of every error envsnap raises on purpose."""

    exit_code: int = 3

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        if self.hint:
            return f"{self.message}; {self.hint}"
        return self.message


class SnapshotError(EnvsnapError, ValueError):
    """A snapshot cannot be read: missing, corrupt, truncated, unsafe or of an unknown format."""

    def __init__(self, path: str, problem: str, *, hint: str | None = None) -> None:
        super().__init__(problem, hint=hint)
        self.path = path
        self.problem = problem

    def __str__(self) -> str:
        hint = self.hint or "re-capture it or ask for an intact copy"
        return f"{self.path}: {self.problem}; {hint}"


class IntegrityError(SnapshotError):
    """A member's bytes do not match the manifest, or the member set does not match it."""


class UnsafeArchiveError(SnapshotError):
    """An archive member would escape the snapshot or is not a regular file."""


class FormatVersionError(SnapshotError):
    """The snapshot was written in a major format this envsnap cannot read."""


class SchemaError(SnapshotError):
    """A JSON member does not match its schema; ``field`` names the path of the bad field."""

    def __init__(self, path: str, member: str, field: str, problem: str) -> None:
        super().__init__(path, f"member {member}: {problem} at '{field}'")
        self.member = member
        self.field = field


class InterpreterError(EnvsnapError, ValueError):
    """``--python`` does not point at a working Python interpreter."""

    def __init__(self, executable: str, problem: str) -> None:
        super().__init__(problem)
        self.executable = executable
        self.problem = problem

    def __str__(self) -> str:
        return (
            f"--python {self.executable}: {self.problem}; pass the path of a python executable (e.g. .venv/bin/python)"
        )


class OutputError(EnvsnapError, ValueError):
    """The destination of a write is unusable (exists, not writable, parent missing)."""


class OptionError(EnvsnapError, ValueError):
    """An option has a value envsnap does not know (``--lockfile-kind nonsense``): a usage error."""

    exit_code = 2


class NotFoundError(EnvsnapError, ValueError):
    """A requested section, member or item does not exist in the snapshot."""


class InputError(EnvsnapError, ValueError):
    """An input cannot be sampled: missing, not parquet/CSV, corrupt, or without a column the options name.

    ``name`` is the input's name (``--input NAME=PATH``), ``path`` its path or ``<DataFrame>``/``<Table>``.
    """

    def __init__(self, name: str, path: str, problem: str, *, hint: str | None = None) -> None:
        super().__init__(problem, hint=hint)
        self.name = name
        self.path = path
        self.problem = problem

    def __str__(self) -> str:
        from envsnap.core.redact import scrub_text  # paths may carry credentials (URLs with userinfo)

        where = f" ({self.path})" if self.path else ""
        text = f"input {self.name!r}{where}: {self.problem}"
        return scrub_text(f"{text}; {self.hint}" if self.hint else text)


class StorageError(EnvsnapError, ValueError):
    """Object storage (``s3://``) or an MLflow run (``runs:/``) cannot be read or written: a missing bucket,
    no or wrong credentials, an endpoint that refuses, a key that is not there. ``uri`` is the location."""

    def __init__(self, uri: str, problem: str, *, hint: str | None = None) -> None:
        super().__init__(problem, hint=hint)
        self.uri = uri
        self.problem = problem

    def __str__(self) -> str:
        from envsnap.core.redact import scrub_text  # a URI may carry credentials (userinfo)

        text = f"{self.uri}: {self.problem}"
        return scrub_text(f"{text}; {self.hint}" if self.hint else text)
