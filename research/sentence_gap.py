"""Where the episodes' sentences lose emotion UAR against the same clean clips (docs/evaluation.md).

Part 1 scores the 235 sentences of ../shared/data/episodes strung together per speaker (as
`evaluate --clips` does for "clean clips of a speaker together"), from five sources: cut from
the episode; the clean source clip cut to the same stretch (aligned by cross-correlation); that
clip at the episode's gain; at the episode's gain in white noise at the episode's noise RMS
(measured over every stretch without speech or laughter); and that noisy clip through an MP3
round trip. Part 2 asks how much a speaker branch could recover in such noise: the
leave-4-actors-out folds of docs/emotion-cv.json, fused with the network as in the pipeline,
branches trained on clean, noisy (the recipe's noise) or episode-like noise statistics. Part 3
asks whether other inputs hold up better: statistics after spectral subtraction, statistics of
PCEN frames (as the laughter network reads them), or the network's outputs alone. With --shifts
only the framing check: the whole clean clips together and the sentences cut from the
episodes, each string delayed by 0 to 120 samples.

    .venv/bin/python research/sentence_gap.py [--data ../shared/data]   # about 7 minutes
    .venv/bin/python research/sentence_gap.py --shifts                   # under 30 seconds
"""

from __future__ import annotations

import argparse
import io
import json
from pathlib import Path

import numpy as np
import scipy.signal
import soundfile as sf
import soxr
import torch

from ser_pipeline.architectures import fuse_emotions, pcen
from ser_pipeline.audio import SAMPLE_RATE, decode
from ser_pipeline.evaluation import clips_together, clips_together_columns, episode_truth_files, read_truth
from ser_pipeline.features import FrontEndConfig, LogMel, utterance_statistics, voiced_span
from ser_pipeline.inference import Analyzer
from ser_pipeline.metrics import unweighted_average_recall
from ser_pipeline.schema import EMOTION_PROB_COLUMNS, EMOTIONS
from ser_pipeline.training.data import ravdess_clips, read_clip
from ser_pipeline.training.emotion import colored_noise, noise_level
from ser_pipeline.training.speaker_branch import (
    BRANCH_WEIGHT,
    clip_statistics,
    fit_branch,
    network_probabilities,
    voiced_statistics,
    zscored_inputs,
)


def mp3_round_trip(samples: np.ndarray) -> np.ndarray:
    """16 kHz mono -> 44.1 kHz stereo MP3 -> 16 kHz mono, as the episodes were made and decoded."""
    upsampled = soxr.resample(samples, SAMPLE_RATE, 44100)
    buffer = io.BytesIO()
    sf.write(buffer, np.stack([upsampled, upsampled], 1), 44100, format="MP3")
    buffer.seek(0)
    decoded, _ = sf.read(buffer, dtype="float32")
    return soxr.resample(decoded.mean(1), 44100, SAMPLE_RATE).astype(np.float32)[: len(samples)]


def sample_index(value: str | float) -> int:
    return int(float(value) * SAMPLE_RATE)


def episode_noise_rms(audio: np.ndarray, speech: list[dict], laughs: list[tuple[float, float]]) -> float:
    """RMS of an episode over every stretch without speech or laughter (its noise)."""
    busy = np.zeros(len(audio), bool)
    for start, end in [(r["start"], r["end"]) for r in speech] + laughs:
        busy[sample_index(start) : sample_index(end)] = True
    return float(np.sqrt(np.mean(audio[~busy] ** 2)))


def source_stretch(source: Path, cut: np.ndarray) -> tuple[np.ndarray, float]:
    """The stretch of a clean source clip that `cut` (from an episode) holds, found by
    cross-correlation, and the gain (least squares) that the episode gave it."""
    clean = decode(source).samples
    clean = np.pad(clean, (0, max(0, len(cut) - len(clean))))
    offset = int(np.argmax(scipy.signal.correlate(clean, cut, mode="valid", method="fft")))
    aligned = clean[offset : offset + len(cut)]
    return aligned, float(np.dot(aligned, cut) / np.dot(aligned, aligned))


