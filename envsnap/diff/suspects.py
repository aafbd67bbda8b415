"""Rank every environment difference (and every input change) by how likely it explains a divergence.

A score is a sum of points, so each part of the one-line reason maps to one term:

* a **prior by kind**: numeric/BLAS packages, thread settings, CUDA/driver and the Python version are
  known to move floating-point results; glibc and CPU flags sometimes do (libm, SIMD code paths);
  unrelated packages, untracked files and redacted variables rarely do;
* **import by the first diverging stage** — the strongest signal: a package that the stage whose output
  first differs actually imported is where the difference entered;
* the **magnitude** of a version step (major > minor > patch > local);
* **input schema changes**: a renamed or retyped column in an input that the first diverging stage reads
  explains the divergence outright, so it goes to the top.

Order is deterministic: score descending, then subject.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from envsnap.core.naming import normalize_name
from envsnap.diff.model import (
    Change,
    DataDiff,
    EnvDiff,
    PackageDelta,
    SchemaChange,
    ScoreTerm,
    StageChange,
    Suspect,
    TableDiff,
)
from envsnap.diff.stage_suspects import stage_suspects
from envsnap.snapshot.sections import PipelineSection

if TYPE_CHECKING:
    from envsnap.diff.failures import Failure, FailureFrame
    from envsnap.diff.model import CodeDiff
    from envsnap.snapshot.model import Snapshot

__all__ = ["EVIDENCE", "HOST_PATH_VARIABLES", "NUMERIC_PACKAGES", "THREAD_VARIABLES", "rank_suspects"]

#: Distributions whose results depend on BLAS, SIMD or their own numeric kernels (normalized names).
NUMERIC_PACKAGES = frozenset(
    {
        "numpy",
        "scipy",
        "pandas",
        "scikit-learn",
        "pyarrow",
        "torch",
        "jax",
        "jaxlib",
        "tensorflow",
        "tensorflow-cpu",
        "numba",
        "llvmlite",
        "polars",
        "xgboost",
        "lightgbm",
        "catboost",
        "statsmodels",
        "numexpr",
        "bottleneck",
        "cupy",
        "mkl",
        "intel-openmp",
        "scipy-openblas32",
        "scipy-openblas64",
        "nvidia-cublas-cu12",
        "nvidia-cudnn-cu12",
        "nvidia-cuda-runtime-cu12",
        "onnxruntime",
        "tbb",
    }
)

#: Variables that set thread pools or device visibility: they change reduction order and so results.
THREAD_VARIABLES = frozenset(
    {
        "OMP_NUM_THREADS",
        "MKL_NUM_THREADS",
        "OPENBLAS_NUM_THREADS",
        "BLIS_NUM_THREADS",
        "VECLIB_MAXIMUM_THREADS",
        "NUMEXPR_NUM_THREADS",
        "NUMBA_NUM_THREADS",
        "OMP_DYNAMIC",
        "MKL_DYNAMIC",
        "OMP_PROC_BIND",
        "OMP_PLACES",
        "KMP_AFFINITY",
        "MKL_CBWR",
        "MKL_ENABLE_INSTRUCTIONS",
        "TF_NUM_INTRAOP_THREADS",
        "TF_NUM_INTEROP_THREADS",
        "CUDA_VISIBLE_DEVICES",
        "CUBLAS_WORKSPACE_CONFIG",
        "NVIDIA_TF32_OVERRIDE",
        "TF_ENABLE_ONEDNN_OPTS",
        "PYTHONHASHSEED",
    }
)

#: Variables that say where and as whom the job ran, not what ran it: the diff lists them, they are never
#: suspects (two runs from two directories differ in PWD and explain nothing by it).
HOST_PATH_VARIABLES = frozenset(
    {
        "PWD",
        "OLDPWD",
        "HOME",
        "TMPDIR",
        "TMP",
        "TEMP",
        "TEMPDIR",
        "USER",
        "LOGNAME",
        "USERNAME",
        "SHLVL",
        "_",
        "HOSTNAME",
        "MAIL",
        "TERM",
        "COLUMNS",
        "LINES",
        "DISPLAY",
        "SSH_CLIENT",
        "SSH_CONNECTION",
        "SSH_TTY",
        "SSH_AUTH_SOCK",
        "XDG_RUNTIME_DIR",
        "XDG_SESSION_ID",
        "INVOCATION_ID",
        "JOURNAL_STREAM",
    }
)

#: Evidence tying a suspect to the outcome, strongest first: it breaks ties of equal score.
EVIDENCE = ("traceback", "imported", "read", "loaded", "present")

# Points. The import bonus outweighs any prior, so an imported patch release beats an unimported major.
HIGH, MEDIUM, LOW = 5.0, 3.0, 1.0
IMPORTED = 6.0
NOT_IMPORTED = -1.0
MAGNITUDE = {"major": 3.0, "minor": 2.0, "patch": 1.0, "local": 0.5, "other": 1.0}
ADDED_REMOVED = 1.5
CODE_CHANGED = 5.0
SCHEMA_BASE = 8.0
SCHEMA_READ_BY_DIVERGING = 12.0
INPUT_VALUES = 6.0
#: The first diverging stage's output changed column types while its inputs did not: the table library
#: that builds frames and writes parquet (pandas 2 -> 3 strings, timestamp units) is the likely author.
OUTPUT_RETYPED = 3.0
#: A distribution (or the project's code) whose frames are in the failure's traceback: above everything
#: else that changed; the innermost of them a little more than the next (TRACEBACK_DEPTH a step, 4 steps).
TRACEBACK = 30.0
TRACEBACK_DEPTH = 2.0
#: A project file in the traceback when the snapshots cannot tell whether that file changed.
TRACEBACK_PROJECT_UNSURE = 6.0
TABLE_LIBRARIES = frozenset({"pandas", "pyarrow", "polars", "fastparquet"})

# Git facts that mean "the code is different"; they merge into one "git code" suspect.
_GIT_CODE_KEYS = frozenset({"commit", "dirty", "patch_sha256", "patch_truncated", "patch", "describe"})

#: Config keys whose names say they shape the data a model sees: normalization and scaling, features,
#: thresholds and cut-offs, schema and columns, encodings. A change there moves outputs by design.
_CONFIG_SHAPING = re.compile(
    r"normali[sz]|standardi[sz]|scal(?:e|er|ing)|feature|threshold|cut_?off|schema|column|dtype|clip|imput"
    r"|encod|vocab|bins?\b|quantile",
    re.IGNORECASE,
)
CONFIG_TYPE_CHANGE = 1.0


class _Points:
    """A score as the sum of named terms (``--json`` shows them)."""

    def __init__(self) -> None:
        self.terms: list[ScoreTerm] = []

    def add(self, term: str, points: float) -> None:
        if points:
            self.terms.append(ScoreTerm(term, points))

    @property
    def total(self) -> float:
        return sum(t.points for t in self.terms)


class _Context:
    """What every scorer needs to know about the data side: the first diverging stage and what it read,
    and the failure's traceback when one side failed."""

    def __init__(self, data: DataDiff, a: Snapshot, b: Snapshot, env: EnvDiff | None = None) -> None:
        self.stage = data.first_diverging_stage
        job = env.section("job") if env is not None else None
        self.outcome_changed = job is not None and job.changed
        self.diverged = self.stage is not None or data.changed or self.outcome_changed
        # Outputs moved, but only within --rtol/--atol: what thread counts do to a reduction's last bits.
        self.noise = not self.diverged and any(s.table.status == "within_tolerance" for s in data.stages)
        stage = next((s for s in data.stages if s.name == self.stage), None)
        self.imports = frozenset(normalize_name(n) for n in stage.imports) if stage is not None else frozenset()
        self.imports_known = stage is not None and bool(stage.imports)
        self.preloaded = frozenset(normalize_name(n) for n in stage.preloaded) if stage is not None else frozenset()
        inputs_retyped = any(c.kind == "retyped" for t in data.inputs for c in t.schema)
        self.output_retyped = (
            stage is not None and not inputs_retyped and any(c.kind == "retyped" for c in stage.table.schema)
        )
        self.stage_inputs = _stage_inputs(self.stage, a, b) if self.stage is not None else None
        self.a, self.b = a, b
        self.traced: dict[str, tuple[int, FailureFrame]] = {}
        self.failure: Failure | None = None
        if a is not b:
            self._trace(a, b)

    def _trace(self, a: Snapshot, b: Snapshot) -> None:
        """Distributions and project code in the failure's frames, innermost first (b's failure first)."""
        from envsnap.diff.failures import failure_of

        fa, fb = failure_of(a), failure_of(b)
        if fa is not None and fb is not None and _same(fa, fb):
            return  # both failed the same way: the traceback says nothing about what changed
        failure = fb or fa
        if failure is None:
            return
        self.failure = failure
        for frame in failure.frames:
            if frame.where == "library":
                key = frame.distribution or normalize_name(frame.file.split("/", 1)[0].removesuffix(".py"))
            elif frame.where == "project":
                key = _PROJECT
            else:
                continue
            if key not in self.traced:
                self.traced[key] = (len(self.traced), frame)

    def traceback(self, key: str, points: _Points, parts: list[str]) -> bool:
        """Add the traceback bonus of ``key`` (a distribution or the project's code) when its frames are there."""
        hit = self.traced.get(key)
        if hit is None:
            return False
        depth, frame = hit
        points.add("in the failure's traceback", TRACEBACK)
        points.add(f"traceback depth (#{depth + 1} from the raise)", TRACEBACK_DEPTH * max(0, 4 - depth))
        parts.append(f"the failure's traceback runs through {frame.file}")
        return True


