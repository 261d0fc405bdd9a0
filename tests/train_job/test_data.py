"""Loading, column mapping, validation errors, de-duplication and splitting."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import DATA_DIR
from train_job.config import TrainConfig
from train_job.data import DataError, load_dataset, normalise

FIXTURES = Path(__file__).parent / "fixtures"


def _cfg(**kw) -> TrainConfig:
    return TrainConfig(**kw)


def test_constraint_official_split_with_dedup() -> None:
    ds = load_dataset(_cfg())
    fp = ds.fingerprint
    # The README's counts: 6,420 / 2,140 / 2,140 rows, 52.3% real.
    assert fp["rows"]["train"] == 6420
    assert len(ds.test_official) == 2140
    assert fp["label_balance"]["train"] == {"real": 3360, "fake": 3060}
    # About 60 test posts have a near twin in train (README); some more twin a val post.
    assert 55 <= fp["dedup_removed"]["test"] <= 90
    assert fp["rows"]["test"] == 2140 - fp["dedup_removed"]["test"]
    train_keys = set(ds.splits["train"]["text"].map(normalise))
    assert not set(ds.splits["test"]["text"].map(normalise)) & train_keys
    assert fp["files_sha256"]["Constraint_Train.csv"].startswith("441f3985bb76")
    assert set(ds.splits["train"]["label"].unique()) == {0, 1}


def test_no_dedup_keeps_every_row() -> None:
    ds = load_dataset(_cfg(dedup=False))
    assert ds.fingerprint["rows"] == {"train": 6420, "val": 2140, "test": 2140}


def test_welfake_columns_joined_and_numeric_labels_mapped() -> None:
    cfg = _cfg(
        data=str(FIXTURES / "welfake/WELFake_Dataset.csv"),
        text_columns="title,text",
        fake_values="1",
        real_values="0",
        val_fraction=0.25,
        test_fraction=0.25,
    )
    ds = load_dataset(cfg)
    total = sum(len(ds.splits[s]) for s in ("train", "val", "test"))
    assert total == 40
    texts = ds.splits["train"]["text"].tolist() + ds.splits["val"]["text"].tolist()
    assert any(t.startswith("Headline") and "Body of story" in t for t in texts)
    # The row with an empty title keeps its body, without a leading ". ".
    assert all(not t.startswith(".") for t in texts)
    # Stratified: each split keeps both labels; fake rows are those labelled 1.
    for split in ("train", "val", "test"):
        assert set(ds.splits[split]["label"]) == {0, 1}
    fake_texts = ds.splits["train"].query("label == 1")["text"]
    assert fake_texts.str.contains("shocking|Miracle").all()


def test_split_is_seeded() -> None:
    cfg = dict(
        data=str(FIXTURES / "welfake/WELFake_Dataset.csv"),
        text_columns="title,text",
        fake_values="1",
        real_values="0",
    )
    a = load_dataset(_cfg(**cfg, seed=1)).splits["test"]["text"].tolist()
    b = load_dataset(_cfg(**cfg, seed=1)).splits["test"]["text"].tolist()
    c = load_dataset(_cfg(**cfg, seed=2)).splits["test"]["text"].tolist()
    assert a == b and a != c


def test_tsv_by_extension() -> None:
    cfg = _cfg(
        data=str(FIXTURES / "tsv/posts.tsv"),
        text_columns="statement",
        label_column="truth",
        fake_values="false",
        real_values="true",
    )
    ds = load_dataset(cfg)
    assert sum(len(f) for f in ds.splits.values()) == 30
    assert ds.splits["train"]["text"].str.contains(", with a comma").all()


def test_empty_texts_are_dropped_and_counted() -> None:
    ds = load_dataset(_cfg(data=str(FIXTURES / "empty_texts/posts.csv"), val_fraction=0.2))
    assert sum(ds.fingerprint["dropped_no_text"].values()) == 3
    assert sum(len(f) for f in ds.splits.values()) == 27


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"data": "no/such/file.csv"}, "not found"),
        ({"data": "no/such/folder"}, "not found"),
        ({"data": str(FIXTURES / "missing_columns/posts.csv")}, "missing column(s) ['tweet']"),
        (
            {"data": str(FIXTURES / "unknown_labels/posts.csv")},
            "unknown label values {'satire': 6}",
        ),
        ({"data": str(FIXTURES / "empty/posts.csv")}, "has no rows"),
        ({"data": str(DATA_DIR), "fake_values": "fake,real"}, "mean both fake and real"),
        ({"data": str(FIXTURES / "empty")}, "not found"),
    ],
)
def test_bad_datasets_raise_clear_errors(kwargs: dict, message: str) -> None:
    with pytest.raises(DataError) as exc:
        load_dataset(_cfg(**kwargs))
    assert message in str(exc.value)
