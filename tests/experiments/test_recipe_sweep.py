"""experiments/recipe_sweep.py: chooses on validation only, over whole seeds, keeps its deadline."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from experiments.recipe_sweep import Job, final_val_macro_f1, rank_variants, run_jobs


def _results(best: float, averaged: dict | None = None) -> dict:
    return {"train": {"best_val_macro_f1": best, "averaged": averaged}}


def test_the_handed_on_model_is_scored_the_average_only_when_kept() -> None:
    assert final_val_macro_f1(_results(0.97)) == 0.97
    kept = {"epochs": 4, "val_macro_f1": 0.975, "kept": True}
    assert final_val_macro_f1(_results(0.97, kept)) == 0.975
    dropped = {"epochs": 4, "val_macro_f1": 0.96, "kept": False}
    assert final_val_macro_f1(_results(0.97, dropped)) == 0.97


def test_ranking_uses_the_median_and_drops_variants_missing_a_seed() -> None:
    seeds = [42, 43, 44]
    scores = {
        "current": {42: 0.970, 43: 0.974, 44: 0.975},  # median 0.974
        "lucky": {42: 0.990, 43: 0.960, 44: 0.961},  # best single seed, median 0.961
        "steady": {42: 0.975, 43: 0.976, 44: 0.950},  # median 0.975
        "unfinished": {42: 0.999, 43: 0.999},  # a seed was stopped at the deadline
    }
    ranking = rank_variants(scores, seeds, list(scores))
    assert [name for name, _ in ranking] == ["steady", "current", "lucky"]
    assert ranking[0][1] == 0.975


def test_a_tie_keeps_the_variant_listed_first() -> None:
    scores = {"current": {1: 0.97}, "other": {1: 0.97}}
    assert rank_variants(scores, [1], ["current", "other"])[0][0] == "current"
    assert rank_variants(scores, [1], ["other", "current"])[0][0] == "other"


def _job(tmp_path: Path, name: str, seconds: float) -> Job:
    marker = tmp_path / f"{name}.done"
    code = f"import time, pathlib; time.sleep({seconds}); pathlib.Path({str(marker)!r}).touch()"
    return Job(name, 0, [sys.executable, "-c", code], marker, tmp_path / f"{name}.log")


def test_a_freed_slot_takes_the_next_job(tmp_path) -> None:
    first, second, third = (_job(tmp_path, n, 0) for n in ("first", "second", "third"))
    run_jobs([first, second, third], parallel=2, deadline=time.time() + 60, env={})
    assert all(j.results.is_file() for j in (first, second, third))


def test_jobs_running_at_the_deadline_are_stopped_and_later_ones_never_start(tmp_path) -> None:
    slow, queued = _job(tmp_path, "slow", 30), _job(tmp_path, "queued", 0)
    started = time.time()
    run_jobs([slow, queued], parallel=1, deadline=started + 2, env={})
    assert time.time() - started < 10
    assert not slow.results.is_file()  # killed, so its results file was never written
    assert not queued.log.exists()  # never started
