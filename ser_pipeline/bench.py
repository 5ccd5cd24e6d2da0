"""`ser-pipeline bench`: speed and memory on long, deterministic episodes, measured in one run.

The episodes are 44.1 kHz stereo MP3 made from the audio of an archive (the shared episodes
by default, else the synthetic demo archive), looped to length. Encoding is slow (about 20x
real time), so one 5-minute unit is encoded once and long episodes are that unit's MP3 frames
repeated; everything is cached under `$SER_CACHE_DIR/bench`.

Measured: each stage of one episode in this process, the whole `ser-pipeline run` as a child
process per duration (start-up included, its peak RSS from the kernel), the decode-only floor,
and a naive reference made the way the seed notebooks did it (librosa features per 3 s window,
one model call per window).
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from ser_pipeline.audio import SAMPLE_RATE, decode, iter_blocks
from ser_pipeline.files import atomic_write
from ser_pipeline.service_bench import ServiceBench, run_service_bench

BENCH_RATE = 44_100
UNIT_S = 300
WINDOW_S = 3.0
_MPEG1_LAYER3_KBPS = (0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320)
_MPEG1_RATES = (44_100, 48_000, 32_000)


# --- the episodes -------------------------------------------------------------------------


def _source_files(source: Path) -> list[Path]:
    files = sorted(p for p in source.rglob("*") if p.suffix.lower() in (".mp3", ".wav", ".flac"))
    if not files:
        raise ValueError(f"no .mp3/.wav/.flac audio under {source} to build the benchmark episode from")
    return files


def _stereo(path: Path) -> np.ndarray:
    audio, rate = sf.read(path, dtype="float32", always_2d=True)
    if rate != BENCH_RATE:
        audio = soxr.resample(audio, rate, BENCH_RATE)
    return audio[:, [0, 0]] if audio.shape[1] == 1 else audio[:, :2]


def _unit_audio(source: Path, seconds: float) -> np.ndarray:
    """`seconds` of 44.1 kHz stereo: the source files in name order, looped."""
    pieces, total, files = [], 0, _source_files(source)
    while total < seconds * BENCH_RATE:
        for path in files:
            pieces.append(_stereo(path))
            total += len(pieces[-1])
            if total >= seconds * BENCH_RATE:
                break
    return np.concatenate(pieces)[: int(seconds * BENCH_RATE)]


def _frame_length(header: bytes) -> int:
    """Bytes in one MPEG-1 Layer III frame, from its 4-byte header."""
    if header[0] != 0xFF or header[1] & 0xFE != 0xFA:
        raise ValueError("not an MPEG-1 Layer III frame")
    kbps, rate = _MPEG1_LAYER3_KBPS[header[2] >> 4], _MPEG1_RATES[(header[2] >> 2) & 3]
    return 144_000 * kbps // rate + ((header[2] >> 1) & 1)


def mp3_stream(data: bytes) -> bytes:
    """A constant-bitrate MP3 file's frames without its ID3v2 tag and its Xing/Info header
    frame, so that streams can be concatenated: the header frame would tell decoders to stop
    early, and without it they take the length from the file size, which only CBR allows."""
    if data[:3] == b"ID3":
        size = int.from_bytes(data[6:10], "big")
        data = data[10 + ((size >> 3 & 0xFE00000) | (size >> 2 & 0x1FC000) | (size >> 1 & 0x3F80) | size & 0x7F) :]
    first = _frame_length(data[:4])
    if b"Xing" in data[:first] or b"Info" in data[:first]:
        data = data[first:]
    position, bitrates = 0, set()
    while position + 4 <= len(data):
        bitrates.add(data[position + 2] >> 4)
        position += _frame_length(data[position : position + 4])
    if len(bitrates) > 1:
        raise ValueError("a variable-bitrate MP3 cannot be concatenated (decoders would misjudge its length)")
    return data


def _encode(audio: np.ndarray, path: Path) -> None:
    """Constant bitrate (libsndfile writes VBR unless a compression level is given too)."""
    with atomic_write(path) as partial:
        sf.write(partial, audio, BENCH_RATE, format="MP3", bitrate_mode="CONSTANT", compression_level=0.5)


def bench_archive(minutes: float, source: Path, cache: Path) -> Path:
    """A one-episode archive (`<cache>/<minutes>min/bench/...mp3`) of `minutes` of audio."""
    folder = cache / f"{minutes:g}min"
    target = folder / "bench" / f"bench-{minutes:g}min.mp3"
    if target.is_file():
        return folder
    cache.mkdir(parents=True, exist_ok=True)
    unit = cache / "unit.mp3"
    if not unit.is_file():
        _encode(_unit_audio(source, UNIT_S), unit)
    whole, rest = divmod(round(minutes * 60), UNIT_S)
    parts = [mp3_stream(unit.read_bytes())] * whole
    if rest:
        tail = cache / f"tail-{rest}s.mp3"
        if not tail.is_file():
            _encode(_unit_audio(source, rest), tail)
        parts.append(mp3_stream(tail.read_bytes()))
    with atomic_write(target) as partial:
        partial.write_bytes(b"".join(parts))
    return folder


def episode_file(archive: Path) -> Path:
    return next((archive / "bench").glob("*.mp3"))


# --- measurements -------------------------------------------------------------------------


@dataclass(frozen=True)
class ProcessRun:
    minutes: float
    seconds: float
    peak_rss_mb: float

    @property
    def real_time(self) -> float:
        return self.minutes * 60 / self.seconds

    def summary(self) -> str:
        return f"{self.seconds:.1f} s, {self.real_time:.0f}x real time, peak RSS {self.peak_rss_mb:.0f} MB"

    def table_row(self, audio: str) -> str:
        """Its row of the whole-process table, `audio` saying what was run."""
        return (
            f"| {audio} | {self.seconds:.1f} s | {self.real_time:.0f}x | {self.seconds / self.minutes * 60:.1f} s"
            f" | {self.peak_rss_mb:.0f} MB |"
        )


def run_whole(
    archive: Path, out: Path, device: str, segmentation: str = "window", diarization: str = "auto"
) -> ProcessRun:
    """`ser-pipeline run` on a bench archive as a child process: wall time and its peak RSS."""
    minutes = sf.info(episode_file(archive)).duration / 60 if (archive / "bench").is_dir() else 0.0
    command = [
        sys.executable, "-m", "ser_pipeline", "run", str(archive), "--segmentation", segmentation,
        "--window", str(WINDOW_S), "--warehouse", str(out / "data"), "--reports", str(out / "reports"),
        "--device", device, "--diarization", diarization,
    ]  # fmt: skip
    out.mkdir(parents=True, exist_ok=True)
    log = out / "run.log"
    with log.open("a") as stderr:
        began = time.perf_counter()
        child = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=stderr)
        _, status, usage = os.wait4(child.pid, 0)
        seconds = time.perf_counter() - began
    if os.waitstatus_to_exitcode(status):
        raise RuntimeError(f"`{' '.join(command)}` failed:\n{log.read_text()[-3000:]}")
    return ProcessRun(minutes, seconds, usage.ru_maxrss / 1024)


def unchanged_rerun(archive: Path, workdir: Path, device: str, analyzer) -> dict[str, float]:
    """The archive run twice into one warehouse, as whole processes and in process: seconds
    of the first run and of the unchanged re-run, and whether the row counts stayed equal."""
    from ser_pipeline.archive import discover
    from ser_pipeline.pipeline import RunConfig, process_episode
    from ser_pipeline.warehouse import connect_read_only

    def counts(warehouse: Path) -> list[int]:
        with connect_read_only(warehouse) as db:
            return [
                db.sql(f"SELECT count(*) FROM {t}").fetchall()[0][0]
                for t in ("episodes", "segments", "laughter_events")
            ]

    out = workdir / "rerun"
    first = run_whole(archive, out, device, "sentence").seconds
    before = counts(out / "data")
    again = run_whole(archive, out, device, "sentence").seconds
    config, episodes, passes = RunConfig(workdir / "rerun-in-process"), discover(archive), []
    for _ in range(2):
        began = time.perf_counter()
        for episode in episodes:
            process_episode(episode, config, analyzer, "bench")
        passes.append(time.perf_counter() - began)
    return {
        "first": first,
        "again": again,
        "same_counts": float(before == counts(out / "data")),
        "first_in_process": passes[0],
        "again_in_process": passes[1],
        "episodes": float(len(episodes)),
    }


def decode_floor(path: Path) -> dict[str, float]:
    """Seconds to decode only, and to decode + downmix + resample (the pipeline's decode)."""
    began = time.perf_counter()
    _, blocks = iter_blocks(path)
    for _ in blocks:
        pass
    decoded = time.perf_counter()
    decode(path)
    return {"decode only": decoded - began, "decode + resample": time.perf_counter() - decoded}


def pipeline_stages(archive: Path, workdir: Path, analyzer) -> dict[str, float]:
    """Seconds per stage of one episode through `process_episode`, then its report."""
    from ser_pipeline.archive import discover
    from ser_pipeline.pipeline import RunConfig, process_episode
    from ser_pipeline.report import build_reports
    from ser_pipeline.segmentation import Segmentation
    from ser_pipeline.timing import StageClock
    from ser_pipeline.warehouse import refresh_views

    config = RunConfig(workdir / "stages" / "data", Segmentation.window, WINDOW_S)
    clock = StageClock()
    (episode,) = discover(archive)
    outcome = process_episode(episode, config, analyzer, "bench", clock)
    if outcome.status != "ok":
        raise RuntimeError(f"benchmark episode failed: {outcome.error}")
    with clock.stage("report"):
        refresh_views(config.warehouse)
        build_reports(config.warehouse, workdir / "stages" / "reports")
    return clock.seconds


def naive_reference(path: Path, minutes: float, analyzer) -> float:
    """Seconds for the first `minutes` the way the seed notebooks did it: librosa.load, then
    per 3 s window librosa mel + MFCC features and one call of each model."""
    import librosa
    import torch

    from ser_pipeline.features import FrontEndConfig
    from ser_pipeline.segmentation import Segment

    front = FrontEndConfig()
    began = time.perf_counter()
    samples, _ = librosa.load(path, sr=SAMPLE_RATE, duration=minutes * 60)
    width = int(WINDOW_S * SAMPLE_RATE)
    spectral = {"sr": SAMPLE_RATE, "n_fft": front.n_fft, "hop_length": front.hop_length, "n_mels": front.n_mels}
    with torch.inference_mode():
        for start in range(0, len(samples) - width + 1, width):
            window = samples[start : start + width]
            logmel = np.log(librosa.feature.melspectrogram(y=window, **spectral) + 1e-6).T
            mfcc = librosa.feature.mfcc(y=window, n_mfcc=front.n_mfcc, **spectral).T
            features = torch.from_numpy(np.concatenate([logmel, mfcc], axis=1))[None]
            if analyzer.models.waveform_emotion is not None:  # the Whisper head: one call per window too
                analyzer.models.waveform_emotion.score(window, [Segment(0, "window", 0.0, WINDOW_S)])
            else:
                analyzer.emotion_batch(features, torch.tensor([len(features[0])]))
            analyzer.laughter_frames(torch.from_numpy(logmel))
    return time.perf_counter() - began


def machine() -> str:
    import torch

    cpuinfo = Path("/proc/cpuinfo").read_text().splitlines() if Path("/proc/cpuinfo").exists() else []
    names = [line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name")]
    cpu = names[0] if names else platform.processor() or "unknown CPU"
    memory_gb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"
    return (
        f"{cpu}, {os.cpu_count()} cores, {memory_gb:.0f} GB RAM, GPU: {gpu}; Python {platform.python_version()}, "
        f"torch {torch.__version__}, {platform.system()} {platform.release()}"
    )


# --- the report ---------------------------------------------------------------------------


@dataclass
class BenchResult:
    machine: str
    stage_minutes: float
    stages: dict[str, float]
    floor: dict[str, float]
    naive_minutes: float
    naive_seconds: float
    runs: list[ProcessRun] = field(default_factory=list)
    device: str = "cpu"
    source: str = ""
    rerun: dict[str, float] = field(default_factory=dict)
    service: ServiceBench | None = None
    vad_run: ProcessRun | None = None  # the stage episode segmented by voice activity (no transcript)
    diarized_run: ProcessRun | None = None  # the same with the embedded diarizer naming its speakers

    @property
    def stage_total(self) -> float:
        return sum(self.stages.values())

    @property
    def naive_real_time(self) -> float:
        return self.naive_minutes * 60 / self.naive_seconds

    def run_for(self, minutes: float) -> ProcessRun | None:
        return next((r for r in self.runs if abs(r.minutes - minutes) < 0.5), None)

    def markdown(self, command: str) -> str:
        audio_s = self.stage_minutes * 60
        floor_s = self.floor["decode only"] + self.floor["decode + resample"]
        lines = [
            "# Benchmarks",
            "",
            f"Measured {time.strftime('%Y-%m-%d')} by `{command}` in one run (ratios are comparable; the",
            "machine is shared, so absolute figures move by 10-20% between runs).",
            "",
            f"Machine: {self.machine}. Device: {self.device}. Default models, 3 s windows.",
            "",
            "## Whole process: `ser-pipeline run` (start-up, Prefect's temporary server, reports included)",
            "",
            "| audio | wall time | x real time | seconds per audio hour | peak RSS |",
            "|---|---|---|---|---|",
            *(r.table_row(_length(r.minutes)) for r in self.runs),
            *(
                [
                    v.table_row(
                        f"{_length(v.minutes)}, by voice activity (`--segmentation vad`, as an episode without a transcript)"
                    )
                ]
                if (v := self.vad_run)
                else []
            ),
            *(
                [
                    d.table_row(
                        f"{_length(d.minutes)}, by voice activity with speakers from the embedded diarizer (`--diarization embedded`)"
                    )
                ]
                if (d := self.diarized_run)
                else []
            ),
            "",
            "Peak RSS is the pipeline process's (from the kernel at exit); Prefect's temporary API server",
            "runs as a separate process.",
            "",
            f"## Stages of one {_length(self.stage_minutes)} episode (in process, models already loaded)",
            "",
            "Decoding and resampling run in a thread beside the log-mel pass and the models: `decode` is the",
            "time spent waiting for resampled audio, `features` the log-mel pass.",
            "",
            "| stage | seconds | x real time | share |",
            "|---|---|---|---|",
            *(
                f"| {name} | {seconds:.2f} | {audio_s / seconds:.0f}x | {seconds / self.stage_total:.0%} |"
                for name, seconds in self.stages.items()
            ),
            f"| **all stages** | {self.stage_total:.2f} | {audio_s / self.stage_total:.0f}x | 100% |",
            "",
            "## References, same run",
            "",
            "| reference | x real time |",
            "|---|---|",
            f"| decode only (soundfile MP3 decode, {self.stage_minutes:.0f} min) "
            f"| {audio_s / self.floor['decode only']:.0f}x |",
            f"| decode-only floor: decode + downmix + resample to 16 kHz "
            f"| {audio_s / self.floor['decode + resample']:.0f}x |",
            f"| naive reference (seed-notebook style: librosa.load, librosa mel + MFCC per 3 s window, "
            f"one model call per window; first {self.naive_minutes:g} min) | {self.naive_real_time:.1f}x |",
            "",
            f"(The floor row times the pipeline's own `decode`; the two decode rows took {floor_s:.1f} s together.)",
            *self._rerun_lines(),
            *(self.service.markdown_lines() if self.service else []),
        ]
        return "\n".join(lines) + "\n" + self._targets() + _NOTES

    def _rerun_lines(self) -> list[str]:
        if not self.rerun:
            return []
        r = self.rerun
        return [
            "",
            f"## Unchanged re-run ({r['episodes']:.0f} episodes of `{self.source}`, sentence segmentation)",
            "",
            "| | first run | unchanged re-run | re-run / first |",
            "|---|---|---|---|",
            f"| whole process (start-up included) | {r['first']:.1f} s | {r['again']:.1f} s | {r['again'] / r['first']:.0%} |",
            f"| in process (the pipeline's work) | {r['first_in_process']:.2f} s | {r['again_in_process']:.2f} s "
            f"| {r['again_in_process'] / r['first_in_process']:.1%} |",
            "",
            f"Row counts after the re-run: {'identical' if r['same_counts'] else 'DIFFERENT'}. `run` reads every "
            "episode's recorded fingerprint first and, with nothing changed, starts no flow (no torch, no Prefect "
            "server); inside a flow (a deployment run) the same check skips each episode without decoding (second row).",
        ]

    def _targets(self) -> str:
        hour, three_hours = self.run_for(60), self.run_for(180)
        floor_rt = self.stage_minutes * 60 / self.floor["decode + resample"]
        rows = []
        if hour:
            rows += [
                ("end-to-end >= 150x real time on 60 min", f"{hour.real_time:.0f}x", hour.real_time >= 150),
                ("stretch: within 2x of the decode-only floor", f"{floor_rt / hour.real_time:.2f}x slower than the floor",
                 floor_rt / hour.real_time <= 2),
                ("end-to-end (start-up included) >= 10x the naive reference",
                 f"{hour.real_time / self.naive_real_time:.1f}x", hour.real_time >= 10 * self.naive_real_time),
            ]  # fmt: skip
        if self.vad_run:
            rows.append((
                f"end-to-end by voice activity >= 150x real time on {_length(self.vad_run.minutes)}",
                f"{self.vad_run.real_time:.0f}x", self.vad_run.real_time >= 150,
            ))  # fmt: skip
        if self.diarized_run:
            rows.append((
                "the same with the embedded diarizer >= 150x real time (issue #31)",
                f"{self.diarized_run.real_time:.0f}x", self.diarized_run.real_time >= 150,
            ))  # fmt: skip
        if self.service:
            one, many, svc = self.service.one_client_ms, self.service.concurrent_ms, self.service
            growth = svc.rss_after_mb - svc.rss_after_warmup_mb
            rows += [
                ("service, one 5 s clip: p50 <= 150 ms", f"{np.percentile(one, 50):.0f} ms", np.percentile(one, 50) <= 150),
                ("service, one 5 s clip: p95 <= 500 ms", f"{np.percentile(one, 95):.0f} ms", np.percentile(one, 95) <= 500),
                ("service, 8 clients: no errors, p95 <= 1.5 s",
                 f"{svc.errors} errors, p95 {np.percentile(many, 95):.0f} ms, {svc.concurrent_rps:.1f} req/s "
                 f"(one client {svc.one_client_rps:.1f})", svc.errors == 0 and np.percentile(many, 95) <= 1500),
                (f"service RSS growth < 50 MB over {svc.memory_requests} requests", f"{growth:+.0f} MB", growth < 50),
            ]  # fmt: skip
        stages_rt = self.stage_minutes * 60 / self.stage_total
        rows.append((
            "in process (models loaded, as the naive one) >= 10x the naive reference",
            f"{stages_rt / self.naive_real_time:.1f}x", stages_rt >= 10 * self.naive_real_time,
        ))  # fmt: skip
        if three_hours:
            rows.append(
                ("peak RSS <= 1.5 GB on 180 min", f"{three_hours.peak_rss_mb:.0f} MB", three_hours.peak_rss_mb <= 1536)
            )
        if len(self.runs) >= 3:
            minutes = np.array([r.minutes for r in self.runs])
            seconds = np.array([r.seconds for r in self.runs])
            slope, intercept = np.polyfit(minutes, seconds, 1)
            worst = float(np.max(np.abs(seconds - (intercept + slope * minutes)) / seconds))
            rows.append((
                "cost grows linearly with duration",
                f"{intercept:.1f} s fixed + {slope:.3f} s per audio minute; every run within {worst:.0%} of that line",
                worst <= 0.10,
            ))  # fmt: skip
        body = "\n".join(f"| {name} | {value} | {'met' if ok else 'NOT met'} |" for name, value, ok in rows)
        return f"\n## Targets (issue #7)\n\n| target | measured | |\n|---|---|---|\n{body}\n"


_NOTES = """
## Where the time goes, and on a GPU

- One episode is one streaming pass: a thread decodes (libsndfile's mpg123) and resamples
  (soxr) 30 s blocks while the main thread computes log-mel frames and, as soon as a segment's
  frames or a laughter chunk's context have arrived, runs the models on them (torch keeps to
  one thread while the decoder runs). What remains after the last block is the last batch,
  laughter events, the Parquet write and the report.
- On this 2-core CPU the models and the log-mel pass together cost about as much as decoding,
  so the two threads are both busy; the fixed cost of a run (Python, torch and Prefect imports,
  Prefect's temporary API server, which `run` starts first so that it comes up while torch
  loads) is 10-12 s, which is why short episodes show low x-real-time figures. The server is
  the critical path: it answers about 7 s after it starts on an idle machine (importing
  `prefect.server.api.server` alone takes 5.3 s), nearer 9 s beside torch's import; `run`
  starts it before importing Prefect itself (2 s), which took the fixed cost from 14 to 11 s.
- Memory: with windows, a transcript's sentences or voice activity (segments handed out while
  decoding), the default emotion model, the Whisper head, describes each 2 minutes' worth of complete segments
  as their audio arrives (the decoder held meanwhile, torch on every core), so only the samples
  that segments still to come may read are kept, not the episode's waveform (230 MB an hour;
  peak RSS on 180 min 2.4 GB when it was held, same machine). The log-mel frames are kept (25
  MB an hour), and the waveform too where another model reads it (wav2vec2 dims, the Gillick
  ResNet, a diarizer). The baseline is torch's CUDA build
  (about 650 MB resident after import) plus Prefect, and the Whisper encoder's working memory
  (about 400 MB: a batch of 40 three-second windows; half the batch saved 100 MB at 8-10% of
  the emotion stage, so it stays). Resident memory also grows through the episode (a 3-hour one
  in process, windows: 1.27 GB after 6 s, 1.64-1.76 GB at the end in two runs) with what
  glibc's allocator keeps of freed tensors: run with `MALLOC_MMAP_THRESHOLD_=4194304` in the
  environment (buffers of 4 MB and more go back to the system when freed) and the peak is 1.39
  GB, at 45% more time (87 s against 60 s; 8 MB: 1.47 GB, 78 s; 16 MB: 1.70 GB, 60 s; measured
  2026-12-07 on the AMD EPYC, one run each). The default keeps the speed.
- By voice activity (an episode without a transcript, or `--segmentation vad`) silero-vad hears
  each decoded block (`VadPlan`), and an utterance is handed to the models as soon as the silence
  after it is long enough, so the waveform is not kept here either. Its model runs batched
  (`voice_activity.py`: its front end on thousands of frames at once, its LSTM as one pass over
  the sequence), 3.4 s an hour of audio; stepped frame by frame from Python, as the package does,
  it took 37 s, and the 60-minute run 90 s (40x, 2026-12-07, AMD EPYC, 2 cores) against 34 s
  after, with identical rows; found while decoding, peak RSS there 2.2 GB -> 1.8 GB.
- CPUs differ: the Whisper encoder runs in bfloat16 where the CPU has bfloat16 dot products
  (AMX, AVX512-BF16), about twice as fast as float32. The 60-minute run measured 146x on an
  Intel Xeon with AMX and 132x and 141x in two bench runs on an AMD EPYC with AVX512-BF16
  (2026-12-07); on that EPYC in float32, before it used bfloat16, a run of `run` took 42 s
  against 31 s after.
- On a GPU (`--device auto` picks CUDA): log-mel frames are computed on the GPU from
  page-locked blocks, the models run in float16 autocast, batches are bounded by
  `max_batch_frames`, and decoding overlaps inference as on the CPU. The models then cost
  almost nothing and the bottleneck is decoding on one CPU core (the decode-only floor above,
  about 500-650x real time per process); run several processes or Dask workers (see the
  user guide) to use more cores.
- Measured once on a lent GPU machine (2026-11-22: NVIDIA H100 80GB, 16-core Xeon, torch
  2.11.0+cu130; `python scripts/bench_stages.py`, stages of the same 60 min episode, in process,
  no Prefect there): **7.8 s, 464x real time** on CUDA against 11.9 s (303x) on its 16 CPU
  cores. On CUDA the models are small change (emotion 1.59 s, laughter 0.22 s, log-mel 1.35 s;
  72 MB of GPU memory at peak) and waiting for decoded audio is half the time (4.0 s): the
  decode-only floor there is 6.3 s (571x), so the GPU run is within 1.3x of it. That
  measurement found the emotion stage taking 7.9 s on CUDA: a per-segment `voiced_span` in
  torch cost 4 ms a call beside the busy decoder thread; now in numpy (also on the CPU path).
  Those GPU figures are of `ser-crnn-v1`; the default since 2026-11-23, `ser-crnn-v2`, runs two
  networks and each segment's level, which took the emotion stage on this CPU from 2.0 s to
  3.6 s an hour of 3 s windows (the heads' second pass for named speakers is one small matrix
  product per episode); not yet measured on a GPU.
"""


def _length(minutes: float) -> str:
    return f"{minutes:.0f} min" if minutes >= 1 else f"{minutes * 60:.0f} s"


def run_bench(
    source: Path,
    cache: Path,
    durations: list[float],
    stage_minutes: float,
    naive_minutes: float,
    device: str = "auto",
    say=print,
    service: bool = True,
) -> BenchResult:
    from ser_pipeline.inference import Analyzer

    archives = {}
    for minutes in sorted({*durations, stage_minutes}):
        say(f"building the {minutes:g}-minute episode (cached in {cache})")
        archives[minutes] = bench_archive(minutes, source, cache)
    analyzer = Analyzer(device=device)
    with tempfile.TemporaryDirectory(prefix="ser-bench-") as tmp:
        workdir = Path(tmp)
        runs = []
        for minutes in durations:
            say(f"whole process on {minutes:g} min")
            runs.append(run_whole(archives[minutes], workdir / archives[minutes].name, device))
            say(f"  {runs[-1].summary()}")
        say(f"whole process on {stage_minutes:g} min by voice activity")
        vad_run = run_whole(archives[stage_minutes], workdir / "vad", device, "vad")
        say(f"  {vad_run.summary()}")
        say(f"whole process on {stage_minutes:g} min by voice activity, speakers from the embedded diarizer")
        diarized = run_whole(archives[stage_minutes], workdir / "diarized", device, "vad", "embedded")
        say(f"  {diarized.summary()}")
        path = episode_file(archives[stage_minutes])
        say(f"stages on {stage_minutes:g} min")
        stages = pipeline_stages(archives[stage_minutes], workdir, analyzer)
        say("decode-only floor")
        floor = decode_floor(path)
        say(f"naive reference on {naive_minutes:g} min")
        naive = naive_reference(path, naive_minutes, analyzer)
        say(f"unchanged re-run of {source}")
        rerun = unchanged_rerun(source, workdir, device, analyzer)
        served = run_service_bench(workdir, device, say=say) if service else None
    return BenchResult(
        machine(), stage_minutes, stages, floor, naive_minutes, naive, runs, str(analyzer.device), str(source), rerun,
        served, vad_run, diarized,
    )  # fmt: skip
