"""Each episode laugh's clean source stretch (at the episode's gain, 2 s of silence either side)
scored by a laughter network with the episode's noise level added in one band at a time:
white noise at the episode's noise RMS (as `laugh_conditions.py`), the same noise kept below
2 kHz, below 4 kHz or above 4 kHz, and white noise over the laugh low-passed at 4 kHz.
Printed: the smoothed peak probability over the laugh in each condition (docs/evaluation.md).

    .venv/bin/python research/laugh_noise_bands.py [--weights FILE] [--data ../shared/data]   # about 30 s
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import scipy.signal
from laugh_conditions import CONTEXT_S, analyzer_for, episode_laughs, peak_and_share
from sentence_gap import sample_index, source_stretch

from ser_pipeline.audio import SAMPLE_RATE


def filtered(samples: np.ndarray, kind: str, cutoff_hz: float) -> np.ndarray:
    sections = scipy.signal.butter(8, cutoff_hz, kind, fs=SAMPLE_RATE, output="sos")
    return scipy.signal.sosfiltfilt(sections, samples).astype(np.float32)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data"))
    parser.add_argument("--weights", type=Path, help="a laughter network's safetensors (default: the default model)")
    args = parser.parse_args()
    analyzer, rng = analyzer_for(args.weights), np.random.default_rng(0)
    print("episode start laugher | silence | white noise | noise < 2 kHz | < 4 kHz | > 4 kHz | laugh < 4 kHz + white")
    for episode_id, row, audio, noise_rms in episode_laughs(args.data):
        heard = audio[sample_index(row["start"]) : sample_index(row["end"])]
        aligned, gain = source_stretch(args.data / row["source"], heard)
        first, last = CONTEXT_S * SAMPLE_RATE, CONTEXT_S * SAMPLE_RATE + len(aligned)
        clean, narrow = (np.zeros(last + CONTEXT_S * SAMPLE_RATE, np.float32) for _ in range(2))
        clean[first:last] = aligned * gain
        narrow[first:last] = filtered(aligned * gain, "low", 4000)
        white = (noise_rms * rng.standard_normal(len(clean))).astype(np.float32)
        conditions = (
            clean,
            clean + white,
            clean + filtered(white, "low", 2000),
            clean + filtered(white, "low", 4000),
            clean + filtered(white, "high", 4000),
            narrow + white,
        )
        laugher = Path(row["source"]).name.split("_")[0]
        peaks = (peak_and_share(analyzer, c, first, last)[0] for c in conditions)
        print(episode_id, row["start"], laugher, "|", " | ".join(f"{p:.2f}" for p in peaks))


if __name__ == "__main__":
    main()
