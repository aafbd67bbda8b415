"""The docker engine: the only module that imports the docker SDK.

- **Engine**: ``DOCKER_HOST`` or the local socket; unreachable → :class:`EngineUnavailableError`, which
  suggests ``--engine venv``.
- **Image**: tagged ``envsnap-replay:<image key>`` (the key hashes the base reference, Python, the pins
  and the installer), so a second replay of the same runtime finds it and builds nothing. A build
  streams its log to the progress callback and runs with ``network_mode="none"``: the wheelhouse is in
  the context.
- **Runs** are hardened as DESIGN.md says: no network, read-only root, a tmpfs ``/tmp``, every
  capability dropped, no-new-privileges, a non-root user, a pids limit, read-only mounts (only the
  output and scratch directories are writable), the captured memory and CPU limits when mirrored, and
  no environment but the one the plan gives. A container the kernel killed for memory is reported as
  such (``State.OOMKilled``).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import time
from pathlib import Path
from typing import Any

from envsnap.replay.dockerfile import (
    INSTALLED_SNIPPET,
    image_delta,
    image_env,
    image_labels,
    installer_of,
    python_in_image,
    write_context,
)
from envsnap.replay.engines.base import (
    BaseImageMissingError,
    Engine,
    EngineError,
    EngineUnavailableError,
    Exit,
    InstallError,
    Mount,
    Prepared,
    Progress,
)
from envsnap.replay.plan import ReplayPlan

__all__ = ["DockerEngine", "hardened_options"]

USER = "65532:65532"
PIDS_LIMIT = 512
TMPFS = "rw,nosuid,nodev,size=1g,mode=1777"
OUTPUT_TAIL = 8000
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def hardened_options(plan: ReplayPlan) -> dict[str, Any]:
    """The ``containers.create`` options every replay container gets (also shown by ``--dry-run``)."""
    options: dict[str, Any] = {
        "network_mode": "none",
        "read_only": True,
        "tmpfs": {"/tmp": TMPFS},  # noqa: S108 - the container's own /tmp
        "cap_drop": ["ALL"],
        "security_opt": ["no-new-privileges"],
        "user": USER,
        "pids_limit": PIDS_LIMIT,
    }
    if plan.memory_bytes:
        options["mem_limit"] = plan.memory_bytes
        options["memswap_limit"] = plan.memory_bytes
    if plan.cpus:
        options["nano_cpus"] = int(plan.cpus * 1e9)
    return options


class DockerEngine(Engine):
    """Builds the replay image with the docker SDK and runs hardened containers from it."""

    name = "docker"
    isolates = True

    def __init__(self, *, timeout: float = 600.0) -> None:
        self._timeout = timeout
        self._client: Any = None

    def client(self) -> Any:
        if self._client is not None:
            return self._client
        import docker  # the one import of the SDK in envsnap
        from docker.errors import DockerException

        where = os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"
        try:
            client = docker.from_env(timeout=int(self._timeout))
            client.ping()
        except (DockerException, OSError) as exc:
            raise EngineUnavailableError(
                f"no Docker engine is reachable at {where} ({type(exc).__name__})",
                hint="start dockerd (scripts/docker-setup.sh does), or replay with --engine venv",
            ) from None
        self._client = client
        return client

    def _image(self, reference: str) -> Any:
        from docker.errors import ImageNotFound

        try:
            return self.client().images.get(reference)
        except ImageNotFound:
            return None

    def ensure_base(self, plan: ReplayPlan, progress: Progress) -> str:
        """The base image's id; pulled when absent and pullable, else :class:`BaseImageMissingError`."""
        from docker.errors import APIError, ImageNotFound

        image = self._image(plan.base_image)
        if image is None:
            progress("step", f"pulling base image {plan.base_image}")
            try:
                image = self.client().images.pull(plan.base_image)
            except (APIError, ImageNotFound) as exc:
                explanation = getattr(exc, "explanation", None) or str(exc)
                raise BaseImageMissingError(
                    f"base image {plan.base_image} ({plan.base_image_source}) is not here and cannot be pulled: "
                    f"{str(explanation).splitlines()[0][:160]}",
                    hint="pass --base-image REF (scripts/docker-setup.sh builds a local one)",
                ) from None
        return str(image.id)

    def _installed(self, plan: ReplayPlan) -> dict[str, str] | None:
        """The distributions of the captured interpreter in the captured image (None: it is not there)."""
        from docker.errors import APIError

        assert plan.image_python is not None  # noqa: S101 - the caller checks
        try:
            container = self.client().containers.create(
                plan.base_image,
                command=["-c", INSTALLED_SNIPPET],
                entrypoint=[plan.image_python],
                network_mode="none",
                labels={"org.envsnap.inspect": plan.snapshot_id},
            )
        except APIError as exc:
            raise EngineError(f"cannot create a container of {plan.base_image}: {exc.explanation or exc}") from None
        try:
            try:
                container.start()
            except APIError as exc:
                if "no such file" in str(exc.explanation or exc).lower():
                    return None
                raise EngineError(f"cannot ask {plan.base_image}: {exc.explanation or exc}") from None
            code = int(container.wait().get("StatusCode", -1))
            output = container.logs(stdout=True, stderr=False).decode("utf-8", "replace")
        finally:
            with contextlib.suppress(APIError):
                container.remove(force=True, v=True)
        try:
            answer = json.loads(output) if code == 0 else None
        except ValueError:
            answer = None
        if not isinstance(answer, dict):
            return None if code == 127 else {}
        return {str(k): str(v) for k, v in answer.items()}

    def prepare(self, plan: ReplayPlan, context: Path, progress: Progress) -> Prepared:
        started = time.perf_counter()
        self.ensure_base(plan, progress)
        notes: tuple[str, ...] = ()
        if plan.image_python:
            plan, note = image_delta(plan, self._installed(plan))
            notes = (note,)
            progress("step", note)
        nothing = bool(plan.image_python) and not plan.packages
        python = python_in_image(plan)
        for installer in ("uv", "pip"):
            tag = plan.image_tag(installer)
            image = self._image(tag)
            if image is not None:
                progress("step", f"image {tag} exists for this runtime: no rebuild")
                used = "none" if nothing else installer
                return Prepared("docker", tag, python, False, 0.0, used, str(image.id), notes)
        progress("step", f"gathering {len(plan.packages)} locked wheels for {plan.platform} (host pip, cached)")
        wheelhouse = write_context(plan, context, with_uv=not nothing, log=lambda m: progress("note", m))
        installer = installer_of(wheelhouse)
        tag = plan.image_tag(installer)
        progress(
            "step",
            f"building {tag} from {plan.base_image} with {'nothing to install' if nothing else installer} "
            f"({wheelhouse.downloaded} downloaded, {wheelhouse.cached} from the wheel cache; no network)",
        )
        self._build(plan, context, tag, installer, progress)
        image = self._image(tag)
        return Prepared(
            "docker",
            tag,
            python,
            True,
            time.perf_counter() - started,
            "none" if nothing else installer,
            str(image.id) if image is not None else None,
            notes,
        )

    def _build(self, plan: ReplayPlan, context: Path, tag: str, installer: str, progress: Progress) -> None:
        """Run ``install.sh`` in a container of the base image, then commit it as the replay image.

        The same recipe as the exported Dockerfile, without its costs: the context is a read-only bind
        mount instead of a tarball sent to the daemon and a ``COPY`` layer of wheels, and the venv is
        written once into the one new layer instead of being copied from a build stage. The build
        container has no network, like every replay container.
        """
        from docker.errors import APIError
        from docker.types import Mount

        client = self.client()
        try:
            container = client.containers.create(
                plan.base_image,
                command=["sh", "/opt/envsnap/install.sh", "/opt/envsnap"],
                entrypoint=[""],  # a captured image's own ENTRYPOINT would wrap the command
                network_mode="none",
                # A bind through ``mounts`` (not ``volumes``): ``volumes`` also declares a VOLUME in the
                # container's config, which ``commit`` would carry into the image, giving every replay
                # an anonymous writable volume.
                mounts=[Mount(target="/opt/envsnap", source=str(context), type="bind", read_only=True)],
                labels={"org.envsnap.build": tag},
            )
        except APIError as exc:
            raise EngineError(f"cannot create the build container: {exc.explanation or exc}") from None
        tail: list[str] = []
        try:
            container.start()
            for chunk in container.logs(stream=True, follow=True):
                for raw in _ANSI.sub("", chunk.decode("utf-8", "replace")).splitlines():
                    line = raw.rstrip()
                    if line.strip():
                        tail = [*tail, line][-20:]
                        progress("log", line)
            code = int(container.wait().get("StatusCode", -1))
            if code != 0:
                last = tail[-1] if tail else "no output"
                raise InstallError(
                    f"the image build failed (exit {code}): {last[:300]}",
                    hint="`envsnap export SNAP --dockerfile DIR` writes the same recipe to try by hand",
                )
            changes = [f"ENV {key}={value}" for key, value in image_env(plan).items()]
            changes += [f"LABEL {key}={json.dumps(value)}" for key, value in image_labels(plan, installer).items()]
            changes += ["ENTRYPOINT []", f"CMD {json.dumps([python_in_image(plan)])}"]
            repository, _, name = tag.partition(":")
            container.commit(repository=repository, tag=name, changes=changes)
        except APIError as exc:
            raise EngineError(f"the image build failed: {exc.explanation or exc}") from None
        finally:
            with contextlib.suppress(APIError):
                container.remove(force=True, v=True)

    def execute(
        self,
        prepared: Prepared,
        argv: list[str],
        *,
        plan: ReplayPlan,
        mounts: list[Mount],
        cwd: str,
        env: dict[str, str],
        timeout: float | None = None,
    ) -> Exit:
        from docker.errors import APIError
        from docker.types import Mount as DockerMount

        binds = [DockerMount(target=m.inner, source=m.host, type="bind", read_only=not m.writable) for m in mounts]
        try:
            container = self.client().containers.create(
                prepared.reference,
                command=argv,
                working_dir=cwd,
                environment=dict(env),
                mounts=binds,
                labels={"org.envsnap.replay": plan.snapshot_id},
                **hardened_options(plan),
            )
        except APIError as exc:
            raise EngineError(f"cannot create the replay container: {exc.explanation or exc}") from None
        timed_out = False
        try:
            container.start()
            try:
                status = container.wait(timeout=timeout)
                code = int(status.get("StatusCode", -1))
            except Exception:  # noqa: BLE001 - the SDK raises requests' ReadTimeout on a timeout
                timed_out = True
                container.kill()
                code = -9
            output = container.logs(stdout=True, stderr=True).decode("utf-8", "replace")
            container.reload()
            state = container.attrs.get("State") or {}
            oom = bool(state.get("OOMKilled"))
        finally:
            with contextlib.suppress(APIError):
                container.remove(force=True, v=True)
        return Exit(code, output[-OUTPUT_TAIL:], oom, timed_out, plan.memory_bytes)

    def shell_command(
        self,
        prepared: Prepared,
        *,
        plan: ReplayPlan,
        mounts: list[Mount],
        cwd: str,
        env: dict[str, str],
        command: list[str] | None = None,
        tty: bool = True,
    ) -> tuple[list[str], dict[str, str]]:
        """``docker run -i[t]`` with the same hardening; the CLI runs it with the terminal attached (stdin is
        passed through; ``docker run`` exits with the command's status)."""
        opts = hardened_options(plan)
        argv = ["docker", "run", "--rm", "-it" if tty else "-i", "--network", "none", "--read-only"]
        argv += ["--tmpfs", f"/tmp:{TMPFS}"]  # noqa: S108 - the container's own /tmp
        argv += ["--cap-drop", "ALL", "--security-opt", "no-new-privileges", "--user", USER]
        argv += ["--pids-limit", str(PIDS_LIMIT), "-w", cwd]
        if "mem_limit" in opts:
            argv += ["--memory", str(opts["mem_limit"]), "--memory-swap", str(opts["memswap_limit"])]
        if "nano_cpus" in opts:
            argv += ["--cpus", f"{opts['nano_cpus'] / 1e9:g}"]
        for m in mounts:
            argv += ["-v", f"{m.host}:{m.inner}:{'rw' if m.writable else 'ro'}"]
        for key in sorted(env):
            argv += ["-e", key]  # the value comes from the environment handed to docker, not argv
        argv += ["--label", f"org.envsnap.replay={plan.snapshot_id}", prepared.reference, *(command or ["bash"])]
        return argv, dict(env)
