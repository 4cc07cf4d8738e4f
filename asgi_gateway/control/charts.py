"""Inline SVG line charts for the rollout dashboard (pure functions, no JavaScript needed)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from html import escape


@dataclass(frozen=True, slots=True)
class Line:
    label: str
    color: str
    points: Sequence[tuple[float, float | None]]  # (x, y); y None leaves a gap


def line_chart(
    lines: Sequence[Line],
    *,
    x_range: tuple[float, float],
    y_max: float | None = None,
    y_label: str = "",
    width: int = 600,
    height: int = 160,
    percent: bool = False,
) -> str:
    """An accessible SVG line chart; `percent` formats the y axis as 0-100%."""
    pad_l, pad_r, pad_t, pad_b = 44, 8, 10, 20
    plot_w, plot_h = width - pad_l - pad_r, height - pad_t - pad_b
    x0, x1 = x_range
    span = (x1 - x0) or 1
    ys = [y for line in lines for _, y in line.points if y is not None]
    top = y_max if y_max is not None else (max(ys) if ys else 1.0) or 1.0

    def sx(x: float) -> float:
        return pad_l + (x - x0) / span * plot_w

    def sy(y: float) -> float:
        return pad_t + plot_h - min(y, top) / top * plot_h

    def fmt(y: float) -> str:
        return f"{y * 100:.0f}%" if percent else (f"{y:.0f}" if top >= 10 else f"{y:.2g}")

    parts = [
        f'<svg class="chart" viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="{escape(y_label)}">',
        f'<line x1="{pad_l}" y1="{pad_t + plot_h}" x2="{width - pad_r}" y2="{pad_t + plot_h}" '
        'stroke="#d0d7de"/>',
        f'<line x1="{pad_l}" y1="{pad_t}" x2="{width - pad_r}" y2="{pad_t}" stroke="#eaeef2"/>',
        f'<text x="{pad_l - 4}" y="{pad_t + 4}" text-anchor="end" font-size="10">{fmt(top)}</text>',
        f'<text x="{pad_l - 4}" y="{pad_t + plot_h}" text-anchor="end" font-size="10">'
        f"{fmt(0)}</text>",
    ]
    for line in lines:
        segments: list[list[str]] = [[]]
        for x, y in line.points:
            if y is None:
                segments.append([])
                continue
            segments[-1].append(f"{sx(x):.1f},{sy(y):.1f}")
        for seg in segments:
            if len(seg) == 1:
                cx, cy = seg[0].split(",")
                parts.append(f'<circle cx="{cx}" cy="{cy}" r="2" fill="{line.color}"/>')
            elif seg:
                parts.append(
                    f'<polyline fill="none" stroke="{line.color}" stroke-width="1.5" '
                    f'points="{" ".join(seg)}"/>'
                )
    legend_x = pad_l
    for line in lines:
        parts.append(
            f'<rect x="{legend_x}" y="{height - 10}" width="10" height="3" fill="{line.color}"/>'
        )
        parts.append(
            f'<text x="{legend_x + 14}" y="{height - 6}" font-size="10">{escape(line.label)}</text>'
        )
        legend_x += 20 + 7 * len(line.label)
    if not ys:
        parts.append(
            f'<text x="{pad_l + plot_w / 2}" y="{pad_t + plot_h / 2}" '
            'text-anchor="middle" font-size="12" fill="#57606a">no traffic yet</text>'
        )
    parts.append("</svg>")
    return "".join(parts)
