"""truthstream: a streaming model-quality monitor (the SageMaker Model Monitor model-quality job, continuously).

Layers, inner first: `stream.core` (no I/O), then `stream.stores` (memory, Redis) and
`stream.worker` (the Faust app) with the settings, errors, logging and retry modules beside
them; `connectors` (the commands and the outside world) depends on this package, never
the other way round.
"""

__version__ = "0.5.2"
