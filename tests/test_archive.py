from __future__ import annotations

from datetime import UTC, datetime

import pytest

from conftest import EPISODES, needs_shared
from ser_pipeline.archive import PODCAST_NS, ArchiveError, discover

FEED = """<?xml version="1.0" encoding="UTF-8"?>
<rss version="2.0" xmlns:podcast="https://podcastindex.org/namespace/1.0"><channel><title>My Show</title>
<item><title>One</title><guid>g1</guid><pubDate>Tue, 02 Jun 2026 08:00:00 +0000</pubDate>
  <enclosure url="audio/one.mp3"/><podcast:transcript url="one.srt"/><podcast:transcript url="one.json"/></item>
<item><title>Escape</title><guid>g2</guid><enclosure url="../../etc/passwd"/></item>
<item><title>Absolute</title><guid>g3</guid><enclosure url="/etc/passwd"/></item>
<item><title>Not audio</title><guid>g4</guid><enclosure url="notes.txt"/></item>
<item><title>Dup</title><guid>g1</guid><enclosure url="two.wav"/></item>
</channel></rss>"""


def touch(path, content=b"x"):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    return path


def test_folder_scan_with_sidecars_and_preference_json_over_srt(tmp_path):
    touch(tmp_path / "show a" / "ep 1.mp3")
    touch(tmp_path / "show a" / "ep 1.srt")
    touch(tmp_path / "show a" / "ep 1.json")
    touch(tmp_path / "show a" / "épisode 2.flac")
    touch(tmp_path / "show b" / "x.ogg")
    touch(tmp_path / "show b" / "readme.txt")
    episodes = discover(tmp_path)
    assert [(e.show, e.episode_id, e.transcript_path and e.transcript_path.name) for e in episodes] == [
        ("show a", "ep 1", "ep 1.json"),
        ("show a", "épisode 2", None),
        ("show b", "x", None),
    ]


def test_a_single_show_folder_is_an_archive_of_one_show(tmp_path):
    touch(tmp_path / "solo" / "a.wav")
    assert [(e.show, e.episode_id) for e in discover(tmp_path / "solo")] == [("solo", "a")]


def test_feed_items_give_ids_titles_dates_transcripts_and_unsafe_enclosures_are_reported(tmp_path):
    show = tmp_path / "folder-name"
    touch(show / "audio" / "one.mp3")
    touch(show / "one.srt")
    touch(show / "one.json")
    touch(show / "two.wav")
    touch(show / "notes.txt")
    touch(show / "extra.mp3")
    (show / "feed.xml").write_text(FEED)
    episodes = {e.title: e for e in discover(tmp_path)}
    one = episodes["One"]
    assert (one.show, one.episode_id, one.transcript_path.name, one.problem) == ("My Show", "g1", "one.json", None)
    assert one.published == datetime(2026, 6, 2, 8, tzinfo=UTC)
    for title in ("Escape", "Absolute"):
        assert "outside the show folder" in episodes[title].problem and episodes[title].audio_path is None
    assert "not an audio file" in episodes["Not audio"].problem
    assert episodes["Dup"].episode_id == "g1-5" and "duplicate guid" in episodes["Dup"].warnings[0]
    assert episodes["extra"].episode_id == "extra"  # audio the feed does not name is still analyzed
    assert len(episodes) == 6


BILLION_LAUGHS = (
    '<?xml version="1.0"?><!DOCTYPE r [<!ENTITY a "aaaaaaaaaa">'
    + "".join(f'<!ENTITY {n} "{("&" + p + ";") * 10}">' for p, n in zip("abcdefgh", "bcdefghi"))
    + "]><rss><channel><title>&i;</title></channel></rss>"
)
EXTERNAL_ENTITY = (
    '<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/hostname">]>'
    "<rss><channel><title>&x;</title></channel></rss>"
)


@pytest.mark.parametrize(
    "content, reason",
    [
        ("<rss><channel>", "not a readable RSS feed"),
        ("<rss/>", "no <channel>"),
        (BILLION_LAUGHS, "not a readable RSS feed (EntitiesForbidden"),
        (EXTERNAL_ENTITY, "not a readable RSS feed (EntitiesForbidden"),
    ],
)
def test_an_unreadable_feed_fails_its_show_only(tmp_path, content, reason):
    touch(tmp_path / "bad" / "a.mp3")
    (tmp_path / "bad" / "feed.xml").write_text(content)
    touch(tmp_path / "good" / "b.mp3")
    episodes = discover(tmp_path)
    assert [(e.show, e.episode_id) for e in episodes] == [("bad", "feed.xml"), ("good", "b")]
    assert reason in episodes[0].problem and "feed.xml" in episodes[0].problem and episodes[1].problem is None


def test_links_out_of_the_archive_are_refused_with_a_reason(tmp_path):
    outside, archive = tmp_path / "outside", tmp_path / "archive"
    touch(outside / "secret.mp3")
    (outside / "secret.srt").write_text("1\n00:00:00,000 --> 00:00:01,000\nsecret text\n")
    touch(outside / "show" / "x.mp3")
    touch(archive / "show" / "inside.mp3")
    (archive / "show" / "linked.mp3").symlink_to(outside / "secret.mp3")
    (archive / "show" / "inside.srt").symlink_to(outside / "secret.srt")
    (archive / "show" / "alias.mp3").symlink_to(archive / "show" / "inside.mp3")  # inside: fine
    (archive / "elsewhere").symlink_to(outside / "show")
    episodes = {e.episode_id: e for e in discover(archive)}
    assert set(episodes) == {"alias", "inside", "linked", "elsewhere"}
    assert "outside the archive" in episodes["linked"].problem and episodes["linked"].audio_path is None
    assert "outside the archive" in episodes["elsewhere"].problem
    inside = episodes["inside"]
    assert inside.problem is None and inside.transcript_path is None and "not read" in inside.warnings[0]
    assert episodes["alias"].problem is None and episodes["alias"].audio_path == inside.audio_path


def test_a_feed_transcript_outside_the_show_folder_is_a_warning(tmp_path):
    show = tmp_path / "s"
    touch(show / "a.mp3")
    (show / "feed.xml").write_text(
        f'<rss xmlns:podcast="{PODCAST_NS}"><channel><title>S</title><item><guid>a</guid>'
        '<enclosure url="a.mp3"/><podcast:transcript url="../../etc/passwd.srt"/></item></channel></rss>'
    )
    (episode,) = discover(tmp_path)
    assert episode.transcript_path is None and "outside the show folder" in episode.warnings[0]


def test_empty_or_missing_archive(tmp_path):
    with pytest.raises(ArchiveError, match="no audio"):
        discover(tmp_path)
    with pytest.raises(ArchiveError, match="not a folder"):
        discover(tmp_path / "missing")


@needs_shared
def test_shared_episodes():
    episodes = discover(EPISODES)
    assert sorted((e.show, e.episode_id) for e in episodes) == [
        ("late-debate", "late-debate-ep01"),
        ("late-debate", "late-debate-ep02"),
        ("morning-chat", "morning-chat-ep01"),
        ("morning-chat", "morning-chat-ep02"),
    ]
    assert all(e.transcript_path.suffix == ".json" and e.published and not e.problem for e in episodes)
