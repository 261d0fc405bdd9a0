"""The accuracy gate: int8 may lose at most N accuracy points and must agree with fp32."""

from __future__ import annotations

import numpy as np

from export.accuracy_gate import check_gate


def _logits(pred: list[int]) -> np.ndarray:
    return np.array([[1.0, 0.0] if p == 0 else [0.0, 1.0] for p in pred])


LABELS = np.array([0] * 100 + [1] * 100)


def test_identical_models_pass() -> None:
    verdict = check_gate(LABELS, _logits(list(LABELS)), _logits(list(LABELS)))
    assert verdict.passed and verdict.agreement == 1.0 and verdict.drop_points == 0.0


def test_accuracy_drop_over_limit_fails() -> None:
    int8 = list(LABELS)
    int8[0] = int8[1] = 1  # 2 of 200 wrong: 1 point lost, agreement 0.99
    verdict = check_gate(LABELS, _logits(list(LABELS)), _logits(int8), max_drop_points=0.5)
    assert not verdict.passed
    assert abs(verdict.drop_points - 1.0) < 1e-9
    assert any("accuracy points" in r for r in verdict.reasons)


def test_disagreement_fails_even_without_accuracy_loss() -> None:
    fp32 = list(LABELS)
    int8 = list(LABELS)
    for i in range(2):  # int8 fixes two and breaks two: same accuracy, 98% agreement
        fp32[i] = 1
        int8[100 + i] = 0
    verdict = check_gate(LABELS, _logits(fp32), _logits(int8), min_agreement=0.99)
    assert verdict.drop_points == 0.0
    assert not verdict.passed and any("agreement" in r for r in verdict.reasons)
