"""Object store adapter: S3 through boto3 (any endpoint: AWS, LocalStack, MinIO) or a local folder.

Keys are namespaced by tenant (`tenants/<id>/…`) or marked global (`global/…`), so one tenant's
artifacts can never be addressed through another tenant's prefix.
"""

from __future__ import annotations

import os
import re
import tempfile
import uuid
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlparse

from shared.errors import DependencyUnavailable, InvalidInput, NotFound

_SAFE_PART = re.compile(r"^[A-Za-z0-9._=-]+$")


def _join(parts: tuple[str, ...]) -> str:
    for part in parts:
        if not _SAFE_PART.match(part) or part in (".", ".."):
            raise InvalidInput(f"unsafe object key part: {part!r}")
    return "/".join(parts)


def tenant_key(tenant_id: str | uuid.UUID, *parts: str) -> str:
    return _join(("tenants", str(tenant_id), *parts))


def global_key(*parts: str) -> str:
    return _join(("global", *parts))


class ObjectStore(Protocol):
    def put(self, key: str, data: bytes) -> None: ...
    def get(self, key: str) -> bytes: ...
    def list(self, prefix: str) -> list[str]: ...
    def delete(self, key: str) -> None: ...
    def ping(self) -> None: ...


class LocalFolderObjectStore:
    """A folder on disk. Writes go to a temporary file, are fsynced, then renamed: atomic."""

    def __init__(self, root: Path) -> None:
        self._root = root

    def _path(self, key: str) -> Path:
        path = (self._root / key).resolve()
        if self._root.resolve() not in path.parents:
            raise InvalidInput(f"object key escapes the store: {key!r}")
        return path

    def put(self, key: str, data: bytes) -> None:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp_name, path)
        except BaseException:
            Path(tmp_name).unlink(missing_ok=True)
            raise
        directory = os.open(path.parent, os.O_DIRECTORY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)

    def get(self, key: str) -> bytes:
        try:
            return self._path(key).read_bytes()
        except FileNotFoundError:
            raise NotFound(f"no object {key!r}") from None

    def list(self, prefix: str) -> list[str]:
        if not self._root.exists():
            return []
        keys = []
        for path in self._root.rglob("*"):
            if path.is_file() and not path.name.startswith(".tmp-"):
                key = path.relative_to(self._root).as_posix()
                if key.startswith(prefix):
                    keys.append(key)
        return sorted(keys)

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)

    def ping(self) -> None:
        self._root.mkdir(parents=True, exist_ok=True)
        if not os.access(self._root, os.W_OK):
            raise DependencyUnavailable(f"object store folder not writable: {self._root}")


class InMemoryObjectStore:
    """The fake for unit tests: a dict of bytes."""

    def __init__(self) -> None:
        self.objects: dict[str, bytes] = {}

    def put(self, key: str, data: bytes) -> None:
        self.objects[key] = bytes(data)

    def get(self, key: str) -> bytes:
        if key not in self.objects:
            raise NotFound(f"no object {key}")
        return self.objects[key]

    def list(self, prefix: str) -> list[str]:
        return sorted(key for key in self.objects if key.startswith(prefix))

    def delete(self, key: str) -> None:
        self.objects.pop(key, None)

    def ping(self) -> None:
        return None


class S3ObjectStore:
    def __init__(self, bucket: str, prefix: str, client: Any) -> None:
        self._bucket = bucket
        self._prefix = prefix.strip("/")
        self._client = client

    def _full(self, key: str) -> str:
        return f"{self._prefix}/{key}" if self._prefix else key

    def put(self, key: str, data: bytes) -> None:
        # A single PUT is atomic in S3: readers see the old object or the new one, never a part.
        self._call("put_object", Bucket=self._bucket, Key=self._full(key), Body=data)

    def get(self, key: str) -> bytes:
        from botocore.exceptions import ClientError

        try:
            response = self._client.get_object(Bucket=self._bucket, Key=self._full(key))
            return response["Body"].read()
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                raise NotFound(f"no object {key!r}") from None
            raise DependencyUnavailable(f"object store: {exc}") from exc
        except Exception as exc:  # connection errors from botocore
            raise DependencyUnavailable(f"object store unreachable: {exc}") from exc

    def list(self, prefix: str) -> list[str]:
        keys: list[str] = []
        paginator = self._client.get_paginator("list_objects_v2")
        strip = len(self._full(""))
        try:
            for page in paginator.paginate(Bucket=self._bucket, Prefix=self._full(prefix)):
                keys.extend(item["Key"][strip:] for item in page.get("Contents", []))
        except Exception as exc:
            raise DependencyUnavailable(f"object store unreachable: {exc}") from exc
        return sorted(keys)

    def delete(self, key: str) -> None:
        self._call("delete_object", Bucket=self._bucket, Key=self._full(key))

    def ping(self) -> None:
        self._call("head_bucket", Bucket=self._bucket)

    def _call(self, operation: str, **kwargs: Any) -> Any:
        try:
            return getattr(self._client, operation)(**kwargs)
        except Exception as exc:
            raise DependencyUnavailable(f"object store {operation} failed: {exc}") from exc


def open_object_store(url: str, s3_client: Any = None) -> ObjectStore:
    parsed = urlparse(url)
    if parsed.scheme == "file":
        return LocalFolderObjectStore(Path(parsed.path))
    if parsed.scheme == "s3":
        if s3_client is None:
            raise ValueError("an s3:// object store needs an S3 client")
        return S3ObjectStore(parsed.netloc, parsed.path, s3_client)
    raise ValueError(f"unsupported object store URL: {url}")
