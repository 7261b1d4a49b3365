"""`truthstream replay`: recompute and backtest a span of history, or copy it to fresh topics."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from stream.settings import Settings

if TYPE_CHECKING:
    from connectors.replay import Replay

HELP = "recompute metrics and violations for a time span of the topics (backtest)"
DESCRIPTION = (
    "Recompute joins, windows, metrics and violations from the inference and label topics with the worker's "
    "own engine and the settings given here (no consumer group, no Redis, nothing committed). --from/--to "
    "are inference (event) times: every tumbling window overlapping them is reported. Replay reads the "
    "topics from record time (first window start - TRUTHSTREAM_MAX_FUTURE_SECONDS), since no accepted "
    "inference of the span was stamped earlier, until the stream's event time has passed the last window's "
    "end plus the label grace, or the topics end. Prints a summary; --out writes a table, --compare judges "
    "the same windows with other constraints, --plot draws a chart."
)
SETTINGS = ("kafka", "inputs", "models", "windows", "limits", "capture")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The span, the outputs and the settings of the recomputation."""
    from connectors.options import positive_int

    parser.add_argument(
        "--from",
        dest="from_time",
        metavar="TIME",
        help="first inference time of the span (ISO-8601 or epoch seconds; default: the topics' beginning)",
    )
    parser.add_argument(
        "--to", dest="to_time", metavar="TIME", help="end of the span, exclusive, in inference time (default: the end)"
    )
    parser.add_argument(
        "--compare",
        metavar="CONSTRAINTS",
        help="another constraints.json (or directory/mapping): report its violations beside the first's",
    )
    parser.add_argument(
        "--model",
        action="append",
        default=[],
        metavar="NAME",
        help="only these models (repeatable); an unknown name is an error",
    )
    parser.add_argument(
        "--out",
        metavar="FILE",
        help="windows table (.csv or .parquet); violations go to FILE with .violations before the extension",
    )
    parser.add_argument("--plot", metavar="FILE", help="chart of each constrained metric over time (.png or .html)")
    parser.add_argument(
        "--to-topic",
        metavar="PREFIX",
        help="instead of recomputing, copy the records the span needs (the ones replay reads) to topics "
        "PREFIX<inference topic> and PREFIX<label topic> (same partitions, keys and timestamps) for a fresh "
        "worker group",
    )
    parser.add_argument(
        "--processes",
        type=positive_int,
        metavar="N",
        help="share the input partitions among N processes (p mod N), each reading and joining its own, the "
        "windows closed in this one: the same windows, violations, segments and change events on N cores "
        "(each window's counts may go to another window of its model); default: the cores this command may "
        "use, 1 with --to-topic",
    )
    Settings.add_arguments(parser, SETTINGS)


def run(args: argparse.Namespace) -> int:
    """Validate everything, then replay (or republish) and write the outputs; nothing is written on error."""
    import logging

    if args.log_level != "debug":  # the reading consumer's connection and assignment lines are noise here
        logging.getLogger("aiokafka").setLevel(logging.WARNING)
    from connectors.options import time_option
    from stream.errors import ConfigError

    settings = Settings.from_args(args)
    from_s, to_s = time_option(args.from_time, "--from"), time_option(args.to_time, "--to")
    if from_s is not None and to_s is not None and from_s >= to_s:
        raise ConfigError(f"--from {args.from_time} is not before --to {args.to_time}")
    if args.to_topic is not None:
        from connectors.republish import republish

        for topic, n in sorted(republish(settings, from_s, to_s, args.to_topic).items()):
            print(f"{n} records copied to {topic}")
        return 0
    return _recompute(args, settings, from_s, to_s)


