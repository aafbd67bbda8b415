"""The container probe: docker/podman/containerd/CRI-O/Kubernetes detection, ids, and the image."""

from __future__ import annotations

import json
import os
import re
import socket
import socketserver
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import pytest

from envsnap.capture import target
from envsnap.capture.base import CaptureContext, CaptureOptions
from envsnap.capture.container import (
    ContainerProbe,
    detect,
    image_from_docker_inspect,
    image_from_engine,
    image_from_env,
    kubernetes_facts,
    parse_cgroup_paths,
    parse_containerenv,
    parse_mountinfo_container,
)
from envsnap.snapshot.schema import validate_member

CID = "3f2a9c1b7e6d5f4a3b2c1d0e9f8a7b6c5d4e3f2a1b0c9d8e7f6a5b4c3d2e1f0a"
POD_UID = "0d1c2b3a-4f5e-6d7c-8b9a-0f1e2d3c4b5a"
DIGEST = "sha256:" + "ab" * 32
IMAGE_ID = "sha256:" + "cd" * 32

DOCKER_V1 = f"""\
12:pids:/docker/{CID}
11:memory:/docker/{CID}
4:cpu,cpuacct:/docker/{CID}
1:name=systemd:/docker/{CID}
0::/system.slice/containerd.service
"""
DOCKER_V2_SYSTEMD = f"0::/system.slice/docker-{CID}.scope\n"
PODMAN_V2 = f"0::/machine.slice/libpod-{CID}.scope/container\n"
PODMAN_V1 = f"5:memory:/libpod_parent/libpod-{CID}\n"
CONTAINERD_CRI = (
    f"0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{POD_UID.replace('-', '_')}.slice/"
    f"cri-containerd-{CID}.scope\n"
)
CRIO = f"0::/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{POD_UID}.slice/crio-{CID}.scope\n"
K8S_CGROUPFS = f"11:memory:/kubepods/burstable/pod{POD_UID}/{CID}\n"
HOST = "0::/user.slice/user-1000.slice/session-3.scope\n"
NAMESPACED = "0::/\n"
DOCKER_MOUNTINFO = f"""\
900 850 0:51 / / rw,relatime master:1 - overlay overlay rw,lowerdir=/var/lib/docker/overlay2/l/X
912 900 254:1 /var/lib/docker/containers/{CID}/resolv.conf /etc/resolv.conf rw,relatime - ext4 /dev/vda1 rw
913 900 254:1 /var/lib/docker/containers/{CID}/hostname /etc/hostname rw,relatime - ext4 /dev/vda1 rw
"""
PODMAN_MOUNTINFO = (
    f"700 650 0:40 /containers/storage/overlay-containers/{CID}/userdata/hostname /etc/hostname rw - tmpfs tmpfs rw\n"
)
CONTAINERENV = f"""\
engine="podman-4.9.3"
name="train-job"
id="{CID}"
image="quay.io/org/train:2.1"
imageid="{"ef" * 32}"
rootless=1
"""


@pytest.mark.parametrize(
    ("text", "runtime", "container_id"),
    [
        (DOCKER_V1, "docker", CID),
        (DOCKER_V2_SYSTEMD, "docker", CID),
        (PODMAN_V2, "podman", CID),
        (PODMAN_V1, "podman", CID),
        (CONTAINERD_CRI, "containerd", CID),
        (CRIO, "cri-o", CID),
        (K8S_CGROUPFS, None, CID),
        (HOST, None, None),
        (NAMESPACED, None, None),
    ],
)
def test_cgroup_paths(text: str, runtime: str | None, container_id: str | None) -> None:
    found_runtime, found_id, signals = parse_cgroup_paths(text)
    assert (found_runtime, found_id) == (runtime, container_id)
    assert bool(signals) == (container_id is not None)


def test_kubepods_cgroup_is_a_signal() -> None:
    assert "cgroup:kubepods" in parse_cgroup_paths(K8S_CGROUPFS)[2]
    assert parse_cgroup_paths(CONTAINERD_CRI)[2] == ["cgroup:containerd"]


