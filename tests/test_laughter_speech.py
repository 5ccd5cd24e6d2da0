"""Laughter false alarms on laughter-free speech, speaker by speaker, and the recipe's speech."""

from __future__ import annotations

import random

import numpy as np
import pytest
import soundfile as sf

from conftest import SHARED_DATA, needs_shared
from ser_pipeline.audio import SAMPLE_RATE
from ser_pipeline.clip_evaluation import NEMO_FINAL_TEST
from ser_pipeline.laughter import LaughterEvent
from ser_pipeline.training.data import Clip
from ser_pipeline.training.laughter import EXPRESSIVE_EMOTIONS, LaughterRecipe, speech_clips
from ser_pipeline.training.laughter_speech import GroupFalseAlarms, SpeakerCounts, count_false_alarms


def _group(rates: dict[str, tuple[int, int]]) -> GroupFalseAlarms:
    """Speakers of one hour each; `rates`: speaker -> (events of "a", events of "b")."""
    return GroupFalseAlarms(
        "g",
        "expressive",
        [SpeakerCounts(s, 1.0, {"a": a, "b": b}, {"a": 2 * a, "b": b}) for s, (a, b) in rates.items()],
    )


def test_a_groups_rate_is_its_events_over_its_hours_and_the_interval_spans_its_speakers():
    group = _group({"s1": (0, 0), "s2": (2, 2), "s3": (10, 4)})
    assert group.per_hour("a") == pytest.approx(4.0)
    assert group.per_hour("a", noisy=True) == pytest.approx(8.0)
    low, high = group.interval("a")
    assert 0.0 <= low < 4.0 < high <= 10.0
    # b fires less than a on s3 only: every draw has a - b >= 0, and some draws none of s3.
    low, high = group.difference_interval("a", "b")
    assert low == 0.0 and 0.0 < high <= 6.0
    assert group.difference_interval("a", "a") == (0.0, 0.0)


def test_each_speakers_expressive_and_calm_clips_are_strung_and_counted_apart(tmp_path):
    clips = []
    for speaker, labels in {"x": ["angry", "happy", "neutral"], "y": ["sad"]}.items():
        for index, label in enumerate(labels):
            path = tmp_path / f"{speaker}{index}.wav"
            sf.write(path, np.zeros(SAMPLE_RATE, np.float32), SAMPLE_RATE)  # one second each
            clips.append(Clip(path, label, speaker, "test"))
    lengths = []

    def one_event(samples: np.ndarray) -> list[LaughterEvent]:
        lengths.append(len(samples) / SAMPLE_RATE)
        return [LaughterEvent(0.0, 0.5, 0.9, 0.8)]

    expressive, calm = count_false_alarms({"one": one_event}, {"test": clips}, log=lambda _: None)
    assert (expressive.kind, calm.kind) == ("expressive", "calm")
    assert [s.speaker for s in expressive.speakers] == ["x"]  # y has no expressive clip
    assert [s.speaker for s in calm.speakers] == ["x", "y"]
    # x's two expressive seconds and their two gaps of 0.25-0.9 s, as recorded and in noise.
    assert 2.5 <= lengths[0] <= 3.8 and lengths[0] == lengths[1]
    assert expressive.per_hour("one") == pytest.approx(1 / expressive.hours)
    assert calm.speakers[0].events == {"one": 1} and calm.speakers[0].events_in_noise == {"one": 1}


@needs_shared
def test_the_recipes_speech_is_drawn_evenly_and_never_from_held_out_voices():
    recipe = LaughterRecipe(
        data=SHARED_DATA,
        speech_clips=900,
        speech_corpora=("ravdess", "tess", "nemo"),
        held_out_actors=(1, 2, 5, 8, 11),
    )
    chosen = speech_clips(recipe, random.Random(0))
    by_corpus = {name: [c for c in chosen if c.corpus == name] for name in recipe.speech_corpora}
    assert {name: len(clips) for name, clips in by_corpus.items()} == {"ravdess": 300, "tess": 300, "nemo": 300}
    assert not {c.speaker for c in by_corpus["ravdess"]} & {f"ravdess-{a:02d}" for a in recipe.held_out_actors}
    assert not {c.speaker for c in by_corpus["nemo"]} & {f"nemo-{s}" for s in NEMO_FINAL_TEST}
    assert any(c.label in EXPRESSIVE_EMOTIONS for c in chosen)
    with pytest.raises(ValueError, match="unknown speech corpora"):
        speech_clips(LaughterRecipe(data=SHARED_DATA, speech_corpora=("klingon",)), random.Random(0))


@needs_shared
def test_without_the_final_test_no_final_test_speaker_is_read():
    from ser_pipeline.training.laughter_speech import FINAL_TEST_GROUP, speech_groups

    every, chosen_on = speech_groups(SHARED_DATA), speech_groups(SHARED_DATA, final_test=False)
    assert {c.speaker for c in every[FINAL_TEST_GROUP]} == {f"nemo-{s}" for s in NEMO_FINAL_TEST}
    assert set(chosen_on) == set(every) - {FINAL_TEST_GROUP}
    read = {c.speaker for clips in chosen_on.values() for c in clips}
    assert read and not read & {f"nemo-{s}" for s in NEMO_FINAL_TEST}
