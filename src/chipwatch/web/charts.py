"""A small inline-SVG bar chart of daily counts (no script, no external file: it passes
a CSP without inline script and reads in a screen reader through its <title> and <desc>)."""

from __future__ import annotations

from collections import Counter
from datetime import date, timedelta
from html import escape

WIDTH = 270  # three pixels a day over 90 days
HEIGHT = 48


def daily_series(counts: Counter[date], end: date, days: int) -> list[tuple[date, int]]:
    start = end - timedelta(days=days - 1)
    return [
        (start + timedelta(days=i), counts.get(start + timedelta(days=i), 0)) for i in range(days)
    ]


def bar_chart(series: list[tuple[date, int]], label: str) -> str:
    total = sum(n for _, n in series)
    peak = max((n for _, n in series), default=0) or 1
    step = WIDTH / max(len(series), 1)
    bars = []
    for i, (day, n) in enumerate(series):
        if not n:
            continue
        height = max(round(n / peak * (HEIGHT - 2)), 1)
        bars.append(
            f'<rect x="{i * step:.1f}" y="{HEIGHT - height}" width="{max(step - 0.6, 0.6):.1f}" '
            f'height="{height}"><title>{day:%d %b}: {n}</title></rect>'
        )
    first, last = (series[0][0], series[-1][0]) if series else (None, None)
    span = f"{first:%d %b %Y} to {last:%d %b %Y}" if first and last else ""
    text = escape(f"{label}: {total} articles, {span}, at most {peak if total else 0} a day")
    return (
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" width="100%" height="{HEIGHT}" '
        f'preserveAspectRatio="none" role="img" aria-label="{text}">'
        f"<title>{text}</title>"
        f'<line x1="0" y1="{HEIGHT - 0.5}" x2="{WIDTH}" y2="{HEIGHT - 0.5}" class="axis"/>'
        + "".join(bars)
        + "</svg>"
    )
