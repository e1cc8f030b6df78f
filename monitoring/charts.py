"""SVG geometry for the dashboard's charts, computed server-side (no chart library, no JavaScript).

The templates draw ``<polyline>``/``<path>``/``<rect>`` elements from these numbers; the
live page redraws sparklines with the same formula (``dashboard.js``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from monitoring.metrics import Point, Series

SPARK_WIDTH = 120
SPARK_HEIGHT = 28


def sparkline(values: Sequence[float], width: int = SPARK_WIDTH, height: int = SPARK_HEIGHT) -> str:
    """Polyline points of ``values`` scaled to the box (a flat line at the bottom when all are zero)."""
    if not values:
        return ""
    top = max(values) or 1
    step = width / max(len(values) - 1, 1)
    return " ".join(f"{i * step:.1f},{height - 1 - (value / top) * (height - 2):.1f}" for i, value in enumerate(values))


def nice_ceiling(value: float) -> float:
    """The smallest 1, 2 or 5 times a power of ten that is >= value (a readable axis maximum)."""
    if value <= 0:
        return 1.0
    power = 10 ** math.floor(math.log10(value))
    for factor in (1, 2, 5, 10):
        if value <= factor * power:
            return float(factor * power)
    return float(10 * power)


@dataclass
class Chart:
    """One chart's drawable parts in a ``0 0 width height`` viewBox."""

    width: int = 640
    height: int = 180
    left: int = 48  # room for the y labels
    bottom: int = 22  # room for the x labels
    y_max: float = 1.0
    y_unit: str = ""
    lines: list[dict[str, str]] = field(default_factory=list)  # {"name", "css", "d"}
    bars: list[dict[str, float | str]] = field(default_factory=list)  # {"x", "y", "w", "h", "css", "title"}
    grid: list[dict[str, float | str]] = field(default_factory=list)  # {"y", "label"}
    x_labels: list[dict[str, float | str]] = field(default_factory=list)  # {"x", "label", "anchor"}
    empty: bool = True

    @property
    def plot_width(self) -> float:
        return self.width - self.left - 8

    @property
    def plot_height(self) -> float:
        return self.height - self.bottom - 8

    def x(self, index: int, count: int) -> float:
        return self.left + (index + 0.5) * self.plot_width / max(count, 1)

    def y(self, value: float) -> float:
        return 8 + self.plot_height * (1 - value / self.y_max)


def _axes(chart: Chart, series: Series, fmt: str) -> None:
    chart.grid = [
        {"y": round(chart.y(chart.y_max * f), 1), "label": _number(chart.y_max * f) + chart.y_unit} for f in (0, 0.5, 1)
    ]
    points = series.points
    if points:
        chart.x_labels = [
            {"x": chart.left, "label": _time(points[0].bucket, fmt), "anchor": "start"},
            {
                "x": chart.left + chart.plot_width / 2,
                "label": _time(points[len(points) // 2].bucket, fmt),
                "anchor": "middle",
            },
            {"x": chart.left + chart.plot_width, "label": _time(points[-1].bucket, fmt), "anchor": "end"},
        ]


def latency_chart(series: Series, fmt: str) -> Chart:
    """p50/p95/p99 lines, broken where a bucket had no calls."""
    chart = Chart(y_unit=" ms")
    values = [p.p99 for p in series.points if p.p99 is not None]
    chart.empty = not values
    chart.y_max = nice_ceiling(max(values, default=0))
    for name, attribute in (("p50", "p50"), ("p95", "p95"), ("p99", "p99")):
        chart.lines.append({"name": name, "css": f"line-{name}", "d": _path(chart, series.points, attribute)})
    _axes(chart, series, fmt)
    return chart


def _bar(chart: Chart, x: float, width: float, value: float, css: str, title: str) -> dict[str, float | str]:
    """A bar from the baseline up to `value`."""
    top = chart.y(value)
    return {
        "x": round(x, 2),
        "y": round(top, 2),
        "w": round(width, 2),
        "h": round(chart.y(0) - top, 2),
        "css": css,
        "title": title,
    }


def calls_chart(series: Series, fmt: str) -> Chart:
    """Calls per bucket as bars, their errors as red bars over them."""
    chart = Chart()
    counts = [p.count for p in series.points]
    chart.empty = not any(counts)
    chart.y_max = nice_ceiling(max(counts, default=0))
    count = len(series.points)
    width = max(chart.plot_width / max(count, 1) - 1, 0.6)
    for i, point in enumerate(series.points):
        if not point.count:
            continue
        x = chart.x(i, count) - width / 2
        title = f"{_time(point.bucket, fmt)}: {point.count} calls, {point.errors} errors"
        chart.bars.append(_bar(chart, x, width, point.count, "bar-calls", title))
        if point.errors:
            chart.bars.append(_bar(chart, x, width, point.errors, "bar-errors", title))
    _axes(chart, series, fmt)
    return chart


def _path(chart: Chart, points: Sequence[Point], attribute: str) -> str:
    parts: list[str] = []
    pen_down = False
    for i, point in enumerate(points):
        value = getattr(point, attribute)
        if value is None:
            pen_down = False
            continue
        parts.append(f"{'L' if pen_down else 'M'}{chart.x(i, len(points)):.1f},{chart.y(min(value, chart.y_max)):.1f}")
        pen_down = True
    return " ".join(parts)


def _number(value: float) -> str:
    if value >= 1000:
        return f"{value / 1000:g}k"
    return f"{value:g}"


def _time(moment: datetime, fmt: str) -> str:
    return moment.strftime(fmt)
