"""The monitor's core: plain objects with no I/O, driven identically by the worker, replay and the baseline.

records (the input contract) and sagemaker (SageMaker's record shapes), timefmt, windows,
aggregate (mergeable window counters), metrics, intervals (their confidence intervals), estimates
and calibration (label-free), segments, changes and change_events (change points), constraints,
catalog (what is known of each model), per_model (the per-model list syntax), outputs (metrics,
violation and dead-letter records), config (what the core needs of the settings), state (join
entries, a step's view and result, outputs), contract (what crosses to a store), step (one batch,
pure), engine (drives the step over a store and closes windows by event time), baseline
(SageMaker's statistics.json from a labelled data set). Imports stay inside this package and
`stream.errors` (checked by tests/test_layers.py).
"""