def episodes(episodes_dir: Path):
    """(episode id, truth speech rows, truth laughs, decoded 16 kHz samples) of each episode."""
    for episode_id, truth_file in sorted(episode_truth_files(episodes_dir).items()):
        speech, laughs = read_truth(truth_file)
        yield episode_id, speech, laughs, decode(truth_file.with_name(f"{episode_id}.mp3")).samples


def sentence_cut(audio: np.ndarray, row: dict) -> np.ndarray:
    return audio[sample_index(row["start"]) : sample_index(row["end"])]


def episode_sources(episodes_dir: Path, data: Path, rng: np.random.Generator) -> dict[str, list[tuple]]:
    """Source name -> (episode, speaker, true label, samples, the sentence's level over the
    episode's noise in dB) of every sentence."""
    sources: dict[str, list] = {}
    for episode_id, speech, laughs, audio in episodes(episodes_dir):
        noise_rms = episode_noise_rms(audio, speech, laughs)
        for row in speech:
            cut = sentence_cut(audio, row)
            aligned, gain = source_stretch(data / row["source"], cut)
            snr_db = 20 * np.log10(np.sqrt(np.mean(cut**2)) / noise_rms)
            gained = aligned * gain
            noisy = gained + noise_rms * rng.standard_normal(len(gained)).astype(np.float32)
            for name, samples in (
                ("cut from the episode", cut),
                ("clean clip, same stretch", aligned),
                ("clean clip at the episode's gain", gained),
                ("+ white noise at the episode's RMS", noisy),
                ("+ MP3 round trip", mp3_round_trip(noisy)),
            ):
                sources.setdefault(name, []).append((episode_id, row["speaker"], row["label"], samples, snr_db))
    return sources


SNR_BANDS_DB = ((-99, 10), (10, 15), (15, 20), (20, 99))


def sentences_together(episodes_dir: Path, data: Path) -> dict[str, dict]:
    """Emotion UAR of the sentences strung together per episode speaker, per source, and the
    accuracy of sentences by their level over the episode's noise."""
    analyzer = Analyzer(device="cpu")
    scores = {}
    for name, rows in episode_sources(episodes_dir, data, np.random.default_rng(0)).items():
        truth, predicted, snr = [], [], []
        for key in dict.fromkeys((episode, speaker) for episode, speaker, *_ in rows):
            mine = [row[2:] for row in rows if row[:2] == key]
            truth += [label for label, _, _ in mine]
            snr += [snr_db for _, _, snr_db in mine]
            predicted += [label for label, _ in clips_together(analyzer, [s for _, s, _ in mine], key[1])]
        right, snr = np.asarray(truth) == np.asarray(predicted), np.asarray(snr)
        bands = {f"{low} to {high} dB": (snr >= low) & (snr < high) for low, high in SNR_BANDS_DB}
        scores[name] = {
            "uar": round(unweighted_average_recall(truth, predicted, EMOTIONS), 3),
            "accuracy by level over the noise": {
                f"{band} ({np.count_nonzero(inside)})": round(float(right[inside].mean()), 2)
                for band, inside in bands.items()
            },
        }
    return scores


def branch_in_noise(data: Path, document: dict) -> dict[str, dict[str, float]]:
    """Fused UAR over the CV folds, tested on clean clips, the recipe's noise and episode-like
    white noise (RMS 0.001-0.003 per speaker), for branches trained on each kind of statistics."""
    clips = scored_clips(data, document)
    clean, noisy = clip_statistics(clips, rooms=1)  # one room (until 2026-11-23 its colour was drawn per clip)
    rng, front_end = np.random.default_rng(1), LogMel(FrontEndConfig())
    levels = {speaker: rng.uniform(0.001, 0.003) for speaker in sorted({c.speaker for c in clips})}
    white = []
    for clip in clips:
        samples = read_clip(clip.path)
        noise = levels[clip.speaker] * rng.standard_normal(len(samples)).astype(np.float32)
        white.append(voiced_statistics(samples + noise, front_end))
    statistics = {"clean": clean, "recipe's noise": noisy[0], "episode-like white noise": torch.stack(white)}
    trainings = {
        "clean + recipe's noise (default)": ("clean", "recipe's noise"),
        "clean only": ("clean",),
        "recipe's noise only": ("recipe's noise",),
        "episode-like noise only (matched)": ("episode-like white noise",),
    }
    network = network_probabilities(document, clips)
    return {name: fused_uar(document, clips, network, statistics, kinds) for name, kinds in trainings.items()}


