"""Server-rendered SVG charts: horizontal bar charts and column histograms, no JavaScript.

Each chart is a self-contained ``<svg role="img">`` labelled by its ``<title>`` and ``<desc>`` (the desc
lists every value, so a screen reader gets the figures a sighted reader sees), with text labels next to
the bars; colours meet WCAG AA contrast on white. Every text is escaped (labels come from the
directory); there is no script, no event attribute, no external reference, so a strict CSP is fine.
The result is a ``markupsafe.Markup`` a Jinja template inserts as is.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from markupsafe import Markup, escape

BAR = "#1d4f91"  # 8.6:1 on white
TEXT = "#1a1a1a"
GRID = "#767676"  # 4.5:1 on white (the axis)
FONT = 'font-family="Marianne, Arial, sans-serif" font-size="13"'

_ID = re.compile(r"[^A-Za-z0-9_-]")


def _number(value: float) -> str:
    """How a value is written on the chart (French decimal comma, no trailing ",0")."""
    if float(value).is_integer():
        return f"{int(value)}"
    return f"{value:.1f}".replace(".", ",")


def _desc(bars: Sequence[tuple[str, float]], unit: str) -> str:
    suffix = f" {unit}" if unit else ""
    if not bars:
        return "Aucune donnée."
    return " ; ".join(f"{label} : {_number(value)}{suffix}" for label, value in bars) + "."


def _open(chart_id: str, width: int, height: int, title: str, desc: str) -> list[str]:
    cid = _ID.sub("-", chart_id)
    return [
        f'<svg xmlns="http://www.w3.org/2000/svg" role="img" class="chart" id="{cid}" '
        f'viewBox="0 0 {width} {height}" width="100%" preserveAspectRatio="xMinYMin meet" '
        f'aria-labelledby="{cid}-title {cid}-desc">',
        f'<title id="{cid}-title">{escape(title)}</title>',
        f'<desc id="{cid}-desc">{escape(desc)}</desc>',
    ]


def _tooltip(label: str, value: float, unit: str) -> Markup:
    """A bar's own title (its tooltip): the full label and the value, escaped."""
    return escape(f"{label} : {_number(value)}" + (f" {unit}" if unit else ""))


def _clip(label: str, length: int) -> str:
    return label if len(label) <= length else label[: length - 1] + "…"


def bar_chart(
    *,
    chart_id: str,
    title: str,
    bars: Sequence[tuple[str, float]],
    unit: str = "",
    width: int = 640,
    label_width: int = 260,
) -> Markup:
    """Horizontal bars, one per (label, value), labels on the left and values at the bar's end.

    Long labels are shortened on the drawing (``…``) but given in full in ``<desc>`` and as each
    bar's ``<title>`` (tooltip)."""
    row, gap, top = 26, 8, 8
    height = top * 2 + max(1, len(bars)) * (row + gap)
    largest = max((v for _, v in bars), default=0) or 1
    room = width - label_width - 60
    parts = _open(chart_id, width, height, title, _desc(bars, unit))
    parts.append(f'<g {FONT} fill="{TEXT}">')
    if not bars:
        parts.append(f'<text x="0" y="{top + row // 2 + 5}">Aucune donnée sur la période.</text>')
    for i, (label, value) in enumerate(bars):
        y = top + i * (row + gap)
        length = round(room * value / largest) if value > 0 else 0
        text = escape(_clip(label, 36))
        parts.append(
            f"<g><title>{_tooltip(label, value, unit)}</title>"
            f'<text x="{label_width - 8}" y="{y + row // 2 + 5}" text-anchor="end">{text}</text>'
            f'<rect x="{label_width}" y="{y}" width="{length}" height="{row}" fill="{BAR}"/>'
            f'<text x="{label_width + length + 6}" y="{y + row // 2 + 5}">{escape(_number(value))}</text></g>'
        )
    parts.append(
        f'<line x1="{label_width}" y1="{top - 2}" x2="{label_width}" y2="{height - top + 2}" '
        f'stroke="{GRID}" stroke-width="1"/>'
    )
    parts.append("</g></svg>")
    return Markup("".join(parts))  # every text above went through escape()


def histogram(
    *,
    chart_id: str,
    title: str,
    columns: Sequence[tuple[str, float]],
    unit: str = "",
    width: int = 640,
    height: int = 260,
) -> Markup:
    """Vertical columns in the given order (age buckets, periods), values above, labels below."""
    top, bottom, side = 24, 40, 12
    slot = (width - 2 * side) / max(1, len(columns))
    largest = max((v for _, v in columns), default=0) or 1
    room = height - top - bottom
    parts = _open(chart_id, width, height, title, _desc(columns, unit))
    parts.append(f'<g {FONT} fill="{TEXT}" text-anchor="middle">')
    if not columns:
        parts.append(f'<text x="{width // 2}" y="{height // 2}">Aucune donnée.</text>')
    for i, (label, value) in enumerate(columns):
        x = side + i * slot
        col_h = round(room * value / largest) if value > 0 else 0
        col_w = round(slot * 0.6)
        cx = round(x + slot / 2)
        y = top + room - col_h
        parts.append(
            f"<g><title>{_tooltip(label, value, unit)}</title>"
            f'<rect x="{round(cx - col_w / 2)}" y="{y}" width="{col_w}" height="{col_h}" fill="{BAR}"/>'
            f'<text x="{cx}" y="{y - 6}">{escape(_number(value))}</text>'
            f'<text x="{cx}" y="{height - bottom + 20}">{escape(_clip(label, 22))}</text></g>'
        )
    parts.append(
        f'<line x1="{side}" y1="{top + room}" x2="{width - side}" y2="{top + room}" '
        f'stroke="{GRID}" stroke-width="1"/>'
    )
    parts.append("</g></svg>")
    return Markup("".join(parts))  # every text above went through escape()
