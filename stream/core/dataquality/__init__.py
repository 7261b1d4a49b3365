"""SageMaker's data-quality monitor, as its analyzer (Deequ on Spark) computes it: per-feature
statistics of the inputs (types, completeness, moments, a deterministic quantile sketch), suggested
constraints, and the checks of a monitoring run. Plain objects, no I/O: `baseline`, `check` and the
worker drive the same code.

    types       a value's type by Deequ's patterns, and a column's type from their counts
    sketch      Deequ's QuantileNonSample sketch (k=2048, c=0.64), its buckets and its CDF distance
    moments     Spark's central-moment recurrence (population standard deviation), mergeable
    profile     a feature's and a data set's statistics, in SageMaker's statistics.json shape
    suggest     the constraints.json a baseline suggests
    checks      a monitoring run's violations, in SageMaker's wording
    reference   a model's baseline files, as the worker judges its windows by them
    parts       a window's rows and folded profiles per partition, whole and per segment (the stores' form)
    window      a window's data-quality record and violation records
"""
