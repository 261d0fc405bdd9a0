"""The dead-letter alert sees every spill: the logger's real stderr output, for each way rows reach
the dead letter (retries run out, the buffer overflows, a row cannot be stored) and for the last
resort (PREDICTION_LOG_DEAD_ROW lines), is run through the text matches of the log-based metric's
filter and its label extractor, both read from terraform/alerts.tf. Changing the logger's line or
the filter alone breaks this test."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ALERTS_TF = ROOT / "terraform" / "alerts.tf"

# In production the logger's lines reach Cloud Logging as plain stderr text (textPayload): the
# function gives the "prediction_log" logger no handler, so Python's last-resort handler prints
# the bare message. JSON=1 formats them as the function's own loggers do (jsonPayload.message).
_SPILLING_PROCESS = textwrap.dedent(
    """
    import json, logging, os, sys, threading
    from prediction_log.dead_letter import DeadLetter
    from prediction_log.logger import PredictionLogger
    from prediction_log.sinks import WriteResult
    from tests.monitoring._crafted import make_rows

    if os.environ.get("JSON") == "1":
        class Json(logging.Formatter):
            def format(self, record):
                return json.dumps({"severity": record.levelname, "message": record.getMessage()})
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(Json())
        logging.getLogger("prediction_log").addHandler(handler)

    class Down:
        uri = "down://"
        def write(self, rows):
            raise ConnectionError("backend down")
        write_missing = write
        def close(self):
            pass

    class Stuck(Down):
        def __init__(self):
            self.release = threading.Event()
        def write(self, rows):
            self.release.wait(30)
            return WriteResult()

    dead, path = sys.argv[1], sys.argv[2]
    rows = make_rows(40, seed=3)
    if path == "retries":
        logger = PredictionLogger(Down(), DeadLetter(dead), max_attempts=2, backoff_s=0.01)
        logger.log(rows[:5])
        logger.flush(timeout=10)
    elif path == "overflow":
        sink = Stuck()
        logger = PredictionLogger(sink, DeadLetter(dead), batch_rows=2, max_age_s=0.01,
                                  buffer_rows=4)
        for start in range(0, 40, 2):
            logger.log(rows[start:start + 2])
        sink.release.set()
        logger.flush(timeout=10)
    elif path == "rejected":
        logger = PredictionLogger(Down(), DeadLetter(dead))
        logger.log([dict(rows[0], fake_probability=float("nan"))])
    elif path == "unwritable":
        open(dead, "w").close()  # a file where the folder should be: the dead letter fails too
        logger = PredictionLogger(Down(), DeadLetter(dead), max_attempts=1)
        logger.log(rows[:3])
        logger.flush(timeout=10)
    logger.close(timeout=10)
    print(json.dumps(logger.counts))
    """
)


def _metric_block() -> str:
    text = ALERTS_TF.read_text()
    start = text.index('resource "google_logging_metric" "dead_letters"')
    end = text.index("\nresource ", start + 1)
    return text[start:end]


def _filter_text_matches() -> list[tuple[str, str]]:
    """(field, needle) for each `field:"needle"` of the metric's filter: Logging's `:` (has)
    matches when the field contains the needle, case-insensitively."""
    block = _metric_block()
    matches = re.findall(r'(textPayload|jsonPayload\.message):\\"([^"\\]+)\\"', block)
    assert matches, "no text match found in the dead_letters metric's filter"
    return matches


def _label_regex() -> tuple[str, str]:
    block = _metric_block()
    found = re.search(r'REGEXP_EXTRACT\((\w+(?:\.\w+)?), \\"(.+?)\\"\)', block)
    assert found, "no REGEXP_EXTRACT label extractor in the dead_letters metric"
    return found.group(1), found.group(2)


def _entries(tmp_path: Path, path: str, json_lines: bool = False) -> tuple[list[dict], dict]:
    """Cloud Logging entries of the spilling process's stderr (one per line) and its counts."""
    env = {"JSON": "1" if json_lines else "0", "PATH": "/usr/bin:/bin"}
    done = subprocess.run(
        [sys.executable, "-c", _SPILLING_PROCESS, str(tmp_path / f"dead-{path}"), path],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    counts = json.loads(done.stdout.strip().splitlines()[-1])
    entries = []
    for line in done.stderr.splitlines():
        if json_lines and line.startswith("{"):
            entries.append({"jsonPayload": json.loads(line)})
        else:
            entries.append({"textPayload": line})
    return entries, counts


def _field(entry: dict, field: str) -> str:
    if field == "textPayload":
        return str(entry.get("textPayload", ""))
    return str(entry.get("jsonPayload", {}).get("message", ""))


def _matching(entries: list[dict]) -> list[dict]:
    needles = _filter_text_matches()
    return [e for e in entries if any(n.lower() in _field(e, f).lower() for f, n in needles)]


def test_every_dead_letter_file_is_one_line_the_alert_counts(tmp_path: Path) -> None:
    field, pattern = _label_regex()
    files = 0
    for path in ("retries", "overflow", "rejected"):
        entries, counts = _entries(tmp_path, path)
        written = sorted((tmp_path / f"dead-{path}").glob("*.jsonl"))
        assert written, f"{path}: nothing reached the dead letter"
        matched = _matching(entries)
        # One counted line per file the spill wrote, so the metric is the number of files.
        assert len(matched) == len(written), (path, [e["textPayload"] for e in entries])
        for entry in matched:
            kind = re.search(pattern, _field(entry, field))
            assert kind is not None, entry
        files += len(written)
        if path == "overflow":
            assert counts["overflow"] > 0, counts
    assert files >= 3


def test_rows_only_on_stderr_are_counted_one_line_each(tmp_path: Path) -> None:
    entries, counts = _entries(tmp_path, "unwritable")
    assert counts["stderr"] == 3, counts
    field, pattern = _label_regex()
    matched = _matching(entries)
    assert len(matched) == 3
    kinds = {re.search(pattern, _field(e, field)).group(0) for e in matched}  # type: ignore[union-attr]
    assert len(kinds) == 1


def test_spill_lines_in_the_functions_json_format_are_counted_too(tmp_path: Path) -> None:
    entries, _ = _entries(tmp_path, "overflow", json_lines=True)
    written = sorted((tmp_path / "dead-overflow").glob("*.jsonl"))
    assert written and len(_matching(entries)) == len(written)
