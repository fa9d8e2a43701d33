"""Bar charts for the status page as plain SVG geometry, drawn by the template."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

WIDTH = 720
HEIGHT = 160
MARGIN_LEFT = 44
MARGIN_BOTTOM = 22
MARGIN_TOP = 8


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    hour: datetime
    count: int


@dataclass(frozen=True)
class Chart:
    bars: list[Bar]
    peak: int
    total: int
    ticks: list[tuple[float, str]]
    width: int = WIDTH
    height: int = HEIGHT
    left: int = MARGIN_LEFT
    baseline: int = HEIGHT - MARGIN_BOTTOM


def hourly_bars(points: list[dict]) -> Chart:
    """One bar per {hour, count}; the tallest fills the plot; a tick every 6 hours."""
    peak = max((point["count"] for point in points), default=0)
    plot_width = WIDTH - MARGIN_LEFT
    plot_height = HEIGHT - MARGIN_BOTTOM - MARGIN_TOP
    slot = plot_width / max(1, len(points))
    bars, ticks = [], []
    for index, point in enumerate(points):
        height = plot_height * point["count"] / peak if peak else 0.0
        x = MARGIN_LEFT + index * slot
        bar = Bar(
            x=round(x + 1, 1),
            y=round(HEIGHT - MARGIN_BOTTOM - height, 1),
            width=round(max(1.0, slot - 2), 1),
            height=round(height, 1),
            hour=point["hour"],
            count=point["count"],
        )
        bars.append(bar)
        if point["hour"].hour % 6 == 0:
            ticks.append((round(x, 1), point["hour"].strftime("%d %H:00")))
    return Chart(bars, peak, sum(point["count"] for point in points), ticks)
