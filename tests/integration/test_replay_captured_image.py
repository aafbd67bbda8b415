"""A job captured inside a container: the replay builds on that image, by digest, and installs nothing it has.

Everything is real: a job image (a venv with six) built offline from the local base image and pushed to the
local registry, ``envsnap capture`` run INSIDE a container of it (envsnap's own code and dependencies mounted
read-only and put on ``sys.path`` of the image's Python, the Docker engine's socket mounted, so that the
container probe asks the engine which image the container runs), then replays with the docker engine.
"""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

import envsnap
from envsnap.replay.dockerfile import write_context
from envsnap.replay.engines.docker import DockerEngine
from envsnap.replay.plan import build_plan
from tests.integration.replay_env import ENVSNAP, ROOT, docker_base  # noqa: F401

pytestmark = pytest.mark.slow

REGISTRY = "127.0.0.1:5000"
JOB_IMAGE = f"{REGISTRY}/envsnap-test-job:six-1.16.0"
JOB_PYTHON = "/opt/venv/bin/python"
SHOW_SIX = "import six, sys; print(six.__version__, sys.executable)"


def docker(*args: str | Path, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(["docker", *map(str, args)], capture_output=True, text=True, check=False)
    if check:
        assert proc.returncode == 0, proc.stderr + proc.stdout
    return proc


def envsnap_cli(*args: str | Path) -> subprocess.CompletedProcess[str]:
    """The CLI with no ``ENVSNAP_BASE_IMAGE`` (it would stand in for the captured image, as --base-image)."""
    env = {k: v for k, v in os.environ.items() if k != "ENVSNAP_BASE_IMAGE"}
    return subprocess.run([*ENVSNAP, *map(str, args)], capture_output=True, text=True, env=env, check=False)


@pytest.fixture(scope="module")
def job_image(tmp_path_factory: pytest.TempPathFactory, docker_base: str) -> str:  # noqa: F811
    """The job's image, by digest: the base image plus a venv with six 1.16.0, built with no network."""
    if not docker_base.startswith(f"{REGISTRY}/"):
        pytest.skip(f"no local registry at {REGISTRY} to push the job image to (the base image is {docker_base})")
    if sys.version_info[:2] != (3, 11):
        pytest.skip("envsnap's compiled dependencies are mounted into the image's Python 3.11")
    context = tmp_path_factory.mktemp("job-image")
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "-d", str(context), "six==1.16.0"], check=True
    )
    (context / "Dockerfile").write_text(
        f"FROM {docker_base}\n"
        "COPY six-1.16.0-py2.py3-none-any.whl /tmp/wheels/\n"
        "RUN python3 -m venv /opt/venv && /opt/venv/bin/pip install -q --no-index --no-cache-dir "
        "--find-links /tmp/wheels six==1.16.0 && rm -rf /tmp/wheels\n"
    )
    docker("build", "-q", "--network", "none", "-t", JOB_IMAGE, context)
    docker("push", "-q", JOB_IMAGE)
    digests = docker("image", "inspect", "--format", "{{range .RepoDigests}}{{println .}}{{end}}", JOB_IMAGE).stdout
    reference = next(d for d in digests.split() if d.startswith(f"{REGISTRY}/envsnap-test-job@sha256:"))
    return reference


@pytest.fixture(scope="module")
def captured(tmp_path_factory: pytest.TempPathFactory, job_image: str) -> Path:
    """``envsnap capture --python /opt/venv/bin/python`` run inside a container of the job image."""
    out = tmp_path_factory.mktemp("captured")
    site = sysconfig.get_paths()["purelib"]
    # envsnap is not installed in the image: its source and the host venv's site-packages are put on
    # sys.path by the image's own python3 (not through PYTHONPATH, which the job's interpreter would inherit).
    bootstrap = (
        f"import runpy, sys; sys.path[:0] = [{str(ROOT)!r}, {site!r}]; sys.argv[0] = 'envsnap'; "
        "runpy.run_module('envsnap', run_name='__main__', alter_sys=True)"
    )
    docker(
        "run", "--rm", "--network", "none",
        "-v", "/var/run/docker.sock:/var/run/docker.sock",
        "-v", f"{ROOT}:{ROOT}:ro", "-v", f"{site}:{site}:ro", "-v", f"{out}:/out",
        "-e", "HOME=/tmp", "-e", "SCORE_CONFIG=weights-v3",
        job_image,
        "python3", "-c", bootstrap, "capture", "--python", JOB_PYTHON, "--no-git", "-o", "/out/job.envsnap",
    )  # fmt: skip
    return out / "job.envsnap"


