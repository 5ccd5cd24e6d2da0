"""Scoring a warehouse against ground truth (`<episode>.truth.csv` beside each episode's audio).

Truth rows are `start,end,kind,label,...` with kind `speech` (label = 7-class emotion) or
`laughter`. Each sentence segment is matched to the truth row with the same times (10 ms).
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from ser_pipeline.laughter import match_events
from ser_pipeline.metrics import accuracy, uar_difference_interval, unweighted_average_recall
from ser_pipeline.schema import DIMENSIONS, EMOTION_TO_SENTIMENT, EMOTIONS, SENTIMENTS
from ser_pipeline.warehouse import connect_read_only

TIME_TOLERANCE_S = 0.010


def read_truth(path: Path) -> tuple[list[dict], list[tuple[float, float]]]:
    """(speech rows, laughter spans) of a `.truth.csv` file."""
    with path.open() as handle:
        rows = list(csv.DictReader(handle))
    speech = [r for r in rows if r["kind"] == "speech"]
    laughs = [(float(r["start"]), float(r["end"])) for r in rows if r["kind"] == "laughter"]
    return speech, laughs


def _covered(times: np.ndarray, spans: list[tuple[float, float]]) -> np.ndarray:
    inside = np.zeros(len(times), bool)
    for start, end in spans:
        inside |= (times >= start) & (times < end)
    return inside


def episode_truth_files(episodes_dir: Path) -> dict[str, Path]:
    """Episode id -> its `.truth.csv`, anywhere under `episodes_dir`."""
    return {p.name.removesuffix(".truth.csv"): p for p in episodes_dir.rglob("*.truth.csv")}


def matched_sentences(speech: list[dict], segments: list[tuple]) -> Iterator[tuple[dict, tuple]]:
    """(truth row, segment row) for every truth sentence a segment reproduces within 10 ms;
    segment rows are (episode_id, start_s, end_s, ...)."""
    for row in speech:
        start, end = float(row["start"]), float(row["end"])
        for segment in segments:
            if abs(segment[1] - start) <= TIME_TOLERANCE_S and abs(segment[2] - end) <= TIME_TOLERANCE_S:
                yield row, segment
                break


Spans = list[tuple[float, float]]


def laughter_scores(episodes: dict[str, tuple[float, Spans, Spans]]) -> dict:
    """Event precision/recall/F1 (IoU >= 0.3, one to one), frame F1 (10 ms grid) and laughs per
    10 minutes, from {episode: (duration_s, true spans, detected spans)}."""
    hits = false_alarms = misses = 0
    frames = {"tp": 0, "fp": 0, "fn": 0}
    per_episode = {}
    for name, (duration_s, truth, detected) in episodes.items():
        tp, fp, fn = match_events(truth, detected)
        hits, false_alarms, misses = hits + tp, false_alarms + fp, misses + fn
        grid = np.arange(0, duration_s, 0.01)
        true_frames, detected_frames = _covered(grid, truth), _covered(grid, detected)
        frames["tp"] += int((true_frames & detected_frames).sum())
        frames["fp"] += int((~true_frames & detected_frames).sum())
        frames["fn"] += int((true_frames & ~detected_frames).sum())
        per_episode[name] = {
            "laughs_per_10min_truth": round(len(truth) * 600 / duration_s, 2),
            "laughs_per_10min_detected": round(len(detected) * 600 / duration_s, 2),
        }
    precision, recall = hits / max(hits + false_alarms, 1), hits / max(hits + misses, 1)
    return {
        "laughter_event_precision": precision,
        "laughter_event_recall": recall,
        "laughter_event_f1": 2 * precision * recall / max(precision + recall, 1e-9),
        "laughter_frame_f1": 2 * frames["tp"] / max(2 * frames["tp"] + frames["fp"] + frames["fn"], 1),
        "true_laughs": hits + misses,
        "per_episode": per_episode,
    }


def _truth_clip(row: dict):
    """The labels of a truth row as a training `Clip`: RAVDESS sources (by file name) keep
    calm apart from neutral, as the dims targets do."""
    from ser_pipeline.training.data import Clip, ravdess_clip

    source = Path(row.get("source") or "unknown")
    if source.parts[:1] == ("ravdess",):
        return ravdess_clip(source)
    return Clip(source, row["label"], row["speaker"], "other", row.get("intensity") or "normal")


def lexicon_dims_scores(lexicon: Path, rows: list[dict], predicted: np.ndarray) -> dict:
    """CCC of the sentences' dims with the lexicon coordinates of their true class (RAVDESS
    intensity moving arousal): the training targets without their acoustic part, which needs a
    speaker's clean clips."""
    from ser_pipeline.metrics import concordance_correlation
    from ser_pipeline.training.emotion import vad_targets

    clips = [_truth_clip(row) for row in rows]
    targets = vad_targets(lexicon, clips, np.zeros(len(clips)), acoustic_weight=0.0)
    return {
        f"{d}_ccc_lexicon": concordance_correlation(targets[:, i], predicted[:, i]) for i, d in enumerate(DIMENSIONS)
    }


