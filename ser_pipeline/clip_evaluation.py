"""Scoring a model on labelled clips under the evaluation protocol (docs/evaluation.md).

The protocol splits by speaker. Development speakers are the ones decisions may look at; the
final test is reported only. RAVDESS and TESS are development data as a whole (every recipe so
far was chosen on them, the held-out actors 01, 02, 05, 08, 11 included), and so are the shared
episodes. nEMO (Polish) came after every shipped model: no shipped model was trained or chosen on
it, so all of it is a cross-corpus test of them, and five of its nine speakers, drawn by a hash of
their names before anything was scored (`NEMO_FINAL_TEST`), are the final test that no later
decision may look at; the other four are development data for recipes that train on nEMO.

Each clip is read alone (one segment, as `predict` reads a file), or with its speaker's other
clips strung together as the sentences of an episode (the speaker context and the speaker
branch join in, as in an episode whose transcript names the speaker). Intervals are 95%
bootstrap intervals over speakers (each round draws speakers with replacement, all their clips
together), the unit the protocol generalises over.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ser_pipeline.metrics import unweighted_average_recall
from ser_pipeline.schema import EMOTION_TO_SENTIMENT, EMOTIONS, SENTIMENTS

NEMO_SPEAKERS = ("EB0", "IC0", "KD0", "KS0", "MK0", "MP0", "SM0", "TP0", "WR0")


def _final_test(speakers: tuple[str, ...], count: int) -> tuple[str, ...]:
    """The speakers whose salted name hashes come first: a draw fixed before any score."""
    ranked = sorted(speakers, key=lambda s: hashlib.sha256(f"ser-pipeline final test {s}".encode()).hexdigest())
    return tuple(sorted(ranked[:count]))


NEMO_FINAL_TEST = _final_test(NEMO_SPEAKERS, 5)  # EB0, IC0, KD0, KS0, WR0
SPLITS = ("final", "dev", "all")
CONTEXTS = ("alone", "speaker")


def in_split(clip, split: str) -> bool:
    """Whether a clip's speaker belongs to `split` ("final", "dev" or "all")."""
    final = clip.corpus == "nemo" and clip.speaker.removeprefix("nemo-") in NEMO_FINAL_TEST
    return split == "all" or (split == "final") == final


@dataclass(frozen=True)
class ClipScores:
    """Predictions of a set of clips and what they score."""

    corpus: str
    split: str
    context: str
    clips: int
    speakers: int
    emotion_uar: float
    emotion_interval: tuple[float, float]
    sentiment_uar: float
    sentiment_interval: tuple[float, float]
    recall: dict[str, float] = field(default_factory=dict)  # per true emotion
    confusions: dict[str, dict[str, int]] = field(default_factory=dict)  # true -> predicted -> clips


def speaker_draws(speakers: list[str], rounds: int, seed: int) -> Iterator[list[int]]:
    """Bootstrap rounds over speakers: each draws as many speakers as there are, with
    replacement, and yields the rows of all their clips."""
    groups: dict[str, list[int]] = {}
    for index, speaker in enumerate(speakers):
        groups.setdefault(speaker, []).append(index)
    names = sorted(groups)
    rng = np.random.default_rng(seed)
    for _ in range(rounds):
        yield [i for name in rng.choice(names, len(names)) for i in groups[name]]


def percentile_interval(values: list[float]) -> tuple[float, float]:
    low, high = np.percentile(values, [2.5, 97.5])
    return round(float(low), 4), round(float(high), 4)


def speaker_interval(
    truth: list[str], predicted: list[str], speakers: list[str], labels: list[str], rounds: int = 1000, seed: int = 0
) -> tuple[float, float]:
    """95% interval of the UAR (over the classes present in each draw) by a bootstrap over speakers."""
    return percentile_interval(
        [
            unweighted_average_recall([truth[i] for i in rows], [predicted[i] for i in rows], labels)
            for rows in speaker_draws(speakers, rounds, seed)
        ]
    )


def paired_speaker_interval(
    truth: list[str],
    first: list[str],
    second: list[str],
    speakers: list[str],
    labels: list[str],
    rounds: int = 1000,
    seed: int = 0,
) -> tuple[float, float]:
    """95% interval of UAR(first) - UAR(second), two models' predictions of the same clips, by a
    bootstrap over speakers (both predictions of a drawn speaker's clips kept together): the test
    a default change must pass (the interval above zero)."""
    differences = []
    for rows in speaker_draws(speakers, rounds, seed):
        drawn = [truth[i] for i in rows]
        differences.append(
            unweighted_average_recall(drawn, [first[i] for i in rows], labels)
            - unweighted_average_recall(drawn, [second[i] for i in rows], labels)
        )
    return percentile_interval(differences)


def score_clips(
    analyzer, clips: list, context: str, read: Callable[[Path], np.ndarray], log: Callable[[str], None] = print
) -> list[tuple[str, str]]:
    """The predicted emotion and sentiment of each clip, read alone or with its speaker's other clips."""
    from ser_pipeline.evaluation import clips_together_columns

    if context == "alone":
        predicted = []
        for number, clip in enumerate(clips, start=1):
            columns = analyzer.analyze_whole(read(clip.path)).columns
            predicted.append((str(columns["emotion"][0]), str(columns["sentiment"][0])))
            if number % 500 == 0:
                log(f"  {number}/{len(clips)} clips")
        return predicted
    by_speaker: dict[str, list[int]] = {}
    for index, clip in enumerate(clips):
        by_speaker.setdefault(clip.speaker, []).append(index)
    predicted = [("", "")] * len(clips)
    for speaker, indices in sorted(by_speaker.items()):
        columns = clips_together_columns(analyzer, [read(clips[i].path) for i in indices], speaker)
        for i, emotion, sentiment in zip(indices, columns["emotion"], columns["sentiment"], strict=True):
            predicted[i] = (str(emotion), str(sentiment))
        log(f"  {speaker}: {len(indices)} clips")
    return predicted


def summarise(clips: list, predictions: list[tuple[str, str]], corpus: str, split: str, context: str) -> ClipScores:
    """UARs (emotion over the emotions the clips hold; sentiment from the model's sentiment head
    against the true emotion's sentiment), intervals, recalls and confusions."""
    predicted = [emotion for emotion, _ in predictions]
    truth = [c.label for c in clips]
    speakers = [c.speaker for c in clips]
    labels = [e for e in EMOTIONS if e in set(truth)]  # recall is over the emotions the clips hold
    sentiment_truth = [EMOTION_TO_SENTIMENT[t] for t in truth]
    sentiment_predicted = [sentiment for _, sentiment in predictions]
    confusions = {t: {} for t in labels}
    for t, p in zip(truth, predicted, strict=True):
        confusions[t][p] = confusions[t].get(p, 0) + 1
    return ClipScores(
        corpus=corpus,
        split=split,
        context=context,
        clips=len(clips),
        speakers=len(set(speakers)),
        emotion_uar=round(unweighted_average_recall(truth, predicted, EMOTIONS), 4),
        emotion_interval=speaker_interval(truth, predicted, speakers, list(EMOTIONS)),
        sentiment_uar=round(unweighted_average_recall(sentiment_truth, sentiment_predicted, SENTIMENTS), 4),
        sentiment_interval=speaker_interval(sentiment_truth, sentiment_predicted, speakers, list(SENTIMENTS)),
        recall={t: round(confusions[t].get(t, 0) / sum(confusions[t].values()), 3) for t in labels},
        confusions=confusions,
    )
