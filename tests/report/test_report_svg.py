"""The chart primitives: well-formed, accessible SVG for any input; ticks and thinning bounded."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from hypothesis import given, settings
from hypothesis import strategies as st

from harness.report import svg
from harness.report.analysis import (
    POSITION_LABELS,
    bucket_table,
    delays_by_strategy,
    position_bin,
)
from harness.report.model import RetryDelay

SVG = "{http://www.w3.org/2000/svg}"
finite = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False, allow_infinity=False)
positive = st.floats(min_value=0, max_value=1e6, allow_nan=False, allow_infinity=False)
label = st.text(
    st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters="\u2028\u2029"),
    min_size=1,
    max_size=30,
).filter(lambda s: s.strip() == s and "  " not in s)


def _check(doc: object, title: str) -> ET.Element:
    root = ET.fromstring(str(doc))
    assert root.tag == f"{SVG}svg"
    assert root.get("role") == "img"
    assert root.get("aria-label") == title
    t = root.find(f"{SVG}title")
    assert t is not None
    assert t.text == title
    assert root.find(f"{SVG}desc") is not None
    return root


@settings(max_examples=30, deadline=None)
@given(
    lines=st.lists(
        st.tuples(label, st.lists(st.tuples(positive, finite), max_size=40)), max_size=8
    ),
    step=st.booleans(),
    title=label,
)
def test_line_chart_is_well_formed(
    lines: list[tuple[str, list[tuple[float, float]]]], step: bool, title: str
) -> None:
    doc = svg.line_chart(
        chart_id="c",
        title=title,
        desc="d",
        lines=[svg.Line(n, sorted(p)) for n, p in lines],
        x_label="x <&>",
        y_label="y",
        step=step,
        x_time=True,
    )
    root = _check(doc, title)
    # Lines with the same points are drawn once (one would hide the other), named together.
    drawn = {tuple(sorted(p)) for _, p in lines if p}
    polylines = root.findall(f".//{SVG}polyline")
    assert len(polylines) == len(drawn)
    shown = " = ".join(pl.findtext(f"{SVG}title") or "" for pl in polylines).split(" = ")
    assert sorted(shown) == sorted(n for n, p in lines if p) or not drawn


@settings(max_examples=30, deadline=None)
@given(
    cats=st.lists(label, min_size=1, max_size=10),
    data=st.data(),
)
def test_bar_chart_is_well_formed(cats: list[str], data: st.DataObject) -> None:
    n_series = data.draw(st.integers(1, 3))
    series = [
        (f"s{i}", data.draw(st.lists(positive, min_size=len(cats), max_size=len(cats))))
        for i in range(n_series)
    ]
    root = _check(
        svg.bar_chart(
            chart_id="b", title="t", desc="d", categories=cats, series=series, y_label="y"
        ),
        "t",
    )
    bars = [r for r in root.iter(f"{SVG}rect") if r.get("class") == "bar"]
    assert len(bars) == len(cats) * n_series


@settings(max_examples=30, deadline=None)
@given(lo=finite, width=st.floats(min_value=1e-6, max_value=1e6), count=st.integers(1, 10))
def test_nice_ticks_lie_in_range_and_ascend(lo: float, width: float, count: int) -> None:
    hi = lo + width
    ticks = svg.nice_ticks(lo, hi, count)
    assert ticks == sorted(ticks)
    assert 1 <= len(ticks) <= count * 10 + 2
    slack = width * 1e-6
    assert all(lo - slack <= t <= hi + slack for t in ticks)


@settings(max_examples=30, deadline=None)
@given(st.lists(st.tuples(positive, finite), min_size=1, max_size=800), st.integers(4, 200))
def test_thin_keeps_the_peaks_and_bounds_the_size(
    points: list[tuple[float, float]], limit: int
) -> None:
    points.sort()
    out = svg.thin(points, limit)
    assert len(out) <= max(limit, 2) + 2
    assert max(v for _, v in out) == max(v for _, v in points)
    assert min(v for _, v in out) == min(v for _, v in points)
    assert set(out) <= set(points)


@settings(max_examples=30, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 86400 * 3).map(float), positive), min_size=1, max_size=200)
)
def test_bucket_table_is_small_and_keeps_the_maximum(points: list[tuple[float, float]]) -> None:
    points = sorted(dict(points).items())
    table = bucket_table([("v", points)], max_rows=24)
    assert len(table.rows) <= 30
    assert table.rows
    shown = {row[1] for row in table.rows}
    assert svg.fmt_num(max(v for _, v in points)) in shown


@settings(max_examples=30, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["x", "full", "none"]),
            st.integers(1, 5),
            st.integers(0, 100),
            st.integers(0, 100),
        ),
        max_size=50,
    )
)
def test_delay_grouping_counts_every_delay_and_every_violation(
    raw: list[tuple[str, int, int, int]],
) -> None:
    delays = [RetryDelay(s, a, float(d), 0.0, float(hi)) for s, a, d, hi in raw]
    groups = delays_by_strategy(delays)
    assert sum(g.count for g in groups) == len(delays)
    assert sum(g.outside for g in groups) == sum(1 for d in delays if d.delay > d.high)
    present = {d.strategy for d in delays}
    assert [g.strategy for g in groups] == [s for s in ("none", "full", "x") if s in present]


def test_fmt_num_and_duration_are_stable() -> None:
    assert svg.fmt_num(1234567) == "1,234,567"
    assert svg.fmt_num(0.000123) == "0.000123"
    assert svg.fmt_num(None) == "n/a"
    assert svg.fmt_num(float("nan")) == "n/a"
    assert svg.fmt_duration(90) == "90 s"
    assert svg.fmt_duration(7200) == "2 h"
    assert svg.fmt_duration(86400 * 3) == "3 d"
    assert svg.time_ticks(0, 7200) == [0.0, 1800.0, 3600.0, 5400.0, 7200.0]


def test_timeline_and_histogram_are_well_formed() -> None:
    root = _check(
        svg.timeline_chart(
            chart_id="t",
            title="breakers",
            desc="d",
            lanes=[svg.Lane("t1", [(0.0, 10.0, "closed"), (10.0, 20.0, "open")])],
            x_end=20.0,
            x_label="time",
            states=["closed", "open"],
        ),
        "breakers",
    )
    assert len([r for r in root.iter(f"{SVG}rect") if "state" in (r.get("class") or "")]) == 2
    root = _check(
        svg.histogram(
            chart_id="h",
            title="hist",
            desc="d",
            edges=[0.0, 0.5, 1.0],
            counts=[3, 0],
            bounds=[svg.Bound(0.0, "low"), svg.Bound(1.0, "high")],
            x_label="x",
        ),
        "hist",
    )
    assert len([r for r in root.iter(f"{SVG}rect") if r.get("class") == "bar"]) == 1
    assert len([ln for ln in root.iter(f"{SVG}line") if ln.get("class") == "bound"]) == 2


def test_control_characters_cannot_break_the_markup() -> None:
    title = "tenant\x00\x1b[31m <b>&\r\nnext"
    doc = svg.bar_chart(
        chart_id="x",
        title=title,
        desc=title,
        categories=[title],
        series=[("s", [1.0])],
        y_label=title,
    )
    root = ET.fromstring(str(doc))
    assert root.get("aria-label") == "tenant[31m <b>& next"


def test_delays_on_their_bounds_are_inside_the_histogram() -> None:
    assert position_bin(0.0) == 1
    assert position_bin(0.05) == 1
    assert position_bin(0.95) == 10
    assert position_bin(1.0) == 10  # equal to the high bound: inside
    assert position_bin(-0.01) == 0
    assert position_bin(1.01) == 11


@given(
    st.lists(
        st.tuples(
            st.floats(min_value=0.0, max_value=10.0),  # low
            st.floats(min_value=0.0, max_value=10.0),  # width (0: no jitter)
            st.floats(min_value=-0.5, max_value=1.5),  # where the delay lies, 0..1 inside
        ),
        min_size=1,
        max_size=60,
    )
)
def test_the_histogram_and_its_verdict_are_the_same_numbers(
    draws: list[tuple[float, float, float]],
) -> None:
    delays = [
        RetryDelay("full", 0, low + width * where, low, low + width) for low, width, where in draws
    ]
    for g in delays_by_strategy(delays):
        assert sum(g.bins) == len(g.positions)
        zero_width = [d for d in delays if d.high - d.low <= 1e-9]
        zero_outside = sum(1 for d in zero_width if abs(d.delay - d.high) > 1e-9 * max(1, d.high))
        # What the heading says (outside) is what the chart draws outside the bounds.
        assert g.outside == g.bins[0] + g.bins[-1] + zero_outside


def test_a_delay_at_the_cap_is_inside_and_the_labels_name_the_bounds() -> None:
    capped = RetryDelay("equal", 3, 20.0, 10.0, 20.0)  # delay == high bound == the cap
    above = RetryDelay("equal", 3, 20.5, 10.0, 20.0)
    (g,) = delays_by_strategy([capped, above])
    assert g.bins[10] == 1  # "0.9 to 1 (1 = the high bound)"
    assert g.bins[11] == 1
    assert g.outside == 1
    assert POSITION_LABELS[0] == "below the low bound"
    assert POSITION_LABELS[-1] == "above the high bound"
