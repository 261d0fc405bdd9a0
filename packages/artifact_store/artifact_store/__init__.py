"""The artifact store: objects in a local folder or under ``gs://bucket/prefix``, one interface.

``open_store(uri)`` gives a LocalStore or a GcsStore; keys are always ``/``-separated and relative
to the store's root. Both offer:

- reads: ``exists``, ``read_bytes``, ``read_text``, ``download_file``, ``list`` (keys),
  ``list_objects`` (keys with size and generation), ``info``, ``file_digest``;
- overwrite puts: ``write_bytes``, ``upload_file`` (run outputs, checkpoints);
- write-once puts: ``put_new_bytes``, ``put_new_file``, ``copy_new`` (False when the object is
  there already: on GCS ``if_generation_match=0``, locally an exclusive create), so outputs
  appear whole or not at all and a rerun never overwrites what an earlier run finished;
- compare-and-set for the production pointer: ``read_with_generation``, ``write_if_generation``
  (a GCS generation precondition; locally a lock and a content hash);
- ``move``, ``delete``, ``delete_prefix``.

A missing object raises FileNotFoundError (ObjectNotFound on gs://). Every GCS call carries the
store's Deadlines (each attempt's timeout, the retry deadline); the client is created on the
first call. Store layout (export/manifest.schema.json):
    models/<version>/...            one folder per bundle; manifest.json is written last
    models/production.json          the production pointer, moved with a generation precondition
    runs/<run_id>/...               training checkpoints and run outputs
"""

from __future__ import annotations

from pathlib import Path

from artifact_store.base import (
    DEFAULT_DEADLINES,
    NO_OBJECT,
    Deadlines,
    FileDigest,
    ObjectInfo,
    ObjectNotFound,
    PreconditionFailed,
)
from artifact_store.gcs import GcsStore, split_gs, storage_client
from artifact_store.local import LocalStore

Store = LocalStore | GcsStore

__all__ = [
    "DEFAULT_DEADLINES",
    "NO_OBJECT",
    "Deadlines",
    "FileDigest",
    "GcsStore",
    "LocalStore",
    "ObjectInfo",
    "ObjectNotFound",
    "PreconditionFailed",
    "Store",
    "is_gcs",
    "join_uri",
    "open_object",
    "open_store",
    "split_gs",
    "storage_client",
]


def is_gcs(uri: str | Path) -> bool:
    return str(uri).startswith("gs://")


def open_store(uri: str | Path, deadlines: Deadlines = DEFAULT_DEADLINES) -> Store:
    """The store rooted at `uri`: a gs://bucket/prefix or a local folder."""
    uri = str(uri)
    return GcsStore(uri, deadlines) if is_gcs(uri) else LocalStore(uri)


def open_object(uri: str | Path, deadlines: Deadlines = DEFAULT_DEADLINES) -> tuple[Store, str]:
    """The store holding the one object `uri` names, and its key there: the bucket and the object
    name on gs://, the parent folder and the file name locally."""
    uri = str(uri)
    if is_gcs(uri):
        bucket, name = split_gs(uri)
        return GcsStore(f"gs://{bucket}", deadlines), name
    path = Path(uri)
    return LocalStore(path.parent), path.name


def join_uri(base: str, *parts: str) -> str:
    """`base` and `parts` joined: with "/" on gs://, as a path locally."""
    if is_gcs(base):
        return "/".join([base.rstrip("/"), *(p.strip("/") for p in parts)])
    return str(Path(base, *parts))
