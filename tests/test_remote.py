"""Remote archives: an RSS feed served on 127.0.0.1 by the test, mirrored with retries,
resumed partial downloads, size bounds and http(s) only; then analyzed by `ser-pipeline run URL`."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import replace
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote

import duckdb
import pytest

from ser_pipeline.archive import discover
from ser_pipeline.remote import DownloadError, Limits, fetch, mirror_feed

FAST = Limits(attempts=3, backoff_s=0.01, timeout_s=10, private_hosts=("127.0.0.1",))  # the test server


class Site:
    """A folder served over HTTP with Range support; `cut[path] = n` drops the connection after
    n bytes of that file's first full response; `hits` counts GETs per path."""

    def __init__(self, root: Path):
        self.root, self.cut, self.hits = root, {}, {}
        self.redirect: dict[str, str] = {}  # path -> Location of a 302
        self.slow: set[str] = set()  # paths served a byte at a time, 0.2 s apart
        self.bad_length: set[str] = set()  # paths served with "Content-Length: abc"
        site = self

        class Handler(SimpleHTTPRequestHandler):
            def __init__(self, *args, **kwargs):
                super().__init__(*args, directory=str(root), **kwargs)

            def log_message(self, *args):
                pass

            def do_GET(self):
                path = unquote(self.path.split("?")[0])
                site.hits[path] = site.hits.get(path, 0) + 1
                if path in site.redirect:
                    self.send_response(302)
                    self.send_header("Location", site.redirect[path])
                    self.end_headers()
                    return
                file = root / path.lstrip("/")
                if not file.is_file():
                    self.send_error(404)
                    return
                data = file.read_bytes()
                start = 0
                if (ranged := self.headers.get("Range")) and ranged.startswith("bytes="):
                    start = int(ranged[6:].split("-")[0])
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                else:
                    self.send_response(200)
                self.send_header("Content-Length", "abc" if path in site.bad_length else str(len(data) - start))
                self.end_headers()
                body = data[start:]
                if path in site.slow:
                    for byte in body:
                        self.wfile.write(bytes([byte]))
                        self.wfile.flush()
                        time.sleep(0.2)
                    return
                if start == 0 and path in site.cut:
                    self.wfile.write(body[: site.cut.pop(path)])
                    self.wfile.flush()
                    self.connection.shutdown(2)  # the connection drops mid-file
                    return
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def site(tmp_path):
    served = Site(tmp_path / "site")
    (tmp_path / "site").mkdir()
    yield served
    served.server.shutdown()


def test_an_interrupted_download_resumes_where_it_stopped(site, tmp_path):
    payload = os.urandom(3_000_000)
    (site.root / "big.mp3").write_bytes(payload)
    site.cut["/big.mp3"] = 1_000_000
    target = fetch(f"{site.url}/big.mp3", tmp_path / "out" / "big.mp3", FAST)
    assert target.read_bytes() == payload and site.hits["/big.mp3"] == 2
    assert not list(target.parent.glob("*.part"))


def test_downloads_are_bounded_and_http_only_and_errors_are_one_line(site, tmp_path):
    (site.root / "big.mp3").write_bytes(b"x" * 5000)
    with pytest.raises(DownloadError, match="larger than 1000 bytes"):
        fetch(f"{site.url}/big.mp3", tmp_path / "a.mp3", replace(FAST, max_bytes=1000, attempts=1))
    for url in ("file:///etc/passwd", "ftp://example.org/a.mp3"):
        with pytest.raises(DownloadError, match="only http"):
            fetch(url, tmp_path / "b.mp3", FAST)
    with pytest.raises(DownloadError, match="HTTP 404") as missing:
        fetch(f"{site.url}/nope.mp3", tmp_path / "c.mp3", FAST)
    assert "\n" not in str(missing.value) and site.hits["/nope.mp3"] == 1  # a 404 is not retried


FEED = """<?xml version="1.0" encoding="UTF-8"?>
<rss version="2.0" xmlns:podcast="https://podcastindex.org/namespace/1.0"><channel><title>Remote Show</title>
<item><title>One</title><guid>r-1</guid><enclosure url="audio/one.mp3" type="audio/mpeg"/>
  <podcast:transcript url="{base}/audio/one.srt" type="application/srt"/></item>
<item><title>Gone</title><guid>r-2</guid><enclosure url="audio/gone.mp3"/></item>
<item><title>Local file</title><guid>r-3</guid><enclosure url="file:///etc/passwd"/></item>
</channel></rss>"""


def _publish(site, demo_archive) -> Path:
    audio = site.root / "audio"
    audio.mkdir(exist_ok=True)
    demo = next(demo_archive.glob("*/*.mp3"))
    shutil.copyfile(demo, audio / "one.mp3")
    srt = next(demo_archive.glob("*/*.srt"), None)
    if srt is not None:
        shutil.copyfile(srt, audio / "one.srt")
    (site.root / "feed.xml").write_text(FEED.format(base=site.url))
    return audio / "one.mp3"