_PROJECT = ":project"


def _same(fa: Failure, fb: Failure) -> bool:
    pa, pb = fa.innermost_project, fb.innermost_project
    where_a = (pa.file, pa.function) if pa is not None else None
    where_b = (pb.file, pb.function) if pb is not None else None
    return fa.type == fb.type and where_a == where_b


def _stage_inputs(stage_name: str | None, a: Snapshot, b: Snapshot) -> frozenset[str] | None:
    """Names of the pipeline inputs the stage reads (None when the snapshots do not say)."""
    for snap in (b, a):
        try:
            pipeline = PipelineSection.from_snapshot(snap)
        except Exception:  # noqa: BLE001, S112 - a bad pipeline member only costs the schema bonus, not the diff
            continue
        if pipeline is None:
            continue
        declared = set(pipeline.inputs)
        for stage in pipeline.stages:
            if stage.name != stage_name:
                continue
            if stage.inputs is None:
                # No declared inputs: the first stage reads the pipeline's inputs, later ones the
                # previous stage's output.
                return frozenset(declared) if stage.index == 1 else frozenset()
            return frozenset(n for n in stage.inputs if n in declared)
    return None


# --- scorers ------------------------------------------------------------------------------------------------


def _package(delta: PackageDelta, ctx: _Context, note: str | None = None, bundled: str | None = None) -> Suspect:
    name = normalize_name(delta.name)
    points, parts = _Points(), []
    if delta.change in ("added", "removed"):
        parts.append(f"{delta.name} {delta.after or delta.before}: {delta.change}")
        points.add(delta.change, ADDED_REMOVED)
    else:
        parts.append(f"{delta.name} {delta.before} → {delta.after}: {delta.level or delta.change}")
        points.add(f"version step: {delta.level or 'other'}", MAGNITUDE.get(delta.level or "other", 1.0))
        commit = next((p for p in (note or "").split("; ") if p.startswith("vcs commit")), None)
        if commit:
            # Same version string, another commit of a VCS install: different code under the same name.
            parts.append(commit)
            points.add("another VCS commit", MAGNITUDE["minor"])
        elif delta.before == delta.after:
            # Only the installer or location moved: same code, most likely.
            points.add("same version", -1.0)
    if bundled:
        parts[0] += f" and its bundled {bundled}"
    if delta.installer:
        parts.append(f"installer {delta.installer[0] or '-'} → {delta.installer[1] or '-'}")
    if delta.location_kind:
        parts.append(f"location {delta.location_kind[0] or '-'} → {delta.location_kind[1] or '-'}")
    evidence = "traceback" if ctx.traceback(name, points, parts) else "present"
    if name in ctx.imports:
        points.add("imported by the first diverging stage", IMPORTED)
        parts.append(f"imported by stage `{ctx.stage}`, the first to diverge")
        evidence = "imported" if evidence == "present" else evidence
    elif name in ctx.preloaded:
        # Loaded before any stage ran (the runner hands inputs over as pandas/Arrow): usable by every stage.
        points.add("loaded before the first diverging stage ran", IMPORTED / 2)
        parts.append(f"loaded before stage `{ctx.stage}`, the first to diverge, ran")
        evidence = "loaded" if evidence == "present" else evidence
    elif ctx.imports_known:
        points.add("not imported by the first diverging stage", NOT_IMPORTED)
        parts.append(f"not imported by stage `{ctx.stage}`")
    if ctx.output_retyped and name in TABLE_LIBRARIES:
        points.add("table library; the stage's output was retyped", OUTPUT_RETYPED)
        parts.append(f"stage `{ctx.stage}` wrote retyped columns from unchanged inputs")
    if name in NUMERIC_PACKAGES:
        points.add("prior: numeric core", HIGH)
        parts.append("numeric core")
    else:
        points.add("prior: package", LOW)
    return _suspect(points, "package", delta.name, "; ".join(parts), delta, evidence)


