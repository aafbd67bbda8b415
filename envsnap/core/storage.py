"""Object storage: ``s3://bucket/key`` locations, through pyarrow's S3 filesystem (the only module using it).

Configuration is the standard AWS one: ``AWS_ACCESS_KEY_ID`` / ``AWS_SECRET_ACCESS_KEY`` /
``AWS_SESSION_TOKEN`` or the shared ``~/.aws/credentials`` and ``~/.aws/config`` files (``AWS_PROFILE``),
the region from ``AWS_REGION`` / ``AWS_DEFAULT_REGION`` / the profile, and an S3-compatible server from
``AWS_ENDPOINT_URL_S3`` or ``AWS_ENDPOINT_URL`` (MinIO, Ceph, moto; path-style addressing then). envsnap
reads the endpoint variables itself: the AWS SDK inside pyarrow does not in every release.

Reads are random access (``open_input`` gives a seekable file that issues HTTP range requests), so a
reader that needs the end of a zip or a parquet footer fetches those bytes and no others. Writes are
atomic (:func:`upload_file`): the bytes go to a temporary key beside the final one, are copied to the final
key by the server (a copy is all-or-nothing), and the temporary key is deleted; an existing final key is
not replaced unless asked. Every failure becomes one :class:`~envsnap.errors.StorageError` line: a bucket
that does not exist, no or wrong credentials, an endpoint that refuses, a missing key.

Secrets never leave this module: the filesystem is built from the environment at call time, no
credential is stored on an object envsnap keeps, and messages are scrubbed by ``StorageError``.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from envsnap.errors import StorageError

if TYPE_CHECKING:
    import pyarrow

__all__ = [
    "S3_PREFIX",
    "ObjectInfo",
    "ReadAheadFile",
    "S3Location",
    "delete",
    "describe",
    "filesystem",
    "has_credentials",
    "is_remote",
    "is_s3",
    "list_objects",
    "open_input",
    "open_stream",
    "parse_s3",
    "stat",
    "translate",
    "upload_file",
]

S3_PREFIX = "s3://"
RUNS_PREFIX = "runs:/"
#: Connect quickly to a local or regional endpoint; a refused or dead endpoint is reported, not retried forever.
CONNECT_TIMEOUT_S = 10.0
REQUEST_TIMEOUT_S = 120.0
MAX_ATTEMPTS = 3
_UPLOAD_MARK = ".envsnap-upload-"


def is_s3(location: object) -> bool:
    """Whether ``location`` is an ``s3://`` URI."""
    return isinstance(location, str) and location.startswith(S3_PREFIX)


def is_remote(location: object) -> bool:
    """Whether ``location`` names object storage or an MLflow run rather than a local path."""
    return isinstance(location, str) and location.startswith((S3_PREFIX, RUNS_PREFIX))


@dataclass(frozen=True)
class S3Location:
    """A parsed ``s3://bucket/key`` (``key`` may be empty or end in ``/`` for a prefix)."""

    bucket: str
    key: str

    @property
    def uri(self) -> str:
        return f"{S3_PREFIX}{self.bucket}/{self.key}"

    @property
    def path(self) -> str:
        """pyarrow's form: ``bucket/key``."""
        return f"{self.bucket}/{self.key}".rstrip("/")

    def child(self, name: str) -> S3Location:
        base = self.key if not self.key or self.key.endswith("/") else self.key + "/"
        return S3Location(self.bucket, base + name)


def parse_s3(uri: str) -> S3Location:
    """``s3://bucket/key`` -> :class:`S3Location`; a malformed URI is a :class:`StorageError`."""
    if not is_s3(uri):
        raise StorageError(uri, "not an s3:// URI", hint="write s3://BUCKET/KEY")
    rest = uri[len(S3_PREFIX) :]
    bucket, _, key = rest.partition("/")
    if "@" in bucket or ":" in bucket:
        raise StorageError(
            uri, "credentials or a port in the bucket name", hint="use the AWS environment or config files, not the URI"
        )
    if not bucket or any(c.isspace() for c in uri) or "//" in key or key.startswith("/"):
        raise StorageError(uri, "malformed s3:// URI", hint="write s3://BUCKET/KEY")
    return S3Location(bucket, key)


def _endpoint(environ: Mapping[str, str]) -> str | None:
    return environ.get("AWS_ENDPOINT_URL_S3") or environ.get("AWS_ENDPOINT_URL") or None


