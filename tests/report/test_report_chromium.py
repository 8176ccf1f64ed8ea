"""The HTML report rendered by a real browser (headless Chromium): charts and tables present.

Without a Chromium on PATH these tests are skipped with the reason; with
`RELIABILITY_REQUIRE_BROWSER=1` (CI sets it) they fail instead, so CI cannot pass without them.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable, Mapping
from html.parser import HTMLParser
from pathlib import Path

import pytest

from harness.report import render_report
from harness.report.model import load_report

_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
_REQUIRE = "RELIABILITY_REQUIRE_BROWSER"
_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
)


class _Counter(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: dict[str, int] = {}
        self.roles: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags[tag] = self.tags.get(tag, 0) + 1
        if tag == "svg":
            self.roles.append(dict(attrs).get("role") or "")


def find_browser(env: Mapping[str, str], which: Callable[[str], str | None] = shutil.which) -> str:
    """The browser's path; skips (or, when RELIABILITY_REQUIRE_BROWSER=1, fails) without one."""
    for name in _NAMES:
        found = which(name)
        if found is not None:
            return found
    reason = (
        f"no Chromium: none of {', '.join(_NAMES)} is on PATH (Debian: apt-get install -y chromium)"
    )
    if env.get(_REQUIRE, "") == "1":
        pytest.fail(f"{reason}, and {_REQUIRE}=1 requires it", pytrace=False)
    pytest.skip(reason)


def test_a_missing_browser_skips_with_its_reason_unless_required() -> None:
    with pytest.raises(pytest.skip.Exception, match="no Chromium: none of chromium, "):
        find_browser({}, which=lambda name: None)
    with pytest.raises(pytest.fail.Exception, match=f"{_REQUIRE}=1 requires it"):
        find_browser({_REQUIRE: "1"}, which=lambda name: None)
    found = {"google-chrome": "/opt/chrome"}
    assert find_browser({_REQUIRE: "1"}, which=found.get) == "/opt/chrome"


def _chromium(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    exe = find_browser(os.environ)
    return subprocess.run(
        [exe, *_FLAGS, f"--user-data-dir={tmp_path / 'profile'}", *args],
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )


@pytest.fixture
def page(tmp_path: Path, chaos_path: Path, load_path: Path) -> Path:
    files = render_report(
        load_report([chaos_path, load_path]), generated_at="2030-01-01T00:00:00Z", generator="t"
    )
    path = tmp_path / "index.html"
    path.write_text(files["index.html"], encoding="utf-8")
    return path


def test_chromium_renders_every_chart_and_table(tmp_path: Path, page: Path) -> None:
    source = _Counter()
    source.feed(page.read_text(encoding="utf-8"))
    done = _chromium(tmp_path, "--dump-dom", page.as_uri())
    assert done.returncode == 0, done.stderr[-2000:]
    rendered = _Counter()
    rendered.feed(done.stdout)
    assert rendered.tags.get("svg", 0) == source.tags["svg"] >= 20
    assert rendered.tags.get("table", 0) == source.tags["table"] >= rendered.tags["svg"]
    assert rendered.tags.get("figure", 0) == rendered.tags["svg"]
    assert set(rendered.roles) == {"img"}
    assert 'id="findings"' in done.stdout
    assert "Herd comparison" in done.stdout


def test_chromium_screenshots_the_page(tmp_path: Path, page: Path) -> None:
    shot = tmp_path / "shot.png"
    done = _chromium(tmp_path, "--window-size=1280,2000", f"--screenshot={shot}", page.as_uri())
    assert done.returncode == 0, done.stderr[-2000:]
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    assert (width, height) == (1280, 2000)
    assert len(data) > 50_000  # a drawn page, not a blank one


_MEASURE = (
    "<script>document.body.setAttribute('data-overflow', String("
    "document.documentElement.scrollWidth - document.documentElement.clientWidth));"
    "document.body.setAttribute('data-width', String(document.documentElement.clientWidth));"
    "</script>"
)


@pytest.mark.parametrize("width", [1400, 800])
def test_the_page_fits_the_window_at_desktop_and_narrow_widths(
    tmp_path: Path, page: Path, width: int
) -> None:
    source = _Counter()
    text = page.read_text(encoding="utf-8")
    source.feed(text)
    # A copy that measures itself: how far the page sticks out to the right of the window.
    probe = tmp_path / "probe.html"
    probe.write_text(text.replace("</body>", _MEASURE + "</body>"), encoding="utf-8")
    done = _chromium(tmp_path, f"--window-size={width},1200", "--dump-dom", probe.as_uri())
    assert done.returncode == 0, done.stderr[-2000:]
    assert f'data-width="{width}"' in done.stdout
    assert 'data-overflow="0"' in done.stdout, "the page scrolls sideways"
    rendered = _Counter()
    rendered.feed(done.stdout)
    assert rendered.tags.get("svg", 0) == source.tags["svg"] >= 20
    assert rendered.tags.get("table", 0) == source.tags["table"]
