"""The benchmark's building blocks: long MP3 episodes made by concatenating encoded frames,
and `ser-pipeline bench` itself on a tiny episode (its figures are not asserted: timing
belongs to the benchmark, not to tests)."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

from conftest import tone, write_audio
from ser_pipeline.audio import decode
from ser_pipeline.bench import BENCH_RATE, bench_archive, episode_file, mp3_stream


def _mp3(path, seconds: float, **encoding):
    stereo = np.stack([tone(220, seconds, BENCH_RATE), tone(330, seconds, BENCH_RATE)], axis=1)
    return write_audio(path, stereo, BENCH_RATE, format="MP3", **encoding)


CBR = {"bitrate_mode": "CONSTANT", "compression_level": 0.5}


def test_concatenated_mp3_streams_decode_to_their_whole_length(tmp_path):
    piece = _mp3(tmp_path / "piece.mp3", 4.0, **CBR)
    joined = tmp_path / "joined.mp3"
    joined.write_bytes(mp3_stream(piece.read_bytes()) * 3)
    # Kept whole, the first piece's Xing/Info frame would make decoders stop after 4 s.
    assert decode(piece).duration_s == pytest.approx(4.0, abs=0.1)
    assert decode(joined).duration_s == pytest.approx(12.0, abs=0.2)
    naive = tmp_path / "naive.mp3"
    naive.write_bytes(piece.read_bytes() * 3)
    assert decode(naive).duration_s < 5.0


def test_mp3_stream_refuses_what_it_cannot_concatenate(tmp_path):
    with pytest.raises(ValueError, match="MPEG-1 Layer III"):
        mp3_stream(b"RIFF" + bytes(100))
    with pytest.raises(ValueError, match="variable-bitrate"):
        mp3_stream(_mp3(tmp_path / "vbr.mp3", 4.0).read_bytes())  # libsndfile's default is VBR


def test_bench_archive_has_the_asked_length_and_is_cached(tmp_path):
    source = tmp_path / "source"
    write_audio(source / "a.wav", tone(200, 7.0), 16_000)  # mono 16 kHz: made stereo 44.1 kHz
    archive = bench_archive(0.25, source, tmp_path / "cache")
    path = episode_file(archive)
    assert sf.info(path).samplerate == BENCH_RATE and sf.info(path).channels == 2
    assert decode(path).duration_s == pytest.approx(15.0, abs=0.2)  # the 7 s source, looped
    modified = path.stat().st_mtime_ns
    assert bench_archive(0.25, source, tmp_path / "cache") == archive
    assert path.stat().st_mtime_ns == modified


@pytest.mark.slow
def test_bench_command_writes_its_tables(tmp_path):
    source = tmp_path / "source"
    write_audio(source / "a.wav", tone(200, 20.0) * np.sin(np.linspace(0, 60, 320_000)).astype(np.float32), 16_000)
    output = tmp_path / "benchmarks.md"
    env = {**os.environ, "SER_CACHE_DIR": str(tmp_path / "cache"), "PREFECT_HOME": str(tmp_path / "prefect")}
    command = [
        sys.executable, "-m", "ser_pipeline", "bench", "--durations", "0.25,0.5", "--stage-minutes", "0.5",
        "--naive-minutes", "0.25", "--source", str(source), "--output", str(output), "--no-service",
    ]  # fmt: skip
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    text = output.read_text()
    for heading in ("## Whole process", "## Stages of one", "## References, same run", "## Targets"):
        assert heading in text
    assert "| 15 s |" in text and "| 30 s |" in text  # one row per whole-process duration
    assert "| 30 s, by voice activity" in text and "end-to-end by voice activity >= 150x" in text
    assert "| 30 s, by voice activity with speakers from the embedded diarizer" in text
    assert "the same with the embedded diarizer >= 150x" in text
    for stage in ("decode", "features", "emotion", "laughter", "events", "write", "report"):
        assert f"| {stage} |" in text
    assert "naive reference" in text and "decode-only floor" in text
