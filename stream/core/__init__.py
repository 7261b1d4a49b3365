"""The monitor's core: plain objects with no I/O, driven identically by the worker, replay and the baseline.

records (the input contract) and sagemaker (SageMaker's record shapes), timefmt, windows,
aggregate (mergeable window counters), metrics, intervals (their confidence intervals),
constraints, catalog (what is known of each
model), outputs (metrics, violation and dead-letter records), config (what the core needs
of the settings), state (the store contract and storage codecs), step (one batch, pure)
and engine (drives the step over a store and closes windows by event time); baseline
(SageMaker's statistics.json from a labelled data set). Imports stay inside this package
and `stream.errors` (checked by tests/test_layers.py).
"""
