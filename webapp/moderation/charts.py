"""Chart geometry for the stats page, drawn by templates/moderation/_*.html as inline SVG.

No script and no style attribute: shapes are placed here in viewBox units
and coloured by CSS classes, so the charts render under a strict Content
Security Policy and in either theme.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date

WIDTH = 720
LEFT, RIGHT, TOP, BOTTOM = 44, 12, 12, 26  # margins of the stacked chart, for its axes
LABEL_WIDTH, VALUE_WIDTH = 190, 80  # the horizontal chart's label column and value text
ROW, GAP = 14, 10
HALF_WIDTH = {"width": 360, "label_width": 110}  # a horizontal chart in half the page


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    css: str
    title: str


@dataclass(frozen=True)
class Text:
    x: float
    y: float
    text: str


@dataclass
class StackedBars:
    height: int
    bars: list[Bar]
    y_ticks: list[Text]
    x_labels: list[Text]
    legend: list[tuple[str, str]]  # (css class, name)
    width: int = WIDTH
    empty: bool = False
    grid: list[float] = field(default_factory=list)

    @property
    def middle(self) -> Text:
        return Text(LEFT + (self.width - LEFT - RIGHT) / 2, TOP + (self.height - TOP - BOTTOM) / 2, "")


@dataclass
class HorizontalBars:
    height: int
    bars: list[Bar]
    labels: list[Text]
    values: list[Text]
    legend: list[tuple[str, str]]
    width: int = WIDTH
    empty: bool = False


def nice_ceiling(value: float) -> float:
    """The smallest of 1, 2, 2.5, 5 x 10^k at or above `value` (an axis maximum)."""
    if value <= 0:
        return 1
    power = 10 ** math.floor(math.log10(value))
    return next(step * power for step in (1, 2, 2.5, 5, 10) if step * power >= value)


def stacked_bars(
    days: Sequence[date], series: Sequence[str], counts: dict[date, dict[str, int]], *, height: int = 240
) -> StackedBars:
    """One column per day, stacked by series (categories) in the order given."""
    totals = [sum(counts.get(day, {}).values()) for day in days]
    top = nice_ceiling(max(totals, default=0))
    plot_width, plot_height = WIDTH - LEFT - RIGHT, height - TOP - BOTTOM
    slot = plot_width / max(len(days), 1)
    bars = []
    for index, day in enumerate(days):
        y = TOP + plot_height
        for name in series:
            count = counts.get(day, {}).get(name, 0)
            if not count:
                continue
            size = plot_height * count / top
            y -= size
            bars.append(
                Bar(
                    LEFT + index * slot + slot * 0.1,
                    y,
                    slot * 0.8,
                    size,
                    _series_class(name),
                    f"{day:%b %d}: {count} {name}",
                )
            )
    ticks = [0, top / 2, top] if (top / 2).is_integer() else [0, top]  # counts: whole numbers only
    y_ticks = [Text(LEFT - 6, TOP + plot_height * (1 - tick / top), _number(tick)) for tick in ticks]
    label_days = sorted({0, len(days) // 2, len(days) - 1}) if days else []
    x_labels = [Text(LEFT + (i + 0.5) * slot, height - 8, f"{days[i]:%b %d}") for i in label_days]
    return StackedBars(
        height=height,
        bars=bars,
        y_ticks=y_ticks,
        x_labels=x_labels,
        legend=[(_series_class(name), name) for name in series],
        empty=not any(totals),
        grid=[tick.y for tick in y_ticks],
    )


def horizontal_bars(
    rows: Sequence[tuple[str, Sequence[float]]],
    *,
    series: Sequence[str],
    unit: str = "",
    width: int = WIDTH,
    label_width: int = LABEL_WIDTH,
) -> HorizontalBars:
    """One group of bars per row (label, one value per series), scaled to the largest value."""
    top = max((value for _, values in rows for value in values), default=0) or 1
    plot_width = width - label_width - VALUE_WIDTH * width // WIDTH
    group = ROW * len(series) + GAP
    bars, labels, values = [], [], []
    for index, (label, row_values) in enumerate(rows):
        y = GAP / 2 + index * group
        labels.append(Text(label_width - 8, y + ROW * len(series) / 2 + 4, label[: label_width // 6]))
        for position, (name, value) in enumerate(zip(series, row_values, strict=True)):
            bar_y = y + position * ROW
            size = max(plot_width * value / top, 1 if value else 0)
            text = f"{_number(value)}{unit}"
            bars.append(
                Bar(label_width, bar_y, size, ROW - 2, f"chart-s{position}", f"{label} {name}: {text}")
            )
            values.append(Text(label_width + size + 6, bar_y + ROW - 4, text))
    return HorizontalBars(
        height=max(int(len(rows) * group + GAP), 30),
        bars=bars,
        labels=labels,
        values=values,
        legend=[(f"chart-s{i}", name) for i, name in enumerate(series)] if len(series) > 1 else [],
        width=width,
        empty=not rows,
    )


def _series_class(name: str) -> str:
    # A class per name, not per position: a category keeps its colour whichever others occur.
    return f"chart-{name.replace('_', '-').replace(' ', '-')}"


def _number(value: float) -> str:
    if value >= 100 or float(value).is_integer():
        return f"{value:,.0f}"
    return f"{value:.1f}" if value >= 10 else f"{value:.2f}"
