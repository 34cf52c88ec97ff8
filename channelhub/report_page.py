"""The Reports tab of the ChannelHub page (销售报表): sales by channel and by store over time, top SKUs and
the SKUs running low, as server-rendered HTML with inline SVG charts (no script, no CDN: the machine may be
offline). Pure rendering over ``warehouse.sales_report``; the plugin (plugins/channelhub_plugin.py) serves it.

Labels are English or Chinese, from the one table ``LABELS``; ``language_of`` picks one from the browser's
``Accept-Language`` (``zh*`` first -> Chinese, anything else -> English).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from html import escape

from sqlalchemy import Connection

from warehouse.sales_report import (
    DEFAULT_COVER_THRESHOLD,
    LowStock,
    SalesRow,
    SeriesPoint,
    Window,
    daily_series,
    low_stock,
    sales_report,
    top_skus,
)

LANGUAGES = ("en", "zh")
WINDOW_CHOICES = (7, 30, 90)

# key -> (English, 中文)
LABELS: dict[str, tuple[str, str]] = {
    "tab_operations": ("Operations", "运营"),
    "tab_reports": ("Reports", "报表"),
    "title": ("Sales reports", "销售报表"),
    "window": ("Last {days} days, up to {end} UTC", "最近 {days} 天（截至 {end} UTC）"),
    "days": ("{days} days", "{days} 天"),
    "by_channel_chart": ("Units sold per day by channel", "各渠道每日销量"),
    "by_store_chart": ("Units sold per day by store", "各门店每日销量"),
    "top_skus": ("Top SKUs by units sold", "畅销商品（按销量）"),
    "low_stock": ("Low stock: days of cover", "库存预警：可售天数"),
    "low_stock_note": (
        "SKUs sold in the last {sales_days} days with less than {threshold} days of cover "
        "(free units at stores and warehouses / average units sold per day).",
        "最近 {sales_days} 天有销售、可售天数低于 {threshold} 天的商品（门店与仓库可用库存 ÷ 日均销量）。",
    ),
    "summary": ("Sales by channel", "渠道销售汇总"),
    "channel": ("Channel", "渠道"),
    "sku": ("SKU", "商品编码"),
    "name": ("Name", "名称"),
    "units_sold": ("Units sold", "销量"),
    "revenue": ("Revenue", "销售额"),
    "refunded_units": ("Refunded units", "退款数量"),
    "refunded_amount": ("Refund amount", "退款金额"),
    "returned_units": ("Returned units", "退货入库数量"),
    "free_units": ("Free units", "可用库存"),
    "average_daily": ("Sold per day", "日均销量"),
    "days_of_cover": ("Days of cover", "可售天数"),
    "no_sales": ("No sales in this window.", "此期间没有销售。"),
    "no_low_stock": ("No SKU is running low.", "没有库存不足的商品。"),
    "units": ("units", "件"),
    "pos": ("POS (stores)", "门店 POS"),
    "unpriced": ("{n} unpriced", "{n} 件无价格"),
}

PALETTE = ("#2b6cb0", "#dd6b20", "#38a169", "#805ad5", "#d53f8c", "#319795", "#b7791f", "#e53e3e", "#4a5568")


def language_of(accept_language: str | None, override: str | None = None) -> str:
    """``zh`` when the browser's most preferred language is Chinese (zh, zh-CN, zh-Hant-TW, ...), else ``en``;
    ``override`` (a ``?lang=`` of the page) wins when it names a known language."""
    if override in LANGUAGES:
        return override
    preferred: list[tuple[float, int, str]] = []
    for position, item in enumerate((accept_language or "").split(",")):
        tag, _, params = item.strip().partition(";")
        quality = 1.0
        if params.strip().startswith("q="):
            try:
                quality = float(params.strip()[2:])
            except ValueError:
                quality = 0.0
        if tag:
            preferred.append((-quality, position, tag.lower()))
    if not preferred:
        return "en"
    return "zh" if min(preferred)[2].startswith("zh") else "en"


class Labels:
    def __init__(self, language: str) -> None:
        self.language = language
        self._index = LANGUAGES.index(language)

    def __call__(self, key: str, **values: object) -> str:
        text = LABELS[key][self._index]
        return text.format(**values) if values else text


@dataclass(frozen=True, slots=True)
class ReportData:
    window: Window
    days: list[date]
    by_channel: list[SeriesPoint]
    by_store: list[SeriesPoint]
    channels: list[SalesRow]
    top: list[SalesRow]
    low: list[LowStock]
    threshold: Decimal
    sales_days: int


def load_report_data(conn: Connection, days: int, *, now: datetime | None = None) -> ReportData:
    """Everything the tab shows, for the last ``days`` days (UTC days, today included)."""
    now = now or datetime.now(UTC)
    window = Window.last_days(days, today=now.date())
    day_list = [window.start.date() + timedelta(days=i) for i in range(days)]
    return ReportData(
        window=window,
        days=day_list,
        by_channel=daily_series(conn, "channel", window),
        by_store=daily_series(conn, "store", window),
        channels=sales_report(conn, "channel", window).rows,
        top=top_skus(conn, window, limit=10),
        low=low_stock(conn, DEFAULT_COVER_THRESHOLD, now=now),
        threshold=DEFAULT_COVER_THRESHOLD,
        sales_days=14,
    )


# -- SVG charts ------------------------------------------------------------------------------------------

WIDTH, HEIGHT = 760, 260
LEFT, RIGHT, TOP, BOTTOM = 48, 12, 12, 36


def _nice_max(value: int) -> int:
    """A round top for the y axis at or above ``value``."""
    if value <= 5:
        return max(value, 1)
    magnitude = 10 ** (len(str(value)) - 1)
    for step in (1, 2, 5, 10):
        if value <= step * magnitude:
            return step * magnitude
    return value


def line_chart(
    chart_id: str,
    title: str,
    days: Sequence[date],
    points: Sequence[SeriesPoint],
    empty: str,
    names: Mapping[str, str],
) -> str:
    """One polyline per series (channel or store) of units per day; each point a circle with a tooltip."""
    if not points:
        return _figure(chart_id, title, f'<p class="muted">{escape(empty)}</p>')
    keys = sorted(
        {p.key for p in points}, key=lambda k: (-sum(p.units_sold for p in points if p.key == k), k)
    )
    values = {(p.key, p.day): p.units_sold for p in points}
    top = _nice_max(max(max(p.units_sold for p in points), 1))
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    step = plot_w / max(len(days) - 1, 1)

    def x(i: int) -> float:
        return round(LEFT + i * step, 1)

    def y(units: int) -> float:
        return round(TOP + plot_h - plot_h * units / top, 1)

    parts = [
        f'<svg class="chart" data-chart="{chart_id}" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'aria-label="{escape(title)}" xmlns="http://www.w3.org/2000/svg">'
    ]
    for tick in (0, top // 2, top):
        parts.append(
            f'<line class="grid" x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y(tick)}" y2="{y(tick)}"/>'
            f'<text class="axis" x="{LEFT - 6}" y="{y(tick) + 4}" text-anchor="end">{tick}</text>'
        )
    last = len(days) - 1
    for i in sorted({0, last // 2, last}):
        anchor = "start" if i == 0 else "end" if i == last else "middle"  # the ends stay inside the frame
        parts.append(
            f'<text class="axis" x="{x(i)}" y="{HEIGHT - 12}" text-anchor="{anchor}">{days[i]:%m-%d}</text>'
        )
    legend = []
    for n, key in enumerate(keys):
        color = PALETTE[n % len(PALETTE)]
        series = [values.get((key, day), 0) for day in days]
        coords = " ".join(f"{x(i)},{y(units)}" for i, units in enumerate(series))
        parts.append(
            f'<g class="series" data-series="{escape(key)}" data-total="{sum(series)}">'
            f'<polyline fill="none" stroke="{color}" stroke-width="2" points="{coords}"/>'
        )
        for i, units in enumerate(series):
            if units:
                label = f"{names.get(key, key)} {days[i]:%Y-%m-%d}: {units}"
                parts.append(
                    f'<circle cx="{x(i)}" cy="{y(units)}" r="3" fill="{color}" data-day="{days[i]}" '
                    f'data-units="{units}"><title>{escape(label)}</title></circle>'
                )
        parts.append("</g>")
        legend.append(
            f'<li><span class="swatch" style="background:{color}"></span>{escape(names.get(key, key))} '
            f'<span class="muted">({sum(series)})</span></li>'
        )
    parts.append("</svg>")
    return (
        f'<figure class="chart" id="{chart_id}"><figcaption>{escape(title)}</figcaption>{"".join(parts)}'
        f'<ul class="legend">{"".join(legend)}</ul></figure>'
    )


def bar_chart(chart_id: str, title: str, rows: Sequence[SalesRow], empty: str) -> str:
    """Horizontal bars of units sold, one per SKU, its code and units written beside it."""
    if not rows:
        return _figure(chart_id, title, f'<p class="muted">{escape(empty)}</p>')
    bar_h, gap, label_w = 22, 6, 180
    height = TOP + len(rows) * (bar_h + gap)
    top = max(row.units_sold for row in rows)
    plot_w = WIDTH - label_w - 60
    parts = [
        f'<svg class="chart" data-chart="{chart_id}" viewBox="0 0 {WIDTH} {height}" role="img" '
        f'aria-label="{escape(title)}" xmlns="http://www.w3.org/2000/svg">'
    ]
    for i, row in enumerate(rows):
        y = TOP + i * (bar_h + gap)
        width = max(round(plot_w * row.units_sold / top, 1), 1)
        parts.append(
            f'<g class="bar" data-sku="{escape(row.key)}" data-units="{row.units_sold}">'
            f'<text class="axis" x="{label_w - 6}" y="{y + bar_h - 6}" text-anchor="end">'
            f"{escape(row.key)}</text>"
            f'<rect x="{label_w}" y="{y}" width="{width}" height="{bar_h}" fill="{PALETTE[0]}">'
            f"<title>{escape(row.key)} {escape(row.label)}: {row.units_sold}</title></rect>"
            f'<text class="value" x="{label_w + width + 6}" y="{y + bar_h - 6}">{row.units_sold}</text></g>'
        )
    parts.append("</svg>")
    return _figure(chart_id, title, "".join(parts))


def _figure(chart_id: str, title: str, inner: str) -> str:
    return f'<figure class="chart" id="{chart_id}"><figcaption>{escape(title)}</figcaption>{inner}</figure>'


# -- tables ----------------------------------------------------------------------------------------------


def _money(amounts: Mapping[str, Decimal]) -> str:
    return "<br>".join(f"{value:,.2f} {escape(currency)}" for currency, value in amounts.items()) or "–"


def _table(headers: Sequence[str], rows: list[str], table_id: str) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = "".join(rows)
    table = f'<table id="{table_id}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'
    return f'<div class="scroll">{table}</div>'


def channel_table(rows: Sequence[SalesRow], t: Labels) -> str:
    if not rows:
        return f'<p class="muted">{escape(t("no_sales"))}</p>'
    lines = []
    for row in rows:
        name = t("pos") if row.key == "pos" else row.label
        unpriced = (
            f' <span class="muted">({escape(t("unpriced", n=row.unpriced_units))})</span>'
            if row.unpriced_units
            else ""
        )
        lines.append(
            f'<tr data-channel="{escape(row.key)}"><td><b>{escape(row.key)}</b><br>'
            f'<span class="muted">{escape(name)}</span></td>'
            f'<td class="num">{row.units_sold}{unpriced}</td><td class="num">{_money(row.revenue)}</td>'
            f'<td class="num">{row.refunded_units}</td><td class="num">{_money(row.refunded_amount)}</td>'
            f'<td class="num">{row.returned_units}</td></tr>'
        )
    headers = [
        t(k)
        for k in ("channel", "units_sold", "revenue", "refunded_units", "refunded_amount", "returned_units")
    ]
    return _table(headers, lines, "sales-by-channel")


def low_stock_table(rows: Sequence[LowStock], t: Labels) -> str:
    if not rows:
        return f'<p class="muted">{escape(t("no_low_stock"))}</p>'
    lines = [
        f'<tr data-sku="{escape(row.sku)}" data-cover="{row.days_of_cover}"><td><b>{escape(row.sku)}</b></td>'
        f'<td>{escape(row.title)}</td><td class="num">{row.free_units}</td>'
        f'<td class="num">{row.average_daily}</td>'
        f'<td class="num cover">{row.days_of_cover}</td></tr>'
        for row in rows
    ]
    headers = [t(k) for k in ("sku", "name", "free_units", "average_daily", "days_of_cover")]
    return _table(headers, lines, "low-stock")


# -- the tab -------------------------------------------------------------------------------------------


def tabs(active: str, language: str) -> str:
    """The tab bar both ChannelHub pages show (links relative to the plugin's root)."""
    t = Labels(language)
    items = [("./", "tab_operations", "operations"), ("reports", "tab_reports", "reports")]
    return (
        '<nav class="tabs">'
        + "".join(
            f'<a href="{href}" data-tab="{name}"{" aria-current=page" if name == active else ""}>'
            f"{escape(t(key))}</a>"
            for href, key, name in items
        )
        + "</nav>"
    )


def render_reports(data: ReportData, language: str, days: int) -> str:
    """The Reports tab's body (HTML), in ``language``."""
    t = Labels(language)
    names = {row.key: (t("pos") if row.key == "pos" else row.label) for row in data.channels}
    choices = " · ".join(
        f'<a href="?days={n}"{" aria-current=page" if n == days else ""}>{escape(t("days", days=n))}</a>'
        for n in WINDOW_CHOICES
    )
    note = t("low_stock_note", sales_days=data.sales_days, threshold=data.threshold)
    end = (data.window.end - timedelta(seconds=1)).astimezone(UTC)
    return "".join(
        [
            f'<h2 id="reports-title">{escape(t("title"))}</h2>',
            f'<p class="muted" id="report-window">{escape(t("window", days=days, end=f"{end:%Y-%m-%d}"))}'
            f" · {choices}</p>",
            '<section id="report-charts" class="charts">',
            line_chart(
                "sales-by-channel", t("by_channel_chart"), data.days, data.by_channel, t("no_sales"), names
            ),
            line_chart("sales-by-store", t("by_store_chart"), data.days, data.by_store, t("no_sales"), {}),
            bar_chart("top-skus", t("top_skus"), data.top, t("no_sales")),
            "</section>",
            f'<section id="low-stock-section"><h2>{escape(t("low_stock"))}</h2>',
            f'<p class="muted">{escape(note)}</p>',
            low_stock_table(data.low, t),
            f'</section><section id="summary-section"><h2>{escape(t("summary"))}</h2>',
            channel_table(data.channels, t),
            "</section>",
        ]
    )


REPORT_STYLE = """
.tabs { display: flex; gap: 1rem; margin: .25rem 0 .75rem; border-bottom: 1px solid #e2e8f0; }
.tabs a { padding: .3rem .2rem; text-decoration: none; color: #4a5568; }
.tabs a[aria-current=page] { color: #1a202c; font-weight: 600; border-bottom: 2px solid #2b6cb0; }
.charts { display: grid; grid-template-columns: repeat(auto-fit, minmax(28rem, 1fr)); gap: 1rem; }
figure.chart { margin: 0; } figcaption { font-weight: 600; margin-bottom: .25rem; }
svg.chart { width: 100%; height: auto; background: #fff; }
svg .grid { stroke: #e2e8f0; } svg .axis, svg .value { font-size: 11px; fill: #4a5568; }
.legend { list-style: none; padding: 0; display: flex; flex-wrap: wrap; gap: .75rem; margin: .25rem 0; }
.swatch { display: inline-block; width: .8rem; height: .8rem; margin-right: .3rem; vertical-align: middle; }
td.cover { font-weight: 600; color: #c05621; }
#sales-by-channel th:nth-child(n+2), #low-stock th:nth-child(n+3) { text-align: right; }
"""