def _suspect(
    points: _Points,
    kind: str,
    subject: str,
    reason: str,
    change: Change | PackageDelta | SchemaChange | StageChange | None,
    evidence: str = "present",
) -> Suspect:
    return Suspect(0, points.total, kind, subject, reason, change, evidence, tuple(points.terms))


def _is_thread_key(key: str) -> bool:
    upper = key.upper()
    return upper in THREAD_VARIABLES or "NUM_THREADS" in upper or upper.endswith("_THREADS")


def _change_prior(change: Change, ctx: _Context) -> tuple[float, str, str]:
    """(points, subject, label) for an environment change by section and key."""
    section, key = change.section, change.key
    lowered = key.lower()
    if section == "python":
        if lowered in ("version", "implementation", "soabi", "gil_disabled", "abiflags"):
            return HIGH, f"python {key}", "interpreter"
        return LOW, f"python {key}", "interpreter detail"
    if section == "threads":
        if key.startswith("configured:"):
            # The same name as the env var it comes from, so the two collapse into one suspect.
            return HIGH, key.split(":", 1)[1], "thread/device setting"
        if key.startswith("effective.pool"):
            return HIGH, key, "thread pool size"
        if key.startswith("effective."):
            return MEDIUM, key, "CPU budget (thread pools size from it)"
        return LOW, f"threads {key}", "thread-setting mismatch"
    if section == "envvars" and _is_thread_key(key):
        return HIGH, key, "thread/device setting"
    if section == "native":
        if any(w in lowered for w in ("blas", "mkl", "openmp", "omp", "lapack", "cuda", "cudnn", "threading")):
            return HIGH, key, "BLAS/native numeric library"
        return MEDIUM, key, "native library"
    if section == "gpu":
        return HIGH, f"gpu {key}", "GPU/CUDA"
    if section == "system":
        if "glibc" in lowered or "flag" in lowered or "libm" in lowered:
            return MEDIUM, key, "libm/SIMD code paths"
        if "cgroup" in lowered and "memory" in lowered:
            return MEDIUM, key, "memory limit (a stage that needs more is killed: out of memory)"
        if "cgroup" in lowered or "cpu" in lowered:
            return MEDIUM, key, "CPU resources (thread pools size from them)"
        return LOW, key, "system"
    if section == "container":
        return MEDIUM, f"container {key}", "a different image"
    if section == "artifacts":
        return MEDIUM, f"artifact {key}", "model/artifact"
    if section == "git":
        if "untracked" in lowered:
            return LOW * 0.5, "git untracked files", "untracked files"
        if lowered in _GIT_CODE_KEYS:
            label = "code changed" if ctx.diverged else "code"
            return LOW + (CODE_CHANGED if ctx.diverged else 0.0), "git code", label
        return LOW, f"git {key}", "repository metadata"
    if section == "envvars":
        if change.redacted:
            return LOW * 0.5, key, "value not kept"
        return LOW, key, "environment variable"
    if section == "lock":
        return LOW * 0.5, f"lock {key}", "lock entry"
    if section == "configs":
        path = key.partition(":")[2]
        if path and _CONFIG_SHAPING.search(path):
            return HIGH, f"config {key}", "config key about normalization/features/thresholds/schema"
        return MEDIUM, f"config {key}", "config value"
    if section == "lockfiles":
        if key.endswith(" (installed)"):
            return MEDIUM, f"lockfile {key}", "the environment disagrees with the lock"
        if key.endswith(" (source)"):
            return LOW * 0.5, f"lockfile {key}", "lockfile source (git commit, path, URL)"
        return LOW * 0.5, f"lockfile {key}", "lockfile entry"
    if section == "packages":
        return LOW, key, "package metadata"
    return LOW, f"{section} {key}", section


