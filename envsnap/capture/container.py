"""``env/container.json``: whether the run is in a container, which runtime, its id and image.

Detection reads marker files (``/.dockerenv``, ``/run/.containerenv``), cgroup paths and mount sources;
the Kubernetes service-account directory is only tested for existence, never read (it holds a token).
The image reference and digest come from the Docker engine when its socket is reachable (plain
``http.client`` over the unix socket: the docker SDK belongs to the replay engine alone), from podman's
``/run/.containerenv``, or else from ``ENVSNAP_IMAGE`` / ``ENVSNAP_IMAGE_DIGEST`` set by whoever built the
image. Every parser is a pure function of text so that each runtime is testable without it.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import http.client

from envsnap._target.host import read_text
from envsnap.capture.base import CaptureContext, Probe, register
from envsnap.core.image_ref import repository

__all__ = [
    "ContainerProbe",
    "detect",
    "docker_socket_path",
    "image_from_docker_inspect",
    "image_from_engine",
    "image_from_env",
    "kubernetes_facts",
    "parse_cgroup_paths",
    "parse_containerenv",
    "parse_mountinfo_container",
]

ENGINE_TIMEOUT_S = 1.0
DOCKER_SOCKET = "/var/run/docker.sock"
K8S_SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io"

_HEX64 = r"([0-9a-f]{64})"
# (runtime, pattern) in the order they are tried on each /proc/self/cgroup path; the first match wins.
_CGROUP_PATTERNS = (
    ("podman", re.compile(r"libpod(?:-conmon)?-" + _HEX64)),
    ("podman", re.compile(r"/libpod_parent/(?:libpod-)?" + _HEX64)),
    ("containerd", re.compile(r"cri-containerd[-:]" + _HEX64)),
    ("cri-o", re.compile(r"crio(?:-conmon)?-" + _HEX64)),
    ("docker", re.compile(r"docker[/-]" + _HEX64)),
    ("containerd", re.compile(r"(?:nerdctl-|/default/)" + _HEX64)),
    (None, re.compile(r"/kubepods[^:\n]*?/" + _HEX64)),
)
_MOUNT_PATTERNS = (
    ("podman", re.compile(r"/containers/storage/overlay-containers/" + _HEX64 + "/")),
    # /etc/hostname, /etc/hosts and /etc/resolv.conf are bind-mounted from <docker root>/containers/<id>/.
    ("docker", re.compile(r"(?:^|/)containers/" + _HEX64 + r"/(?:hostname|hosts|resolv\.conf)$")),
    ("containerd", re.compile(r"/io\.containerd\.runtime\.v2\.task/[^/ ]+/" + _HEX64 + "/")),
)
_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")


def parse_cgroup_paths(text: str) -> tuple[str | None, str | None, list[str]]:
    """Runtime, container id and signals from ``/proc/self/cgroup`` text."""
    runtime: str | None = None
    container_id: str | None = None
    signals: list[str] = []
    for line in text.splitlines():
        path = line.split(":", 2)[-1]
        for candidate, pattern in _CGROUP_PATTERNS:
            match = pattern.search(path)
            if match is None:
                continue
            if container_id is None:
                container_id = match.group(1)
                runtime = candidate
            signals.append(f"cgroup:{candidate or 'kubepods'}")
            break
        else:
            if "kubepods" in path:
                signals.append("cgroup:kubepods")
            if "containerd" in path and runtime is None:
                runtime = "containerd"
                signals.append("cgroup:containerd")
            elif "/lxc/" in path or path.startswith("/lxc.payload"):
                runtime = runtime or "lxc"
                signals.append("cgroup:lxc")
    return runtime, container_id, sorted(set(signals))


def parse_mountinfo_container(text: str) -> tuple[str | None, str | None]:
    """Runtime and container id from mount sources (the only trace under cgroup namespaces, ``0::/``)."""
    for line in text.splitlines():
        fields = line.split()
        if len(fields) < 5:
            continue
        root = fields[3]
        for runtime, pattern in _MOUNT_PATTERNS:
            match = pattern.search(root)
            if match is not None:
                return runtime, match.group(1)
    return None, None


def parse_containerenv(text: str) -> dict[str, str]:
    """podman's ``/run/.containerenv`` (``key="value"`` lines: engine, name, id, image, imageid)."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep and key.strip():
            out[key.strip()] = value.strip().strip('"')
    return out


