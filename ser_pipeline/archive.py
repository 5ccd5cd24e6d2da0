"""Archive discovery: a folder of shows (or one show folder) into a list of episodes.

A show folder holds audio files with optional sidecar transcripts of the same stem, and
optionally an RSS `feed.xml` whose items name guid, title, pubDate, enclosure and
`podcast:transcript`. Paths from a feed are untrusted: anything that resolves outside the
show folder is refused, and the episode is kept with the reason so that it is reported.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from pathlib import Path

import defusedxml.ElementTree as SafeET  # refuses entity declarations (billion laughs, external entities)
from defusedxml import DefusedXmlException

from ser_pipeline.transcripts import TRANSCRIPT_SUFFIXES

AUDIO_SUFFIXES: tuple[str, ...] = (".mp3", ".wav", ".flac", ".ogg", ".m4a", ".aac", ".mp4", ".opus")
FEED_NAME = "feed.xml"
PODCAST_NS = "https://podcastindex.org/namespace/1.0"
# Set on an enclosure by `remote.mirror_feed` when its download failed: the reason.
PROBLEM_ATTRIBUTE = "ser-pipeline-problem"
# Preferred transcript format when an item or a stem offers several.
_TRANSCRIPT_PREFERENCE = {".json": 0, ".vtt": 1, ".srt": 2}


class ArchiveError(ValueError):
    """The archive itself cannot be read (missing folder, unreadable feed)."""


@dataclass(frozen=True)
class Episode:
    show: str
    episode_id: str
    title: str
    audio_path: Path | None
    published: datetime | None = None
    transcript_path: Path | None = None
    # Set when the episode is known to be unusable before any decoding; it is then reported
    # as failed with this reason instead of silently vanishing from the archive.
    problem: str | None = None
    warnings: tuple[str, ...] = field(default=())


def _escapes(path: Path, root: Path) -> bool:
    """Whether `path` resolves (through symlinks) outside `root`."""
    return not path.resolve().is_relative_to(root.resolve())


def _inside(folder: Path, reference: str) -> Path | None:
    """Resolve a feed's relative reference inside `folder`; None when it escapes or is remote."""
    if "://" in reference or reference.startswith("/") or Path(reference).is_absolute():
        return None
    candidate = (folder / reference).resolve()
    return candidate if candidate.is_relative_to(folder.resolve()) else None


def _sidecar_transcript(audio_path: Path) -> Path | None:
    candidates = [audio_path.with_suffix(suffix) for suffix in TRANSCRIPT_SUFFIXES]
    existing = [path for path in candidates if path.is_file()]
    return min(existing, key=lambda p: _TRANSCRIPT_PREFERENCE[p.suffix], default=None)


