"""Traceback-aware ranking, the job outcome row, and the noise that is never a suspect (PWD, bundled libraries).

Snapshots are tiny real in-memory ones (``assemble_snapshot``) holding a ``job/command.json`` shaped as
``envsnap run -- COMMAND`` writes it; the env diff is hand-built where only the ranking is under test.
"""

from __future__ import annotations

from typing import Any

from envsnap.diff.env import diff_env
from envsnap.diff.failures import failure_of, outcome_text
from envsnap.diff.model import Change, DataDiff, EnvDiff, PackageDelta, SectionDiff, SnapshotDiff
from envsnap.diff.suspects import rank_suspects
from envsnap.snapshot import canonical
from envsnap.snapshot.build import assemble_snapshot
from envsnap.snapshot.model import Snapshot

SITE = "/venv/lib/python3.11/site-packages"
NUMPY = PackageDelta("numpy", "upgraded", "1.26.4", "2.2.6", level="major")
SKLEARN = PackageDelta("scikit-learn", "upgraded", "1.5.2", "1.6.1", level="minor")
PANDAS = PackageDelta("pandas", "upgraded", "2.2.3", "2.3.3", level="minor")
TRACEBACK = (
    "Traceback (most recent call last):\n"
    '  File "/work/job/job.py", line 8, in main\n'
    "    rmse = mean_squared_error(y_true, y_pred, squared=False)\n"
    f'  File "{SITE}/sklearn/utils/_param_validation.py", line 194, in wrapper\n'
    "    params = func_sig.bind(*args, **kwargs)\n"
    '  File "/usr/lib/python3.11/inspect.py", line 3201, in _bind\n'
    "    raise TypeError(\n"
    "TypeError: got an unexpected keyword argument 'squared'\n"
)


def _frame(file: str, line: int, function: str, where: str, distribution: str | None = None) -> dict[str, Any]:
    return {"file": file, "line": line, "function": function, "where": where, "distribution": distribution}


FRAMES = [
    _frame("job.py", 13, "<module>", "project"),
    _frame("job.py", 8, "main", "project"),
    _frame(f"{SITE}/sklearn/utils/_param_validation.py", 194, "wrapper", "library", "scikit-learn"),
    _frame("/usr/lib/python3.11/inspect.py", 3201, "_bind", "stdlib"),
]


def _job(status: int | None, *, frames: list[dict[str, Any]] | None = None, text: str = "") -> dict[str, Any]:
    exception = None
    if status:
        exception = {"type": "TypeError", "message": "got an unexpected keyword argument 'squared'", "traceback": text}
        if frames is not None:
            exception["frames"] = frames
    return {
        "argv": ["python", "job.py"],
        "cwd": "/work/job",
        "hostname": "h",
        "started_at": None,
        "ended_at": None,
        "exit_status": status,
        "exception": exception,
    }


def _snap(job: dict[str, Any] | None, label: str, **members: Any) -> Snapshot:
    payload: dict[str, bytes] = {"env/python.json": canonical.dumps({"implementation": "cpython", "version": "3.11.7"})}
    if job is not None:
        payload["job/command.json"] = canonical.dumps(job)
    for name, value in members.items():
        payload[name] = canonical.dumps(value)
    digit = "1" if label == "good" else "2"
    return assemble_snapshot(payload, fingerprint="sha256:" + digit * 64, label=label, reproducible=True)


def _env(*changes: Change, packages: tuple[PackageDelta, ...] = (NUMPY, SKLEARN, PANDAS)) -> EnvDiff:
    by_section: dict[str, list[Change]] = {}
    for change in changes:
        by_section.setdefault(change.section, []).append(change)
    sections = [SectionDiff(name, tuple(items)) for name, items in by_section.items()]
    package_changes = tuple(Change("packages", d.name, "changed", d.before, d.after) for d in packages)
    return EnvDiff((SectionDiff("packages", package_changes), *sections), packages, True)


def test_traceback_through_sklearn_puts_it_above_the_numpy_major() -> None:
    good, bad = _snap(_job(0), "good"), _snap(_job(1, frames=FRAMES, text=TRACEBACK), "bad")
    suspects = rank_suspects(_env(), DataDiff(), good, bad)
    top = suspects[0]
    assert top.subject == "scikit-learn"
    assert top.evidence == "traceback"
    assert "the failure's traceback runs through sklearn/utils/_param_validation.py" in top.reason
    assert [s.subject for s in suspects[1:3]] == ["numpy", "pandas"]
    # The score explains itself: its terms add up to it.
    assert round(sum(t.points for t in top.terms), 2) == top.score
    assert any(t.term == "in the failure's traceback" for t in top.terms)


