"""Training baselines: the bundle's baseline.json (export/manifest.schema.json#/$defs/baseline)
loaded into the baselines / baseline_bins tables, so PSI is computed against the distribution
of the very model version that served the traffic."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from artifact_store import join_uri, open_store
from monitoring._engines import DuckDBEngine, Engine
from production_pointer import POINTER_KEY, parse_pointer

DEFAULT_STORE = "local/store"
# baseline.json key pairs -> the `distribution` value the views use.
DISTRIBUTIONS = {
    "score": ("score_bins", "score_hist"),
    "token_length": ("token_length_bins", "token_length_hist"),
}


def production_bundle(store: str) -> str:
    """The production bundle's location: <store>/models/<version>, the version the store's
    production pointer (models/production.json) names."""
    raw = open_store(store).read_bytes(POINTER_KEY)
    pointer = parse_pointer(raw, f"{store.rstrip('/')}/{POINTER_KEY}")
    return join_uri(store, "models", pointer.version)


@dataclass(frozen=True)
class Baseline:
    model_version: str
    created_at: str
    raw: dict[str, Any]

    def table_row(self) -> dict[str, Any]:
        ratio = self.raw.get("label_ratio") or {}
        return {
            "model_version": self.model_version,
            "created_at": self.created_at,
            "loaded_at": datetime.now(UTC).isoformat(),
            "n": self.raw.get("n"),
            "fake_ratio": ratio.get("fake"),
            "truncation_rate": self.raw.get("truncation_rate"),
            "baseline_json": json.dumps(self.raw, sort_keys=True),
        }

    def bin_rows(self) -> list[dict[str, Any]]:
        rows = []
        for distribution, (edges_key, hist_key) in DISTRIBUTIONS.items():
            edges, hist = self.raw[edges_key], self.raw[hist_key]
            if len(edges) != len(hist) + 1:
                raise ValueError(
                    f"baseline of {self.model_version}: {edges_key} needs len({hist_key}) + 1 "
                    f"edges, got {len(edges)} and {len(hist)}"
                )
            for i, share in enumerate(hist):
                rows.append(
                    {
                        "model_version": self.model_version,
                        "distribution": distribution,
                        "bin_index": i,
                        "bin_lower": float(edges[i]),
                        "bin_upper": float(edges[i + 1]),
                        "upper_inclusive": i == len(hist) - 1,
                        "proportion": float(share),
                    }
                )
        return rows


def read_bundle_baseline(bundle: str) -> Baseline:
    """The baseline of the bundle at `bundle` (a folder or gs:// prefix)."""
    files = open_store(bundle)
    manifest = json.loads(files.read_bytes("manifest.json"))
    raw = json.loads(files.read_bytes(manifest.get("baseline_file") or "baseline.json"))
    return Baseline(manifest["version"], manifest["created_at"], raw)


def load_baseline(engine: Engine, baseline: Baseline, replace: bool = False) -> bool:
    """Insert the baseline unless that version is there already; True when rows were added.
    Baselines are immutable per version, so 'already there' means done (BigQuery cannot DELETE
    rows still in the streaming buffer; `replace` is for the local DuckDB file only)."""
    if engine.has_baseline(baseline.model_version) and not (
        replace and isinstance(engine, DuckDBEngine)
    ):
        return False
    if isinstance(engine, DuckDBEngine):  # also clears bins of an interrupted earlier load
        engine.delete_baseline(baseline.model_version)
    bins = baseline.bin_rows()
    engine.insert(
        "baseline_bins",
        bins,
        row_ids=[f"{b['model_version']}-{b['distribution']}-{b['bin_index']}" for b in bins],
    )
    # The summary row last: has_baseline() looks at it, so a half-done load is redone.
    engine.insert("baselines", [baseline.table_row()], row_ids=[baseline.model_version])
    return True
