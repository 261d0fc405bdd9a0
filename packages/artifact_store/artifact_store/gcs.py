"""A store under ``gs://bucket/prefix``: keys are object names below the prefix.

The client is google-cloud-storage, imported and created on a store's first call (one client per
process, per emulator in tests), so local use and import cost nothing. It honours
STORAGE_EMULATOR_HOST (fake-gcs-server in tests). Every call carries the store's Deadlines.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

from artifact_store.base import (
    DEFAULT_DEADLINES,
    NO_OBJECT,
    Deadlines,
    Digest,
    FileDigest,
    ObjectInfo,
    ObjectNotFound,
    PreconditionFailed,
)

_CLIENTS: dict[str, Any] = {}
_CLIENTS_LOCK = threading.Lock()


def storage_client() -> Any:
    """The process's storage client (one per emulator endpoint), made on first use."""
    endpoint = os.environ.get("STORAGE_EMULATOR_HOST", "")
    with _CLIENTS_LOCK:
        if endpoint not in _CLIENTS:
            from google.cloud import storage

            if endpoint:
                from google.auth.credentials import AnonymousCredentials

                client = storage.Client(project="local", credentials=AnonymousCredentials())
            else:
                client = storage.Client()
            _CLIENTS[endpoint] = client
        return _CLIENTS[endpoint]


def split_gs(uri: str) -> tuple[str, str]:
    """("bucket", "object/name") of a gs:// URI; ValueError when it names no bucket."""
    bucket, _, name = uri.removeprefix("gs://").partition("/")
    if not bucket:
        raise ValueError(f"{uri!r} names no bucket")
    return bucket, name


