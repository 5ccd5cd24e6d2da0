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
