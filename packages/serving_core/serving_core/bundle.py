"""Find the model bundle MODEL_URI names, fetch it to local disk and prove it is intact.

MODEL_URI is one of:
  - a local bundle folder (holding manifest.json),
  - a ``gs://bucket/prefix`` bundle prefix,
  - a production pointer ``.../models/production.json``, local or ``gs://``; the bundle it names
    is ``<folder of the pointer>/<version>/``.

A ``gs://`` bundle is downloaded through artifact_store (google-cloud-storage, which honours
STORAGE_EMULATOR_HOST) into ``<cache>/<version>/`` and renamed into place only once every file has
been checked, so two processes on one machine never see half a bundle. A local bundle is read in
place. Either way every file listed in ``manifest.files`` must match its size and sha256, or the
bundle is refused.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from artifact_store import Deadlines, GcsStore, ObjectNotFound
from production_pointer import SAFE_VERSION, PointerError, ProductionPointer, parse_pointer

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"
# Keys the serving code relies on; the full contract is export/manifest.schema.json.
_REQUIRED_KEYS = (
    "version",
    "labels",
    "positive_label",
    "max_length",
    "model_file",
    "tokenizer_file",
    "calibration",
    "decision",
    "files",
)
# Bounded so that an unreachable store fails within seconds (the function answers 503) instead of
# hanging behind the client's default two-minute retry deadline.
_GCS_DEADLINES = Deadlines(call_s=10.0, retry_s=20.0)
_HASH_CHUNK = 1 << 20


class BundleError(Exception):
    """The bundle is missing, incomplete, corrupt or not a bundle at all.

    ``reason`` is what GET tells a caller (the message, with paths, stays in the server log):
    ``not_found`` (no pointer, or no bundle where it points), ``corrupt`` (a file does not match
    the manifest), ``unreachable`` (the store could not be read), ``invalid`` (anything else).
    """

    def __init__(self, message: str, reason: str = "invalid") -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class Bundle:
    directory: Path
    manifest: dict[str, Any]
    source: str

    @property
    def version(self) -> str:
        return str(self.manifest["version"])

    def path(self, name: str) -> Path:
        return self.directory / name


def is_pointer(model_uri: str) -> bool:
    """Whether MODEL_URI names a production pointer (which can move) rather than one bundle."""
    name = PurePosixPath(model_uri.removeprefix("gs://").removeprefix("file://")).name
    return name.endswith(".json") and name != MANIFEST


class PointerReader:
    """Reads the version a production pointer names: the small read behind the hot reload.

    The store (and the process's GCS client) is made once and kept, so a check every few seconds
    costs one object read.
    """

    def __init__(self, model_uri: str) -> None:
        if not is_pointer(model_uri):
            raise ValueError(f"{model_uri!r} is not a production pointer")
        self.model_uri = model_uri
        self._store: GcsStore | None = None

    def version(self) -> str:
        """The pointed version; BundleError when the pointer cannot be read or parsed."""
        return self.pointer().version

    def pointer(self) -> ProductionPointer:
        """The whole pointer (production and any candidate); BundleError as for `version`."""
        if not self.model_uri.startswith("gs://"):
            path = Path(self.model_uri.removeprefix("file://"))
            return _parsed_pointer(_read_local(path), str(path))
        bucket_name, name = _split_gs(self.model_uri)
        try:
            if self._store is None:
                self._store = _bucket_store(bucket_name)
            return _parsed_pointer(_read_object(self._store, name), self.model_uri)
        except BundleError:
            raise
        except Exception as exc:  # network, auth: the check fails, the next one may not
            detail = f"{type(exc).__name__}: {exc}"
            raise BundleError(f"cannot read {self.model_uri}: {detail}", "unreachable") from None


def bundle_beside_pointer(pointer_uri: str, version: str) -> str:
    """The URI of `version`'s bundle in the store of a pointer (<folder of the pointer>/<version>),
    e.g. to load a candidate the pointer names."""
    if not SAFE_VERSION.fullmatch(version):
        raise BundleError(f"{version!r} is not a valid version")
    head, _, _ = pointer_uri.rstrip("/").rpartition("/")
    return f"{head}/{version}" if head else version


def fetch_bundle(model_uri: str, cache_dir: Path) -> Bundle:
    """Resolve ``model_uri`` to a verified bundle on local disk, or raise BundleError."""
    if model_uri.startswith("gs://"):
        return _fetch_gcs(model_uri, cache_dir)
    return _open_local(Path(model_uri.removeprefix("file://")))


# ---- local -------------------------------------------------------------------------------------


def _open_local(path: Path) -> Bundle:
    expected_version = None
    if path.suffix == ".json" and path.name != MANIFEST:
        pointer = _pointed_version(_read_local(path), str(path))
        expected_version = pointer
        path = path.parent / pointer
    elif path.name == MANIFEST:
        path = path.parent
    manifest = _parse_manifest(_read_local(path / MANIFEST), str(path), expected_version)
    _verify_files(path, manifest)
    return Bundle(directory=path, manifest=manifest, source=str(path))


def _read_local(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise BundleError(f"{path} does not exist", "not_found") from None
    except OSError as exc:
        raise BundleError(f"cannot read {path}: {exc}", "unreachable") from None


# ---- gs:// -------------------------------------------------------------------------------------


def _split_gs(uri: str) -> tuple[str, str]:
    bucket, _, name = uri.removeprefix("gs://").partition("/")
    if not bucket:
        raise BundleError(f"{uri!r} names no bucket")
    return bucket, name.strip("/")


def _join(*parts: str) -> str:
    """Join object-name parts, dropping empty and "." parts (a bundle at the bucket root)."""
    return "/".join(part.strip("/") for part in parts if part.strip("/") not in ("", "."))


def _fetch_gcs(uri: str, cache_dir: Path) -> Bundle:
    # Imported here, not at module import: it costs ~0.3 s and local bundles never need it.
    from google.api_core import exceptions as gexc

    bucket_name, name = _split_gs(uri)
    try:
        bucket = _bucket_store(bucket_name)
        prefix, expected_version = _gcs_bundle_prefix(bucket, name)
        bundle_uri = f"gs://{bucket_name}/{prefix}"
        manifest_bytes = _read_object(bucket, _join(prefix, MANIFEST))
        manifest = _parse_manifest(manifest_bytes, bundle_uri, expected_version)
        target = cache_dir / manifest["version"]
        if _cached_copy_matches(target, manifest_bytes, manifest):
            log.info("bundle %s already in %s", manifest["version"], target)
        else:
            _download_into_place(bucket, prefix, manifest_bytes, manifest, target)
        return Bundle(directory=target, manifest=manifest, source=bundle_uri)
    except BundleError:
        raise
    except gexc.GoogleAPIError as exc:
        raise BundleError(
            f"cannot fetch {uri}: {type(exc).__name__}: {exc}", "unreachable"
        ) from None
    except Exception as exc:  # auth, network, disk: all mean "no bundle now, try again later"
        raise BundleError(
            f"cannot fetch {uri}: {type(exc).__name__}: {exc}", "unreachable"
        ) from exc


def _bucket_store(bucket_name: str) -> GcsStore:
    """The bucket as a store (keys are object names), every call bounded by _GCS_DEADLINES."""
    return GcsStore(f"gs://{bucket_name}", _GCS_DEADLINES)


def _read_object(bucket: GcsStore, blob_name: str) -> bytes:
    try:
        return bucket.read_bytes(blob_name)
    except ObjectNotFound:
        raise BundleError(f"{bucket.uri}/{blob_name} does not exist", "not_found") from None


def _download_object(bucket: GcsStore, blob_name: str, local: Path) -> None:
    try:
        bucket.download_file(blob_name, local)
    except ObjectNotFound:
        raise BundleError(
            f"{bucket.uri}/{blob_name} is listed in the manifest but missing", "corrupt"
        ) from None


def _gcs_bundle_prefix(bucket: GcsStore, name: str) -> tuple[str, str | None]:
    """The bundle's object prefix for MODEL_URI's object name, and the version a pointer names
    (None when MODEL_URI names the bundle itself)."""
    path = PurePosixPath(name)
    if name.endswith(".json") and path.name != MANIFEST:
        version = _pointed_version(_read_object(bucket, name), f"{bucket.uri}/{name}")
        return _join(str(path.parent), version), version
    if path.name == MANIFEST:
        return _join(str(path.parent)), None
    return name, None


def _download_into_place(
    bucket: GcsStore,
    prefix: str,
    manifest_bytes: bytes,
    manifest: dict[str, Any],
    target: Path,
) -> None:
    """Download every file to a staging folder beside target, verify it, then rename."""
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{manifest['version']}.", dir=target.parent))
    try:

        def download(file_name: str) -> None:
            local = staging / file_name
            local.parent.mkdir(parents=True, exist_ok=True)
            _download_object(bucket, _join(prefix, file_name), local)
            # Verified in its download thread: hashlib releases the GIL, files hash in parallel.
            _verify_file(staging, file_name, manifest["files"][file_name])

        # Parallel downloads: the model dominates, but the small files then cost no extra time.
        with ThreadPoolExecutor(max_workers=4) as pool:
            for done in [pool.submit(download, f) for f in manifest["files"]]:
                done.result()
        (staging / MANIFEST).write_bytes(manifest_bytes)
        _move_into_place(staging, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _cached_copy_matches(target: Path, manifest_bytes: bytes, manifest: dict[str, Any]) -> bool:
    try:
        if (target / MANIFEST).read_bytes() != manifest_bytes:
            return False
        _verify_files(target, manifest)
        return True
    except (OSError, BundleError):
        return False


def _move_into_place(staging: Path, target: Path) -> None:
    try:
        os.replace(staging, target)
    except OSError:
        # Another process won the race (the target is a non-empty folder) or a stale copy is in the
        # way: a stale copy failed _cached_copy_matches, so replace it.
        old = target.with_name(f".{target.name}.old.{os.getpid()}")
        with contextlib.suppress(OSError):
            os.replace(target, old)
        os.replace(staging, target)
        shutil.rmtree(old, ignore_errors=True)


# ---- shared checks -----------------------------------------------------------------------------


def _pointed_version(raw: bytes, where: str) -> str:
    return _parsed_pointer(raw, where).version


def _parsed_pointer(raw: bytes, where: str) -> ProductionPointer:
    try:
        return parse_pointer(raw, where)
    except PointerError as exc:
        raise BundleError(str(exc)) from None


def _parse_manifest(raw: bytes, where: str, expected_version: str | None) -> dict[str, Any]:
    try:
        manifest = json.loads(raw)
    except ValueError as exc:
        raise BundleError(f"{where}/{MANIFEST} is not valid JSON: {exc}") from None
    if not isinstance(manifest, dict):
        raise BundleError(f"{where}/{MANIFEST} is not a JSON object")
    missing = [key for key in _REQUIRED_KEYS if key not in manifest]
    if missing:
        raise BundleError(f"{where}/{MANIFEST} lacks {', '.join(missing)}")
    version = manifest["version"]
    if not isinstance(version, str) or not SAFE_VERSION.fullmatch(version):
        raise BundleError(f"{where}/{MANIFEST} has an invalid version {version!r}")
    if expected_version is not None and version != expected_version:
        raise BundleError(
            f"{where}/{MANIFEST} is version {version}, but the pointer names {expected_version}"
        )
    files = manifest["files"]
    if not isinstance(files, dict) or not files:
        raise BundleError(f"{where}/{MANIFEST} lists no files")
    for name in files:
        parts = PurePosixPath(name).parts
        if not parts or PurePosixPath(name).is_absolute() or ".." in parts:
            raise BundleError(f"{where}/{MANIFEST} lists an unsafe file name {name!r}")
    needed = [manifest["model_file"], manifest["tokenizer_file"]]
    ood = manifest.get("ood")
    if isinstance(ood, dict) and ood.get("params_file"):
        needed.append(ood["params_file"])
    unlisted = [name for name in needed if name not in files]
    if unlisted:
        raise BundleError(f"{where}/{MANIFEST} does not list {', '.join(unlisted)} in files")
    return manifest


def _verify_files(directory: Path, manifest: dict[str, Any]) -> None:
    for name, expected in manifest["files"].items():
        _verify_file(directory, name, expected)


def _verify_file(directory: Path, name: str, expected: dict[str, Any]) -> None:
    path = directory / name
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise BundleError(f"{path} is listed in the manifest but missing", "corrupt") from None
    if "bytes" in expected and size != expected["bytes"]:
        raise BundleError(
            f"{path} has {size} bytes, the manifest says {expected['bytes']}", "corrupt"
        )
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_HASH_CHUNK):
            digest.update(chunk)
    if digest.hexdigest() != expected.get("sha256"):
        raise BundleError(
            f"{path} does not match its sha256 in the manifest (corrupt bundle)", "corrupt"
        )