def test_mountinfo_reveals_the_id_under_a_cgroup_namespace() -> None:
    assert parse_mountinfo_container(DOCKER_MOUNTINFO) == ("docker", CID)
    assert parse_mountinfo_container(PODMAN_MOUNTINFO) == ("podman", CID)
    assert parse_mountinfo_container("27 1 254:0 / / rw,relatime - ext4 /dev/vda rw\n") == (None, None)


def test_containerenv() -> None:
    env = parse_containerenv(CONTAINERENV)
    assert env["engine"] == "podman-4.9.3"
    assert env["image"] == "quay.io/org/train:2.1"
    assert env["id"] == CID


def _detect(**overrides: Any) -> dict[str, Any]:
    inputs: dict[str, Any] = {
        "proc_cgroup": NAMESPACED,
        "mountinfo": "",
        "dockerenv": False,
        "containerenv": None,
        "service_account_dir": False,
    }
    environ = overrides.pop("environ", {})
    inputs.update(overrides)
    data = detect(environ, **inputs)
    validate_member("<test>", "env/container.json", data)
    return data


def test_docker_with_a_cgroup_namespace() -> None:
    data = _detect(mountinfo=DOCKER_MOUNTINFO, dockerenv=True)
    assert data["in_container"] is True
    assert data["runtime"] == "docker"
    assert data["container_id"] == CID
    assert data["signals"] == ["/.dockerenv", "mountinfo:docker"]


def test_podman_reports_its_image_from_containerenv() -> None:
    data = _detect(proc_cgroup=PODMAN_V2, containerenv=CONTAINERENV, environ={"container": "podman"})
    assert data["runtime"] == "podman"
    assert data["image"] == {
        "reference": "quay.io/org/train:2.1",
        "digest": None,
        "id": "sha256:" + "ef" * 32,
        "source": "containerenv",
    }
    assert "env:container=podman" in data["signals"]


def test_rootless_podman_with_an_empty_containerenv() -> None:
    data = _detect(containerenv="")
    assert data["runtime"] == "podman" and data["image"] is None and data["container_id"] is None


def test_kubernetes_pod_from_environment_without_reading_the_token() -> None:
    environ = {"KUBERNETES_SERVICE_HOST": "10.0.0.1", "POD_NAMESPACE": "ml", "HOSTNAME": "train-7f9c-x2"}
    data = _detect(proc_cgroup=CONTAINERD_CRI, service_account_dir=True, environ=environ)
    assert data["runtime"] == "containerd"
    assert data["kubernetes"] == {
        "namespace": "ml",
        "pod": "train-7f9c-x2",
        "node": None,
        "service_account_mounted": True,
    }
    assert "kubernetes" in data["signals"]
    assert kubernetes_facts({}, service_account_dir_exists=False) is None


def test_a_plain_host_is_not_a_container() -> None:
    data = _detect(proc_cgroup=HOST)
    assert data == {
        "in_container": False,
        "runtime": None,
        "container_id": None,
        "kubernetes": None,
        "image": None,
        "signals": [],
    }


def test_image_from_env() -> None:
    assert image_from_env({}) is None
    assert image_from_env({"ENVSNAP_IMAGE": "ghcr.io/org/app:1.2", "ENVSNAP_IMAGE_DIGEST": DIGEST}) == {
        "reference": "ghcr.io/org/app:1.2",
        "digest": DIGEST,
        "id": None,
        "source": "env",
    }
    pinned = image_from_env({"ENVSNAP_IMAGE": f"ghcr.io/org/app@{DIGEST}"})
    assert pinned is not None and pinned["digest"] == DIGEST


CONTAINER_JSON = {"Id": CID, "Image": IMAGE_ID, "Config": {"Image": "localhost:5000/org/app:1.2", "Env": ["A=1"]}}
IMAGE_JSON = {
    "Id": IMAGE_ID,
    "RepoTags": ["localhost:5000/org/app:1.2"],
    "RepoDigests": ["docker.io/other/mirror@sha256:" + "00" * 32, f"localhost:5000/org/app@{DIGEST}"],
}


