"""The scoring job's configuration: one typed dataclass.

Each field is read in one documented order: command-line flag, then environment variable
(``FND_SCORE_`` + the field name in upper case, e.g. ``--text-columns`` /
``FND_SCORE_TEXT_COLUMNS``), then the default written here. The task's share comes last from
Cloud Run's own ``CLOUD_RUN_TASK_INDEX`` / ``CLOUD_RUN_TASK_COUNT`` when neither the flag nor the
``FND_SCORE_`` variable sets it. The job_config package, shared with the train job, does the
reading.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import job_config

ENV_PREFIX = "FND_SCORE_"
# Same limit as the function's MAX_TEXT_CHARS, so what the job rejects the function rejects too.
DEFAULT_MAX_TEXT_CHARS = 20000


@dataclass
class ScoreConfig:
    # --- input ----------------------------------------------------------------------------
    input: str = field(
        default="",
        metadata={
            "help": "what to score: a file, a folder or gs:// prefix, or a glob (local or gs://) "
            "of .csv, .jsonl/.ndjson or .parquet files"
        },
    )
    format: str = field(
        default="auto",
        metadata={"help": "csv, jsonl or parquet; auto: by each file's extension"},
    )
    text_columns: str = field(
        default="text",
        metadata={
            "help": "text column, or several joined as the train job joins them (title,text)"
        },
    )
    id_column: str = field(
        default="", metadata={"help": "column copied into the scores as `id` ('' = none)"}
    )
    max_text_chars: int = field(
        default=DEFAULT_MAX_TEXT_CHARS,
        metadata={"help": "longer texts are rejected (the function's MAX_TEXT_CHARS)"},
    )

    # --- model ----------------------------------------------------------------------------
    store: str = field(default="local/store", metadata={"help": "artifact store: folder or gs://"})
    model_version: str = field(
        default="", metadata={"help": "bundle version in the store ('' = the production one)"}
    )
    bundle_cache_dir: str = field(
        default="", metadata={"help": "where gs:// bundles are fetched ('' = a temp folder)"}
    )

    # --- output ---------------------------------------------------------------------------
    output: str = field(
        default="",
        metadata={"help": "folder or gs:// prefix for the Parquet shards ('' = <store>/scores)"},
    )
    table: str = field(
        default="duckdb://local/scores.duckdb",
        metadata={
            "help": "scores table the shards are loaded into: duckdb://path, "
            "bq://project.dataset.table (a load job) or none"
        },
    )

    # --- parallel tasks -------------------------------------------------------------------
    task_index: int = field(
        default=-1, metadata={"help": "this task's index (-1 = CLOUD_RUN_TASK_INDEX, else 0)"}
    )
    task_count: int = field(
        default=0, metadata={"help": "number of tasks (0 = CLOUD_RUN_TASK_COUNT, else 1)"}
    )

    # --- throughput -----------------------------------------------------------------------
    threads: int = field(
        default=0, metadata={"help": "onnxruntime threads (0 = the CPUs this task may use)"}
    )
    chunk_rows: int = field(
        default=4096,
        metadata={"help": "texts per model call; they are sorted by length inside it"},
    )
    max_batch_size: int = field(
        default=32, metadata={"help": "texts per onnxruntime call (the function's MAX_BATCH_SIZE)"}
    )
    max_batch_tokens: int = field(
        default=1024,
        metadata={"help": "padded tokens per onnxruntime call (the function's MAX_BATCH_TOKENS)"},
    )
    progress: str = field(
        default="auto",
        metadata={"help": "auto (a bar on a terminal, else log lines), bar, log or off"},
    )
    log_every_s: float = field(
        default=30.0, metadata={"help": "seconds between progress log lines"}
    )

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def build_parser() -> argparse.ArgumentParser:
    return job_config.build_parser(
        ScoreConfig,
        prog="python -m score_job",
        description=(
            "Score posts in bulk with a model bundle from the artifact store: reads its share of "
            "the input (CLOUD_RUN_TASK_INDEX of CLOUD_RUN_TASK_COUNT), writes one Parquet shard "
            "and a rejects file per task, then loads the shard into the scores table. Reruns "
            "skip finished shards and never load a shard twice. Every flag can also be set by "
            f"the environment variable {ENV_PREFIX}<FLAG NAME IN UPPER CASE>; flags win."
        ),
        env_prefix=ENV_PREFIX,
    )


def _cloud_run_share(env: Mapping[str, str], index: int, count: int) -> tuple[int, int]:
    def number(name: str, fallback: int) -> int:
        try:
            return job_config.read(name, job_config.integer, fallback, env=env)
        except job_config.SettingError as exc:
            raise SystemExit(f"error: {exc}") from None

    if index < 0:
        index = number("CLOUD_RUN_TASK_INDEX", 0)
    if count <= 0:
        count = number("CLOUD_RUN_TASK_COUNT", 1)
    return index, count


def resolve_config(
    argv: list[str] | None = None, env: Mapping[str, str] | None = None
) -> ScoreConfig:
    """Flag, then FND_SCORE_ environment variable, then default (Cloud Run's task variables
    for the task share)."""
    env = dict(os.environ) if env is None else env
    values = job_config.resolve(ScoreConfig, build_parser(), argv, env, ENV_PREFIX)
    cfg = ScoreConfig(**values)
    cfg.task_index, cfg.task_count = _cloud_run_share(env, cfg.task_index, cfg.task_count)
    problems = []
    if not cfg.input:
        problems.append("--input is required")
    if not 0 <= cfg.task_index < cfg.task_count:
        problems.append(f"task index {cfg.task_index} is not in [0, {cfg.task_count})")
    if cfg.format not in ("auto", "csv", "jsonl", "parquet"):
        problems.append(f"--format {cfg.format!r}: choose auto, csv, jsonl or parquet")
    if cfg.progress not in ("auto", "bar", "log", "off"):
        problems.append(f"--progress {cfg.progress!r}: choose auto, bar, log or off")
    for name in ("chunk_rows", "max_batch_size", "max_batch_tokens", "max_text_chars"):
        if getattr(cfg, name) < 1:
            problems.append(f"--{name.replace('_', '-')} must be >= 1")
    if cfg.threads < 0:
        problems.append("--threads must be >= 0")
    if not [c for c in cfg.text_columns.split(",") if c.strip()]:
        problems.append("--text-columns names no column")
    if problems:
        raise SystemExit("error: " + "; ".join(problems))
    return cfg
