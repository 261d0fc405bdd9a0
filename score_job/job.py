"""One task of the scoring job, start to end. ``run`` is the table of contents:

1. ``list_files`` and ``resolve_bundle``: what to score, with which bundle (verified);
2. ``plan_split``: every file's rows counted, the whole input cut into ``task_count`` contiguous
   row ranges (file order, then row order), the same in every task and on every retry;
3. the shard ``<output>/<input_id>/<model_version>/task-<i>-of-<n>.parquet``: if it exists the
   task's share is done and is not scored again; otherwise ``score_share`` scores it, the rejects
   file is written first and the shard last, each created once, so a shard that exists is whole;
4. ``load_shard``: into the scores table, idempotent per shard.

``input_id`` names the input: its files (URI, size, generation or mtime) and the settings that
decide its texts. A changed file is a new input; the same input with the same model is never
scored twice. ``plan.json`` beside the shards records the split; a run that asks for another task
count for the same input and model is refused, since its shards would repeat rows.
"""

from __future__ import annotations

import hashlib
import json
import logging
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from artifact_store import join_uri
from score_job import inputs, storage
from score_job.config import ScoreConfig
from score_job.progress import Progress
from score_job.table import ScoresTable, arrow_schema, open_table
from serving_core.cpus import available_cpus as available_cpus  # the job's thread count

log = logging.getLogger("score_job")

TASK_FILE = "task-{index:05d}-of-{count:05d}"


class ScoreError(Exception):
    """The job cannot run as configured (no input, no such model, a conflicting earlier run)."""


# ---- what and with which model -----------------------------------------------------------------


@dataclass(frozen=True)
class InputFile:
    uri: str
    size: int
    version: str
    format: str | None  # None: a file the job cannot read (unknown format)
    key: str  # short hash of uri + version, used in row keys


def list_inputs(cfg: ScoreConfig) -> list[InputFile]:
    try:
        found = storage.list_files(cfg.input, tuple(inputs.SUFFIXES))
    except FileNotFoundError as exc:
        raise ScoreError(str(exc)) from None
    files = []
    for f in found:
        try:
            fmt: str | None = inputs.file_format(f.uri, cfg.format)
        except inputs.InputError:
            fmt = None
        key = hashlib.sha256(f"{f.uri}\n{f.version}".encode()).hexdigest()[:16]
        files.append(InputFile(f.uri, f.size, f.version, fmt, key))
    return files


def text_columns(cfg: ScoreConfig) -> list[str]:
    return [c.strip() for c in cfg.text_columns.split(",") if c.strip()]


def input_identity(files: list[InputFile], cfg: ScoreConfig) -> str:
    record = {
        "files": [[f.uri, f.size, f.version] for f in files],
        "format": cfg.format,
        "text_columns": text_columns(cfg),
        "id_column": cfg.id_column,
        "max_text_chars": cfg.max_text_chars,
    }
    return hashlib.sha256(json.dumps(record, sort_keys=True).encode()).hexdigest()[:16]


def model_uri(cfg: ScoreConfig) -> str:
    if cfg.model_version:
        return join_uri(cfg.store, "models", cfg.model_version)
    return join_uri(cfg.store, "models", "production.json")


def resolve_bundle(cfg: ScoreConfig) -> Any:
    from serving_core.bundle import BundleError, fetch_bundle

    cache = Path(cfg.bundle_cache_dir or Path(tempfile.gettempdir()) / "fakenews-bundles")
    try:
        return fetch_bundle(model_uri(cfg), cache)
    except BundleError as exc:
        raise ScoreError(f"no usable bundle: {exc}") from None


# ---- the split ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Piece:
    file: InputFile
    start: int
    end: int


@dataclass
class Plan:
    counts: list[int | None]  # rows per file; None: unreadable
    problems: dict[str, str] = field(default_factory=dict)  # uri -> why unreadable

    @property
    def total(self) -> int:
        return sum(c or 0 for c in self.counts)


def plan_split(files: list[InputFile], scratch: Path) -> Plan:
    counts: list[int | None] = []
    problems: dict[str, str] = {}
    for f in files:
        if f.format is None:
            counts.append(None)
            problems[f.uri] = "unknown format (not .csv, .jsonl, .ndjson or .parquet)"
            continue
        try:
            counts.append(inputs.count_rows(storage.local_copy(_as_stored(f), scratch), f.format))
        except inputs.InputError as exc:
            counts.append(None)
            problems[f.uri] = str(exc)
        except Exception as exc:  # a download that fails: the file is unreadable for every task
            counts.append(None)
            problems[f.uri] = f"{type(exc).__name__}: {exc}"
    return Plan(counts, problems)