def test_docker_inspect_picks_the_digest_of_the_reference_repository() -> None:
    image = image_from_docker_inspect(CONTAINER_JSON, IMAGE_JSON)
    assert image == {"reference": "localhost:5000/org/app:1.2", "digest": DIGEST, "id": IMAGE_ID, "source": "engine"}
    built_locally = image_from_docker_inspect(CONTAINER_JSON, {"Id": IMAGE_ID, "RepoDigests": []})
    assert built_locally["digest"] is None and built_locally["id"] == IMAGE_ID


class _EngineAPI(BaseHTTPRequestHandler):
    """Answers the two Docker engine API calls the probe makes, as dockerd answers them."""

    def do_GET(self) -> None:
        routes = {f"/containers/{CID}/json": CONTAINER_JSON, f"/images/{IMAGE_ID.replace(':', '%3A')}/json": IMAGE_JSON}
        body = json.dumps(routes[self.path]).encode() if self.path in routes else b'{"message": "No such object"}'
        self.send_response(200 if self.path in routes else 404)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        return

    def address_string(self) -> str:
        return "unix"


class _UnixHTTPServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True


@pytest.fixture
def engine_socket() -> Iterator[str]:
    # AF_UNIX paths are limited to ~100 bytes: pytest's tmp_path can be longer.
    directory = Path("/tmp") / f"envsnap-engine-{os.getpid()}"
    directory.mkdir(exist_ok=True)
    path = str(directory / "docker.sock")
    server = _UnixHTTPServer(path, _EngineAPI)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield path
    finally:
        server.shutdown()
        server.server_close()
        os.unlink(path)
        directory.rmdir()


def test_engine_is_asked_over_its_unix_socket(engine_socket: str) -> None:
    image, problem = image_from_engine(engine_socket, CID)
    assert problem is None
    assert image == {"reference": "localhost:5000/org/app:1.2", "digest": DIGEST, "id": IMAGE_ID, "source": "engine"}
    unknown, problem = image_from_engine(engine_socket, "f" * 64)
    assert unknown is None and problem == "engine:container-unknown"


def test_an_engine_socket_nobody_listens_on_is_unreachable() -> None:
    directory = Path("/tmp") / f"envsnap-dead-{os.getpid()}"
    directory.mkdir(exist_ok=True)
    path = str(directory / "docker.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(path)  # bound, never listening: connect() is refused
    try:
        assert image_from_engine(path, CID) == (None, "engine:unreachable")
        assert image_from_engine(str(directory / "absent.sock"), CID) == (None, None)
    finally:
        sock.close()
        os.unlink(path)
        directory.rmdir()


def _collect(environ: dict[str, str]) -> dict[str, Any]:
    data = ContainerProbe().collect(CaptureContext(CaptureOptions(environ=environ), target.in_process))
    validate_member("<test>", "env/container.json", data)
    return data


def test_real_machine() -> None:
    data = _collect({"DOCKER_HOST": "unix:///nonexistent/docker.sock"})
    assert data["in_container"] == bool(data["signals"])
    if os.path.exists("/.dockerenv"):
        assert "/.dockerenv" in data["signals"] and data["in_container"] is True
    if not os.path.exists("/run/.containerenv") and os.path.exists("/.dockerenv"):
        assert data["runtime"] in ("docker", "containerd", "cri-o")
    if data["container_id"] is not None:
        sources = Path("/proc/self/cgroup").read_text() + Path("/proc/self/mountinfo").read_text()
        assert data["container_id"] in sources
        assert re.fullmatch("[0-9a-f]{64}", data["container_id"])
    assert data == _collect({"DOCKER_HOST": "unix:///nonexistent/docker.sock"})


def test_env_fallback_when_no_engine_answers() -> None:
    environ = {
        "DOCKER_HOST": "unix:///nonexistent/docker.sock",
        "ENVSNAP_IMAGE": "ghcr.io/org/train:2024.06",
        "ENVSNAP_IMAGE_DIGEST": DIGEST,
    }
    image = _collect(environ)["image"]
    assert image is not None
    if image["source"] != "containerenv":  # under podman its own record wins over the declaration
        assert image == {"reference": "ghcr.io/org/train:2024.06", "digest": DIGEST, "id": None, "source": "env"}
