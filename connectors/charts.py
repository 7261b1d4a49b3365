"""Charts of a replay: each constrained metric over time per model with its confidence interval as a
band, its label-free estimate (calibrated models) with its own band, its threshold, the violations,
the segments that broke a constraint and the changes the change detector found."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from stream.core.catalog import Catalog
from stream.core.changes import CHANGE_CHECK_TYPE
from stream.core.constraints import Constraint
from stream.core.estimates import ESTIMATED_PREFIX
from stream.errors import ConfigError


def panels(windows: pd.DataFrame, catalog: Catalog) -> list[tuple[str, Constraint]]:
    """(model, constraint) pairs to draw: every constrained metric of every model replayed."""
    out = []
    for model in sorted(windows["model"].unique()) if not windows.empty else []:
        constraints = catalog.constraints(model)
        for constraint in constraints.constraints if constraints else ():
            if constraint.metric_name in windows.columns:
                out.append((model, constraint))
    return out


def _series(
    windows: pd.DataFrame, violations: pd.DataFrame, model: str, c: Constraint
) -> tuple[pd.DataFrame, pd.DataFrame]:
    rows = windows[windows["model"] == model].sort_values("window_start")
    mine = (violations["model"] == model) & (violations["metric_name"] == c.reported_name)
    mine &= violations["constraint_check_type"] != CHANGE_CHECK_TYPE  # changes are marked apart
    if "segment" in violations.columns:
        mine &= violations["segment"].fillna("") == ""  # a segment's violations mark its own line
    return rows, violations[mine]


def _changes(violations: pd.DataFrame, model: str) -> list[pd.Timestamp]:
    """When the model's accuracy changed (the whole window's, as the change detector placed it)."""
    if "change_since" not in violations.columns:
        return []
    found = violations[(violations["model"] == model) & (violations["constraint_check_type"] == CHANGE_CHECK_TYPE)]
    if "segment" in found.columns:
        found = found[found["segment"].fillna("") == ""]
    return sorted(found["change_since"].dropna().unique())


def _segment_lines(
    segments: pd.DataFrame | None, violations: pd.DataFrame, model: str, c: Constraint
) -> list[tuple[str, pd.DataFrame, pd.DataFrame]]:
    """(segment, its windows' values of the metric, its violations) of every segment of the model
    that broke the constraint at least once: the segments worth a line of their own."""
    if segments is None or segments.empty or "segment" not in violations.columns:
        return []
    bad = violations[(violations["model"] == model) & (violations["metric_name"] == c.reported_name)]
    bad = bad[(bad["segment"].fillna("") != "") & (bad["constraint_check_type"] != CHANGE_CHECK_TYPE)]
    out = []
    for name in sorted(bad["segment"].unique()):
        key, _, value = name.partition("=")
        rows = segments[
            (segments["model"] == model) & (segments["segment_key"] == key) & (segments["segment_value"] == value)
        ].sort_values("window_start")
        if c.metric_name in rows.columns:
            out.append((name, rows[["window_start", c.metric_name]].dropna(), bad[bad["segment"] == name]))
    return out


def _band(rows: pd.DataFrame, metric: str) -> pd.DataFrame | None:
    """The windows' confidence interval of a metric (window_start, lower, upper), or None without one."""
    lower, upper = f"{metric}_lower", f"{metric}_upper"
    if lower not in rows.columns:
        return None
    band = rows[["window_start", lower, upper]].dropna()
    return band.rename(columns={lower: "lower", upper: "upper"}) if not band.empty else None


def _estimate(rows: pd.DataFrame, metric: str) -> tuple[pd.DataFrame, pd.DataFrame | None] | None:
    """The windows' label-free estimate of a metric (window_start, value) and its band, or None."""
    name = f"{ESTIMATED_PREFIX}{metric}"
    if name not in rows.columns:
        return None
    line = rows[["window_start", name]].dropna().rename(columns={name: "value"})
    return (line, _band(rows, name)) if not line.empty else None


def matplotlib_figure(
    windows: pd.DataFrame, violations: pd.DataFrame, catalog: Catalog, segments: pd.DataFrame | None = None
) -> Any:
    """A matplotlib Figure, one panel per (model, constrained metric); a segment that broke the
    constraint gets a thin line of its own, its violations marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    todo = panels(windows, catalog)
    if not todo:
        raise ConfigError("nothing to plot: no replayed model has constraints (give --constraints)")
    fig, axes = plt.subplots(len(todo), 1, figsize=(11, 2.8 * len(todo)), sharex=True, squeeze=False)
    for ax, (model, c) in zip(axes[:, 0], todo):
        rows, bad = _series(windows, violations, model, c)
        ax.plot(rows["window_start"], rows[c.metric_name], marker=".", color="tab:blue", label=c.metric_name)
        band = _band(rows, c.metric_name)
        if band is not None:
            ax.fill_between(band["window_start"], band["lower"], band["upper"], color="tab:blue", alpha=0.15,
                            step=None, label="confidence interval")  # fmt: skip
        estimate = _estimate(rows, c.metric_name)
        if estimate is not None:
            line, estimate_band = estimate
            ax.plot(line["window_start"], line["value"], linestyle=":", marker=".", color="tab:green",
                    label="estimated from the scores (no labels)")  # fmt: skip
            if estimate_band is not None:
                ax.fill_between(estimate_band["window_start"], estimate_band["lower"], estimate_band["upper"],
                                color="tab:green", alpha=0.12, label="estimate's interval")  # fmt: skip
        for i, since in enumerate(_changes(violations, model)):
            ax.axvline(since, color="tab:purple", linestyle=":", label="change detected (since)" if i == 0 else None)
        for name, line, marks in _segment_lines(segments, violations, model, c):
            drawn = ax.plot(line["window_start"], line[c.metric_name], linewidth=1, alpha=0.8, label=f"segment {name}")
            ax.scatter(marks["window_start"], marks["value"], color=drawn[0].get_color(), marker="x", s=40, zorder=3)
        ax.axhline(
            c.threshold,
            color="tab:orange",
            linestyle="--",
            label=f"threshold: violation if {c.comparison_operator} {c.threshold:g}",
        )
        if not bad.empty:
            ax.scatter(
                bad["window_start"],
                bad["value"],
                color="tab:red",
                marker="x",
                s=60,
                zorder=3,
                label=f"violations ({len(bad)})",
            )
        ax.set_title(f"{model}: {c.metric_name}", loc="left", fontsize=10)
        ax.set_ylabel(c.metric_name)
        ax.grid(alpha=0.3)
        ax.legend(loc="lower left", fontsize=8)
    axes[-1, 0].set_xlabel("window start (UTC, event time)")
    fig.autofmt_xdate()
    fig.tight_layout()
    return fig


def _band_trace(go: Any, band: pd.DataFrame, color: str, name: str) -> Any:
    """A plotly trace shading a band (window_start, lower, upper)."""
    return go.Scatter(
        x=pd.concat([band["window_start"], band["window_start"][::-1]]),
        y=pd.concat([band["upper"], band["lower"][::-1]]),
        fill="toself",
        fillcolor=color,
        line={"width": 0},
        name=name,
    )


def plotly_figure(
    windows: pd.DataFrame, violations: pd.DataFrame, catalog: Catalog, segments: pd.DataFrame | None = None
) -> Any:
    """The same chart as an interactive plotly Figure."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    todo = panels(windows, catalog)
    if not todo:
        raise ConfigError("nothing to plot: no replayed model has constraints (give --constraints)")
    fig = make_subplots(
        rows=len(todo), cols=1, shared_xaxes=True, subplot_titles=[f"{m}: {c.metric_name}" for m, c in todo]
    )
    for i, (model, c) in enumerate(todo, start=1):
        rows, bad = _series(windows, violations, model, c)
        fig.add_trace(
            go.Scatter(
                x=rows["window_start"], y=rows[c.metric_name], mode="lines+markers", name=f"{model} {c.metric_name}"
            ),
            row=i,
            col=1,
        )
        band = _band(rows, c.metric_name)
        if band is not None:
            name = f"{model} {c.metric_name} confidence interval"
            fig.add_trace(_band_trace(go, band, "rgba(31, 119, 180, 0.15)", name), row=i, col=1)
        estimate = _estimate(rows, c.metric_name)
        if estimate is not None:
            line, estimate_band = estimate
            fig.add_trace(
                go.Scatter(
                    x=line["window_start"],
                    y=line["value"],
                    mode="lines+markers",
                    line={"dash": "dot", "color": "green"},
                    name=f"{model} {c.metric_name} estimated from the scores (no labels)",
                ),
                row=i,
                col=1,
            )
            if estimate_band is not None:
                name = f"{model} {c.metric_name} estimate's interval"
                fig.add_trace(_band_trace(go, estimate_band, "rgba(44, 160, 44, 0.12)", name), row=i, col=1)
        for since in _changes(violations, model):
            fig.add_vline(x=since, line_dash="dot", line_color="purple", row=i, col=1)
        for name, line, marks in _segment_lines(segments, violations, model, c):
            fig.add_trace(
                go.Scatter(
                    x=line["window_start"],
                    y=line[c.metric_name],
                    mode="lines",
                    line={"width": 1},
                    name=f"{model} segment {name} ({len(marks)} violations)",
                ),
                row=i,
                col=1,
            )
        fig.add_trace(
            go.Scatter(
                x=[rows["window_start"].min(), rows["window_start"].max()],
                y=[c.threshold, c.threshold],
                mode="lines",
                line={"dash": "dash"},
                name=f"{model} {c.metric_name} {c.comparison_operator} {c.threshold:g}",
            ),
            row=i,
            col=1,
        )
        if not bad.empty:
            fig.add_trace(
                go.Scatter(
                    x=bad["window_start"],
                    y=bad["value"],
                    mode="markers",
                    marker={"symbol": "x", "size": 10, "color": "red"},
                    text=bad["description"],
                    name=f"{model} {c.metric_name} violations",
                ),
                row=i,
                col=1,
            )
    fig.update_layout(height=280 * len(todo) + 100, title="truthstream replay")
    return fig


def write_chart(
    windows: pd.DataFrame,
    violations: pd.DataFrame,
    catalog: Catalog,
    path: Path,
    segments: pd.DataFrame | None = None,
) -> None:
    """Write the chart as PNG (matplotlib) or self-contained HTML (plotly), by extension."""
    suffix = path.suffix.lower()
    try:
        if suffix == ".png":
            fig = matplotlib_figure(windows, violations, catalog, segments)
            fig.savefig(path, dpi=110)
        elif suffix in (".html", ".htm"):
            plotly_figure(windows, violations, catalog, segments).write_html(path, include_plotlyjs=True)
        else:
            raise ConfigError(f"--plot {path}: use a .png or .html file name")
    except ImportError as exc:
        raise ConfigError(f"charts need {exc.name}: pip install 'truthstream[replay]'") from None
