"""Suspect ranking on realistic hand-built diffs (the env and data differs are tested on their own)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

from envsnap.diff.model import (
    Change,
    DataDiff,
    PackageDelta,
    SchemaChange,
    StageDiff,
    Suspect,
    TableDiff,
)
from envsnap.diff.suspects import rank_suspects

GOLDEN = Path(__file__).resolve().parents[1] / "golden"


def _load_sample() -> ModuleType:
    spec = importlib.util.spec_from_file_location("envsnap_golden_sample_diff", GOLDEN / "sample_diff.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


sample = _load_sample()
A, B = sample.snapshot_pair()


def _subjects(suspects: tuple[Suspect, ...]) -> list[str]:
    return [s.subject for s in suspects]


def _rank(suspects: tuple[Suspect, ...], subject: str) -> int:
    return next(s.rank for s in suspects if s.subject == subject)


def test_numpy_major_imported_by_diverging_stage_ranks_first() -> None:
    suspects = rank_suspects(sample.env_diff(), sample.data_diff(), A, B)
    top = suspects[0]
    assert top.subject == "numpy"
    assert top.rank == 1
    assert top.reason == "numpy 1.26.4 → 2.2.6: major; imported by stage `ratio`, the first to diverge; numeric core"
    assert top.change == sample.NUMPY


def test_thread_setting_ranks_above_unrelated_patch() -> None:
    suspects = rank_suspects(sample.env_diff(), sample.data_diff(), A, B)
    assert _rank(suspects, "OMP_NUM_THREADS") < _rank(suspects, "requests")
    requests = next(s for s in suspects if s.subject == "requests")
    assert "patch" in requests.reason
    assert "not imported by stage `ratio`" in requests.reason


def test_thread_setting_above_unrelated_patch_without_any_data() -> None:
    env = sample.env_diff(packages=(sample.REQUESTS,), changes=(sample.OMP_VAR,))
    suspects = rank_suspects(env, DataDiff(), A, B)
    assert _subjects(suspects) == ["OMP_NUM_THREADS", "requests"]
    assert suspects[0].reason == "OMP_NUM_THREADS: 1 → 8; thread/device setting"


def test_thread_variable_in_two_sections_is_one_suspect() -> None:
    suspects = rank_suspects(sample.env_diff(), sample.data_diff(), A, B)
    assert _subjects(suspects).count("OMP_NUM_THREADS") == 1
    assert len(set(_subjects(suspects))) == len(suspects)


def test_import_by_diverging_stage_outweighs_the_prior() -> None:
    pyyaml = PackageDelta("PyYAML", "upgraded", "6.0.1", "6.0.2", level="patch")
    scipy = PackageDelta("scipy", "upgraded", "1.13.0", "1.14.0", level="minor")
    env = sample.env_diff(packages=(pyyaml, scipy), changes=())
    stage = StageDiff(1, "ratio", ("ok", "ok"), TableDiff("ratio", "different"), imports=("pyyaml", "pandas"))
    data = DataDiff(stages=(stage,), first_diverging_stage="ratio")
    suspects = rank_suspects(env, data, A, B)
    assert _subjects(suspects) == ["PyYAML", "scipy"]
    assert "imported by stage `ratio`" in suspects[0].reason  # names compare normalized: PyYAML == pyyaml


def test_magnitude_orders_otherwise_equal_changes() -> None:
    deltas = (
        PackageDelta("torch", "upgraded", "2.3.0", "2.3.1", level="patch"),
        PackageDelta("scipy", "upgraded", "1.13.0", "2.0.0", level="major"),
        PackageDelta("pandas", "upgraded", "2.1.0", "2.2.0", level="minor"),
        PackageDelta("jax", "upgraded", "0.4.30", "0.4.30+cuda", level="local"),
    )
    suspects = rank_suspects(sample.env_diff(packages=deltas, changes=()), DataDiff(), A, B)
    assert _subjects(suspects) == ["scipy", "pandas", "torch", "jax"]
    assert all("numeric core" in s.reason for s in suspects)


def test_numeric_prior_beats_unrelated_at_same_magnitude() -> None:
    deltas = (
        PackageDelta("rich", "upgraded", "13.0.0", "14.0.0", level="major"),
        PackageDelta("numba", "upgraded", "0.59.0", "1.0.0", level="major"),
    )
    suspects = rank_suspects(sample.env_diff(packages=deltas, changes=()), DataDiff(), A, B)
    assert _subjects(suspects) == ["numba", "rich"]


def test_renamed_column_in_input_read_by_diverging_stage_goes_to_top() -> None:
    events = TableDiff(
        "events",
        "different",
        schema=(SchemaChange("amount", "removed", "double", None), SchemaChange("amount_eur", "added", None, "double")),
    )
    users = TableDiff("users", "different", schema=(SchemaChange("age", "retyped", "int64", "string"),))
    data = DataDiff(inputs=(events, users), stages=sample.data_diff().stages, first_diverging_stage="ratio")
    suspects = rank_suspects(sample.env_diff(), data, A, B)
    assert suspects[0].subject == "input events.amount"
    assert suspects[0].kind == "schema"
    assert "read by stage `ratio`, the first to diverge" in suspects[0].reason
    assert suspects[1].subject == "input events.amount_eur"
    # `users` is an input of the pipeline that `ratio` does not read (pipeline.json says so): below numpy.
    assert _rank(suspects, "numpy") < _rank(suspects, "input users.age")
    assert "read by" not in next(s for s in suspects if s.subject == "input users.age").reason


def test_schema_change_counts_as_read_when_snapshots_do_not_say() -> None:
    a, b = sample.snapshot_pair(with_pipeline=False)
    users = TableDiff("users", "different", schema=(SchemaChange("age", "retyped", "int64", "string"),))
    data = DataDiff(inputs=(users,), stages=sample.data_diff().stages, first_diverging_stage="ratio")
    suspects = rank_suspects(sample.env_diff(), data, a, b)
    assert suspects[0].subject == "input users.age"


def test_git_code_change_is_strong_when_stages_diverge() -> None:
    changes = (
        Change("git", "commit", "changed", "a" * 40, "b" * 40),
        Change("git", "dirty", "changed", False, True),
        Change("git", "patch_sha256", "changed", None, "c" * 64),
        Change("git", "untracked", "changed", [], ["notes.txt"]),
    )
    unrelated = PackageDelta("rich", "upgraded", "13.0.0", "13.0.1", level="patch")
    env = sample.env_diff(packages=(unrelated,), changes=changes)
    diverged = rank_suspects(env, sample.data_diff(), A, B)
    assert diverged[0].subject == "git code"
    assert diverged[0].reason.startswith("commit aaaaaaaaaaaa → bbbbbbbbbbbb; dirty: false → true")
    assert diverged[0].reason.endswith("; code changed")
    assert _subjects(diverged).count("git code") == 1
    assert diverged[-1].subject == "git untracked files"
    calm = rank_suspects(env, DataDiff(), A, B)
    git = next(s for s in calm if s.subject == "git code")
    assert git.score < diverged[0].score
    assert git.reason.endswith("; code")


def test_redacted_value_never_in_reason() -> None:
    token = Change("envvars", "HF_TOKEN", "changed", redacted=True, value_changed=None, note="keys differ")
    suspects = rank_suspects(sample.env_diff(packages=(), changes=(token,)), DataDiff(), A, B)
    assert suspects[0].reason == "HF_TOKEN: (redacted) → (redacted, cannot tell) (keys differ); value not kept"


def test_lock_and_package_mirror_changes_do_not_duplicate_deltas() -> None:
    lock = Change("lock", "numpy", "changed", "numpy==1.26.4", "numpy==2.2.6")
    suspects = rank_suspects(sample.env_diff(changes=(lock,)), sample.data_diff(), A, B)
    assert _subjects(suspects) == ["numpy", "tqdm", "requests"]


def test_vcs_commit_of_same_version_is_code_change() -> None:
    delta = PackageDelta("mylib", "changed", "0.1.0", "0.1.0", level=None)
    env = sample.env_diff(packages=(delta,), changes=())
    # The env differ puts its note (with the VCS commit) on the mirrored packages-section change.
    section = env.section("packages")
    assert section is not None
    noted = Change("packages", "mylib", "changed", "0.1.0", "0.1.0", note="vcs commit 111111111111 → 222222222222")
    env = type(env)(
        sections=tuple(type(section)(s.name, (noted,)) if s.name == "packages" else s for s in env.sections),
        packages=env.packages,
    )
    with_commit = rank_suspects(env, DataDiff(), A, B)[0]
    plain = rank_suspects(sample.env_diff(packages=(delta,), changes=()), DataDiff(), A, B)[0]
    assert "vcs commit 111111111111 → 222222222222" in with_commit.reason
    assert with_commit.score > plain.score


def test_order_is_deterministic_and_ranks_are_dense() -> None:
    deltas = tuple(PackageDelta(n, "upgraded", "1.0.0", "1.0.1", level="patch") for n in ("zeta", "alpha", "mid"))
    forward = rank_suspects(sample.env_diff(packages=deltas, changes=()), DataDiff(), A, B)
    backward = rank_suspects(sample.env_diff(packages=deltas[::-1], changes=()), DataDiff(), A, B)
    assert forward == backward
    assert _subjects(forward) == ["alpha", "mid", "zeta"]  # equal scores: by subject
    assert [s.rank for s in forward] == [1, 2, 3]


def test_input_values_differing_without_schema_change() -> None:
    events = TableDiff("events", "different", columns=())
    data = DataDiff(inputs=(events,), stages=sample.data_diff().stages, first_diverging_stage="ratio")
    suspects = rank_suspects(sample.env_diff(packages=(sample.REQUESTS,), changes=()), data, A, B)
    assert suspects[0].subject == "input events"
    assert suspects[0].reason == "input `events` values differ; read by stage `ratio`, the first to diverge"


def test_no_differences_no_suspects() -> None:
    assert rank_suspects(sample.env_diff(packages=(), changes=()), DataDiff(), A, B) == ()


def test_preloaded_distribution_is_not_called_unimported() -> None:
    """pandas loaded by the runner before any stage (it hands the inputs over as DataFrames) is in use."""
    pandas = PackageDelta("pandas", "upgraded", "2.2.3", "3.1.1", level="major")
    scipy = PackageDelta("scipy", "upgraded", "1.13.0", "2.0.0", level="major")
    env = sample.env_diff(packages=(pandas, scipy), changes=())
    stage = StageDiff(
        1, "ingest", ("ok", "ok"), TableDiff("ingest", "different"), imports=("numpy",), preloaded=("pandas",)
    )
    suspects = rank_suspects(env, DataDiff(stages=(stage,), first_diverging_stage="ingest"), A, B)
    assert _subjects(suspects) == ["pandas", "scipy"]
    assert "loaded before stage `ingest`" in suspects[0].reason
    assert "not imported by stage `ingest`" in suspects[1].reason


def test_retyped_output_from_unchanged_inputs_points_at_the_table_library() -> None:
    """pandas 2 -> 3: every text column of the first stage's output comes back as large_string."""
    pandas = PackageDelta("pandas", "upgraded", "2.2.3", "3.1.1", level="major")
    numpy = PackageDelta("numpy", "upgraded", "2.2.6", "2.4.6", level="minor")
    env = sample.env_diff(packages=(numpy, pandas), changes=())
    retyped = (SchemaChange("plan", "retyped", "string", "large_string"),)
    stage = StageDiff(
        1,
        "ingest",
        ("ok", "ok"),
        TableDiff("ingest", "different", schema=retyped),
        imports=("numpy",),
        preloaded=("pandas",),
    )
    data = DataDiff(inputs=(TableDiff("events", "identical"),), stages=(stage,), first_diverging_stage="ingest")
    suspects = rank_suspects(env, data, A, B)
    assert _subjects(suspects)[:2] == ["pandas", "numpy"]
    assert "wrote retyped columns from unchanged inputs" in suspects[0].reason
    assert "retyped" not in suspects[1].reason


def test_capture_policy_is_not_a_suspect() -> None:
    """`--env-allow` on one side changes envvars' policy, which says how envsnap redacted, not how the job ran."""
    from envsnap.diff.model import EnvDiff, SectionDiff

    policy = Change("envvars", "policy.allow", "changed", [], ["MYAPP_*"])
    omp = Change("threads", "configured:OMP_NUM_THREADS", "changed", "1", "8")
    env = EnvDiff((SectionDiff("envvars", (policy,)), SectionDiff("threads", (omp,))))
    assert _subjects(rank_suspects(env, DataDiff(), A, B)) == ["OMP_NUM_THREADS"]
