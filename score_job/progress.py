"""How far a task has got: a tqdm bar on a terminal, log lines on Cloud Run."""

from __future__ import annotations

import logging
import sys
import time
from typing import Any

log = logging.getLogger("score_job")


class Progress:
    """A tqdm bar on a terminal, else a log line every ``every_s`` seconds."""

    def __init__(self, total: int, mode: str, every_s: float, name: str) -> None:
        self.total, self.done, self.every_s, self.name = total, 0, every_s, name
        self.started = self.last = time.monotonic()
        self.bar: Any = None
        self.quiet = mode == "off"
        if mode == "bar" or (mode == "auto" and sys.stderr.isatty()):
            try:
                from tqdm import tqdm

                self.bar = tqdm(total=total, unit="row", desc=name, file=sys.stderr)
            except ImportError:
                pass

    def update(self, rows: int) -> None:
        self.done += rows
        if self.bar is not None:
            self.bar.update(rows)
            return
        now = time.monotonic()
        if not self.quiet and now - self.last >= self.every_s:
            self.last = now
            rate = self.done / max(now - self.started, 1e-9)
            left = (self.total - self.done) / rate if rate else float("inf")
            log.info(
                "%s: %d/%d rows (%.0f%%), %.0f rows/s, about %.0f s left",
                self.name,
                self.done,
                self.total,
                100 * self.done / max(self.total, 1),
                rate,
                left,
            )

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
