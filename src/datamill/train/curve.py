"""The loss curve of a run as a standalone SVG (same no-JavaScript style and palette as the report's charts):
training loss per logged step — one line per arm for an ablation — and the held-out loss as a dashed line
when there is one."""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

from datamill.report.svg import PALETTE


def loss_svg(
    points: Sequence[tuple[float, float]],
    heldout: float | None = None,
    title: str = "",
    width: int = 640,
    height: int = 260,
) -> str:
    """``points``: (step, loss) pairs in step order."""
    return curves_svg([("train loss", points)], heldout, title, width, height)


def curves_svg(
    series: Sequence[tuple[str, Sequence[tuple[float, float]]]],
    heldout: float | None = None,
    title: str = "",
    width: int = 640,
    height: int = 260,
) -> str:
    """One training-loss line per (label, points) on shared axes — an ablation's arms side by side — with a
    legend when there are several."""
    left, right, top, bottom = 56, 16, 28, 36
    plot_w, plot_h = width - left - right, height - top - bottom
    head = (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img" '
        'font-family="sans-serif">'
    )
    parts = [head, f'<text x="{left}" y="18" font-size="13">{escape(title)}</text>']
    points = [p for _, pts in series for p in pts]
    if not points:
        parts.append(f'<text x="{left}" y="{top + plot_h / 2}" font-size="12">no loss logged</text></svg>')
        return "".join(parts)
    steps = [s for s, _ in points]
    values = [v for _, v in points] + ([heldout] if heldout is not None else [])
    x0, x1 = min(steps), max(steps)
    y0, y1 = min(values), max(values)
    pad = (y1 - y0) * 0.05 or 0.5
    y0, y1 = y0 - pad, y1 + pad

    def x(step: float) -> float:
        return left + (plot_w * (step - x0) / (x1 - x0) if x1 > x0 else plot_w / 2)

    def y(value: float) -> float:
        return top + plot_h * (1 - (value - y0) / (y1 - y0))

    parts.append(
        f'<line x1="{left}" y1="{top + plot_h}" x2="{left + plot_w}" y2="{top + plot_h}" stroke="#888"/>'
        f'<line x1="{left}" y1="{top}" x2="{left}" y2="{top + plot_h}" stroke="#888"/>'
    )
    for value in (y0 + pad, (y0 + y1) / 2, y1 - pad):
        parts.append(f'<text x="{left - 6}" y="{y(value) + 4:.1f}" font-size="11" text-anchor="end">{value:.3g}</text>')
    for step in sorted({x0, x1}):
        parts.append(f'<text x="{x(step):.1f}" y="{height - 20}" font-size="11" text-anchor="middle">{step:g}</text>')
    parts.append(f'<text x="{left + plot_w / 2}" y="{height - 4}" font-size="11" text-anchor="middle">step</text>')
    parts.append(f'<text x="{left - 6}" y="{top - 4}" font-size="11" text-anchor="end">loss</text>')
    for i, (label, pts) in enumerate(series):
        color = PALETTE[i % len(PALETTE)]
        line = " ".join(f"{x(s):.1f},{y(v):.1f}" for s, v in pts)
        parts.append(
            f'<polyline points="{line}" fill="none" stroke="{color}" stroke-width="1.5">'
            f"<title>{escape(label)}</title></polyline>"
        )
        if len(series) > 1:
            parts.append(
                f'<text x="{left + plot_w}" y="{top + 12 + 14 * i}" font-size="11" text-anchor="end" '
                f'fill="{color}">{escape(label)}</text>'
            )
    if heldout is not None:
        parts.append(
            f'<line x1="{left}" y1="{y(heldout):.1f}" x2="{left + plot_w}" y2="{y(heldout):.1f}" stroke="{PALETTE[1]}" '
            f'stroke-dasharray="5,4"><title>held-out loss {heldout:.4f}</title></line>'
            f'<text x="{left + plot_w}" y="{y(heldout) - 4:.1f}" font-size="11" text-anchor="end" fill="{PALETTE[1]}">'
            f"held-out {heldout:.3g}</text>"
        )
    parts.append("</svg>")
    return "".join(parts)
