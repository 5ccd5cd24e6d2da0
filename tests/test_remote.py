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
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import duckdb
import pytest

from ser_pipeline.archive import discover
from ser_pipeline.remote import DownloadError, Limits, fetch, mirror_feed

FAST = Limits(attempts=3, backoff_s=0.01, timeout_s=10)


class Site:
    """A folder served over HTTP with Range support; `cut[path] = n` drops the connection after
    n bytes of that file's first full response; `hits` counts GETs per path."""

    def __init__(self, root: Path):
        self.root, self.cut, self.hits = root, {}, {}
        site = self

        class Handler(SimpleHTTPRequestHandler):
            def __init__(self, *args, **kwargs):
                super().__init__(*args, directory=str(root), **kwargs)

            def log_message(self, *args):
                pass

            def do_GET(self):
                path = self.path.split("?")[0]
                site.hits[path] = site.hits.get(path, 0) + 1
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
                self.send_header("Content-Length", str(len(data) - start))
                self.end_headers()
                body = data[start:]
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
        fetch(f"{site.url}/big.mp3", tmp_path / "a.mp3", Limits(max_bytes=1000, attempts=1))
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
        [sys.executable, "-m", "ser_pipeline", "run", f"{site.url}/feed.xml", "--warehouse", str(warehouse)],
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