def test_a_feed_is_mirrored_once_and_failures_become_episode_problems(site, demo_archive, tmp_path):
    audio = _publish(site, demo_archive)
    site.cut["/audio/one.mp3"] = 2000
    folder = mirror_feed(f"{site.url}/feed.xml", tmp_path / "cache", FAST)
    episodes = {e.episode_id: e for e in discover(folder)}
    assert set(episodes) == {"r-1", "r-2", "r-3"}
    one = episodes["r-1"]
    assert one.show == "Remote Show" and one.problem is None and one.audio_path.read_bytes() == audio.read_bytes()
    assert one.audio_path.is_relative_to(folder.resolve())
    if (site.root / "audio" / "one.srt").exists():
        assert one.transcript_path is not None and one.transcript_path.suffix == ".srt"
    assert "HTTP 404" in episodes["r-2"].problem and "only http" in episodes["r-3"].problem
    manifest = json.loads((folder / "downloads.json").read_text())
    recorded = manifest[f"{site.url}/audio/one.mp3"]
    assert recorded["sha256"] == hashlib.sha256(audio.read_bytes()).hexdigest()

    hits = dict(site.hits)
    again = mirror_feed(f"{site.url}/feed.xml", tmp_path / "cache", FAST)
    assert again == folder and site.hits["/audio/one.mp3"] == hits["/audio/one.mp3"]  # not fetched again
    assert site.hits["/feed.xml"] == hits["/feed.xml"] + 1  # the feed itself is read every run