def test_traceback_text_without_frames_is_parsed_and_mapped_by_top_level_names() -> None:
    sklearn = {
        "name": "scikit-learn",
        "normalized_name": "scikit-learn",
        "version": "1.6.1",
        "summary": "",
        "location": SITE,
        "location_kind": "site",
        "installer": "pip",
        "requires": [],
        "dependencies": [],
        "extras_requested": [],
        "hashes": [],
        "direct_url": None,
        "top_level": ["sklearn"],
    }
    packages = {"site_dirs": [SITE], "distributions": [sklearn]}
    bad = _snap(_job(1, text=TRACEBACK), "bad")
    failure = failure_of(bad)
    assert failure is not None
    # Without env/packages.json the frame is still a library frame, named by its path.
    assert [f.where for f in failure.frames] == ["stdlib", "library", "project"]
    assert failure.frames[1].file == "sklearn/utils/_param_validation.py"
    assert failure.frames[2].file == "job.py"  # relative to the job's directory
    # "sklearn" is not a distribution's name: without the top-level names nothing is tied to the frame.
    assert rank_suspects(_env(), DataDiff(), _snap(_job(0), "good"), bad)[0].subject == "numpy"
    bad = _snap(_job(1, text=TRACEBACK), "bad", **{"env/packages.json": packages})
    failure = failure_of(bad)
    assert failure is not None and failure.frames[1].distribution == "scikit-learn"
    suspects = rank_suspects(_env(), DataDiff(), _snap(_job(0), "good"), bad)
    assert suspects[0].subject == "scikit-learn"


def test_a_chained_traceback_ranks_by_the_last_exception() -> None:
    text = (
        "Traceback (most recent call last):\n"
        f'  File "{SITE}/pandas/core/frame.py", line 10, in f\n'
        "KeyError: 'x'\n\n"
        "During handling of the above exception, another exception occurred:\n\n" + TRACEBACK.split("\n", 1)[1]
    )
    failure = failure_of(_snap(_job(1, text=text), "bad"))
    assert failure is not None
    assert "pandas/core/frame.py" not in [f.file for f in failure.frames]


def test_the_same_failure_on_both_sides_gives_no_traceback_bonus() -> None:
    good, bad = _snap(_job(1, frames=FRAMES), "good"), _snap(_job(1, frames=FRAMES), "bad")
    suspects = rank_suspects(_env(), DataDiff(), good, bad)
    assert suspects[0].subject == "numpy"
    assert all(s.evidence != "traceback" for s in suspects)


def test_host_path_variables_are_listed_never_suspects() -> None:
    changes = (
        Change("envvars", "PWD", "changed", "/home/a/run1", "/home/a/run2", value_changed=True),
        Change("envvars", "OLDPWD", "added", None, "/tmp"),
        Change("envvars", "HOME", "changed", redacted=True, value_changed=True, note="redacted value changed"),
        Change("envvars", "OMP_NUM_THREADS", "changed", "1", "8", value_changed=True),
    )
    suspects = rank_suspects(_env(*changes, packages=()), DataDiff(), *_pair())
    assert [s.subject for s in suspects] == ["OMP_NUM_THREADS"]


def _pair() -> tuple[Snapshot, Snapshot]:
    return _snap(None, "good"), _snap(None, "bad")


def test_vendored_libraries_fold_into_their_package_row() -> None:
    pyarrow = PackageDelta("pyarrow", "upgraded", "20.0.0", "26.0.1", level="major")
    native = tuple(
        Change("native", f"lib:{name} (pyarrow)", "changed", "2000", "2600")
        for name in ("arrow", "arrow_acero", "arrow_dataset", "arrow_python", "parquet")
    )
    other = Change("native", "lib:gomp (somepkg)", "changed", "1", "2")
    suspects = rank_suspects(_env(*native, other, packages=(pyarrow,)), DataDiff(), *_pair())
    subjects = [s.subject for s in suspects]
    assert subjects.count("pyarrow") == 1
    assert not any(s.startswith(("lib:arrow", "lib:parquet")) for s in subjects)
    assert "lib:gomp (somepkg)" in subjects  # a library of a package that did not change stays
    row = next(s for s in suspects if s.subject == "pyarrow")
    assert row.reason.startswith(
        "pyarrow 20.0.0 → 26.0.1: major and its bundled libarrow 2000 → 2600, libarrow_acero 2000 → 2600, "
        "libarrow_dataset 2000 → 2600 and 2 more;"
    )