class GcsStore:
    def __init__(self, uri: str, deadlines: Deadlines = DEFAULT_DEADLINES) -> None:
        bucket, prefix = split_gs(uri)
        self.uri = uri.rstrip("/")
        self.bucket_name = bucket
        self.prefix = prefix.strip("/")
        self.deadlines = deadlines
        self._bucket: Any = None
        self._retry: Any = None

    @property
    def bucket(self) -> Any:
        if self._bucket is None:
            self._bucket = storage_client().bucket(self.bucket_name)
        return self._bucket

    def _bounds(self) -> dict[str, Any]:
        if self._retry is None:
            self._retry = self.deadlines.retry()
        return {"timeout": self.deadlines.call_s, "retry": self._retry}

    def _name(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    def _key(self, name: str) -> str:
        return name[len(self.prefix) + 1 :] if self.prefix else name

    def _info(self, blob: Any) -> ObjectInfo:
        created = blob.time_created.timestamp() if blob.time_created else 0.0
        return ObjectInfo(self._key(blob.name), int(blob.size or 0), int(blob.generation), created)

    # ---- reads -------------------------------------------------------------------------------

    def exists(self, key: str) -> bool:
        return bool(self.bucket.blob(self._name(key)).exists(**self._bounds()))

    def read_bytes(self, key: str) -> bytes:
        from google.api_core.exceptions import NotFound

        try:
            return bytes(self.bucket.blob(self._name(key)).download_as_bytes(**self._bounds()))
        except NotFound:
            raise ObjectNotFound(f"{self.uri}/{key} does not exist") from None

    def read_text(self, key: str) -> str:
        return self.read_bytes(key).decode("utf-8")

    def download_file(self, key: str, local: Path, generation: int | None = None) -> None:
        """Download the object (that exact `generation` when given) to `local`."""
        from google.api_core.exceptions import NotFound

        local.parent.mkdir(parents=True, exist_ok=True)
        blob = self.bucket.blob(self._name(key), generation=generation)
        try:
            blob.download_to_filename(str(local), **self._bounds())
        except NotFound:
            raise ObjectNotFound(f"{self.uri}/{key} does not exist") from None

    def list(self, prefix: str) -> list[str]:
        return [info.key for info in self.list_objects(prefix)]

    def list_objects(self, prefix: str, delimiter: str | None = None) -> list[ObjectInfo]:
        """The objects whose key starts with `prefix`, sorted by key; with delimiter "/" only
        those not in a deeper folder."""
        blobs = self.bucket.client.list_blobs(
            self.bucket, prefix=self._name(prefix), delimiter=delimiter, **self._bounds()
        )
        return sorted((self._info(b) for b in blobs), key=lambda info: info.key)

    def info(self, key: str) -> ObjectInfo | None:
        blob = self.bucket.get_blob(self._name(key), **self._bounds())
        return None if blob is None else self._info(blob)

    def file_digest(self, key: str) -> FileDigest | None:
        from google.api_core.exceptions import NotFound

        digest = Digest()
        try:
            # Streamed through the hash: a model file is never held in memory whole.
            self.bucket.blob(self._name(key)).download_to_file(digest, **self._bounds())
        except NotFound:
            return None
        return digest.result()

    # ---- overwrite puts ------------------------------------------------------------------------

    def write_bytes(self, key: str, data: bytes, content_type: str | None = None) -> None:
        self.bucket.blob(self._name(key)).upload_from_string(
            data, content_type=content_type, **self._bounds()
        )

    def upload_file(self, local: Path, key: str) -> None:
        self.bucket.blob(self._name(key)).upload_from_filename(str(local), **self._bounds())

    # ---- write-once puts -----------------------------------------------------------------------
    # Create-only (if_generation_match=0) makes a retry safe: a retry that finds the object
    # already there means an earlier attempt landed, and a rerun never overwrites a finished one.

    def put_new_file(self, local: Path, key: str) -> bool:
        """Upload the finished file at `key` unless something is there already; True when this
        call created it."""
        from google.api_core.exceptions import PreconditionFailed as GcsPreconditionFailed

        try:
            self.bucket.blob(self._name(key)).upload_from_filename(
                str(local), if_generation_match=NO_OBJECT, **self._bounds()
            )
            return True
        except GcsPreconditionFailed:
            return False

    def put_new_bytes(self, key: str, data: bytes, content_type: str | None = None) -> bool:
        """As put_new_file, for bytes in memory."""
        from google.api_core.exceptions import PreconditionFailed as GcsPreconditionFailed

        try:
            self.bucket.blob(self._name(key)).upload_from_string(
                data, content_type=content_type, if_generation_match=NO_OBJECT, **self._bounds()
            )
            return True
        except GcsPreconditionFailed:
            return False

    def copy_new(self, source: str, target: str) -> bool:
        """Copy `source` to `target` unless `target` exists (False); ObjectNotFound when
        `source` is gone."""
        from google.api_core.exceptions import NotFound
        from google.api_core.exceptions import PreconditionFailed as GcsPreconditionFailed

        try:
            self.bucket.copy_blob(
                self.bucket.blob(self._name(source)),
                self.bucket,
                self._name(target),
                if_generation_match=NO_OBJECT,
                **self._bounds(),
            )
            return True
        except GcsPreconditionFailed:
            return False
        except NotFound:
            raise ObjectNotFound(f"{self.uri}/{source} does not exist") from None

    # ---- moves and deletes ---------------------------------------------------------------------

    def move(self, source: str, target: str) -> None:
        """Rename `source` to `target` (replacing it); ObjectNotFound when `source` is gone."""
        from google.api_core.exceptions import NotFound
        from google.cloud.storage.retry import ConditionalRetryPolicy, is_generation_specified

        # The copy has no precondition, so it is retried only as the client would: not at all.
        bounds = self._bounds()
        retry = ConditionalRetryPolicy(bounds["retry"], is_generation_specified, ["query_params"])
        try:
            self.bucket.rename_blob(
                self.bucket.blob(self._name(source)),
                self._name(target),
                timeout=bounds["timeout"],
                retry=retry,
            )
        except NotFound:
            raise ObjectNotFound(f"{self.uri}/{source} does not exist") from None

    def delete(self, key: str, if_generation: int | None = None) -> None:
        """Delete the object (only while it is at `if_generation`, when given: PreconditionFailed
        otherwise); a missing one is left alone."""
        from google.api_core.exceptions import NotFound
        from google.api_core.exceptions import PreconditionFailed as GcsPreconditionFailed

        try:
            self.bucket.blob(self._name(key)).delete(
                if_generation_match=if_generation, **self._bounds()
            )
        except NotFound:
            pass
        except GcsPreconditionFailed as e:
            raise PreconditionFailed(f"{key} changed since it was read") from e

    def delete_prefix(self, prefix: str) -> None:
        for key in self.list(prefix):
            self.delete(key)

    # ---- the production pointer: compare-and-set -------------------------------------------

    def read_with_generation(self, key: str) -> tuple[bytes | None, int]:
        from google.api_core.exceptions import NotFound

        blob = self.bucket.blob(self._name(key))
        try:
            blob.reload(**self._bounds())
            data = blob.download_as_bytes(if_generation_match=blob.generation, **self._bounds())
        except NotFound:
            return None, NO_OBJECT
        return data, int(blob.generation)

    def write_if_generation(self, key: str, data: bytes, generation: int) -> int:
        """Write only if the object is still at `generation`; returns the new generation."""
        from google.api_core.exceptions import PreconditionFailed as GcsPreconditionFailed

        blob = self.bucket.blob(self._name(key))
        try:
            blob.upload_from_string(
                data,
                content_type="application/json",
                if_generation_match=generation,
                **self._bounds(),
            )
        except GcsPreconditionFailed as e:
            raise PreconditionFailed(f"{key} changed since it was read") from e
        return int(blob.generation)
