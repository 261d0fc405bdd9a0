"""Dead letter for prediction-log rows that could not be written: JSONL files in a folder or
objects under a gs:// prefix. `python -m monitoring replay` reads them back.

Each spill is its own file (<prefix>/predictions-<utc>-<pid>-<random>.jsonl), written to a
temporary name and renamed, so a reader never sees half a file and concurrent processes never
append to the same one. A replay first claims a file by moving it to <prefix>/claimed/ (so two
replays never load the same file), then moves it to <prefix>/replayed/ (kept for audit).
Rows of an insert that was sent and never answered go to unanswered-*.jsonl: that request may
still land, so replay leaves them until they are old enough. Rows no backend will take
(rejected-*.jsonl) carry their reason in a `_reason` field; replay
never picks them up, a person does.

A gs:// write has a bounded cost: the request thread may be the one spilling (a full buffer, a
stdout write that failed, a row that cannot be stored), so each upload attempt has
UPLOAD_TIMEOUT_S and retries stop after UPLOAD_RETRY_DEADLINE_S; a spill against a store that
does not answer costs the request at most about UPLOAD_TIMEOUT_S + UPLOAD_RETRY_DEADLINE_S, and
the rows then go to stderr as PREDICTION_LOG_DEAD_ROW lines. The client's defaults (60 s per
attempt, the function's whole timeout) would hold every spilling request for a minute. Uploads
are create-only (if_generation_match=0), which makes a retry safe: a retry that finds the object
already there means an earlier attempt landed. Every gs:// call goes through artifact_store; the
replay's calls (list, read, claim, move) keep the client's own bounds.
"""

from __future__ import annotations

import contextlib
import json
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from artifact_store import Deadlines, GcsStore, PreconditionFailed

REPLAYED = "replayed"
# Kinds of file replay loads: rows not written, and rows of an insert that was sent and never
# answered (it may still land; replay waits before it looks them up).
UNANSWERED = "unanswered"
PENDING_KINDS = ("predictions-", UNANSWERED + "-")
CLAIMED = "claimed"  # files a replay is loading now
# A claim older than this belongs to a replay that was killed (the replay job's timeout is 900 s).
STALE_CLAIM_S = 3600.0
REASON_FIELD = "_reason"
# The last resort, when even the dead letter cannot be written: one stderr line per row.
DEAD_ROW_MARKER = "PREDICTION_LOG_DEAD_ROW "
# The first word of the line logged for every file written to the dead letter (the logger's
# spill line); the alert's log-based metric (terraform/alerts.tf) matches it.
SPILL_MARKER = "PREDICTION_LOG_SPILL"

UPLOAD_TIMEOUT_S = 5.0
UPLOAD_RETRY_DEADLINE_S = 5.0


def _new_name(kind: str = "predictions") -> str:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    return f"{kind}-{stamp}-{os.getpid()}-{uuid.uuid4().hex[:8]}.jsonl"


def spilled_at(name: str) -> datetime | None:
    """When the file `name` (a path or object name) was spilled, read from its name; None for a
    name this module did not make."""
    parts = name.rsplit("/", 1)[-1].split("-")
    if len(parts) < 2:
        return None
    try:
        return datetime.strptime(parts[1], "%Y%m%dT%H%M%S%fZ").replace(tzinfo=UTC)
    except ValueError:
        return None


def _encode(rows: list[dict[str, Any]]) -> bytes:
    return "".join(json.dumps(r, separators=(",", ":"), default=str) + "\n" for r in rows).encode()


def _decode(data: bytes) -> list[dict[str, Any]]:
    """The rows of a file; ValueError when it is not UTF-8 JSON lines of objects."""
    rows = [json.loads(line) for line in data.decode("utf-8").splitlines() if line.strip()]
    if not all(isinstance(r, dict) for r in rows):
        raise ValueError("a line is JSON but not an object")
    return rows


@dataclass(frozen=True)
class DeadLetterFile:
    name: str
    rows: list[dict[str, Any]]


