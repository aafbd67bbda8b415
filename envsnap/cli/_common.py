"""What every command shares: error mapping to exit codes, one-line messages, atomic text output."""

from __future__ import annotations

import contextlib
import functools
import os
import sys
import tempfile
import traceback
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import typer

from envsnap.errors import EnvsnapError, OutputError

F = TypeVar("F", bound=Callable[..., Any])

EXIT_OK = 0
EXIT_DIFFERENT = 1
EXIT_USAGE = 2
EXIT_ERROR = 3

#: What ``--fail-on`` accepts (``envsnap diff``, fleets included).
FAIL_ON = ("env", "data", "any")


class State:
    """Global CLI flags (set by the app callback)."""

    verbose: bool = False
    #: The command line's arguments as given (``envsnap run`` tells ``--`` with nothing after it).
    argv: tuple[str, ...] = ()
    #: Run as the ``envsnap`` program (not called in-process): a command may end the process at once.
    own_process: bool = False


def err(message: str) -> None:
    """One line on stderr."""
    sys.stderr.write(message.rstrip("\n") + "\n")


def cli_errors(func: F) -> F:
    """Map library errors to one line and their exit code; an unexpected exception is reported as a bug."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                return func(*args, **kwargs)
            except EnvsnapError as exc:
                if State.verbose:
                    traceback.print_exc()
                err(f"envsnap: error: {exc}")
                raise typer.Exit(exc.exit_code) from None
            except typer.Exit:
                raise
            except typer.BadParameter as exc:
                err(f"envsnap: usage error: {exc.format_message()}")
                raise typer.Exit(EXIT_USAGE) from None
            except KeyboardInterrupt:
                err("envsnap: interrupted; nothing was written")
                raise typer.Exit(130) from None
            except Exception as exc:  # noqa: BLE001 - the last line of defence: no traceback for users
                if State.verbose:
                    traceback.print_exc()
                err(f"envsnap: internal error: {type(exc).__name__}: {exc} (a bug: rerun with -v and report it)")
                raise typer.Exit(EXIT_ERROR) from None
            finally:
                for w in caught:
                    err(f"envsnap: warning: {w.message}")

    return wrapper  # type: ignore[return-value]


def write_output(dest: str, data: bytes, *, force: bool = True) -> str:
    """Write ``data`` to ``dest`` atomically ('-' = stdout); return a description of where it went."""
    if dest == "-":
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
        return "stdout"
    path = Path(dest).absolute()
    if not path.parent.is_dir():
        raise OutputError(f"cannot write {dest}: directory {path.parent} does not exist; create it first")
    if path.is_dir():
        raise OutputError(f"cannot write {dest}: it is a directory; give a file name")
    if path.exists() and not force:
        raise OutputError(f"{dest} already exists; pass --force to replace it")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=str(path.parent))
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return str(path)


def use_color() -> bool:
    """Colour only on a terminal, and never when NO_COLOR is set (https://no-color.org)."""
    if os.environ.get("NO_COLOR"):
        return False
    return sys.stdout.isatty() and os.environ.get("TERM") != "dumb"


def terminal_width() -> int:
    """The width to render for: the terminal's, kept within 80..160; 100 when stdout is not a terminal."""
    import shutil

    return max(80, min(shutil.get_terminal_size((100, 24)).columns, 160)) if sys.stdout.isatty() else 100