def _parse_date(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        parsed = parsedate_to_datetime(text.strip())
    except (TypeError, ValueError):
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _feed_episodes(folder: Path, feed_path: Path, default_show: str) -> tuple[str, list[Episode]]:
    try:
        channel = SafeET.parse(feed_path).getroot().find("channel")
    except (ET.ParseError, DefusedXmlException, OSError) as error:
        raise ArchiveError(f"{feed_path.name}: not a readable RSS feed ({error})") from None
    if channel is None:
        raise ArchiveError(f"{feed_path.name}: RSS feed has no <channel>")
    show = (channel.findtext("title") or "").strip() or default_show
    episodes, seen_ids = [], set()
    for number, item in enumerate(channel.findall("item"), start=1):
        enclosure = item.find("enclosure")
        reference = enclosure.get("url", "") if enclosure is not None else ""
        episode_id = (item.findtext("guid") or "").strip() or Path(reference).stem or f"item-{number}"
        warnings = []
        if episode_id in seen_ids:
            warnings.append(f"duplicate guid {episode_id!r}; renamed to {episode_id}-{number}")
            episode_id = f"{episode_id}-{number}"
        seen_ids.add(episode_id)
        title = (item.findtext("title") or "").strip() or episode_id
        audio_path = _inside(folder, reference) if reference else None
        problem = enclosure.get(PROBLEM_ATTRIBUTE) if enclosure is not None else None
        if problem:
            audio_path = None
        elif audio_path is None:
            problem = f"enclosure {reference!r} is missing or points outside the show folder"
        elif audio_path.suffix.lower() not in AUDIO_SUFFIXES:
            problem = f"enclosure {reference!r} is not an audio file"
        transcripts = []
        for tag in item.findall(f"{{{PODCAST_NS}}}transcript"):
            reference = tag.get("url", "")
            if (path := _inside(folder, reference)) is None:
                warnings.append(f"transcript {reference[:200]!r} points outside the show folder; not read")
            elif path.suffix.lower() in _TRANSCRIPT_PREFERENCE and path.is_file():
                transcripts.append(path)
        transcript = min(transcripts, key=lambda p: _TRANSCRIPT_PREFERENCE[p.suffix.lower()], default=None)
        if transcript is None and audio_path is not None:
            transcript = _sidecar_transcript(audio_path)
        episodes.append(
            Episode(
                show=show,
                episode_id=episode_id,
                title=title,
                audio_path=audio_path,
                published=_parse_date(item.findtext("pubDate")),
                transcript_path=transcript,
                problem=problem,
                warnings=tuple(warnings),
            )
        )
    return show, episodes


def discover_show(folder: Path, root: Path | None = None) -> list[Episode]:
    """Episodes of one show folder: the feed's items first, then audio files it does not name.
    A feed that cannot be read makes one failed episode (`FEED_NAME`) that says why, and no
    others: the folder's files are named by the feed. A file that resolves outside `root` (the
    archive; default: the folder), through a symlink, is an episode refused with the reason."""
    root = (root or folder).absolute()
    folder = folder.absolute()
    show, episodes = folder.name, []
    if (folder / FEED_NAME).is_file():
        try:
            show, episodes = _feed_episodes(folder, folder / FEED_NAME, folder.name)
        except ArchiveError as error:
            return [Episode(show, FEED_NAME, FEED_NAME, None, problem=str(error))]
    named = {e.audio_path for e in episodes}
    taken_ids = {e.episode_id for e in episodes}
    for audio_path in sorted(folder.iterdir()):
        if audio_path.suffix.lower() not in AUDIO_SUFFIXES or not audio_path.is_file():
            continue
        if audio_path.resolve() in named:
            continue
        episode_id = audio_path.stem if audio_path.stem not in taken_ids else audio_path.name
        taken_ids.add(episode_id)
        problem, transcript = None, _sidecar_transcript(audio_path)
        if _escapes(audio_path, root):
            problem = f"{audio_path.name} is a link to a file outside the archive; refused"
        warnings = ()
        if transcript is not None and _escapes(transcript, root):
            transcript, warnings = None, (f"{audio_path.stem}: a transcript linked from outside the archive; not read",)
        episodes.append(
            Episode(
                show=show,
                episode_id=episode_id,
                title=audio_path.stem,
                audio_path=None if problem else audio_path.resolve(),
                transcript_path=transcript.resolve() if transcript else None,
                problem=problem,
                warnings=warnings,
            )
        )
    return episodes


def _is_show_folder(folder: Path) -> bool:
    return (folder / FEED_NAME).is_file() or any(
        p.suffix.lower() in AUDIO_SUFFIXES and p.is_file() for p in folder.iterdir()
    )


def discover(archive: Path) -> list[Episode]:
    """All episodes under `archive`: a single show folder, or a folder of show folders."""
    if not archive.is_dir():
        raise ArchiveError(f"archive {archive} is not a folder")
    if _is_show_folder(archive):
        return discover_show(archive)
    shows = [p for p in sorted(archive.iterdir()) if p.is_dir() and not p.name.startswith(".")]
    episodes = []
    for show in shows:
        if _escapes(show, archive):
            problem = f"show folder {show.name} is a link to a folder outside the archive; refused"
            episodes.append(Episode(show.name, show.name, show.name, None, problem=problem))
        elif _is_show_folder(show):
            episodes += discover_show(show, archive)
    if not episodes:
        raise ArchiveError(f"no audio files or feed.xml found in {archive} or its sub-folders")
    return episodes
