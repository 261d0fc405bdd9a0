"""The production pointer: models/production.json in the artifact store, naming the bundle
version that serves and, optionally, a candidate version tried beside it (a canary answering a
share of the requests, or a shadow scoring the same texts without answering).

export/ writes it and owns its contract (export/production_pointer.schema.json); export, the
prediction function and monitoring all read it with `parse_pointer`, so there is one reader.
The reader checks what every reader relies on, a version that is safe as a path component (the
bundle is <folder of the pointer>/<version>/); the schema test checks the rest of the contract.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

POINTER_KEY = "models/production.json"  # relative to the artifact store's root
# \Z, not $: `$` also matches before a trailing newline, which would let "v1\n" through as a
# path component. Callers use fullmatch all the same.
SAFE_VERSION = re.compile(r"\A[A-Za-z0-9][A-Za-z0-9._-]*\Z")
CANARY = "canary"
SHADOW = "shadow"
MODES = (CANARY, SHADOW)


class PointerError(ValueError):
    """The pointer is not JSON or names no usable version."""


@dataclass(frozen=True)
class Candidate:
    """A version tried beside production: `canary` answers `fraction` of the requests, `shadow`
    scores every request's texts off the request path and only logs its answers."""

    version: str
    mode: str
    fraction: float | None = None  # canary only: the share of requests it answers, in (0, 1)
    started_at: str | None = None

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"version": self.version, "mode": self.mode}
        if self.mode == CANARY:
            out["fraction"] = self.fraction
        out["started_at"] = self.started_at
        return out


@dataclass(frozen=True)
class ProductionPointer:
    version: str
    promoted_at: str | None = None
    previous: str | None = None
    history: tuple[str, ...] = field(default=())  # older production versions, oldest first
    candidate: Candidate | None = None

    def as_dict(self) -> dict[str, Any]:
        """The JSON object export writes (export/production_pointer.schema.json). Without a
        candidate the key is left out, so such a pointer is byte for byte what older releases
        wrote and read."""
        out: dict[str, Any] = {
            "version": self.version,
            "promoted_at": self.promoted_at,
            "previous": self.previous,
            "history": list(self.history),
        }
        if self.candidate is not None:
            out["candidate"] = self.candidate.as_dict()
        return out


def parse_pointer(raw: bytes | str, where: str = POINTER_KEY) -> ProductionPointer:
    """Parse a pointer's bytes; `where` names it in the error. Raises PointerError."""
    try:
        data = json.loads(raw)
    except ValueError as exc:
        raise PointerError(f"{where} is not valid JSON: {exc}") from None
    version = data.get("version") if isinstance(data, dict) else None
    if not isinstance(version, str) or not SAFE_VERSION.fullmatch(version):
        raise PointerError(f"{where} has no valid 'version' (got {version!r})")
    history = data.get("history") or []
    if not isinstance(history, list) or not all(isinstance(v, str) for v in history):
        raise PointerError(f"{where} has a 'history' that is not a list of versions")
    return ProductionPointer(
        version=version,
        promoted_at=data.get("promoted_at"),
        previous=data.get("previous"),
        history=tuple(history),
        candidate=_parse_candidate(data.get("candidate"), where),
    )


def _parse_candidate(data: Any, where: str) -> Candidate | None:
    if data is None:
        return None
    version = data.get("version") if isinstance(data, dict) else None
    if not isinstance(version, str) or not SAFE_VERSION.fullmatch(version):
        raise PointerError(f"{where} has a 'candidate' with no valid 'version' (got {version!r})")
    mode = data.get("mode")
    if mode not in MODES:
        raise PointerError(f"{where} has a 'candidate' whose mode {mode!r} is not one of {MODES}")
    fraction = data.get("fraction")
    if mode == CANARY:
        valid = isinstance(fraction, int | float) and not isinstance(fraction, bool)
        if not valid or not 0 < fraction < 1:
            raise PointerError(f"{where} has a canary 'fraction' not in (0, 1): {fraction!r}")
        fraction = float(fraction)
    else:
        fraction = None
    return Candidate(version, mode, fraction, data.get("started_at"))
