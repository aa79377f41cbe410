"""The rejections dashboard: refused uploads of the last 30 days, drawn as a server-side SVG chart.

The chart is plain SVG markup with classes (colours come from static/policies/admin.css), so it
needs neither a script nor an inline style under the admin's CSP.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta

from django.db.models import Count, Sum
from django.utils import timezone
from django.utils.http import urlencode

from policies.models import CspReport
from uploads import selectors

DAYS = 30
TOP = 5
# Codes with a colour of their own in the chart (classes policies-chart-c0 ... c6); the rest
# share the "other" colour.
COLOURS = 7
OTHER = "other codes"

# The chart's geometry, in SVG user units (the viewBox; CSS scales it to the page's width).
WIDTH, HEIGHT = 760, 260
LEFT, RIGHT, TOP_MARGIN, BOTTOM = 44, 8, 12, 34
PLOT_WIDTH, PLOT_HEIGHT = WIDTH - LEFT - RIGHT, HEIGHT - TOP_MARGIN - BOTTOM


@dataclass(frozen=True)
class Segment:
    code: str
    count: int
    y: float
    height: float
    css_class: str


@dataclass(frozen=True)
class Bar:
    day: date
    total: int
    x: float
    width: float
    segments: list[Segment]
    url: str
    label: str = ""  # the date under the axis, on every fifth bar

    @property
    def center(self) -> float:
        return round(self.x + self.width / 2, 2)


@dataclass(frozen=True)
class Chart:
    width: int
    height: int
    plot_left: int
    plot_right: int
    baseline: float
    bars: list[Bar]
    ticks: list[tuple[int, float]]  # (value, y) of the horizontal grid lines
    legend: list[tuple[str, str, int]]  # (code, css class, refused in the period)

    @property
    def tick_label_x(self) -> int:
        return self.plot_left - 6

    @property
    def label_y(self) -> float:
        return self.baseline + 20

    @property
    def peak(self) -> Bar | None:
        busiest = max(self.bars, key=lambda bar: bar.total, default=None)
        return busiest if busiest is not None and busiest.total else None


@dataclass(frozen=True)
class Ranked:
    name: str
    count: int
    percent: int
    url: str


@dataclass(frozen=True)
class CspSummary:
    reports: int  # reports counted on the rows seen in the period
    rows: int
    directives: list[Ranked]
    latest: list[CspReport]
    url: str


@dataclass
class Dashboard:
    start: datetime
    end: datetime
    accepted: int
    refused: int
    chart: Chart
    table: list[tuple[date, list[int], int]]  # days with refusals: per legend code, and total
    top_codes: list[Ranked] = field(default_factory=list)
    top_policies: list[Ranked] = field(default_factory=list)
    csp: CspSummary | None = None
    refused_url: str = ""

    @property
    def refused_percent(self) -> int | None:
        total = self.accepted + self.refused
        return round(100 * self.refused / total) if total else None


def link(base: str, **params: str) -> str:
    return f"{base}?{urlencode(params)}"


def period(now: datetime | None = None) -> tuple[datetime, datetime, list[date]]:
    """The last DAYS local days, today included: [start of the first, now], and the days."""
    now = timezone.localtime(now or timezone.now())
    first = now.date() - timedelta(days=DAYS - 1)
    start = timezone.make_aware(datetime.combine(first, time.min))
    return start, now, [first + timedelta(days=n) for n in range(DAYS)]


def day_bounds(day: date) -> tuple[str, str]:
    start = timezone.make_aware(datetime.combine(day, time.min))
    end = timezone.make_aware(datetime.combine(day + timedelta(days=1), time.min))
    return start.isoformat(), end.isoformat()


def nice_step(largest: int, lines: int = 4) -> int:
    """A round grid step (1, 2 or 5 times a power of ten) giving about `lines` grid lines."""
    rough = max(largest / lines, 1)
    power = 10 ** math.floor(math.log10(rough))
    return next(m * power for m in (1, 2, 5, 10) if m * power >= rough)


def build_chart(
    days: list[date], counts: dict[tuple[date, str], int], codes: list[str], events_url: str
) -> Chart:
    """A stacked bar per day, one segment per code (in `codes` order, "other codes" last)."""
    totals = {day: sum(n for (d, _), n in counts.items() if d == day) for day in days}
    step = nice_step(max(totals.values(), default=0))
    top = step * max(math.ceil(max(totals.values(), default=0) / step), 1)
    scale = PLOT_HEIGHT / top
    baseline = TOP_MARGIN + PLOT_HEIGHT
    slot = PLOT_WIDTH / len(days)
    classes = {code: f"policies-chart-c{n}" for n, code in enumerate(codes)}
    bars = []
    for index, day in enumerate(days):
        y, segments = baseline, []
        for code in [*codes, OTHER]:
            count = counts.get((day, code), 0)
            if not count:
                continue
            y -= count * scale
            css = classes.get(code, "policies-chart-other")
            segments.append(Segment(code, count, round(y, 2), round(count * scale, 2), css))
        since, until = day_bounds(day)
        url = link(events_url, outcome="refused", created_at__gte=since, created_at__lt=until)
        bars.append(
            Bar(
                day=day,
                total=totals[day],
                x=round(LEFT + index * slot + slot * 0.15, 2),
                width=round(slot * 0.7, 2),
                segments=segments,
                url=url,
                label=f"{day:%b} {day.day}" if index % 5 == 0 or index == len(days) - 1 else "",
            )
        )
    ticks = [(value, round(baseline - value * scale, 2)) for value in range(0, top + 1, step)]
    legend_totals: dict[str, int] = defaultdict(int)
    for (_, code), count in counts.items():
        legend_totals[code] += count
    legend = [
        (code, classes.get(code, "policies-chart-other"), legend_totals[code])
        for code in [*codes, OTHER]
        if legend_totals[code]
    ]
    return Chart(WIDTH, HEIGHT, LEFT, WIDTH - RIGHT, baseline, bars, ticks, legend)


def rejections_dashboard(
    *, events_url: str, csp_url: str = "", now: datetime | None = None
) -> Dashboard:
    """Refused uploads per day and code over the last DAYS days, the top codes and policies,
    each linked to the matching events; with `csp_url`, the CSP report summary too."""
    start, end, days = period(now)
    since = start.isoformat()
    rows = selectors.refusals_by_day_and_code(start)
    by_code: dict[str, int] = defaultdict(int)
    for _, code, count in rows:
        by_code[code] += count
    ranked = sorted(by_code, key=lambda code: (-by_code[code], code))
    codes = ranked[:COLOURS] if len(ranked) <= COLOURS else ranked[: COLOURS - 1]
    counts: dict[tuple[date, str], int] = defaultdict(int)
    for day, code, count in rows:
        counts[(day, code if code in codes else OTHER)] += count
    chart = build_chart(days, counts, codes, events_url)
    decisions = selectors.decision_counts(start)
    refused = decisions["refused"]
    legend_codes = [code for code, _, _ in chart.legend]
    table = [
        (bar.day, [counts.get((bar.day, code), 0) for code in legend_codes], bar.total)
        for bar in chart.bars
        if bar.total
    ]
    return Dashboard(
        start=start,
        end=end,
        accepted=decisions["accepted"],
        refused=refused,
        chart=chart,
        table=table,
        top_codes=[
            Ranked(
                code, n, _percent(n, refused), link(events_url, code=code, created_at__gte=since)
            )
            for code, n in selectors.refusals_by("code", start, top=TOP)
        ],
        top_policies=[
            Ranked(
                slug,
                n,
                _percent(n, refused),
                link(events_url, outcome="refused", policy_slug=slug, created_at__gte=since),
            )
            for slug, n in selectors.refusals_by("policy_slug", start, top=TOP)
        ],
        csp=csp_summary(start, csp_url) if csp_url else None,
        refused_url=link(events_url, outcome="refused", created_at__gte=since),
    )


def csp_summary(start: datetime, csp_url: str) -> CspSummary:
    """The CSP report rows seen since `start`: the directives that block most, the latest rows."""
    seen = CspReport.objects.filter(last_seen__gte=start)
    totals = seen.aggregate(reports=Sum("count"), rows=Count("id"))
    reports = totals["reports"] or 0
    since = start.isoformat()
    directives = [
        Ranked(
            directive,
            n,
            _percent(n, reports),
            link(csp_url, directive=directive, last_seen__gte=since),
        )
        for directive, n in seen.values_list("directive")
        .annotate(total=Sum("count"))
        .order_by("-total", "directive")[:TOP]
    ]
    return CspSummary(
        reports=reports,
        rows=totals["rows"],
        directives=directives,
        latest=list(seen.order_by("-last_seen")[:TOP]),
        url=link(csp_url, last_seen__gte=since),
    )


def _percent(part: int, whole: int) -> int:
    return round(100 * part / whole) if whole else 0
