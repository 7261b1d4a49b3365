"""`truthstream replay`: argument handling and output of a replay or a republish."""

from __future__ import annotations

import argparse
from pathlib import Path

from connectors.charts import panels, write_chart
from connectors.replay import ReplayError, replay, republish, summary, violations_frame, windows_frame, write_frame
from stream.catalog import Catalog
from stream.settings import Settings
from stream.timefmt import parse_time


def _time(value: str | None, flag: str) -> float | None:
    if value is None:
        return None
    try:
        return parse_time(value)
    except ValueError as exc:
        raise ReplayError(f"{flag} {value!r}: {exc}; use ISO-8601 (2026-11-24T10:00:00Z) or epoch seconds") from None


def _check_suffix(path: str | None, flag: str, allowed: tuple[str, ...]) -> Path | None:
    if path is None:
        return None
    out = Path(path)
    if out.suffix.lower() not in allowed:
        raise ReplayError(f"{flag} {path}: use a file name ending in {' or '.join(allowed)}")
    if not out.parent.exists():
        raise ReplayError(f"{flag} {path}: directory {out.parent} does not exist")
    return out


def run_replay(args: argparse.Namespace, settings: Settings) -> int:
    """Validate everything, then replay (or republish) and write the outputs; nothing is written on error."""
    from_s, to_s = _time(args.from_time, "--from"), _time(args.to_time, "--to")
    if from_s is not None and to_s is not None and from_s >= to_s:
        raise ReplayError(f"--from {args.from_time} is not before --to {args.to_time}")
    if args.to_topic is not None:
        sent = republish(settings, from_s, to_s, args.to_topic)
        for topic, n in sorted(sent.items()):
            print(f"{n} records copied to {topic}")
        return 0
    out = _check_suffix(args.out, "--out", (".csv", ".parquet"))
    plot = _check_suffix(args.plot, "--plot", (".png", ".html"))
    catalog = Catalog.from_settings(settings)
    catalogs = {Path(settings.constraints).name if settings.constraints else "constraints": catalog}
    if args.compare:
        catalogs[Path(args.compare).name if args.compare != settings.constraints else "compare"] = Catalog.load(
            args.compare, settings.problem_type, settings.problem_type_map()
        )  # type: ignore[arg-type]
    result = replay(settings, catalog, from_s, to_s)
    if args.model:
        seen = {r["model"] for r in result.records}
        unknown = sorted(set(args.model) - seen)
        if unknown:
            raise ReplayError(
                f"no closed window of model(s) {', '.join(unknown)} in the span; "
                f"models seen: {', '.join(sorted(seen)) or 'none'}"
            )
        result.records = [r for r in result.records if r["model"] in set(args.model)]
    windows = windows_frame(result.records)
    violations = violations_frame(result.records, catalogs, settings.min_samples)
    print(summary(windows, violations, result))
    if plot is not None and not panels(windows, catalog):
        raise ReplayError(
            "nothing to plot: no replayed window belongs to a model with constraints "
            "(give --constraints); no file was written"
        )
    if out is not None:
        write_frame(windows, out)
        write_frame(violations, out.with_name(f"{out.stem}.violations{out.suffix}"))
        print(f"wrote {out} ({len(windows)} windows) and {out.stem}.violations{out.suffix} ({len(violations)} rows)")
    if plot is not None:
        write_chart(windows, violations[violations["constraints"] == next(iter(catalogs))], catalog, plot)
        print(f"wrote {plot}")
    return 0
