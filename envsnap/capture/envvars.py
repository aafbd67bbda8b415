"""``env/envvars.json``: every environment variable name; values only where they matter for reproduction.

Policy, in order:

1. a name in :data:`NEVER_KEEP` (known credentials, envsnap's own redaction key) is always redacted;
2. a name given *exactly* — in :data:`DEFAULT_ENV_ALLOW` or by ``--env-allow NAME`` — keeps its value,
   even when it looks secret (``TOKENIZERS_PARALLELISM`` contains "TOKEN"; an exact name is a decision);
3. a name matched by a *glob* (``OMP_*``, ``--env-allow 'MY_*'``) keeps its value unless it looks secret
   (:func:`~envsnap.core.redact.is_secret_name`): a broad pattern must not sweep ``MY_API_KEY`` in;
4. every other value is redacted.

A kept value is still value-scanned (a ``PATH`` entry with URL userinfo loses it). A redacted value, and a
kept one that scanning changed, get a ``digest``: HMAC-SHA256 of name and value under a per-user key that
never enters the snapshot, truncated to 16 hex digits, so ``diff`` can say "changed" or "unchanged"
without any unsalted hash of a secret being stored. The key comes from ``ENVSNAP_REDACTION_KEY``, else from
``$XDG_CONFIG_HOME/envsnap/redaction.key`` (``~/.config/...``; created with mode 0600 on first use). When
neither is usable, no digests are written and ``policy.comparable`` is false. ``policy.key_id`` names the
key (8 hex digits of a hash of it), so two snapshots' digests are comparable exactly when their key ids are.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import stat
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Any

from envsnap.capture.base import CaptureContext, Probe, register
from envsnap.core.redact import is_secret_name, scrub_text

__all__ = ["DEFAULT_ENV_ALLOW", "NEVER_KEEP", "EnvvarsProbe", "RedactionKey", "keeps_value", "key_path", "load_key"]

#: Variables whose values are kept by default: exact names, and globs (which never keep secret-looking
#: names). Thread and BLAS knobs, GPU selection and determinism switches, interpreter knobs, locale and
#: time zone, search paths. ``TF_*`` and ``HF_*`` are not globbed: Terraform's ``TF_TOKEN_*`` and
#: ``HF_TOKEN`` share those prefixes.
DEFAULT_ENV_ALLOW: tuple[str, ...] = (
    # threads and BLAS
    "OMP_*", "MKL_*", "OPENBLAS_*", "BLIS_*", "GOTO*", "VECLIB_*", "NUMEXPR_*", "KMP_*", "GOMP_*",
    "FLEXIBLAS*", "NVPL_*", "NUMBA_NUM_THREADS", "TORCH_NUM_THREADS", "RAYON_NUM_THREADS", "POLARS_MAX_THREADS",
    "ARROW_NUM_THREADS", "ARROW_IO_THREADS", "JULIA_NUM_THREADS", "TOKENIZERS_PARALLELISM", "MALLOC_ARENA_MAX",
    # accelerators and determinism
    "CUDA_*", "NCCL_*", "CUDNN_*", "CUBLAS_WORKSPACE_CONFIG", "NVIDIA_VISIBLE_DEVICES",
    "NVIDIA_DRIVER_CAPABILITIES", "HIP_VISIBLE_DEVICES", "ROCR_VISIBLE_DEVICES", "TORCH_CUDA_ARCH_LIST",
    "PYTORCH_CUDA_ALLOC_CONF", "XLA_FLAGS", "TF_XLA_FLAGS", "TF_CPP_MIN_LOG_LEVEL", "TF_ENABLE_ONEDNN_OPTS",
    "TF_DETERMINISTIC_OPS", "TF_CUDNN_DETERMINISTIC", "TF_NUM_INTEROP_THREADS", "TF_NUM_INTRAOP_THREADS",
    "TF_FORCE_GPU_ALLOW_GROWTH", "TF_GPU_ALLOCATOR", "TF_USE_LEGACY_KERAS",
    "HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_HUB_DISABLE_TELEMETRY",
    "HF_HUB_ENABLE_HF_TRANSFER", "HF_HOME", "HF_HUB_CACHE", "HF_DATASETS_CACHE",
    # the interpreter (PYTHONHASHSEED, PYTHONPATH, PYTHONUTF8, ...), locale and time
    "PYTHON*", "LANG", "LANGUAGE", "LC_*", "TZ", "SOURCE_DATE_EPOCH",
    # search paths and environments
    "PATH", "LD_LIBRARY_PATH", "LD_PRELOAD", "LIBRARY_PATH", "CPATH", "PKG_CONFIG_PATH", "DYLD_LIBRARY_PATH",
    "DYLD_FALLBACK_LIBRARY_PATH", "VIRTUAL_ENV", "CONDA_PREFIX", "CONDA_DEFAULT_ENV", "JAVA_HOME", "SPARK_HOME",
    # envsnap's own (the container probe reads them)
    "ENVSNAP_IMAGE", "ENVSNAP_IMAGE_DIGEST",
)  # fmt: skip

#: Names whose value is never stored, whatever ``--env-allow`` says.
NEVER_KEEP: frozenset[str] = frozenset(
    {
        "ENVSNAP_REDACTION_KEY", "HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HUGGINGFACEHUB_API_TOKEN",
        "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "GITHUB_TOKEN", "GH_TOKEN", "GITLAB_TOKEN",
        "OPENAI_API_KEY", "ANTHROPIC_API_KEY", "PYPI_TOKEN", "NPM_TOKEN", "WANDB_API_KEY",
        "MLFLOW_TRACKING_TOKEN", "MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_USERNAME", "DATABRICKS_TOKEN",
    }
)  # fmt: skip

KEY_ENV = "ENVSNAP_REDACTION_KEY"
KEY_FILE = os.path.join("envsnap", "redaction.key")
DIGEST_HEX = 16
_KEY_BYTES = 32
_GLOB_CHARS = frozenset("*?[")


@dataclass(frozen=True)
class RedactionKey:
    """The per-user HMAC key for digests of redacted values; ``secret`` never enters a snapshot."""

    secret: bytes | None
    source: str  # "env", "file" or "none"

    @property
    def key_id(self) -> str | None:
        """8 hex digits naming the key: equal ids mean comparable digests."""
        if self.secret is None:
            return None
        return hashlib.sha256(self.secret + b"envsnap-key-id").hexdigest()[:8]

    def digest(self, name: str, value: str) -> str | None:
        """HMAC-SHA256 of ``name`` and ``value``, 16 hex digits; None without a key."""
        if self.secret is None:
            return None
        message = _raw(name) + b"\0" + _raw(value)
        return hmac.new(self.secret, message, hashlib.sha256).hexdigest()[:DIGEST_HEX]


def _raw(text: str) -> bytes:
    # Environment strings carry undecodable bytes as surrogates; hash the bytes the process really has.
    return text.encode("utf-8", "surrogateescape")


def _printable(text: str) -> str:
    """A JSON-safe rendering of an environment string (undecodable bytes become ``\\xNN``)."""
    return _raw(text).decode("utf-8", "backslashreplace")


def key_path(environ: Mapping[str, str]) -> str:
    """Where the per-user key lives: ``$XDG_CONFIG_HOME/envsnap/redaction.key`` or ``~/.config/...``."""
    config = environ.get("XDG_CONFIG_HOME", "")
    if not os.path.isabs(config):
        home = environ.get("HOME") or os.path.expanduser("~")
        config = os.path.join(home, ".config")
    return os.path.join(config, KEY_FILE)


def _read_key(path: str) -> bytes | None:
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        text = os.read(fd, 256).decode("ascii", "replace").strip()
    finally:
        os.close(fd)
    try:
        key = bytes.fromhex(text)
    except ValueError:
        return None
    return key if len(key) >= 16 else None


def _create_key(path: str) -> bytes | None:
    """Write a new random key with mode 0600; link it into place so that racing captures agree on one."""
    os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
    key = secrets.token_bytes(_KEY_BYTES)
    tmp = f"{path}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, key.hex().encode("ascii") + b"\n")
        os.fsync(fd)
    finally:
        os.close(fd)
    try:
        os.link(tmp, path)
    except FileExistsError:
        return _read_key(path)
    finally:
        os.unlink(tmp)
    return key


def load_key(environ: Mapping[str, str]) -> RedactionKey:
    """The redaction key: from ``ENVSNAP_REDACTION_KEY``, else the key file (created on first use)."""
    from_env = environ.get(KEY_ENV, "")
    if from_env:
        return RedactionKey(_raw(from_env), "env")
    path = key_path(environ)
    try:
        key = _read_key(path) if os.path.lexists(path) else _create_key(path)
    except OSError:
        key = None  # an unwritable or unreadable config dir: digests are left out, not made incomparable
    return RedactionKey(key, "file") if key is not None else RedactionKey(None, "none")


def _split(patterns: Iterable[str]) -> tuple[frozenset[str], tuple[str, ...]]:
    exact = {p for p in patterns if not _GLOB_CHARS.intersection(p)}
    globs = tuple(p for p in patterns if _GLOB_CHARS.intersection(p))
    return frozenset(exact), globs


def keeps_value(name: str, exact: frozenset[str], globs: Iterable[str]) -> bool:
    """Whether the policy (module docstring) keeps the value of ``name``."""
    if name in NEVER_KEEP:
        return False
    if name in exact:
        return True
    return any(fnmatchcase(name, glob) for glob in globs) and not is_secret_name(name)


@register
class EnvvarsProbe(Probe):
    """Environment variable names, allowlisted values, keyed digests of the rest."""

    name = "envvars"
    member = "env/envvars.json"

    def collect(self, ctx: CaptureContext) -> dict[str, Any]:
        environ = ctx.options.environ
        patterns = tuple(dict.fromkeys((*DEFAULT_ENV_ALLOW, *ctx.options.env_allow)))
        exact, globs = _split(patterns)
        key = load_key(environ)
        variables: dict[str, dict[str, Any]] = {}
        for name, value in environ.items():
            entry: dict[str, Any]
            if keeps_value(name, exact, globs):
                shown = _printable(value)
                scrubbed = scrub_text(shown)
                entry = {"value": scrubbed}
                if scrubbed != shown:
                    entry["digest"] = key.digest(name, value)
            else:
                entry = {"redacted": True, "digest": key.digest(name, value)}
            variables[_printable(name)] = {k: v for k, v in entry.items() if v is not None}
        return {
            "policy": {
                "allow": sorted(patterns),
                "key_id": key.key_id,
                "key_source": key.source,
                "comparable": key.secret is not None,
            },
            "variables": dict(sorted(variables.items())),
        }
