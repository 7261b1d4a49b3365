"""The event loop both worker processes run on."""

from __future__ import annotations

import asyncio


def use_fast_event_loop() -> None:
    """Run on uvloop when it is installed (`pip install 'truthstream[fast]'`): Faust spends much of
    its per-message time in the event loop."""
    try:
        import uvloop
    except ImportError:
        return
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
