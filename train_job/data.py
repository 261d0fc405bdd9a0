"""Data stage: read a labelled CSV/TSV dataset, validate it, split it, de-duplicate across splits.

Every problem with the input raises DataError with a message a person can act on; the CLI turns
it into exit code 2.
"""

from __future__ import annotations

import hashlib
import re
import string
from pathlib import PurePosixPath

import pandas as pd
from sklearn.model_selection import train_test_split

from train_job.config import TrainConfig
from train_job.sources import load_mix
from train_job.tables import SPLITS, DataError, Dataset, read_table


def _split_values(spec: str) -> set[str]:
    return {v.strip().lower() for v in spec.split(",") if v.strip()}


def _to_examples(frame: pd.DataFrame, cfg: TrainConfig, source: str) -> tuple[pd.DataFrame, int]:
    """Map columns to (text, label). Returns the examples and how many rows had no usable text."""
    text_columns = [c.strip() for c in cfg.text_columns.split(",") if c.strip()]
    missing = [c for c in [*text_columns, cfg.label_column] if c not in frame.columns]
    if missing:
        raise DataError(
            f"{source}: missing column(s) {missing}; columns present: {list(frame.columns)}. "
            "Map yours with --text-columns and --label-column."
        )
    if frame.empty:
        raise DataError(f"{source}: the dataset has no rows")

    fake, real = _split_values(cfg.fake_values), _split_values(cfg.real_values)
    if fake & real:
        raise DataError(f"label values mean both fake and real: {sorted(fake & real)}")
    raw_labels = frame[cfg.label_column].astype(str).str.strip().str.lower()
    unknown = raw_labels[~raw_labels.isin(fake | real)]
    if not unknown.empty:
        counts = unknown.value_counts().head(5).to_dict()
        raise DataError(
            f"{source}: {len(unknown)} row(s) have unknown label values {counts}; "
            f"fake = {sorted(fake)}, real = {sorted(real)} (set --fake-values / --real-values)"
        )

    parts = [frame[c].astype(str).str.strip() for c in text_columns]
    text = parts[0]
    for part in parts[1:]:
        # Join with a full stop so a title and a body read as two sentences.
        text = (text + ". " + part).str.strip(". ").where(part != "", text)
    usable = text.str.contains(r"\w", regex=True)
    examples = pd.DataFrame(
        {"text": text[usable].values, "label": raw_labels[usable].isin(fake).astype(int).values}
    )
    return examples, int((~usable).sum())


_PUNCT = re.compile(f"[{re.escape(string.punctuation)}]")
_URL = re.compile(r"https?://\S+|www\.\S+")


def normalise(text: str) -> str:
    """The key for near-duplicates: no links (reposts differ only in their t.co link), lower case,
    no punctuation, single spaces. On CONSTRAINT this finds 63 test posts with a twin in train."""
    return " ".join(_PUNCT.sub("", _URL.sub(" ", text.lower())).split())


def _drop_seen(frame: pd.DataFrame, seen: set[str]) -> tuple[pd.DataFrame, int]:
    keys = frame["text"].map(normalise)
    keep = ~keys.isin(seen)
    return frame[keep].reset_index(drop=True), int((~keep).sum())


def _balance(frame: pd.DataFrame) -> dict[str, int]:
    fake = int(frame["label"].sum())
    return {"real": len(frame) - fake, "fake": fake}