def filesystem(environ: Mapping[str, str] | None = None) -> Any:
    """A pyarrow ``S3FileSystem`` configured from the standard AWS environment (see the module doc)."""
    env = os.environ if environ is None else environ
    try:
        from pyarrow import fs
    except ImportError as exc:  # pragma: no cover - pyarrow is a dependency; a build without S3 is not
        raise StorageError("s3://", "this pyarrow has no S3 support", hint="pip install 'envsnap-ml[s3]'") from exc
    if not hasattr(fs, "S3FileSystem"):  # pragma: no cover - pyarrow built without S3
        raise StorageError("s3://", "this pyarrow was built without S3 support", hint="pip install 'envsnap-ml[s3]'")
    options: dict[str, Any] = {
        "connect_timeout": CONNECT_TIMEOUT_S,
        "request_timeout": REQUEST_TIMEOUT_S,
        "retry_strategy": fs.AwsStandardS3RetryStrategy(max_attempts=MAX_ATTEMPTS),
        "allow_bucket_creation": False,
        "allow_bucket_deletion": False,
    }
    endpoint = _endpoint(env)
    if endpoint:
        options["endpoint_override"] = endpoint
        if endpoint.startswith("http://"):
            options["scheme"] = "http"
    region = env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION")
    if region:
        options["region"] = region
    elif endpoint:
        options["region"] = "us-east-1"  # an S3-compatible server: no region lookup against AWS
    if env.get("AWS_PROFILE") and not env.get("AWS_ACCESS_KEY_ID"):
        options["profile_name"] = env["AWS_PROFILE"]
    try:
        return fs.S3FileSystem(**options)
    except (OSError, ValueError) as exc:
        raise StorageError("s3://", f"cannot configure S3 access: {_first_line(exc)}") from None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:240] if text else type(exc).__name__


def has_credentials(environ: Mapping[str, str] | None = None) -> bool:
    """Whether the standard AWS chain has something to offer: keys in the environment, a profile, a shared
    credentials or config file, a web identity or container credentials (not probed: the SDK does that)."""
    env = os.environ if environ is None else environ
    if env.get("AWS_ACCESS_KEY_ID") or env.get("AWS_PROFILE") or env.get("AWS_WEB_IDENTITY_TOKEN_FILE"):
        return True
    if env.get("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI") or env.get("AWS_CONTAINER_CREDENTIALS_FULL_URI"):
        return True
    home = os.path.expanduser("~")
    files = (
        env.get("AWS_SHARED_CREDENTIALS_FILE") or os.path.join(home, ".aws", "credentials"),
        env.get("AWS_CONFIG_FILE") or os.path.join(home, ".aws", "config"),
    )
    return any(os.path.isfile(f) for f in files)


def translate(exc: BaseException, uri: str, action: str) -> StorageError:
    """One line for an S3 failure: what is wrong and what to do."""
    text = str(exc)
    upper = text.upper()
    if not has_credentials() and not isinstance(exc, FileNotFoundError) and "NETWORK_CONNECTION" not in upper:
        return StorageError(
            uri,
            f"no AWS credentials were found while {action} (the server refused an anonymous request)",
            hint="set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE",
        )
    if "NO_SUCH_BUCKET" in upper or "NOSUCHBUCKET" in upper or "BUCKET DOES NOT EXIST" in upper:
        bucket = parse_s3(uri).bucket if is_s3(uri) else "?"
        return StorageError(uri, f"bucket {bucket!r} does not exist", hint="check the bucket name and AWS_ENDPOINT_URL")
    if (
        any(
            mark in upper
            for mark in ("ACCESS_DENIED", "ACCESSDENIED", "INVALIDACCESSKEYID", "SIGNATUREDOESNOTMATCH", "FORBIDDEN")
        )
        or "HTTP RESPONSE CODE 403" in upper
    ):
        return StorageError(
            uri,
            f"access denied while {action} (wrong or missing credentials, or no permission)",
            hint="check AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY or AWS_PROFILE",
        )
    if "NO_CREDENTIALS" in upper or "MISSING_AUTHENTICATION" in upper or "UNABLE TO LOCATE CREDENTIALS" in upper:
        return StorageError(
            uri,
            f"no AWS credentials while {action}",
            hint="set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY or AWS_PROFILE",
        )
    if "NETWORK_CONNECTION" in upper or "COULD NOT CONNECT" in upper or "COULD NOT RESOLVE" in upper:
        endpoint = _endpoint(os.environ) or "the AWS S3 endpoint"
        return StorageError(
            uri,
            f"cannot reach {endpoint} while {action} (connection refused or host unknown)",
            hint="check AWS_ENDPOINT_URL and that the server is up",
        )
    if isinstance(exc, FileNotFoundError) or "NO_SUCH_KEY" in upper or "NOSUCHKEY" in upper:
        return StorageError(uri, "no such object", hint="check the key (`aws s3 ls` lists a prefix)")
    if ("HTTP STATUS 400" in upper or "EXPIREDTOKEN" in upper) and os.environ.get("AWS_SESSION_TOKEN"):
        # A HEAD answer has no body: an expired or invalid session token shows only as a bare 400.
        return StorageError(
            uri,
            f"the server refused the request while {action} (HTTP 400: an expired or invalid AWS_SESSION_TOKEN?)",
            hint="refresh the temporary credentials (aws sso login, aws sts assume-role) or unset AWS_SESSION_TOKEN",
        )
    return StorageError(uri, f"S3 error while {action}: {_first_line(exc)}")