def _change(change: Change, ctx: _Context) -> Suspect:
    prior, subject, label = _change_prior(change, ctx)
    points = _Points()
    points.add(f"prior: {label}", prior)
    if change.redacted and change.value_changed is None:
        points.add("cannot tell whether the value changed", -0.25)  # ranks below a known change of its kind
    if change.redacted and change.value_changed is False:
        points.add("same value, only redacted now", -0.5)
    if change.section == "configs" and (change.note or "").startswith("type "):
        # "false" -> false: code that tests truthiness now takes the other branch
        points.add("type change", CONFIG_TYPE_CHANGE)
    if change.section == "python" and change.key == "version" and change.kind == "changed":
        points.add("version step", _python_step(change.before, change.after))
    if "NUM_THREADS" in change.key.upper() or change.key.upper().endswith("CUDA_VISIBLE_DEVICES"):
        points.add("a pool size or device set", 0.5)  # the settings that change results most often
    if change.section == "threads" and ctx.diverged:
        points.add("thread counts change reduction order", 0.5)  # the floating-point kind of drift
    if change.section == "git" and change.key == "commit":
        # Twelve hex digits identify a commit to a reader; forty only push the reason past one line.
        what = f"commit {str(change.before)[:12]} → {str(change.after)[:12]}"
    else:
        what = _render_change(change)
    reason = f"{what}; {label}"
    if ctx.noise and label == "thread/device setting":
        reason += "; outputs differ only within tolerance: numerical noise from the reduction order"
    return _suspect(points, change.section, subject, reason, change)


