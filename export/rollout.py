"""Automatic promotion after training: the published bundle becomes production only if production
has not moved since the job started and the bundle is not worse than it.

The train job reads the pointer's generation before training (`read_production`), not at publish
time: a rollback or promotion made by a person during the run is a decision about production that
the job knew nothing of, and reading at publish time would only see the rolled-back pointer and
overwrite it. A changed generation therefore means "publish, do not promote, say so". The pointer
write itself is a compare-and-set on the generation read at publish time as well, so a change in
the seconds between the gate and the write also wins over the job.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, field
from typing import Any

from export.promotion_gate import PromotionVerdict, Tolerance, check_promotion
from export.publish import (
    IncompleteVersion,
    promote,
    read_pointer_with_generation,
)
from export.store import PreconditionFailed, Store

log = logging.getLogger("export.rollout")


@dataclass(frozen=True)
class ProductionSnapshot:
    """Production as the job saw it: its version (None: none yet) and the pointer's generation."""

    version: str | None
    generation: int


@dataclass
class RolloutDecision:
    version: str
    promoted: bool
    reasons: list[str] = field(default_factory=list)
    verdict: dict[str, Any] | None = None  # the promotion gate's, when it ran
    pointer: dict[str, Any] | None = None  # the new production pointer, when promoted

    def summary(self) -> dict[str, Any]:
        """Keys for the train job's summary: `rollout` always, `production` only if promoted."""
        out: dict[str, Any] = {"rollout": asdict(self)}
        if self.promoted:
            out["production"] = self.pointer
        return out


def read_production(store: Store) -> ProductionSnapshot:
    pointer, generation = read_pointer_with_generation(store)
    return ProductionSnapshot(pointer["version"] if pointer else None, generation)


def _manifest(store: Store, version: str) -> dict[str, Any]:
    return json.loads(store.read_bytes(f"models/{version}/manifest.json"))


def gate_against_production(
    store: Store, version: str, production_version: str | None, tolerance: Tolerance | None = None
) -> PromotionVerdict:
    """The promotion gate for a published `version` against the one production names."""
    candidate = _manifest(store, version)
    production = None
    if production_version is not None:
        try:
            production = _manifest(store, production_version)
        except Exception as e:  # a production bundle we cannot read is no basis for replacing it
            return PromotionVerdict(
                promote=False,
                candidate_version=version,
                production_version=production_version,
                reasons=[f"cannot read production's manifest: {e}"],
            )
    return check_promotion(candidate, production, tolerance)


def promote_if_not_worse(
    store: Store,
    version: str,
    expected: ProductionSnapshot | None = None,
    tolerance: Tolerance | None = None,
) -> RolloutDecision:
    """Promote the published `version` if production is still `expected` (None: whatever it is
    now) and the promotion gate passes; otherwise leave production alone and say why."""
    decision = RolloutDecision(version=version, promoted=False)
    now = read_production(store)
    if expected is not None and expected.generation != now.generation:
        decision.reasons.append(
            f"production changed during the run (was {expected.version}, now {now.version}): "
            f"published {version} without promoting it; promote it by hand if it should serve"
        )
        return _logged(decision)
    verdict = gate_against_production(store, version, now.version, tolerance)
    decision.verdict = verdict.to_dict()
    decision.reasons.extend(verdict.reasons)
    if not verdict.promote:
        return _logged(decision)
    try:
        decision.pointer = promote(store, version, expected_generation=now.generation)
    except (PreconditionFailed, IncompleteVersion) as e:
        decision.reasons.append(f"not promoted: {e}")
        return _logged(decision)
    decision.promoted = True
    return _logged(decision)


def _logged(decision: RolloutDecision) -> RolloutDecision:
    if decision.promoted:
        log.info("promoted %s to production (%s)", decision.version, "; ".join(decision.reasons))
    else:
        log.warning("%s published, NOT promoted: %s", decision.version, "; ".join(decision.reasons))
    return decision
