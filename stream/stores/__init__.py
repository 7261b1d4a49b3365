"""State stores implementing `stream.core.state.StateStore`: `memory` (replay, tests) and `redis` (the worker)."""
