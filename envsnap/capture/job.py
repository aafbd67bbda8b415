"""``job/command.json``: the command that ran: argv (secrets redacted), working directory, host and times.

``started_at`` is when this process started (``ended_at`` and ``exit_status`` stay null for a plain
capture: the job is still running); both times are null with ``--reproducible``. ``exception`` is null
unless a failing job is captured, then ``{type, message, traceback}`` (see :func:`exception_record`),
scrubbed like every other string; ``envsnap run -- COMMAND`` adds ``frames`` to it and a ``command``
object (argv, the interpreter and how it was found, root, times, exit status and signal, the stderr tail,
the files the job opened: :mod:`envsnap.capture.command_run`), and fills the top-level times and status.
The host name is kept: it identifies a machine of a fleet, which is
what a snapshot of a failing batch job must say, and it is not a credential. The user name is not kept.
"""

from __future__ import annotations

import os
import socket
import time
import traceback
from typing import Any

from envsnap.capture.base import CaptureContext, Probe, register
from envsnap.core.redact import scrub_argv, scrub_text

__all__ = ["JobProbe", "exception_record", "iso_utc", "process_start_time"]

TRACEBACK_CAP = 64 * 1024


def iso_utc(epoch: float) -> str:
    """``2024-05-01T12:00:00Z``, the timestamp format of every envsnap member."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


def process_start_time() -> float | None:
    """When this process started (epoch seconds): ``/proc`` where there is one, else psutil, else None."""
    try:
        with open("/proc/self/stat", "rb") as fh:
            # The command name (field 2) may hold spaces and parentheses: fields are counted after its ")".
            fields = fh.read().rpartition(b")")[2].split()
        with open("/proc/stat", "rb") as fh:
            boot = next(int(line.split()[1]) for line in fh if line.startswith(b"btime "))
        return boot + int(fields[19]) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, StopIteration):
        pass
    try:
        import psutil

        return float(psutil.Process().create_time())
    except Exception:  # noqa: BLE001 - a missing start time is a value, not a failure
        return None


def exception_record(exc: BaseException) -> dict[str, str]:
    """``{type, message, traceback}`` of ``exc`` for ``job/command.json``, scrubbed and size-capped."""
    text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    return {
        "type": f"{type(exc).__module__}.{type(exc).__qualname__}".removeprefix("builtins."),
        "message": scrub_text(str(exc))[:TRACEBACK_CAP],
        "traceback": scrub_text(text[-TRACEBACK_CAP:]),
    }


@register
class JobProbe(Probe):
    """argv, cwd, host name and times of the job being captured."""

    name = "job"
    member = "job/command.json"

    def collect(self, ctx: CaptureContext) -> dict[str, Any]:
        options = ctx.options
        started = None if options.reproducible else process_start_time()
        record: dict[str, Any] = {
            "argv": scrub_argv(options.argv),
            "cwd": scrub_text(options.cwd),
            "hostname": socket.gethostname() or None,
            "started_at": iso_utc(started) if started is not None else None,
            "ended_at": None,
            "exit_status": None,
            "exception": dict(options.failure) if options.failure is not None else None,
        }
        if options.command is not None:  # ``envsnap run -- COMMAND``: the command's own times and status
            command = {k: v for k, v in options.command.items() if k != "root_abs"}
            if options.reproducible:
                command.update(started_at=None, ended_at=None, duration_s=None)
            record.update(
                argv=command["argv"],
                started_at=command.get("started_at"),
                ended_at=command.get("ended_at"),
                exit_status=command.get("exit_status"),
                command=command,
            )
        return record
