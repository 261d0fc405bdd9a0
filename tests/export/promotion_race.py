"""Two promotions that both read the production pointer before either writes: the race that the
generation precondition must settle (exactly one wins)."""

from __future__ import annotations

import threading

from artifact_store import PreconditionFailed, Store
from export import publish


def race_two_promotions(store: Store, version: str) -> list[str]:
    """Returns the sorted outcomes, ["lost", "won"] when the store is a correct compare-and-set."""
    both_read = threading.Barrier(2)
    original = store.read_with_generation

    def read_then_wait(key: str):
        result = original(key)
        both_read.wait(timeout=10)
        return result

    outcomes: list[str] = []

    def promoter() -> None:
        try:
            publish.promote(store, version)
            outcomes.append("won")
        except PreconditionFailed:
            outcomes.append("lost")

    store.read_with_generation = read_then_wait  # type: ignore[method-assign]
    try:
        threads = [threading.Thread(target=promoter) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=30)
    finally:
        store.read_with_generation = original  # type: ignore[method-assign]
    return sorted(outcomes)
