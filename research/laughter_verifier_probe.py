"""Does a second look at each laughter event, through the Whisper encoder, remove false alarms
without losing laughs? Development data only.

The frame detector (`laughter-tcn-v7`, or the recall-oriented `v8`) proposes events; each is
described as the emotion head describes a segment (the frozen Whisper tiny.en encoder, each
layer's frame mean and spread over the event, `pad` seconds either side) and a logistic regression
says laugh or not. Fitted on one half of the development people and judged on the other half
(`laughter_episodes.development_cast(part)`: alternate development voices and laughers), then the
other way round:

- test episodes of that half's people (the test generator: laughs 2-6 dB above the speech, over
  the end of sentences, rooms, music beds, five noises): event F1 with and without the verifier;
- each of that half's voices' expressive speech (angry, happy, fearful, surprised), strung
  together, under the episodes' noise: false alarms per hour.

Training examples: every event the detectors find on the half's episodes and expressive speech at
threshold 0.3 (a laugh where it matches one at IoU >= 0.3), and the true laughs' own spans.

    .venv/bin/python research/laughter_verifier_probe.py --episodes 12 --pad 0,0.25
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch

from ser_pipeline.audio import SAMPLE_RATE
from ser_pipeline.evaluation import EPISODE_NOISE_RMS, strung_speech
from ser_pipeline.laughter import OperatingPoint, matched_pairs
from ser_pipeline.training.data import shared_data_dir
from ser_pipeline.training.laughter import EXPRESSIVE_EMOTIONS
from ser_pipeline.training.laughter_episodes import build_episodes, development_cast
from ser_pipeline.training.laughter_speech import network_detector
from ser_pipeline.whisper_emotion import describe_many
from ser_pipeline.whisper_encoder import load_encoder


def detectors(models: list[str], threshold: float) -> dict:
    from ser_pipeline.registry import Registry, load_network, resolve_weights

    out = {}
    for model_id in models:
        spec = Registry.load().get(model_id)
        network = load_network(resolve_weights(spec), spec.architecture).eval()
        point = OperatingPoint(**{**spec.operating_points["balanced"], "threshold": threshold})
        out[model_id] = network_detector(network, point)
    return out


def part_material(data, part: int, n_episodes: int, models: list[str], log) -> dict:
    """Episodes and expressive strings of one half's people, with every detector's events at 0.5 and 0.3."""
    cast = development_cast(data, part)
    episodes = build_episodes(data, n_episodes, 3.0, seed=10 + part, cast=cast)
    strings = []
    for index, (speaker, clips) in enumerate(sorted(cast.voices.items())):
        rng = np.random.default_rng([part, index])
        files = [c.path for c in clips if c.label in EXPRESSIVE_EMOTIONS]
        samples = strung_speech(files, rng)
        strings.append((speaker, samples + rng.standard_normal(len(samples)).astype(np.float32) * EPISODE_NOISE_RMS))
    recordings = [(e.name, e.samples, [(x.start_s, x.end_s) for x in e.laughs]) for e in episodes]
    recordings += [(speaker, samples, []) for speaker, samples in strings]
    found = {}
    for threshold in (0.5, 0.3):
        for model_id, detect in detectors(models, threshold).items():
            found[(model_id, threshold)] = [[(e.start_s, e.end_s) for e in detect(r[1])] for r in recordings]
    log(f"part {part}: {len(episodes)} episodes, {len(strings)} voices' expressive speech")
    return {"recordings": recordings, "n_episodes": len(episodes), "events": found}


def describe_spans(encoder, recording: np.ndarray, spans, pad: float) -> np.ndarray:
    stretches = [recording[max(0, int((s - pad) * SAMPLE_RATE)) : int((e + pad) * SAMPLE_RATE)] for s, e in spans]
    return describe_many(encoder, stretches, torch.device("cpu"), fast=False) if stretches else np.zeros((0, 3840))


def labelled(truth, spans) -> np.ndarray:
    hits = {j for _, j in matched_pairs(truth, spans)}
    return np.array([j in hits for j in range(len(spans))])


def training_set(material, encoder, models, pad):
    xs, ys = [], []
    for index, (_, samples, truth) in enumerate(material["recordings"]):
        spans = list(truth)
        for model_id in models:
            spans += material["events"][(model_id, 0.3)][index]
        if not spans:
            continue
        xs.append(describe_spans(encoder, samples, spans, pad))
        ys.append(np.concatenate([np.ones(len(truth), bool), labelled(truth, spans[len(truth) :])]))
    return np.concatenate(xs), np.concatenate(ys)


def fit(x, y, c):
    from sklearn.linear_model import LogisticRegression

    mean, scale = x.mean(0), x.std(0) + 1e-5
    model = LogisticRegression(C=c, max_iter=1000, class_weight="balanced").fit((x - mean) / scale, y)
    return lambda z: model.predict_proba((z - mean) / scale)[:, 1]


def judged(material, encoder, verify, model_id, pad, cuts) -> dict:
    """F1 on the episodes and false alarms per hour on the strings, per verifier cut (0: none)."""
    out = {cut: {"found": 0, "laughs": 0, "fa_episodes": 0, "fa_speech": 0} for cut in cuts}
    speech_hours = 0.0
    for index, (_, samples, truth) in enumerate(material["recordings"]):
        spans = material["events"][(model_id, 0.5)][index]
        probs = verify(describe_spans(encoder, samples, spans, pad)) if spans else np.zeros(0)
        is_episode = index < material["n_episodes"]
        speech_hours += 0 if is_episode else len(samples) / SAMPLE_RATE / 3600
        for cut in cuts:
            kept = [s for s, p in zip(spans, probs, strict=True) if p >= cut]
            hits = len(matched_pairs(truth, kept))
            row = out[cut]
            row["laughs"] += len(truth)
            row["found"] += hits
            row["fa_episodes" if is_episode else "fa_speech"] += len(kept) - hits
    summary = {}
    for cut, row in out.items():
        p = row["found"] / max(1, row["found"] + row["fa_episodes"])
        r = row["found"] / max(1, row["laughs"])
        summary[cut] = {
            "recall": round(r, 3),
            "precision": round(p, 3),
            "f1": round(2 * p * r / max(1e-9, p + r), 3),
            "fa_per_hour_expressive": round(row["fa_speech"] / speech_hours, 1),
        }
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=12)
    parser.add_argument("--pad", default="0,0.25")
    parser.add_argument("--c", default="0.001,0.01")
    parser.add_argument("--models", default="laughter-tcn-v7,laughter-tcn-v8")
    args = parser.parse_args()
    torch.set_num_threads(2)
    data, models = shared_data_dir(), args.models.split(",")
    start = time.time()
    log = lambda m: print(f"[{time.time() - start:6.0f} s] {m}", flush=True)  # noqa: E731
    material = [part_material(data, part, args.episodes, models, log) for part in (0, 1)]
    encoder = load_encoder(torch.device("cpu"))
    cuts = (0.0, 0.3, 0.5, 0.7, 0.9)
    results = {}
    for pad in [float(p) for p in args.pad.split(",")]:
        sets = [training_set(m, encoder, models, pad) for m in material]
        log(f"pad {pad}: training examples {[(len(y), int(y.sum())) for _, y in sets]}")
        for c in [float(v) for v in args.c.split(",")]:
            for fitted_on in (0, 1):
                verify = fit(*sets[fitted_on], c)
                judged_on = material[1 - fitted_on]
                for model_id in models:
                    key = f"pad {pad}, C {c}, fitted on part {fitted_on}, {model_id}"
                    results[key] = judged(judged_on, encoder, verify, model_id, pad, cuts)
                    log(f"{key}: {json.dumps(results[key])}")
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
