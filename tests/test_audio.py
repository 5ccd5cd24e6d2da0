from __future__ import annotations

import numpy as np
import pytest

from conftest import tone, write_audio
from ser_pipeline.audio import SAMPLE_RATE, AudioError, decode


def dominant_frequency(samples: np.ndarray) -> float:
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(len(samples))))
    return float(np.fft.rfftfreq(len(samples), 1 / SAMPLE_RATE)[spectrum.argmax()])


@pytest.mark.parametrize(
    "rate, channels, fmt",
    [(44_100, 2, "MP3"), (48_000, 2, "WAV"), (8_000, 1, "WAV"), (96_000, 6, "FLAC"), (22_050, 1, "OGG")],
)
def test_any_rate_and_layout_becomes_16k_mono_with_the_tone_kept(tmp_path, rate, channels, fmt):
    mono = tone(440, 5.0, rate)
    path = write_audio(tmp_path / f"tone.{fmt.lower()}", np.repeat(mono[:, None], channels, axis=1), rate, format=fmt)
    audio = decode(path)
    assert audio.samples.dtype == np.float32 and audio.samples.ndim == 1
    assert (audio.source_rate, audio.source_channels) == (rate, channels)
    assert audio.duration_s == pytest.approx(5.0, abs=0.06)  # MP3 frames may pad the end
    assert dominant_frequency(audio.samples) == pytest.approx(440, abs=2)
    assert np.sqrt(np.mean(audio.samples[SAMPLE_RATE:-SAMPLE_RATE] ** 2)) == pytest.approx(0.5 / np.sqrt(2), rel=0.05)


def test_block_decoding_equals_one_shot_resampling(tmp_path):
    import soxr

    rng = np.random.default_rng(0)
    samples = rng.standard_normal((44_100 * 70, 2)).astype(np.float32) * 0.1  # longer than two 30 s blocks
    path = write_audio(tmp_path / "noise.wav", samples, 44_100, subtype="FLOAT")
    expected = soxr.resample(samples.mean(axis=1), 44_100, SAMPLE_RATE, quality="HQ")
    decoded = decode(path).samples
    assert len(decoded) == len(expected)
    assert np.max(np.abs(decoded - expected)) < 1e-4


def test_m4a_decodes_through_ffmpeg(tmp_path):
    av = pytest.importorskip("av")
    path = tmp_path / "tone.m4a"
    samples = tone(330, 3.0, 44_100)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("aac", rate=44_100, layout="stereo")
        frame = av.AudioFrame.from_ndarray(
            np.stack([samples, samples])[None].reshape(1, -1).reshape(2, -1), format="fltp", layout="stereo"
        )
        frame.rate = 44_100
        for packet in stream.encode(frame):
            container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    audio = decode(path)
    assert audio.duration_s == pytest.approx(3.0, abs=0.1)
    assert dominant_frequency(audio.samples) == pytest.approx(330, abs=3)


def test_silence_decodes_to_zeros(tmp_path):
    audio = decode(write_audio(tmp_path / "silence.wav", np.zeros(16_000 * 2, np.float32), 16_000))
    assert audio.duration_s == pytest.approx(2.0) and np.all(audio.samples == 0)


def test_nan_and_inf_samples_become_silence_with_a_warning(tmp_path):
    samples = tone(200, 1.0, 16_000)
    samples[100:110] = np.nan
    samples[500] = np.inf
    audio = decode(write_audio(tmp_path / "nan.wav", samples, 16_000, subtype="FLOAT"))
    assert np.all(np.isfinite(audio.samples))
    assert audio.warnings == ("11 NaN/inf sample(s) replaced by silence",)


@pytest.mark.parametrize(
    "name, content, message",
    [
        ("empty.mp3", b"", "empty"),
        ("random.mp3", bytes(np.random.default_rng(1).integers(0, 256, 20_000, dtype=np.uint8)), "no .mp3 audio"),
        ("text.wav", b"hello, not a wave file", "no .wav audio"),
        ("text.m4a", b"x=1", "cannot decode .m4a audio"),  # FFmpeg's own refusal, not a crash
    ],
)
def test_undecodable_files_raise_a_one_line_audio_error_without_decoder_noise(tmp_path, capfd, name, content, message):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(AudioError, match=message) as raised:
        decode(path)
    assert "\n" not in str(raised.value) and "does not exist" not in str(raised.value)
    assert capfd.readouterr().err == ""  # libmpg123's "Note: Illegal Audio-MPEG-Header ..." kept off stderr


def test_missing_file_is_an_audio_error(tmp_path):
    with pytest.raises(AudioError, match="not found"):
        decode(tmp_path / "nope.wav")


def test_a_truncated_mp3_decodes_the_half_that_is_there_and_says_so(tmp_path):
    path = write_audio(tmp_path / "full.mp3", tone(440, 4.0, 44_100), 44_100, format="MP3")
    truncated = tmp_path / "cut.mp3"
    truncated.write_bytes(path.read_bytes()[: path.stat().st_size // 2])  # constant bit rate: half the time
    audio = decode(truncated)
    assert audio.duration_s == pytest.approx(2.0, abs=0.15)
    assert audio.warnings == (
        f"file is truncated or its header overstates its length: decoded {audio.duration_s:.1f}s of the 4.0s declared",
    )


def test_wav_whose_header_overstates_its_length(tmp_path):
    path = write_audio(tmp_path / "liar.wav", tone(300, 2.0, 16_000), 16_000)
    raw = bytearray(path.read_bytes())
    raw[40:44] = (len(raw) * 3).to_bytes(4, "little")  # data chunk size three times too large
    path.write_bytes(bytes(raw))
    audio = decode(path)
    assert audio.duration_s == pytest.approx(2.0, abs=0.01)


@pytest.mark.parametrize("background", [False, True])
def test_a_decoder_failing_midway_says_how_far_it_got(tmp_path, monkeypatch, background):
    import ser_pipeline.audio as audio_module

    path = write_audio(tmp_path / "ok.wav", tone(300, 3.0, 16_000), 16_000)
    source, blocks = audio_module.iter_blocks(path)

    def first_block_then_failure():
        yield next(blocks)
        raise RuntimeError("corrupt frame\nat byte 1234")

    monkeypatch.setattr(audio_module, "iter_blocks", lambda p: (source, first_block_then_failure()))
    decoding = audio_module.Decoding(path)
    with pytest.raises(AudioError, match=r"^decoding stopped after 3\.0s: corrupt frame at byte 1234$"):
        list(decoding.blocks(background=background))


def test_a_held_background_producer_starts_no_new_item_until_released():
    import time

    from ser_pipeline.audio import InBackground

    produced = []

    def items():
        for index in range(50):
            produced.append(index)
            yield index

    background = InBackground(items(), depth=2)
    assert next(background) == 0
    with background.held():
        time.sleep(0.3)  # the producer fills the queue, then waits
        before = len(produced)
        taken = [next(background) for _ in range(2)]  # room in the queue: still nothing new
        time.sleep(0.3)
        assert len(produced) == before and taken == [1, 2]
    assert list(background) == list(range(3, 50))  # released: the rest, in order
    background.close()
