"""The docker engine: the only module that imports the docker SDK.

- **Engine**: ``DOCKER_HOST`` or the local socket; unreachable → :class:`EngineUnavailableError`, which
  suggests ``--engine venv``.
- **Runtime** (default): the base image itself, with the plan's venv mounted read-only at ``/opt/venv`` and
  a writable per-venv byte-code cache (``PYTHONPYCACHEPREFIX``). The venv is built once per key
  (:func:`mounted_key`: the image key plus the base image's id) into the envsnap cache
  (:mod:`envsnap.replay.cache`) by a ``--network none`` container of the base image running
  ``build.sh`` (uv, offline, ``--require-hashes``, hard links from uv's store); no layer is committed.
- **Image** (``image=True``, ``envsnap replay --image``; always for the captured image): tagged
  ``envsnap-replay:<image key>``; ``install.sh`` runs in a ``--network none`` container of the base image,
  which is committed. A second replay of the same runtime finds the tag and builds nothing.
- **Runs** are hardened as DESIGN.md says: no network, read-only root, a tmpfs ``/tmp``, every
  capability dropped, no-new-privileges, a non-root user, a pids limit, read-only mounts (only the
  output and scratch directories are writable), the captured memory and CPU limits when mirrored, and
  no environment but the one the plan gives. A container the kernel killed for memory is reported as
  such (``State.OOMKilled``).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import time
from pathlib import Path
from typing import Any

from envsnap.replay.cache import VenvStore, raise_if_disk_full
from envsnap.replay.dockerfile import (
    CTX,
    INSTALLED_SNIPPET,
    PYCACHE,
    STORE,
    VENV,
    WARM_SNIPPET,
    image_delta,
    image_env,
    image_labels,
    installer_of,
    mounted_env,
    python_in_image,
    warm_modules,
    write_build_context,
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
from envsnap.replay.wheelhouse import gather

__all__ = ["MOUNT_RECIPE", "DockerEngine", "hardened_options", "mounted_key", "run_platform"]

#: The mounted venv's own recipe version: a change to how it is built gives new keys.
MOUNT_RECIPE = 1
WARM_TIMEOUT_S = 120

USER = "65532:65532"
PIDS_LIMIT = 512
TMPFS = "rw,nosuid,nodev,size=1g,mode=1777"
OUTPUT_TAIL = 8000
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def run_platform(plan: ReplayPlan) -> str | None:
    """The Docker platform the runtime is pulled, built and run for when it is not the engine's own: the
    captured architecture under emulation (``linux/amd64`` on an arm64 laptop); else None (the default)."""
    choice = plan.platform_choice
    return choice.platform if choice is not None and choice.mode == "emulated" else None


def _platform_option(plan: ReplayPlan) -> dict[str, str]:
    platform = run_platform(plan)
    return {"platform": platform} if platform else {}


#: What every container envsnap creates gets: no network, read-only root, no capability, a pids limit.
_HARDENING: dict[str, Any] = {
    "network_mode": "none",
    "read_only": True,
    "tmpfs": {"/tmp": TMPFS},  # noqa: S108 - the container's own /tmp
    "cap_drop": ["ALL"],
    "security_opt": ["no-new-privileges"],
    "pids_limit": PIDS_LIMIT,
}


def hardened_options(plan: ReplayPlan) -> dict[str, Any]:
    """The ``containers.create`` options every replay container gets (also shown by ``--dry-run``)."""
    options: dict[str, Any] = {**_HARDENING, "user": USER}
    if plan.memory_bytes:
        options["mem_limit"] = plan.memory_bytes
        options["memswap_limit"] = plan.memory_bytes
    if plan.cpus:
        options["nano_cpus"] = int(plan.cpus * 1e9)
    options.update(_platform_option(plan))
    return options


#: The build container of a mounted venv: no network, read-only root, no capability (it runs as the owner
#: of the cache directory, so what it writes there is that user's).
_BUILD_HARDENING: dict[str, Any] = {**_HARDENING, "environment": {"HOME": "/tmp"}}  # noqa: S108 - its tmpfs


_LIMITS = ("mem_limit", "memswap_limit", "nano_cpus")


def mounted_key(plan: ReplayPlan, base_id: str) -> str:
    """The cache key of the mounted venv: what the image key hashes (base reference, Python, pins) plus the
    base image's id, so that a venv is only ever mounted on the very image (and Python) it was built in."""
    doc = json.dumps([MOUNT_RECIPE, plan.image_key("uv"), base_id], sort_keys=True)
    return "docker-" + hashlib.sha256(doc.encode()).hexdigest()[:24]