@pytest.mark.slow
def test_run_on_a_feed_url(site, demo_archive, tmp_path):
    _publish(site, demo_archive)
    env = {**os.environ, "PREFECT_HOME": str(tmp_path / "prefect"), "SER_CACHE_DIR": str(tmp_path / "cache")}
    warehouse = tmp_path / "wh"
    result = subprocess.run(
        [sys.executable, "-m", "ser_pipeline", "run", f"{site.url}/feed.xml", "--warehouse", str(warehouse),
         "--allow-private-feeds"],
        env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert result.returncode == 1, result.stderr[-3000:]  # two of the three items fail, with reasons
    with duckdb.connect(str(warehouse / "podcasts.duckdb"), read_only=True) as db:
        rows = dict(db.sql("SELECT episode_id, status FROM episodes").fetchall())
        segments = db.sql("SELECT count(*) FROM segments WHERE episode_id = 'r-1'").fetchall()[0][0]
    assert rows == {"r-1": "ok", "r-2": "failed", "r-3": "failed"} and segments > 0


def test_two_runs_mirroring_one_feed_at_once_take_turns(site, demo_archive, tmp_path):
    """Without the lock, both write the same `.part` and `feed.xml.tmp` files at once."""
    audio = _publish(site, demo_archive)
    results, errors = [], []

    def mirror():
        try:
            results.append(mirror_feed(f"{site.url}/feed.xml", tmp_path / "cache", FAST))
        except Exception as error:  # noqa: BLE001 - reported by the assertion below
            errors.append(error)

    threads = [threading.Thread(target=mirror) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert errors == [] and len(results) == 4 and len(set(results)) == 1
    episode = next(e for e in discover(results[0]) if e.episode_id == "r-1")
    assert episode.audio_path.read_bytes() == audio.read_bytes()
    assert site.hits["/audio/one.mp3"] == 1  # downloaded once: the others found it done
    assert not list(results[0].glob("*.part")) and not list(results[0].glob("*.tmp"))


def test_addresses_inside_the_network_are_refused_before_connecting_unless_allowed(site, tmp_path):
    (site.root / "a.mp3").write_bytes(b"audio")
    port = site.url.rsplit(":", 1)[1]
    for url in (
        f"{site.url}/a.mp3",
        f"http://localhost:{port}/a.mp3",
        f"http://[::ffff:127.0.0.1]:{port}/a.mp3",
        "http://10.0.0.1/a.mp3",
        "http://169.254.169.254/latest/meta-data/",
        "http://224.0.0.1/a.mp3",
        "http://0.0.0.0/a.mp3",
    ):
        with pytest.raises(DownloadError, match="inside the network"):
            fetch(url, tmp_path / "a.mp3", replace(FAST, private_hosts=()))
    assert site.hits == {}  # nothing reached the server
    allowed = fetch(f"{site.url}/a.mp3", tmp_path / "a.mp3", replace(FAST, private_hosts=(), allow_private=True))
    assert allowed.read_bytes() == b"audio"


def test_every_redirect_is_checked_and_bounded(site, tmp_path):
    (site.root / "a.mp3").write_bytes(b"audio")
    port = site.url.rsplit(":", 1)[1]
    site.redirect["/same"] = "/a.mp3"
    assert fetch(f"{site.url}/same", tmp_path / "ok.mp3", FAST).read_bytes() == b"audio"
    site.redirect["/inside"] = f"http://localhost:{port}/a.mp3"  # another name for an internal address
    with pytest.raises(DownloadError, match="refusing localhost.*inside the network"):
        fetch(f"{site.url}/inside", tmp_path / "b.mp3", FAST)
    site.redirect["/ftp"] = "ftp://127.0.0.1/a.mp3"
    with pytest.raises(DownloadError, match="only http"):
        fetch(f"{site.url}/ftp", tmp_path / "c.mp3", FAST)
    for hop in range(7):
        site.redirect[f"/loop{hop}"] = f"/loop{hop + 1}"
    with pytest.raises(DownloadError, match="more than 5 redirects"):
        fetch(f"{site.url}/loop0", tmp_path / "d.mp3", FAST)
    assert "/loop6" not in site.hits and site.hits.get("/a.mp3") == 1


def test_a_slow_server_meets_the_download_deadline(site, tmp_path):
    (site.root / "slow.mp3").write_bytes(b"x" * 100)
    site.slow.add("/slow.mp3")
    began = time.monotonic()
    with pytest.raises(DownloadError, match="took longer than 1 s"):
        fetch(f"{site.url}/slow.mp3", tmp_path / "s.mp3", replace(FAST, deadline_s=1.0))
    assert time.monotonic() - began < 5 and not list(tmp_path.glob("*.part"))


HOSTILE_FEED = """<?xml version="1.0" encoding="UTF-8"?>
<rss version="2.0" xmlns:podcast="https://podcastindex.org/namespace/1.0"><channel><title>Hostile</title>
<item><guid>accent</guid><enclosure url="épisode.mp3"/></item>
<item><guid>bad-ipv6</guid><enclosure url="http://[::1/x.mp3"/></item>
<item><guid>bad-length</guid><enclosure url="length.mp3"/>
  <podcast:transcript url="huge.srt" type="application/srt"/></item>
<item><guid>fourth</guid><enclosure url="fourth.mp3"/></item>
</channel></rss>"""


def test_hostile_feed_items_cost_their_episode_and_bounds_are_reported(site, tmp_path):
    for name in ("épisode.mp3", "length.mp3", "fourth.mp3"):
        (site.root / name).write_bytes(b"audio of " + name.encode())
    (site.root / "huge.srt").write_text("1\n00:00:00,000 --> 00:00:01,000\n" + "x" * 5000 + "\n")
    site.bad_length.add("/length.mp3")
    (site.root / "feed.xml").write_text(HOSTILE_FEED)
    said = []
    limits = replace(FAST, max_items=3, max_transcript_bytes=1000)
    folder = mirror_feed(f"{site.url}/feed.xml", tmp_path / "cache", limits, say=said.append)
    episodes = {e.episode_id: e for e in discover(folder)}
    assert set(episodes) == {"accent", "bad-ipv6", "bad-length"}  # the fourth is past max_items
    assert episodes["accent"].audio_path.read_bytes() == "audio of épisode.mp3".encode()
    assert "not a valid URL" in episodes["bad-ipv6"].problem
    assert episodes["bad-length"].problem is None and episodes["bad-length"].transcript_path is None
    assert any("larger than 1000 bytes" in line for line in said)
    assert any("the first 3 are mirrored" in line for line in said)


def test_the_cache_budget_stops_new_downloads_with_a_reason(site, demo_archive, tmp_path):
    _publish(site, demo_archive)
    folder = mirror_feed(f"{site.url}/feed.xml", tmp_path / "cache", replace(FAST, cache_budget_bytes=10))
    one = next(e for e in discover(folder) if e.episode_id == "r-1")
    assert one.audio_path is None and "budget is 10" in one.problem


def test_limits_come_from_the_environment_and_a_bad_value_is_named(monkeypatch):
    monkeypatch.setenv("SER_FEED_MAX_ITEMS", "3")
    monkeypatch.setenv("SER_FEED_DEADLINE_S", "2.5")
    monkeypatch.setenv("SER_FEED_ALLOW_PRIVATE", "yes")
    limits = Limits.from_environment(max_redirects=1)
    assert (limits.max_items, limits.deadline_s, limits.allow_private, limits.max_redirects) == (3, 2.5, True, 1)
    monkeypatch.setenv("SER_FEED_CACHE_BUDGET_BYTES", "lots")
    with pytest.raises(ValueError, match="SER_FEED_CACHE_BUDGET_BYTES='lots' is not a number"):
        Limits.from_environment()
