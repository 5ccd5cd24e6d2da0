"""The labelled corpora under `../shared/data`, read where they lie (never copied)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from ser_pipeline.audio import SAMPLE_RATE

RAVDESS_EMOTIONS = {
    "01": "neutral",
    "02": "neutral",  # calm
    "03": "happy",
    "04": "sad",
    "05": "angry",
    "06": "fear",
    "07": "disgust",
    "08": "surprise",
}
RAVDESS_LEXICON_WORDS = {"02": "calm"}  # calm keeps its own coordinates for the dims targets
TESS_EMOTIONS = {"ps": "surprise"}


@dataclass(frozen=True)
class Clip:
    path: Path
    label: str  # 7-class emotion, or nonverbal class
    speaker: str
    corpus: str
    intensity: str = "normal"
    lexicon_word: str | None = None


def shared_data_dir() -> Path:
    """`SER_SHARED_DATA`, else `../shared/data` beside the project root."""
    if "SER_SHARED_DATA" in os.environ:
        return Path(os.environ["SER_SHARED_DATA"])
    return Path(__file__).resolve().parents[2].parent / "shared" / "data"


def require_dir(path: Path) -> Path:
    if not path.is_dir():
        raise FileNotFoundError(
            f"training data folder {path} not found: set SER_SHARED_DATA to the shared data folder "
            "(the one holding ravdess/, tess/, nonverbal/)"
        )
    return path


def ravdess_clip(path: Path) -> Clip:
    """A RAVDESS file's labels, from its name (modality-channel-emotion-intensity-...-actor)."""
    fields = path.stem.split("-")
    emotion_code, intensity, actor = fields[2], fields[3], fields[6]
    return Clip(
        path,
        RAVDESS_EMOTIONS[emotion_code],
        f"ravdess-{actor}",
        "ravdess",
        "strong" if intensity == "02" else "normal",
        RAVDESS_LEXICON_WORDS.get(emotion_code),
    )


def ravdess_clips(data: Path) -> list[Clip]:
    return [ravdess_clip(path) for path in sorted(require_dir(data / "ravdess").glob("Actor_*/*.flac"))]


def tess_clips(data: Path) -> list[Clip]:
    clips = []
    for path in sorted(require_dir(data / "tess").glob("*/*.flac")):
        speaker, emotion = path.stem.split("_")[0], path.stem.split("_")[-1].lower()
        clips.append(Clip(path, TESS_EMOTIONS.get(emotion, emotion), f"tess-{speaker}", "tess"))
    return clips


NEMO_EMOTIONS = {
    "anger": "angry",
    "fear": "fear",
    "happiness": "happy",
    "neutral": "neutral",
    "sadness": "sad",
    "surprised": "surprise",
}  # nEMO has no disgust


def nemo_clips(data: Path) -> list[Clip]:
    """nEMO (Polish, 9 actors, 16 kHz Ogg Opus), labels from its `metadata.tsv`."""
    import csv

    root = require_dir(data / "nemo")
    with (root / "metadata.tsv").open(newline="", encoding="utf-8") as handle:
        rows = sorted(csv.DictReader(handle, delimiter="\t"), key=lambda r: r["file"])
    return [Clip(root / r["file"], NEMO_EMOTIONS[r["emotion"]], f"nemo-{r['speaker']}", "nemo") for r in rows]


def nonverbal_clips(data: Path) -> list[Clip]:
    root = require_dir(data / "nonverbal")
    return [
        Clip(path, path.parent.name, f"nonverbal-{path.name.split('_')[0]}", "nonverbal")
        for path in sorted(root.glob("*/*.flac"))
    ]


# The RAVDESS actors every recipe holds out: the final test's RAVDESS voices (beside nEMO's
# final-test speakers, `clip_evaluation.in_split`); no decision looks at them.
HELD_OUT_ACTORS: tuple[int, ...] = (1, 2, 5, 8, 11)


def ravdess_voices(actors: tuple[int, ...]) -> set[str]:
    """The speaker names (`Clip.speaker`) of RAVDESS actors."""
    return {f"ravdess-{actor:02d}" for actor in actors}


def read_clip(path: Path) -> np.ndarray:
    samples, rate = sf.read(path, dtype="float32", always_2d=True)
    if rate != SAMPLE_RATE:
        raise ValueError(f"{path}: expected {SAMPLE_RATE} Hz, found {rate} Hz")
    return samples.mean(axis=1)


def split_voices(
    data: Path, split: str, held_out_actors: tuple[int, ...] = HELD_OUT_ACTORS
) -> dict[str, dict[str, list[Clip]]]:
    """corpus -> voice -> clips of a split's voices: for "final" the RAVDESS actors the recipes
    hold out and nEMO's final-test speakers; for "dev" the other RAVDESS actors and nEMO's
    development speakers."""
    from ser_pipeline.clip_evaluation import in_split

    held_out = ravdess_voices(held_out_actors)
    chosen: dict[str, dict[str, list[Clip]]] = {}
    for clip in ravdess_clips(data):
        if (clip.speaker in held_out) == (split == "final"):
            chosen.setdefault("ravdess", {}).setdefault(clip.speaker, []).append(clip)
    for clip in nemo_clips(data):
        if in_split(clip, split):
            chosen.setdefault("nemo", {}).setdefault(clip.speaker, []).append(clip)
    return chosen
