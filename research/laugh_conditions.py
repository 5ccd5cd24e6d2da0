"""Each laugh of ../shared/data/episodes scored by the default laughter model in four conditions
(docs/evaluation.md): as heard in the episode; its clean source stretch (aligned by
cross-correlation) at the episode's gain, in silence; that in white noise at the episode's noise
RMS (measured over every stretch without speech or laughter); and that through an MP3 round
trip. Each laugh is scored with 2 s of the same condition on either side; printed: the
smoothed peak probability over the laugh and the share of its frames above 0.5. Then how tonal
each laugher's clip in nonverbal/laughing is (median spectral flatness of its loud frames), and
its pitch, voicing, rate and spectral centroid; and the training clips nearest to each episode
laugher's laugh in the network's last hidden layer.

    .venv/bin/python research/laugh_conditions.py [--data ../shared/data]   # about 20 seconds

With `--weights FILE` another laughter network (a `train laughter --models-dir` output) is
scored instead of the default; with `--false-alarm-minutes N` its false alarms in N minutes of
laughter-free RAVDESS/TESS speech are printed too (as `ser-pipeline evaluate` counts them).
"""

from __future__ import annotations

import argparse
import csv
from dataclasses import replace
from pathlib import Path

import librosa
import numpy as np
import torch
from sentence_gap import episode_noise_rms, mp3_round_trip, sample_index, source_stretch

from ser_pipeline.audio import SAMPLE_RATE, decode
from ser_pipeline.evaluation import episode_truth_files, laughter_false_alarms, read_truth
from ser_pipeline.inference import Analyzer
from ser_pipeline.laughter import smooth
from ser_pipeline.registry import load_network
from ser_pipeline.training.data import nonverbal_clips, read_clip
from ser_pipeline.training.laughter import DEFAULT_HELD_OUT_LAUGHERS, OPERATING_POINTS, trim_silence

CONTEXT_S = 2


def analyzer_for(weights: Path | None) -> Analyzer:
    """The pipeline's analyzer on CPU, with the laughter network of `weights` if given."""
    analyzer = Analyzer(device="cpu")
    if weights:
        analyzer.models = replace(analyzer.models, laughter_net=load_network(weights).eval())
    return analyzer


