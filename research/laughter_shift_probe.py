"""Probe (docs/evaluation.md): test-time band shifts for the laughter detector, on the
leave-laughers-out folds of `ser-pipeline train laughter-cv`.

The recipe is trained per fold as there; each held-out laugh's scene is then also scored with
its log-mel frames moved up or down by k mel bands (the edge band repeated, as in training's
band shift), and the shifted scores combined frame by frame (mean or max over the shifts).
Printed per combination and threshold: laughs found / false alarms per hour of the speech
around them.

    .venv/bin/python research/laughter_shift_probe.py [--seed 0]   # about 10 minutes on 2 cores
"""

from __future__ import annotations

import argparse
from functools import partial
from pathlib import Path

import numpy as np
import torch

from ser_pipeline.audio import SAMPLE_RATE
from ser_pipeline.features import FrontEndConfig, LogMel
from ser_pipeline.training.crossval import run_folds
from ser_pipeline.training.laughter import LaughterRecipe, score_frames, shift_bands
from ser_pipeline.training.laughter_cv import THRESHOLDS, judge, laugher_folds, scenes_around_laughs, train_fold

COMBINATIONS = {
    "as trained (no shift)": (np.mean, (0,)),
    "mean over -2, 0, +2": (np.mean, (-2, 0, 2)),
    "max over -2, 0, +2": (np.max, (-2, 0, 2)),
    "mean over -3..+3": (np.mean, tuple(range(-3, 4))),
    "max over -3..+3": (np.max, tuple(range(-3, 4))),
}


def fold(recipe: LaughterRecipe, laughers: tuple[str, ...], threads: int) -> list[dict]:
    network = train_fold(recipe, laughers, threads)
    front_end = LogMel(FrontEndConfig())
    fps = front_end.config.frames_per_second
    rows = []
    for scene in scenes_around_laughs(recipe, laughers):
        logmel = front_end.frames(torch.from_numpy(scene["samples"]))
        by_shift = {k: score_frames(network, shift_bands(logmel, k)) for k in range(-3, 4)}
        start, end = scene["laugh"]
        row = {"speech_s": len(scene["samples"]) / SAMPLE_RATE - (end - start)}
        for name, (combine, shifts) in COMBINATIONS.items():
            probs = combine([by_shift[k] for k in shifts], axis=0)
            row[name] = {t: judge(probs, fps, t, scene["laugh"]) for t in THRESHOLDS}
        rows.append(row)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data"))
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    recipe = LaughterRecipe(data=args.data, seed=args.seed)
    rows = [row for rows in run_folds(partial(fold, recipe), laugher_folds(recipe), 2) for row in rows]
    hours = sum(r["speech_s"] for r in rows) / 3600
    print(f"{len(rows)} laughs, {hours:.3f} h of speech around them; laughs found / false alarms per hour")
    print("scores | " + " | ".join(f"threshold {t}" for t in THRESHOLDS))
    for name in COMBINATIONS:
        found = (sum(r[name][t][0] for r in rows) / len(rows) for t in THRESHOLDS)
        alarms = (sum(r[name][t][1] for r in rows) / hours for t in THRESHOLDS)
        cells = (f"{share:.3f} / {per_hour:.0f}" for share, per_hour in zip(found, alarms))
        print(f"{name} | " + " | ".join(cells))


if __name__ == "__main__":
    main()
