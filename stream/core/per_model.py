"""One syntax for every setting that lists values per model (constraints, calibrations, segments,
problem types, classes)::

    VALUE|VALUE                        the same for every model
    MODEL=VALUE|VALUE;MODEL=VALUE      per model

`,` also separates entries (and, for every model, values) as earlier versions wrote them, when the
text holds no `;` (or no `|`).
"""

from __future__ import annotations

from stream.errors import ConfigError


def parse_per_model(text: str, variable: str) -> tuple[tuple[str, ...], dict[str, tuple[str, ...]]]:
    """The values for every model, or per model; ConfigError naming `variable` for a malformed entry.

    >>> parse_per_model("features.country|features.device", "SEGMENTS")
    (('features.country', 'features.device'), {})
    >>> parse_per_model("churn=a|b;fraud=c", "SEGMENTS")
    ((), {'churn': ('a', 'b'), 'fraud': ('c',)})
    >>> parse_per_model("churn=BinaryClassification,species=MulticlassClassification", "TYPES")[1]["species"]
    ('MulticlassClassification',)
    """
    text = text.strip()
    if not text:
        return (), {}
    if "=" not in text:
        values = tuple(v.strip() for v in text.split("|" if "|" in text else ",") if v.strip())
        return values, {}
    per_model: dict[str, tuple[str, ...]] = {}
    for entry in filter(None, (e.strip() for e in text.split(";" if ";" in text else ","))):
        model, found, rest = entry.partition("=")
        values = tuple(v.strip() for v in rest.split("|") if v.strip())
        if not found or not model.strip() or not values:
            raise ConfigError(f"{variable} entry {entry!r} is not model=value (or model=value|value|...)")
        per_model[model.strip()] = values
    return (), per_model
