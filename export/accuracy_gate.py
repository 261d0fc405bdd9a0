"""The accuracy gate: the int8 model may only be published if it is as good as fp32."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np


@dataclass
class GateResult:
    passed: bool
    accuracy_fp32: float
    accuracy_int8: float
    drop_points: float  # fp32 minus int8 accuracy, in percentage points
    agreement: float  # share of texts where int8 and fp32 pick the same class
    max_drop_points: float
    min_agreement: float
    reasons: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


def check_gate(
    labels: np.ndarray,
    fp32_logits: np.ndarray,
    int8_logits: np.ndarray,
    max_drop_points: float = 0.5,
    min_agreement: float = 0.99,
) -> GateResult:
    fp32_pred, int8_pred = fp32_logits.argmax(1), int8_logits.argmax(1)
    acc_fp32 = float((fp32_pred == labels).mean())
    acc_int8 = float((int8_pred == labels).mean())
    drop = (acc_fp32 - acc_int8) * 100
    agreement = float((fp32_pred == int8_pred).mean())
    reasons = []
    if drop > max_drop_points:
        reasons.append(f"int8 loses {drop:.2f} accuracy points (> {max_drop_points})")
    if agreement < min_agreement:
        reasons.append(f"int8/fp32 agreement {agreement:.4f} (< {min_agreement})")
    return GateResult(
        passed=not reasons,
        accuracy_fp32=acc_fp32,
        accuracy_int8=acc_int8,
        drop_points=drop,
        agreement=agreement,
        max_drop_points=max_drop_points,
        min_agreement=min_agreement,
        reasons=reasons,
    )
