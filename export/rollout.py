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

import logging
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from artifact_store import PreconditionFailed, Store
from export.promotion_gate import Tolerance, gate_against_production
from export.publish import (
    IncompleteVersion,
    PromotionRefused,
    promote_gated,
    read_pointer_with_generation,
)

if TYPE_CHECKING:
    from export.rescore import LabelledPosts

__all__ = [
    "ProductionSnapshot",
    "RolloutDecision",
    "gate_against_production",
    "promote_if_not_worse",
    "read_production",
]

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


def promote_if_not_worse(
    store: Store,
    version: str,
    expected: ProductionSnapshot | None = None,
    tolerance: Tolerance | None = None,
    rescore: LabelledPosts | None = None,
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
    try:
        decision.pointer, verdict = promote_gated(
            store, version, expected_generation=now.generation, tolerance=tolerance, rescore=rescore
        )
    except PromotionRefused as e:
        decision.verdict = e.verdict.to_dict()
        decision.reasons.extend(e.verdict.reasons)
        return _logged(decision)
    except (PreconditionFailed, IncompleteVersion) as e:
        decision.reasons.append(f"not promoted: {e}")
        return _logged(decision)
    if verdict is None:
        decision.reasons.append(f"{version} already is production")
    else:
        decision.verdict = verdict.to_dict()
        decision.reasons.extend(verdict.reasons)
    decision.promoted = True
    return _logged(decision)


def _logged(decision: RolloutDecision) -> RolloutDecision:
    if decision.promoted:
        log.info("promoted %s to production (%s)", decision.version, "; ".join(decision.reasons))
    else:
        log.warning("%s published, NOT promoted: %s", decision.version, "; ".join(decision.reasons))
    return decision
