"""The consumer's garbage collector (services/consumer/collector.py): the automatic
collector off, cycles freed by the periodic pass and counted."""

from __future__ import annotations

import asyncio
import gc
import weakref
from collections.abc import Iterator

import pytest
from prometheus_client import REGISTRY

from services.consumer import collector


@pytest.fixture
def collector_taken_over() -> Iterator[None]:
    enabled = gc.isenabled()
    collector.take_over()
    try:
        yield
    finally:
        gc.unfreeze()
        if enabled:
            gc.enable()


class Node:
    def __init__(self) -> None:
        self.other: Node | None = None


def cycle() -> weakref.ref[Node]:
    """Two objects that refer to each other, unreachable once this returns."""
    a, b = Node(), Node()
    a.other, b.other = b, a
    return weakref.ref(a)


def collected_so_far() -> float:
    return REGISTRY.get_sample_value("ledger_gc_collected_total") or 0.0


@pytest.mark.usefixtures("collector_taken_over")
def test_the_automatic_collector_is_off_and_a_pass_frees_cycles() -> None:
    assert not gc.isenabled()
    before = collected_so_far()
    garbage = cycle()
    for _ in range(200_000):  # far past any automatic threshold: nothing collects it
        Node()
    assert garbage() is not None
    found = collector.collect()
    assert garbage() is None
    assert found >= 2
    assert collected_so_far() - before == found


@pytest.mark.usefixtures("collector_taken_over")
async def test_the_passes_run_every_period() -> None:
    garbage = cycle()
    passes = asyncio.create_task(collector.collect_every(0.05))
    try:
        for _ in range(100):
            await asyncio.sleep(0.02)
            if garbage() is None:
                break
    finally:
        passes.cancel()
    assert garbage() is None