def evaluate_warehouse(warehouse: Path, episodes_dir: Path, lexicon: Path | None = None) -> dict:
    """Sentence-level emotion/sentiment scores and laughter event scores over every episode in
    the warehouse that has a truth file under `episodes_dir` (matched by episode id); with the
    `lexicon` (NRC VAD csv), the dims' CCC against the true classes' coordinates."""
    truth_files = episode_truth_files(episodes_dir)
    with connect_read_only(warehouse) as db:
        episodes = db.execute("""SELECT "show", episode_id, duration_s FROM episodes WHERE status = 'ok'""").fetchall()
        segments = db.execute(
            "SELECT episode_id, start_s, end_s, emotion, sentiment, valence, arousal, dominance "
            "FROM segments WHERE kind = 'sentence'"
        ).fetchall()
        events = db.execute("SELECT episode_id, start_s, end_s FROM laughter_events").fetchall()
    truth_rows, predicted, predicted_sentiment, predicted_dims = [], [], [], []
    laughter = {}
    for show, episode_id, duration_s in episodes:
        if episode_id not in truth_files:
            continue
        speech, laughs = read_truth(truth_files[episode_id])
        for row, match in matched_sentences(speech, [s for s in segments if s[0] == episode_id]):
            truth_rows.append(row)
            predicted.append(match[3])
            predicted_sentiment.append(match[4])
            predicted_dims.append(match[5:8])
        laughter[f"{show}/{episode_id}"] = (duration_s, laughs, [(e[1], e[2]) for e in events if e[0] == episode_id])
    truth_labels = [row["label"] for row in truth_rows]
    truth_sentiment = [EMOTION_TO_SENTIMENT[label] for label in truth_labels]
    dims = lexicon_dims_scores(lexicon, truth_rows, np.asarray(predicted_dims, float)) if lexicon and truth_rows else {}
    return {
        "sentences_matched": len(truth_labels),
        "emotion_accuracy": accuracy(truth_labels, predicted) if truth_labels else None,
        "emotion_uar": unweighted_average_recall(truth_labels, predicted, EMOTIONS) if truth_labels else None,
        "sentiment_accuracy": accuracy(truth_sentiment, predicted_sentiment) if truth_labels else None,
        "sentiment_uar": unweighted_average_recall(truth_sentiment, predicted_sentiment, SENTIMENTS)
        if truth_labels
        else None,
        **dims,
        **laughter_scores(laughter),
    }


def clips_together(analyzer, clips: list[np.ndarray], speaker: str) -> list[tuple[str, np.ndarray]]:
    """Emotion and dims of one speaker's clean clips (16 kHz samples) strung together with half
    a second of silence between, each clip a segment of that speaker, so the speaker branch sees
    them as the sentences of an episode."""
    columns = clips_together_columns(analyzer, clips, speaker)
    return list(zip(columns["emotion"], np.stack([columns[d] for d in DIMENSIONS], axis=1)))


