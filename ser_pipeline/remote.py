"""Remote archives: an http(s) RSS feed mirrored into a local show folder that `discover` reads.

The feed is fetched on every run (it grows); each enclosure and transcript it names is
downloaded once into the cache, with retries, resumable partial downloads (HTTP Range), a size
and a time bound, and its sha256 recorded in `downloads.json`. The mirrored `feed.xml` points
at the downloaded files; an item whose download failed keeps the reason, so the episode is
recorded as failed with it. Only http(s) is fetched: other schemes are refused.
"""

from __future__ import annotations

import fcntl
import hashlib
import http.client
import json
import os
import time
import urllib.error
import urllib.request
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path, PurePosixPath
from urllib.parse import urljoin, urlparse

from ser_pipeline.archive import AUDIO_SUFFIXES, FEED_NAME, PODCAST_NS, PROBLEM_ATTRIBUTE
from ser_pipeline.files import cache_root, file_sha256
from ser_pipeline.transcripts import TRANSCRIPT_SUFFIXES

_CHUNK = 1 << 20


class DownloadError(OSError):
    """A file that could not be fetched; the message is one line fit for the episodes table."""


@dataclass(frozen=True)
class Limits:
    max_bytes: int = 2_000_000_000  # per file: a 3-hour 320 kbps MP3 is about 430 MB
    max_feed_bytes: int = 50_000_000
    timeout_s: float = 60.0  # per network operation (connect, each read)
    attempts: int = 4
    backoff_s: float = 1.0


def is_remote(archive: str) -> bool:
    return urlparse(archive).scheme in ("http", "https")


def _http_only(url: str) -> None:
    if urlparse(url).scheme not in ("http", "https"):
        raise DownloadError(f"refusing {url!r}: only http(s) URLs are fetched")


def fetch(url: str, target: Path, limits: Limits = Limits(), sleep: Callable[[float], None] = time.sleep) -> Path:
    """Download `url` to `target`. A partial `.part` file from an interrupted attempt (or run)
    is resumed with an HTTP Range request when the server allows it; failures are retried with
    backoff; more than `limits.max_bytes` is refused."""
    _http_only(url)
    partial = target.with_name(target.name + ".part")
    target.parent.mkdir(parents=True, exist_ok=True)
    last_error = "no attempt made"
    for attempt in range(limits.attempts):
        if attempt:
            sleep(limits.backoff_s * 2 ** (attempt - 1))
        have = partial.stat().st_size if partial.exists() else 0
        request = urllib.request.Request(url, headers={"Range": f"bytes={have}-"} if have else {})
        try:
            with urllib.request.urlopen(request, timeout=limits.timeout_s) as response:
                _http_only(response.geturl())  # a redirect to another scheme is refused too
                if have and response.status != 206:  # the server ignored the Range: start over
                    have = 0
                length = response.headers.get("Content-Length")
                expected = have + int(length) if length is not None else None
                if expected is not None and expected > limits.max_bytes:
                    raise DownloadError(f"{url} is larger than {limits.max_bytes} bytes; refused")
                with partial.open("ab" if have else "wb") as out:
                    while chunk := response.read(_CHUNK):
                        have += len(chunk)
                        if have > limits.max_bytes:
                            raise DownloadError(f"{url} is larger than {limits.max_bytes} bytes; refused")
                        out.write(chunk)
                if expected is not None and have < expected:  # kept: the next attempt resumes
                    raise ConnectionError(f"connection closed after {have} of {expected} bytes")
            partial.replace(target)
            return target
        except DownloadError:
            partial.unlink(missing_ok=True)
            raise
        except urllib.error.HTTPError as error:
            last_error = f"HTTP {error.code} {error.reason}"
            if error.code == 416:  # Range past the end: the partial file is stale
                partial.unlink(missing_ok=True)
            elif 400 <= error.code < 500 and error.code not in (408, 429):
                break  # the URL is wrong: no retry can mend it
        except (urllib.error.URLError, http.client.HTTPException, OSError) as error:
            last_error = " ".join(str(getattr(error, "reason", error)).split()) or type(error).__name__
    raise DownloadError(f"cannot download {url} after {attempt + 1} attempt(s): {last_error}")


