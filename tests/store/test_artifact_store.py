"""The artifact store, local and on gs:// (fake-gcs-server, the real client): write-once puts
refuse an object that exists, overwrite puts and compare-and-set behave alike on both, and every
GCS call carries the store's timeout and retry deadline."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from artifact_store import (
    NO_OBJECT,
    Deadlines,
    GcsStore,
    LocalStore,
    ObjectNotFound,
    PreconditionFailed,
    Store,
    join_uri,
    open_object,
    open_store,
)


@pytest.fixture(params=["local", "gcs"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Store:
    if request.param == "local":
        return open_store(tmp_path / "store")
    bucket = request.getfixturevalue("gcs_bucket")
    return open_store(f"gs://{bucket}/prefix")


def test_open_store_picks_the_kind_from_the_uri(tmp_path: Path) -> None:
    assert isinstance(open_store(tmp_path), LocalStore)
    assert isinstance(open_store("gs://bucket/some/prefix"), GcsStore)
    gcs, key = open_object("gs://bucket/a/b.json")
    assert isinstance(gcs, GcsStore) and gcs.uri == "gs://bucket" and key == "a/b.json"
    local, key = open_object(tmp_path / "a" / "b.json")
    assert isinstance(local, LocalStore) and local.root == tmp_path / "a" and key == "b.json"
    assert join_uri("gs://b/p/", "models", "v1") == "gs://b/p/models/v1"
    assert join_uri(str(tmp_path), "models", "v1") == str(tmp_path / "models" / "v1")
    with pytest.raises(ValueError, match="names no bucket"):
        open_store("gs:///nothing")


def test_write_once_put_refuses_an_existing_object(store: Store, tmp_path: Path) -> None:
    assert store.put_new_bytes("out/a.json", b"first") is True
    assert store.put_new_bytes("out/a.json", b"second") is False
    assert store.read_bytes("out/a.json") == b"first"

    local = tmp_path / "upload.bin"
    local.write_bytes(b"file one")
    assert store.put_new_file(local, "out/b.bin") is True
    local.write_bytes(b"file two")
    assert store.put_new_file(local, "out/b.bin") is False
    assert store.read_text("out/b.bin") == "file one"

    assert store.copy_new("out/a.json", "claimed/a.json") is True
    if isinstance(store, LocalStore):
        # fake-gcs-server ignores ifGenerationMatch on a copy (GCS honours it); that a copy asks
        # for it is checked in test_every_gcs_call_carries_the_timeout_and_retry_deadline.
        assert store.copy_new("out/b.bin", "claimed/a.json") is False
        assert store.read_bytes("claimed/a.json") == b"first"
    with pytest.raises(FileNotFoundError):
        store.copy_new("out/gone.json", "claimed/gone.json")


def test_reads_lists_overwrites_moves_and_deletes(store: Store, tmp_path: Path) -> None:
    store.write_bytes("runs/r1/config.json", b"{}")
    store.write_bytes("runs/r1/config.json", b'{"a": 1}')  # an overwrite put replaces
    store.write_bytes("runs/r1/best/model.bin", b"weights")
    assert store.read_bytes("runs/r1/config.json") == b'{"a": 1}'
    assert store.exists("runs/r1/config.json") and not store.exists("runs/r1/nothing")
    assert store.list("runs/") == ["runs/r1/best/model.bin", "runs/r1/config.json"]
    top = store.list_objects("runs/r1/", delimiter="/")
    assert [o.key for o in top] == ["runs/r1/config.json"]
    assert top[0].size == len(b'{"a": 1}')
    info = store.info("runs/r1/best/model.bin")
    assert info is not None and info.size == 7 and info.generation > 0
    assert store.info("runs/r1/nothing") is None
    digest = store.file_digest("runs/r1/best/model.bin")
    assert digest is not None and digest.size == 7
    assert store.file_digest("runs/r1/nothing") is None

    store.download_file("runs/r1/best/model.bin", tmp_path / "down" / "model.bin")
    assert (tmp_path / "down" / "model.bin").read_bytes() == b"weights"
    with pytest.raises(FileNotFoundError):
        store.read_bytes("runs/r1/nothing")

    store.move("runs/r1/config.json", "runs/r1/moved.json")
    assert store.list("runs/r1/") == ["runs/r1/best/model.bin", "runs/r1/moved.json"]
    with pytest.raises(FileNotFoundError):
        store.move("runs/r1/config.json", "runs/r1/again.json")
    store.delete("runs/r1/moved.json")
    store.delete("runs/r1/moved.json")  # a missing object is left alone
    store.delete_prefix("runs/")
    assert store.list("runs/") == []


def test_compare_and_set_on_the_pointer(store: Store) -> None:
    data, generation = store.read_with_generation("models/production.json")
    assert data is None and generation == NO_OBJECT
    first = store.write_if_generation("models/production.json", b'{"v": 1}', NO_OBJECT)
    with pytest.raises(PreconditionFailed):  # must not exist yet, but does
        store.write_if_generation("models/production.json", b'{"v": 2}', NO_OBJECT)
    second = store.write_if_generation("models/production.json", b'{"v": 2}', first)
    with pytest.raises(PreconditionFailed):  # a stale generation loses
        store.write_if_generation("models/production.json", b'{"v": 3}', first)
    assert store.read_with_generation("models/production.json") == (b'{"v": 2}', second)


def test_a_missing_gcs_object_is_object_not_found(gcs_bucket: str) -> None:
    store = open_store(f"gs://{gcs_bucket}")
    with pytest.raises(ObjectNotFound):
        store.read_bytes("nothing")


class _Recorder:
    """Stands in for a bucket and its blobs: records each call's keyword arguments."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.name = "bucket"
        self.client = self

    def blob(self, name: str, generation: int | None = None) -> _Recorder:
        return self

    def __getattr__(self, method: str) -> Any:
        def call(*args: Any, **kwargs: Any) -> Any:
            self.calls.append((method, kwargs))
            if method == "download_as_bytes":
                return b""
            if method in ("list_blobs",):
                return []
            return None

        return call


