"""The job probe: argv with secrets redacted, cwd, host, times, and the exception record of a failing job."""

from __future__ import annotations

import calendar
import socket
import time
from typing import Any

import psutil
import pytest

from envsnap.capture import target
from envsnap.capture.base import CaptureContext, CaptureOptions
from envsnap.capture.job import JobProbe, exception_record, iso_utc, process_start_time
from envsnap.snapshot.schema import validate_member

HF = "hf_" + "Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4zAb"


def collect(**options: Any) -> dict[str, Any]:
    ctx = CaptureContext(CaptureOptions(environ={}, **options), target.in_process)
    data: dict[str, Any] = JobProbe().collect(ctx)
    validate_member("<test>", "job/command.json", data)
    return data


def test_argv_cwd_host_and_start_time(tmp_path: Any) -> None:
    argv = ("python", "train.py", "--token", "opaque-value", f"--hub={HF}", "--lr", "0.1")
    data = collect(argv=argv, cwd=str(tmp_path))
    assert data["argv"] == [
        "python",
        "train.py",
        "--token",
        "<redacted:argument>",
        "--hub=<redacted:huggingface-token>",
        "--lr",
        "0.1",
    ]
    assert data["cwd"] == str(tmp_path)
    assert data["hostname"] == socket.gethostname()
    started = calendar.timegm(time.strptime(data["started_at"], "%Y-%m-%dT%H:%M:%SZ"))
    assert abs(started - psutil.Process().create_time()) <= 1
    assert (data["ended_at"], data["exit_status"], data["exception"]) == (None, None, None)


def test_reproducible_captures_store_no_times() -> None:
    first = collect(argv=("a",), cwd="/", reproducible=True)
    second = collect(argv=("a",), cwd="/", reproducible=True)
    assert first["started_at"] is None and first == second


def test_process_start_time_matches_psutil() -> None:
    started = process_start_time()
    assert started is not None
    assert abs(started - psutil.Process().create_time()) < 1
    assert iso_utc(0) == "1970-01-01T00:00:00Z"


def test_exception_record_is_scrubbed_and_fits_the_schema() -> None:
    def fail() -> None:
        raise PermissionError(f"login with https://bot:{HF}@hub.example.com refused")

    with pytest.raises(PermissionError) as info:
        fail()
    record = exception_record(info.value)
    assert record["type"] == "PermissionError"
    assert HF not in record["message"] and HF not in record["traceback"]
    assert "in fail" in record["traceback"]
    data = collect(argv=("a",), cwd="/")
    validate_member("<test>", "job/command.json", {**data, "exit_status": 1, "exception": record})
