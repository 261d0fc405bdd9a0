"""Training mix: several labelled sources named in a TOML mix file (data/sources.toml), each read,
labelled and split its own way, de-duplicated across splits and sources, every row keeping its
source through training, evaluation and the bundle's manifest.

A source splits by its own files (train / val / test, e.g. CONSTRAINT's official split), by date
(within each label the latest items are test, the ones before them validation, so a model is
tested on news later than it learned from), or by a stable hash of its text (within each label,
so the splits keep the source's fake/real mix and do not move when the seed does).

Every problem with the mix raises DataError with a message a person can act on; the CLI turns it
into exit code 2, like any other refused input.
"""

from __future__ import annotations

import hashlib
import json
import re
import tomllib
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass
from pathlib import Path, PurePosixPath

import jsonschema
import pandas as pd
from sklearn.model_selection import train_test_split

from train_job.config import TrainConfig
from train_job.tables import SPLITS, DataError, Dataset, read_bytes, read_table

MIX_SCHEMA = Path(__file__).with_name("sources.schema.json")
DEFAULT_VAL_FRACTION = 0.05
DEFAULT_TEST_FRACTION = 0.1
UNVERIFIED = "unverified"
# Word 5-grams; two texts are near-duplicates when one shares at least half of its 5-grams with
# the other (texts under 5 words match only exactly).
NGRAM = 5
NEAR_DUPLICATE_SHARE = 0.5
# A 5-gram in more kept texts than this is boilerplate ("click here to read the full"); looking
# it up would make the search quadratic, and it is no evidence that two texts are one.
COMMON_NGRAM_ROWS = 100
# Where a duplicate pair crosses splits, the copy in the later split of this order is dropped:
# test is never reduced to make room for train.
SPLIT_PRIORITY = ("test", "val", "train")


@dataclass(frozen=True)
class SourceSpec:
    name: str
    files: dict[str, str]  # {"all": path} for one file, else {"train", "val", "test"}
    text: tuple[str, ...]
    max_words: int
    label: str
    fake: tuple[str, ...]
    real: tuple[str, ...]
    unverified: str  # drop, fake or real
    cap: int  # rows of the source kept before splitting (0 = all), stratified by label
    train_cap: int | None  # train rows kept after splitting; wins over --source-train-cap
    split: str  # files, date or hash
    date_column: str
    val_fraction: float
    test_fraction: float


@dataclass(frozen=True)
class Mix:
    path: str
    sha256: str
    sources: tuple[SourceSpec, ...]

    def names(self) -> list[str]:
        return [s.name for s in self.sources]


def _schema_errors(document: dict) -> list[str]:
    schema = json.loads(MIX_SCHEMA.read_text())
    validator = jsonschema.Draft202012Validator(schema)
    errors = []
    for error in sorted(validator.iter_errors(document), key=lambda e: list(e.path)):
        where = ".".join(str(p) for p in error.path) or "(top level)"
        errors.append(f"{where}: {error.message}")
    return errors


def parse_mix(text: str, path: str = "<mix>") -> Mix:
    """A mix from its TOML text, checked against train_job/sources.schema.json and for the
    combinations the schema cannot express."""
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise DataError(f"{path}: not valid TOML: {e}") from None
    errors = _schema_errors(document)
    if errors:
        raise DataError(f"{path}: bad mix file: " + "; ".join(errors))
    defaults = document.get("mix", {})
    sources = []
    for name, entry in document["sources"].items():
        split = entry.get("split", "files" if "files" in entry else "hash")
        if (split == "files") != ("files" in entry):
            raise DataError(
                f"{path}: source {name!r}: split = 'files' needs a files table "
                "(train, val, test), and a files table needs split = 'files'"
            )
        fake = tuple(v.strip().lower() for v in entry.get("fake", ["fake"]))
        real = tuple(v.strip().lower() for v in entry.get("real", ["real"]))
        if set(fake) & set(real):
            raise DataError(f"{path}: source {name!r}: {sorted(set(fake) & set(real))} in both")
        if UNVERIFIED in set(fake) | set(real):
            raise DataError(
                f"{path}: source {name!r}: say what 'unverified' means with "
                "unverified = 'drop' | 'fake' | 'real', not in the fake or real list"
            )
        sources.append(
            SourceSpec(
                name=name,
                files=dict(entry["files"]) if "files" in entry else {"all": entry["file"]},
                text=tuple(entry.get("text", ["title"])),
                max_words=entry.get("max_words", 0),
                label=entry.get("label", "label"),
                fake=fake,
                real=real,
                unverified=entry.get("unverified", "drop"),
                cap=entry.get("cap", 0),
                train_cap=entry.get("train_cap"),
                split=split,
                date_column=entry.get("date_column", "date"),
                val_fraction=entry.get(
                    "val_fraction", defaults.get("val_fraction", DEFAULT_VAL_FRACTION)
                ),
                test_fraction=entry.get(
                    "test_fraction", defaults.get("test_fraction", DEFAULT_TEST_FRACTION)
                ),
            )
        )
    digest = hashlib.sha256(text.encode()).hexdigest()
    return Mix(path=path, sha256=digest, sources=tuple(sources))