class DeadLetter:
    """A folder (local path) or gs://bucket/prefix holding spilled rows."""

    def __init__(
        self,
        uri: str,
        *,
        upload_timeout_s: float = UPLOAD_TIMEOUT_S,
        upload_retry_deadline_s: float = UPLOAD_RETRY_DEADLINE_S,
    ) -> None:
        self.uri = uri.rstrip("/")
        self.upload_timeout_s = upload_timeout_s
        self.upload_retry_deadline_s = upload_retry_deadline_s
        self._bucket_name: str | None = None
        self._prefix = ""
        if self.uri.startswith("gs://"):
            bucket, _, prefix = self.uri[len("gs://") :].partition("/")
            self._bucket_name, self._prefix = bucket, (prefix + "/" if prefix else "")
            # Rooted at the bucket: keys are whole object names, the names replay reports.
            self._store = GcsStore(f"gs://{bucket}")
            spill_bounds = Deadlines(
                call_s=upload_timeout_s,
                retry_s=upload_retry_deadline_s,
                first_backoff_s=0.2,
                max_backoff_s=2.0,
            )
            self._spill_store = GcsStore(f"gs://{bucket}", spill_bounds)
        else:
            self._dir = Path(self.uri)

    def write(
        self,
        rows: list[dict[str, Any]],
        kind: str = "predictions",
        reasons: list[str] | str | None = None,
    ) -> str:
        """Persist rows; returns where. Raises OSError/API errors when even that fails.
        kind="rejected" is for rows no backend will take (invalid, or not storable): kept with
        their reason (one for all, or one per row) for a person, never picked up by replay."""
        if reasons is not None:
            per_row = [reasons] * len(rows) if isinstance(reasons, str) else list(reasons)
            per_row += [per_row[-1] if per_row else ""] * (len(rows) - len(per_row))
            rows = [dict(r, **{REASON_FIELD: why}) for r, why in zip(rows, per_row, strict=False)]
        name = _new_name(kind)
        data = _encode(rows)
        if self._bucket_name is not None:
            self._upload(self._prefix + name, data)
            return f"gs://{self._bucket_name}/{self._prefix}{name}"
        self._dir.mkdir(parents=True, exist_ok=True)
        tmp = self._dir / f".{name}.tmp"
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        final = self._dir / name
        os.replace(tmp, final)
        return str(final)

    def _upload(self, name: str, data: bytes) -> None:
        # The name is unique to this spill: an object already there means an earlier attempt
        # landed, so put_new_bytes answering False is a success too.
        self._spill_store.put_new_bytes(name, data, content_type="application/x-ndjson")

    def pending(self) -> Iterator[DeadLetterFile]:
        """Files not yet replayed, oldest first (raises on a file that cannot be decoded;
        replay reads them one by one with pending_names() and read() instead)."""
        for name in self.pending_names():
            yield DeadLetterFile(name, self.read(name))

    def pending_names(self) -> list[str]:
        """Names of the files not yet replayed, oldest first."""
        if self._bucket_name is not None:
            found = self._store.list_objects(self._prefix, delimiter="/")
            return [o.key for o in found if _is_pending(o.key.rsplit("/", 1)[-1])]
        if not self._dir.is_dir():
            return []
        names = (p for p in self._dir.glob("*.jsonl") if _is_pending(p.name))
        return [str(p) for p in sorted(names)]

    def read(self, name: str) -> list[dict[str, Any]]:
        """The rows of one file; raises ValueError (or a storage error) when it cannot be read."""
        if self._bucket_name is not None:
            data = self._store.read_bytes(name)
        else:
            data = Path(name).read_bytes()
        return _decode(data)

    def claim(self, name: str) -> str | None:
        """Move a pending file to claimed/ so that no other replay loads it at the same time;
        returns its new name, or None when another replay claimed it first. Locally a rename
        (atomic); on gs:// a copy that only succeeds if claimed/<name> does not exist yet,
        then the delete of the original."""
        base = name.rsplit("/", 1)[-1]
        if self._bucket_name is not None:
            source = self._store.info(name)
            if source is None:
                return None
            target = self._prefix + CLAIMED + "/" + base
            try:
                if not self._store.copy_new(name, target):
                    return None
            except FileNotFoundError:
                return None
            with contextlib.suppress(PreconditionFailed):
                self._store.delete(name, if_generation=source.generation)
            return target
        (self._dir / CLAIMED).mkdir(parents=True, exist_ok=True)
        claimed = self._dir / CLAIMED / base
        try:
            os.rename(name, claimed)
        except FileNotFoundError:
            return None
        os.utime(claimed)  # the claim's time, which release_stale_claims() reads
        return str(claimed)

    def release(self, claimed: str) -> None:
        """Put a claimed file back among the pending ones (its load failed; the next replay
        tries it again)."""
        self._move(claimed, claimed.rsplit("/", 1)[-1], create_only=True)

    def release_stale_claims(self, older_than_s: float = STALE_CLAIM_S) -> int:
        """Put back the files a replay claimed and never finished (it was killed): claims older
        than the replay job's timeout. Returns how many."""
        now = datetime.now(UTC).timestamp()
        stale: list[str] = []
        if self._bucket_name is not None:
            claimed = self._store.list_objects(self._prefix + CLAIMED + "/")
            stale = [o.key for o in claimed if now - o.created > older_than_s]
        elif (self._dir / CLAIMED).is_dir():
            stale = [
                str(p)
                for p in (self._dir / CLAIMED).glob("*.jsonl")
                if now - p.stat().st_mtime > older_than_s
            ]
        for name in stale:
            self.release(name)
        return len(stale)

    def mark_replayed(self, file: DeadLetterFile | str) -> None:
        """Move a replayed file (pending or claimed) to replayed/."""
        name = file if isinstance(file, str) else file.name
        self._move(name, REPLAYED + "/" + name.rsplit("/", 1)[-1])

    def set_aside(self, name: str) -> str:
        """Rename a file that cannot be read to rejected-unreadable-<name>, at the top of the
        dead letter: replay no longer picks it up, and a person finds it with the other
        rejected files."""
        return self._move(name, "rejected-unreadable-" + name.rsplit("/", 1)[-1])

    def _move(self, name: str, target: str, create_only: bool = False) -> str:
        """Move `name` to `target` (relative to the dead letter's root). A source already gone
        (another replay moved it) is left alone; with create_only, a target that exists already
        wins and the source is dropped (both hold the same rows)."""
        if self._bucket_name is not None:
            try:
                if create_only:
                    # Copied, or the target was there already: either way the source goes.
                    self._store.copy_new(name, self._prefix + target)
                    self._store.delete(name)
                else:
                    self._store.move(name, self._prefix + target)
            except FileNotFoundError:
                pass
            return f"gs://{self._bucket_name}/{self._prefix}{target}"
        final = self._dir / target
        final.parent.mkdir(parents=True, exist_ok=True)
        try:
            if create_only and final.exists():
                os.remove(name)
            else:
                os.replace(name, final)
        except FileNotFoundError:
            pass
        return str(final)


