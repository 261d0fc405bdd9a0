"""The job's settings: flag, then FND_SCORE_ variable, then default; the task share from Cloud
Run's variables last; `--help` explains every flag."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import fields

import pytest

from score_job.config import ScoreConfig, resolve_config
from tests.conftest import ROOT


def test_flag_beats_environment_beats_default() -> None:
    env = {"FND_SCORE_INPUT": "env.csv", "FND_SCORE_CHUNK_ROWS": "64", "FND_SCORE_THREADS": "3"}
    cfg = resolve_config(["--input", "flag.csv", "--threads", "1"], env=env)
    assert (cfg.input, cfg.threads, cfg.chunk_rows) == ("flag.csv", 1, 64)
    assert cfg.max_batch_size == ScoreConfig.max_batch_size  # default


def test_task_share_from_flags_then_our_variables_then_cloud_run() -> None:
    cloud = {"CLOUD_RUN_TASK_INDEX": "3", "CLOUD_RUN_TASK_COUNT": "8"}
    cfg = resolve_config(["--input", "x"], env=cloud)
    assert (cfg.task_index, cfg.task_count) == (3, 8)
    ours = {**cloud, "FND_SCORE_TASK_INDEX": "1", "FND_SCORE_TASK_COUNT": "2"}
    cfg = resolve_config(["--input", "x"], env=ours)
    assert (cfg.task_index, cfg.task_count) == (1, 2)
    cfg = resolve_config(["--input", "x", "--task-index", "0"], env=ours)
    assert (cfg.task_index, cfg.task_count) == (0, 2)
    cfg = resolve_config(["--input", "x"], env={})
    assert (cfg.task_index, cfg.task_count) == (0, 1)


@pytest.mark.parametrize(
    "argv",
    [
        [],  # no input
        ["--input", "x", "--task-index", "4", "--task-count", "4"],
        ["--input", "x", "--format", "xml"],
        ["--input", "x", "--chunk-rows", "0"],
        ["--input", "x", "--text-columns", " , "],
        ["--input", "x", "--no-such-flag"],
    ],
)
def test_bad_settings_stop_before_anything_runs(argv: list[str]) -> None:
    with pytest.raises(SystemExit):
        resolve_config(argv, env={})


def test_help_explains_every_flag_and_its_variable() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "score_job", "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    text = " ".join(result.stdout.split())
    for f in fields(ScoreConfig):
        assert "--" + f.name.replace("_", "-") in text
        assert "FND_SCORE_" + f.name.upper() in text
        assert f.metadata.get("help")