def _code_hashes(snap: Snapshot) -> dict[str, str] | None:
    """``{path: sha256}`` of the project files a snapshot's code map (``code/index.json``) names, or None."""
    if "code/index.json" not in snap:
        return None
    try:
        index = snap.read_json("code/index.json")
    except Exception:  # noqa: BLE001 - without it, whether a file changed is unknown
        return None
    files = index.get("files") if isinstance(index, dict) else None
    out: dict[str, str] = {}
    items = files.items() if isinstance(files, dict) else ((None, f) for f in files or ())
    for key, entry in items:
        path = entry.get("path", key) if isinstance(entry, dict) else key
        digest = entry.get("sha256") if isinstance(entry, dict) else entry
        if isinstance(path, str) and isinstance(digest, str):
            out[path] = digest
    return out


def _trace_project(suspects: list[Suspect], ctx: _Context, code_diff: CodeDiff | None = None) -> list[Suspect]:
    """The project's code in the failure's traceback: the code suspect moves up, as strongly as the
    snapshots can tell that a file in its frames changed (the code diff names it, else its hash differs
    in the two code maps); the reason names the innermost frame in a changed file."""
    hit = ctx.traced.get(_PROJECT)
    code = next((s for s in suspects if s.subject in ("git code", "git untracked_code")), None)
    if hit is None or code is None or ctx.failure is None:
        return suspects
    depth, frame = hit
    frames = [f for f in ctx.failure.frames if f.where == "project"]
    changed: set[str] | None = None
    if code_diff is not None and code_diff.files:
        changed = {f.path for f in code_diff.files} | {f.old_path for f in code_diff.files if f.old_path}
    else:
        before, after = _code_hashes(ctx.a), _code_hashes(ctx.b)
        if before is not None and after is not None:
            changed = {f.file for f in frames if before.get(f.file) != after.get(f.file)}
    if changed is not None:
        first = next((f for f in frames if f.file in changed), None)
        if first is None:
            return suspects  # the files in the traceback did not change
        frame = first
    points = _Points()
    points.terms = list(_terms(code))
    if changed is not None:
        points.add("in the failure's traceback", TRACEBACK)
        points.add(f"traceback depth (#{depth + 1} from the raise)", TRACEBACK_DEPTH * max(0, 4 - depth))
    else:
        points.add("in the failure's traceback (the file may not have changed)", TRACEBACK_PROJECT_UNSURE)
    reason = f"{code.reason}; the failure's traceback runs through {frame.at}"
    moved = _suspect(points, code.kind, code.subject, reason, code.change, "traceback")
    return [moved if s is code else s for s in suspects]


