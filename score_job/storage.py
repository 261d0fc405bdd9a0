"""Files the job reads and writes, in a local folder or on ``gs://`` (one small interface).

Outputs are written once: ``put_new`` creates an object only if it does not exist yet (a local
hard link of a finished temporary file; on GCS an upload with ``if_generation_match=0``), and both
make the object appear whole or not at all. A killed task therefore leaves either a complete
object or none, and a rerun never overwrites what an earlier run finished. The job needs only
create and read rights on its output prefix.

The GCS client is google-cloud-storage, which honours ``STORAGE_EMULATOR_HOST`` (fake-gcs-server
in tests).
"""

from __future__ import annotations

import contextlib
import glob
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

GLOB_CHARS = "*?["


@dataclass(frozen=True)
class StoredFile:
    uri: str  # local path or gs://bucket/name
    size: int
    version: str  # GCS generation, or the local file's mtime in ns: a changed file is a new input


def is_gcs(uri: str) -> bool:
    return uri.startswith("gs://")


def split_gs(uri: str) -> tuple[str, str]:
    bucket, _, name = uri.removeprefix("gs://").partition("/")
    if not bucket:
        raise ValueError(f"{uri!r} names no bucket")
    return bucket, name


def join(base: str, *parts: str) -> str:
    if is_gcs(base):
        return "/".join([base.rstrip("/"), *(p.strip("/") for p in parts)])
    return str(Path(base, *parts))


_CLIENTS: dict[str, Any] = {}


def gcs_client() -> Any:
    """One client per process (per emulator, in tests), made on first use."""
    endpoint = os.environ.get("STORAGE_EMULATOR_HOST", "")
    if endpoint not in _CLIENTS:
        from google.cloud import storage

        _CLIENTS[endpoint] = storage.Client()
    return _CLIENTS[endpoint]


def _blob(uri: str) -> Any:
    bucket, name = split_gs(uri)
    return gcs_client().bucket(bucket).blob(name)


# ---- listing inputs ----------------------------------------------------------------------------


def list_files(spec: str, suffixes: tuple[str, ...]) -> list[StoredFile]:
    """The files `spec` names, sorted by URI: a file, a folder / prefix (files ending in one of
    `suffixes`, recursively) or a glob (every match; `**` crosses folders)."""
    files = _list_gcs(spec, suffixes) if is_gcs(spec) else _list_local(spec, suffixes)
    return sorted(files, key=lambda f: f.uri)


def _local_file(path: Path) -> StoredFile:
    stat = path.stat()
    return StoredFile(uri=str(path), size=stat.st_size, version=str(stat.st_mtime_ns))


def _list_local(spec: str, suffixes: tuple[str, ...]) -> list[StoredFile]:
    if any(char in spec for char in GLOB_CHARS):
        return [_local_file(Path(p)) for p in glob.glob(spec, recursive=True) if Path(p).is_file()]
    path = Path(spec)
    if path.is_dir():
        return [
            _local_file(p)
            for p in path.rglob("*")
            if p.is_file() and p.name.lower().endswith(suffixes) and not p.name.startswith(".")
        ]
    if path.is_file():
        return [_local_file(path)]
    raise FileNotFoundError(f"no input at {spec}")


def _list_gcs(spec: str, suffixes: tuple[str, ...]) -> list[StoredFile]:
    bucket_name, name = split_gs(spec)
    client = gcs_client()
    if any(char in name for char in GLOB_CHARS):
        cut = min(name.index(c) for c in GLOB_CHARS if c in name)
        blobs = [
            b
            for b in client.list_blobs(bucket_name, prefix=name[:cut])
            if _glob_match(b.name, name)
        ]
    else:
        named = name and not name.endswith("/")
        single = client.bucket(bucket_name).get_blob(name) if named else None
        if single is not None:
            blobs = [single]
        else:
            prefix = name if not name or name.endswith("/") else name + "/"
            blobs = [
                b
                for b in client.list_blobs(bucket_name, prefix=prefix)
                if b.name.lower().endswith(suffixes)
            ]
    if not blobs:
        raise FileNotFoundError(f"no input at {spec}")
    return [
        StoredFile(f"gs://{bucket_name}/{b.name}", int(b.size or 0), str(b.generation))
        for b in blobs
        if not b.name.endswith("/")
    ]


