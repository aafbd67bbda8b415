"""Image references: shown with their digest once, pulled by ``repository@digest``."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from envsnap.capture.container import detect, image_from_docker_inspect, image_from_env
from envsnap.cli import app
from envsnap.core.image_ref import display_reference, pinned_reference, repository
from envsnap.snapshot import canonical
from envsnap.snapshot.build import assemble_snapshot
from envsnap.snapshot.summary import summarize

DIGEST = "sha256:f62c" + "0" * 60
CID = "3f2a9c1b7e6d5f4a3b2c1d0e9f8a7b6c5d4e3f2a1b0c9d8e7f6a5b4c3d2e1f0a"
BY_DIGEST = f"127.0.0.1:5000/job@{DIGEST}"


@pytest.mark.parametrize(
    ("reference", "expected"),
    [
        ("python:3.11-slim", "python"),
        ("python", "python"),
        ("127.0.0.1:5000/job", "127.0.0.1:5000/job"),
        ("127.0.0.1:5000/job:1", "127.0.0.1:5000/job"),
        (BY_DIGEST, "127.0.0.1:5000/job"),
        (f"127.0.0.1:5000/job:1@{DIGEST}", "127.0.0.1:5000/job"),
    ],
)
def test_repository(reference: str, expected: str) -> None:
    assert repository(reference) == expected


@pytest.mark.parametrize(
    ("image", "shown", "pinned"),
    [
        ({"reference": BY_DIGEST, "digest": DIGEST}, BY_DIGEST, BY_DIGEST),
        ({"reference": "127.0.0.1:5000/job:1", "digest": DIGEST}, f"127.0.0.1:5000/job:1@{DIGEST}", BY_DIGEST),
        ({"reference": f"127.0.0.1:5000/job:1@{DIGEST}", "digest": None}, f"127.0.0.1:5000/job:1@{DIGEST}", BY_DIGEST),
        ({"reference": "job:1", "digest": None, "id": DIGEST}, f"job:1 (image id {DIGEST[:19]}…)", None),
        ({"reference": None, "digest": DIGEST}, DIGEST, None),
        ({"reference": None, "digest": None, "id": DIGEST}, f"image id {DIGEST}", None),
        ({}, "?", None),
    ],
)
def test_display_and_pinned(image: dict[str, str | None], shown: str, pinned: str | None) -> None:
    assert display_reference(image) == shown
    assert pinned_reference(image) == pinned


def _container_member(image: dict[str, object] | None) -> bytes:
    data = detect(
        {},
        proc_cgroup=f"0::/system.slice/docker-{CID}.scope\n",
        mountinfo="",
        dockerenv=True,
        containerenv=None,
        service_account_dir=False,
    )
    data["image"] = image
    return canonical.dumps(data)


@pytest.mark.parametrize(
    "image",
    [
        # docker run 127.0.0.1:5000/job@sha256:...: the engine's Config.Image already names the digest
        image_from_docker_inspect({"Config": {"Image": BY_DIGEST}, "Image": DIGEST}, {"RepoDigests": [BY_DIGEST]}),
        image_from_env({"ENVSNAP_IMAGE": BY_DIGEST}),
    ],
)
def test_show_prints_the_reference_once(tmp_path: Path, image: dict[str, object]) -> None:
    members = {
        "env/python.json": canonical.dumps({"implementation": "cpython", "version": "3.11.7"}),
        "env/container.json": _container_member(image),
    }
    snap = assemble_snapshot(members, fingerprint="sha256:" + "0" * 64, reproducible=True)
    assert summarize(snap)["container"] == f"docker {CID[:12]}, image {BY_DIGEST}"
    path = snap.write(tmp_path / "s.envsnap")
    result = CliRunner().invoke(app, ["show", str(path)])
    assert result.exit_code == 0, result.output
    assert result.stdout.count(DIGEST) == 1, result.stdout
    assert f"image {BY_DIGEST}" in result.stdout


def test_show_names_an_image_declared_outside_a_container() -> None:
    from envsnap.snapshot.summary import SUMMARIZERS

    data = detect({}, proc_cgroup="0::/user.slice\n", mountinfo="", dockerenv=False, containerenv=None,
                  service_account_dir=False)  # fmt: skip
    assert SUMMARIZERS["container"](data) == "not in a container"
    data["image"] = image_from_env({"ENVSNAP_IMAGE": BY_DIGEST})
    assert SUMMARIZERS["container"](data) == f"not in a container, image declared: {BY_DIGEST}"
