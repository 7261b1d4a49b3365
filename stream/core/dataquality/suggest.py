"""The constraints.json a data-quality baseline suggests, as SageMaker's analyzer writes it: per
feature its type and observed completeness, `is_non_negative` for numbers, a domain for a
categorical string column, and the monitoring configuration's defaults."""

from __future__ import annotations

import copy
from typing import Any

from stream.core.dataquality.profile import DataProfile, FeatureProfile
from stream.core.dataquality.types import NUMERIC, STRING

# What every service-written file of 2020-2022 holds (SageMaker's defaults).
MONITORING_CONFIG: dict[str, Any] = {
    "evaluate_constraints": "Enabled",
    "emit_metrics": "Enabled",
    "datatype_check_threshold": 1.0,
    "domain_content_threshold": 1.0,
    "distribution_constraints": {
        "perform_comparison": "Enabled",
        "comparison_threshold": 0.1,
        "comparison_method": "Robust",
    },
}
# Added by the analyzer since 2023: the drift of categorical features.
CATEGORICAL_KEYS = {"categorical_comparison_threshold": 0.1, "categorical_drift_method": "LInfinity"}
PROFILES = ("2022", "2023")  # the analyzer's versions whose defaults can be written
ONCE_SHARE = 0.1  # a domain is suggested when at most this share of the values was seen once


def feature_constraint(profile: FeatureProfile) -> dict[str, Any]:
    """One feature's entry."""
    kind = profile.inferred_type
    out: dict[str, Any] = {"name": profile.name, "inferred_type": kind, "completeness": profile.completeness()}
    if kind in NUMERIC:
        out["num_constraints"] = {"is_non_negative": profile.minimum >= 0}
    elif kind == STRING and not profile.high_cardinality and profile.categories:
        seen_once = sum(1 for n in profile.categories.values() if n == 1)
        if seen_once / len(profile.categories) <= ONCE_SHARE:  # Deequ's CategoricalRangeRule
            out["string_constraints"] = {"domains": [b["value"] for b in profile.category_buckets()]}
    return out


def suggest_constraints(profile: DataProfile, analyzer: str = "2022") -> dict[str, Any]:
    """constraints.json for the data set; `analyzer` "2023" adds the categorical drift keys."""
    config = copy.deepcopy(MONITORING_CONFIG)  # a caller may edit its copy: never the defaults
    if analyzer == "2023":
        config["distribution_constraints"].update(CATEGORICAL_KEYS)
    return {
        "version": 0.0,
        "features": [feature_constraint(profile.features[name]) for name in profile.names],
        "monitoring_config": config,
    }
