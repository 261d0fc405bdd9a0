"""The production pointer's contract: what export writes validates against
export/production_pointer.schema.json, and the one reader (production_pointer) reads it back."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest

from artifact_store import LocalStore
from export import publish
from production_pointer import POINTER_KEY, PointerError, parse_pointer
from tests.tiny_model import clone_bundle

SCHEMA = json.loads((Path(publish.__file__).parent / "production_pointer.schema.json").read_text())


def _written(store: LocalStore) -> dict:
    return json.loads(store.read_bytes(POINTER_KEY))


def test_pointers_export_writes_match_the_schema_and_read_back(
    tiny_bundle: Path, tmp_path: Path
) -> None:
    store = LocalStore(tmp_path / "store")
    first = publish.publish(tiny_bundle, store)
    second = publish.publish(
        clone_bundle(tiny_bundle, tmp_path / "second", "20991231T000000Z-bbbbbb"), store
    )
    written = []
    for move in (
        lambda: publish.promote(store, first),
        lambda: publish.promote(store, second),
        lambda: publish.rollback(store),
    ):
        returned = move()
        on_disk = _written(store)
        jsonschema.validate(on_disk, SCHEMA)
        assert returned == on_disk == parse_pointer(json.dumps(on_disk)).as_dict()
        written.append(on_disk)
    assert [p["version"] for p in written] == [first, second, first]
    assert written[1]["previous"] == first and written[1]["history"] == [first]
    assert written[2]["previous"] == second and written[2]["history"] == []


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"not json", "not valid JSON"),
        (b"[]", "no valid 'version'"),
        (b'{"version": "../../etc"}', "no valid 'version'"),
        (b'{"version": "20240101T000000Z-aaaaaa", "history": "x"}', "'history'"),
    ],
)
def test_the_reader_refuses_what_no_reader_can_use(raw: bytes, message: str) -> None:
    with pytest.raises(PointerError, match=message):
        parse_pointer(raw, "models/production.json")
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(json.loads(raw) if raw.startswith((b"{", b"[")) else raw, SCHEMA)


@pytest.mark.parametrize("version", ["20240101T000000Z-aaaaaa\n", "v1\n", "\nv1", "v1/"])
def test_a_version_with_a_trailing_newline_is_no_path_component(version: str) -> None:
    from serving_core.bundle import BundleError, bundle_beside_pointer

    with pytest.raises(PointerError, match="no valid 'version'"):
        parse_pointer(json.dumps({"version": version}))
    candidate = {"version": "20240101T000000Z-aaaaaa", "candidate": {"version": version}}
    with pytest.raises(PointerError, match="'candidate' with no valid 'version'"):
        parse_pointer(json.dumps(candidate))
    with pytest.raises(BundleError, match="not a valid version"):
        bundle_beside_pointer("gs://bucket/models/production.json", version)
