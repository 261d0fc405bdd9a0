"""The job promotes its bundle only if production stayed where the run found it."""

from __future__ import annotations

import shutil
from pathlib import Path

import train_job.pipeline as pipeline
from artifact_store import LocalStore
from export.publish import promote, read_pointer
from tests.conftest import tiny_config


def test_first_run_is_promoted_with_the_gate_verdict(tiny_run: dict) -> None:
    assert tiny_run["rollout"]["promoted"] is True
    assert tiny_run["production"]["version"] == tiny_run["version"]


def test_production_moved_during_the_run_is_left_alone(
    tiny_base_model: Path, tiny_store: Path, tmp_path: Path, monkeypatch
) -> None:
    store_dir = tmp_path / "store"
    shutil.copytree(tiny_store, store_dir)
    store = LocalStore(store_dir)
    before = read_pointer(store)["version"]
    real_train = pipeline.train

    def train_while_a_person_rolls_back(*args, **kwargs):
        # A rollback (here: promoting the same version again) moves the pointer's generation.
        promote(store, before)
        return real_train(*args, **kwargs)

    monkeypatch.setattr(pipeline, "train", train_while_a_person_rolls_back)
    cfg = tiny_config(tiny_base_model, tmp_path, store=str(store_dir), epochs=1)
    summary = pipeline.run(cfg)
    assert summary["rollout"]["promoted"] is False
    assert "production changed during the run" in summary["rollout"]["reasons"][0]
    assert "production" not in summary
    assert read_pointer(store)["version"] == before  # the person's decision stands
    assert store.exists(f"models/{summary['version']}/manifest.json")  # published all the same
