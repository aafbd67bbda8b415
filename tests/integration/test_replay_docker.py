"""Replay in a real Docker engine: a recorded pipeline rebuilt from a hermetic wheelhouse and rerun.

Everything is real: the engine started by ``scripts/docker-setup.sh``, a Debian base image served by a
local registry and pinned by digest, wheels downloaded by the host's pip, uv installing them offline in a
``--network none`` build, hardened containers; hostile stages meet the container's isolation.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.replay_env import ENVSNAP, docker_base, git_project, record, replay_python  # noqa: F401

pytestmark = pytest.mark.slow


def envsnap(*args: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*ENVSNAP, *map(str, args)], capture_output=True, text=True, cwd=cwd, check=False)


def replay_json(*args: str | Path) -> tuple[int, dict]:
    proc = envsnap("replay", *args, "--json")
    assert proc.returncode in (0, 1), proc.stderr + proc.stdout
    return proc.returncode, json.loads(proc.stdout)


def stage_status(doc: dict) -> dict[str, str]:
    return {s["name"]: s["status"] for s in doc["stages"]}


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory, replay_python: Path) -> Path:  # noqa: F811
    project = git_project(tmp_path_factory.mktemp("replay-project") / "proj")
    return record(project, replay_python, project / "good.envsnap", "--label", "good")


def test_replay_reproduces_every_intermediate_and_states_fidelity(recorded: Path, docker_base: str) -> None:  # noqa: F811
    code, doc = replay_json(recorded, "--base-image", docker_base, "--until", "summarize")
    assert code == 0, doc
    statuses = stage_status(doc)
    assert statuses == {"clean": "match", "localize": "match", "summarize": "match", "hostile": "skipped"}
    assert all(s["table"]["status"] in ("identical", "equal") for s in doc["stages"] if s["status"] == "match")
    assert doc["first_diverging_stage"] is None
    # The runner is the one thing added to the replay, and it is listed.
    assert len(doc["added_to_sys_path"]) == 1 and "/opt/envsnap/runner" in doc["added_to_sys_path"][0]
    # Fidelity: exactly what the base image changes (here, Debian's Python patch release) and nothing else.
    host_version = ".".join(map(str, sys.version_info[:3]))
    fidelity = doc["fidelity"]
    for item in fidelity:
        assert "from the base image" in item["note"], item
    versions = [f for f in fidelity if f["layer"] == "python" and f["what"] == "version"]
    if host_version != "3.11.2":
        assert versions and versions[0]["recorded"] == host_version and versions[0]["replayed"] == "3.11.2"


def test_second_replay_reuses_the_mounted_venv(recorded: Path, docker_base: str) -> None:  # noqa: F811
    replay_json(recorded, "--base-image", docker_base, "--until", "clean", "--no-fidelity")
    code, doc = replay_json(recorded, "--base-image", docker_base, "--until", "clean", "--no-fidelity")
    assert code == 0
    assert doc["prepared"]["built"] is False
    # No image is committed: the base image runs the cached venv, mounted read-only.
    assert doc["prepared"]["reference"].startswith("venv docker-"), doc["prepared"]
    assert doc["prepared"]["image"].startswith("sha256:")
    mounts = {m["inner"]: m for m in doc["prepared"]["mounts"]}
    assert mounts["/opt/venv"]["writable"] is False and mounts["/opt/envsnap/pycache"]["writable"] is True


def test_image_mode_builds_a_self_contained_image(recorded: Path, docker_base: str) -> None:  # noqa: F811
    import os

    argv = [
        *ENVSNAP,
        "replay",
        str(recorded),
        "--base-image",
        docker_base,
        "--until",
        "clean",
        "--no-fidelity",
        "--json",
    ]
    proc = subprocess.run(
        argv, capture_output=True, text=True, env={**os.environ, "ENVSNAP_REPLAY_IMAGE": "1"}, check=False
    )
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    tag = doc["prepared"]["reference"]
    assert tag.startswith("envsnap-replay:") and not doc["prepared"]["mounts"]
    out = subprocess.run(
        ["docker", "run", "--rm", "--network", "none", tag, "python", "-c", "import pytz; print(pytz.__version__)"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert out.stdout.strip() == "2025.2", out.stderr


def test_with_another_version_diverges_exactly_the_stage_that_uses_it(recorded: Path, docker_base: str) -> None:  # noqa: F811
    code, doc = replay_json(recorded, "--base-image", docker_base, "--until", "summarize", "--with", "pytz==2019.1")
    assert code == 1
    assert stage_status(doc)["localize"] == "diverged"
    assert stage_status(doc)["clean"] == "match" and stage_status(doc)["summarize"] == "match"
    assert doc["first_diverging_stage"] == "localize"
    localize = next(s for s in doc["stages"] if s["name"] == "localize")
    differing = [c["column"] for c in localize["table"]["columns"] if c["status"] == "different"]
    assert differing == ["local_hour"]
    assert doc["plan"]["with_packages"] == ["pytz==2019.1"]
    pytz = next(f for f in doc["fidelity"] if f["what"] == "pytz")
    assert (pytz["recorded"], pytz["replayed"], pytz["note"]) == ("2025.2", "2019.1", "--with")
    text = envsnap("replay", recorded, "--base-image", docker_base, "--until", "summarize", "--with", "pytz==2019.1")
    assert text.returncode == 1
    assert "✗  2 localize" in text.stdout and "first diverging stage: localize" in text.stdout
    assert "what-if: --with pytz==2019.1" in text.stdout


def test_from_and_stage_start_from_recorded_intermediates(recorded: Path, docker_base: str) -> None:  # noqa: F811
    code, doc = replay_json(recorded, "--base-image", docker_base, "--from", "summarize", "--until", "summarize")
    assert code == 0
    expected = {"clean": "recorded", "localize": "recorded", "summarize": "match", "hostile": "skipped"}
    assert stage_status(doc) == expected
    code, doc = replay_json(recorded, "--base-image", docker_base, "--stage", "localize", "--no-fidelity")
    assert code == 0 and stage_status(doc)["localize"] == "match"


def test_set_env_is_applied_and_reported(recorded: Path, docker_base: str) -> None:  # noqa: F811
    _code, doc = replay_json(
        recorded, "--base-image", docker_base, "--stage", "hostile", "--set-env", "HOSTILE=uid", "--no-fidelity"
    )
    assert doc["plan"]["set_env"] == {"HOSTILE": "uid"}
    hostile = next(s for s in doc["stages"] if s["name"] == "hostile")
    assert hostile["status"] == "diverged"  # the recording ran without HOSTILE: no uid column
    assert [c["column"] for c in hostile["table"]["schema"]] == ["uid"]


@pytest.mark.parametrize(
    ("how", "failure", "words"),
    [
        ("network", "network", "network isolation"),
        ("write-usr", "exception", "Read-only file system"),
        ("fork", "exception", "Resource temporarily unavailable"),
    ],
)
def test_hostile_stages_are_contained(recorded: Path, docker_base: str, how: str, failure: str, words: str) -> None:  # noqa: F811
    code, doc = replay_json(
        recorded, "--base-image", docker_base, "--stage", "hostile", "--set-env", f"HOSTILE={how}", "--no-fidelity"
    )
    assert code == 1
    hostile = next(s for s in doc["stages"] if s["name"] == "hostile")
    assert hostile["status"] == "failed" and hostile["failure"] == failure, hostile
    assert words in hostile["error"]


def test_uid_is_not_root(tmp_path: Path, recorded: Path, docker_base: str) -> None:  # noqa: F811
    keep = tmp_path / "kept"
    _code, doc = replay_json(
        recorded, "--base-image", docker_base, "--stage", "hostile", "--set-env", "HOSTILE=uid", "--keep", keep
    )
    import pyarrow.parquet as pq

    uids = set(pq.read_table(keep / "out" / "04-hostile.parquet")["uid"].to_pylist())
    assert uids and 0 not in uids
    assert not any(f["layer"] == "isolation" for f in doc["fidelity"])


def test_mirrored_memory_limit_reports_out_of_memory(tmp_path: Path, recorded: Path, docker_base: str) -> None:  # noqa: F811
    from envsnap.snapshot.build import assemble_snapshot
    from envsnap.snapshot.reader import open_snapshot

    # The same run, as if captured in a cgroup limited to 256 MiB.
    with open_snapshot(recorded) as snap:
        members = {name: snap.read_bytes(name) for name in snap.members()}
        label, fingerprint, probes = snap.label, snap.fingerprint, snap.manifest.probes
    system = json.loads(members["env/system.json"])
    system["cgroup"]["memory"] = {"limit_bytes": 256 << 20, "source": "v1"}
    members["env/system.json"] = (json.dumps(system, sort_keys=True, separators=(",", ":")) + "\n").encode()
    limited = tmp_path / "limited.envsnap"
    assemble_snapshot(members, fingerprint=fingerprint, label=label, probes=probes).write(limited)
    proc = envsnap("replay", limited, "--base-image", docker_base, "--dry-run")
    assert "memory 256.0 MiB" in proc.stdout
    code, doc = replay_json(limited, "--base-image", docker_base, "--set-env", "HOSTILE=memory", "--no-fidelity")
    assert code == 1
    hostile = next(s for s in doc["stages"] if s["name"] == "hostile")
    assert hostile["failure"] == "oom" and "out of memory" in hostile["error"], hostile
    # The stages before the killed one finished and are compared, though the runner never reported.
    assert stage_status(doc) == {"clean": "match", "localize": "match", "summarize": "match", "hostile": "failed"}
    assert doc["first_diverging_stage"] == "hostile"


def test_no_secret_reaches_the_container(recorded: Path, docker_base: str) -> None:  # noqa: F811
    import os

    secret = "ghp_" + "Zx9" * 12
    env = {**os.environ, "GITHUB_TOKEN": secret, "MY_SECRET_VALUE": secret}
    proc = subprocess.run(
        [*ENVSNAP, "replay", str(recorded), "--base-image", docker_base, "--stage", "clean", "--json"],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert secret not in proc.stdout and secret not in proc.stderr


def test_no_secret_in_docker_inspect_of_a_running_replay(recorded: Path, docker_base: str) -> None:  # noqa: F811
    import os
    import time

    secret = "hf_" + "Qw7" * 12
    env = {**os.environ, "HF_TOKEN": secret, "AWS_SECRET_ACCESS_KEY": secret, "OMP_NUM_THREADS": "1"}
    argv = [*ENVSNAP, "replay", str(recorded), "--base-image", docker_base, "--stage", "hostile", "--no-fidelity"]
    argv += ["--set-env", "HOSTILE=sleep"]
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    inspected = ""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not inspected:
        ids = subprocess.run(
            ["docker", "ps", "-q", "--filter", "label=org.envsnap.replay"], capture_output=True, text=True, check=False
        ).stdout.split()
        if ids:
            inspected = subprocess.run(["docker", "inspect", *ids], capture_output=True, text=True, check=False).stdout
        time.sleep(0.2)
    proc.communicate(timeout=120)
    assert inspected, "never saw the replay container running"
    config = json.loads(inspected)[0]
    assert secret not in inspected
    assert config["HostConfig"]["NetworkMode"] == "none" and config["HostConfig"]["ReadonlyRootfs"] is True
    assert config["HostConfig"]["CapDrop"] == ["ALL"] and config["Config"]["User"] == "65532:65532"
    assert "no-new-privileges" in config["HostConfig"]["SecurityOpt"]
    # Writable: the outputs, the scratch directory and the venv's byte-code cache; the venv is read-only.
    writable = [m for m in config["Mounts"] if m["RW"] and not m["Destination"].endswith(("/out", "/scratch"))]
    assert [m["Destination"] for m in writable] == ["/opt/envsnap/pycache"], config["Mounts"]
    assert any(m["Destination"] == "/opt/venv" and not m["RW"] for m in config["Mounts"]), config["Mounts"]
    names = {e.split("=", 1)[0] for e in config["Config"]["Env"]}
    assert "HF_TOKEN" not in names and "AWS_SECRET_ACCESS_KEY" not in names


def test_export_dockerfile_builds_by_hand(tmp_path: Path, recorded: Path, docker_base: str) -> None:  # noqa: F811
    context = tmp_path / "ctx"
    proc = envsnap("export", recorded, "--dockerfile", context, "--base-image", docker_base)
    assert proc.returncode == 0, proc.stderr
    dockerfile = (context / "Dockerfile").read_text()
    assert f"FROM {docker_base}" in dockerfile and "RUN sh /opt/envsnap/install.sh" in dockerfile
    assert "--require-hashes" in (context / "install.sh").read_text()
    reqs = (context / "requirements.txt").read_text()
    assert "pytz==2025.2 --hash=sha256:" in reqs
    wheels = {p.name.split("-")[0].lower() for p in (context / "wheels").glob("*.whl")}
    assert {"pyarrow", "pytz", "uv"} <= wheels
    tag = "envsnap-test-export:latest"
    build = subprocess.run(
        ["docker", "build", "--network", "none", "-q", "-t", tag, str(context)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert build.returncode == 0, build.stderr
    out = subprocess.run(
        ["docker", "run", "--rm", "--network", "none", tag, "python", "-c", "import pytz; print(pytz.__version__)"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert out.stdout.strip() == "2025.2"
    again = envsnap("export", recorded, "--dockerfile", context)
    assert again.returncode == 3 and "not an empty directory" in again.stderr


def test_base_image_missing_is_one_line(recorded: Path, docker_base: str) -> None:  # noqa: F811
    proc = envsnap("replay", recorded, "--base-image", "127.0.0.1:5000/no-such-image:1", "--stage", "clean")
    assert proc.returncode == 3
    lines = proc.stderr.strip().splitlines()
    assert lines[-1].startswith("envsnap: error: base image 127.0.0.1:5000/no-such-image:1")
    assert "Traceback" not in proc.stderr


def test_package_without_a_wheel_is_named(recorded: Path, docker_base: str) -> None:  # noqa: F811
    proc = envsnap("replay", recorded, "--base-image", docker_base, "--with", "pytz==1999.99", "--stage", "clean")
    assert proc.returncode == 3
    assert "pytz==1999.99 has no distribution for the target platform" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_unreachable_engine_suggests_venv(recorded: Path) -> None:
    import os

    env = {**os.environ, "DOCKER_HOST": "unix:///nonexistent/docker.sock"}
    proc = subprocess.run(
        [*ENVSNAP, "replay", str(recorded), "--stage", "clean"], capture_output=True, text=True, env=env, check=False
    )
    assert proc.returncode == 3
    assert "no Docker engine is reachable" in proc.stderr and "--engine venv" in proc.stderr


def test_timeout_stops_a_stage_and_says_so(recorded: Path, docker_base: str) -> None:  # noqa: F811
    args = [recorded, "--base-image", docker_base, "--no-fidelity", "--set-env", "HOSTILE=sleep"]
    code, doc = replay_json(*args, "--set-env", "HOSTILE_SECONDS=60", "--timeout", "8")
    assert code == 1
    statuses = stage_status(doc)
    assert statuses["clean"] == statuses["localize"] == statuses["summarize"] == "match"
    hostile = next(s for s in doc["stages"] if s["name"] == "hostile")
    assert hostile["status"] == "failed" and hostile["failure"] == "timeout", hostile
    running = subprocess.run(
        ["docker", "ps", "-q", "--filter", "label=org.envsnap.replay"], capture_output=True, text=True, check=False
    )
    assert running.stdout.strip() == ""  # the container was killed and removed