def _terms(suspect: Suspect) -> tuple[ScoreTerm, ...]:
    """A suspect's terms, with what a merge added to its score as one more term so that they still add up."""
    rest = round(suspect.score - sum(t.points for t in suspect.terms), 6)
    return suspect.terms + ((ScoreTerm("combined facts", rest),) if rest else ())


def _python_step(before: Any, after: Any) -> float:
    parts_a, parts_b = str(before).split("."), str(after).split(".")
    if parts_a[:1] != parts_b[:1]:
        return MAGNITUDE["major"]
    if parts_a[:2] != parts_b[:2]:
        return MAGNITUDE["minor"]
    return MAGNITUDE["patch"]


def _render_change(change: Change) -> str:
    from envsnap.diff.render.phrasing import change_line

    return change_line(change)


def _inputs(data: DataDiff, ctx: _Context) -> Iterable[Suspect]:
    for table in data.inputs:
        read = ctx.stage_inputs is None or table.name in ctx.stage_inputs
        read_by_diverging = ctx.stage is not None and read
        renames = {removed.column: (removed, added) for removed, added in _renames(table)}
        for schema in table.schema:
            if schema.column in renames and schema.kind == "removed":
                # The removed column tells the whole story (rename, type, order); the added one stays too.
                yield _renamed(table, *renames[schema.column], ctx, read_by_diverging)
            else:
                yield _schema(table, schema, ctx, read_by_diverging)
        if table.status == "different" and not table.schema:
            points = _Points()
            points.add("prior: input values differ", INPUT_VALUES)
            points.add("read by the first diverging stage", IMPORTED if read_by_diverging else 0.0)
            parts = [f"input `{table.name}` values differ"]
            differing = sum(1 for c in table.columns if c.status == "different")
            if differing:
                parts.append(f"{differing} column{'s' if differing != 1 else ''}")
            parts.extend(_drift(table))
            if read_by_diverging:
                parts.append(f"read by stage `{ctx.stage}`, the first to diverge")
            evidence = "read" if read_by_diverging else "present"
            yield _suspect(points, "input", f"input {table.name}", "; ".join(parts), None, evidence)
        elif table.status == "incomparable":
            points = _Points()
            points.add("prior: input cannot be compared", LOW)
            yield _suspect(
                points, "input", f"input {table.name}", f"input `{table.name}` cannot be compared: {table.note}", None
            )


#: PSI above this is a significant distribution shift (the usual rule of thumb: 0.1 some, 0.25 major).
PSI_SHIFT = 0.25


def _drift(table: TableDiff) -> list[str]:
    """What moved in an input's values: the biggest distribution shift (PSI) and where nulls appeared."""
    parts = []
    shifts = [s for s in table.stats if s.psi is not None and s.psi >= PSI_SHIFT]
    if shifts:
        top = max(shifts, key=lambda s: (s.psi or 0.0, s.column))
        parts.append(f"distribution shift: PSI {top.psi:.2f} in `{top.column}`")
    nulls = sorted((c for c in table.columns if c.null_mismatches), key=lambda c: (-c.null_mismatches, c.column))
    if nulls:
        parts.append(f"null on one side only: {nulls[0].null_mismatches} rows of `{nulls[0].column}`")
    return parts


def _schema(table: TableDiff, schema: SchemaChange, ctx: _Context, read_by_diverging: bool) -> Suspect:
    weight = {"retyped": 1.0, "removed": 1.0, "added": 0.75, "renamed": 1.0, "moved": 0.5}.get(schema.kind, 0.6)
    points = _Points()
    points.add(f"prior: input schema ({schema.kind})", SCHEMA_BASE * weight)
    points.add("read by the first diverging stage", SCHEMA_READ_BY_DIVERGING if read_by_diverging else 0.0)
    what = f"column `{schema.column}` {schema.kind}"
    if schema.before is not None or schema.after is not None:
        what += f" ({_fmt(schema.before)} → {_fmt(schema.after)})"
    parts = [f"input `{table.name}`: {what}"]
    if read_by_diverging:
        parts.append(f"read by stage `{ctx.stage}`, the first to diverge")
    parts.append("input schema")
    evidence = "read" if read_by_diverging else "present"
    return _suspect(points, "schema", f"input {table.name}.{schema.column}", "; ".join(parts), schema, evidence)


