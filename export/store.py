"""The artifact store: a local folder (default) or a ``gs://bucket/prefix``.

Layout (see export/manifest.schema.json):
    models/<version>/...            one folder per bundle; manifest.json is written last
    models/production.json          the production pointer, moved with a generation precondition
    runs/<run_id>/...               training checkpoints and run outputs

Keys are always ``/``-separated and relative to the store root. The GCS side uses the real
google-cloud-storage client, so ``STORAGE_EMULATOR_HOST`` points it at fake-gcs-server in tests.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

NO_OBJECT = 0  # generation meaning "the object must not exist yet" (as in GCS)


_HASH_BLOCK = 1 << 20


class PreconditionFailed(RuntimeError):
    """Someone else changed the object since we read it."""


@dataclass(frozen=True)
class FileDigest:
    size: int
    sha256: str


class _Digest:
    """A write-only file object that hashes what is written to it (a download target)."""

    def __init__(self) -> None:
        self._hash = hashlib.sha256()
        self._size = 0

    def write(self, block: bytes) -> int:
        self._hash.update(block)
        self._size += len(block)
        return len(block)

    def tell(self) -> int:
        return self._size

    def flush(self) -> None:
        pass

    def result(self) -> FileDigest:
        return FileDigest(size=self._size, sha256=self._hash.hexdigest())


class LocalStore:
    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.uri = str(self.root)

    def _path(self, key: str) -> Path:
        return self.root / key

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def read_bytes(self, key: str) -> bytes:
        return self._path(key).read_bytes()

    def write_bytes(self, key: str, data: bytes) -> None:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        # Write then rename, so a reader never sees half a file.
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)

    def upload_file(self, local: Path, key: str) -> None:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(local, path)

    def download_file(self, key: str, local: Path) -> None:
        local.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(self._path(key), local)

    def list(self, prefix: str) -> list[str]:
        base = self._path(prefix)
        if not base.exists():
            return []
        return sorted(
            p.relative_to(self.root).as_posix()
            for p in base.rglob("*")
            if p.is_file() and not p.name.startswith(".")
        )

    def delete_prefix(self, prefix: str) -> None:
        shutil.rmtree(self._path(prefix), ignore_errors=True)

    @contextmanager
    def _locked(self, key: str) -> Iterator[None]:
        lock = self._path(key).with_name(f".{self._path(key).name}.lock")
        lock.parent.mkdir(parents=True, exist_ok=True)
        with open(lock, "w") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            yield

    def read_with_generation(self, key: str) -> tuple[bytes | None, int]:
        path = self._path(key)
        if not path.is_file():
            return None, NO_OBJECT
        data = path.read_bytes()
        return data, _local_generation(data)

    def write_if_generation(self, key: str, data: bytes, generation: int) -> int:
        """Write only if the object is still at `generation`; returns the new generation."""
        with self._locked(key):
            path = self._path(key)
            current = _local_generation(path.read_bytes()) if path.is_file() else NO_OBJECT
            if current != generation:
                raise PreconditionFailed(f"{key} changed since it was read")
            self.write_bytes(key, data)
        return _local_generation(data)

    def file_digest(self, key: str) -> FileDigest | None:
        path = self._path(key)
        if not path.is_file():
            return None
        digest = _Digest()
        with open(path, "rb") as f:
            while block := f.read(_HASH_BLOCK):
                digest.write(block)
        return digest.result()


def _local_generation(data: bytes) -> int:
    # A local file has no generation number; a content hash serves the same purpose for
    # compare-and-set (the pointer always carries a fresh timestamp, so contents never repeat).
    return int.from_bytes(hashlib.sha256(data).digest()[:7], "big") or 1


class GcsStore:
    def __init__(self, uri: str) -> None:
        from google.cloud import storage  # imported here so local use needs no GCS client

        bucket, _, prefix = uri.removeprefix("gs://").partition("/")
        self.uri = uri.rstrip("/")
        self.prefix = prefix.strip("/")
        if os.environ.get("STORAGE_EMULATOR_HOST"):
            from google.auth.credentials import AnonymousCredentials

            client = storage.Client(project="local", credentials=AnonymousCredentials())
        else:
            client = storage.Client()
        self.bucket = client.bucket(bucket)

    def _name(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    def exists(self, key: str) -> bool:
        return self.bucket.blob(self._name(key)).exists()

    def read_bytes(self, key: str) -> bytes:
        return self.bucket.blob(self._name(key)).download_as_bytes()

    def write_bytes(self, key: str, data: bytes) -> None:
        self.bucket.blob(self._name(key)).upload_from_string(data)

    def upload_file(self, local: Path, key: str) -> None:
        self.bucket.blob(self._name(key)).upload_from_filename(str(local))

    def download_file(self, key: str, local: Path) -> None:
        local.parent.mkdir(parents=True, exist_ok=True)
        self.bucket.blob(self._name(key)).download_to_filename(str(local))

    def list(self, prefix: str) -> list[str]:
        start = len(self.prefix) + 1 if self.prefix else 0
        blobs = self.bucket.client.list_blobs(self.bucket, prefix=self._name(prefix))
        return sorted(b.name[start:] for b in blobs)

    def delete_prefix(self, prefix: str) -> None:
        for key in self.list(prefix):
            self.bucket.blob(self._name(key)).delete()

    def read_with_generation(self, key: str) -> tuple[bytes | None, int]:
        from google.api_core.exceptions import NotFound

        blob = self.bucket.blob(self._name(key))
        try:
            blob.reload()
            data = blob.download_as_bytes(if_generation_match=blob.generation)
        except NotFound:
            return None, NO_OBJECT
        return data, int(blob.generation)

    def write_if_generation(self, key: str, data: bytes, generation: int) -> int:
        """Write only if the object is still at `generation`; returns the new generation."""
        from google.api_core.exceptions import PreconditionFailed as GcsPreconditionFailed

        blob = self.bucket.blob(self._name(key))
        try:
            blob.upload_from_string(
                data, content_type="application/json", if_generation_match=generation
            )
        except GcsPreconditionFailed as e:
            raise PreconditionFailed(f"{key} changed since it was read") from e
        return int(blob.generation)

    def file_digest(self, key: str) -> FileDigest | None:
        from google.api_core.exceptions import NotFound

        digest = _Digest()
        try:
            # Streamed through the hash: a model file is never held in memory whole.
            self.bucket.blob(self._name(key)).download_to_file(digest)
        except NotFound:
            return None
        return digest.result()


Store = LocalStore | GcsStore


def open_store(uri: str | Path) -> Store:
    uri = str(uri)
    return GcsStore(uri) if uri.startswith("gs://") else LocalStore(uri)