def task_pieces(
    files: list[InputFile], plan: Plan, index: int, count: int
) -> tuple[list[Piece], list[InputFile]]:
    """This task's contiguous row range of the whole input, cut at file boundaries, and the
    unreadable files it reports (file i goes to task i mod count)."""
    lo, hi = plan.total * index // count, plan.total * (index + 1) // count
    pieces, unreadable, offset = [], [], 0
    for i, (f, rows) in enumerate(zip(files, plan.counts, strict=True)):
        if rows is None:
            if i % count == index:
                unreadable.append(f)
            continue
        start, end = max(lo - offset, 0), min(hi - offset, rows)
        if start < end:
            pieces.append(Piece(f, start, end))
        offset += rows
    return pieces, unreadable


def _as_stored(f: InputFile) -> storage.StoredFile:
    return storage.StoredFile(f.uri, f.size, f.version)


# ---- the task's outputs ------------------------------------------------------------------------


@dataclass
class TaskSummary:
    shard: str
    task_index: int
    task_count: int
    input_id: str
    model_version: str
    rows_in: int = 0
    rows_scored: int = 0
    rows_rejected: int = 0
    rejects: dict[str, int] = field(default_factory=dict)
    unreadable_files: list[str] = field(default_factory=list)
    threads: int = 0
    scoring_seconds: float = 0.0
    rows_per_second: float = 0.0
    skipped: bool = False  # the shard existed: nothing scored in this run
    rows_loaded: int = 0
    table: str = ""

    def as_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)


class ShardWriter:
    """Scored rows streamed into a local Parquet file (one row group per model call)."""

    def __init__(self, path: Path, shard: str, input_id: str, model_version: str) -> None:
        import pyarrow.parquet as pq

        self.schema = arrow_schema()
        self.writer = pq.ParquetWriter(path, self.schema, compression="zstd")
        self.shard, self.input_id, self.model_version = shard, input_id, model_version
        self.scored_at = datetime.now(UTC)
        self.rows = 0

    def write(self, batch: list[tuple[InputFile, inputs.Row]], predictions: list[Any]) -> None:
        import pyarrow as pa

        texts = [row.text or "" for _, row in batch]
        columns: dict[str, list[Any]] = {
            "row_key": [f"{self.model_version}/{f.key}/{row.index}" for f, row in batch],
            "model_version": [self.model_version] * len(batch),
            "input_id": [self.input_id] * len(batch),
            "shard": [self.shard] * len(batch),
            "source_uri": [f.uri for f, _ in batch],
            "source_row": [row.index for _, row in batch],
            "id": [row.id for _, row in batch],
            "label": [p.label for p in predictions],
            "fake_probability": [p.probabilities["fake"] for p in predictions],
            "text_sha256": [hashlib.sha256(t.encode("utf-8")).hexdigest() for t in texts],
            "char_count": [len(t) for t in texts],
            "token_count": [p.token_count for p in predictions],
            "truncated": [p.truncated for p in predictions],
            "ood_score": [p.ood_score for p in predictions],
            "in_domain": [p.in_domain for p in predictions],
            "scored_at": [self.scored_at] * len(batch),
        }
        arrays = [pa.array(columns[f.name], type=f.type) for f in self.schema]
        self.writer.write_batch(pa.RecordBatch.from_arrays(arrays, schema=self.schema))
        self.rows += len(batch)

    def close(self) -> None:
        self.writer.close()


def _reject_line(f: InputFile, row: inputs.Row | None, reason: str, detail: str | None) -> str:
    return json.dumps(
        {
            "source_uri": f.uri,
            "source_row": None if row is None else row.index,
            "id": None if row is None else row.id,
            "reason": reason,
            "detail": detail,
        }
    )