def _recompute(args: argparse.Namespace, settings: Settings, from_s: float | None, to_s: float | None) -> int:
    from connectors.charts import panels, write_chart
    from connectors.replay import replay
    from connectors.replay_split import usable_cores
    from connectors.replay_tables import (
        rejudge,
        segments_frame,
        summary,
        violations_frame,
        windows_frame,
        write_frame,
    )
    from stream.errors import ConfigError, InputError

    out = _output_path(args.out, "--out", (".csv", ".parquet"))
    plot = _output_path(args.plot, "--plot", (".png", ".html"))
    # Optional libraries are checked before any work, so that a missing one writes nothing.
    needed = {".parquet": ("pyarrow", out), ".png": ("matplotlib", plot), ".html": ("plotly", plot)}
    for suffix, (module, path) in needed.items():
        if path is not None and path.suffix.lower() == suffix:
            try:
                __import__(module)
            except ImportError:
                raise ConfigError(
                    f"{path} needs {module}: pip install 'truthstream[replay]'; nothing was written"
                ) from None
    catalog = settings.catalog()
    primary = Path(settings.constraints).name if settings.constraints else "constraints"
    compare = settings.catalog(args.compare) if args.compare else None
    result = replay(settings, catalog, from_s, to_s, processes=args.processes or usable_cores())
    if not result.records:
        raise InputError(_no_window(settings, result))
    if args.model:
        seen = {r["model"] for r in result.records}
        unknown = sorted(set(args.model) - seen)
        if unknown:
            raise InputError(
                f"no closed window of model(s) {', '.join(unknown)} in the span; "
                f"models seen: {', '.join(sorted(seen)) or 'none'}"
            )
        result.records = [r for r in result.records if r["model"] in set(args.model)]
        result.violations = [v for v in result.violations if v["model"] in set(args.model)]
    judged = {primary: result.violations}
    if compare is not None:
        name = Path(args.compare).name if args.compare != settings.constraints else "compare"
        judged[name] = rejudge(
            result.records,
            compare,
            settings.min_samples,
            settings.violation_rule,
            settings.segment_min_samples or settings.min_samples,
        )
    windows = windows_frame(result.records)
    violations = violations_frame(judged)
    print(summary(windows, violations, result))
    if plot is not None and windows.empty:
        raise ConfigError("nothing to plot: no window closed in the span; no file was written")
    if plot is not None and not panels(windows, catalog):
        raise ConfigError(
            "nothing to plot: no closed window belongs to a model with constraints"
            + ("" if settings.constraints else " (give --constraints)")
            + "; no file was written"
        )
    segments = segments_frame(result.records)
    if out is not None:
        write_frame(windows, out)
        write_frame(violations, out.with_name(f"{out.stem}.violations{out.suffix}"))
        print(f"wrote {out} ({len(windows)} windows) and {out.stem}.violations{out.suffix} ({len(violations)} rows)")
        if not segments.empty:
            write_frame(segments, out.with_name(f"{out.stem}.segments{out.suffix}"))
            print(f"wrote {out.stem}.segments{out.suffix} ({len(segments)} segment windows)")
    if plot is not None:
        write_chart(windows, violations[violations["constraints"] == primary], catalog, plot, segments)
        print(f"wrote {plot}")
    return 0


def _no_window(settings: Settings, result: Replay) -> str:
    """Why records were read but no window of the span closed: usually window settings other than the
    worker's (a window longer than what the topics hold), or a span that ends too soon."""
    from stream.core.timefmt import format_time
    from stream.settings.fields import setting_name

    read = f"read {result.messages} records"
    if result.inference_times is not None:
        low, high = result.inference_times
        read += f" (inferences of {format_time(low)} to {format_time(high)}, {high - low:g} s)"
    return (
        f"{read} but no window of the span closed ({result.open_windows} still open): a window closes once "
        f"event time passes its end plus the label grace, here {settings.window_seconds:g} s + "
        f"{settings.label_grace:g} s. Give the worker's window settings ({setting_name('window_seconds')}, "
        f"{setting_name('label_grace')}), or records past the span's end; nothing was written"
    )


def _output_path(path: str | None, flag: str, allowed: tuple[str, ...]) -> Path | None:
    """The path of an output flag, checked before any work: its extension and its directory."""
    from stream.errors import ConfigError

    if path is None:
        return None
    out = Path(path)
    if out.suffix.lower() not in allowed:
        raise ConfigError(f"{flag} {path}: use a file name ending in {' or '.join(allowed)}")
    if not out.parent.exists():
        raise ConfigError(f"{flag} {path}: directory {out.parent} does not exist")
    return out