def _glob_match(name: str, pattern: str) -> bool:
    """Glob semantics on object names: `*` and `?` stay inside one folder, `**` crosses folders."""
    parts, i = [], 0
    while i < len(pattern):
        char = pattern[i]
        if pattern.startswith("**", i):
            parts.append(".*")
            i += 2
            continue
        if char == "*":
            parts.append("[^/]*")
        elif char == "?":
            parts.append("[^/]")
        elif char == "[" and "]" in pattern[i + 1 :]:
            close = pattern.index("]", i + 1)
            body = pattern[i + 1 : close]
            parts.append("[" + ("^" + body[1:] if body.startswith("!") else body) + "]")
            i = close
        else:
            parts.append(re.escape(char))
        i += 1
    return re.fullmatch("".join(parts), name) is not None


def under_scratch(scratch: Path, bucket: str, name: str, suffix: str = "") -> Path:
    """Where a copy of gs://bucket/name goes in the scratch folder: scratch/bucket/name+suffix.

    An object name may hold any characters, `..` and a leading `/` included: joined as it is,
    `../../x` or `/etc/x` would write outside the folder (a path joined with an absolute part
    starts over). Names with an empty, `.` or `..` part are refused (ValueError): they would
    leave the folder, or land on the copy of another object (`a//b` and `a/./b` are `a/b`)."""
    for what, value in (("bucket", bucket), ("object name", name)):
        if any(part in ("", ".", "..") for part in value.split("/")) or "\0" in value:
            raise ValueError(
                f"{what} {value!r} has an empty, '.' or '..' part: not copied under {scratch}"
            )
    target = scratch.joinpath(bucket, *name.split("/"))
    target = target.with_name(target.name + suffix)
    if not target.resolve().is_relative_to(scratch.resolve()):
        raise ValueError(f"gs://{bucket}/{name} would be copied outside {scratch}")
    return target


def local_copy(file: StoredFile, scratch: Path) -> Path:
    """A local path holding the file: the file itself, or a download of that exact generation."""
    if not is_gcs(file.uri):
        return Path(file.uri)
    bucket, name = split_gs(file.uri)
    target = under_scratch(scratch / "inputs", bucket, name, f"@{file.version}")
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        blob = gcs_client().bucket(bucket).blob(name, generation=int(file.version))
        partial = target.with_name(target.name + ".part")
        blob.download_to_filename(str(partial))
        partial.replace(target)
    return target


# ---- outputs, written once ---------------------------------------------------------------------


def exists(uri: str) -> bool:
    if is_gcs(uri):
        return bool(_blob(uri).exists())
    return Path(uri).exists()


def read_bytes(uri: str) -> bytes:
    if is_gcs(uri):
        return bytes(_blob(uri).download_as_bytes())
    return Path(uri).read_bytes()


def fetch(uri: str, scratch: Path) -> Path:
    """A local path with the object's bytes (the object itself when it is local)."""
    if not is_gcs(uri):
        return Path(uri)
    target = under_scratch(scratch / "fetched", *split_gs(uri))
    target.parent.mkdir(parents=True, exist_ok=True)
    _blob(uri).download_to_filename(str(target))
    return target


def put_new(local: Path, uri: str) -> bool:
    """Publish the finished local file at `uri` unless something is there already; True when this
    call created it. Atomic: readers see the whole file or nothing."""
    if is_gcs(uri):
        from google.api_core import exceptions as gexc

        try:
            _blob(uri).upload_from_filename(str(local), if_generation_match=0)
            return True
        except gexc.PreconditionFailed:
            return False
    target = Path(uri)
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, staged_name = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    os.close(handle)
    staged = Path(staged_name)
    try:
        shutil.copyfile(local, staged)  # beside the target: a link cannot cross file systems
        os.link(staged, target)  # fails if target exists: an atomic create-if-absent
        return True
    except FileExistsError:
        return False
    finally:
        with contextlib.suppress(OSError):
            staged.unlink()


def put_new_bytes(data: bytes, uri: str, scratch: Path) -> bool:
    scratch.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=scratch, delete=False) as handle:
        handle.write(data)
        local = Path(handle.name)
    try:
        return put_new(local, uri)
    finally:
        local.unlink(missing_ok=True)