def kubernetes_facts(environ: Mapping[str, str], service_account_dir_exists: bool) -> dict[str, Any] | None:
    """Kubernetes facts from the environment (downward API names), or None when not in a pod."""
    in_pod = bool(environ.get("KUBERNETES_SERVICE_HOST")) or service_account_dir_exists
    if not in_pod:
        return None
    return {
        "namespace": environ.get("POD_NAMESPACE") or environ.get("KUBERNETES_NAMESPACE"),
        # A pod's hostname is its name; POD_NAME is what the downward API is usually mapped to.
        "pod": environ.get("POD_NAME") or environ.get("HOSTNAME"),
        "node": environ.get("NODE_NAME") or environ.get("KUBERNETES_NODE_NAME"),
        "service_account_mounted": service_account_dir_exists,
    }


def image_from_env(environ: Mapping[str, str]) -> dict[str, Any] | None:
    """The image declared by ``ENVSNAP_IMAGE`` (``repo:tag`` or ``repo@sha256:...``) / ``ENVSNAP_IMAGE_DIGEST``."""
    reference = environ.get("ENVSNAP_IMAGE") or None
    digest = environ.get("ENVSNAP_IMAGE_DIGEST") or None
    if reference and digest is None and "@" in reference:
        digest = reference.rsplit("@", 1)[1]
    if reference is None and digest is None:
        return None
    return {"reference": reference, "digest": digest, "id": None, "source": "env"}


def image_from_docker_inspect(container: Mapping[str, Any], image: Mapping[str, Any] | None) -> dict[str, Any]:
    """The image of ``GET /containers/<id>/json`` and ``GET /images/<id>/json`` answers.

    ``digest`` is the registry (repo) digest the image was pulled by, matched to the reference's
    repository; ``id`` is the local image id (its config digest), which a locally built image only has.
    """
    config = container.get("Config") or {}
    reference = config.get("Image") if isinstance(config, Mapping) else None
    image_id = container.get("Image")
    digest = None
    repo_digests = [d for d in ((image or {}).get("RepoDigests") or []) if isinstance(d, str) and "@" in d]
    if isinstance(reference, str) and "@" in reference:
        digest = reference.rsplit("@", 1)[1]
    elif repo_digests:
        repo = repository(reference) if isinstance(reference, str) else None
        chosen = next((d for d in sorted(repo_digests) if d.split("@", 1)[0] == repo), sorted(repo_digests)[0])
        digest = chosen.split("@", 1)[1]
    return {
        "reference": reference if isinstance(reference, str) else None,
        "digest": digest if isinstance(digest, str) and _DIGEST.match(digest) else None,
        "id": image_id if isinstance(image_id, str) else None,
        "source": "engine",
    }


def _unix_connection(path: str, timeout: float) -> http.client.HTTPConnection:
    """An HTTP connection over a unix socket: the Docker engine API's transport.

    http.client costs ~10 ms to import, so only a capture that has an engine socket to ask pays it.
    """
    import http.client
    import socket

    class UnixHTTPConnection(http.client.HTTPConnection):
        def connect(self) -> None:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.settimeout(timeout)
            try:
                sock.connect(path)
            except OSError:
                sock.close()
                raise
            self.sock = sock

    return UnixHTTPConnection("localhost", timeout=timeout)


def _get_json(socket_path: str, path: str) -> Any:
    conn = _unix_connection(socket_path, ENGINE_TIMEOUT_S)
    try:
        conn.request("GET", path, headers={"Host": "docker"})
        response = conn.getresponse()
        body = response.read(1 << 22)
        if response.status != 200:
            return None
        return json.loads(body)
    finally:
        conn.close()


