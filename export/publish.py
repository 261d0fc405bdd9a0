"""Publish bundles to the artifact store and move the production pointer.

Files go up first and manifest.json last, so a half-uploaded version is never listed. The
pointer models/production.json is replaced with a generation precondition (GCS
ifGenerationMatch, a lock plus compare locally): of two concurrent promotions exactly one wins,
the other gets PreconditionFailed instead of silently overwriting.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from export.store import PreconditionFailed, Store

POINTER_KEY = "models/production.json"


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


def read_pointer(store: Store) -> dict | None:
    data, _ = store.read_with_generation(POINTER_KEY)
    return json.loads(data) if data else None


def promote(store: Store, version: str, expected: dict | None = None) -> dict:
    """Point production at `version`. With `expected`, fail unless the pointer still says that
    (a caller that read the pointer earlier); the write itself is always a compare-and-set."""
    if version not in list_versions(store):
        raise LookupError(f"no complete version {version!r} in {store.uri}")
    data, generation = store.read_with_generation(POINTER_KEY)
    current = json.loads(data) if data else None
    if expected is not None and current != expected:
        raise PreconditionFailed("the production pointer moved since it was read")
    history = (current or {}).get("history", [])
    if current:
        history = [*history, current["version"]][-20:]
    pointer = {
        "version": version,
        "promoted_at": _now(),
        "previous": current["version"] if current else None,
        "history": history,
    }
    store.write_if_generation(POINTER_KEY, json.dumps(pointer, indent=2).encode(), generation)
    return pointer


def rollback(store: Store) -> dict:
    """Back to the version that was production before the current one."""
    data, generation = store.read_with_generation(POINTER_KEY)
    current = json.loads(data) if data else None
    if not current or not current.get("history"):
        raise LookupError("nothing to roll back to: production has no earlier version")
    *older, previous = current["history"]
    pointer = {
        "version": previous,
        "promoted_at": _now(),
        "previous": current["version"],
        "history": older,
    }
    store.write_if_generation(POINTER_KEY, json.dumps(pointer, indent=2).encode(), generation)
    return pointer
