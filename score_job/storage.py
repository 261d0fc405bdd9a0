"""The job's files by URI, a local path or ``gs://bucket/name``: which files an input spec names,
where their scratch copies go, and the write-once outputs. Every read and write goes through
artifact_store.

Outputs are written once: ``put_new`` creates an object only if it does not exist yet (a local
hard link of a finished temporary file; on GCS an upload with ``if_generation_match=0``), and both
make the object appear whole or not at all. A killed task therefore leaves either a complete
object or none, and a rerun never overwrites what an earlier run finished. The job needs only
create and read rights on its output prefix.
"""

from __future__ import annotations

import glob
import re
from dataclasses import dataclass
from pathlib import Path

from artifact_store import GcsStore, is_gcs, open_object, split_gs

GLOB_CHARS = "*?["


@dataclass(frozen=True)
class StoredFile:
    uri: str  # local path or gs://bucket/name
    size: int
    version: str  # GCS generation, or the local file's mtime in ns: a changed file is a new input


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
    bucket = GcsStore(f"gs://{bucket_name}")  # keys are whole object names
    if any(char in name for char in GLOB_CHARS):
        cut = min(name.index(c) for c in GLOB_CHARS if c in name)
        found = [o for o in bucket.list_objects(name[:cut]) if _glob_match(o.key, name)]
    else:
        named = name and not name.endswith("/")
        single = bucket.info(name) if named else None
        if single is not None:
            found = [single]
        else:
            prefix = name if not name or name.endswith("/") else name + "/"
            found = [o for o in bucket.list_objects(prefix) if o.key.lower().endswith(suffixes)]
    if not found:
        raise FileNotFoundError(f"no input at {spec}")
    return [
        StoredFile(f"gs://{bucket_name}/{o.key}", o.size, str(o.generation))
        for o in found
        if not o.key.endswith("/")
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
        store, key = open_object(file.uri)
        partial = target.with_name(target.name + ".part")
        store.download_file(key, partial, generation=int(file.version))
        partial.replace(target)
    return target


# ---- outputs, written once ---------------------------------------------------------------------


def exists(uri: str) -> bool:
    store, key = open_object(uri)
    return store.exists(key)


def read_bytes(uri: str) -> bytes:
    store, key = open_object(uri)
    return store.read_bytes(key)


def fetch(uri: str, scratch: Path) -> Path:
    """A local path with the object's bytes (the object itself when it is local)."""
    if not is_gcs(uri):
        return Path(uri)
    target = under_scratch(scratch / "fetched", *split_gs(uri))
    store, key = open_object(uri)
    store.download_file(key, target)
    return target


def put_new(local: Path, uri: str) -> bool:
    """Publish the finished local file at `uri` unless something is there already; True when this
    call created it. Atomic: readers see the whole file or nothing."""
    store, key = open_object(uri)
    return store.put_new_file(local, key)


def put_new_bytes(data: bytes, uri: str) -> bool:
    store, key = open_object(uri)
    return store.put_new_bytes(key, data)
