"""envsnap.core.storage against a real S3-compatible server (moto's, on 127.0.0.1, authentication on)."""

from __future__ import annotations

from pathlib import Path

import pytest

from envsnap.core import storage
from envsnap.errors import StorageError
from tests.integration.s3_env import S3Server, s3_env, s3_server  # noqa: F401


def test_upload_is_atomic_and_refuses_an_existing_key(s3_env: S3Server, tmp_path: Path) -> None:  # noqa: F811
    src = tmp_path / "a.bin"
    src.write_bytes(b"0123456789" * 1000)
    uri = f"s3://{s3_env.bucket}/unit/a.bin"
    assert storage.upload_file(str(src), uri) == uri
    assert storage.stat(uri) == 10_000
    with storage.open_input(uri) as fh:
        fh.seek(9_995)
        assert fh.read(5) == b"56789"
    with pytest.raises(StorageError, match="already exists"):
        storage.upload_file(str(src), uri)
    src.write_bytes(b"new")
    storage.upload_file(str(src), uri, force=True)
    assert storage.stat(uri) == 3
    # no temporary object is left beside the final key
    listed = s3_env.client().list_objects_v2(Bucket=s3_env.bucket, Prefix="unit/")["Contents"]  # type: ignore[attr-defined]
    # pyarrow keeps an empty "unit/" directory marker after deleting the temporary object: not an object of ours
    assert [o["Key"] for o in listed if not o["Key"].endswith("/")] == ["unit/a.bin"]


def test_failures_are_one_line(s3_env: S3Server, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    with pytest.raises(StorageError, match="bucket 'no-such-bucket' does not exist"):
        storage.stat("s3://no-such-bucket/x.envsnap")
    with pytest.raises(StorageError, match="no such object"):
        storage.open_input(f"s3://{s3_env.bucket}/missing.envsnap")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wrong-secret")
    with pytest.raises(StorageError, match="access denied") as info:
        storage.stat(f"s3://{s3_env.bucket}/x.envsnap")
    assert "wrong-secret" not in str(info.value) and "\n" not in str(info.value)
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
    with pytest.raises(StorageError, match=r"cannot reach http://127\.0\.0\.1:9"):
        storage.stat(f"s3://{s3_env.bucket}/x.envsnap")
