"""A small synthetic demo archive, made here from nothing (no shared data copied).

Two shows, one episode each: 44.1 kHz stereo MP3 of voiced, speech-like harmonic sweeps
with pauses and bursts of laugh-like pulsed vowels, a Podcasting 2.0 JSON transcript (one
show) or SRT (the other), and an RSS feed. It exercises every stage; its emotions mean nothing.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import soundfile as sf

DEMO_RATE = 44_100


def _voiced(duration_s: float, pitch_hz: float, rng: np.random.Generator) -> np.ndarray:
    t = np.arange(int(duration_s * DEMO_RATE)) / DEMO_RATE
    contour = pitch_hz * (1 + 0.15 * np.sin(2 * np.pi * rng.uniform(0.5, 2) * t))
    phase = 2 * np.pi * np.cumsum(contour) / DEMO_RATE
    tone = sum(np.sin(k * phase) / k for k in range(1, 12))
    syllables = 0.5 * (1 + np.sin(2 * np.pi * 4 * t - np.pi / 2))  # about 4 syllables a second
    return (0.15 * tone * syllables).astype(np.float32)


def _laugh(duration_s: float, rng: np.random.Generator) -> np.ndarray:
    t = np.arange(int(duration_s * DEMO_RATE)) / DEMO_RATE
    pulses = (np.sin(2 * np.pi * 5 * t) > 0.2).astype(np.float32)  # "ha-ha-ha" at 5 per second
    breathy = rng.standard_normal(len(t)).astype(np.float32) * 0.05
    return (0.2 * np.sin(2 * np.pi * 300 * t) + breathy) * pulses


def _fmt_srt(seconds: float) -> str:
    ms = int(round(seconds * 1000))
    return f"{ms // 3_600_000:02d}:{ms // 60_000 % 60:02d}:{ms // 1000 % 60:02d},{ms % 1000:03d}"


def write_demo_archive(root: Path, seed: int = 0, sentences: int = 12) -> Path:
    """Write the demo archive under `root` and return it."""
    rng = np.random.default_rng(seed)
    for show, transcript_kind in (("demo-talk", "json"), ("demo-panel", "srt")):
        folder = root / show
        folder.mkdir(parents=True, exist_ok=True)
        episode = f"{show}-ep01"
        pieces, cues, cursor = [np.zeros(int(0.5 * DEMO_RATE), np.float32)], [], 0.5
        for index in range(sentences):
            speaker = "Host" if index % 2 == 0 else "Guest"
            voiced = _voiced(rng.uniform(1.5, 3.5), 120 if speaker == "Host" else 210, rng)
            cues.append((cursor, cursor + len(voiced) / DEMO_RATE, speaker, f"Demo sentence number {index + 1}."))
            gap = np.zeros(int(rng.uniform(0.3, 0.8) * DEMO_RATE), np.float32)
            extra = [_laugh(rng.uniform(1.0, 2.0), rng), gap] if index % 4 == 3 else []
            pieces += [voiced, gap, *extra]
            cursor += sum(len(p) for p in [voiced, gap, *extra]) / DEMO_RATE
        mono = np.concatenate(pieces) + rng.standard_normal(sum(map(len, pieces))).astype(np.float32) * 0.002
        sf.write(folder / f"{episode}.mp3", np.stack([mono, 0.9 * mono], axis=1), DEMO_RATE, format="MP3")
        if transcript_kind == "json":
            segments = [
                {"speaker": s, "startTime": round(a, 3), "endTime": round(b, 3), "body": t} for a, b, s, t in cues
            ]
            (folder / f"{episode}.json").write_text(json.dumps({"version": "1.0.0", "segments": segments}, indent=1))
        else:
            (folder / f"{episode}.srt").write_text(
                "\n".join(
                    f"{i}\n{_fmt_srt(a)} --> {_fmt_srt(b)}\n{s}: {t}\n" for i, (a, b, s, t) in enumerate(cues, start=1)
                )
            )
        (folder / "feed.xml").write_text(
            f"""<?xml version="1.0" encoding="UTF-8"?>
<rss version="2.0" xmlns:podcast="https://podcastindex.org/namespace/1.0"><channel><title>{show}</title>
<item><title>{show} episode 1</title><guid>{episode}</guid><pubDate>Mon, 01 Jun 2026 08:00:00 +0000</pubDate>
<enclosure url="{episode}.mp3" type="audio/mpeg"/>
<podcast:transcript url="{episode}.{transcript_kind}" type="{"application/json" if transcript_kind == "json" else "application/x-subrip"}"/>
</item></channel></rss>
"""
        )
    return root
