from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("SER_SHARED_DATA", ROOT.parent / "shared" / "data"))
EPISODES = SHARED_DATA / "episodes"

needs_shared = pytest.mark.skipif(not EPISODES.is_dir(), reason="../shared/data is absent")


def tone(frequency: float, seconds: float, rate: int = 16_000, amplitude: float = 0.5) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (amplitude * np.sin(2 * np.pi * frequency * t)).astype(np.float32)


def write_audio(path: Path, samples: np.ndarray, rate: int, **kwargs) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, samples, rate, **kwargs)
    return path


@pytest.fixture(scope="session")
def analyzer():
    from ser_pipeline.inference import Analyzer

    return Analyzer(device="cpu")


@pytest.fixture(scope="session")
def demo_archive(tmp_path_factory) -> Path:
    from ser_pipeline.demo import write_demo_archive

    return write_demo_archive(tmp_path_factory.mktemp("demo") / "archive")


def episode_tables(
    show: str,
    episode_id: str,
    n_segments: int,
    title: str = "t",
    speakers: tuple[str | None, ...] = (None,),
    laughs: int = 0,
    seed: int = 0,
):
    """Warehouse tables of one synthetic episode (3 s windows, random but valid scores), for
    warehouse and report tests that need no inference."""
    from datetime import UTC, datetime

    import pyarrow as pa

    from ser_pipeline import schema

    rng = np.random.default_rng(seed)
    duration = 3.0 * n_segments
    episode = {f.name: None for f in schema.EPISODES}
    episode.update(
        show=show,
        episode_id=episode_id,
        title=title,
        status="ok",
        duration_s=duration,
        published=datetime(2026, 1, 1 + seed % 28, tzinfo=UTC),
        models='{"emotion": "m"}',
    )
    segments = []
    for i in range(n_segments):
        emotion = rng.dirichlet(np.ones(len(schema.EMOTIONS)))
        sentiment = rng.dirichlet(np.ones(3))
        segments.append(
            {
                "show": show,
                "episode_id": episode_id,
                "segment_id": i,
                "kind": "window",
                "start_s": 3.0 * i,
                "end_s": 3.0 * i + 3,
                "speaker": speakers[i % len(speakers)],
                "text": f"sentence {i} <b>bold?</b>",
                "emotion": schema.EMOTIONS[int(emotion.argmax())],
                **dict(zip(schema.EMOTION_PROB_COLUMNS, emotion)),
                "sentiment": schema.SENTIMENTS[int(sentiment.argmax())],
                **dict(zip(schema.SENTIMENT_PROB_COLUMNS, sentiment)),
                **dict(zip(schema.DIMENSIONS, rng.uniform(0, 1, 3))),
                "laughter_prob": float(rng.uniform()),
                "emotion_model": "m",
                "dims_model": "m",
                "laughter_model": "l",
            }
        )
    events = [
        {"show": show, "episode_id": episode_id, "start_s": 10.0 * k + 1, "end_s": 10.0 * k + 2.5, "duration_s": 1.5,
         "peak_prob": 0.9, "mean_prob": 0.7, "model": "l"}
        for k in range(laughs)
    ]  # fmt: skip
    return {
        "episodes": pa.Table.from_pylist([episode], schema=schema.EPISODES),
        "segments": pa.Table.from_pylist(segments, schema=schema.SEGMENTS),
        "laughter_events": pa.Table.from_pylist(events, schema=schema.LAUGHTER_EVENTS),
    }


def warehouse_tables(warehouse: Path):
    """The three tables of a warehouse, sorted, without the columns that differ between runs
    (run_id, processed_at): two warehouses made from the same inputs compare equal."""
    import duckdb

    keys = {"episodes": ["show", "episode_id"], "segments": ["show", "episode_id", "segment_id"],
            "laughter_events": ["show", "episode_id", "start_s"]}  # fmt: skip
    with duckdb.connect(str(warehouse / "podcasts.duckdb"), read_only=True) as db:
        frames = {name: db.sql(f"SELECT * FROM {name}").df() for name in keys}
    return {
        name: frame.drop(columns=["run_id", "processed_at"], errors="ignore")
        .sort_values(keys[name])
        .reset_index(drop=True)
        for name, frame in frames.items()
    }
