"""The promotion gate: a new bundle replaces production only if it is not worse.

Compared on two numbers every bundle's manifest carries: weighted F1 of the int8 model on the
official test split (`metrics.int8.test_official.weighted_f1`) and ROC-AUC on titles from other
sources (`trust.cross_source.roc_auc`). The candidate may be below production by at most a
tolerance on each; more, a number missing on either side, or numbers measured on different sets
refuse it: a comparison that cannot be made is no evidence that the candidate is not worse, so
only an operator's explicit override (export/publish.py) lets it through.
Every pointer move that makes a version production runs this gate (export/publish.py, `promote`);
a rollback returns to a version that served before and is the one path that skips it.
The accuracy gate (export/accuracy_gate.py) is another question: whether int8 may stand in for fp32.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from artifact_store import Store
    from export.rescore import LabelledPosts

# Defaults sized by the seed-to-seed spread of one recipe (docs/results.md, seeds 42-44): official
# test wF1 0.9566-0.9622, CoAID ROC-AUC 0.810-0.880. Tighter would refuse retrains that are only
# a different draw of the same recipe; looser would let a real regression through.
DEFAULT_MAX_F1_DROP = 0.01
DEFAULT_MAX_AUC_DROP = 0.05


@dataclass(frozen=True)
class Tolerance:
    max_f1_drop: float = DEFAULT_MAX_F1_DROP
    max_auc_drop: float = DEFAULT_MAX_AUC_DROP


@dataclass(frozen=True)
class _Criterion:
    name: str
    path: tuple[str, ...]  # where the number sits in the manifest
    same_set: tuple[tuple[str, ...], ...]  # what must match for the numbers to be comparable
    tolerance: str  # the Tolerance field that bounds its drop


CRITERIA = (
    _Criterion(
        "official test weighted F1",
        ("metrics", "int8", "test_official", "weighted_f1"),
        (("metrics", "int8", "test_official", "n"),),
        "max_f1_drop",
    ),
    _Criterion(
        "cross-source ROC-AUC",
        ("trust", "cross_source", "roc_auc"),
        (("trust", "cross_source", "file"), ("trust", "cross_source", "n")),
        "max_auc_drop",
    ),
)


@dataclass
class Comparison:
    metric: str
    candidate: float | None
    production: float | None
    tolerance: float
    passed: bool


@dataclass
class PromotionVerdict:
    promote: bool
    candidate_version: str
    production_version: str | None
    comparisons: list[Comparison] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)  # why it was refused, or what was not compared

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _get(manifest: dict[str, Any], path: tuple[str, ...]) -> Any:
    value: Any = manifest
    for key in path:
        if not isinstance(value, dict):
            return None
        value = value.get(key)
    return value


def _number(manifest: dict[str, Any], path: tuple[str, ...]) -> float | None:
    value = _get(manifest, path)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)


def check_promotion(
    candidate: dict[str, Any],
    production: dict[str, Any] | None,
    tolerance: Tolerance | None = None,
) -> PromotionVerdict:
    """Compare the candidate's manifest with production's (None: there is no production yet)."""
    tolerance = tolerance or Tolerance()
    verdict = PromotionVerdict(
        promote=True,
        candidate_version=str(candidate.get("version")),
        production_version=str(production["version"]) if production else None,
    )
    if production is None:
        verdict.reasons.append("no production bundle yet: nothing to compare with")
        return verdict
    for criterion in CRITERIA:
        ours, theirs = _number(candidate, criterion.path), _number(production, criterion.path)
        drop = float(getattr(tolerance, criterion.tolerance))
        passed = True
        where = ".".join(criterion.path)
        if theirs is None:
            # An older production bundle without the number: nothing shows the candidate is not
            # worse on it, so the operator decides (an override), not the absence of evidence.
            passed = False
            verdict.reasons.append(
                f"production has no {where}: {criterion.name} cannot be compared; promote with "
                "an override if the candidate should serve"
            )
        elif ours is None:
            passed = False
            verdict.reasons.append(
                f"the candidate has no {where} (production: {theirs:.4f}): it cannot be shown "
                "not to be worse"
            )
        elif any(_get(candidate, p) != _get(production, p) for p in criterion.same_set):
            passed = False
            sets = ", ".join(
                f"{p[-1]} {_get(candidate, p)!r} vs {_get(production, p)!r}"
                for p in criterion.same_set
            )
            verdict.reasons.append(
                f"{criterion.name} measured on different sets ({sets}): not comparable, a person "
                "has to decide"
            )
        elif ours < theirs - drop:
            passed = False
            verdict.reasons.append(
                f"{criterion.name} {ours:.4f} is {theirs - ours:.4f} below production's "
                f"{theirs:.4f} (tolerance {drop})"
            )
        verdict.comparisons.append(Comparison(criterion.name, ours, theirs, drop, passed))
    verdict.promote = all(c.passed for c in verdict.comparisons)
    return verdict


def read_manifest(store: Store, version: str) -> dict[str, Any]:
    return json.loads(store.read_bytes(f"models/{version}/manifest.json"))


def gate_against_production(
    store: Store,
    version: str,
    production_version: str | None,
    tolerance: Tolerance | None = None,
    rescore: LabelledPosts | None = None,
) -> PromotionVerdict:
    """The promotion gate for a published `version` against the one production names. With
    `rescore`, both bundles' F1 is measured on those posts rather than read from the manifests
    (export/rescore.py)."""
    candidate = read_manifest(store, version)
    production = None
    if production_version is not None:
        try:
            production = read_manifest(store, production_version)
        except Exception as e:  # a production bundle we cannot read is no basis for replacing it
            return _refused(version, production_version, f"cannot read production's manifest: {e}")
    notes = []
    if rescore is not None and production is not None:
        from export.rescore import bundle_f1, rescored

        try:
            ours = bundle_f1(store, version, rescore)
            theirs = bundle_f1(store, production_version, rescore)  # type: ignore[arg-type]
        except Exception as e:  # a bundle that cannot be scored cannot be shown not to be worse
            return _refused(version, production_version, f"cannot rescore the bundles: {e}")
        candidate, production = (
            rescored(candidate, ours, rescore),
            rescored(production, theirs, rescore),
        )
        notes.append(
            f"weighted F1 measured here on {rescore.source} ({len(rescore.texts)} posts): "
            f"{ours:.4f} against production's {theirs:.4f}"
        )
    verdict = check_promotion(candidate, production, tolerance)
    verdict.reasons.extend(notes)
    return verdict


def _refused(version: str, production_version: str | None, reason: str) -> PromotionVerdict:
    return PromotionVerdict(
        promote=False,
        candidate_version=version,
        production_version=production_version,
        reasons=[reason],
    )
