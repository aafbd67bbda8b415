"""``envsnap.on_failure``: a snapshot only when an exception escapes, the exception recorded, then re-raised."""

from __future__ import annotations

import asyncio
import sys
import warnings
from pathlib import Path

import pytest

import envsnap
from envsnap.capture.failure import CAPTURED_ATTR, EnvsnapCaptureWarning, on_failure


class PipelineBroke(Exception):
    """A user exception."""


def _snapshots(directory: Path) -> list[Path]:
    return sorted(directory.glob("*.envsnap")) if directory.exists() else []


def test_context_manager_captures_and_reraises_the_original(tmp_path: Path) -> None:
    out = tmp_path / "snaps"
    original = PipelineBroke("bad batch 42, api_key=sk-" + "abcdefghijklmnopqrstuvwxyz0123456789ABCD")
    with pytest.raises(PipelineBroke) as info, on_failure(out, label="nightly", git=False) as guard:
        raise original
    assert info.value is original, "the very same exception object propagates"
    assert info.value.__traceback__ is not None
    assert info.traceback[-1].name == "test_context_manager_captures_and_reraises_the_original"
    [path] = _snapshots(out)
    assert guard.path == path
    assert path.name.startswith("envsnap-") and path.name.endswith("-PipelineBroke.envsnap")
    snap = envsnap.load(path)
    snap.verify()
    assert snap.label == "nightly"
    job = snap.section("job")
    assert job["exception"]["type"] == f"{__name__}.PipelineBroke"
    assert "bad batch 42" in job["exception"]["message"]
    assert "raise original" in job["exception"]["traceback"]
    raw = b"".join(data for _, data in snap.iter_member_bytes())
    assert b"abcdefghijklmnopqrstuvwxyz0123456789ABCD" not in raw, "the secret in the message is scrubbed"
    assert getattr(original, CAPTURED_ATTR) == str(path)
    if sys.version_info >= (3, 11):
        assert any(str(path) in note for note in original.__notes__)


def test_nothing_is_captured_on_success_or_interrupt(tmp_path: Path) -> None:
    with on_failure(tmp_path / "a"):
        pass
    with pytest.raises(KeyboardInterrupt), on_failure(tmp_path / "b"):
        raise KeyboardInterrupt
    with pytest.raises(SystemExit), on_failure(tmp_path / "c"):
        sys.exit(0)
    assert _snapshots(tmp_path / "a") == _snapshots(tmp_path / "b") == _snapshots(tmp_path / "c") == []
    with pytest.raises(SystemExit), on_failure(tmp_path / "d", git=False):
        sys.exit(3)
    assert len(_snapshots(tmp_path / "d")) == 1, "a non-zero exit status is a failure"


def test_decorator_sync_and_async(tmp_path: Path) -> None:
    guard = on_failure(tmp_path, git=False)

    @guard
    def job(x: int) -> int:
        if x < 0:
            raise ValueError("negative")
        return x * 2

    @guard
    async def ajob() -> None:
        raise LookupError("async")

    assert job(2) == 4
    assert _snapshots(tmp_path) == []
    assert job.__name__ == "job"
    with pytest.raises(ValueError, match="negative"):
        job(-1)
    with pytest.raises(LookupError, match="async"):
        asyncio.run(ajob())
    names = [p.name for p in _snapshots(tmp_path)]
    assert len(names) == 2 and any(n.endswith("-ValueError.envsnap") for n in names)
    assert guard.path is not None and guard.path.name.endswith("-LookupError.envsnap")


def test_nested_guards_capture_once(tmp_path: Path) -> None:
    with (
        pytest.raises(RuntimeError),
        on_failure(tmp_path / "outer", git=False),
        on_failure(tmp_path / "inner", git=False),
    ):
        raise RuntimeError("once")
    assert len(_snapshots(tmp_path / "inner")) == 1
    assert _snapshots(tmp_path / "outer") == []


def test_a_failing_capture_never_masks_the_users_exception(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the directory should be", encoding="utf-8")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(PipelineBroke, match="the real problem") as info, on_failure(blocker / "snaps"):
            raise PipelineBroke("the real problem")
    assert [w.category for w in caught] == [EnvsnapCaptureWarning]
    assert "could not capture this failure" in str(caught[0].message)
    assert getattr(info.value, CAPTURED_ATTR, None) is None


def test_lazy_inputs_are_resolved_at_failure_time(tmp_path: Path) -> None:
    calls: list[str] = []

    def batch() -> object:
        calls.append("called")
        raise OSError("the batch is gone")

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(ZeroDivisionError), on_failure(tmp_path, inputs={"batch": batch}):
            _ = 1 / 0
    assert calls == ["called"], "the callable is only called when there is a failure to capture"
    assert "the batch is gone" in str(caught[0].message)
