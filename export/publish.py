"""Publish bundles to the artifact store and move the production pointer.

Files go up first and manifest.json last, so a half-uploaded version is never listed. The
pointer models/production.json (export/production_pointer.schema.json) is replaced with a
generation precondition (GCS ifGenerationMatch, a lock plus compare locally): of two concurrent
promotions exactly one wins, the other gets PreconditionFailed instead of silently overwriting.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from export.store import PreconditionFailed, Store
from production_pointer import POINTER_KEY, ProductionPointer, parse_pointer

HISTORY_LENGTH = 20  # earlier versions a pointer remembers (the schema's maxItems)

__all__ = ["POINTER_KEY", "list_versions", "promote", "publish", "read_pointer", "rollback"]


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")


def publish(bundle_dir: Path, store: Store) -> str:
    manifest = json.loads((bundle_dir / "manifest.json").read_text())
    version = manifest["version"]
    for name in manifest["files"]:
        store.upload_file(bundle_dir / name, f"models/{version}/{name}")
    store.upload_file(bundle_dir / "manifest.json", f"models/{version}/manifest.json")
    return version


def list_versions(store: Store) -> list[str]:
    """Complete versions (manifest present), oldest first: version ids sort by time."""
    return sorted(
        key.split("/")[1]
        for key in store.list("models/")
        if key.count("/") == 2 and key.endswith("/manifest.json")
    )


def _read_current(store: Store) -> tuple[ProductionPointer | None, int]:
    data, generation = store.read_with_generation(POINTER_KEY)
    current = parse_pointer(data, f"{store.uri}/{POINTER_KEY}") if data else None
    return current, generation


def _write(store: Store, pointer: ProductionPointer, generation: int) -> dict:
    as_dict = pointer.as_dict()
    store.write_if_generation(POINTER_KEY, json.dumps(as_dict, indent=2).encode(), generation)
    return as_dict


def read_pointer(store: Store) -> dict | None:
    current, _ = _read_current(store)
    return current.as_dict() if current else None


def promote(store: Store, version: str, expected: dict | None = None) -> dict:
    """Point production at `version`. With `expected`, fail unless the pointer still says that
    (a caller that read the pointer earlier); the write itself is always a compare-and-set."""
    if version not in list_versions(store):
        raise LookupError(f"no complete version {version!r} in {store.uri}")
    current, generation = _read_current(store)
    if expected is not None and (current.as_dict() if current else None) != expected:
        raise PreconditionFailed("the production pointer moved since it was read")
    history = (*current.history, current.version)[-HISTORY_LENGTH:] if current else ()
    pointer = ProductionPointer(
        version=version,
        promoted_at=_now(),
        previous=current.version if current else None,
        history=history,
    )
    return _write(store, pointer, generation)


def rollback(store: Store) -> dict:
    """Back to the version that was production before the current one."""
    current, generation = _read_current(store)
    if not current or not current.history:
        raise LookupError("nothing to roll back to: production has no earlier version")
    *older, previous = current.history
    pointer = ProductionPointer(
        version=previous, promoted_at=_now(), previous=current.version, history=tuple(older)
    )
    return _write(store, pointer, generation)