def docker_socket_path(environ: Mapping[str, str]) -> str:
    """The engine socket: ``DOCKER_HOST=unix://...`` when set that way, else the default path."""
    host = environ.get("DOCKER_HOST", "")
    return host[len("unix://") :] if host.startswith("unix://") else DOCKER_SOCKET


def image_from_engine(socket_path: str, container_id: str) -> tuple[dict[str, Any] | None, str | None]:
    """Ask the Docker engine about this container; ``(None, why)`` when it cannot be asked."""
    if not os.path.exists(socket_path):
        return None, None
    import http.client
    from urllib.parse import quote

    try:
        container = _get_json(socket_path, f"/containers/{quote(container_id, safe='')}/json")
        if not isinstance(container, Mapping):
            return None, "engine:container-unknown"
        image = None
        if isinstance(container.get("Image"), str):
            image = _get_json(socket_path, f"/images/{quote(container['Image'], safe='')}/json")
    except (OSError, http.client.HTTPException, ValueError):
        return None, "engine:unreachable"
    return image_from_docker_inspect(container, image if isinstance(image, Mapping) else None), None


def detect(
    environ: Mapping[str, str],
    *,
    proc_cgroup: str,
    mountinfo: str,
    dockerenv: bool,
    containerenv: str | None,
    service_account_dir: bool,
) -> dict[str, Any]:
    """The container document from already gathered inputs (everything but the engine query)."""
    signals: list[str] = []
    runtime, container_id, cgroup_signals = parse_cgroup_paths(proc_cgroup)
    signals.extend(cgroup_signals)
    mount_runtime, mount_id = parse_mountinfo_container(mountinfo)
    if mount_id is not None:
        signals.append(f"mountinfo:{mount_runtime}")
        runtime = runtime or mount_runtime
        container_id = container_id or mount_id
    podman_env: dict[str, str] = {}
    if containerenv is not None:
        signals.append("/run/.containerenv")
        podman_env = parse_containerenv(containerenv)
        runtime = runtime if runtime not in (None, "docker") else "podman"
        if _DIGEST.match("sha256:" + podman_env.get("id", "")) and container_id is None:
            container_id = podman_env["id"]
    if dockerenv:
        signals.append("/.dockerenv")
        runtime = runtime or "docker"
    declared = environ.get("container")  # set by podman, systemd-nspawn, lxc, flatpak...
    if declared:
        signals.append(f"env:container={declared}")
        runtime = runtime or declared
    kubernetes = kubernetes_facts(environ, service_account_dir)
    if kubernetes is not None:
        signals.append("kubernetes")
    image = None
    if podman_env.get("image") or podman_env.get("imageid"):
        imageid = podman_env.get("imageid")
        image = {
            "reference": podman_env.get("image") or None,
            "digest": None,
            "id": ("sha256:" + imageid) if imageid and ":" not in imageid else imageid or None,
            "source": "containerenv",
        }
    return {
        "in_container": bool(runtime or kubernetes is not None),
        "runtime": runtime,
        "container_id": container_id,
        "kubernetes": kubernetes,
        "image": image,
        "signals": sorted(set(signals)),
    }


@register
class ContainerProbe(Probe):
    """The container the capture runs in, if any, and the image it was started from."""

    name = "container"
    member = "env/container.json"

    def collect(self, ctx: CaptureContext) -> dict[str, Any]:
        environ = ctx.options.environ
        data = detect(
            environ,
            proc_cgroup=read_text("/proc/self/cgroup") or "",
            mountinfo=read_text("/proc/self/mountinfo", 1 << 22) or "",
            dockerenv=os.path.exists("/.dockerenv"),
            containerenv=read_text("/run/.containerenv", 1 << 16),
            service_account_dir=os.path.isdir(K8S_SERVICE_ACCOUNT_DIR),
        )
        if data["container_id"] and data["runtime"] in ("docker", None):
            image, problem = image_from_engine(docker_socket_path(environ), data["container_id"])
            if image is not None:
                data["image"] = image
                data["signals"] = sorted({*data["signals"], "engine:docker"})
            elif problem:
                data["signals"] = sorted({*data["signals"], problem})
        if data["image"] is None:
            data["image"] = image_from_env(environ)
        return data