def test_the_capture_names_the_image_once(captured: Path, job_image: str) -> None:
    snap = envsnap.load(captured)
    container = snap.section("container")
    assert container["in_container"] is True and container["runtime"] == "docker"
    assert container["image"]["digest"] == job_image.split("@")[1]
    assert "engine:docker" in container["signals"]
    shown = envsnap_cli("show", captured)
    assert shown.returncode == 0, shown.stderr
    (line,) = [ln for ln in shown.stdout.splitlines() if ln.startswith("container")]
    assert line.endswith(f"image {job_image}") and line.count("sha256:") == 1


def test_the_plan_is_the_captured_image_and_its_interpreter(captured: Path, job_image: str) -> None:
    plan = build_plan(envsnap.load(captured))
    assert (plan.base_image, plan.base_image_source) == (job_image, "the captured image digest")
    assert plan.image_python == JOB_PYTHON
    assert {p.pin for p in plan.packages} >= {"six==1.16.0"}
    dry = envsnap_cli("replay", captured, "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert f"base image   {job_image}  (the captured image digest)" in dry.stdout


def test_the_replay_installs_nothing_the_image_has(captured: Path, job_image: str, tmp_path: Path) -> None:
    engine = DockerEngine()
    plan = build_plan(envsnap.load(captured))
    steps: list[str] = []
    prepared = engine.prepare(plan, tmp_path / "context", lambda _kind, message: steps.append(message))
    assert prepared.python == JOB_PYTHON and prepared.installer == "none"
    assert any("nothing installed" in n for n in prepared.notes), prepared.notes
    assert not any("downloading" in s for s in steps), steps
    history = docker("history", "--format", "{{.Size}}", prepared.reference).stdout.split()
    assert history[0] in ("0B", "0"), history  # the one layer the replay adds is empty
    ran = engine.execute(prepared, ["python", "-c", SHOW_SIX], plan=plan, mounts=[], cwd="/", env={})
    assert ran.returncode == 0, ran.output
    assert ran.output.strip() == f"1.16.0 {JOB_PYTHON}"
    # The command line does the same: replay SNAP -- COMMAND, in the captured image's interpreter.
    proc = envsnap_cli("replay", captured, "--", "python", "-c", SHOW_SIX)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == f"1.16.0 {JOB_PYTHON}"


def test_only_what_the_image_lacks_is_installed(captured: Path, tmp_path: Path) -> None:
    engine = DockerEngine()
    plan = build_plan(envsnap.load(captured), with_packages=["six==1.17.0"])
    prepared = engine.prepare(plan, tmp_path / "context", lambda _kind, _message: None)
    assert prepared.python == JOB_PYTHON and prepared.installer in ("uv", "pip")
    (note,) = prepared.notes
    assert note.endswith("installing only the 1 it lacks: six==1.17.0"), note
    wheels = sorted(p.name for p in (tmp_path / "context" / "wheels").glob("*.whl") if not p.name.startswith("uv-"))
    assert wheels in ([], ["six-1.17.0-py2.py3-none-any.whl"])  # [] when the image was built before
    ran = engine.execute(prepared, ["python", "-c", SHOW_SIX], plan=plan, mounts=[], cwd="/", env={})
    assert ran.output.strip() == f"1.17.0 {JOB_PYTHON}", ran.output


def test_the_exported_dockerfile_builds_from_the_image_by_hand(captured: Path, job_image: str, tmp_path: Path) -> None:
    plan = build_plan(envsnap.load(captured))
    context = tmp_path / "context"
    write_context(plan, context)
    dockerfile = (context / "Dockerfile").read_text()
    assert f"FROM {job_image}\n" in dockerfile and dockerfile.count("FROM ") == 1
    tag = "envsnap-test-export-captured:latest"
    build = docker("build", "--network", "none", "-t", tag, context)
    assert "the image already has every pinned package: nothing to install" in build.stdout + build.stderr
    try:
        ran = docker("run", "--rm", "--network", "none", tag, "python", "-c", SHOW_SIX)
        assert ran.stdout.strip() == f"1.16.0 {JOB_PYTHON}"
    finally:
        docker("rmi", "-f", tag, check=False)