def peak_and_share(analyzer: Analyzer, samples: np.ndarray, first: int, last: int) -> tuple[float, float]:
    """Smoothed peak laughter probability over samples[first:last], and the share of its frames above 0.5."""
    config, point = analyzer.front_end.config, OPERATING_POINTS["balanced"]
    probs = analyzer.laughter_frames(analyzer.front_end.frames(torch.from_numpy(samples)))
    inside = slice(first // config.hop_length, last // config.hop_length)
    return smooth(probs, config.frames_per_second, point.smooth_s)[inside].max(), (probs[inside] > 0.5).mean()


def episode_laughs(data: Path):
    """(episode id, truth row, episode samples, episode noise RMS) of every laugh in the episodes."""
    for episode_id, truth_file in sorted(episode_truth_files(data / "episodes").items()):
        audio = decode(truth_file.with_name(f"{episode_id}.mp3")).samples
        noise_rms = episode_noise_rms(audio, *read_truth(truth_file))
        with truth_file.open() as handle:
            laughs = [row for row in csv.DictReader(handle) if row["kind"] == "laughter"]
        for row in laughs:
            yield episode_id, row, audio, noise_rms


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data"))
    parser.add_argument("--weights", type=Path, help="a laughter network's safetensors (default: the default model)")
    parser.add_argument("--false-alarm-minutes", type=float, default=0.0)
    args = parser.parse_args()
    analyzer, rng = analyzer_for(args.weights), np.random.default_rng(0)

    def score(samples: np.ndarray, first: int, last: int) -> str:
        return "{:.2f}/{:.2f}".format(*peak_and_share(analyzer, samples, first, last))

    print("episode start laugher | in the episode | clean, in silence | + white noise | + MP3  (peak/share > 0.5)")
    for episode_id, row, audio, noise_rms in episode_laughs(args.data):
        start, end = sample_index(row["start"]), sample_index(row["end"])
        begin = max(0, start - CONTEXT_S * SAMPLE_RATE)
        heard = audio[begin : end + CONTEXT_S * SAMPLE_RATE]
        first, last = start - begin, end - begin
        aligned, gain = source_stretch(args.data / row["source"], audio[start:end])
        clean = np.zeros(len(heard), np.float32)
        clean[first:last] = aligned * gain
        noisy = clean + noise_rms * rng.standard_normal(len(clean)).astype(np.float32)
        conditions = (heard, clean, noisy, mp3_round_trip(noisy))
        laugher = Path(row["source"]).name.split("_")[0]
        print(episode_id, row["start"], laugher, "|", " | ".join(score(x, first, last) for x in conditions))
    print(
        "laugher | median spectral flatness and centroid (Hz) of the frames within 25 dB of the loudest"
        " | median f0 (Hz, pYIN 80-1000) | voiced share of frames | onsets per second"
    )
    for path in sorted((args.data / "nonverbal" / "laughing").glob("*.flac")):
        samples = trim_silence(decode(path).samples)
        spectrum = np.abs(librosa.stft(samples, n_fft=1024, hop_length=160))
        rms = librosa.feature.rms(S=spectrum, frame_length=1024)[0]
        loud = 20 * np.log10(rms + 1e-9) > 20 * np.log10(rms.max() + 1e-9) - 25
        flatness = librosa.feature.spectral_flatness(S=spectrum)[0][loud]
        centroid = librosa.feature.spectral_centroid(S=spectrum, sr=SAMPLE_RATE)[0][loud]
        f0, voiced, _ = librosa.pyin(samples, fmin=80, fmax=1000, sr=SAMPLE_RATE, frame_length=1024, hop_length=160)
        onsets = librosa.onset.onset_detect(y=samples, sr=SAMPLE_RATE, hop_length=160)
        cells = (np.median(flatness), np.median(centroid), np.nanmedian(f0), voiced.mean())
        print(path.name.split("_")[0], "|", " | ".join(f"{c:.3f}" if c < 1 else f"{c:.0f}" for c in cells), end=" | ")
        print(f"{len(onsets) / (len(samples) / SAMPLE_RATE):.1f}")
    nearest_clips(analyzer, args.data)
    if args.false_alarm_minutes:
        speech = sorted(args.data.glob("ravdess/*/*.flac")) + sorted(args.data.glob("tess/*/*.flac"))
        clean, in_noise = laughter_false_alarms(analyzer, speech, args.false_alarm_minutes)
        print("laughter-free speech:", clean)
        print("the same with the episodes' white noise under it:", in_noise)


def nearest_clips(analyzer: Analyzer, data: Path, count: int = 5) -> None:
    """Each episode laugher's laugh and the training clips nearest to it in the network's last
    hidden layer (averaged over the clip; cosine): laughs, or the vocalizations it learnt to reject?
    Of an ensemble, its first network's."""
    captured = {}
    network = getattr(analyzer.models.laughter_net, "members", [analyzer.models.laughter_net])[0]
    network.out.register_forward_hook(lambda module, inputs, output: captured.update(x=inputs[0]))
    clips = nonverbal_clips(data)
    embeddings = []
    for clip in clips:
        analyzer.laughter_frames(analyzer.front_end.frames(torch.from_numpy(trim_silence(read_clip(clip.path)))))
        embeddings.append(captured["x"][0].mean(dim=1).numpy())
    unit = np.array(embeddings) / np.linalg.norm(embeddings, axis=1, keepdims=True)
    episode_laughers = {f"nonverbal-{laugher}" for laugher in DEFAULT_HELD_OUT_LAUGHERS}
    print(f"episode laugher | the {count} training clips nearest to the laugh (person, vocalization, cosine)")
    for index, clip in enumerate(clips):
        if clip.label != "laughing" or clip.speaker not in episode_laughers:
            continue
        similarity = unit @ unit[index]
        training = [k for k in np.argsort(-similarity) if clips[k].speaker not in episode_laughers][:count]
        neighbours = (
            f"{clips[k].speaker.removeprefix('nonverbal-')} {clips[k].label} {similarity[k]:.2f}" for k in training
        )
        print(clip.speaker.removeprefix("nonverbal-"), "|", ", ".join(neighbours))


if __name__ == "__main__":
    main()
