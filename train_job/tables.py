"""What both data readers share (train_job/data.py: one dataset; train_job/sources.py: a mix of
sources): the labels, the splits, the Dataset they return, DataError, and reading one CSV/TSV file
(local or gs://, gzip or not) with the sha256 of its bytes."""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass, field

import pandas as pd

LABELS = ("real", "fake")  # index = class id; "fake" is the positive class
SPLITS = ("train", "val", "test")


class DataError(ValueError):
    """The dataset cannot be used as given."""


@dataclass
class Dataset:
    splits: dict[str, pd.DataFrame]  # columns: text (str), label (int, 1 = fake)
    fingerprint: dict = field(default_factory=dict)
    # The official test split before cross-split de-duplication, to compare with published numbers.
    test_official: pd.DataFrame | None = None


def read_bytes(uri: str) -> bytes:
    if uri.startswith("gs://"):
        from artifact_store import open_store

        parent, _, name = uri.rpartition("/")
        return open_store(parent).read_bytes(name)
    try:
        with open(uri, "rb") as f:
            return f.read()
    except FileNotFoundError:
        raise DataError(f"data file not found: {uri}") from None
    except IsADirectoryError:
        raise DataError(f"expected a CSV/TSV file but found a folder: {uri}") from None


def read_table(uri: str) -> tuple[pd.DataFrame, str]:
    """Returns the table and the sha256 of the file's bytes."""
    raw = read_bytes(uri)
    digest = hashlib.sha256(raw).hexdigest()
    # A gzip-compressed file (.csv.gz, .tsv.gz) is read as the table it holds.
    compressed = uri.lower().endswith(".gz")
    name = uri.lower().removesuffix(".gz")
    sep = "\t" if name.endswith((".tsv", ".tab")) else ","
    try:
        frame = pd.read_csv(
            io.BytesIO(raw),
            sep=sep,
            dtype=str,
            keep_default_na=False,
            compression="gzip" if compressed else None,
        )
    except (
        pd.errors.ParserError,
        UnicodeDecodeError,
        pd.errors.EmptyDataError,
        OSError,  # not gzip data behind a .gz name
        EOFError,
    ) as e:
        raise DataError(f"cannot parse {uri} as {'TSV' if sep == chr(9) else 'CSV'}: {e}") from e
    return frame, digest