def read_mix(uri: str) -> Mix:
    raw = read_bytes(uri)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise DataError(f"{uri}: the mix file is not UTF-8 text") from None
    return parse_mix(text, uri)


# --- one source: read, label, cap, split ------------------------------------------------------


def _joined_text(frame: pd.DataFrame, columns: tuple[str, ...], max_words: int) -> pd.Series:
    parts = [frame[c].astype(str).str.strip() for c in columns]
    text = parts[0]
    for part in parts[1:]:
        # A title and a body read as two sentences.
        text = (text + ". " + part).str.strip(". ").where(part != "", text)
    if max_words:
        text = text.map(lambda t: " ".join(t.split()[:max_words]))
    return text


def _labelled_rows(frame: pd.DataFrame, spec: SourceSpec, uri: str) -> tuple[pd.DataFrame, dict]:
    """(rows with text, label, and date where the source splits by date; counts of dropped rows)."""
    needed = [*spec.text, spec.label] + ([spec.date_column] if spec.split == "date" else [])
    missing = [c for c in needed if c not in frame.columns]
    if missing:
        raise DataError(
            f"source {spec.name!r} ({uri}): missing column(s) {missing}; "
            f"columns present: {list(frame.columns)}"
        )
    raw = frame[spec.label].astype(str).str.strip().str.lower()
    meaning = {v: 1 for v in spec.fake} | {v: 0 for v in spec.real}
    if spec.unverified != "drop":
        meaning[UNVERIFIED] = 1 if spec.unverified == "fake" else 0
    known = raw.isin(set(meaning) | {UNVERIFIED})
    if not known.all():
        counts = raw[~known].value_counts().head(5).to_dict()
        raise DataError(
            f"source {spec.name!r} ({uri}): {int((~known).sum())} row(s) have unknown label "
            f"values {counts}; fake = {list(spec.fake)}, real = {list(spec.real)}"
        )
    text = _joined_text(frame, spec.text, spec.max_words)
    usable = text.str.contains(r"\w", regex=True)
    keep = usable & raw.isin(set(meaning))
    rows = pd.DataFrame({"text": text[keep].values, "label": raw[keep].map(meaning).values})
    rows["label"] = rows["label"].astype(int)
    if spec.split == "date":
        rows["date"] = pd.to_datetime(
            frame.loc[keep, spec.date_column].values, errors="coerce", format="mixed"
        )
    dropped = {
        "no_text": int((~usable).sum()),
        "unverified": int((usable & (raw == UNVERIFIED) & ~raw.isin(set(meaning))).sum()),
    }
    return rows, dropped