def _renames(table: TableDiff) -> list[tuple[SchemaChange, SchemaChange]]:
    """Removed and added columns whose names say one replaced the other (``plan`` → ``plan_id``)."""
    removed = [c for c in table.schema if c.kind == "removed"]
    added = [c for c in table.schema if c.kind == "added"]
    pairs: list[tuple[SchemaChange, SchemaChange]] = []
    for old in removed:
        stem = normalize_name(old.column)
        match = next(
            (n for n in added if all(n is not p[1] for p in pairs) and _related(stem, normalize_name(n.column))), None
        )
        if match is not None:
            pairs.append((old, match))
    return pairs


def _related(a: str, b: str) -> bool:
    return a != b and (b.startswith(a + "-") or a.startswith(b + "-"))


def _column_names(snap: Snapshot, table: str) -> list[str] | None:
    member = f"data/inputs/{table}.json"
    if member not in snap:
        return None
    try:
        schema = snap.read_json(member).get("schema") or []
        return [str(f["name"]) for f in schema]
    except Exception:  # noqa: BLE001 - the positions only add detail to the reason
        return None


def _renamed(
    table: TableDiff, removed: SchemaChange, added: SchemaChange, ctx: _Context, read_by_diverging: bool
) -> Suspect:
    """One suspect for a column replaced upstream: the rename, the type change, the columns it moved."""
    points = _Points()
    points.add("prior: input schema (renamed)", SCHEMA_BASE + 1.0)
    points.add("read by the first diverging stage", SCHEMA_READ_BY_DIVERGING if read_by_diverging else 0.0)
    what = f"column `{removed.column}` renamed to `{added.column}` ({_fmt(removed.before)} → {_fmt(added.after)})"
    names_a, names_b = _column_names(ctx.a, table.name), _column_names(ctx.b, table.name)
    if names_a is not None and names_b is not None:
        shifted = sum(1 for n in names_a if n in names_b and names_a.index(n) != names_b.index(n))
        if shifted:
            what += f"; {shifted} column{'s' if shifted != 1 else ''} at other positions"
    parts = [f"input `{table.name}`: {what}"]
    if read_by_diverging:
        parts.append(f"read by stage `{ctx.stage}`, the first to diverge")
    parts.append("input schema")
    evidence = "read" if read_by_diverging else "present"
    return _suspect(points, "schema", f"input {table.name}.{removed.column}", "; ".join(parts), removed, evidence)


def _lockfile_package(key: str) -> str | None:
    """The package of a lockfiles change key (``uv.lock:numpy``, ``uv.lock:numpy (installed)``)."""
    _, sep, name = key.rpartition(":")
    return normalize_name(name.removesuffix(" (installed)").removesuffix(" (source)")) if sep else None


def _fmt(value: Any) -> str:
    return "-" if value is None else str(value)


def _merge_git(suspects: list[Suspect], code_diff: CodeDiff | None = None, stage: str | None = None) -> list[Suspect]:
    """Commit, dirty flag and patch hash tell one story (the code changed): one suspect, all facts, led by
    the file and line that changed and the stages that import it (``code_diff``, :mod:`.code_map`)."""
    import dataclasses

    from envsnap.diff.code_map import suspect_text

    code = [s for s in suspects if s.subject == "git code"]
    lead = suspect_text(code_diff, stage) if code_diff is not None else None
    if not code:
        if lead is None or code_diff is None or not code_diff.files:
            return suspects
        # The code map saw a file change that git did not (no repository, an untracked file).
        label = "code changed" if stage is not None else "code"
        score = LOW + (CODE_CHANGED if stage is not None else 0.0)
        code = [Suspect(0, score, "git", "git code", label, None)]
    merged = code[0]
    if len(code) > 1:
        facts = "; ".join(s.reason.rsplit("; ", 1)[0] for s in code)
        label = code[0].reason.rsplit("; ", 1)[1]
        merged = Suspect(0, max(s.score for s in code) + 0.5, "git", "git code", f"{facts}; {label}", code[0].change)
    if lead is not None:
        merged = dataclasses.replace(merged, reason=f"{lead}; {merged.reason}")
    if code_diff is not None and code_diff.files and code_diff.files[0].first_diverging:
        # A changed line in a file the first diverging stage imported: as strong as an imported package.
        imported: dict[str, Any] = {"evidence": "imported"} if hasattr(merged, "evidence") else {}
        merged = dataclasses.replace(merged, score=merged.score + IMPORTED, **imported)
    return [s for s in suspects if s.subject != "git code"] + [merged]


