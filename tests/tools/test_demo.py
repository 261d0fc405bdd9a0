"""`make run`'s demo marks each example's answer against the label a fact-checker gives it, and
explains a true statement called fake with the bundle's own cross-source numbers."""

from __future__ import annotations

from tools.demo import EXAMPLES, answer_lines, limitation_note

TRUST = {
    "cross_source": {
        "file": "coaid_2020-05_titles.csv",
        "real": 1756,
        "real_called_fake_share": 0.784,
        "real_called_fake_in_domain_share": 0.42,
    }
}


def answers(labels: list[str]) -> list[dict]:
    return [{"label": label, "score": 0.9, "in_domain": True} for label in labels]


def test_each_answer_is_marked_against_its_expected_label() -> None:
    expected = [label for _, label in EXAMPLES]
    flipped = ["fake" if label == "real" else "real" for label in expected]
    assert all("right" in line for line in answer_lines(answers(expected)))
    assert all("WRONG" in line for line in answer_lines(answers(flipped)))


def test_a_true_example_called_fake_is_explained_with_the_bundles_numbers() -> None:
    labels = [label for _, label in EXAMPLES]
    assert limitation_note(answers(labels), TRUST) is None  # all right: nothing to explain
    first_real = labels.index("real")
    labels[first_real] = "fake"
    note = limitation_note(answers(labels), TRUST)
    assert note is not None
    assert "78%" in note and "1756" in note and "42%" in note
    assert limitation_note(answers(labels), None) is None  # no trust report: no numbers to give