def stable_fraction(text: str) -> float:
    """A number in [0, 1) fixed by the text alone: the same row lands in the same split whatever
    the seed, the row order or the other rows."""
    digest = hashlib.sha256(dedup_key(text).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def assign_splits(rows: pd.DataFrame, spec: SourceSpec) -> pd.Series:
    """split per row: within each label, the last test_fraction of the order is test and the
    val_fraction before it validation; the order is by date (ties and undated rows by hash,
    undated rows always train) or by hash."""
    split = pd.Series("train", index=rows.index, dtype=object)
    for _, group in rows.groupby("label"):
        keys = group["text"].map(stable_fraction)
        if spec.split == "date":
            dated = group["date"].notna()
            order = (
                pd.DataFrame({"date": group["date"][dated], "key": keys[dated]})
                .sort_values(["date", "key"])
                .index
            )
        else:
            order = keys.sort_values().index
        n_test = round(len(order) * spec.test_fraction)
        n_val = round(len(order) * spec.val_fraction)
        ordered = list(order)
        test = ordered[len(ordered) - n_test :] if n_test else []
        val = ordered[len(ordered) - n_test - n_val : len(ordered) - n_test] if n_val else []
        split[test] = "test"
        split[val] = "val"
    return split


def load_source(spec: SourceSpec, seed: int) -> tuple[pd.DataFrame, dict]:
    """(rows: text, label, source, split; what was read and dropped)."""
    frames, hashes, dropped = [], {}, Counter()
    for split, uri in spec.files.items():
        frame, digest = read_table(uri)
        hashes[PurePosixPath(uri).name] = digest
        rows, lost = _labelled_rows(frame, spec, uri)
        dropped.update(lost)
        if split != "all":
            rows["split"] = split
        frames.append(rows)
    rows = pd.concat(frames, ignore_index=True)
    if rows.empty or rows["label"].nunique() < 2:
        raise DataError(f"source {spec.name!r}: needs rows of both labels; found {len(rows)} rows")
    read = len(rows)
    if spec.cap and len(rows) > spec.cap:
        rows, _ = train_test_split(
            rows, train_size=spec.cap, stratify=rows["label"], random_state=seed
        )
        rows = rows.reset_index(drop=True)
    if spec.split != "files":
        rows["split"] = assign_splits(rows, spec)
    rows["source"] = spec.name
    stats = {
        "files_sha256": hashes,
        "rows_read": read,
        "dropped_no_text": dropped["no_text"],
        "dropped_unverified": dropped["unverified"],
        "capped_to": spec.cap if spec.cap and read > spec.cap else None,
    }
    if spec.split == "date":
        stats["undated_in_train"] = int(rows["date"].isna().sum())
    return rows[["text", "label", "source", "split"]], stats


# --- de-duplication across splits and sources -------------------------------------------------

_LINK = re.compile(r"https?://\S+|www\.\S+")
_NOT_WORD = re.compile(r"[^\w\s]|_")


def dedup_key(text: str) -> str:
    """Lower case, no links, no punctuation (any script's), single spaces."""
    return " ".join(_NOT_WORD.sub(" ", _LINK.sub(" ", text.lower())).split())


def word_ngrams(key: str, n: int = NGRAM) -> set[str]:
    words = key.split()
    return {" ".join(words[i : i + n]) for i in range(len(words) - n + 1)}


def duplicate_rows(rows: pd.DataFrame, source_order: list[str]) -> pd.Series:
    """True for each row to drop: a near-duplicate (same key, or one of the two shares at least
    half of its 5-grams with the other) of a row kept before it in another split or source.
    Rows are visited test first, then validation, then train, sources in mix order, so a
    duplicate pair crossing splits loses its train copy, never its test copy. Duplicates
    within one source's split stay as the source has them."""
    order = rows.assign(
        _split=rows["split"].map(SPLIT_PRIORITY.index),
        _source=rows["source"].map(source_order.index),
    ).sort_values(["_split", "_source"], kind="stable")
    kept_by_key: dict[str, list[int]] = defaultdict(list)
    postings: dict[str, list[int]] = defaultdict(list)
    gram_count: dict[int, int] = {}
    group: dict[int, tuple[str, str]] = {}
    dropped: set[int] = set()
    for idx, text, split, source in zip(
        order.index, order["text"], order["split"], order["source"], strict=True
    ):
        here = (split, source)
        key = dedup_key(text)
        grams = word_ngrams(key)
        twin = any(group[k] != here for k in kept_by_key.get(key, ()))
        if not twin and grams:
            shared: Counter[int] = Counter()
            for gram in grams:
                hits = postings.get(gram)
                if hits and len(hits) <= COMMON_NGRAM_ROWS:
                    shared.update(hits)
            twin = any(
                group[k] != here and count >= NEAR_DUPLICATE_SHARE * min(len(grams), gram_count[k])
                for k, count in shared.items()
            )
        if twin:
            dropped.add(idx)
            continue
        kept_by_key[key].append(idx)
        group[idx] = here
        gram_count[idx] = len(grams)
        for gram in grams:
            postings[gram].append(idx)
    return pd.Series(rows.index.isin(list(dropped)), index=rows.index)


# --- the whole mix ----------------------------------------------------------------------------


def _stratified_cap(frame: pd.DataFrame, cap: int, seed: int) -> pd.DataFrame:
    if len(frame) <= cap:
        return frame
    kept, _ = train_test_split(frame, train_size=cap, stratify=frame["label"], random_state=seed)
    return kept


def _counts(rows: pd.DataFrame) -> dict[str, dict[str, int]]:
    table = rows.groupby(["source", "split"]).size()
    return {
        source: {split: int(table.get((source, split), 0)) for split in SPLITS}
        for source in rows["source"].unique()
    }


def load_mix(cfg: TrainConfig) -> Dataset:
    """Every source of the mix, split, de-duplicated, the held-out source's train and validation
    rows removed, each source's train split capped; splits keep a `source` column."""
    mix = read_mix(cfg.sources)
    names = mix.names()
    if cfg.holdout_source and cfg.holdout_source not in names:
        raise DataError(f"--holdout-source {cfg.holdout_source!r} is not in the mix ({names})")
    loaded = [load_source(spec, cfg.seed) for spec in mix.sources]
    rows = pd.concat([r for r, _ in loaded], ignore_index=True)
    stats = {spec.name: s for spec, (_, s) in zip(mix.sources, loaded, strict=True)}

    official_source = next((s.name for s in mix.sources if s.split == "files"), None)
    official = rows[rows["split"] == "test"]
    if official_source:
        official = official[official["source"] == official_source]
    test_official = official[["text", "label", "source"]].reset_index(drop=True)

    before = _counts(rows)
    drop = duplicate_rows(rows, names) if cfg.dedup else pd.Series(False, index=rows.index)
    removed = rows[drop].groupby(["source", "split"]).size()
    rows = rows[~drop]
    if cfg.holdout_source:
        rows = rows[(rows["source"] != cfg.holdout_source) | (rows["split"] == "test")]
    train_caps = {
        spec.name: cfg.source_train_cap if spec.train_cap is None else spec.train_cap
        for spec in mix.sources
    }
    if any(train_caps.values()):
        capped = [
            _stratified_cap(part, train_caps[source], cfg.seed)
            if split == "train" and train_caps[source]
            else part
            for (source, split), part in rows.groupby(["source", "split"], sort=False)
        ]
        rows = pd.concat(capped)
    splits = {
        split: rows[rows["split"] == split][["text", "label", "source"]].reset_index(drop=True)
        for split in SPLITS
    }
    if cfg.max_train_examples and len(splits["train"]) > cfg.max_train_examples:
        splits["train"] = _stratified_cap(
            splits["train"], cfg.max_train_examples, cfg.seed
        ).reset_index(drop=True)
    for split in SPLITS:
        if splits[split]["label"].nunique() < 2:
            raise DataError(f"the {split} split has only one label; both real and fake are needed")

    files = {name: h for s in stats.values() for name, h in s["files_sha256"].items()}
    fingerprint = {
        "files_sha256": files,
        "rows": {s: len(splits[s]) for s in SPLITS},
        "label_balance": {
            s: {"real": int((splits[s]["label"] == 0).sum()), "fake": int(splits[s]["label"].sum())}
            for s in SPLITS
        },
        "mix": {
            "file": mix.path,
            "sha256": mix.sha256,
            "sources": {spec.name: asdict(spec) for spec in mix.sources},
            "holdout_source": cfg.holdout_source or None,
            "source_train_cap": cfg.source_train_cap or None,
            "test_official_source": official_source,
        },
        "rows_by_source": _counts(pd.concat(splits[s].assign(split=s) for s in SPLITS)),
        "rows_by_source_before_dedup": before,
        "dedup_removed": {
            source: {split: int(removed.get((source, split), 0)) for split in SPLITS}
            for source in names
        },
        "source_stats": {
            name: {k: v for k, v in s.items() if k != "files_sha256"} for name, s in stats.items()
        },
    }
    fingerprint["sha256"] = hashlib.sha256(
        repr(sorted(files.items())).encode()
        + mix.sha256.encode()
        + repr(fingerprint["rows_by_source"]).encode()
    ).hexdigest()
    return Dataset(splits=splits, fingerprint=fingerprint, test_official=test_official)
