"""Server-rendered SVG charts: no script, no library, readable without colour (a table goes along)."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from html import escape

from markupsafe import Markup

from stalela.i18n import Localizer, localizer

WIDTH, HEIGHT = 760, 240
LEFT, RIGHT, TOP, BOTTOM = 70, 50, 16, 36


@dataclass(frozen=True)
class DayPoint:
    day: date
    turnover_cents: int
    invoices: int


def _nice_max(value: int) -> int:
    """The smallest 1/2/5 × 10^n at or above ``value`` (axis ends on a round number)."""
    if value <= 0:
        return 1
    step = 1
    while True:
        for m in (1, 2, 5):
            if m * step >= value:
                return m * step
        step *= 10


def _label(cents: int) -> str:
    units = cents / 100
    for suffix, size in (("M", 1e6), ("k", 1e3)):
        if abs(units) >= size:
            return f"{units / size:g}{suffix}"
    return f"{units:g}"


def daily_chart(points: list[DayPoint], currency: str, l10n: Localizer | None = None) -> Markup:
    """Bars: net turnover per business day; dots joined by a line: invoice count (right axis). Words and
    dates in ``l10n``'s language (English without one)."""
    l10n = l10n or localizer("en")
    n = max(len(points), 1)
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    top_money = _nice_max(max((max(p.turnover_cents, 0) for p in points), default=0))
    top_count = _nice_max(max((p.invoices for p in points), default=0))
    slot = plot_w / n
    bar_w = max(slot * 0.7, 1)
    total = sum(p.turnover_cents for p in points)
    count = sum(p.invoices for p in points)
    title = l10n.gettext("Daily net turnover and invoices, last %(days)s days", days=len(points))
    desc = l10n.gettext("%(count)s invoices, %(total)s %(currency)s in total.", count=count, total=_label(total),
                        currency=currency)
    out = [f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-labelledby="chart-t chart-d" '
           f'xmlns="http://www.w3.org/2000/svg">',
           f'<title id="chart-t">{escape(title)}</title><desc id="chart-d">{escape(desc)}</desc>']
    for i in range(5):  # grid and left axis (money)
        y = TOP + plot_h * i / 4
        value = int(top_money * (4 - i) / 4)
        out.append(f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y:.1f}" y2="{y:.1f}" class="grid"/>')
        out.append(f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end" class="axis">{_label(value)}</text>')
        out.append(f'<text x="{WIDTH - RIGHT + 6}" y="{y + 4:.1f}" class="axis">'
                   f'{top_count * (4 - i) / 4:g}</text>')
    line = []
    for i, p in enumerate(points):
        x = LEFT + slot * i + (slot - bar_w) / 2
        h = plot_h * max(p.turnover_cents, 0) / top_money
        tip = l10n.gettext("%(day)s: %(amount)s %(currency)s, %(count)s invoices", day=l10n.date(p.day),
                           amount=_label(p.turnover_cents), currency=currency, count=p.invoices)
        out.append(f'<rect x="{x:.1f}" y="{TOP + plot_h - h:.1f}" width="{bar_w:.1f}" height="{h:.1f}" '
                   f'class="bar"><title>{escape(tip)}</title></rect>')
        cx, cy = LEFT + slot * (i + 0.5), TOP + plot_h - plot_h * p.invoices / top_count
        line.append(f"{cx:.1f},{cy:.1f}")
        if i % 5 == 0 or i == len(points) - 1:
            out.append(f'<text x="{cx:.1f}" y="{HEIGHT - BOTTOM + 16}" text-anchor="middle" class="axis">'
                       f'{escape(l10n.date(p.day, "d MMM"))}</text>')
    if line:
        out.append(f'<polyline points="{" ".join(line)}" class="count-line"/>')
        for xy in line:
            x, y = xy.split(",")
            out.append(f'<circle cx="{x}" cy="{y}" r="2.5" class="count-dot"/>')
    bars = l10n.gettext("bars: turnover (%(currency)s), left", currency=currency)
    out.append(f'<text x="{LEFT}" y="{HEIGHT - 4}" class="axis">{escape(bars)}</text>')
    line_label = l10n.gettext("line: invoices, right")
    out.append(f'<text x="{WIDTH - RIGHT}" y="{HEIGHT - 4}" text-anchor="end" class="axis">'
               f'{escape(line_label)}</text>')
    out.append("</svg>")
    return Markup("".join(out))


def sparkline(values: list[float], label: str, width: int = 160, height: int = 32) -> Markup:
    """A small trend line for the operations console (e.g. seals per sample)."""
    if len(values) < 2:
        return Markup("")
    top = max(max(values), 1e-9)
    step = width / (len(values) - 1)
    pts = " ".join(f"{i * step:.1f},{height - 2 - (height - 4) * v / top:.1f}" for i, v in enumerate(values))
    return Markup(f'<svg class="spark" viewBox="0 0 {width} {height}" role="img" aria-label="{escape(label)}" '
                  f'xmlns="http://www.w3.org/2000/svg"><polyline points="{pts}" class="count-line"/></svg>')


@dataclass(frozen=True)
class DayQuantity:
    day: date
    quantity: Decimal


def _nice_max_decimal(value: Decimal) -> Decimal:
    """``_nice_max`` for exact quantities, fractions included (0.37 CPU-seconds → 0.5)."""
    if value <= 0:
        return Decimal(1)
    step = Decimal(1).scaleb(value.adjusted())  # the power of ten at or below the value
    for m in (1, 2, 5, 10):
        if m * step >= value:
            return m * step
    return 10 * step  # unreachable: 10 × 10^adjusted is always above the value


def quantity_label(value: Decimal) -> str:
    """An axis label: 1.5k, 20M, 3G, 0.25 (exact decimal arithmetic, trailing zeros dropped)."""
    for suffix, size in (("T", Decimal(10) ** 12), ("G", Decimal(10) ** 9), ("M", Decimal(10) ** 6),
                         ("k", Decimal(10) ** 3)):
        if abs(value) >= size:
            return f"{_plain(value / size)}{suffix}"
    return _plain(value)


def _plain(value: Decimal) -> str:
    if value.as_tuple().exponent < -3:  # an axis needs no more than three decimals
        value = value.quantize(Decimal("0.001"))
    return format(value.normalize(), "f")


def daily_quantity_chart(points: list[DayQuantity], title: str, desc: str, caption: str) -> Markup:
    """Bars: one generic daily series of exact quantities (a resource's usage). Only the geometry is float:
    the values and their labels stay Decimal. The words (title, description, caption) come from the
    template, so they are translated with it."""
    n = max(len(points), 1)
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    top = _nice_max_decimal(max((max(p.quantity, Decimal(0)) for p in points), default=Decimal(0)))
    slot = plot_w / n
    bar_w = max(slot * 0.7, 1)
    out = [f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-labelledby="qchart-t qchart-d" '
           f'xmlns="http://www.w3.org/2000/svg" data-testid="usage-chart">',
           f'<title id="qchart-t">{escape(title)}</title><desc id="qchart-d">{escape(desc)}</desc>']
    for i in range(5):
        y = TOP + plot_h * i / 4
        out.append(f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y:.1f}" y2="{y:.1f}" class="grid"/>')
        out.append(f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end" class="axis">'
                   f'{quantity_label(top * (4 - i) / 4)}</text>')
    for i, p in enumerate(points):
        x = LEFT + slot * i + (slot - bar_w) / 2
        h = plot_h * float(max(p.quantity, Decimal(0)) / top)
        tip = f"{p.day.isoformat()}: {quantity_label(p.quantity)}"
        out.append(f'<rect x="{x:.1f}" y="{TOP + plot_h - h:.1f}" width="{bar_w:.1f}" height="{h:.1f}" '
                   f'class="bar"><title>{escape(tip)}</title></rect>')
        if i % 5 == 0 or i == len(points) - 1:
            out.append(f'<text x="{LEFT + slot * (i + 0.5):.1f}" y="{HEIGHT - BOTTOM + 16}" text-anchor="middle" '
                       f'class="axis">{p.day.strftime("%d %b")}</text>')
    out.append(f'<text x="{LEFT}" y="{HEIGHT - 4}" class="axis">{escape(caption)}</text>')
    out.append("</svg>")
    return Markup("".join(out))


def bar_chart(labels: list[str], values: list[Decimal], title: str, desc: str, caption: str, testid: str, *,
              highlight_last: bool = False, height: int = HEIGHT) -> Markup:
    """Bars of exact amounts over named periods (the analytics page: revenue per day, week or month; the
    forecast; the authority's histogram). Only the geometry is float. ``highlight_last``: the last bar is
    drawn apart (a forecast, not a figure). The words come from the template, translated with it."""
    n = max(len(values), 1)
    plot_w, plot_h = WIDTH - LEFT - RIGHT, height - TOP - BOTTOM
    top = _nice_max_decimal(max((max(v, Decimal(0)) for v in values), default=Decimal(0)))
    slot = plot_w / n
    bar_w = max(slot * 0.7, 1)
    every = max(1, -(-n // 12))  # at most about twelve labels under the axis
    out = [f'<svg class="chart" viewBox="0 0 {WIDTH} {height}" role="img" aria-labelledby="{testid}-t {testid}-d" '
           f'xmlns="http://www.w3.org/2000/svg" data-testid="{escape(testid)}">',
           f'<title id="{testid}-t">{escape(title)}</title><desc id="{testid}-d">{escape(desc)}</desc>']
    for i in range(5):
        y = TOP + plot_h * i / 4
        out.append(f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y:.1f}" y2="{y:.1f}" class="grid"/>')
        out.append(f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end" class="axis">'
                   f'{quantity_label(top * (4 - i) / 4)}</text>')
    for i, (label, value) in enumerate(zip(labels, values)):
        x = LEFT + slot * i + (slot - bar_w) / 2
        h = plot_h * float(max(value, Decimal(0)) / top)
        kind = "bar forecast" if highlight_last and i == len(values) - 1 else "bar"
        out.append(f'<rect x="{x:.1f}" y="{TOP + plot_h - h:.1f}" width="{bar_w:.1f}" height="{h:.1f}" '
                   f'class="{kind}"><title>{escape(label)}: {quantity_label(value)}</title></rect>')
        if i % every == 0 or i == len(values) - 1:
            out.append(f'<text x="{LEFT + slot * (i + 0.5):.1f}" y="{height - BOTTOM + 16}" text-anchor="middle" '
                       f'class="axis">{escape(label)}</text>')
    out.append(f'<text x="{LEFT}" y="{height - 4}" class="axis">{escape(caption)}</text>')
    out.append("</svg>")
    return Markup("".join(out))