def scored_clips(data: Path, document: dict) -> list:
    scored = {clip["file"] for fold in document["folds"] for clip in fold["clips"]}
    return [c for c in ravdess_clips(data) if c.path.name in scored]


def fused_uar(
    document: dict, clips: list, network: np.ndarray, statistics: dict[str, torch.Tensor], kinds: tuple[str, ...]
) -> dict[str, float]:
    """Per kind of test statistics, the UAR of the network fused with a branch trained on the
    `kinds` of statistics of the other folds' speakers."""
    speakers = [c.speaker for c in clips]
    row_of = {c.path.name: i for i, c in enumerate(clips)}
    truth, predicted = [], {kind: [] for kind in statistics}
    for fold in document["folds"]:
        held = {f"ravdess-{a:02d}" for a in fold["held_out"]}
        rows = [i for i, s in enumerate(speakers) if s not in held]
        zscored = [zscored_inputs(statistics[k][rows], network[rows], [speakers[i] for i in rows]) for k in kinds]
        branch = fit_branch(torch.cat(zscored), [clips[i].label for i in rows] * len(kinds), None, len(EMOTIONS))
        test = [row_of[c["file"]] for c in fold["clips"]]
        truth += [c["label"] for c in fold["clips"]]
        for kind, values in statistics.items():
            with torch.no_grad():
                logits = branch(zscored_inputs(values, network, speakers)[test])
                fused = fuse_emotions(torch.from_numpy(network[test]), logits, BRANCH_WEIGHT)
            predicted[kind] += [EMOTIONS[i] for i in fused.argmax(1)]
    return {k: round(unweighted_average_recall(truth, v, EMOTIONS), 3) for k, v in predicted.items()}


def subtracted(logmel: np.ndarray, floor_db: float | None) -> np.ndarray:
    """The voiced part of a clip's log-mel frames; with `floor_db`, after spectral subtraction:
    the clip's noise (mean mel power of its quietest tenth of frames) taken off each band, and
    what is left floored `floor_db` below the voiced frames' mean power per band."""
    voiced = slice(*voiced_span(torch.from_numpy(logmel)))
    if floor_db is None:
        return logmel[voiced]
    power = np.exp(logmel.astype(np.float64))
    energy = power.sum(axis=1)
    noise = power[energy <= np.percentile(energy, 10)].mean(axis=0)
    floor = power[voiced].sum(axis=1).mean() * 10 ** (-floor_db / 10) / power.shape[1]
    return np.log(np.maximum(power[voiced] - noise, floor)).astype(np.float32)


def pcen_frames(logmel: np.ndarray, half_window: int = 150) -> np.ndarray:
    """The voiced part of a clip's frames as the laughter network reads them (PCEN over the
    whole clip, 1.5 s each side), logged so the statistics see ratios as the others see levels."""
    voiced = slice(*voiced_span(torch.from_numpy(logmel)))
    normalised = pcen(torch.from_numpy(logmel)[None], half_window)[0].numpy()
    return np.log(normalised + 0.05)[voiced].astype(np.float32)


