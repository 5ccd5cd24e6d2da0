"""How emotion networks hold up in rooms they were not trained in (docs/evaluation.md).

Scores each given emotion network (a safetensors file) on the held-out actors' clips (RAVDESS
01, 02, 05, 08, 11, the default's held-out actors), clean and with each speaker in a room of
its own, as `train emotion` scores them (voiced part, each speaker's clips as its context). The
rooms are not the recipe's synthetic tails (`room_response`) but image-method shoebox rooms
from pyroomacoustics (RT60 0.2 to 0.9 s, microphone 0.5 to 2.5 m from the talker), three
draws of five rooms each; the clip keeps its RMS, so only the room changes. With --pipeline
also the shipped default (or another registered network with its branch) as `evaluate --clips`
reads clean clips: each speaker's clips strung together through the Analyzer, network and
speaker branch fused (the shipped branch holds out the same actors).

    python -m venv /tmp/rooms && /tmp/rooms/bin/pip install pyroomacoustics   # making the rooms only
    /tmp/rooms/bin/python research/room_check.py --make-rooms rooms.npz
    .venv/bin/python research/room_check.py --rooms rooms.npz models/ser-crnn-v2.safetensors other.safetensors --pipeline
    SER_REGISTRY=other/registry.json SER_MODEL_PATH=other \
        .venv/bin/python research/room_check.py --rooms rooms.npz --pipeline other-id   # another registered network
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

ROOMS, DRAWS = 15, 3


def make_rooms(path: Path, seed: int = 2026) -> None:
    """ROOMS shoebox rooms' impulse responses at 16 kHz, peak 1, into `path` (npz)."""
    import pyroomacoustics as pra

    rng, rirs = np.random.default_rng(seed), []
    while len(rirs) < ROOMS:
        size = np.array([rng.uniform(3, 9), rng.uniform(3, 7), rng.uniform(2.4, 3.5)])
        rt60 = rng.uniform(0.2, 0.9)
        try:
            absorption, max_order = pra.inverse_sabine(rt60, size)
        except ValueError:  # a room too small for that reverberation time
            continue
        mic = size * rng.uniform(0.2, 0.8, 3)
        mic[2] = rng.uniform(1.0, 1.6)
        direction = rng.standard_normal(3)
        direction[2] = 0
        source = mic + direction / np.linalg.norm(direction) * rng.uniform(0.5, 2.5)
        if np.any(source < 0.3) or np.any(source > size - 0.3):
            continue
        room = pra.ShoeBox(size, fs=16000, materials=pra.Material(absorption), max_order=min(max_order, 40))
        room.add_source(source)
        room.add_microphone(mic)
        room.compute_rir()
        rir = np.asarray(room.rir[0][0], np.float64)
        rirs.append(rir / np.abs(rir).max())
        print(f"room {len(rirs)}: RT60 {rt60:.2f} s, {np.linalg.norm(source - mic):.2f} m from the talker")
    np.savez(path, *rirs)


def _scores(network, logmels: list, clips, dims: np.ndarray, n_mfcc: int) -> dict:
    from ser_pipeline.training.emotion import _scored

    scores = _scored(network, logmels, clips, dims, n_mfcc).scores
    keys = ("emotion_uar", "sentiment_uar", "valence_ccc", "arousal_ccc", "dominance_ccc")
    return {key: scores[key] for key in keys}


def _pipeline_scores(analyzer, samples: list[np.ndarray], clips) -> dict:
    from ser_pipeline.evaluation import clips_together_columns
    from ser_pipeline.metrics import unweighted_average_recall
    from ser_pipeline.schema import EMOTION_TO_SENTIMENT, EMOTIONS, SENTIMENTS

    truth, emotions, sentiments = [], [], []
    for speaker in sorted({c.speaker for c in clips}):
        mine = [i for i, c in enumerate(clips) if c.speaker == speaker]
        columns = clips_together_columns(analyzer, [samples[i] for i in mine], speaker)
        truth += [clips[i].label for i in mine]
        emotions += list(columns["emotion"])
        sentiments += list(columns["sentiment"])
    return {
        "emotion_uar": unweighted_average_recall(truth, emotions, EMOTIONS),
        "sentiment_uar": unweighted_average_recall([EMOTION_TO_SENTIMENT[t] for t in truth], sentiments, SENTIMENTS),
    }


