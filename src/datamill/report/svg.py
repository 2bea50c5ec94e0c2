"""Tiny inline-SVG charts for the report: no JavaScript, no CDN, no plotting library. Every chart is
a string of SVG that the HTML page embeds as is, so the page opens offline and prints."""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

PALETTE = ("#4c78a8", "#f58518", "#54a24b", "#e45756", "#72b7b2", "#b279a2", "#eeca3b", "#9d755d")


def _fmt(v: float) -> str:
    return f"{v:,.0f}" if float(v).is_integer() else f"{v:,.3g}"


def hbars(items: Sequence[tuple[str, float]], width: int = 640, unit: str = "", color: str = PALETTE[0]) -> str:
    """Horizontal bars, one per (label, value), longest = full width; the value is printed."""
    if not items:
        return '<p class="empty">no data</p>'
    top = max(v for _, v in items) or 1
    row, label_w, value_w = 22, 210, 90
    bar_w = width - label_w - value_w
    h = row * len(items) + 4
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{h}" role="img">']
    for i, (label, value) in enumerate(items):
        y = i * row + 2
        w = max(1.0, bar_w * value / top) if value else 0
        short = label if len(label) <= 32 else label[:31] + "…"
        parts.append(
            f'<text x="{label_w - 6}" y="{y + 15}" text-anchor="end" font-size="12">{escape(short)}</text>'
            f'<rect x="{label_w}" y="{y + 3}" width="{w:.1f}" height="{row - 6}" fill="{color}">'
            f"<title>{escape(label)}: {_fmt(value)}{unit}</title></rect>"
            f'<text x="{label_w + w + 4:.1f}" y="{y + 15}" font-size="12">{_fmt(value)}{escape(unit)}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def histogram(values: Sequence[float], bins: int = 30, width: int = 640, height: int = 180, label: str = "") -> str:
    """Vertical-bar histogram of ``values`` with the min / median / max on the axis."""
    if not values:
        return '<p class="empty">no data</p>'
    lo, hi = min(values), max(values)
    span = (hi - lo) or 1
    counts = [0] * bins
    for v in values:
        counts[min(bins - 1, int((v - lo) / span * bins))] += 1
    top = max(counts)
    plot_h = height - 34
    bw = (width - 20) / bins
    ordered = sorted(values)
    median = ordered[len(ordered) // 2]
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img">']
    for i, c in enumerate(counts):
        h = plot_h * c / top if top else 0
        x = 10 + i * bw
        a = lo + span * i / bins
        b = lo + span * (i + 1) / bins
        parts.append(
            f'<rect x="{x:.1f}" y="{plot_h - h + 4:.1f}" width="{max(bw - 1, 1):.1f}" height="{h:.1f}" '
            f'fill="{PALETTE[0]}"><title>{_fmt(a)}–{_fmt(b)}: {c}</title></rect>'
        )
    parts.append(f'<line x1="10" y1="{plot_h + 4}" x2="{width - 10}" y2="{plot_h + 4}" stroke="#888"/>')
    axis = f"min {_fmt(lo)} · median {_fmt(median)} · max {_fmt(hi)} {escape(label)}"
    parts.append(f'<text x="10" y="{height - 8}" font-size="12">{axis}</text></svg>')
    return "".join(parts)