def other_branch_inputs(data: Path, document: dict) -> dict[str, dict[str, float]]:
    """Fused UAR over the CV folds as in `branch_in_noise` (branch trained on clean + the recipe's
    noise), for other inputs: statistics after spectral subtraction (the noise estimated from the
    clip's own pauses, as a pipeline could from an episode's), statistics of PCEN frames (a steady
    noise floor looks alike at any level), and the network's outputs alone."""
    clips = scored_clips(data, document)
    rng, front_end = np.random.default_rng(2), LogMel(FrontEndConfig())
    speakers = sorted({c.speaker for c in clips})
    recipe_levels = {speaker: noise_level(rng) for speaker in speakers}
    white_levels = {speaker: rng.uniform(0.001, 0.003) for speaker in speakers}
    frames_of = {
        "as in the pipeline": lambda logmel: subtracted(logmel, None),
        "subtraction, floor 40 dB": lambda logmel: subtracted(logmel, 40.0),
        "subtraction, floor 60 dB": lambda logmel: subtracted(logmel, 60.0),
        "of PCEN frames (1.5 s each side)": pcen_frames,
    }
    conditions = ("clean", "recipe's noise", "episode-like white noise")
    statistics = {name: {kind: [] for kind in conditions} for name in frames_of}
    for clip in clips:
        samples = read_clip(clip.path)
        versions = (
            samples,
            samples + recipe_levels[clip.speaker] * colored_noise(len(samples), rng).astype(np.float32),
            samples + white_levels[clip.speaker] * rng.standard_normal(len(samples)).astype(np.float32),
        )
        for kind, version in zip(conditions, versions):
            logmel = front_end.episode(version, torch.device("cpu")).numpy()
            for name, frames_from in frames_of.items():
                frames = torch.from_numpy(frames_from(logmel))
                statistics[name][kind].append(utterance_statistics(frames, front_end.config.n_mfcc))
    network = network_probabilities(document, clips)
    trained_on = conditions[:2]
    results = {}
    for name, by_kind in statistics.items():
        stacked = {kind: torch.stack(values) for kind, values in by_kind.items()}
        results[f"statistics {name}"] = fused_uar(document, clips, network, stacked, trained_on)
    none = {kind: torch.zeros(len(clips), 0) for kind in conditions}
    results["the network's outputs alone (no statistics)"] = fused_uar(document, clips, network, none, trained_on)
    return results


def framing_shifts(episodes_dir: Path, data: Path, shifts: tuple[int, ...] = (0, 40, 80, 120)) -> dict[str, dict]:
    """Emotion UAR of the whole clean clips of each episode speaker together (as `evaluate
    --clips` strings them) and of the sentences cut from the episodes (strung the same way),
    each string delayed by a few samples (`shifts`; 160 are one 10 ms frame): how much the
    measurement moves when nothing but the framing changes, and what averaging the emotion
    probabilities over those framings gives."""
    analyzer = Analyzer(device="cpu")
    whole = [
        (episode_id, row["speaker"], row["label"], decode(data / row["source"]).samples)
        for episode_id, truth_file in sorted(episode_truth_files(episodes_dir).items())
        for row in read_truth(truth_file)[0]
    ]
    cut = [
        (episode_id, row["speaker"], row["label"], sentence_cut(audio, row))
        for episode_id, speech, _, audio in episodes(episodes_dir)
        for row in speech
    ]
    scores = {}
    for name, rows in (("whole clean clips together", whole), ("sentences cut from the episodes", cut)):
        truth, probabilities = [], {shift: [] for shift in shifts}
        for key in dict.fromkeys(row[:2] for row in rows):
            mine = [row for row in rows if row[:2] == key]
            truth += [row[2] for row in mine]
            for shift in shifts:
                columns = clips_together_columns(analyzer, [row[3] for row in mine], key[1], lead=shift)
                probabilities[shift].append(np.stack([columns[c] for c in EMOTION_PROB_COLUMNS], axis=1))
        stacked = np.stack([np.concatenate(p) for p in probabilities.values()])  # (shifts, sentences, classes)
        named = {f"delayed {shift} samples": p for shift, p in zip(shifts, stacked, strict=True)}
        named["probabilities averaged over the delays"] = stacked.mean(0)
        scores[name] = {
            label: round(unweighted_average_recall(truth, [EMOTIONS[i] for i in p.argmax(1)], EMOTIONS), 3)
            for label, p in named.items()
        }
    return scores


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data"))
    parser.add_argument("--cross-validation", type=Path, default=Path("docs/emotion-cv.json"))
    parser.add_argument(
        "--shifts", action="store_true", help="only the framing check (`framing_shifts`), under 30 seconds"
    )
    args = parser.parse_args()
    if args.shifts:
        print(json.dumps(framing_shifts(args.data / "episodes", args.data), indent=1))
        return
    print(
        json.dumps(
            {"sentences of a speaker together, by source": sentences_together(args.data / "episodes", args.data)},
            indent=1,
        ),
        flush=True,
    )
    document = json.loads(args.cross_validation.read_text())
    print(
        json.dumps(
            {"fused UAR by branch training (rows) and test statistics": branch_in_noise(args.data, document)}, indent=1
        ),
        flush=True,
    )
    print(json.dumps({"fused UAR by the branch's inputs (rows)": other_branch_inputs(args.data, document)}, indent=1))


if __name__ == "__main__":
    main()
