"""Bar charts the server draws as inline SVG, so the admin dashboard needs no JavaScript and no CDN."""

import math
from dataclasses import dataclass

PLOT_HEIGHT = 140
TOP_MARGIN = 14  # room for the scale's label
LABEL_HEIGHT = 30  # room for the labels under the bars
LEFT_MARGIN = 36


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    label: str  # under the bar; empty to leave it out
    title: str  # shown on hover


@dataclass(frozen=True)
class BarChart:
    width: float
    height: float
    baseline: float
    left: float
    top: float
    scale_label: str
    bars: list[Bar]


def bar_chart(
    points: list[tuple[str, float, str]],
    *,
    bar_width: float = 16,
    gap: float = 6,
    maximum: float | None = None,
    label_every: int = 1,
    scale_format: str = "{:g}",
) -> BarChart:
    """Geometry of a vertical bar chart of ``(label, value, title)`` points.

    The scale runs from 0 to ``maximum`` (default: a round number at or above the largest value);
    only every ``label_every``-th bar is labelled, so dense charts stay legible.
    """
    top = maximum if maximum is not None else _round_up(max((value for _, value, _ in points), default=0))
    baseline = TOP_MARGIN + PLOT_HEIGHT
    bars = []
    for index, (label, value, title) in enumerate(points):
        height = PLOT_HEIGHT * min(value, top) / top if top else 0
        bars.append(
            Bar(
                x=LEFT_MARGIN + gap + index * (bar_width + gap),
                y=baseline - height,
                width=bar_width,
                height=height,
                label=label if index % label_every == 0 else "",
                title=title,
            )
        )
    return BarChart(
        width=LEFT_MARGIN + gap + len(points) * (bar_width + gap),
        height=baseline + LABEL_HEIGHT,
        baseline=baseline,
        left=LEFT_MARGIN,
        top=TOP_MARGIN,
        scale_label=scale_format.format(top),
        bars=bars,
    )


def _round_up(value: float) -> float:
    """The smallest of 1, 2, 5, 10, 20, 50 ... that is at least ``value`` (1 for an empty chart)."""
    if value <= 1:
        return 1
    power = 10 ** math.floor(math.log10(value))
    return next(step * power for step in (1, 2, 5, 10) if step * power >= value)
