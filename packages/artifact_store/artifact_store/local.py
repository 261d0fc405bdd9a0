"""A store in a local folder: keys are ``/``-separated paths under the root."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from artifact_store.base import (
    HASH_BLOCK,
    NO_OBJECT,
    Digest,
    FileDigest,
    ObjectInfo,
    PreconditionFailed,
)


class LocalStore:
    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.uri = str(self.root)

    def _path(self, key: str) -> Path:
        return self.root / key

    # ---- reads -------------------------------------------------------------------------------

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def read_bytes(self, key: str) -> bytes:
        return self._path(key).read_bytes()

    def read_text(self, key: str) -> str:
        return self.read_bytes(key).decode("utf-8")

    def download_file(self, key: str, local: Path, generation: int | None = None) -> None:
        """Copy the object to `local`; `generation` is for gs:// (a local file has one state)."""
        local.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(self._path(key), local)

    def list(self, prefix: str) -> list[str]:
        return [info.key for info in self.list_objects(prefix)]

    def list_objects(self, prefix: str, delimiter: str | None = None) -> list[ObjectInfo]:
        """The files under the folder `prefix` names, sorted by key (hidden files left out);
        with delimiter "/" only those directly in it."""
        base = self._path(prefix)
        if not base.is_dir():
            return []
        found = base.glob("*") if delimiter == "/" else base.rglob("*")
        return sorted(
            (self._info(p) for p in found if p.is_file() and not p.name.startswith(".")),
            key=lambda info: info.key,
        )

    def info(self, key: str) -> ObjectInfo | None:
        path = self._path(key)
        return self._info(path) if path.is_file() else None

    def _info(self, path: Path) -> ObjectInfo:
        stat = path.stat()
        return ObjectInfo(
            key=path.relative_to(self.root).as_posix(),
            size=stat.st_size,
            generation=stat.st_mtime_ns,
            created=stat.st_mtime,
        )

    def file_digest(self, key: str) -> FileDigest | None:
        path = self._path(key)
        if not path.is_file():
            return None
        digest = Digest()
        with open(path, "rb") as f:
            while block := f.read(HASH_BLOCK):
                digest.write(block)
        return digest.result()

    # ---- overwrite puts ------------------------------------------------------------------------

    def write_bytes(self, key: str, data: bytes, content_type: str | None = None) -> None:
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

    # ---- write-once puts -----------------------------------------------------------------------

    def put_new_file(self, local: Path, key: str) -> bool:
        """Publish the finished file at `key` unless something is there already; True when this
        call created it. Atomic: readers see the whole file or nothing."""
        return self._create_once(key, lambda staged: shutil.copyfile(local, staged))

    def put_new_bytes(self, key: str, data: bytes, content_type: str | None = None) -> bool:
        """As put_new_file, for bytes in memory."""
        return self._create_once(key, lambda staged: staged.write_bytes(data))

    def _create_once(self, key: str, write: Callable[[Path], object]) -> bool:
        target = self._path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        handle, staged_name = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
        os.close(handle)
        staged = Path(staged_name)
        try:
            write(staged)  # staged beside the target: a link cannot cross file systems
            os.link(staged, target)  # fails if target exists: an atomic create-if-absent
            return True
        except FileExistsError:
            return False
        finally:
            with contextlib.suppress(OSError):
                staged.unlink()

    def copy_new(self, source: str, target: str) -> bool:
        """Copy `source` to `target` unless `target` exists (False); FileNotFoundError when
        `source` is gone."""
        if not self._path(source).is_file():
            raise FileNotFoundError(self._path(source))
        return self.put_new_file(self._path(source), target)

    # ---- moves and deletes ---------------------------------------------------------------------

    def move(self, source: str, target: str) -> None:
        """Rename `source` to `target` (replacing it); FileNotFoundError when `source` is gone."""
        path = self._path(target)
        path.parent.mkdir(parents=True, exist_ok=True)
        os.replace(self._path(source), path)

    def delete(self, key: str, if_generation: int | None = None) -> None:
        """Delete the object; a missing one is left alone."""
        with contextlib.suppress(FileNotFoundError):
            self._path(key).unlink()

    def delete_prefix(self, prefix: str) -> None:
        shutil.rmtree(self._path(prefix), ignore_errors=True)

    # ---- the production pointer: compare-and-set -------------------------------------------

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


def _local_generation(data: bytes) -> int:
    # A local file has no generation number; a content hash serves the same purpose for
    # compare-and-set (the pointer always carries a fresh timestamp, so contents never repeat).
    return int.from_bytes(hashlib.sha256(data).digest()[:7], "big") or 1
