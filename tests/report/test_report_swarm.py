"""The swarm section of the HTML page: well-formed, escaped, and saying what the summary holds."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from harness.report.swarm import render_swarm_html


def test_the_swarm_section_is_markup_from_the_templates_with_every_text_escaped() -> None:
    summary = {
        "runs": 3,
        "passed": 2,
        "seeds": "1-3",
        "invariants": {"nothing_lost": {"runs": 3, "held": 2, "broken": 1, "checked": 40}},
        "kinds": {"n8n_500": 2},
        "params": {"N8N_MAX_RETRIES": {"3": 2, "<b>": 1}},
        "coverage": {"breaker_open": 4},
        "unreached": ["snooze"],
        "failures": [
            {
                "seed": 2,
                "broken": ["nothing_lost"],
                "command": "reliability-harness chaos --swarm 1 --seed 2",
                "details": "1 event lost & <script>",
                "reproducer": {"command": "reliability-harness chaos --scenario r.yaml"},
            }
        ],
    }
    page = render_swarm_html(summary)
    root = ET.fromstring(page)
    assert root.tag == "section"
    assert root.get("id") == "swarm"
    text = "".join(root.itertext())
    assert "3 generated runs (seeds 1-3), 2 with every invariant holding." in text
    assert "seed 2: nothing_lost: 1 event lost & <script>; rerun: " in text
    assert "<script>" not in page
    assert [c.text for c in root.iter("code")][-2:] == [
        "reliability-harness chaos --swarm 1 --seed 2",
        "reliability-harness chaos --scenario r.yaml",
    ]
    cells = [td.text for td in root.iter("td")]
    assert cells == ["3", "2", "1", "40"]
    assert "Not reached by any run: snooze" in text
