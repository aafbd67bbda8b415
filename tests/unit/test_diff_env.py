"""diff_env on real snapshots: one real capture, then members edited and reassembled for the other side.

The base snapshot is a real in-process capture (a git repository, a fitted scikit-learn pipeline and a JSON
sidecar as artifacts, numpy loaded so that BLAS pools are real). Each test edits the members of a copy the
way a different machine or install would have written them, reassembles it, and diffs the two.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from typing import Any

import pytest

from envsnap.diff.env import ENV_SECTIONS, diff_env
from envsnap.diff.env_artifacts import numeric_difference
from envsnap.diff.env_common import describe_list_change
from envsnap.diff.env_packages import diff_lock, version_step
from envsnap.diff.live import diff_requirements, parse_requirements
from envsnap.diff.model import Change, EnvDiff, SectionDiff
from envsnap.snapshot import canonical
from envsnap.snapshot.build import assemble_snapshot
from envsnap.snapshot.manifest import ProbeStatus
from envsnap.snapshot.model import Snapshot
from envsnap.snapshot.schema import validate_member

Edit = Callable[[Any], Any]


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Snapshot:
    import joblib
    import numpy as np  # loaded so that threadpoolctl sees real BLAS/OpenMP pools
    import pandas as pd
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    from envsnap.capture import capture

    root = tmp_path_factory.mktemp("project")
    for argv in (["init", "-q", "-b", "main"], ["config", "user.email", "t@example.com"], ["config", "user.name", "t"]):
        subprocess.run(["git", *argv], cwd=root, check=True)
    (root / "job.py").write_text("print('job')\n", encoding="utf-8")
    subprocess.run(["git", "add", "job.py"], cwd=root, check=True)
    subprocess.run(["git", "commit", "-q", "-m", "first"], cwd=root, check=True)
    rng = np.random.default_rng(7)
    frame = pd.DataFrame(rng.normal(size=(200, 3)), columns=["tenure", "charges", "sessions"])
    model = Pipeline([("scaler", StandardScaler()), ("classifier", LogisticRegression())])
    joblib.dump(model.fit(frame, (frame["tenure"] > 0).astype(int)), root / "model.joblib")
    (root / "features.json").write_text(
        json.dumps({"feature_order": ["tenure", "charges", "sessions"], "threshold": 0.4, "scale": [1.0, 2.0]}),
        encoding="utf-8",
    )
    return capture(cwd=str(root), artifacts=["model.joblib", "features.json"])


def rebuild(snap: Snapshot, edits: dict[str, Edit | None], *, fingerprint: str | None = None) -> Snapshot:
    """A copy of ``snap`` with members edited (``member -> function(parsed) -> new``) or dropped (None)."""
    members = {m: snap.read_bytes(m) for m in snap.members()}
    for member, edit in edits.items():
        if edit is None:
            del members[member]
            continue
        if member.endswith(".json"):
            data = edit(json.loads(members[member]))
            validate_member("<test>", member, data)  # the edited member is one a real probe could write
            members[member] = canonical.dumps(data)
        else:
            members[member] = edit(members[member].decode()).encode()
    probes = dict(snap.manifest.probes)
    return assemble_snapshot(members, fingerprint=fingerprint or snap.fingerprint, probes=probes)


def changes(diff: EnvDiff, section: str) -> dict[str, Change]:
    found = diff.section(section)
    assert found is not None
    return {c.key: c for c in found.changes}


def only(diff: EnvDiff, section: str) -> SectionDiff:
    """The one section that changed (every other section must be unchanged)."""
    changed = [s.name for s in diff.sections if s.changes]
    assert changed == [section], f"expected only {section} to change, got {changed}"
    found = diff.section(section)
    assert found is not None
    return found


def test_identical_snapshots_have_no_change_in_any_section(base: Snapshot) -> None:
    diff = diff_env(base, rebuild(base, {}))
    assert [s.name for s in diff.sections] == list(ENV_SECTIONS)
    assert [s.name for s in diff.sections if s.changes or s.note] == []
    assert not diff.changed
    assert diff.packages == ()


def test_fingerprint_changed_follows_the_manifests(base: Snapshot) -> None:
    other = rebuild(base, {}, fingerprint="sha256:" + "1" * 64)
    assert diff_env(base, other).fingerprint_changed
    assert diff_env(base, other).changed


@pytest.mark.parametrize(
    ("before", "after", "expected"),
    [
        ("1.26.4", "2.2.6", ("upgraded", "major")),
        ("2.2.6", "1.26.4", ("downgraded", "major")),
        ("1.16.0", "1.17.0", ("upgraded", "minor")),
        ("2.31.0", "2.31.1", ("upgraded", "patch")),
        ("1.2", "1.2.0.1", ("upgraded", "patch")),
        ("2.0.0rc1", "2.0.0", ("upgraded", "patch")),
        ("2.3.0+cpu", "2.3.0+cu121", ("changed", "local")),
        ("1!1.0", "2!1.0", ("upgraded", "major")),
        ("1.0", "1.0.0", ("changed", "other")),
        ("2023.x", "2024.1", ("changed", "other")),
    ],
)
def test_version_step(before: str, after: str, expected: tuple[str, str]) -> None:
    assert version_step(before, after) == expected


def _with_packages(edit: Callable[[dict[str, dict[str, Any]]], None]) -> Edit:
    def apply(doc: dict[str, Any]) -> dict[str, Any]:
        by_name = {d["normalized_name"]: d for d in doc["distributions"]}
        edit(by_name)
        doc["distributions"] = sorted(by_name.values(), key=lambda d: d["normalized_name"])
        return doc

    return apply


def test_packages_every_kind_of_delta(base: Snapshot) -> None:
    names = [d["normalized_name"] for d in base.section("packages")["distributions"]]
    assert {"numpy", "pyarrow", "jsonschema", "packaging", "psutil"} <= set(names)
    template = next(d for d in base.section("packages")["distributions"] if d["normalized_name"] == "numpy")

    def edit(dists: dict[str, dict[str, Any]]) -> None:
        dists["numpy"]["version"] = "99.0.0"
        dists["packaging"]["version"] = "1.0"  # a downgrade, major
        dists["psutil"]["installer"] = "uv"
        dists["jsonschema"]["location_kind"] = "editable"
        del dists["pyarrow"]
        dists["torch"] = {**template, "name": "torch", "normalized_name": "torch", "version": "2.3.0+cu121"}

    other = rebuild(base, {"env/packages.json": _with_packages(edit)})
    diff = diff_env(base, other)
    deltas = {d.name: d for d in diff.packages}
    versions = {d["normalized_name"]: d["version"] for d in base.section("packages")["distributions"]}
    assert deltas["numpy"].change == "upgraded"
    assert deltas["numpy"].level == "major"
    assert (deltas["numpy"].before, deltas["numpy"].after) == (versions["numpy"], "99.0.0")
    assert (deltas["packaging"].change, deltas["packaging"].level) == ("downgraded", "major")
    assert deltas["psutil"].installer == ("pip", "uv")
    assert deltas["psutil"].level is None
    assert deltas["jsonschema"].location_kind == ("site", "editable")
    assert (deltas["pyarrow"].change, deltas["pyarrow"].before, deltas["pyarrow"].after) == (
        "removed",
        versions["pyarrow"],
        None,
    )
    assert (deltas["torch"].change, deltas["torch"].after, deltas["torch"].level) == ("added", "2.3.0+cu121", None)
    assert set(deltas) == {"numpy", "packaging", "psutil", "jsonschema", "pyarrow", "torch"}
    section = changes(diff, "packages")
    assert set(section) == set(deltas), "one Change per delta"
    assert section["numpy"].note == "major upgrade"
    assert section["packaging"].note == "major downgrade"
    assert section["psutil"].note == "installer pip → uv"
    assert section["jsonschema"].note == "location site → editable"
    assert section["torch"].kind == "added"
    assert section["pyarrow"].kind == "removed"


def _add_note(name: str, note: str) -> Edit:
    def apply(text: str) -> str:
        lines = text.splitlines()
        at = next(i for i, line in enumerate(lines) if line.startswith(f"{name}=="))
        lines.insert(at + 1, f"    # {note}")
        return "\n".join(lines) + "\n"

    return apply


def test_lock_hash_changes_per_requirement(base: Snapshot) -> None:
    digest_a, digest_b = "sha256:" + "a" * 64, "sha256:" + "b" * 64
    a = rebuild(base, {"env/requirements.lock": _add_note("numpy", f"hash known locally: {digest_a}")})
    b = rebuild(base, {"env/requirements.lock": _add_note("numpy", f"hash known locally: {digest_b}")})
    section = only(diff_env(a, b), "lock")
    assert [c.key for c in section.changes] == ["numpy"]
    change = section.changes[0]
    assert (change.kind, change.before, change.after) == ("changed", [digest_a], [digest_b])
    assert change.note == "1 hash(es) added, 1 removed"


def test_lock_hash_mode_is_read_from_hash_options() -> None:
    plain = "six==1.16.0\nidna==3.7\n"
    hashed = f"six==1.16.0 \\\n    --hash=sha256:{'c' * 64}\nidna==3.7 \\\n    --hash=sha256:{'d' * 64}\n"
    section = diff_lock(plain, hashed)
    by_key = {c.key: c for c in section.changes}
    assert by_key["six"].after == [f"sha256:{'c' * 64}"]
    assert by_key["idna"].before == []
    assert (by_key["hash_mode"].before, by_key["hash_mode"].after) == (False, True)


def test_python_section(base: Snapshot) -> None:
    def edit(doc: dict[str, Any]) -> dict[str, Any]:
        doc["version"] = "3.12.4"
        doc["executable"] = "/opt/py312/bin/python"
        doc["soabi"] = "cpython-312-x86_64-linux-gnu"
        doc["build"] = ["main", "Jun  6 2024 19:30:16"]
        doc["is_venv"] = not doc["is_venv"]
        return doc

    found = changes(diff_env(base, rebuild(base, {"env/python.json": edit})), "python")
    assert found["version"].before == base.section("python")["version"]
    assert found["version"].after == "3.12.4"
    assert found["executable"].after == "/opt/py312/bin/python"
    assert found["soabi"].after == "cpython-312-x86_64-linux-gnu"
    assert found["build"].after == ["main", "Jun  6 2024 19:30:16"]
    assert found["venv"].after is not base.section("python")["is_venv"]


def test_native_pools_libraries_and_numpy_build(base: Snapshot) -> None:
    native = base.section("native")
    blas = [p for p in native["pools"] if p["user_api"] == "blas"]
    assert blas, "numpy was imported before the capture: its BLAS pool must be there"
    library = native["libraries"][0]

    def edit(doc: dict[str, Any]) -> dict[str, Any]:
        for pool in doc["pools"]:
            if pool["user_api"] == "blas":
                pool.update(internal_api="mkl", version="2024.1", num_threads=1, threading_layer="intel")
        doc["libraries"][0]["version"] = "9.9.9"
        doc["libraries"].append({**library, "name": "mkl_rt", "version": "2.0", "files": ["libmkl_rt.so.2"]})
        doc["numpy_config"]["config"]["Build Dependencies"]["blas"]["name"] = "mkl"
        return doc

    found = changes(diff_env(base, rebuild(base, {"env/native.json": edit})), "native")
    label = "blas" if len(blas) == 1 else "blas#1"
    assert found[f"{label}.vendor"].before == blas[0]["internal_api"]
    assert found[f"{label}.vendor"].after == "mkl"
    assert found[f"{label}.num_threads"].after == 1
    assert found[f"{label}.threading_layer"].after == "intel"
    owner = library["distribution"] or library["package"]
    assert found[f"lib:{library['name']} ({owner})"].after == "9.9.9"
    assert found[f"lib:mkl_rt ({owner})"].kind == "added"
    assert found["numpy.blas.name"].after == "mkl"


def test_threads_configured_effective_pools_and_mismatches(base: Snapshot) -> None:
    def edit(doc: dict[str, Any]) -> dict[str, Any]:
        doc["configured"]["OMP_NUM_THREADS"] = "16"
        doc["effective"]["cpu_count"] = 64
        doc["effective"]["pools"] = [{**p, "num_threads": 16} for p in doc["effective"]["pools"]]
        doc["mismatches"] = ["OMP_NUM_THREADS=16 exceeds the 2 usable CPUs"]
        return doc

    a = base.section("threads")
    found = changes(diff_env(base, rebuild(base, {"env/threads.json": edit})), "threads")
    assert found["configured:OMP_NUM_THREADS"].after == "16"
    assert found["configured:OMP_NUM_THREADS"].kind == ("changed" if "OMP_NUM_THREADS" in a["configured"] else "added")
    assert (found["effective.cpu_count"].before, found["effective.cpu_count"].after) == (
        a["effective"]["cpu_count"],
        64,
    )
    pool_keys = [k for k in found if k.startswith("effective.pool:")]
    assert pool_keys and all(found[k].after == 16 for k in pool_keys)
    assert found["mismatch"].after == "OMP_NUM_THREADS=16 exceeds the 2 usable CPUs"


def _vars(edit: Callable[[dict[str, Any], dict[str, Any]], None]) -> Edit:
    def apply(doc: dict[str, Any]) -> dict[str, Any]:
        edit(doc["variables"], doc["policy"])
        return doc

    return apply


def test_envvars_kept_values_names_and_redacted_digests(base: Snapshot) -> None:
    variables = base.section("envvars")["variables"]
    redacted = next(n for n, e in variables.items() if e.get("redacted") and "digest" in e)
    secret_digest = "0123456789abcdef"

    def edit(vs: dict[str, Any], policy: dict[str, Any]) -> None:
        vs["OMP_NUM_THREADS"] = {"value": "8"}
        vs["MY_NEW_SECRET"] = {"redacted": True, "digest": "fedcba9876543210"}
        vs[redacted] = {"redacted": True, "digest": secret_digest}
        del vs["PATH"]

    diff = diff_env(base, rebuild(base, {"env/envvars.json": _vars(edit)}))
    found = changes(diff, "envvars")
    omp = found["OMP_NUM_THREADS"]
    if "OMP_NUM_THREADS" in variables and "value" in variables["OMP_NUM_THREADS"]:
        assert (omp.kind, omp.before, omp.after) == ("changed", variables["OMP_NUM_THREADS"]["value"], "8")
    else:
        assert (omp.kind, omp.after) == ("added", "8")
    assert (found["PATH"].kind, found["PATH"].before) == ("removed", variables["PATH"]["value"])
    new = found["MY_NEW_SECRET"]
    assert (new.kind, new.redacted, new.before, new.after) == ("added", True, None, None)
    changed = found[redacted]
    assert (changed.redacted, changed.value_changed, changed.before, changed.after) == (True, True, None, None)
    text = json.dumps([c.__dict__ for c in diff.section("envvars").changes])  # type: ignore[union-attr]
    assert secret_digest not in text and variables[redacted]["digest"] not in text and "fedcba" not in text


def test_envvars_redacted_values_cannot_be_compared_across_keys(base: Snapshot) -> None:
    variables = base.section("envvars")["variables"]
    redacted = sorted(n for n, e in variables.items() if e.get("redacted") and "digest" in e)

    def other_key(vs: dict[str, Any], policy: dict[str, Any]) -> None:
        policy["key_id"] = "abcdef01" if policy["key_id"] != "abcdef01" else "12345678"
        for name in redacted:
            vs[name] = {"redacted": True, "digest": "f" * 16}

    section = diff_env(base, rebuild(base, {"env/envvars.json": _vars(other_key)})).section("envvars")
    assert section is not None
    by_key = {c.key: c for c in section.changes}
    assert set(by_key) == set(redacted)
    for change in by_key.values():
        assert (change.value_changed, change.redacted, change.before, change.after) == (None, True, None, None)
        assert change.note == "cannot tell: different redaction keys"
    assert section.note is not None and "not comparable" in section.note

    def no_key(vs: dict[str, Any], policy: dict[str, Any]) -> None:
        policy.update(key_id=None, key_source="none", comparable=False)
        for name in redacted:
            vs[name] = {"redacted": True}

    keyless = changes(diff_env(base, rebuild(base, {"env/envvars.json": _vars(no_key)})), "envvars")
    assert {c.value_changed for c in keyless.values()} == {None}
    assert {c.note for c in keyless.values()} == {"cannot tell: a snapshot has no redaction key (no digests)"}


def _gpu(driver: str, memory: int, mig: str) -> dict[str, Any]:
    device = {
        "index": 0,
        "minor_number": 0,
        "name": "NVIDIA H100 80GB HBM3",
        "architecture": "Hopper",
        "uuid": "GPU-5c1e0f3a-0000-0000-0000-000000000000",
        "pci_bus_id": "00000000:19:00.0",
        "memory_total_mib": memory,
        "compute_capability": "9.0",
        "mig_mode": mig,
        "compute_mode": "Default",
        "persistence_mode": "enabled",
        "ecc_mode": "enabled",
        "vbios_version": "96.00.99.00.01",
    }
    return {
        "available": True,
        "source": "nvml",
        "reason": None,
        "driver_version": driver,
        "cuda_driver_version": "12.4",
        "cuda_visible_devices": None,
        "devices": [device],
    }


def test_gpu_driver_and_devices(base: Snapshot) -> None:
    assert base.section("gpu")["available"] is False
    with_gpu = rebuild(base, {"env/gpu.json": lambda _: _gpu("550.54.15", 81559, "disabled")})
    found = changes(diff_env(base, with_gpu), "gpu")
    assert found["driver_version"].after == "550.54.15"
    assert found["device[0]"].kind == "added"
    assert found["device[0]"].after["name"] == "NVIDIA H100 80GB HBM3"
    other = rebuild(base, {"env/gpu.json": lambda _: _gpu("535.161.08", 40000, "enabled")})
    found = changes(diff_env(with_gpu, other), "gpu")
    assert set(found) == {"driver_version", "device[0].memory_total_mib", "device[0].mig_mode"}
    assert (found["device[0].mig_mode"].before, found["device[0].mig_mode"].after) == ("disabled", "enabled")


def test_container_image_digest(base: Snapshot) -> None:
    def image(digest: str) -> Edit:
        def apply(doc: dict[str, Any]) -> dict[str, Any]:
            doc["image"] = {"reference": "ghcr.io/acme/job:1", "digest": digest, "id": None, "source": "env"}
            return doc

        return apply

    a = rebuild(base, {"env/container.json": image("sha256:" + "1" * 64)})
    b = rebuild(base, {"env/container.json": image("sha256:" + "2" * 64)})
    found = changes(diff_env(a, b), "container")
    assert set(found) == {"image.digest"}
    assert found["image.digest"].after == "sha256:" + "2" * 64


def test_git_commit_dirty_patch_remotes_untracked(base: Snapshot) -> None:
    git = base.section("git")
    assert git["present"] is True

    def edit(doc: dict[str, Any]) -> dict[str, Any]:
        doc.update(commit="f" * 40, dirty=True, patch_sha256="e" * 64, patch_size=120, untracked=["notes.txt"])
        doc["remotes"] = {"origin": "https://example.com/acme/job.git"}
        return doc

    found = changes(diff_env(base, rebuild(base, {"env/git.json": edit})), "git")
    assert (found["commit"].before, found["commit"].after) == (git["commit"], "f" * 40)
    assert (found["dirty"].before, found["dirty"].after) == (False, True)
    assert found["patch_sha256"].after == "e" * 64
    assert found["remote:origin"].kind == "added"
    assert (found["untracked"].before, found["untracked"].after) == (len(git["untracked"]), 1)


def test_system_glibc_flags_cgroup(base: Snapshot) -> None:
    flags = base.section("system")["cpu"]["flags"]
    assert len(flags) > 2

    def edit(doc: dict[str, Any]) -> dict[str, Any]:
        doc["glibc"] = "2.31"
        doc["cpu"]["flags"] = sorted([*flags[1:], "amx_tile"])
        doc["cgroup"]["memory"] = {"limit_bytes": 8 * 2**30, "source": "v2"}
        doc["memory"]["total_bytes"] = 2**34
        return doc

    found = changes(diff_env(base, rebuild(base, {"env/system.json": edit})), "system")
    assert found["glibc"].after == "2.31"
    assert (found["cpu.flags"].kind, found["cpu.flags"].before, found["cpu.flags"].after) == (
        "changed",
        [flags[0]],
        ["amx_tile"],
    )
    assert found["cgroup.memory.limit_bytes"].after == 8 * 2**30
    assert found["memory.total_bytes"].after == 2**34


def test_artifacts_hash_feature_order_and_scaler_parameters(base: Snapshot) -> None:
    index = base.section("artifacts")["artifacts"]
    model_member, sidecar_member = index["model.joblib"]["member"], index["features.json"]["member"]
    mean = base.read_json(model_member)["metadata"]["object"]["steps"][0]["estimator"]["fitted"]["mean_"]

    def model(doc: dict[str, Any]) -> dict[str, Any]:
        doc["sha256"], doc["size"] = "9" * 64, doc["size"] + 10
        scaler = doc["metadata"]["object"]["steps"][0]["estimator"]
        scaler["fitted"]["mean_"] = [mean[0] + 0.25, *mean[1:]]
        scaler["feature_names_in"] = ["sessions", "tenure", "charges"]
        doc["metadata"]["sklearn_version_pickled"] = "1.3.2"
        return doc

    def sidecar(doc: dict[str, Any]) -> dict[str, Any]:
        doc["metadata"]["feature_order"] = ["sessions", "tenure", "charges", "region"]
        doc["metadata"]["values"]["scale"] = [1.0, 2.5]
        return doc

    other = rebuild(base, {model_member: model, sidecar_member: sidecar})
    found = changes(diff_env(base, other), "artifacts")
    assert found["model.joblib.sha256"].after == "9" * 64
    shifted = found["model.joblib/scaler.mean_"]
    assert shifted.note == "max abs difference 0.25"
    assert shifted.after[0] == pytest.approx(mean[0] + 0.25)
    assert found["model.joblib/scaler.feature_names_in"].note == "moved: sessions"
    assert found["model.joblib.sklearn_version_pickled"].after == "1.3.2"
    order = found["features.json.feature_order"]
    assert order.note == "added: region; moved: sessions"
    assert order.after == ["sessions", "tenure", "charges", "region"]
    assert found["features.json.scale"].note == "max abs difference 0.5"
    assert "model.joblib/classifier.coef_" not in found


def test_artifacts_added_and_removed(base: Snapshot) -> None:
    index = base.section("artifacts")["artifacts"]

    def drop_sidecar(doc: dict[str, Any]) -> dict[str, Any]:
        del doc["artifacts"]["features.json"]
        return doc

    other = rebuild(base, {"artifacts/index.json": drop_sidecar, index["features.json"]["member"]: None})
    found = changes(diff_env(base, other), "artifacts")
    assert found["features.json"].kind == "removed"
    assert found["features.json"].before["sha256"] == base.read_json(index["features.json"]["member"])["sha256"]
    assert changes(diff_env(other, base), "artifacts")["features.json"].kind == "added"


def test_missing_and_failed_members_give_notes_not_crashes(base: Snapshot) -> None:
    members = {m: base.read_bytes(m) for m in base.members() if m != "env/git.json"}
    error = {"type": "OSError", "message": "OSError: ldconfig exploded"}
    members["env/native.json"] = canonical.dumps({"error": error})
    probes = {
        **base.manifest.probes,
        "git": ProbeStatus("skipped"),
        "native": ProbeStatus("error", "OSError: ldconfig exploded", ("env/native.json",)),
    }
    broken = assemble_snapshot(members, fingerprint=base.fingerprint, probes=probes)
    diff = diff_env(base, broken)
    git, native = diff.section("git"), diff.section("native")
    assert git is not None and native is not None
    assert (git.changes, git.note) == ((), "cannot compare: b: not captured (skipped)")
    assert native.changes == ()
    assert native.note == "cannot compare: b: the probe failed: OSError: ldconfig exploded"
    assert diff_env(broken, base).section("git").note == "cannot compare: a: not captured (skipped)"  # type: ignore[union-attr]


def test_list_and_numeric_helpers() -> None:
    assert describe_list_change(["a", "b", "c"], ["b", "c", "a"]) == "moved: a"
    assert describe_list_change(["a", "b"], ["a", "c"]) == "added: c; removed: b"
    assert numeric_difference([[1.0, 2.0]], [[1.0, 2.5]]) == "max abs difference 0.5"
    assert numeric_difference([1.0, 2.0], [1.0]) == "shape [2] → [1]"
    assert numeric_difference([1.0, None], [1.0, 3.0]).endswith("1 non-numeric or non-finite value(s) differ")


def test_parse_requirements_forms() -> None:
    text = (
        "# a pip-compile output\n"
        "--index-url https://pypi.example/simple\n"
        "--extra-index-url=https://other.example/simple\n"
        "-r base.txt\n"
        "six==1.16.0 \\\n"
        f"    --hash=sha256:{'a' * 64} \\\n"
        f"    --hash=sha256:{'b' * 64}\n"
        "    # via -r requirements.in\n"
        "Requests[socks]>=2.31  # inline comment\n"
        "-e git+https://github.com/acme/tool.git@abc123#egg=acme_tool\n"
        "mypkg @ https://files.example/mypkg-1.0-py3-none-any.whl\n"
        'old-backport==1.0 ; python_version < "3.0"\n'
        "weird===2023.x\n"
    )
    requirements, notes = parse_requirements(text, {"python_version": "3.11", "python_full_version": "3.11.7"})
    by_name = {r.name: r for r in requirements}
    assert set(by_name) == {"six", "requests", "acme-tool", "mypkg", "weird"}
    assert by_name["six"].pinned == "1.16.0"
    assert by_name["requests"].specifier == ">=2.31"
    assert by_name["acme-tool"].editable
    assert by_name["mypkg"].url == "https://files.example/mypkg-1.0-py3-none-any.whl"
    assert by_name["weird"].pinned == "2023.x"
    assert "not followed: -r base.txt" in notes
    assert any("1 requirement(s) skipped" in n for n in notes)


def test_diff_requirements_direction_and_notes(base: Snapshot) -> None:
    versions = {d["normalized_name"]: d["version"] for d in base.section("packages")["distributions"]}
    text = "\n".join(
        [
            *(f"{n}=={v}" for n, v in versions.items() if n not in ("numpy", "pyarrow", "psutil")),
            "numpy==99.0.0",
            "psutil>=1.0",
            "a-package-not-installed==0.1.0",
        ]
    )
    diff = diff_requirements(base, text, source="requirements.txt")
    assert [s.name for s in diff.sections] == ["packages"]
    deltas = {d.name: d for d in diff.packages}
    assert (deltas["numpy"].change, deltas["numpy"].level, deltas["numpy"].after) == ("upgraded", "major", "99.0.0")
    assert (deltas["a-package-not-installed"].change, deltas["a-package-not-installed"].after) == ("added", "0.1.0")
    assert (deltas["pyarrow"].change, deltas["pyarrow"].before) == ("removed", versions["pyarrow"])
    assert set(deltas) == {"numpy", "a-package-not-installed", "pyarrow"}
    found = changes(diff, "packages")
    assert found["psutil"].note == f"not pinned: >=1.0; installed {versions['psutil']} satisfies it"
    section = diff.section("packages")
    assert section is not None and section.note is not None
    assert section.note.startswith("a = snapshot, b = requirements.txt")
    assert not diff.fingerprint_changed


def test_versions_that_are_not_pep440_still_count_as_changed(base: Snapshot) -> None:
    from envsnap.diff.env_packages import package_deltas

    numpy = next(d for d in base.section("packages")["distributions"] if d["normalized_name"] == "numpy")
    deltas, notes = package_deltas([{**numpy, "version": "2023.x"}], [{**numpy, "version": "2024.y"}])
    assert [(d.change, d.level, d.before, d.after) for d in deltas] == [("changed", "other", "2023.x", "2024.y")]
    assert notes == ["version not comparable (not PEP 440)"]
    same, _ = package_deltas([{**numpy, "version": "1.0"}], [{**numpy, "version": "1.0.0"}])
    assert same == [], "1.0 and 1.0.0 are the same release"


def test_a_member_of_the_wrong_shape_becomes_a_note_naming_the_field(base: Snapshot) -> None:
    members = {m: base.read_bytes(m) for m in base.members()}
    native = json.loads(members["env/native.json"])
    native["libraries"] = ["not-an-object"]
    members["env/native.json"] = canonical.dumps(native)  # hash-valid, schema-invalid
    members["env/packages.json"] = canonical.dumps([1, 2, 3])
    odd = assemble_snapshot(members, fingerprint=base.fingerprint, probes=base.manifest.probes)
    diff = diff_env(base, odd)
    native_section, packages = diff.section("native"), diff.section("packages")
    assert native_section is not None and packages is not None
    assert native_section.changes == () and packages.changes == ()
    assert native_section.note is not None and native_section.note.startswith("cannot compare: b: unreadable:")
    assert "$.libraries[0]" in native_section.note
    assert packages.note is not None and "env/packages.json" in packages.note
    assert diff.section("python").note is None  # type: ignore[union-attr]
