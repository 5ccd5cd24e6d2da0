"""The evaluation protocol's split and the clip scores it reports."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf
from typer.testing import CliRunner

from conftest import SHARED_DATA, needs_shared, tone
from ser_pipeline.clip_evaluation import NEMO_FINAL_TEST, in_split, paired_speaker_interval, speaker_interval, summarise
from ser_pipeline.registry import Registry
from ser_pipeline.training.data import Clip, nemo_clips


def clip(speaker: str, label: str = "happy", corpus: str = "nemo") -> Clip:
    return Clip(SHARED_DATA / "x.ogg", label, speaker, corpus)


def test_the_final_test_speakers_are_fixed_and_only_nemo_has_them():
    assert NEMO_FINAL_TEST == ("EB0", "IC0", "KD0", "KS0", "WR0")  # drawn once; changing it voids the protocol
    assert in_split(clip("nemo-EB0"), "final") and not in_split(clip("nemo-EB0"), "dev")
    assert in_split(clip("nemo-MK0"), "dev") and not in_split(clip("nemo-MK0"), "final")
    assert in_split(clip("ravdess-01", corpus="ravdess"), "dev") and in_split(clip("nemo-EB0"), "all")


def test_scores_have_their_known_answers():
    clips = [clip("nemo-A", "happy"), clip("nemo-A", "sad"), clip("nemo-B", "happy"), clip("nemo-B", "sad")]
    predictions = [("happy", "positive"), ("happy", "positive"), ("happy", "positive"), ("sad", "negative")]
    scores = summarise(clips, predictions, "nemo", "all", "alone")
    assert scores.emotion_uar == pytest.approx((1.0 + 0.5) / 2)  # happy 2/2, sad 1/2
    assert scores.sentiment_uar == pytest.approx((1.0 + 0.5) / 2)
    assert scores.recall == {"happy": 1.0, "sad": 0.5} and scores.confusions["sad"] == {"happy": 1, "sad": 1}
    assert (scores.clips, scores.speakers) == (4, 2)
    truth, speakers = ["happy", "sad"] * 5, ["a", "b"] * 5
    assert speaker_interval(truth, truth, speakers, ["happy", "sad"]) == (1.0, 1.0)
    wrong = ["sad", "happy"] * 5
    assert paired_speaker_interval(truth, truth, wrong, speakers, ["happy", "sad"]) == (1.0, 1.0)
    assert paired_speaker_interval(truth, wrong, wrong, speakers, ["happy", "sad"]) == (0.0, 0.0)


@needs_shared
def test_nemo_is_read_with_its_six_emotions_and_nine_speakers():
    clips = nemo_clips(SHARED_DATA)
    assert len(clips) == 4481 and {c.label for c in clips} == {"angry", "fear", "happy", "neutral", "sad", "surprise"}
    assert {c.speaker for c in clips} == {
        f"nemo-{s}" for s in ("EB0", "IC0", "KD0", "KS0", "MK0", "MP0", "SM0", "TP0", "WR0")
    }


def test_evaluate_clips_scores_a_corpus_split_by_speaker(tmp_path):
    from ser_pipeline.cli import app

    rows = ["file\temotion\tspeaker\tgender\tage\ttext"]
    for speaker in ("EB0", "MK0", "SM0"):
        for index, (emotion, pitch) in enumerate([("anger", 300.0), ("neutral", 120.0)]):
            name = f"{speaker}/{speaker}_{emotion}_{index}.ogg"
            (tmp_path / "nemo" / speaker).mkdir(parents=True, exist_ok=True)
            sf.write(tmp_path / "nemo" / name, tone(pitch, 1.5) * np.hanning(24_000).astype(np.float32), 16_000,
                     format="OGG", subtype="VORBIS")  # fmt: skip
            rows.append(f"{name}\t{emotion}\t{speaker}\tfemale\t30\tx")
    (tmp_path / "nemo" / "metadata.tsv").write_text("\n".join(rows) + "\n")
    for context in ("alone", "speaker"):
        arguments = ["evaluate-clips", "--data", str(tmp_path), "--split", "dev", "--context", context]
        result = CliRunner().invoke(app, arguments)
        assert result.exit_code == 0, result.output
        scores = json.loads(result.stdout.strip().splitlines()[-1])
        assert (scores["clips"], scores["speakers"], scores["context"]) == (4, 2, context)  # EB0 is final test
        assert 0.0 <= scores["emotion_uar"] <= 1.0 and set(scores["recall"]) == {"angry", "neutral"}
    default = Registry.load().defaults["emotion"]
    arguments = ["evaluate-clips", "--data", str(tmp_path), "--split", "all", "--against", default]
    compared = json.loads(CliRunner().invoke(app, arguments).stdout.strip().splitlines()[-1])
    assert compared["against"]["emotion_gain"] == 0 and compared["against"]["emotion_gain_interval"] == [0.0, 0.0]
    refused = CliRunner().invoke(app, ["evaluate-clips", "--data", str(tmp_path), "--split", "nope"])
    assert refused.exit_code == 2 and "choose final | dev | all" in refused.output