class DockerEngine(Engine):
    """Builds the replay runtime with the docker SDK and runs hardened containers from it.

    By default the runtime is the base image plus a cached venv mounted read-only (:mod:`envsnap.replay.cache`);
    ``image=True`` (``envsnap replay --image``, ``ENVSNAP_REPLAY_IMAGE=1``) commits a self-contained image
    instead, as the captured image always does.
    """

    name = "docker"
    isolates = True

    def __init__(self, *, timeout: float = 600.0, image: bool | None = None, store: VenvStore | None = None) -> None:
        self._timeout = timeout
        self._client: Any = None
        self._store = store
        if image is None:
            image = os.environ.get("ENVSNAP_REPLAY_IMAGE", "").strip().lower() not in ("", "0", "false", "no")
        self.image_mode = image

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

    def base_unavailable(self, reference: str) -> str | None:
        """Why ``reference`` cannot be the base image (None: it is here, or its registry has it), asked without
        pulling; :func:`envsnap.replay.execute.resolved_base` falls back from the exact official image on it."""
        from docker.errors import APIError, ImageNotFound

        if self._image(reference) is not None:
            return None
        try:
            self.client().images.get_registry_data(reference)
        except (APIError, ImageNotFound) as exc:
            explanation = getattr(exc, "explanation", None) or str(exc)
            return str(explanation).splitlines()[0][:160] or type(exc).__name__
        return None

    def ensure_base(self, plan: ReplayPlan, progress: Progress) -> str:
        """The base image's id; pulled when absent and pullable, else :class:`BaseImageMissingError`."""
        from docker.errors import APIError, ImageNotFound

        image = self._image(plan.base_image)
        platform = run_platform(plan)
        if image is not None and platform and image.attrs.get("Architecture") != platform.rsplit("/", 1)[-1]:
            image = None  # the tag here is another architecture's: the emulated one is pulled
        if image is None:
            progress("step", f"pulling base image {plan.base_image}" + (f" for {platform}" if platform else ""))
            try:
                image = self.client().images.pull(plan.base_image, **_platform_option(plan))
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
                **_platform_option(plan),
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
        base_id = self.ensure_base(plan, progress)
        if plan.image_python:
            progress(
                "note",
                "the captured image runs its own interpreter, which a mounted venv cannot extend: "
                "building a committed image instead",
            )
        elif not self.image_mode:
            mounted = self._prepare_mounted(plan, context, progress, started, base_id)
            if mounted is not None:
                return mounted
        return self._prepare_image(plan, context, progress, started)

    # -- the default: a cached venv mounted read-only -------------------------------------------------
    @property
    def store(self) -> VenvStore:
        if self._store is None:
            self._store = VenvStore()
        return self._store

    def _prepare_mounted(
        self, plan: ReplayPlan, context: Path, progress: Progress, started: float, base_id: str
    ) -> Prepared | None:
        """The venv for ``plan`` from the cache (built into it when absent or changed), or None when it cannot
        be built this way (no uv for the target platform)."""
        store = self.store
        key = mounted_key(plan, base_id)
        store.use(key)
        problem = store.check(key)
        if problem is None:
            store.touch(key)
            progress("step", f"venv {key} exists for this runtime: mounted read-only, no rebuild")
            return self._mounted(plan, key, base_id, False, 0.0, ())
        notes: tuple[str, ...] = ()

        def waiting() -> None:
            progress("step", f"another envsnap is building venv {key}: waiting for it")

        with store.building(key, waiting):
            problem = store.check(key)
            if problem is None:
                store.touch(key)
                progress("step", f"venv {key} was built meanwhile by another envsnap: mounted read-only")
                return self._mounted(plan, key, base_id, False, time.perf_counter() - started, ())
            if problem != "not built":
                note = f"the cached venv {key} changed since it was built ({problem}): rebuilt"
                progress("note", note)
                notes = (note,)
            progress("step", f"gathering {len(plan.packages)} locked wheels for {plan.platform} (host pip, cached)")
            wheelhouse = gather(plan, context / "wheels", log=lambda m: progress("note", m))
            if wheelhouse.uv is None:
                progress("note", "no uv wheel for the target platform: building a committed image with pip instead")
                return None
            with store.writing(key):
                wheels, uv = store.link_wheels(wheelhouse)
            if uv is None:
                progress("note", "uv's wheel has no binary for this platform: building a committed image instead")
                return None
            write_build_context(context, wheelhouse)
            progress(
                "step",
                f"building venv {key} on {plan.base_image} with uv ({wheelhouse.downloaded} downloaded, "
                f"{wheelhouse.cached} from the wheel cache; no network, no layer)",
            )
            with store.writing(key):
                build = store.new_build(key)
            try:
                python = self._build_venv(plan, context, build, (wheels, uv, bool(notes)), progress)
                self._warm(plan, build, progress)
                with store.writing(key):
                    store.publish(
                        build,
                        key,
                        {
                            "engine": "docker",
                            "python": python,
                            "base": plan.base_image,
                            "base_id": base_id,
                            "packages": len(plan.packages),
                        },
                    )
            except BaseException:
                store.discard(build)
                raise
            store.share_bytecode(key)
        store.touch(key)
        store.evict(protect=key)
        return self._mounted(plan, key, base_id, True, time.perf_counter() - started, notes)

    def _mounted(
        self, plan: ReplayPlan, key: str, base_id: str, built: bool, seconds: float, notes: tuple[str, ...]
    ) -> Prepared:
        entry = self.store.entry(key)
        return Prepared(
            "docker",
            f"venv {key} (read-only) on {plan.base_image}",
            python_in_image(plan),
            built,
            seconds,
            "uv",
            base_id,
            notes,
            image=base_id,
            mounts=(
                Mount(str(entry / "venv"), VENV),
                Mount(str(entry / "pycache"), PYCACHE, writable=True),
            ),
            env=tuple(sorted(mounted_env().items())),
        )

    def _owner(self) -> str:
        st = os.stat(self.store.root)
        return f"{st.st_uid}:{st.st_gid}"

    def _build_venv(
        self, plan: ReplayPlan, context: Path, build: Path, tools: tuple[str, str, bool], progress: Progress
    ) -> str:
        """``build.sh`` in a ``--network none`` container of the base image, run as the cache's owner: the
        venv lands in ``build/venv`` on the host, its files hard links into uv's cache; its Python is returned."""
        from docker.types import Mount as DockerMount

        store = self.store
        wheels, uv, refresh = tools
        inner_build = f"{STORE}/{build.name}"
        code, tail = self._run_container(
            plan.base_image,
            ["sh", f"{CTX}/build.sh", inner_build, f"{STORE}/{wheels}", f"{STORE}/{uv}"]
            + (["refresh"] if refresh else []),
            mounts=[
                DockerMount(target=CTX, source=str(context), type="bind", read_only=True),
                DockerMount(target=STORE, source=str(store.root), type="bind", read_only=False),
            ],
            labels={"org.envsnap.build": build.name},
            options={**_BUILD_HARDENING, "user": self._owner(), **_platform_option(plan)},
            progress=progress,
        )
        text = "\n".join(tail)
        if code != 0:
            raise_if_disk_full(text, store.root)
            last = tail[-1] if tail else "no output"
            raise InstallError(
                f"the venv build failed (exit {code}): {last[:300]}",
                hint="`envsnap export SNAP --dockerfile DIR` writes the same recipe to try by hand",
            )
        (build / "pycache").mkdir(exist_ok=True)
        os.chmod(build / "pycache", 0o777)  # noqa: S103 - the replay's user writes byte code; private cache
        versions = [ln.split()[-1] for ln in tail if ln.startswith("envsnap: python ")]
        return versions[-1] if versions else plan.python_version

    def _warm(self, plan: ReplayPlan, build: Path, progress: Progress) -> None:
        """Compile the byte code of what the recorded stages imported, as a replay would (the venv at its
        run-time path, read-only; the byte code into the key's pycache): the first replay imports as fast as
        the next ones. Anything else compiles on first import, into the same cache."""
        modules = [m for m in warm_modules(plan) if re.match(r"^[A-Za-z_][\w.]*$", m)]
        if not modules:
            return
        from docker.types import Mount as DockerMount

        progress("step", f"compiling the byte code of {len(modules)} recorded import(s) into the venv's cache")
        code, _tail = self._run_container(
            plan.base_image,
            [python_in_image(plan), "-c", WARM_SNIPPET, *modules],
            mounts=[
                DockerMount(target=VENV, source=str(build / "venv"), type="bind", read_only=True),
                DockerMount(target=PYCACHE, source=str(build / "pycache"), type="bind", read_only=False),
            ],
            labels={"org.envsnap.build": build.name},
            # Hardened as a replay, without the mirrored limits: compiling is the build's work, not the job's.
            options={
                **{k: v for k, v in hardened_options(plan).items() if k not in _LIMITS},
                "environment": mounted_env(),
            },
            progress=None,
            timeout=WARM_TIMEOUT_S,
        )
        if code != 0:
            progress("note", f"compiling the recorded imports ahead ended with exit {code}: they compile when imported")

    def _run_container(
        self,
        image: str,
        command: list[str],
        *,
        mounts: list[Any],
        labels: dict[str, str],
        options: dict[str, Any],
        progress: Progress | None,
        timeout: float | None = None,
    ) -> tuple[int, list[str]]:
        """Run a one-off container to its end: (exit status, the last 20 lines of its output)."""
        from docker.errors import APIError

        try:
            container = self.client().containers.create(
                image, command=command, entrypoint=[""], mounts=mounts, labels=labels, **options
            )
        except APIError as exc:
            raise EngineError(f"cannot create the build container: {exc.explanation or exc}") from None
        tail: list[str] = []
        try:
            container.start()
            if progress is not None:
                for chunk in container.logs(stream=True, follow=True):
                    for raw in _ANSI.sub("", chunk.decode("utf-8", "replace")).splitlines():
                        line = raw.rstrip()
                        if line.strip():
                            tail = [*tail, line][-20:]
                            progress("log", line)
            try:
                code = int(container.wait(timeout=timeout).get("StatusCode", -1))
            except Exception:  # noqa: BLE001 - the SDK raises requests' ReadTimeout on a timeout
                with contextlib.suppress(APIError):
                    container.kill()
                code = -9
            if progress is None:
                output = container.logs(stdout=True, stderr=True).decode("utf-8", "replace")
                tail = [ln.rstrip() for ln in _ANSI.sub("", output).splitlines() if ln.strip()][-20:]
        except APIError as exc:
            raise EngineError(f"the build failed: {exc.explanation or exc}") from None
        finally:
            with contextlib.suppress(APIError):
                container.remove(force=True, v=True)
        return code, tail

    # -- opt-in: a self-contained committed image ---------------------------------------------------
    def _prepare_image(self, plan: ReplayPlan, context: Path, progress: Progress, started: float) -> Prepared:
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
                **_platform_option(plan),
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

        every = [*prepared.mounts, *mounts]
        binds = [DockerMount(target=m.inner, source=m.host, type="bind", read_only=not m.writable) for m in every]
        extra = {"entrypoint": [""]} if prepared.image else {}
        try:
            container = self.client().containers.create(
                prepared.image or prepared.reference,
                command=argv,
                working_dir=cwd,
                environment=_run_env(prepared, env, plan),
                mounts=binds,
                **extra,
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
        if "platform" in opts:
            argv += ["--platform", opts["platform"]]
        if "mem_limit" in opts:
            argv += ["--memory", str(opts["mem_limit"]), "--memory-swap", str(opts["memswap_limit"])]
        if "nano_cpus" in opts:
            argv += ["--cpus", f"{opts['nano_cpus'] / 1e9:g}"]
        for m in (*prepared.mounts, *mounts):
            argv += ["-v", f"{m.host}:{m.inner}:{'rw' if m.writable else 'ro'}"]
        environment = _run_env(prepared, env, plan)
        for key in sorted(environment):
            argv += ["-e", key]  # the value comes from the environment handed to docker, not argv
        if prepared.image:
            argv += ["--entrypoint", ""]
        argv += ["--label", f"org.envsnap.replay={plan.snapshot_id}", prepared.image or prepared.reference]
        return [*argv, *(command or ["bash"])], environment


def _run_env(prepared: Prepared, env: dict[str, str], plan: ReplayPlan) -> dict[str, str]:
    """The runtime's own environment under the plan's; with a byte-code cache mounted, byte code is written
    (into it: the venv itself is read-only), unless the captured job itself said not to."""
    out = {**dict(prepared.env), **env}
    if "PYTHONPYCACHEPREFIX" in dict(prepared.env):
        if "PYTHONDONTWRITEBYTECODE" not in plan.env:
            out.pop("PYTHONDONTWRITEBYTECODE", None)
        out["PYTHONPYCACHEPREFIX"] = dict(prepared.env)["PYTHONPYCACHEPREFIX"]
    return out