def score_share(
    cfg: ScoreConfig,
    bundle: Any,
    pieces: list[Piece],
    unreadable: list[InputFile],
    problems: dict[str, str],
    summary: TaskSummary,
    scratch: Path,
) -> tuple[Path, Path]:
    """Score the task's rows into a local shard and a local rejects file."""
    from serving_core.model import Model

    summary.threads = cfg.threads or available_cpus()
    model = Model.load(
        bundle,
        intra_op_threads=summary.threads,
        max_batch_size=cfg.max_batch_size,
        max_batch_tokens=cfg.max_batch_tokens,
    )
    if model.positive_label != "fake":
        raise ScoreError(f"bundle {model.version} has no 'fake' label: {model.labels}")
    shard_path, rejects_path = scratch / "shard.parquet", scratch / "rejects.jsonl"
    writer = ShardWriter(shard_path, summary.shard, summary.input_id, summary.model_version)
    reasons: Counter[str] = Counter()
    progress = Progress(
        sum(p.end - p.start for p in pieces), cfg.progress, cfg.log_every_s, summary.shard
    )
    started = time.perf_counter()
    with rejects_path.open("w", encoding="utf-8") as rejects:
        for f in unreadable:
            rejects.write(_reject_line(f, None, inputs.UNREADABLE_FILE, problems.get(f.uri)) + "\n")
            summary.unreadable_files.append(f.uri)
        batch: list[tuple[InputFile, inputs.Row]] = []
        for f, row in _rows(cfg, pieces, scratch):
            summary.rows_in += 1
            if row.text is None:
                reasons[row.reason or "unknown"] += 1
                rejects.write(_reject_line(f, row, row.reason or "unknown", row.detail) + "\n")
                progress.update(1)
                continue
            batch.append((f, row))
            if len(batch) >= cfg.chunk_rows:
                writer.write(batch, model.predict([r.text or "" for _, r in batch]))
                progress.update(len(batch))
                batch = []
        if batch:
            writer.write(batch, model.predict([r.text or "" for _, r in batch]))
            progress.update(len(batch))
    writer.close()
    progress.close()
    summary.scoring_seconds = round(time.perf_counter() - started, 3)
    summary.rows_scored = writer.rows
    summary.rows_rejected = sum(reasons.values())
    summary.rejects = dict(sorted(reasons.items()))
    summary.rows_per_second = round(summary.rows_in / max(summary.scoring_seconds, 1e-9), 1)
    return shard_path, rejects_path


def _rows(
    cfg: ScoreConfig, pieces: list[Piece], scratch: Path
) -> Iterator[tuple[InputFile, inputs.Row]]:
    columns = text_columns(cfg)
    for piece in pieces:
        assert piece.file.format is not None
        path = storage.local_copy(_as_stored(piece.file), scratch)
        try:
            for row in inputs.read_rows(
                path,
                piece.file.format,
                piece.start,
                piece.end,
                columns,
                cfg.id_column,
                cfg.max_text_chars,
            ):
                yield piece.file, row
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            # It was read whole a moment ago (gs:// inputs are read at one generation), so only a
            # local file changed under the task gets here: the task fails, its retry starts over.
            raise ScoreError(f"{piece.file.uri} could not be read again: {exc}") from exc


def _summary_from_outputs(summary: TaskSummary, shard_uri: str, rejects_uri: str) -> TaskSummary:
    """The counts of a shard an earlier run finished (its summary file may be missing)."""
    summary_uri = shard_uri.removesuffix(".parquet") + ".summary.json"
    if storage.exists(summary_uri):
        stored = json.loads(storage.read_bytes(summary_uri))
        stored.update(skipped=True, rows_loaded=0, table="")
        return TaskSummary(**stored)
    import pyarrow.parquet as pq

    with tempfile.TemporaryDirectory() as tmp:
        rows = pq.ParquetFile(storage.fetch(shard_uri, Path(tmp))).metadata.num_rows
    reasons: Counter[str] = Counter()
    for line in storage.read_bytes(rejects_uri).decode().splitlines():
        record = json.loads(line)
        if record["source_row"] is None:
            summary.unreadable_files.append(record["source_uri"])
        else:
            reasons[record["reason"]] += 1
    summary.rows_scored = int(rows)
    summary.rows_rejected = sum(reasons.values())
    summary.rejects = dict(sorted(reasons.items()))
    summary.rows_in = summary.rows_scored + summary.rows_rejected
    summary.skipped = True
    return summary


# ---- plan record and loads ---------------------------------------------------------------------


def record_plan(base: str, files: list[InputFile], plan: Plan, cfg: ScoreConfig) -> None:
    record = {
        "task_count": cfg.task_count,
        "files": [
            {"uri": f.uri, "version": f.version, "rows": rows}
            for f, rows in zip(files, plan.counts, strict=True)
        ],
    }
    uri = join_uri(base, "plan.json")
    if storage.put_new_bytes(json.dumps(record, indent=2).encode(), uri):
        return
    earlier = json.loads(storage.read_bytes(uri))
    if earlier["task_count"] != cfg.task_count:
        raise ScoreError(
            f"{uri}: this input was split into {earlier['task_count']} tasks for this model; "
            f"rerun with --task-count {earlier['task_count']} (another count would score rows "
            "into the table twice)"
        )
    if earlier["files"] != record["files"]:
        raise ScoreError(f"{uri} counted other rows for the same input; the input changed")


