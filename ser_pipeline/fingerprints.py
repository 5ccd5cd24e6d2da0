"""What an episode's rows are computed from: the run's settings and the inputs' fingerprint,
by which an unchanged episode is skipped. Light on purpose (no torch): `run` reads it to
decide whether there is anything to do before it loads the models."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from ser_pipeline.archive import Episode
from ser_pipeline.files import file_sha256
from ser_pipeline.scoring_version import SCORING_VERSION
from ser_pipeline.segmentation import Segmentation
from ser_pipeline.warehouse import table_file


@dataclass(frozen=True)
class RunConfig:
    warehouse: Path
    segmentation: Segmentation = Segmentation.sentence
    window_s: float = 3.0
    hop_s: float | None = None
    reprocess: bool = False  # also episodes whose inputs, models and settings are unchanged

    def describe(self) -> str:
        if self.segmentation is Segmentation.window:
            return f"window:{self.window_s}/{self.hop_s or self.window_s}"
        return self.segmentation.value


@dataclass(frozen=True)
class Inputs:
    """What an episode's rows are computed from, hashed into one fingerprint."""

    audio_sha256: str | None
    audio_stat: str | None
    fingerprint: str

    def columns(self) -> dict[str, str | None]:
        return {"audio_sha256": self.audio_sha256, "audio_stat": self.audio_stat, "fingerprint": self.fingerprint}


def previous_row(warehouse: Path, episode: Episode) -> dict | None:
    """The episode's row in the warehouse, if it has one."""
    path = table_file(warehouse, "episodes", episode.show, episode.episode_id)
    try:
        rows = pq.read_table(path).to_pylist()
    except (FileNotFoundError, pa.ArrowInvalid):
        return None
    return rows[0] if rows else None


def episode_inputs(episode: Episode, config: RunConfig, models: dict, previous: dict | None) -> Inputs:
    """Fingerprint of the audio (sha256, reused from `previous` while the file's size and mtime
    are unchanged), the transcript, the segmentation, the models (`registry.models_fingerprint`)
    and the scoring code (`scoring_version`)."""
    audio_sha = audio_stat = None
    if episode.audio_path is not None and episode.audio_path.is_file():
        stat = episode.audio_path.stat()
        audio_stat = f"{stat.st_size}:{stat.st_mtime_ns}"
        same_file = previous and previous["audio_path"] == str(episode.audio_path)
        if same_file and previous["audio_stat"] == audio_stat and previous["audio_sha256"]:
            audio_sha = previous["audio_sha256"]
        else:
            audio_sha = file_sha256(episode.audio_path)
    transcript = episode.transcript_path
    described = {
        "audio": audio_sha,
        "problem": episode.problem,
        "transcript": file_sha256(transcript) if transcript and transcript.is_file() else None,
        "segmentation": config.describe(),
        "models": models,
        "scoring_version": SCORING_VERSION,
    }
    fingerprint = hashlib.sha256(json.dumps(described, sort_keys=True).encode()).hexdigest()
    return Inputs(audio_sha, audio_stat, fingerprint)


def unchanged(episode: Episode, config: RunConfig, models: dict) -> bool:
    """Whether the episode's recorded rows were computed from exactly these inputs."""
    previous = previous_row(config.warehouse, episode)
    return (
        previous is not None
        and previous["fingerprint"] == episode_inputs(episode, config, models, previous).fingerprint
    )
