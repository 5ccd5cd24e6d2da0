"""Remote archives: an http(s) RSS feed mirrored into a local show folder that `discover` reads.

The feed is fetched on every run (it grows); each enclosure and transcript it names is
downloaded once into the cache, with retries, resumable partial downloads (HTTP Range), a size
and a time bound, and its sha256 recorded in `downloads.json`. The mirrored `feed.xml` points
at the downloaded files; an item whose download failed keeps the reason, so the episode is
recorded as failed with it. Only http(s) is fetched: other schemes are refused.
"""

from __future__ import annotations

import hashlib
import http.client
import ipaddress
import json
import os
import socket
import ssl
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass, fields, replace
from pathlib import Path, PurePosixPath
from urllib.parse import quote, urljoin, urlsplit

import defusedxml.ElementTree as SafeET  # refuses entity declarations (billion laughs, external entities)
from defusedxml import DefusedXmlException

from ser_pipeline.archive import AUDIO_SUFFIXES, FEED_NAME, PODCAST_NS, PROBLEM_ATTRIBUTE
from ser_pipeline.files import atomic_write, cache_root, exclusive_lock, file_sha256
from ser_pipeline.transcripts import MAX_TRANSCRIPT_BYTES, TRANSCRIPT_SUFFIXES

_CHUNK = 1 << 20
_REDIRECTS = (301, 302, 303, 307, 308)


class DownloadError(OSError):
    """A file that could not be fetched; the message is one line fit for the episodes table."""


@dataclass(frozen=True)
class Limits:
    """Bounds on what a feed may make a run fetch. Each can be set by an environment variable
    `SER_FEED_<NAME>` (upper case), read by `from_environment`."""

    max_bytes: int = 2_000_000_000  # per file: a 3-hour 320 kbps MP3 is about 430 MB
    max_feed_bytes: int = 50_000_000
    max_transcript_bytes: int = MAX_TRANSCRIPT_BYTES
    max_items: int = 5000  # items of one feed mirrored (the first ones, usually the newest)
    cache_budget_bytes: int = 100_000_000_000  # all mirrored feeds together
    timeout_s: float = 60.0  # per network operation (connect, each read)
    deadline_s: float = 3600.0  # per download, every attempt together
    attempts: int = 4
    backoff_s: float = 1.0
    max_redirects: int = 5
    # Loopback, private, link-local, multicast and reserved addresses are refused (a feed must
    # not reach inside the network it is read from), unless allowed here: all of them, or
    # these host names only.
    allow_private: bool = False
    private_hosts: tuple[str, ...] = ()

    @classmethod
    def from_environment(cls, **overrides) -> Limits:
        values = {}
        for field in fields(cls):
            text = os.environ.get(f"SER_FEED_{field.name.upper()}")
            if text is None or field.name == "private_hosts":
                continue
            try:
                values[field.name] = (
                    text.lower() in ("1", "true", "yes")
                    if field.type == "bool"
                    else (float(text) if field.type == "float" else int(text))
                )
            except ValueError:
                raise ValueError(f"SER_FEED_{field.name.upper()}={text!r} is not a number") from None
        return cls(**{**values, **overrides})


def is_remote(archive: str) -> bool:
    try:
        return urlsplit(archive).scheme in ("http", "https")
    except ValueError:
        return False


@dataclass(frozen=True)
class _Target:
    scheme: str
    host: str  # IDNA-encoded
    port: int
    path: str  # percent-encoded path and query

    @classmethod
    def parse(cls, url: str) -> _Target:
        try:
            parts = urlsplit(url)
            if parts.scheme not in ("http", "https"):
                raise DownloadError(f"refusing {url[:200]!r}: only http(s) URLs are fetched")
            if not parts.hostname:
                raise ValueError("no host")
            host = parts.hostname.encode("idna").decode("ascii")
            port = parts.port or (443 if parts.scheme == "https" else 80)
        except (ValueError, UnicodeError) as error:
            raise DownloadError(f"refusing {url[:200]!r}: not a valid URL ({error})") from None
        safe = "/%:@!$&'()*+,;=-._~"
        path = quote(parts.path or "/", safe=safe) + (f"?{quote(parts.query, safe=safe + '?')}" if parts.query else "")
        return cls(parts.scheme, host, port, path)


