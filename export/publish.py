"""Publish bundles to the artifact store and move the production pointer.

Files go up first and manifest.json last, so a half-uploaded version is never listed. The
pointer models/production.json (export/production_pointer.schema.json) is replaced with a
generation precondition (GCS ifGenerationMatch, a lock plus compare locally): of two concurrent
promotions exactly one wins, the other gets PreconditionFailed instead of silently overwriting.
A caller that read the pointer earlier (an operator, or the train job before training) passes its
generation as `expected_generation`, so a change made since then is not undone. Promote and
rollback first check that the target version is complete (every listed file, sha256 included).

The pointer may also name a candidate (a canary or a shadow, docs/rollout.md). Setting, promoting
and dropping it are pointer changes like any other: same precondition, same completeness check.
A promotion or rollback keeps a running candidate unless it is the version that becomes
production (it then has nothing left to be compared with).

Every promotion (`promote`, and `promote_candidate` and the train job's promotion through it)
runs the promotion gate (export/promotion_gate.py) against the production it replaces, read
under the same generation as the write. A refusal raises PromotionRefused; an operator may
override it with a reason, which is logged with the verdict it overrode. `rollback` is not
gated: it returns to a version that was production before, typically because the current one
misbehaves in a way its numbers did not show, and is logged as such.
"""

from __future__ import annotations

import json
import logging
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from artifact_store import PreconditionFailed, Store
from export.promotion_gate import PromotionVerdict, Tolerance, gate_against_production
from production_pointer import (
    CANARY,
    MODES,
    POINTER_KEY,
    SAFE_VERSION,
    Candidate,
    ProductionPointer,
    parse_pointer,
)

if TYPE_CHECKING:
    from export.rescore import LabelledPosts

HISTORY_LENGTH = 20  # earlier versions a pointer remembers (the schema's maxItems)

__all__ = [
    "POINTER_KEY",
    "IncompleteVersion",
    "PromotionRefused",
    "abort_candidate",
    "check_complete",
    "list_versions",
    "promote",
    "promote_candidate",
    "promote_gated",
    "publish",
    "read_pointer",
    "read_pointer_with_generation",
    "rollback",
    "start_candidate",
]


log = logging.getLogger("export.promotion")


class IncompleteVersion(LookupError):
    """The version has no manifest, or a file its manifest lists is missing or corrupt."""


class PromotionRefused(RuntimeError):
    """The promotion gate refused the version and no override was given."""

    def __init__(self, verdict: PromotionVerdict) -> None:
        self.verdict = verdict
        super().__init__(
            f"the promotion gate refuses {verdict.candidate_version} against production "
            f"{verdict.production_version}: {'; '.join(verdict.reasons)}"
        )


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


def read_pointer_with_generation(store: Store) -> tuple[dict | None, int]:
    """The pointer and its generation: pass the generation back as `expected_generation` to
    change production only if nobody else has changed it in between."""
    current, generation = _read_current(store)
    return (current.as_dict() if current else None), generation


def check_complete(store: Store, version: str) -> None:
    """Raise IncompleteVersion unless every file the version's manifest lists is in the store with
    its size and sha256: a pointer must never name a bundle the function would refuse to load."""
    where = f"{store.uri}/models/{version}"
    manifest_key = f"models/{version}/manifest.json"
    if not SAFE_VERSION.fullmatch(version) or not store.exists(manifest_key):
        raise IncompleteVersion(f"no complete version {version!r} in {store.uri}")
    try:
        files = json.loads(store.read_bytes(manifest_key))["files"]
    except (ValueError, KeyError, TypeError):
        raise IncompleteVersion(f"{where}/manifest.json is not a bundle manifest") from None
    problems = []
    for name, expected in sorted(files.items()):
        found = store.file_digest(f"models/{version}/{name}")
        if found is None:
            problems.append(f"{name} is missing")
        elif found.size != expected.get("bytes", found.size):
            problems.append(f"{name} has {found.size} bytes, the manifest says {expected['bytes']}")
        elif found.sha256 != expected.get("sha256"):
            problems.append(f"{name} does not match its sha256")
    if problems:
        raise IncompleteVersion(f"{where} is incomplete or corrupt: {'; '.join(problems)}")


def _check_expected(generation: int, expected_generation: int | None) -> None:
    if expected_generation is not None and generation != expected_generation:
        raise PreconditionFailed(
            f"the production pointer is at generation {generation}, not the expected "
            f"{expected_generation}: someone changed production since it was read"
        )


def promote(
    store: Store,
    version: str,
    expected_generation: int | None = None,
    *,
    tolerance: Tolerance | None = None,
    override: str | None = None,
    rescore: LabelledPosts | None = None,
) -> dict:
    """Point production at `version`, which must be complete and pass the promotion gate against
    the production it replaces (PromotionRefused otherwise, unless `override` gives the reason an
    operator lets it through; `rescore`: measure both bundles' F1 on these posts rather than read
    it from their manifests). With `expected_generation`, fail unless the pointer is still at
    that generation (read earlier with read_pointer_with_generation); the write itself is always
    a compare-and-set."""
    return promote_gated(store, version, expected_generation, tolerance, override, rescore)[0]


