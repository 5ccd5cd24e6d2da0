"""predict: files alone, or each speaker's files together (--speaker-from)."""

from __future__ import annotations

import numpy as np
import pytest
from typer.testing import CliRunner

from conftest import tone, write_audio
from ser_pipeline.audio import decode
from ser_pipeline.clip_prediction import predict_files, speaker_of
from ser_pipeline.evaluation import clips_together_columns
from ser_pipeline.schema import SCORE_COLUMNS


def voiced(pitch: float, seconds: float = 1.5) -> np.ndarray:
    return tone(pitch, seconds) * (0.5 + 0.5 * np.sin(np.linspace(0, 12 * np.pi, int(seconds * 16_000)))).astype(
        np.float32
    )


def test_speakers_come_from_folders_prefixes_or_a_table(tmp_path):
    from pathlib import Path

    assert speaker_of("folder")(Path("/a/host/clip.wav")) == "host"
    assert speaker_of("prefix")(Path("EB0_anger_12.ogg")) == "EB0"
    assert speaker_of("prefix")(Path("OAF-back-angry.wav")) == "OAF"
    (tmp_path / "who.csv").write_text("file,speaker\nx.wav,Ana\ny.wav,\n")
    table = speaker_of(f"csv:{tmp_path / 'who.csv'}")
    assert (table(Path("x.wav")), table(Path("y.wav")), table(Path("z.wav"))) == ("Ana", None, None)
    with pytest.raises(ValueError, match="choose folder"):
        speaker_of("voice")
    (tmp_path / "bad.csv").write_text("path,who\nx.wav,Ana\n")
    with pytest.raises(ValueError, match="file and speaker columns"):
        speaker_of(f"csv:{tmp_path / 'bad.csv'}")


def test_alone_is_analyze_file_and_together_is_the_speakers_clips_strung_together(analyzer, tmp_path):
    pitches = [140 + 10 * i for i in range(10)]
    files = [write_audio(tmp_path / "host" / f"c{i}.wav", voiced(p), 16_000) for i, p in enumerate(pitches)]
    broken = tmp_path / "host" / "broken.wav"
    broken.write_bytes(b"not audio at all")
    alone = predict_files(analyzer, files)
    for file, prediction in zip(files, alone, strict=True):
        expected = analyzer.analyze_file(file).columns
        assert prediction.error is None and all(prediction.scores[c] == expected[c][0] for c in SCORE_COLUMNS)
    together = predict_files(analyzer, [*files[:5], broken, *files[5:]], speaker_of("folder"))
    assert together[5].error and not together[5].scores and together[5].file == str(broken)
    expected = clips_together_columns(analyzer, [decode(f).samples for f in files], "host")
    scored = [p for p in together if p.error is None]
    assert [p.file for p in scored] == [str(f) for f in files]
    for row, prediction in enumerate(scored):
        assert all(prediction.scores[c] == expected[c][row] for c in SCORE_COLUMNS)
    # ten clips of one speaker: the context and the branch join in, so the readings move
    assert any(a.scores["p_neutral"] != t.scores["p_neutral"] for a, t in zip(alone, scored, strict=True))


def test_an_unknown_speaker_source_is_a_usage_error(tmp_path):
    from ser_pipeline.cli import app

    result = CliRunner().invoke(app, ["predict", str(tmp_path / "a.wav"), "-o", "-", "--speaker-from", "voice"])
    assert result.exit_code == 2 and "choose folder" in result.output
