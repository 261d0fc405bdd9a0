"""The suite refuses a collection in which two tests share a node id (see tests/conftest.py)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from tests.conftest import pytest_collection_modifyitems, repeated_node_ids


def test_repeated_node_ids_are_named_once_each() -> None:
    ids = ["a.py::t", "a.py::u", "a.py::t", "b.py::t", "a.py::t"]
    assert repeated_node_ids(ids) == ["a.py::t"]


def test_a_collection_with_a_repeated_node_id_is_refused() -> None:
    items = [SimpleNamespace(nodeid="a.py::t[x]"), SimpleNamespace(nodeid="a.py::t[x]")]
    with pytest.raises(pytest.UsageError, match=r"a\.py::t\[x\]"):
        pytest_collection_modifyitems(items)  # type: ignore[arg-type]
    pytest_collection_modifyitems([SimpleNamespace(nodeid="a.py::t[y]"), items[0]])  # type: ignore[list-item]