def load_marker(shard_uri: str, table: ScoresTable) -> str:
    digest = hashlib.sha256(table.uri.encode()).hexdigest()[:12]
    return shard_uri.removesuffix(".parquet") + f".loaded-{digest}.json"


def load_shard(table: ScoresTable, shard_uri: str, local: Path | None, scratch: Path) -> int:
    """Load the shard (`local`: a local copy of it, if there is one) into the table, once."""
    marker = load_marker(shard_uri, table) if table.records_loads else ""
    if marker and storage.exists(marker):
        log.info("%s is already in %s", shard_uri, table.uri)
        return 0
    if local is None and table.reads_local_file(shard_uri):
        local = storage.fetch(shard_uri, scratch)
    added = table.load(shard_uri, local or Path(shard_uri))
    if marker:
        note = {"table": table.uri, "loaded_at": datetime.now(UTC).isoformat(), "rows": added}
        storage.put_new_bytes(json.dumps(note).encode(), marker)
    return added


# ---- the task ----------------------------------------------------------------------------------


def run(cfg: ScoreConfig) -> TaskSummary:
    try:
        table = open_table(cfg.table)
    except ValueError as exc:
        raise ScoreError(str(exc)) from None
    files = list_inputs(cfg)
    bundle = resolve_bundle(cfg)
    version = bundle.version
    input_id = input_identity(files, cfg)
    output = cfg.output or join_uri(cfg.store, "scores")
    base = join_uri(output, input_id, version)
    name = TASK_FILE.format(index=cfg.task_index, count=cfg.task_count)
    shard_uri = join_uri(base, name + ".parquet")
    rejects_uri = join_uri(base, name + ".rejects.jsonl")
    summary = TaskSummary(
        shard=f"{input_id}/{version}/{name}",
        task_index=cfg.task_index,
        task_count=cfg.task_count,
        input_id=input_id,
        model_version=version,
        table=table.uri,
    )
    log.info(
        "task %d of %d: %d file(s) from %s, input %s, model %s",
        cfg.task_index,
        cfg.task_count,
        len(files),
        cfg.input,
        input_id,
        version,
    )
    with tempfile.TemporaryDirectory(prefix="score-job-") as tmp:
        scratch = Path(tmp)
        if storage.exists(shard_uri):
            log.info("%s exists: this share was scored by an earlier run", shard_uri)
            summary = _summary_from_outputs(summary, shard_uri, rejects_uri)
            local_shard = None
        else:
            local_shard = score_and_publish(cfg, bundle, files, base, name, summary, scratch)
        summary.table = table.uri
        if summary.rows_scored:
            summary.rows_loaded = load_shard(table, shard_uri, local_shard, scratch)
    log_finished(summary)
    return summary


def score_and_publish(
    cfg: ScoreConfig,
    bundle: Any,
    files: list[InputFile],
    base: str,
    name: str,
    summary: TaskSummary,
    scratch: Path,
) -> Path | None:
    """Score the task's share, then publish its rejects, shard and summary, each written once.
    Returns the local shard to load, or None when another run's shard got there first."""
    plan = plan_split(files, scratch)
    record_plan(base, files, plan, cfg)
    pieces, unreadable = task_pieces(files, plan, cfg.task_index, cfg.task_count)
    local_shard: Path | None
    local_shard, local_rejects = score_share(
        cfg, bundle, pieces, unreadable, plan.problems, summary, scratch
    )
    shard_uri = join_uri(base, name + ".parquet")
    # Rejects first, the shard last: a shard that exists has its rejects beside it.
    storage.put_new(local_rejects, join_uri(base, name + ".rejects.jsonl"))
    if not storage.put_new(local_shard, shard_uri):
        log.warning("%s appeared while this task scored it; keeping that one", shard_uri)
        local_shard = None
    summary_uri = join_uri(base, name + ".summary.json")
    storage.put_new_bytes(summary.as_json().encode(), summary_uri)
    return local_shard


def log_finished(summary: TaskSummary) -> None:
    log.info(
        "task %d of %d: %d rows in, %d scored, %d rejected %s, %d unreadable file(s)%s; %s",
        summary.task_index,
        summary.task_count,
        summary.rows_in,
        summary.rows_scored,
        summary.rows_rejected,
        summary.rejects,
        len(summary.unreadable_files),
        " (scored by an earlier run)" if summary.skipped else f", {summary.rows_per_second} rows/s",
        f"{summary.rows_loaded} rows added to {summary.table}"
        if summary.table != "none"
        else "no table",
    )