def load_dataset(cfg: TrainConfig) -> Dataset:
    """Read the split files, make the splits the files lack, drop val/test near-duplicates of
    train posts, cap train if asked, and fingerprint what was read. With --sources, the mix
    file's sources instead (train_job/sources.py). Every split keeps each row's `source`."""
    if cfg.sources:
        return load_mix(cfg)
    files = split_files(cfg)
    splits, hashes, dropped_no_text = read_splits(files, cfg)
    make_missing_splits(splits, cfg)
    test_official = splits["test"].copy()
    dedup_removed = drop_near_duplicates(splits) if cfg.dedup else {"val": 0, "test": 0}
    cap_train(splits, cfg)
    for split in SPLITS:
        if splits[split]["label"].nunique() < 2:
            raise DataError(f"the {split} split has only one label; both real and fake are needed")
    fingerprint = {
        "files_sha256": hashes,
        "rows": {s: len(splits[s]) for s in SPLITS},
        "label_balance": {s: _balance(splits[s]) for s in SPLITS},
        "dropped_no_text": dropped_no_text,
        "dedup_removed": dedup_removed,
        "columns": {"text": cfg.text_columns, "label": cfg.label_column},
    }
    fingerprint["sha256"] = hashlib.sha256(
        repr(sorted(hashes.items())).encode() + repr(fingerprint["rows"]).encode()
    ).hexdigest()
    # One dataset is one source, named for its folder or file.
    name = PurePosixPath(cfg.data.rstrip("/")).name.split(".")[0]
    for frame in [*splits.values(), test_official]:
        frame["source"] = name
    return Dataset(splits=splits, fingerprint=fingerprint, test_official=test_official)


def split_files(cfg: TrainConfig) -> dict[str, str]:
    """split -> file: one file is all train; a folder names its train, val and test files."""
    data = cfg.data.rstrip("/")
    if PurePosixPath(data).suffix.lower() in {".csv", ".tsv", ".tab"}:
        return {"train": data}
    files = {"train": f"{data}/{cfg.train_file}"}
    if cfg.val_file:
        files["val"] = f"{data}/{cfg.val_file}"
    if cfg.test_file:
        files["test"] = f"{data}/{cfg.test_file}"
    return files


def read_splits(
    files: dict[str, str], cfg: TrainConfig
) -> tuple[dict[str, pd.DataFrame], dict[str, str], dict[str, int]]:
    """(split -> examples, file name -> sha256, split -> rows dropped for having no text)."""
    splits: dict[str, pd.DataFrame] = {}
    hashes: dict[str, str] = {}
    dropped_no_text: dict[str, int] = {}
    for split, uri in files.items():
        frame, digest = read_table(uri)
        hashes[PurePosixPath(uri).name] = digest
        splits[split], dropped_no_text[split] = _to_examples(frame, cfg, uri)
        if splits[split].empty:
            raise DataError(f"{uri}: no row has a usable text")
    return splits, hashes, dropped_no_text


def make_missing_splits(splits: dict[str, pd.DataFrame], cfg: TrainConfig) -> None:
    """Seeded, stratified test and val splits cut from train when the files did not provide them."""
    for split, fraction in (("test", cfg.test_fraction), ("val", cfg.val_fraction)):
        if split in splits:
            continue
        train = splits["train"]
        if train["label"].nunique() < 2 or len(train) < 10:
            raise DataError("need at least 10 rows and both labels to make a stratified split")
        rest, held = train_test_split(
            train, test_size=fraction, stratify=train["label"], random_state=cfg.seed
        )
        splits["train"], splits[split] = rest.reset_index(drop=True), held.reset_index(drop=True)


def drop_near_duplicates(splits: dict[str, pd.DataFrame]) -> dict[str, int]:
    """Val and test keep no near-duplicate of an earlier split's post; returns what was dropped."""
    seen = set(splits["train"]["text"].map(normalise))
    removed = {}
    splits["val"], removed["val"] = _drop_seen(splits["val"], seen)
    seen |= set(splits["val"]["text"].map(normalise))
    splits["test"], removed["test"] = _drop_seen(splits["test"], seen)
    return removed


def cap_train(splits: dict[str, pd.DataFrame], cfg: TrainConfig) -> None:
    if cfg.max_train_examples and len(splits["train"]) > cfg.max_train_examples:
        capped, _ = train_test_split(
            splits["train"],
            train_size=cfg.max_train_examples,
            stratify=splits["train"]["label"],
            random_state=cfg.seed,
        )
        splits["train"] = capped.reset_index(drop=True)
