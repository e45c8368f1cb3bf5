"""Server-side SVG charts for the dashboard: stacked bars over time and horizontal bars (no JavaScript)."""

from __future__ import annotations

from collections.abc import Sequence

from markupsafe import Markup, escape

# Colour-blind friendly (Okabe-Ito), one per series in order; "other" series reuse them.
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#999999")
ERROR_COLOUR = "#D55E00"
OK_COLOUR = "#009E73"


def _nice_max(value: float) -> float:
    """The axis top: 1, 2 or 5 times a power of ten at or above ``value``."""
    if value <= 0:
        return 1.0
    scale = 1.0
    while scale * 10 <= value:
        scale *= 10
    for step in (1, 2, 5, 10):
        if step * scale >= value:
            return step * scale
    return 10 * scale


def stacked_bars(labels: Sequence[str], series: Sequence[tuple[str, Sequence[int]]], *, title: str,
                 width: int = 1100, height: int = 240) -> Markup:
    """One bar per label (time bucket), stacked by series (e.g. partner/channel), with axis and legend."""
    left, right, top, bottom = 44, 10, 10, 46
    plot_w, plot_h = width - left - right, height - top - bottom
    totals = [sum(values[i] for _, values in series) for i in range(len(labels))]
    top_value = _nice_max(max(totals, default=0))
    slot = plot_w / max(1, len(labels))
    bar_w = max(1.0, slot * 0.8)
    parts = [f'<svg class="chart" role="img" viewBox="0 0 {width} {height + 18 * ((len(series) + 3) // 4)}" '
             f'width="100%" xmlns="http://www.w3.org/2000/svg"><title>{escape(title)}</title>']
    steps = 5 if (top_value / 5).is_integer() else 4   # whole-number ticks for counts where possible
    for tick in range(steps + 1):   # horizontal grid lines with their values
        value = top_value * tick / steps
        y = top + plot_h - plot_h * tick / steps
        parts.append(f'<line x1="{left}" y1="{y:.1f}" x2="{width - right}" y2="{y:.1f}" stroke="#ddd"/>'
                     f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end" font-size="11" fill="#555">'
                     f'{value:g}</text>')
    for i, label in enumerate(labels):
        x = left + i * slot + (slot - bar_w) / 2
        y = top + plot_h
        for n, (name, values) in enumerate(series):
            if values[i] <= 0:
                continue
            h = plot_h * values[i] / top_value
            y -= h
            parts.append(f'<rect x="{x:.1f}" y="{y:.1f}" width="{bar_w:.1f}" height="{h:.1f}" '
                         f'fill="{PALETTE[n % len(PALETTE)]}"><title>{escape(label)} {escape(name)}: '
                         f'{values[i]}</title></rect>')
        every = max(1, len(labels) // 8)   # at most ~8 time labels, so they never overlap
        if i % every == 0:
            parts.append(f'<text x="{x + bar_w / 2:.1f}" y="{top + plot_h + 16}" text-anchor="middle" '
                         f'font-size="11" fill="#555">{escape(label)}</text>')
    parts.append(f'<line x1="{left}" y1="{top + plot_h}" x2="{width - right}" y2="{top + plot_h}" stroke="#888"/>')
    for n, (name, _values) in enumerate(series):   # legend, four entries a row
        lx, ly = left + (n % 4) * (plot_w / 4), height - 8 + 18 * (n // 4)
        parts.append(f'<rect x="{lx:.1f}" y="{ly - 10}" width="12" height="12" fill="{PALETTE[n % len(PALETTE)]}"/>'
                     f'<text x="{lx + 16:.1f}" y="{ly}" font-size="12" fill="#222">{escape(name)}</text>')
    if not series:
        parts.append(f'<text x="{left + plot_w / 2}" y="{top + plot_h / 2}" text-anchor="middle" '
                     f'font-size="13" fill="#777">no messages in this window</text>')
    parts.append("</svg>")
    return Markup("".join(parts))


def horizontal_bars(rows: Sequence[tuple[str, float, str]], *, title: str, maximum: float | None = None,
                    colour: str = ERROR_COLOUR, width: int = 460) -> Markup:
    """One bar per row: (label, value, text shown after the bar), scaled to ``maximum`` (default: the largest)."""
    row_h, label_w, text_w = 22, 170, 90
    height = max(1, len(rows)) * row_h + 6
    top_value = maximum if maximum else max((v for _, v, _ in rows), default=0) or 1
    bar_space = width - label_w - text_w
    parts = [f'<svg class="chart" role="img" viewBox="0 0 {width} {height}" width="100%" '
             f'xmlns="http://www.w3.org/2000/svg"><title>{escape(title)}</title>']
    for i, (label, value, text) in enumerate(rows):
        y = 4 + i * row_h
        w = bar_space * min(1.0, max(0.0, value / top_value))
        parts.append(f'<text x="{label_w - 6}" y="{y + 14}" text-anchor="end" font-size="12" fill="#222">'
                     f'{escape(label)}</text>'
                     f'<rect x="{label_w}" y="{y + 2}" width="{bar_space}" height="{row_h - 6}" fill="#eee"/>'
                     f'<rect x="{label_w}" y="{y + 2}" width="{w:.1f}" height="{row_h - 6}" fill="{colour}"/>'
                     f'<text x="{label_w + bar_space + 6}" y="{y + 14}" font-size="12" fill="#222">'
                     f'{escape(text)}</text>')
    if not rows:
        parts.append(f'<text x="{width / 2}" y="16" text-anchor="middle" font-size="13" fill="#777">none</text>')
    parts.append("</svg>")
    return Markup("".join(parts))
