"""The HTML reports in a real browser: Debian's chromium driven by Playwright (no download)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from conftest import ROOT, episode_tables
from ser_pipeline.report import build_reports, page_name
from ser_pipeline.warehouse import refresh_views, write_episode

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not Path(CHROMIUM).is_file(), reason="Debian's chromium is not installed (scripts/test installs it)"
    ),
]
ARTIFACTS = ROOT / "test-artifacts"
HOSTILE_TITLE = '<script>alert(1)</script><a href="https://evil.example/">win</a>'
EPISODE_CHARTS = {"dims": 7, "sentiment": 1, "emotions-over-time": 7, "emotion-shares": 1}


@pytest.fixture(scope="module")
def reports(tmp_path_factory) -> Path:
    warehouse = tmp_path_factory.mktemp("warehouse")
    episodes = [
        ("Morning <Chat>", "ep1", "Plain title", ("Host", "Guest <img src=x onerror=alert(2)>"), 3),
        ("Morning <Chat>", "ep2", HOSTILE_TITLE, ("Host",), 1),
        ("Late", "https://example.org/ep?id=3", "No speakers", (None,), 0),
    ]
    for seed, (show, episode_id, title, speakers, laughs) in enumerate(episodes):
        tables = episode_tables(show, episode_id, 60, title=title, speakers=speakers, laughs=laughs, seed=seed)
        write_episode(warehouse, show, episode_id, tables)
    refresh_views(warehouse)
    return build_reports(warehouse, warehouse / "reports")[0].parent


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    flags = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update"]
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=flags)
        yield browser
        browser.close()


def open_page(browser, path: Path):
    """Load a report page offline; returns the page and what went wrong while loading it."""
    page = browser.new_page(viewport={"width": 1300, "height": 900})
    problems = []
    page.on("console", lambda m: problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    page.on("dialog", lambda d: (problems.append(f"dialog: {d.message}"), d.dismiss()))
    page.route(
        "**/*",
        lambda route: (
            route.continue_()
            if route.request.url.startswith("file:")
            else (problems.append(f"network: {route.request.url}"), route.abort())
        ),
    )
    page.goto(path.as_uri())
    page.wait_for_selector(".js-plotly-plot")
    return page, problems


def traces(page) -> dict[str, int]:
    return page.evaluate(
        "Object.fromEntries(Array.from(document.querySelectorAll('.js-plotly-plot')).map(d => [d.id, d.data.length]))"
    )


def screenshot(page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def test_plotly_ships_once_with_the_reports(reports):
    assert (reports / "plotly.min.js").stat().st_size > 1_000_000
    for page in reports.glob("*.html"):
        text = page.read_text()
        assert '<script src="plotly.min.js"></script>' in text and "cdn" not in text.lower()


def test_index_lists_every_episode_with_links_and_draws_its_charts(reports, browser):
    page, problems = open_page(browser, reports / "index.html")
    assert problems == []
    assert traces(page) == {
        "laughs-per-10min": 2,
        **{f"{measure}-over-time": 2 for measure in ("valence", "arousal", "laughs")},  # a line per show
        **{f"emotion-shares-over-time-{n}": 7 for n in (0, 1)},  # a chart per show, a bar trace per emotion
    }
    links = page.eval_on_selector_all("table a", "as => as.map(a => [a.textContent, a.getAttribute('href')])")
    assert sorted(links) == sorted(
        [
            ["Plain title", page_name("Morning <Chat>", "ep1")],
            [HOSTILE_TITLE, page_name("Morning <Chat>", "ep2")],
            ["No speakers", page_name("Late", "https://example.org/ep?id=3")],
        ]
    )
    screenshot(page, "index")
    page.close()


@pytest.mark.parametrize(
    "show, episode_id, speakers",
    [("Morning <Chat>", "ep1", 2), ("Morning <Chat>", "ep2", 1), ("Late", "https://example.org/ep?id=3", 0)],
)
def test_episode_pages_render_every_chart_without_errors(reports, browser, show, episode_id, speakers):
    page, problems = open_page(browser, reports / page_name(show, episode_id))
    assert problems == []
    expected = dict(EPISODE_CHARTS, **({"speakers": 3} if speakers else {}))
    drawn = traces(page)
    assert {k: v for k, v in drawn.items() if k != "sentiment"} == {
        k: v for k, v in expected.items() if k != "sentiment"
    }
    assert 1 <= drawn["sentiment"] <= 3  # one bar trace per sentiment label present
    assert page.locator("h2", has_text="Speakers").count() == (1 if speakers else 0)
    assert page.locator("table#speakers tr").count() == (speakers + 1 if speakers else 0)
    screenshot(page, f"episode-{page_name(show, episode_id).removesuffix('.html')}")
    page.close()


def test_hostile_titles_and_speakers_show_as_text(reports, browser):
    page, problems = open_page(browser, reports / page_name("Morning <Chat>", "ep2"))
    assert page.locator("h1").inner_text() == HOSTILE_TITLE
    assert page.title() == HOSTILE_TITLE
    assert "Morning <Chat>" in page.locator("p.meta").inner_text()
    assert problems == []  # no alert dialog fired
    page.close()
    page, problems = open_page(browser, reports / "index.html")
    links = page.evaluate(
        "Array.from(document.querySelectorAll('.js-plotly-plot a'))"
        ".map(a => a.getAttribute('href') || a.getAttribute('xlink:href') || '')"
    )
    assert not [link for link in links if "evil" in link], links  # the title is no link inside the charts
    ticks = page.eval_on_selector_all("#laughs-per-10min .xtick text", "ts => ts.map(t => t.textContent)")
    assert HOSTILE_TITLE in ticks, ticks  # shown as the text it is
    legend = page.eval_on_selector_all("#laughs-per-10min .legendtext", "ts => ts.map(t => t.textContent)")
    assert "Morning <Chat>" in legend and problems == []
    page.close()
    page, problems = open_page(browser, reports / page_name("Morning <Chat>", "ep1"))
    assert page.locator("table#speakers td", has_text="onerror").inner_text() == "Guest <img src=x onerror=alert(2)>"
    cells = page.locator("table#moments td", has_text="onerror").all_inner_texts()
    assert cells and set(cells) == {"Guest <img src=x onerror=alert(2)>"}  # the moments list too
    assert page.locator("img").count() == 0 and problems == []
    page.close()


def test_hovering_a_segment_shows_its_time_speaker_and_text(reports, browser):
    page, _ = open_page(browser, reports / page_name("Morning <Chat>", "ep1"))
    hover = page.evaluate("document.getElementById('dims').data[0].text[1]")
    assert hover.startswith("0:03.0–0:06.0 · Guest &lt;img") and "sentence 1 &lt;b&gt;" in hover
    page.close()


def test_a_page_copied_without_plotly_says_so_instead_of_showing_blank_charts(reports, browser, tmp_path):
    alone = tmp_path / "index.html"
    shutil.copyfile(reports / "index.html", alone)  # without plotly.min.js beside it
    page = browser.new_page()
    page.goto(alone.as_uri())
    note = page.locator("#plotly-missing")
    assert note.is_visible() and "plotly.min.js" in note.inner_text()
    page.close()
    with_plotly, problems = open_page(browser, reports / "index.html")
    assert not with_plotly.locator("#plotly-missing").is_visible() and not problems
    with_plotly.close()


@pytest.fixture(scope="module")
def long_episode(tmp_path_factory) -> Path:
    """A 15-minute episode (3 s windows) whose audio file lies beside the warehouse."""
    import numpy as np
    import pyarrow as pa
    import soundfile as sf

    warehouse = tmp_path_factory.mktemp("long") / "data"
    audio = warehouse.parent / "audio" / "long.wav"
    audio.parent.mkdir(parents=True)
    sf.write(audio, (0.1 * np.sin(np.arange(60 * 8000) * 2 * np.pi * 220 / 8000)).astype(np.float32), 8000)
    tables = episode_tables("Long show", "long1", 300, title="Long", speakers=("Host", "Guest"), laughs=3)
    tables["episodes"] = tables["episodes"].set_column(
        tables["episodes"].schema.get_field_index("audio_path"), "audio_path", pa.array([str(audio)])
    )
    write_episode(warehouse, "Long show", "long1", tables)
    refresh_views(warehouse)
    build_reports(warehouse, warehouse.parent / "reports")
    return warehouse.parent / "reports" / page_name("Long show", "long1")


def test_a_long_episode_has_mm_ss_axes_30_s_bins_and_plays_the_moment_clicked(long_episode, browser):
    page, problems = open_page(browser, long_episode)
    assert problems == []
    for chart in ("dims", "sentiment", "emotions-over-time"):
        ticks = page.eval_on_selector_all(f"#{chart} .xtick text", "ts => ts.map(t => t.textContent)")
        assert ticks == ["0:00", "2:00", "4:00", "6:00", "8:00", "10:00", "12:00", "14:00"], (chart, ticks)
    bars = page.evaluate("document.getElementById('sentiment')._fullData[0].x.length")
    assert bars == 30  # 15 minutes in 30 s bins, not 300 bars
    assert page.evaluate("document.getElementById('emotions-over-time')._fullData[0].x.length") == 30
    audio = page.locator("audio#episode-audio")
    assert audio.count() == 1 and audio.get_attribute("src") == "../audio/long.wav"
    page.wait_for_function("document.getElementById('episode-audio').readyState >= 1")
    laugh = page.locator("table#moments tr.moment", has_text="laughter").nth(1)  # the laugh at 0:11
    assert laugh.locator("td").first.inner_text() == "0:11"
    laugh.click()
    assert page.evaluate("document.getElementById('episode-audio').currentTime") == pytest.approx(11.0, abs=0.3)
    assert page.locator("table#moments tr.moment", has_text="most aroused").count() == 5
    screenshot(page, "episode-long")
    page.close()


def test_a_page_without_reachable_audio_says_so(reports, browser):
    page, _ = open_page(browser, reports / page_name("Morning <Chat>", "ep1"))
    assert page.locator("audio").count() == 0 and "cannot be reached" in page.locator("p.note").inner_text()
    page.close()


def test_the_index_sorts_by_the_column_clicked(reports, browser):
    page, problems = open_page(browser, reports / "index.html")

    def column(index: int) -> list[str]:
        return page.eval_on_selector_all(
            f"table#episodes tbody tr td:nth-child({index})", "cells => cells.map(c => c.textContent)"
        )

    page.locator("table#episodes th", has_text="valence").click()
    valences = [float(v) for v in column(6)]
    assert valences == sorted(valences, reverse=True)
    page.locator("table#episodes th", has_text="valence").click()  # again: the other way
    assert [float(v) for v in column(6)] == sorted(valences)
    page.locator("table#episodes th", has_text="episode").click()
    assert column(2) == sorted(column(2), key=str.lower, reverse=True) and problems == []
    page.close()
