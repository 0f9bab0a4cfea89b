"""Charts drawn as SVG on the server: no script, no library, no network.

Colours come from CSS classes (``c0``..``c3``, ``bar``, ``grid``), so the page's light and
dark themes apply; every bar has a ``<title>`` that a browser shows on hover. Labels are
escaped like all other text.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

from markupsafe import Markup

WIDTH = 1100  # a column chart spans the page
HEIGHT = 240
LIST_WIDTH = 560  # a bar list fills half of it
LEFT = 56  # room for the y-axis labels
BOTTOM = 26  # room for the x-axis labels
TOP = 10
RIGHT = 8


def nice_ceiling(value: float) -> float:
    """The smallest of 1, 2, 2.5, 5 x 10^k at or above ``value`` (1 for 0)."""
    if value <= 0:
        return 1.0
    power = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 2.5, 5, 10):
        if step * power >= value:
            return step * power
    return 10 * power  # pragma: no cover


def short_number(value: float) -> str:
    for unit, size in (("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(value) >= size:
            shown = value / size
            return f"{shown:.0f}{unit}" if shown >= 10 else f"{shown:.1f}{unit}".replace(".0", "")
    return f"{value:.0f}" if value == int(value) else f"{value:.2f}"


def money(value: float) -> str:
    return f"${value:,.2f}" if value >= 0.01 or value == 0 else f"${value:.4f}"


def _svg(label: str, inner: Markup, height: int = HEIGHT, width: int = WIDTH) -> Markup:
    return Markup(
        '<svg class="chart" viewBox="0 0 {w} {h}" role="img" aria-label="{label}"'
        ' preserveAspectRatio="xMinYMin meet" xmlns="http://www.w3.org/2000/svg">'
        "<title>{label}</title>{inner}</svg>"
    ).format(w=width, h=height, label=label, inner=inner)


def column_chart(
    label: str,
    labels: Sequence[str],
    series: Sequence[tuple[str, Sequence[float]]],
    value_text: Callable[[float], str] = short_number,
    tick_labels: Sequence[str] | None = None,
) -> Markup:
    """Columns over ``labels`` (days, say); several series are stacked, in classes c0, c1 ..."""
    count = len(labels)
    if count == 0:
        return Markup('<p class="empty">Nothing to show yet.</p>')
    totals = [sum(values[i] for _, values in series) for i in range(count)]
    step = nice_ceiling(max(totals) / 4)  # four even steps
    if all(float(t).is_integer() for t in totals):  # counts: whole-number steps
        step = nice_ceiling(max(1, math.ceil(step)))
    top = 4 * step
    plot_w = WIDTH - LEFT - RIGHT
    plot_h = HEIGHT - TOP - BOTTOM
    step = plot_w / count
    bar_w = max(1.0, step * 0.78)
    parts: list[Markup] = []
    for tick in range(5):
        value = top * tick / 4
        y = TOP + plot_h - plot_h * tick / 4
        parts.append(
            Markup(
                '<line class="grid" x1="{x1}" x2="{x2}" y1="{y:.1f}" y2="{y:.1f}"/>'
                '<text class="axis" x="{tx}" y="{ty:.1f}" text-anchor="end">{v}</text>'
            ).format(x1=LEFT, x2=WIDTH - RIGHT, y=y, tx=LEFT - 6, ty=y + 4, v=value_text(value))
        )
    shown = tick_labels if tick_labels is not None else labels
    every = max(1, math.ceil(count / 10))
    for i in range(count):
        x = LEFT + i * step + (step - bar_w) / 2
        base: float = TOP + plot_h
        tip = [f"{labels[i]}: {value_text(totals[i])}"]
        if len(series) > 1:
            tip += [f"{name} {value_text(values[i])}" for name, values in series]
        bars: list[Markup] = []
        for n, (_, values) in enumerate(series):
            h = plot_h * values[i] / top if top else 0
            if h <= 0:
                continue
            base -= h
            bars.append(
                Markup(
                    '<rect class="bar c{n}" x="{x:.1f}" y="{y:.1f}" width="{w:.1f}" height="{h:.1f}"/>'
                ).format(n=n, x=x, y=base, w=bar_w, h=h)
            )
        # a full-height, invisible target so a hover anywhere on the day shows its figures
        parts.append(
            Markup(
                '<g class="col"><title>{tip}</title>{bars}'
                '<rect class="hit" x="{x:.1f}" y="{y}" width="{w:.1f}" height="{h}"/></g>'
            ).format(
                tip="\n".join(tip),
                bars=Markup("").join(bars),
                x=LEFT + i * step,
                y=TOP,
                w=step,
                h=plot_h,
            )
        )
        if i % every == 0:
            parts.append(
                Markup(
                    '<text class="axis" x="{x:.1f}" y="{y}" text-anchor="middle">{t}</text>'
                ).format(x=LEFT + i * step + step / 2, y=HEIGHT - 8, t=shown[i])
            )
    return _svg(label, Markup("").join(parts))


def bar_list(
    label: str,
    items: Sequence[tuple[str, float, str | None]],
    value_text: Callable[[float], str] = short_number,
    css: str = "c0",
) -> Markup:
    """Horizontal bars, one per (name, value, link or None), largest first as given."""
    if not items:
        return Markup('<p class="empty">Nothing to show yet.</p>')
    row_h = 26
    height = row_h * len(items) + 4
    name_w = 220
    plot_w = LIST_WIDTH - name_w - 60
    top = max(v for _, v, _ in items) or 1
    parts: list[Markup] = []
    for i, (name, value, href) in enumerate(items):
        y = i * row_h + 2
        shown = name if len(name) <= 28 else "…" + name[-27:]
        text = Markup('<text class="name" x="{x}" y="{y}" text-anchor="end">{t}</text>').format(
            x=name_w - 8, y=y + 17, t=shown
        )
        if href:
            text = Markup('<a href="{}">{}</a>').format(href, text)
        width = max(1.0, plot_w * value / top)
        parts.append(
            Markup(
                '<g class="row"><title>{name}: {v}</title>{text}'
                '<rect class="bar {css}" x="{x}" y="{y}" width="{w:.1f}" height="{h}" rx="3"/>'
                '<text class="value" x="{vx:.1f}" y="{ty}">{v}</text></g>'
            ).format(
                name=name,
                v=value_text(value),
                text=text,
                css=css,
                x=name_w,
                y=y + 4,
                w=width,
                h=row_h - 9,
                vx=name_w + width + 6,
                ty=y + 17,
            )
        )
    return _svg(label, Markup("").join(parts), height=height, width=LIST_WIDTH)


def legend(names: Sequence[str]) -> Markup:
    return Markup('<ul class="legend">{}</ul>').format(
        Markup("").join(
            Markup('<li><span class="swatch c{}"></span>{}</li>').format(i, name)
            for i, name in enumerate(names)
        )
    )
