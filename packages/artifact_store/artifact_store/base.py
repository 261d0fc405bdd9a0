"""What both stores share: errors, object facts, content digests and the GCS call bounds."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

NO_OBJECT = 0  # generation meaning "the object must not exist yet" (as in GCS)


class PreconditionFailed(RuntimeError):
    """Someone else changed the object since we read it."""


class ObjectNotFound(FileNotFoundError):
    """No object under that key (a local missing file raises FileNotFoundError, its base)."""


@dataclass(frozen=True)
class FileDigest:
    size: int
    sha256: str


@dataclass(frozen=True)
class ObjectInfo:
    key: str  # relative to the store's root
    size: int
    generation: int  # GCS generation; locally the file's mtime in ns (a changed file is new)
    created: float  # seconds since the epoch: GCS time_created, locally the mtime


@dataclass(frozen=True)
class Deadlines:
    """How long one GCS call may take: each attempt's timeout and the retries' whole budget.

    The defaults are the client's own (60 s per attempt, google-api-core's 120 s retry deadline,
    backoff from 1 s to 60 s), stated so that no call is left unbounded; a caller on a request
    path passes tighter ones."""

    call_s: float = 60.0
    retry_s: float = 120.0
    first_backoff_s: float = 1.0
    max_backoff_s: float = 60.0

    def retry(self) -> Any:
        """The storage client's retry predicate (connection errors, 429, 5xx), these bounds."""
        from google.cloud.storage.retry import DEFAULT_RETRY

        return DEFAULT_RETRY.with_delay(
            initial=self.first_backoff_s, maximum=self.max_backoff_s
        ).with_timeout(self.retry_s)


DEFAULT_DEADLINES = Deadlines()

HASH_BLOCK = 1 << 20


class Digest:
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