def promote_gated(
    store: Store,
    version: str,
    expected_generation: int | None = None,
    tolerance: Tolerance | None = None,
    override: str | None = None,
    rescore: LabelledPosts | None = None,
) -> tuple[dict, PromotionVerdict | None]:
    """`promote`, also returning the gate's verdict (None when `version` already is production:
    the pointer move changes nothing that serves)."""
    if override is not None and not override.strip():
        raise ValueError("an override needs a reason")
    check_complete(store, version)
    current, generation = _read_current(store)
    _check_expected(generation, expected_generation)
    verdict = None
    if current is None or current.version != version:
        production = current.version if current else None
        verdict = gate_against_production(store, version, production, tolerance, rescore)
        if not verdict.promote and override is None:
            raise PromotionRefused(verdict)
    history = (*current.history, current.version)[-HISTORY_LENGTH:] if current else ()
    pointer = ProductionPointer(
        version=version,
        promoted_at=_now(),
        previous=current.version if current else None,
        history=history,
        candidate=_kept_candidate(current, version),
    )
    written = _write(store, pointer, generation)
    if verdict is not None:
        _log_gate(verdict, override)
    return written, verdict


def _log_gate(verdict: PromotionVerdict, override: str | None) -> None:
    if verdict.promote:
        log.info(
            "promotion gate passed: %s replaces production %s",
            verdict.candidate_version,
            verdict.production_version,
        )
        return
    log.warning(
        "promotion gate OVERRIDDEN: %s replaces production %s although the gate refuses it (%s); "
        "reason given: %s",
        verdict.candidate_version,
        verdict.production_version,
        "; ".join(verdict.reasons),
        (override or "").strip(),
    )


def rollback(store: Store, expected_generation: int | None = None) -> dict:
    """Back to the version that was production before the current one, if it is complete."""
    current, generation = _read_current(store)
    _check_expected(generation, expected_generation)
    if not current or not current.history:
        raise LookupError("nothing to roll back to: production has no earlier version")
    *older, previous = current.history
    try:
        check_complete(store, previous)
    except IncompleteVersion as e:
        raise IncompleteVersion(f"cannot roll back to {previous}: {e}") from None
    pointer = ProductionPointer(
        version=previous,
        promoted_at=_now(),
        previous=current.version,
        history=tuple(older),
        candidate=_kept_candidate(current, previous),
    )
    written = _write(store, pointer, generation)
    log.warning(
        "rollback: %s replaces production %s without the promotion gate (it served as "
        "production before)",
        previous,
        current.version,
    )
    return written


def _kept_candidate(current: ProductionPointer | None, new_version: str) -> Candidate | None:
    candidate = current.candidate if current else None
    return None if candidate is None or candidate.version == new_version else candidate


def start_candidate(
    store: Store,
    version: str,
    mode: str,
    fraction: float | None = None,
    expected_generation: int | None = None,
) -> dict:
    """Try the complete `version` beside production: a `canary` answering `fraction` of the
    requests, or a `shadow`. Replaces any candidate already running (say, to change the
    fraction, or to go from shadow to canary)."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, not {mode!r}")
    if mode == CANARY and (fraction is None or not 0 < fraction < 1):
        raise ValueError(f"a canary's fraction must be in (0, 1), not {fraction!r}")
    if mode != CANARY and fraction is not None:
        raise ValueError("only a canary takes a fraction")
    check_complete(store, version)
    current, generation = _read_current(store)
    _check_expected(generation, expected_generation)
    if current is None:
        raise LookupError("no production version yet: promote one before trying a candidate")
    if version == current.version:
        raise LookupError(f"{version} is already production")
    candidate = Candidate(version=version, mode=mode, fraction=fraction, started_at=_now())
    return _write(store, replace(current, candidate=candidate), generation)


def promote_candidate(
    store: Store,
    expected_generation: int | None = None,
    *,
    tolerance: Tolerance | None = None,
    override: str | None = None,
    rescore: LabelledPosts | None = None,
) -> dict:
    """Make the running candidate production (a promotion like `promote`, gated the same way)
    and end the trial."""
    current, generation = _read_current(store)
    _check_expected(generation, expected_generation)
    if current is None or current.candidate is None:
        raise LookupError("no candidate to promote: production has no canary or shadow")
    return promote(
        store,
        current.candidate.version,
        expected_generation=generation,
        tolerance=tolerance,
        override=override,
        rescore=rescore,
    )


def abort_candidate(store: Store, expected_generation: int | None = None) -> dict:
    """End the trial: production alone answers and is scored again."""
    current, generation = _read_current(store)
    _check_expected(generation, expected_generation)
    if current is None or current.candidate is None:
        raise LookupError("no candidate to abort: production has no canary or shadow")
    return _write(store, replace(current, candidate=None), generation)