@contextlib.contextmanager
def _errors(uri: str, action: str) -> Iterator[None]:
    try:
        yield
    except StorageError:
        raise
    except (OSError, ValueError) as exc:
        raise translate(exc, uri, action) from None


@dataclass(frozen=True)
class ObjectInfo:
    """One object under a prefix: its key relative to the prefix, its size and (when the server says) its
    Last-Modified time as ISO 8601 UTC."""

    name: str
    size: int
    modified: str | None = None


def _iso(mtime: Any) -> str | None:
    """A pyarrow FileInfo ``mtime`` (an aware or naive UTC datetime, or None) as ISO 8601 UTC."""
    if mtime is None:
        return None
    text: str = mtime.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return text


def stat(uri: str, fs: Any = None) -> int | None:
    """The object's size in bytes; None when there is no object under that key (or it is a "directory").

    A bucket that does not exist, bad credentials or an unreachable endpoint raise :class:`StorageError`.
    """
    from pyarrow.fs import FileType

    where = parse_s3(uri)
    fs = fs or filesystem()
    with _errors(uri, "looking the object up"):
        if not where.key:
            raise StorageError(uri, "no key after the bucket", hint="write s3://BUCKET/KEY")
        info = fs.get_file_info(where.path)
        if info.type == FileType.File:
            return int(info.size)
        if info.type == FileType.NotFound:
            # get_file_info says NotFound for a missing bucket too: tell the two apart.
            bucket = fs.get_file_info(where.bucket)
            if bucket.type == FileType.NotFound:
                raise StorageError(
                    uri, f"bucket {where.bucket!r} does not exist", hint="check the bucket name and AWS_ENDPOINT_URL"
                )
        return None


def describe(uri: str, fs: Any = None) -> ObjectInfo | None:
    """The object at ``uri`` (``name`` its key's last segment), or None when no object has that key.

    Like :func:`stat`, a missing bucket, bad credentials or an unreachable endpoint raise StorageError.
    """
    from pyarrow.fs import FileType

    where = parse_s3(uri)
    fs = fs or filesystem()
    with _errors(uri, "looking the object up"):
        info = fs.get_file_info(where.path) if where.key else None
    if info is None or info.type != FileType.File:
        stat(uri, fs)  # says which: no key, a missing bucket
        return None
    return ObjectInfo(where.key.rsplit("/", 1)[-1], int(info.size), _iso(info.mtime))


def open_stream(uri: str, fs: Any = None, buffer_size: int = 8 << 20) -> pyarrow.NativeFile:
    """A sequential stream over the object, fetched ``buffer_size`` bytes per range request as it is read
    (never the whole object at once, never to disk); the raw bytes: a .gz object is not decompressed."""
    where = parse_s3(uri)
    fs = fs or filesystem()
    if stat(uri, fs) is None:
        raise StorageError(uri, "no such object", hint="check the key (`aws s3 ls` lists a prefix)")
    with _errors(uri, "opening the object"):
        return fs.open_input_stream(where.path, compression=None, buffer_size=buffer_size)


def open_input(uri: str, fs: Any = None, *, read_ahead: int = 0) -> Any:
    """A seekable file over the object: each read is an HTTP range request (nothing is prefetched).

    With ``read_ahead`` > 0 a small read fetches the whole aligned block of that many bytes around it
    and keeps the last few blocks (:class:`ReadAheadFile`): a zip reader's many small reads of
    neighbouring headers and members then cost one request per block, not one per read.
    """
    where = parse_s3(uri)
    fs = fs or filesystem()
    size = stat(uri, fs)
    if size is None:
        raise StorageError(uri, "no such object", hint="check the key (`aws s3 ls` lists a prefix)")
    with _errors(uri, "opening the object"):
        raw = fs.open_input_file(where.path)
    return ReadAheadFile(uri, raw, size, read_ahead) if read_ahead > 0 else raw