def test_equal_scores_break_by_evidence() -> None:
    from envsnap.diff.model import StageDiff, TableDiff

    scipy = PackageDelta("scipy", "upgraded", "1.13.0", "1.14.0", level="minor")
    stage = StageDiff(1, "fit", ("ok", "ok"), TableDiff("fit", "different"), imports=(), preloaded=("scipy", "pandas"))
    data = DataDiff(stages=(stage,), first_diverging_stage="fit")
    # pandas and scipy: both minor, both loaded, both numeric: equal scores, equal evidence, then by name.
    suspects = rank_suspects(_env(packages=(scipy, PANDAS)), data, *_pair())
    assert [(s.subject, s.evidence) for s in suspects[:2]] == [("pandas", "loaded"), ("scipy", "loaded")]
    assert suspects[0].score == suspects[1].score
    # An imported one with the same score as a loaded one would go first: evidence orders ties.
    stage = StageDiff(1, "fit", ("ok", "ok"), TableDiff("fit", "different"), imports=("scipy",))
    data = DataDiff(stages=(stage,), first_diverging_stage="fit")
    suspects = rank_suspects(_env(packages=(scipy, PANDAS)), data, *_pair())
    assert suspects[0].subject == "scipy" and suspects[0].evidence == "imported"


def test_job_outcome_row_and_verdict() -> None:
    good, bad = _snap(_job(0), "good"), _snap(_job(1, frames=FRAMES), "bad")
    env = diff_env(good, bad)
    job = env.section("job")
    assert job is not None and len(job.changes) == 1
    row = job.changes[0]
    assert (row.key, row.before, row.after) == ("outcome", "exit 0", "TypeError at job.py:8 in main (exit 1)")
    assert row.note == "the job fails in b: TypeError at job.py:8 in main (exit 1); a: exit 0"
    from envsnap.diff.compare import snapshot_ref

    result = SnapshotDiff(snapshot_ref(good), snapshot_ref(bad), env, DataDiff())
    assert result.verdict.startswith("the job fails in b: TypeError at job.py:8 in main (exit 1)")
    # Two environment-only snapshots (no job record) have no outcome row.
    assert not diff_env(*_pair()).section("job").changes  # type: ignore[union-attr]


def test_outcome_texts() -> None:
    assert outcome_text({"exit_status": 137, "signal": 9}, None) == "killed by signal 9 (exit 137)"
    assert outcome_text({"exit_status": None}, None) == "no exception"
    assert outcome_text(None, None) is None


def test_lock_section_reports_pins_that_moved_without_hashes() -> None:
    from envsnap.diff.env_packages import diff_lock

    before = "scikit-learn==1.5.2\nsix==1.16.0\nidna==3.7\n"
    section = diff_lock(before, "scikit-learn==1.6.1\nsix==1.16.0\nrich==13.0\n")
    rows = {(c.key, c.kind, c.before, c.after, c.note) for c in section.changes}
    assert rows == {
        ("scikit-learn", "changed", "1.5.2", "1.6.1", "pin changed"),
        ("idna", "removed", "3.7", None, "requirement removed"),
        ("rich", "added", None, "13.0", "requirement added"),
    }
    # The pins move with their packages: the suspects leave them to the package rows.
    env = EnvDiff((SectionDiff("lock", section.changes),), (SKLEARN,), True)
    suspects = rank_suspects(env, DataDiff(), *_pair())
    assert [s.subject for s in suspects] == ["scikit-learn", "lock idna", "lock rich"]


def test_project_code_in_the_traceback_moves_the_code_suspect_when_that_file_changed() -> None:
    from envsnap.diff.model import CodeDiff, CodeFile

    commit = Change("git", "commit", "changed", "a" * 40, "b" * 40)
    frames = [_frame("job.py", 13, "<module>", "project"), _frame("churn/score.py", 8, "score", "project")]
    good, bad = _snap(_job(0), "good"), _snap(_job(1, frames=frames), "bad")
    env = _env(commit)

    def code_row(code: CodeDiff | None) -> tuple[int, str, str]:
        suspects = rank_suspects(env, DataDiff(), good, bad, code=code)
        row = next(s for s in suspects if s.subject == "git code")
        return row.rank, row.evidence, row.reason

    rank, evidence, reason = code_row(CodeDiff(files=(CodeFile("churn/score.py", "modified"),)))
    assert (rank, evidence) == (1, "traceback")
    assert reason.endswith("the failure's traceback runs through churn/score.py:8")
    # Only an outer frame's file changed: it is named, still first (no package is in the traceback).
    rank, evidence, reason = code_row(CodeDiff(files=(CodeFile("job.py", "modified"),)))
    assert (rank, evidence) == (1, "traceback") and reason.endswith("runs through job.py:13")
    # A file outside the traceback changed: the traceback says nothing about the code.
    assert code_row(CodeDiff(files=(CodeFile("README.md", "modified"),)))[1] == "present"
    # Nothing says which files changed: a small bonus only, below the numpy major.
    rank, evidence, _ = code_row(None)
    assert evidence == "traceback" and rank > 1
