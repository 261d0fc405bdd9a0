"""The production pointer: models/production.json in the artifact store, naming the bundle
version that serves.

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
SAFE_VERSION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


class PointerError(ValueError):
    """The pointer is not JSON or names no usable version."""


@dataclass(frozen=True)
class ProductionPointer:
    version: str
    promoted_at: str | None = None
    previous: str | None = None
    history: tuple[str, ...] = field(default=())  # older production versions, oldest first

    def as_dict(self) -> dict[str, Any]:
        """The JSON object export writes (export/production_pointer.schema.json)."""
        return {
            "version": self.version,
            "promoted_at": self.promoted_at,
            "previous": self.previous,
            "history": list(self.history),
        }


def parse_pointer(raw: bytes | str, where: str = POINTER_KEY) -> ProductionPointer:
    """Parse a pointer's bytes; `where` names it in the error. Raises PointerError."""
    try:
        data = json.loads(raw)
    except ValueError as exc:
        raise PointerError(f"{where} is not valid JSON: {exc}") from None
    version = data.get("version") if isinstance(data, dict) else None
    if not isinstance(version, str) or not SAFE_VERSION.match(version):
        raise PointerError(f"{where} has no valid 'version' (got {version!r})")
    history = data.get("history") or []
    if not isinstance(history, list) or not all(isinstance(v, str) for v in history):
        raise PointerError(f"{where} has a 'history' that is not a list of versions")
    return ProductionPointer(
        version=version,
        promoted_at=data.get("promoted_at"),
        previous=data.get("previous"),
        history=tuple(history),
    )
