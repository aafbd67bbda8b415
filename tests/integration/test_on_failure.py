"""``envsnap.on_failure``: a snapshot only when an exception escapes, the exception recorded, then re-raised."""

from __future__ import annotations

import asyncio
import io
import subprocess
import sys
import warnings
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
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
        raise OSError("the batch is gone, token=ghp_" + "A" * 36)

    def good() -> pa.Table:
        return pa.table({"x": [1, 2, 3]})

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with (
            pytest.raises(ZeroDivisionError),
            on_failure(tmp_path, inputs={"batch": batch, "good": good}, git=False) as guard,
        ):
            _ = 1 / 0
    assert calls == ["called"], "the callable is only called when there is a failure to capture"
    assert caught == [], "a failed input is recorded in the snapshot, not a failed capture"
    assert guard.path is not None, "the snapshot is still written"
    snap = envsnap.load(guard.path)
    snap.verify()
    inputs = snap.section("data/inputs.json")["inputs"]
    assert inputs["good"]["rows"] == 3
    error = inputs["batch"]["error"]
    assert "input 'batch'" in error and "raised OSError: the batch is gone" in error, error
    assert "A" * 36 not in error, "the reason is scrubbed like every stored string"
    assert inputs["batch"]["source"].startswith("<") and "batch" in inputs["batch"]["source"]


class _PolarsDataFrame:
    """polars is not in the dev lock: this stands in for ``polars.DataFrame`` by the duck type envsnap reads
    (its type's module and name, ``to_arrow()``), as a polars release before the Arrow C stream export is."""

    __module__ = "polars.dataframe.frame"

    def __init__(self, table: pa.Table) -> None:
        self._table = table

    def to_arrow(self) -> pa.Table:
        return self._table


_PolarsDataFrame.__name__ = _PolarsDataFrame.__qualname__ = "DataFrame"


class _PolarsLazyFrame:
    """Stands in for ``polars.LazyFrame``: ``collect()`` gives a DataFrame."""

    __module__ = "polars.lazyframe.frame"

    def __init__(self, table: pa.Table) -> None:
        self._table = table

    def collect(self) -> _PolarsDataFrame:
        return _PolarsDataFrame(self._table)


_PolarsLazyFrame.__name__ = _PolarsLazyFrame.__qualname__ = "LazyFrame"


def test_polars_frames_are_accepted_as_inputs(tmp_path: Path) -> None:
    table = pa.table({"user": ["a", "b", "c", "d"], "score": [0.5, 1.5, 2.5, 3.5]})
    frames = {"eager": _PolarsDataFrame(table), "lazy": lambda: _PolarsLazyFrame(table)}
    with pytest.raises(PipelineBroke), on_failure(tmp_path, inputs=frames, git=False) as guard:
        raise PipelineBroke("scores off")
    assert guard.path is not None
    snap = envsnap.load(guard.path)
    inputs = snap.section("data/inputs.json")["inputs"]
    assert inputs["eager"]["source"] == "<polars.DataFrame>"
    assert inputs["lazy"]["source"] == "<polars.LazyFrame>"
    for name in ("eager", "lazy"):
        assert inputs[name]["rows"] == 4 and "error" not in inputs[name]
        sample = pq.read_table(io.BytesIO(snap.read_bytes(inputs[name]["parquet"])))
        assert sample.sort_by("user").equals(table)


def test_config_files_are_recorded_like_the_cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "conf").mkdir()
    (tmp_path / "conf" / "score.yaml").write_text("threshold: 0.7\npassword: hunter2-secret\n", encoding="utf-8")
    (tmp_path / "conf" / "extra.toml").write_text("[model]\nname = 'gbm'\n", encoding="utf-8")
    with pytest.raises(PipelineBroke), on_failure("snaps", config_files=["conf/*.yaml", "conf/extra.toml"]) as g:
        raise PipelineBroke("bad threshold")
    assert g.path is not None
    snap = envsnap.load(g.path)
    files = snap.section("project/configs.json")["files"]
    by_name = {Path(f["path"]).name: f for f in files}
    assert set(by_name) == {"score.yaml", "extra.toml"}
    assert all(f["error"] is None for f in files)
    raw = b"".join(data for _, data in snap.iter_member_bytes())
    assert b"hunter2-secret" not in raw, "config values are redacted as with --config-file"
    assert b"0.7" in raw


_GIT = ["git", "-c", "user.email=t@example.invalid", "-c", "user.name=t", "-c", "init.defaultBranch=main"]

_JOB = """
import envsnap

with envsnap.on_failure("snaps"):
    raise RuntimeError("the job failed")
"""


def _run_job(repo: Path, script: str) -> envsnap.Snapshot:
    """Run ``script`` (a failing job guarded by on_failure) in ``repo``; its one snapshot, moved out."""
    proc = subprocess.run([sys.executable, script], cwd=repo, capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 1 and "RuntimeError: the job failed" in proc.stderr, proc.stderr
    [path] = sorted((repo / "snaps").glob("*.envsnap"))
    moved = path.rename(repo.parent / f"{Path(script).stem}.envsnap")
    return envsnap.load(moved)


def test_a_job_run_from_an_untracked_file_is_untracked_code_not_clean(tmp_path: Path) -> None:
    from envsnap.snapshot.summary import summarize

    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / ".gitignore").write_text("snaps/\n", encoding="utf-8")
    (repo / "tracked_job.py").write_text(_JOB, encoding="utf-8")
    for args in (["init", "-q"], ["add", "."], ["commit", "-q", "-m", "initial"]):
        subprocess.run([*_GIT, *args], cwd=repo, check=True, capture_output=True)
    (repo / "scratch").mkdir()
    (repo / "scratch" / "job.py").write_text(_JOB, encoding="utf-8")

    snap = _run_job(repo, "scratch/job.py")
    git = snap.section("env/git.json")
    assert git["dirty"] is False
    assert git["untracked_code"] == "scratch/job.py"
    assert summarize(snap)["git"].endswith(", untracked code (scratch/job.py)")

    tracked = _run_job(repo, "tracked_job.py")
    git = tracked.section("env/git.json")
    assert "untracked_code" not in git, "a tracked script is committed code"
    assert summarize(tracked)["git"].endswith(", clean")
