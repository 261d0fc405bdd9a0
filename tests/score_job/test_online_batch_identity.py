"""A batch score and an online score of the same texts are identical: the job and the function
run the same serving core, with the same batching defaults. (The int8 model quantizes activations
per onnxruntime call, so identity holds for texts that share their calls the same way: a file of
the request's texts in one chunk, or one text per call on both sides.)"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import requests

from score_job.job import run
from testing.function_server import ServedFunction, serve_function
from tests.score_job.conftest import POSTS, posts_csv


@pytest.fixture(scope="module")
def function(
    tiny_store: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServedFunction]:
    served = serve_function(
        {"MODEL_URI": str(tiny_store / "models" / "production.json")},
        tmp_path_factory.mktemp("function") / "function.log",
    )
    yield served
    served.stop()


def _shard_rows(output: Path) -> list[dict]:
    [shard] = sorted(output.rglob("*.parquet"))
    return sorted(pq.read_table(shard).to_pylist(), key=lambda r: r["source_row"])


def _assert_identical(rows: list[dict], answers: list[dict], version: str) -> None:
    assert len(rows) == len(answers) == len(POSTS)
    for row, answer in zip(rows, answers, strict=True):
        assert row["model_version"] == version
        assert row["label"] == answer["label"]
        assert row["fake_probability"] == answer["probabilities"]["fake"]  # exactly, not approx
        assert row["truncated"] == answer["truncated"]
        assert row["ood_score"] == answer["ood_score"]
        assert row["in_domain"] == answer["in_domain"]


def test_a_file_scores_as_one_request_of_the_same_texts(
    function: ServedFunction, make_config, tmp_path: Path
) -> None:
    response = requests.post(
        function.url, json={"instances": [{"text": t} for t in POSTS]}, timeout=60
    )
    assert response.status_code == 200, response.text
    body = response.json()
    cfg = make_config(input=str(posts_csv(tmp_path / "posts.csv")))
    summary = run(cfg)
    assert summary.rows_scored == len(POSTS)
    rows = _shard_rows(Path(cfg.output))
    _assert_identical(rows, body["predictions"], body["model_version"])
    assert any(row["truncated"] for row in rows)  # the long text took the truncation path


def test_one_text_per_call_scores_as_one_text_per_request(
    function: ServedFunction, make_config, tmp_path: Path
) -> None:
    answers, version = [], None
    for text in POSTS:
        response = requests.post(function.url, json={"text": text}, timeout=60)
        assert response.status_code == 200, response.text
        answers += response.json()["predictions"]
        version = response.json()["model_version"]
    cfg = make_config(input=str(posts_csv(tmp_path / "posts.csv")), chunk_rows=1)
    run(cfg)
    _assert_identical(_shard_rows(Path(cfg.output)), answers, version)