def _is_pending(base: str) -> bool:
    return base.startswith(PENDING_KINDS) and base.endswith(".jsonl")


def dead_rows_in(text: str) -> list[dict[str, Any]]:
    """The rows of the PREDICTION_LOG_DEAD_ROW lines in `text`, in order, in any of the forms
    such lines come back in: the raw stderr lines; Cloud Logging entries as JSON lines (each
    with the line in textPayload or jsonPayload.message); or the JSON array that
    `gcloud logging read --format=json` prints. Anything else in the text is ignored."""
    stripped = text.lstrip()
    if stripped.startswith("["):
        try:
            entries = json.loads(stripped)
        except json.JSONDecodeError:
            entries = None
        if isinstance(entries, list):
            return [row for entry in entries for row in _rows_of_payload(_payload(entry))]
    rows: list[dict[str, Any]] = []
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("{"):
            try:
                entry = json.loads(line)
            except json.JSONDecodeError:
                entry = None
            if isinstance(entry, dict):
                rows += _rows_of_payload(_payload(entry))
                continue
        rows += _rows_of_payload(line)
    return rows


def _payload(entry: Any) -> str:
    if not isinstance(entry, dict):
        return ""
    text = entry.get("textPayload")
    if isinstance(text, str):
        return text
    payload = entry.get("jsonPayload")
    if isinstance(payload, dict) and isinstance(payload.get("message"), str):
        return str(payload["message"])
    return ""


def _rows_of_payload(payload: str) -> list[dict[str, Any]]:
    rows = []
    start = payload.find(DEAD_ROW_MARKER)
    while start >= 0:
        body = payload[start + len(DEAD_ROW_MARKER) :]
        try:
            row, _ = json.JSONDecoder().raw_decode(body)
        except json.JSONDecodeError:
            row = None
        if isinstance(row, dict):
            rows.append(row)
        start = payload.find(DEAD_ROW_MARKER, start + len(DEAD_ROW_MARKER))
    return rows
