"""Data and base model from gs:// (fake-gcs-server, real google-cloud-storage client)."""

from __future__ import annotations

from pathlib import Path

from artifact_store import open_store
from tests.train_job.test_data import FIXTURES
from train_job.config import TrainConfig
from train_job.data import load_dataset
from train_job.model import load_classifier, resolve_base_model


def test_dataset_from_gcs(gcs_bucket: str) -> None:
    store = open_store(f"gs://{gcs_bucket}/datasets")
    store.upload_file(FIXTURES / "welfake/WELFake_Dataset.csv", "welfake.csv")
    cfg = TrainConfig(
        data=f"gs://{gcs_bucket}/datasets/welfake.csv",
        text_columns="title,text",
        fake_values="1",
        real_values="0",
    )
    ds = load_dataset(cfg)
    assert sum(len(f) for f in ds.splits.values()) == 40
    local = load_dataset(
        TrainConfig(**{**cfg.to_dict(), "data": str(FIXTURES / "welfake/WELFake_Dataset.csv")})
    )
    assert (
        ds.fingerprint["files_sha256"]["welfake.csv"]
        == local.fingerprint["files_sha256"]["WELFake_Dataset.csv"]
    )


def test_base_model_from_gcs(gcs_bucket: str, tiny_base_model: Path, tmp_path: Path) -> None:
    store = open_store(f"gs://{gcs_bucket}/models/tiny")
    for file in tiny_base_model.iterdir():
        store.upload_file(file, file.name)
    path = resolve_base_model(f"gs://{gcs_bucket}/models/tiny", tmp_path)
    model = load_classifier(path)
    assert model.config.hidden_size == 32 and model.config.id2label[1] == "fake"
