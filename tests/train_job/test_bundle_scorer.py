"""The evaluation scorer runs each distinct token sequence through the model once: a case change
an uncased tokenizer does not see, or a title repeated across sets, costs no second inference,
and gets the answer a fresh scorer gives it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from train_job.trust_eval import BundleScorer

TEXTS = [
    "Vaccines contain microchips that track you, doctors admit",
    "VACCINES CONTAIN MICROCHIPS THAT TRACK YOU, DOCTORS ADMIT",
    "The health ministry reported 1,204 new cases on Tuesday.",
    "the health ministry reported 1,204 new cases on tuesday.",
    "Vaccines contain microchips that track you, doctors admit",
    "",
]


class _CountingSession:
    """The onnxruntime session, counting the rows it is asked to run."""

    def __init__(self, session: Any) -> None:
        self._session = session
        self.rows = 0

    def run(self, names: Any, feed: dict[str, np.ndarray]) -> Any:
        self.rows += len(feed["input_ids"])
        return self._session.run(names, feed)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._session, name)


def test_each_distinct_token_sequence_is_run_once(tiny_bundle: Path) -> None:
    scorer = BundleScorer(tiny_bundle)
    counting = scorer.session = _CountingSession(scorer.session)
    distinct = {tuple(e.ids) for e in scorer.tokenizer.encode_batch(TEXTS)}
    assert len(distinct) < len(TEXTS)  # the case changes and the repeat share their ids

    logits, ood = scorer.logits_and_ood(TEXTS)
    assert counting.rows == len(distinct)
    again_logits, again_ood = scorer.logits_and_ood(list(reversed(TEXTS)))
    assert counting.rows == len(distinct)  # nothing new: no inference
    np.testing.assert_array_equal(again_logits, logits[::-1])
    np.testing.assert_array_equal(again_ood, ood[::-1])


def test_remembered_answers_are_the_ones_a_fresh_scorer_gives(tiny_bundle: Path) -> None:
    remembered = BundleScorer(tiny_bundle)
    remembered.logits_and_ood(TEXTS[:3])
    logits, ood = remembered.logits_and_ood(TEXTS)
    # Dynamic int8 quantizes activations with one scale per batch, so the company a text is
    # batched with moves its logits: by up to about 1e-3 on this tiny model (the tolerance), far
    # more on a trained one (reports/batch_company.md).
    for i, text in enumerate(TEXTS):  # one text at a time: no batch, no padding
        alone_logits, alone_ood = BundleScorer(tiny_bundle).logits_and_ood([text])
        np.testing.assert_allclose(logits[i], alone_logits[0], atol=5e-3)
        np.testing.assert_allclose(ood[i], alone_ood[0], rtol=1e-2)
    margins = logits[:, 1] - logits[:, 0]
    assert np.ptp(margins) > 0.05, margins  # texts mixed up would fail the comparison above
    p_fake, labels, _ = remembered.predict(TEXTS)
    assert p_fake.shape == labels.shape == (len(TEXTS),)


def test_no_texts_give_empty_answers(tiny_bundle: Path) -> None:
    logits, ood = BundleScorer(tiny_bundle).logits_and_ood([])
    assert logits.shape == (0, 2) and ood.shape == (0,)
