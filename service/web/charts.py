"""Small charts as inline SVG built on the server: no script, no chart library, no CDN (the
CSP allows none, and hospital networks are often offline). Each chart carries `<title>` and
`<desc>`; pages add a text summary and a data table beside it."""

from __future__ import annotations

from dataclasses import dataclass
from html import escape

from markupsafe import Markup

WIDTH, HEIGHT = 400, 220
LEFT, RIGHT, TOP, BOTTOM = 34, 6, 10, 26
FONT = 12
MAX_X_LABELS = 6


@dataclass(frozen=True)
class Series:
    """One stacked layer: `key` names it in `data-series` and the CSS class `bar-<key>`."""

    key: str
    label: str
    colour: str  # a fill with at least 3:1 contrast on white (WCAG 1.4.11)
    values: list[int]


def stacked_bars(
    chart_id: str, title: str, desc: str, labels: list[str], series: list[Series]
) -> Markup:
    """One bar per label, the series stacked bottom up; every bar has its own `<title>` and
    `data-day`/`data-series`/`data-count`, so the picture can be read back exactly."""
    n = max(len(labels), 1)
    totals = [sum(s.values[i] for s in series) for i in range(len(labels))]
    top = max([*totals, 1])
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    step = plot_w / n
    bar_w = step * (0.8 if n <= 60 else 1.0)
    parts = [
        f'<svg id="{escape(chart_id)}" class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" '
        f'role="img" aria-labelledby="{escape(chart_id)}-title {escape(chart_id)}-desc" '
        f'font-size="{FONT}" xmlns="http://www.w3.org/2000/svg">',
        f'<title id="{escape(chart_id)}-title">{escape(title)}</title>',
        f'<desc id="{escape(chart_id)}-desc">{escape(desc)}</desc>',
    ]
    for value in sorted({0, top // 2, top}):
        y = TOP + plot_h - plot_h * value / top
        parts.append(
            f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y:.1f}" y2="{y:.1f}" '
            'stroke="#c8c8c8" stroke-width="1"/>'
            f'<text x="{LEFT - 4}" y="{y + FONT / 3:.1f}" text-anchor="end" '
            f'fill="#1a1a1a">{value}</text>'
        )
    for i, label in enumerate(labels):
        x = LEFT + i * step + (step - bar_w) / 2
        base: float = TOP + plot_h
        for s in series:
            count = s.values[i]
            if count <= 0:
                continue
            h = plot_h * count / top
            base -= h
            parts.append(
                f'<rect class="bar bar-{escape(s.key)}" data-day="{escape(label)}" '
                f'data-series="{escape(s.key)}" data-count="{count}" x="{x:.2f}" '
                f'y="{base:.2f}" width="{bar_w:.2f}" height="{h:.2f}" fill="{escape(s.colour)}">'
                f"<title>{escape(label)}: {count} {escape(s.label)}</title></rect>"
            )
    parts += [_x_label(i, label, step, last=i == n - 1) for i, label in enumerate(labels)
              if _labelled(i, n)]  # fmt: skip
    parts.append("</svg>")
    return Markup("".join(parts))


def _labelled(i: int, n: int) -> bool:
    """First and last day, and evenly spaced days between, at most MAX_X_LABELS."""
    every = max(1, -(-n // MAX_X_LABELS))
    return i == 0 or i == n - 1 and (n - 1) % every >= every // 2 or i % every == 0


def _x_label(i: int, label: str, step: float, *, last: bool) -> str:
    """A day under its bar; the last one ends at its bar, so the chart's edge cannot cut it."""
    x = LEFT + (i + 1) * step if last else LEFT + i * step + step / 2
    anchor = "end" if last else "middle"
    return (
        f'<text x="{x:.1f}" y="{HEIGHT - 8}" text-anchor="{anchor}" fill="#1a1a1a">'
        f"{escape(label[5:] if len(label) == 10 else label)}</text>"
    )
