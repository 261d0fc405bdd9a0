"""gs:// everywhere, on fake-gcs-server: the bundle from a gs:// store, the input as a prefix or a
glob, the shards, rejects and plan written under a gs:// output prefix, once."""

from __future__ import annotations

from pathlib import Path

from google.auth.credentials import AnonymousCredentials
from google.cloud import storage

from score_job.job import run
from tests.score_job.conftest import POSTS, posts_csv, table_rows


def _upload(bucket: storage.Bucket, folder: Path, prefix: str) -> None:
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            bucket.blob(f"{prefix}/{path.relative_to(folder).as_posix()}").upload_from_filename(
                str(path)
            )


def test_gs_prefix_and_glob_inputs_with_a_gs_store(
    fake_gcs: str, gcs_bucket: str, tiny_store: Path, make_config, tmp_path: Path
) -> None:
    client = storage.Client(project="local", credentials=AnonymousCredentials())
    bucket = client.bucket(gcs_bucket)
    _upload(bucket, tiny_store / "models", "models")
    inputs = tmp_path / "inputs"
    posts_csv(inputs / "day1.csv", POSTS[:5])
    posts_csv(inputs / "day2.csv", POSTS[5:])
    (inputs / "README.txt").write_text("not an input")
    _upload(bucket, inputs, "inputs/batch")

    store = f"gs://{gcs_bucket}"
    cfg = make_config(input=f"{store}/inputs/batch", store=store, output=f"{store}/scores")
    first = run(cfg)
    assert (first.rows_in, first.rows_scored) == (len(POSTS), len(POSTS))
    assert {r["source_uri"] for r in table_rows(cfg.table)} == {
        f"{store}/inputs/batch/day1.csv",
        f"{store}/inputs/batch/day2.csv",
    }
    names = sorted(b.name for b in client.list_blobs(gcs_bucket, prefix="scores/"))
    base = f"scores/{first.input_id}/{first.model_version}"
    assert names == [
        f"{base}/plan.json",
        f"{base}/task-00000-of-00001.parquet",
        f"{base}/task-00000-of-00001.rejects.jsonl",
        f"{base}/task-00000-of-00001.summary.json",
    ]

    # The same files named by a glob are the same input: nothing is scored or loaded again.
    again = run(make_config(input=f"{store}/inputs/batch/*.csv", store=store, output=cfg.output))
    assert again.input_id == first.input_id and again.skipped and again.rows_loaded == 0
    # A glob that matches one file is another input.
    one = run(make_config(input=f"{store}/inputs/**/day2.csv", store=store, output=cfg.output))
    assert one.rows_scored == len(POSTS) - 5 and one.input_id != first.input_id