def _local_name(url: str, allowed: tuple[str, ...]) -> str:
    """A safe file name for a URL: a hash of it, with its suffix when the suffix is one we read."""
    suffix = PurePosixPath(urlparse(url).path).suffix.lower()
    return hashlib.sha256(url.encode()).hexdigest()[:20] + (suffix if suffix in allowed else ".bin")


class _Manifest:
    """`downloads.json`: url -> file, bytes and sha256 of each completed download."""

    def __init__(self, path: Path):
        self.path = path
        self.entries: dict[str, dict] = json.loads(path.read_text()) if path.exists() else {}

    def done(self, url: str, folder: Path) -> Path | None:
        entry = self.entries.get(url)
        path = folder / entry["file"] if entry else None
        return path if path is not None and path.is_file() and path.stat().st_size == entry["bytes"] else None

    def record(self, url: str, path: Path) -> None:
        self.entries[url] = {"file": path.name, "bytes": path.stat().st_size, "sha256": file_sha256(path)}
        temporary = self.path.with_name(self.path.name + ".tmp")
        temporary.write_text(json.dumps(self.entries, indent=1, sort_keys=True))
        os.replace(temporary, self.path)


def mirror_feed(url: str, cache: Path | None = None, limits: Limits = Limits(), say=lambda message: None) -> Path:
    """Mirror the feed at `url` into a show folder under `cache` (default: the project cache)
    and return that folder."""
    folder = (cache or cache_root() / "feeds") / hashlib.sha256(url.encode()).hexdigest()[:16]
    folder.mkdir(parents=True, exist_ok=True)
    # Runs mirroring the same feed at once take turns: the second finds the first's downloads.
    with (folder / ".mirror.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        return _mirror_into(folder, url, limits, say)


def _mirror_into(folder: Path, url: str, limits: Limits, say) -> Path:
    # The feed changes between runs: never resume a partial copy left by an earlier one.
    source = folder / "feed.source.xml"
    source.with_name(source.name + ".part").unlink(missing_ok=True)
    try:
        root = ET.fromstring(fetch(url, source, replace(limits, max_bytes=limits.max_feed_bytes)).read_bytes())
    except ET.ParseError as error:
        raise DownloadError(f"{url} is not a readable RSS feed ({error})") from None
    manifest = _Manifest(folder / "downloads.json")

    def local_copy(reference: str, allowed: tuple[str, ...]) -> str:
        """The downloaded file's name in the folder; raises DownloadError with the reason."""
        absolute = urljoin(url, reference)
        _http_only(absolute)
        done = manifest.done(absolute, folder)
        if done is None:
            say(f"downloading {absolute}")
            done = fetch(absolute, folder / _local_name(absolute, allowed), limits)
            manifest.record(absolute, done)
        return done.name

    ET.register_namespace("podcast", PODCAST_NS)
    for item in root.iter("item"):
        enclosure = item.find("enclosure")
        if enclosure is not None and enclosure.get("url"):
            try:
                enclosure.set("url", local_copy(enclosure.get("url"), AUDIO_SUFFIXES))
            except DownloadError as error:
                enclosure.set(PROBLEM_ATTRIBUTE, str(error))
        for transcript in item.findall(f"{{{PODCAST_NS}}}transcript"):
            try:
                transcript.set("url", local_copy(transcript.get("url", ""), TRANSCRIPT_SUFFIXES))
            except DownloadError as error:  # the episode falls back to voice activity
                say(f"transcript not downloaded: {error}")
                item.remove(transcript)
    feed = folder / FEED_NAME
    temporary = feed.with_name(FEED_NAME + ".tmp")
    ET.ElementTree(root).write(temporary, encoding="utf-8", xml_declaration=True)
    os.replace(temporary, feed)
    return folder