def _allowed(address: str, host: str, limits: Limits) -> bool:
    if limits.allow_private or host in limits.private_hosts:
        return True
    ip = ipaddress.ip_address(address.split("%")[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not (ip.is_multicast or ip.is_reserved or ip.is_loopback or ip.is_link_local)


def _resolve(target: _Target, limits: Limits) -> str:
    """The address to connect to: every address the host resolves to must be allowed, and
    the connection then goes to the one checked (DNS cannot swap it in between)."""
    try:
        answers = socket.getaddrinfo(target.host, target.port, type=socket.SOCK_STREAM)
    except OSError as error:
        raise DownloadError(f"cannot resolve {target.host}: {error}") from None
    addresses = [answer[4][0] for answer in answers]
    refused = [address for address in addresses if not _allowed(address, target.host, limits)]
    if refused or not addresses:
        raise DownloadError(
            f"refusing {target.host}: it resolves to {refused[0] if refused else 'nothing'}, an address inside"
            " the network (loopback, private, link-local, multicast or reserved); --allow-private-feeds allows it"
        )
    return addresses[0]


class _PinnedHTTP(http.client.HTTPConnection):
    def __init__(self, target: _Target, address: str, timeout: float):
        super().__init__(target.host, target.port, timeout=timeout)
        self.address = address

    def connect(self) -> None:
        self.sock = socket.create_connection((self.address, self.port), self.timeout)


class _PinnedHTTPS(http.client.HTTPSConnection):
    def __init__(self, target: _Target, address: str, timeout: float):
        super().__init__(target.host, target.port, timeout=timeout, context=ssl.create_default_context())
        self.address = address

    def connect(self) -> None:
        plain = socket.create_connection((self.address, self.port), self.timeout)
        self.sock = self._context.wrap_socket(plain, server_hostname=self.host)


def _get(url: str, headers: dict[str, str], limits: Limits) -> tuple[http.client.HTTPResponse, str]:
    """GET `url`, following at most `limits.max_redirects` redirects, each hop checked (scheme,
    address) before it is connected to; returns the final response (open) and its URL."""
    for _ in range(limits.max_redirects + 1):
        target = _Target.parse(url)
        address = _resolve(target, limits)
        connection = (_PinnedHTTPS if target.scheme == "https" else _PinnedHTTP)(target, address, limits.timeout_s)
        connection.request("GET", target.path, headers={"User-Agent": "ser-pipeline", **headers})
        response = connection.getresponse()
        location = response.getheader("Location")
        if response.status not in _REDIRECTS or not location:
            return response, url
        response.close()
        connection.close()
        url = urljoin(url, location)
    raise DownloadError(f"more than {limits.max_redirects} redirects from {url[:200]!r}; refused")


def _content_length(response: http.client.HTTPResponse) -> int | None:
    text = (response.getheader("Content-Length") or "").strip()
    return int(text) if text.isdigit() else None  # a malformed length is no length


class _HTTPStatus(Exception):
    def __init__(self, status: int, reason: str):
        super().__init__(f"HTTP {status} {reason}")
        self.status = status


def fetch(url: str, target: Path, limits: Limits = Limits(), sleep: Callable[[float], None] = time.sleep) -> Path:
    """Download `url` to `target`. A partial `.part` file from an interrupted attempt (or run)
    is resumed with an HTTP Range request when the server allows it; failures are retried with
    backoff within `limits.deadline_s`; more than `limits.max_bytes` is refused."""
    _Target.parse(url)  # a URL that can never be fetched is refused before any attempt
    partial = target.with_name(target.name + ".part")
    target.parent.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + limits.deadline_s
    last_error = "no attempt made"
    for attempt in range(limits.attempts):
        if attempt:
            sleep(limits.backoff_s * 2 ** (attempt - 1))
        have = partial.stat().st_size if partial.exists() else 0
        try:
            response, _ = _get(url, {"Range": f"bytes={have}-"} if have else {}, limits)
            with response:
                if response.status >= 400:
                    raise _HTTPStatus(response.status, response.reason)
                if have and response.status != 206:  # the server ignored the Range: start over
                    have = 0
                length = _content_length(response)
                expected = have + length if length is not None else None
                if expected is not None and expected > limits.max_bytes:
                    raise DownloadError(f"{url} is larger than {limits.max_bytes} bytes; refused")
                with partial.open("ab" if have else "wb") as out:
                    while chunk := response.read1(_CHUNK):  # what has arrived: the deadline is checked often
                        have += len(chunk)
                        if have > limits.max_bytes:
                            raise DownloadError(f"{url} is larger than {limits.max_bytes} bytes; refused")
                        if time.monotonic() > deadline:
                            raise DownloadError(f"{url} took longer than {limits.deadline_s:.0f} s; stopped")
                        out.write(chunk)
                if expected is not None and have < expected:  # kept: the next attempt resumes
                    raise ConnectionError(f"connection closed after {have} of {expected} bytes")
            partial.replace(target)
            return target
        except DownloadError:
            partial.unlink(missing_ok=True)
            raise
        except _HTTPStatus as error:
            last_error = str(error)
            if error.status == 416:  # Range past the end: the partial file is stale
                partial.unlink(missing_ok=True)
            elif 400 <= error.status < 500 and error.status not in (408, 429):
                break  # the URL is wrong: no retry can mend it
        except (http.client.HTTPException, OSError, ValueError) as error:
            last_error = " ".join(str(error).split()) or type(error).__name__
        if time.monotonic() > deadline:
            raise DownloadError(f"{url} took longer than {limits.deadline_s:.0f} s; stopped: {last_error}")
    raise DownloadError(f"cannot download {url} after {attempt + 1} attempt(s): {last_error}")


def _local_name(url: str, allowed: tuple[str, ...]) -> str:
    """A safe file name for a URL: a hash of it, with its suffix when the suffix is one we read."""
    suffix = PurePosixPath(urlsplit(url).path).suffix.lower()
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
        with atomic_write(self.path) as temporary:
            temporary.write_text(json.dumps(self.entries, indent=1, sort_keys=True))


def mirror_feed(url: str, cache: Path | None = None, limits: Limits | None = None, say=lambda message: None) -> Path:
    """Mirror the feed at `url` into a show folder under `cache` (default: the project cache)
    and return that folder. `limits` default: `Limits.from_environment()`."""
    limits = limits or Limits.from_environment()
    cache = cache or cache_root() / "feeds"
    folder = cache / hashlib.sha256(url.encode()).hexdigest()[:16]
    folder.mkdir(parents=True, exist_ok=True)
    # Runs mirroring the same feed at once take turns: the second finds the first's downloads.
    with exclusive_lock(folder / ".mirror.lock"):
        return _mirror_into(folder, url, limits, say, cache)


class _CacheBudget:
    """What the feed cache holds against its budget; a download that would pass it is refused."""

    def __init__(self, cache: Path, budget: int):
        self.budget = budget
        self.used = sum(f.stat().st_size for f in cache.rglob("*") if f.is_file())

    def check(self, url: str) -> None:
        if self.used >= self.budget:
            raise DownloadError(
                f"not downloaded: the feed cache holds {self.used} bytes, its budget is {self.budget}"
                " (SER_FEED_CACHE_BUDGET_BYTES)"
            )

    @property
    def remaining(self) -> int:
        return max(self.budget - self.used, 0)

    def add(self, path: Path) -> None:
        self.used += path.stat().st_size


def _mirror_into(folder: Path, url: str, limits: Limits, say, cache: Path) -> Path:
    # The feed changes between runs: never resume a partial copy left by an earlier one.
    source = folder / "feed.source.xml"
    source.with_name(source.name + ".part").unlink(missing_ok=True)
    try:
        root = SafeET.fromstring(fetch(url, source, replace(limits, max_bytes=limits.max_feed_bytes)).read_bytes())
    except (ET.ParseError, DefusedXmlException) as error:
        raise DownloadError(f"{url} is not a readable RSS feed ({error})") from None
    manifest = _Manifest(folder / "downloads.json")
    budget = _CacheBudget(cache, limits.cache_budget_bytes)

    def local_copy(reference: str, allowed: tuple[str, ...], bounds: Limits) -> str:
        """The downloaded file's name in the folder; raises DownloadError with the reason."""
        try:
            absolute = urljoin(url, reference)
        except ValueError as error:
            raise DownloadError(f"refusing {reference[:200]!r}: not a valid URL ({error})") from None
        _Target.parse(absolute)
        done = manifest.done(absolute, folder)
        if done is None:
            budget.check(absolute)
            say(f"downloading {absolute}")
            bounds = replace(bounds, max_bytes=min(bounds.max_bytes, budget.remaining))
            done = fetch(absolute, folder / _local_name(absolute, allowed), bounds)
            budget.add(done)
            manifest.record(absolute, done)
        return done.name

    ET.register_namespace("podcast", PODCAST_NS)
    transcript_limits = replace(limits, max_bytes=limits.max_transcript_bytes)
    channel = root.find("channel")
    items = channel.findall("item") if channel is not None else []
    if len(items) > limits.max_items:
        say(
            f"the feed has {len(items)} items; the first {limits.max_items} are mirrored"
            " (SER_FEED_MAX_ITEMS sets how many)"
        )
        for item in items[limits.max_items :]:
            channel.remove(item)
    for item in root.iter("item"):
        enclosure = item.find("enclosure")
        if enclosure is not None and enclosure.get("url"):
            try:
                enclosure.set("url", local_copy(enclosure.get("url"), AUDIO_SUFFIXES, limits))
            except DownloadError as error:
                enclosure.set(PROBLEM_ATTRIBUTE, str(error))
        for transcript in item.findall(f"{{{PODCAST_NS}}}transcript"):
            try:
                transcript.set("url", local_copy(transcript.get("url", ""), TRANSCRIPT_SUFFIXES, transcript_limits))
            except DownloadError as error:  # the episode falls back to voice activity
                say(f"transcript not downloaded: {error}")
                item.remove(transcript)
    feed = folder / FEED_NAME
    with atomic_write(feed) as temporary:
        ET.ElementTree(root).write(temporary, encoding="utf-8", xml_declaration=True)
    return folder