def _clean_and_rooms(scores, clean: list, in_rooms: list[list]) -> dict:
    """`scores(clips)` of the clean clips and of each draw of rooms (their mean, and UAR per draw),
    the clips as samples or as log-mel frames, whichever `scores` reads."""
    roomed = [scores(samples) for samples in in_rooms]
    return {
        "clean": scores(clean),
        "rooms": {key: float(np.mean([r[key] for r in roomed])) for key in roomed[0]},
        "rooms per draw": [r["emotion_uar"] for r in roomed],
    }


def score(networks: list[Path], data: Path, rooms_file: Path, pipeline: str | None) -> None:
    """Each network's held-out scores, clean and in rooms (means over the draws), printed as JSON."""
    import torch

    from ser_pipeline.features import FrontEndConfig, LogMel
    from ser_pipeline.registry import load_network
    from ser_pipeline.training.data import HELD_OUT_ACTORS, ravdess_clips, ravdess_voices, read_clip
    from ser_pipeline.training.emotion import EmotionRecipe, derived_dims, reverberate

    held_out = ravdess_voices(HELD_OUT_ACTORS)
    clips = [c for c in ravdess_clips(data) if c.speaker in held_out]
    clean = [read_clip(c.path) for c in clips]
    weight = EmotionRecipe(data=data).acoustic_arousal_weight
    dims = derived_dims(data / "lexicon" / "emotion_vad.csv", clips, clean, weight)
    rooms = list(np.load(rooms_file).values())
    speakers = sorted(held_out)
    rng = np.random.default_rng(0)
    draws = [dict(zip(speakers, rng.permutation(len(rooms))[: len(speakers)], strict=True)) for _ in range(DRAWS)]
    in_rooms = [[reverberate(x, rooms[draw[c.speaker]]) for c, x in zip(clips, clean, strict=True)] for draw in draws]
    front_end = LogMel(FrontEndConfig())

    def logmels(samples: list[np.ndarray]) -> list[torch.Tensor]:
        return [front_end.episode(x, torch.device("cpu")) for x in samples]

    if networks:  # once for all of them
        clean_logmels, rooms_logmels = logmels(clean), [logmels(samples) for samples in in_rooms]
    for path in networks:
        network = load_network(path)
        report = _clean_and_rooms(
            lambda m, net=network: _scores(net, m, clips, dims, front_end.config.n_mfcc), clean_logmels, rooms_logmels
        )
        print(path, json.dumps(report), flush=True)
    if pipeline is not None:
        from ser_pipeline.inference import Analyzer

        analyzer = Analyzer(device="cpu", emotion_model=pipeline or None, dims_model=pipeline or None)
        report = _clean_and_rooms(lambda x: _pipeline_scores(analyzer, x, clips), clean, in_rooms)
        print("pipeline", analyzer.models.ids, json.dumps(report), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("networks", nargs="*", type=Path)
    parser.add_argument("--data", type=Path, default=Path("../shared/data"))
    parser.add_argument("--rooms", type=Path)
    parser.add_argument("--make-rooms", type=Path)
    parser.add_argument(
        "--pipeline",
        nargs="?",
        const="",
        help="also the pipeline, network and branch fused: the default, or this registry id (see SER_REGISTRY)",
    )
    args = parser.parse_args()
    if args.make_rooms:
        make_rooms(args.make_rooms)
        return
    if not args.rooms or not (args.networks or args.pipeline is not None):
        parser.error("give --rooms (made with --make-rooms) and the networks to score, or --pipeline")
    score(args.networks, args.data, args.rooms, args.pipeline)  # "" picks the registry's defaults


if __name__ == "__main__":
    main()