_BUNDLED = re.compile(r"^lib:(?P<name>.+) \((?P<owner>[^()]+)\)$")


_NUMPY_BUILD = ("numpy.blas.", "numpy.lapack.")


def _bundled(env: EnvDiff, package_names: set[str]) -> tuple[dict[str, str], set[str]]:
    """Vendored native libraries of changed packages: ``{package: "libarrow 2000 → 2600, …"}`` and the keys
    of the native changes folded into those rows."""
    native = env.section("native")
    found: dict[str, list[str]] = {}
    folded: set[str] = set()
    for change in native.changes if native is not None else ():
        match = _BUNDLED.match(change.key)
        if match is None:
            continue
        owner = normalize_name(match.group("owner").removesuffix(".libs"))
        if owner not in package_names:
            continue
        name = "lib" + match.group("name") if not match.group("name").startswith("lib") else match.group("name")
        if change.kind == "changed":
            found.setdefault(owner, []).append(f"{name} {_fmt(change.before)} → {_fmt(change.after)}")
        else:
            found.setdefault(owner, []).append(f"{name} {change.kind}")
        folded.add(change.key)
    texts = {}
    for owner, items in found.items():
        shown = sorted(items)[:3]
        more = len(items) - len(shown)
        texts[owner] = ", ".join(shown) + (f" and {more} more" if more else "")
    return texts, folded


def rank_suspects(
    env: EnvDiff, data: DataDiff, a: Snapshot, b: Snapshot, *, code: CodeDiff | None = None
) -> tuple[Suspect, ...]:
    """Every environment difference and input change as a :class:`Suspect`, most likely first."""
    ctx = _Context(data, a, b, env)
    packages = env.section("packages")
    notes = {c.key: c.note for c in packages.changes} if packages is not None else {}
    package_names = {normalize_name(d.name) for d in env.packages}
    bundled, folded = _bundled(env, package_names)
    suspects: list[Suspect] = [
        _package(d, ctx, notes.get(d.name), bundled.get(normalize_name(d.name))) for d in env.packages
    ]
    for section in env.sections:
        if section.name == "job":
            continue  # the outcome is what the suspects explain, not one of them
        for change in section.changes:
            # The package deltas already tell these (with the version step), and a lock line moves with
            # its package.
            if section.name in ("packages", "lock") and normalize_name(change.key) in package_names:
                continue
            if section.name == "lockfiles" and _lockfile_package(change.key) in package_names:
                continue
            # How the capture was told to redact (--env-allow, the key in use) is not the job's runtime,
            # and where or as whom it ran (PWD, HOME, USER) is not what ran it: listed, never suspects.
            if section.name == "envvars" and (change.key.startswith("policy.") or change.key in HOST_PATH_VARIABLES):
                continue
            # A vendored library moves with its package: one row, "and its bundled libarrow …"; so does the
            # BLAS/LAPACK numpy was built against when numpy itself changed.
            if section.name == "native" and (
                change.key in folded or ("numpy" in package_names and change.key.startswith(_NUMPY_BUILD))
            ):
                continue
            suspects.append(_change(change, ctx))
    suspects.extend(_inputs(data, ctx))
    suspects.extend(stage_suspects(data))
    suspects = _merge_git(suspects, code, data.first_diverging_stage)
    suspects = _trace_project(suspects, ctx, code)
    # One subject once: a thread variable shows up both as configured thread setting and as env var.
    best: dict[str, Suspect] = {}
    for suspect in suspects:
        held = best.get(suspect.subject)
        if held is None or suspect.score > held.score:
            best[suspect.subject] = suspect
    ordered = sorted(best.values(), key=_order)
    return tuple(
        Suspect(
            i,
            round(s.score, 2),
            s.kind,
            s.subject,
            s.reason,
            s.change,
            s.evidence,
            tuple(ScoreTerm(t.term, round(t.points, 2)) for t in _terms(s)),
        )
        for i, s in enumerate(ordered, 1)
    )


def _order(suspect: Suspect) -> tuple[float, int, str, str]:
    """Score descending; at equal scores the stronger evidence first; then subject and kind."""
    evidence = EVIDENCE.index(suspect.evidence) if suspect.evidence in EVIDENCE else len(EVIDENCE)
    return (-round(suspect.score, 6), evidence, suspect.subject, suspect.kind)
