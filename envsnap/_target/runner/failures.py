"""Turning what went wrong in a stage into a record: type, message, traceback, missing columns."""

from __future__ import annotations

import importlib
import os
import re
import traceback
from typing import TYPE_CHECKING, Any

from .tables import columns_of

if TYPE_CHECKING:
    from collections.abc import Callable

_QUOTED = re.compile(r"""['"]([^'"]+)['"]""")
_DTYPE = re.compile(r"""dtype=['"][^'"]*['"]""")
_TABLE_LIBRARY_FILE = re.compile(r"(^|[/\\])(pandas|pyarrow)[/\\]")
_HERE = os.path.dirname(os.path.abspath(__file__))


def import_target(target: str) -> Callable[..., Any]:
    """The callable named ``package.module:qualified.name``."""
    module_name, _, qualname = target.partition(":")
    if module_name.startswith("_envsnap_target.") and __package__ and not __package__.startswith("_envsnap_target"):
        # envsnap's own shipped code (the scikit-learn steps) named as the shipped package, run in envsnap
        module_name = __package__.rsplit(".", 1)[0] + module_name[len("_envsnap_target") :]
    obj: Any = importlib.import_module(module_name)
    for part in qualname.split("."):
        obj = getattr(obj, part)
    if not callable(obj):
        raise TypeError(f"{target} is a {type(obj).__name__}, not a function")
    return obj  # type: ignore[no-any-return]


def type_name(exc: BaseException) -> str:
    name = f"{type(exc).__module__}.{type(exc).__qualname__}"
    return name[len("builtins.") :] if name.startswith("builtins.") else name


def user_traceback(exc: BaseException) -> str:
    """The traceback without the runner's own frames at its top (the runner is not the user's code)."""
    tb = exc.__traceback__
    while tb is not None and os.path.dirname(os.path.abspath(tb.tb_frame.f_code.co_filename)) == _HERE:
        tb = tb.tb_next
    return "".join(traceback.format_exception(type(exc), exc, tb))


def _raised_by_table_library(exc: BaseException) -> bool:
    tb = exc.__traceback__
    if tb is None:
        return False
    while tb.tb_next is not None:
        tb = tb.tb_next
    return _TABLE_LIBRARY_FILE.search(tb.tb_frame.f_code.co_filename) is not None


def missing_columns(exc: BaseException, tables: list[Any]) -> list[str]:
    """Columns a ``KeyError`` names that none of the stage's input tables has (pandas and pyarrow forms).

    Only a KeyError raised inside pandas or pyarrow indexing counts: the same exception raised by the
    stage's own code (a dict lookup, a custom error) says nothing about columns.
    """
    if not isinstance(exc, KeyError) or len(exc.args) != 1 or not isinstance(exc.args[0], str) or not tables:
        return []
    if not _raised_by_table_library(exc):
        return []
    key = exc.args[0]
    known = {c for t in tables for c in columns_of(t)}
    candidates = [key] if key in known else _QUOTED.findall(_DTYPE.sub("", key)) or [key]
    return sorted({c for c in candidates if c not in known})


def error_record(stage: str, kind: str, exc: BaseException | None, message: str, **extra: Any) -> dict[str, Any]:
    """``{kind, type, message, traceback, ...}``: what went wrong in ``stage`` (scrubbed by the caller)."""
    record: dict[str, Any] = {
        "kind": kind,
        "type": type_name(exc) if exc is not None else "envsnap.StageError",
        "message": message,
        "traceback": user_traceback(exc) if exc is not None else "",
    }
    record.update(extra)
    return record