def test_every_gcs_call_carries_the_timeout_and_retry_deadline(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from artifact_store import gcs

    def no_client() -> None:
        raise AssertionError("a store made no call yet, so it needs no client")

    monkeypatch.setattr(gcs, "storage_client", no_client)
    bounds = Deadlines(call_s=3.0, retry_s=7.0, first_backoff_s=0.1, max_backoff_s=1.0)
    store = GcsStore("gs://bucket/prefix", bounds)  # no client made here
    recorder = _Recorder()
    store._bucket = recorder
    local = tmp_path / "f"
    local.write_bytes(b"x")

    store.exists("k")
    store.read_bytes("k")
    store.download_file("k", tmp_path / "d")
    store.list("p/")
    store.info("k")
    store.file_digest("k")
    store.write_bytes("k", b"x")
    store.upload_file(local, "k")
    store.put_new_bytes("k", b"x")
    store.put_new_file(local, "k")
    store.copy_new("k", "k2")
    store.move("k", "k3")
    store.delete("k")

    assert len(recorder.calls) == 13
    for method, kwargs in recorder.calls:
        assert kwargs["timeout"] == 3.0, method
        retry = kwargs["retry"]
        retry = getattr(retry, "retry_policy", retry)  # move's copy: retried only if conditional
        assert retry.timeout == 7.0, method
        assert (retry._initial, retry._maximum) == (0.1, 1.0), method
    write_once = [k for m, k in recorder.calls if "if_generation_match" in k]
    assert [k["if_generation_match"] for k in write_once] == [0, 0, 0, None]  # puts, copy, delete


def test_default_deadlines_are_the_clients_own() -> None:
    retry = Deadlines().retry()
    assert (Deadlines().call_s, retry.timeout) == (60.0, 120.0)
