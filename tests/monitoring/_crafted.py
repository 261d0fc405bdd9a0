"""A crafted artifact store for the monitoring tests (production pointer, manifest and
baseline.json, no model); the crafted rows and baseline come from testing/crafted_rows.py."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from testing.crafted_rows import BASELINE, DAY, VERSION_A, VERSION_B, make_rows

__all__ = ["BASELINE", "DAY", "VERSION_A", "VERSION_B", "make_rows", "write_store"]


def write_store(
    root: Path, version: str = VERSION_A, baseline: dict[str, Any] | None = None
) -> Path:
    """A minimal artifact store: production pointer, manifest and baseline.json (no model)."""
    bundle = root / "models" / version
    bundle.mkdir(parents=True, exist_ok=True)
    (bundle / "baseline.json").write_text(json.dumps(baseline or BASELINE))
    manifest = {
        "version": version,
        "created_at": "2024-01-01T00:00:00Z",
        "baseline_file": "baseline.json",
    }
    (bundle / "manifest.json").write_text(json.dumps(manifest))
    pointer = {"version": version, "promoted_at": "2024-01-01T00:00:00Z", "previous": None}
    (root / "models" / "production.json").write_text(json.dumps(pointer))
    return root