class ReadAheadFile:
    """A seekable, read-only file over a remote object that reads whole aligned blocks of ``block``
    bytes and keeps the last :attr:`MAX_BLOCKS` of them (memory bounded by ``block * MAX_BLOCKS``).

    A read of a block or more goes straight to the object in one request (verifying a large member is
    not slowed by the cache). ``read_at`` (used by seekable member windows) shares the blocks.
    ``fetched`` / ``requests`` count what was actually transferred.
    """

    MAX_BLOCKS = 4

    def __init__(self, uri: str, raw: Any, size: int, block: int) -> None:
        self.uri = uri
        self._raw = raw
        self.size = size
        self._block = block
        self._blocks: dict[int, bytes] = {}
        self._pos = 0
        self.closed = False
        self.fetched = 0
        self.requests = 0

    def _fetch(self, n: int, offset: int) -> bytes:
        with _errors(self.uri, "reading the object"):
            data = bytes(self._raw.read_at(n, offset))
        self.fetched += len(data)
        self.requests += 1
        return data

    def _cached(self, index: int) -> bytes:
        data = self._blocks.pop(index, None)
        if data is None:
            start = index * self._block
            data = self._fetch(min(self._block, self.size - start), start)
            while len(self._blocks) >= self.MAX_BLOCKS:
                del self._blocks[next(iter(self._blocks))]
        self._blocks[index] = data  # most recently used last
        return data

    def read_at(self, n: int, offset: int) -> bytes:
        if offset < 0 or n < 0:
            raise ValueError("negative offset or size")
        n = max(0, min(n, self.size - offset))
        if n == 0:
            return b""
        if n >= self._block:
            return self._fetch(n, offset)
        parts = []
        end = offset + n
        while offset < end:
            index, within = divmod(offset, self._block)
            chunk = self._cached(index)[within : within + end - offset]
            if not chunk:
                break
            parts.append(chunk)
            offset += len(chunk)
        return b"".join(parts)

    def read(self, n: int | None = -1) -> bytes:
        if self.closed:
            raise ValueError("I/O operation on closed file")
        left = max(0, self.size - self._pos)
        count = left if n is None or n < 0 else min(n, left)
        data = self.read_at(count, self._pos)
        self._pos += len(data)
        return data

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        base = {os.SEEK_SET: 0, os.SEEK_CUR: self._pos, os.SEEK_END: self.size}[whence]
        if base + offset < 0:
            raise ValueError("negative seek position")
        self._pos = base + offset
        return self._pos

    def tell(self) -> int:
        return self._pos

    def seekable(self) -> bool:
        return True

    def readable(self) -> bool:
        return True

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self._blocks.clear()
            self._raw.close()

    def __enter__(self) -> ReadAheadFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def list_objects(uri: str, fs: Any = None) -> list[ObjectInfo]:
    """Every object under the prefix ``uri`` (recursively), sorted by name; names are relative to it."""
    from pyarrow.fs import FileSelector, FileType

    where = parse_s3(uri)
    fs = fs or filesystem()
    base = where.path
    with _errors(uri, "listing the prefix"):
        infos = fs.get_file_info(FileSelector(base, recursive=True, allow_not_found=True))
        if not infos and fs.get_file_info(where.bucket).type == FileType.NotFound:
            raise StorageError(
                uri, f"bucket {where.bucket!r} does not exist", hint="check the bucket name and AWS_ENDPOINT_URL"
            )
    out = [
        ObjectInfo(info.path[len(base) :].lstrip("/"), int(info.size), _iso(info.mtime))
        for info in infos
        if info.type == FileType.File and _UPLOAD_MARK not in info.path
    ]
    return sorted(out, key=lambda o: o.name)


def delete(uri: str, fs: Any = None) -> None:
    """Delete one object (missing is fine)."""
    where = parse_s3(uri)
    fs = fs or filesystem()
    with contextlib.suppress(FileNotFoundError), _errors(uri, "deleting the object"):
        fs.delete_file(where.path)


def upload_file(local_path: str, uri: str, *, force: bool = False, fs: Any = None, chunk: int = 8 << 20) -> str:
    """Upload ``local_path`` to ``uri`` atomically; refuse an existing key unless ``force``; return ``uri``.

    The bytes go to ``<key>.envsnap-upload-<random>`` first; the server then copies that object to the
    final key (all or nothing) and the temporary one is deleted, also when anything fails or the process is
    interrupted in between. A reader never sees a half-written object under the final key.
    """
    where = parse_s3(uri)
    if not where.key or where.key.endswith("/"):
        raise StorageError(uri, "names a prefix, not an object", hint="end the URI with a file name, e.g. a.envsnap")
    fs = fs or filesystem()
    if not force and stat(uri, fs) is not None:
        raise StorageError(uri, "already exists", hint="choose another key or pass --force to replace it")
    temp = S3Location(where.bucket, f"{where.key}{_UPLOAD_MARK}{secrets.token_hex(6)}")
    try:
        with _errors(uri, "uploading"), open(local_path, "rb") as src, fs.open_output_stream(temp.path) as dst:
            while True:
                block = src.read(chunk)
                if not block:
                    break
                dst.write(block)
        if not force and stat(uri, fs) is not None:
            raise StorageError(uri, "appeared while uploading (another writer?); nothing was replaced")
        with _errors(uri, "publishing the upload"):
            fs.copy_file(temp.path, where.path)
    finally:
        with contextlib.suppress(OSError, StorageError):
            fs.delete_file(temp.path)
    return uri