def clips_together_columns(analyzer, clips: list[np.ndarray], speaker: str, lead: int = 0) -> dict[str, np.ndarray]:
    """Every column `clips_together` reads, the string of clips after `lead` samples of silence
    (which moves where the 10 ms frames fall on them)."""
    from ser_pipeline.audio import SAMPLE_RATE
    from ser_pipeline.segmentation import Segment

    gap = np.zeros(SAMPLE_RATE // 2, np.float32)
    pieces, segments, start = [np.zeros(lead, np.float32)], [], lead / SAMPLE_RATE
    for index, samples in enumerate(clips):
        pieces += [samples, gap]
        segments.append(Segment(index, "sentence", start, start + len(samples) / SAMPLE_RATE, speaker))
        start += (len(samples) + len(gap)) / SAMPLE_RATE
    return analyzer.analyze(np.concatenate(pieces), segments).columns


def clip_versus_sentence(warehouse: Path, episodes_dir: Path, sources: Path, analyzer) -> dict:
    """The same speech scored as clean source clips (16 kHz FLAC) and as the sentences inside
    the episode (MP3, resampled, in context). Clips are scored alone (as `predict` does: the
    network only) and, like the sentences, with their speaker's other clips (the speaker
    branch applies). Reports emotion UAR of each on the same clips and how far the dimensions
    move between a clip alone and its sentence, and between the clips together and the
    sentences (`together_*`: both with the branch), as mean |difference| and share within 0.05."""
    from ser_pipeline.audio import decode
    from ser_pipeline.segmentation import Segment

    truth_files = episode_truth_files(episodes_dir)
    with connect_read_only(warehouse) as db:
        segments = db.execute(
            "SELECT episode_id, start_s, end_s, emotion, valence, arousal, dominance FROM segments WHERE kind = 'sentence'"
        ).fetchall()
    truth, sentence_labels, clip_labels, together_labels = [], [], [], []
    differences: dict[str, list] = {"": [], "together_": []}
    sentence_values: list[np.ndarray] = []
    for episode_id, path in truth_files.items():
        speech, _ = read_truth(path)
        rows = [
            (row, match)
            for row, match in matched_sentences(speech, [s for s in segments if s[0] == episode_id])
            if (sources / row["source"]).is_file()
        ]
        decoded = [decode(sources / row["source"]) for row, _ in rows]
        by_speaker: dict[str, list[np.ndarray]] = {}
        for (row, _), audio in zip(rows, decoded):
            by_speaker.setdefault(row["speaker"], []).append(audio.samples)
        together = {speaker: iter(clips_together(analyzer, clips, speaker)) for speaker, clips in by_speaker.items()}
        for (row, match), audio in zip(rows, decoded):
            clip = analyzer.analyze(audio.samples, [Segment(0, "window", 0.0, audio.duration_s)]).columns
            truth.append(row["label"])
            sentence_labels.append(match[3])
            clip_labels.append(clip["emotion"][0])
            together_label, together_dims = next(together[row["speaker"]])
            together_labels.append(together_label)
            sentence_dims = np.asarray(match[4:7], float)
            sentence_values.append(sentence_dims)
            differences[""].append(sentence_dims - [float(clip[d][0]) for d in DIMENSIONS])
            differences["together_"].append(sentence_dims - together_dims)
    if not truth:
        return {"clips": 0}
    together_uar = unweighted_average_recall(truth, together_labels, EMOTIONS)
    sentence_uar = unweighted_average_recall(truth, sentence_labels, EMOTIONS)
    return {
        "clips": len(truth),
        "clip_emotion_uar": unweighted_average_recall(truth, clip_labels, EMOTIONS),
        "clips_of_a_speaker_together_emotion_uar": together_uar,
        "sentence_emotion_uar": sentence_uar,
        # The gap to the clean clips together, and how far the sentences drawn could move it.
        "together_minus_sentence_emotion_uar": together_uar - sentence_uar,
        "together_minus_sentence_ci95": uar_difference_interval(truth, together_labels, sentence_labels, EMOTIONS),
        "clip_sentence_agreement": accuracy(clip_labels, sentence_labels),
        **{
            f"{prefix}{d}_{name}": float(value(np.asarray(rows)[:, i]))
            for prefix, rows in differences.items()
            for i, d in enumerate(DIMENSIONS)
            for name, value in (
                ("mean_abs_diff", lambda x: np.abs(x).mean()),
                ("within_0.05", lambda x: (np.abs(x) <= 0.05).mean()),
                ("mean_diff", np.mean),  # sentence minus clip: a shift that noise or context brings
            )
        },
        # Agreement relative to the values' spread (the sentences' standard deviation): a model
        # whose dims barely move across clips would pass "within 0.05" and tell nothing.
        **{f"sentence_{d}_sd": float(np.std(np.asarray(sentence_values)[:, i])) for i, d in enumerate(DIMENSIONS)},
    }


# White noise under the whole of the laughter-free speech in the noisy false-alarm check: about
# the level measured between the sentences of ../shared/data/episodes (RMS 0.001-0.003).
EPISODE_NOISE_RMS = 2e-3


def strung_speech(speech_files: list[Path], rng: np.random.Generator, minutes: float | None = None) -> np.ndarray:
    """Clips strung together in a random order with short (0.25-0.9 s), lightly noisy gaps, as
    speech runs in a podcast: all of them, or until `minutes` are reached."""
    import soundfile as sf

    from ser_pipeline.audio import SAMPLE_RATE

    pieces, total = [], 0
    for index in rng.permutation(len(speech_files)):
        clip, _ = sf.read(speech_files[index], dtype="float32")
        gap = rng.standard_normal(int(rng.uniform(0.25, 0.9) * SAMPLE_RATE)).astype(np.float32) * 1e-3
        pieces += [clip, gap]
        total += len(clip) + len(gap)
        if minutes is not None and total >= minutes * 60 * SAMPLE_RATE:
            break
    return np.concatenate(pieces)


def laughter_false_alarms(
    analyzer, speech_files: list[Path], minutes: float = 30.0, seed: int = 0, noise_rms: float = EPISODE_NOISE_RMS
) -> tuple[dict, dict]:
    """Laughter events detected in laughter-free speech: clips strung together with short,
    lightly noisy gaps (as in a podcast), `minutes` long, read once and scored twice: as is, and
    with white noise at `noise_rms` under all of it. Returns (as is, in noise), events per hour."""
    from ser_pipeline.audio import SAMPLE_RATE
    from ser_pipeline.laughter import detect_events

    rng = np.random.default_rng(seed)
    samples = strung_speech(speech_files, rng, minutes)
    hours = len(samples) / SAMPLE_RATE / 3600

    def counted(audio: np.ndarray) -> dict:
        probs, fps = analyzer.laughter_probabilities(audio, analyzer.front_end.episode(audio, analyzer.device))
        events = len(detect_events(probs, fps, analyzer.models.operating_point))
        return {"speech_hours": round(hours, 3), "false_alarms": events, "false_alarms_per_hour": events / hours}

    return counted(samples), counted(samples + rng.standard_normal(len(samples)).astype(np.float32) * noise_rms)
