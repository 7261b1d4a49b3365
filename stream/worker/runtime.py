"""How both worker processes run: their event loop and their garbage collector."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Iterator
from contextlib import contextmanager

# Young objects are collected once per this many allocations (Python's default: 700). A batch
# allocates tens of thousands of short-lived objects that reference counting frees; collecting
# every 700 of them took 10-13 % of the engine's time in bench/ (1 and 1,000 models).
YOUNG_COLLECTION_THRESHOLD = 50_000


def use_fast_event_loop() -> None:
    """Run on uvloop when it is installed (`pip install 'truthstream[fast]'`): Faust spends much of
    its per-message time in the event loop."""
    try:
        import uvloop
    except ImportError:
        return
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


def collect_garbage_rarely() -> None:
    """Call once started: what exists now (modules, the app) is left out of every later collection
    (`gc.freeze`), and young objects are collected far less often (cycles are still collected)."""
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(YOUNG_COLLECTION_THRESHOLD, older, oldest)


@contextmanager
def collections_rare() -> Iterator[None]:
    """Young objects collected as rarely as in the worker while the block runs (a replay in a
    program of its own), the collector's thresholds as they were afterwards."""
    before = gc.get_threshold()
    gc.set_threshold(YOUNG_COLLECTION_THRESHOLD, *before[1:])
    try:
        yield
    finally:
        gc.set_threshold(*before)
