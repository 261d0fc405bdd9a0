"""fake-gcs-server as a context manager yielding its URL (for STORAGE_EMULATOR_HOST)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from testing.fake_gcs import start_fake_gcs


@contextmanager
def fake_gcs_server(log_path: Path) -> Iterator[str]:
    fake = start_fake_gcs(log_path)
    try:
        yield fake.url
    finally:
        fake.stop()
