"""An archive of every kind of bad input beside good episodes: the run finishes, records every
episode (ok, ok with a warning, or failed with a one-line reason) and keeps the good rows."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import duckdb
import numpy as np
import pytest

from conftest import write_audio

pytestmark = pytest.mark.slow

FEED = """<?xml version="1.0" encoding="UTF-8"?>
<rss version="2.0"><channel><title>Feed Show</title>
<item><title>Passwd</title><guid>g-passwd</guid><enclosure url="../../etc/passwd"/></item>
<item><title>Absolute</title><guid>g-abs</guid><enclosure url="/etc/passwd"/></item>
<item><title>Notes</title><guid>g-notes</guid><enclosure url="notes.txt"/></item>
<item><title>Twice A</title><guid>g-dup</guid><enclosure url="twice a.wav"/></item>
<item><title>Twice B</title><guid>g-dup</guid><enclosure url="twice b.wav"/></item>
</channel></rss>"""


JAPANESE_SHOW = "毎朝のニュースと天気予報と世界の出来事を楽しく伝える番組です"[:32]  # 96 bytes; 288 URL-quoted


def voiced(seconds: float, rate: int = 16_000) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (0.3 * np.sin(2 * np.pi * 180 * t) * (0.5 + 0.5 * np.sin(2 * np.pi * 3 * t))).astype(np.float32)


@pytest.fixture(scope="module")
def bad_archive(tmp_path_factory, demo_archive):
    root = tmp_path_factory.mktemp("bad") / "archive"
    shutil.copytree(demo_archive, root)
    show = root / "bad show é"
    show.mkdir()
    (show / "zero bytes.mp3").write_bytes(b"")
    (show / "random.mp3").write_bytes(bytes(np.random.default_rng(0).integers(0, 256, 6000, dtype=np.uint8)))
    full = write_audio(show / "full.mp3", voiced(6.0, 44_100), 44_100, format="MP3").read_bytes()
    (show / "full.mp3").unlink()
    (show / "truncated.mp3").write_bytes(full[: len(full) // 2])
    liar = write_audio(show / "liar.wav", voiced(3.0), 16_000)
    raw = bytearray(liar.read_bytes())
    raw[40:44] = (len(raw) * 4).to_bytes(4, "little")
    liar.write_bytes(bytes(raw))
    write_audio(show / "silence.wav", np.zeros(16_000 * 5, np.float32), 16_000)
    write_audio(show / "short.wav", voiced(1.0), 16_000)
    write_audio(show / "narrowband.wav", voiced(4.0, 8_000), 8_000)
    write_audio(show / "six channels.flac", np.repeat(voiced(4.0, 96_000)[:, None], 6, axis=1), 96_000)
    write_audio(show / "clipped.wav", np.clip(voiced(4.0) * 10, -1, 1), 16_000)
    nan = voiced(4.0)
    nan[1000:1100] = np.nan
    nan[5000] = np.inf
    write_audio(show / "nan.wav", nan, 16_000, subtype="FLOAT")
    transcripts = {
        "bad json": "{not json",
        "empty json": '{"segments": []}',
        "nan json": '{"segments": [{"startTime": NaN, "endTime": 1, "body": "x"}]}',
        "list speaker": '{"segments": [{"startTime": 0.5, "endTime": 2, "speaker": ["A", "B"], "body": "x"}]}',
        "number speaker": '{"segments": [{"startTime": 0.5, "endTime": 2, "speaker": 7, "body": "x"}]}',
    }
    for stem, text in transcripts.items():
        write_audio(show / f"{stem}.wav", voiced(4.0), 16_000)
        (show / f"{stem}.json").write_text(text)
    cues = {
        "unsorted": "2\n00:00:02,000 --> 00:00:03,000\nB\n\n1\n00:00:00,500 --> 00:00:01,500\nA\n",
        "overlapping": "1\n00:00:00,500 --> 00:00:02,500\nA\n\n2\n00:00:02,000 --> 00:00:03,500\nB\n",
        "impossible": "1\n00:00:02,000 --> 00:00:01,000\nreversed\n\n2\n00:00:03,000 --> 00:00:09,000\npast the end\n\n3\n00:00:00,500 --> 00:00:01,500\nfine\n",
    }
    for stem, text in cues.items():
        write_audio(show / f"{stem}.wav", voiced(4.0), 16_000)
        (show / f"{stem}.srt").write_text(text)
    write_audio(show / "utf16 odd.wav", voiced(4.0), 16_000)
    (show / "utf16 odd.srt").write_bytes("1\n00:00:00,500 --> 00:00:02,000\nHello\n".encode("utf-16") + b"\x00")
    outside = root.parent / "outside"
    outside.mkdir()
    write_audio(outside / "private.wav", voiced(3.0), 16_000)
    (outside / "private.srt").write_text("1\n00:00:00,500 --> 00:00:02,000\nprivate words\n")
    (show / "linked out.wav").symlink_to(outside / "private.wav")
    write_audio(show / "linked srt.wav", voiced(4.0), 16_000)
    (show / "linked srt.srt").symlink_to(outside / "private.srt")
    long_title = root / JAPANESE_SHOW
    long_title.mkdir()
    write_audio(long_title / "ep.wav", voiced(3.0), 16_000)
    broken_feed = root / "broken feed"
    broken_feed.mkdir()
    (broken_feed / "feed.xml").write_text("<rss><channel><item>")
    write_audio(broken_feed / "named by the feed.wav", voiced(3.0), 16_000)
    write_audio(show / "cp1252.wav", voiced(4.0), 16_000)
    (show / "cp1252.srt").write_bytes("1\n00:00:00,500 --> 00:00:02,000\nCafé crème\n".encode("cp1252"))
    feed_show = root / "feed show"
    feed_show.mkdir()
    (feed_show / "feed.xml").write_text(FEED)
    (feed_show / "notes.txt").write_text("not audio")
    write_audio(feed_show / "twice a.wav", voiced(3.0), 16_000)
    write_audio(feed_show / "twice b.wav", voiced(3.0), 16_000)
    return root


def test_an_archive_of_bad_inputs_finishes_and_records_every_episode(tmp_path, bad_archive):
    env = {**os.environ, "PREFECT_HOME": str(tmp_path / "prefect"), "PREFECT_LOGGING_LEVEL": "WARNING"}
    warehouse = tmp_path / "data"
    result = subprocess.run(
        [sys.executable, "-m", "ser_pipeline", "-v", "run", str(bad_archive), "--warehouse", str(warehouse), "--json"],
        env=env, capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert result.returncode == 1, result.stderr[-3000:]
    summary = json.loads(result.stdout.strip().splitlines()[-1])  # --json: the summary is stdout's last line
    by_status = {o["episode_id"]: o["status"] for o in summary["outcomes"]}
    assert summary["failed"] == sum(s == "failed" for s in by_status.values()) == 7
    assert summary["ok"] == sum(s == "ok" for s in by_status.values()) and summary["episodes"] == len(by_status)
    # -v: a line as each stage of each episode starts (once per stage, though decoding alternates them).
    stages = [line.split(" - stage ")[1] for line in result.stderr.splitlines() if " - stage " in line]
    assert stages and len(stages) == len(set(stages)) and any(s.endswith(": write") for s in stages)
    with duckdb.connect(str(warehouse / "podcasts.duckdb"), read_only=True) as db:
        rows = db.execute("""SELECT "show", episode_id, status, error, models FROM episodes""").fetchall()
        durations = dict(db.execute("SELECT episode_id, duration_s FROM episodes").fetchall())
        segments = dict(db.execute("SELECT episode_id, count(*) FROM segments GROUP BY episode_id").fetchall())
        texts = [t for (t,) in db.execute("SELECT text FROM segments WHERE episode_id = 'cp1252'").fetchall()]
        all_text = " ".join(t or "" for (t,) in db.execute("SELECT text FROM segments").fetchall())
        speakers = dict(
            db.execute("SELECT episode_id, list(DISTINCT speaker) FROM segments GROUP BY episode_id").fetchall()
        )
    episodes = {episode_id: (status, error or "") for _, episode_id, status, error, _ in rows}
    shows = {episode_id: show for show, episode_id, *_ in rows}
    failed = {e: err for e, (status, err) in episodes.items() if status == "failed"}
    assert set(failed) == {"zero bytes", "random", "g-passwd", "g-abs", "g-notes", "linked out", "feed.xml"}
    assert "empty" in failed["zero bytes"] and "not decodable audio: no .mp3 audio" in failed["random"]
    assert "outside the archive" in failed["linked out"] and "not a readable RSS feed" in failed["feed.xml"]
    assert "outside the show folder" in failed["g-passwd"] and "outside the show folder" in failed["g-abs"]
    assert "not an audio file" in failed["g-notes"]
    assert all("\n" not in err for err in failed.values())
    warned = {e: err for e, (status, err) in episodes.items() if status == "ok"}
    assert "truncated" in warned["truncated"]
    assert "no speech found" in warned["silence"]
    assert "clipped" in warned["clipped"]
    assert "NaN/inf" in warned["nan"]
    assert "transcript unreadable" in warned["bad json"] and "no usable sentences" in warned["empty json"]
    assert "not a finite number" in warned["nan json"] and "not a name" in warned["list speaker"]
    assert "not read" in warned["linked srt"] and "private words" not in all_text
    assert speakers["number speaker"] == ["7"] and segments["utf16 odd"] == 1
    assert episodes["ep"][0] == "ok" and shows["ep"] == JAPANESE_SHOW
    assert "sorted" in warned["unsorted"]
    assert "dropped" in warned["impossible"] and "clipped to the audio" in warned["impossible"]
    assert episodes["g-dup"][0] == "ok" and episodes["g-dup-5"][0] == "ok"
    # Decoded at their true length; no transcript, so voice activity (which finds no speech in tones).
    for ok, seconds in {"liar": 3.0, "short": 1.0, "narrowband": 4.0, "six channels": 4.0}.items():
        assert episodes[ok][0] == "ok" and durations[ok] == pytest.approx(seconds, abs=0.01), ok
    for ok in ("overlapping", "demo-talk-ep01", "demo-panel-ep01"):
        assert episodes[ok][0] == "ok" and segments[ok] > 0, ok
    assert segments["unsorted"] == 2 and segments["overlapping"] == 2 and segments["impossible"] == 2
    assert texts == ["Café crème"]
    assert set(segments) <= {e for e, (status, _) in episodes.items() if status == "ok"}
    assert all(json.loads(models)["emotion"] for *_, models in rows)
    assert len(rows) == 2 + 22 + 5 + 1 + 1  # demo, bad show, feed items, long title, broken feed
    again = subprocess.run(
        [sys.executable, "-m", "ser_pipeline", "run", str(bad_archive), "--warehouse", str(warehouse)],
        env=env, capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    # Nothing changed: every failure is recorded with its inputs and not tried again.
    assert "no flow run started" in again.stdout, again.stdout[-2000:] + again.stderr[-2000:]
