"""`ser-pipeline api`: the pipeline's models behind HTTP (FastAPI under uvicorn).

The app holds one `Analyzer`, loaded at start. A request's audio (multipart or the raw body) is
checked against the limits, decoded as `run` decodes files, segmented (`none`: the whole clip,
as `predict` reads a file; `window`; `vad`), then scored by a `Batcher`: requests arriving
within a few milliseconds of each other are scored together (the Whisper encoder in one batch),
so the answers are those of `predict` and throughput grows with load.

Every error is JSON, `{"error": "..."}`, with a 4xx status for anything wrong with the request
(400 empty or bad options, 401 token, 413 too large or too long, 415 undecodable) and 503 when
more requests wait than the server takes; a 500 means a fault of the server itself.
"""

from __future__ import annotations

import asyncio
import hmac
import os
import tempfile
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

import numpy as np
from fastapi import Depends, FastAPI, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from ser_pipeline.audio import SAMPLE_RATE, AudioError, decode
from ser_pipeline.request_batching import Batcher, Busy
from ser_pipeline.schema import SCORE_COLUMNS
from ser_pipeline.segmentation import Segment, vad_segments, window_segments

TOKEN_VARIABLE = "SER_API_TOKEN"
SETTINGS_VARIABLE = "SER_API_SETTINGS"  # the settings as JSON, for worker processes
_SUFFIXES = {
    "audio/mpeg": ".mp3", "audio/mp3": ".mp3", "audio/wav": ".wav", "audio/x-wav": ".wav", "audio/wave": ".wav",
    "audio/vnd.wave": ".wav", "audio/flac": ".flac", "audio/x-flac": ".flac", "audio/ogg": ".ogg",
    "audio/opus": ".ogg", "audio/mp4": ".m4a", "audio/x-m4a": ".m4a", "audio/aac": ".aac", "audio/webm": ".webm",
}  # fmt: skip


class ServiceSettings(BaseModel):
    """Everything `ser-pipeline api` is asked to do, in one object."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535)
    workers: int = Field(1, ge=1)
    device: str = "auto"
    emotion_model: str | None = None
    dims_model: str | None = None
    laughter_model: str | None = None
    episode_reading: bool = True  # vad utterances of a clip also read against the whole clip
    token: str | None = None  # bearer token required on /v1/ (None: open)
    max_upload_mb: float = Field(50.0, gt=0)
    max_seconds: float = Field(600.0, gt=0)  # longest audio accepted
    batch_window_ms: float = Field(10.0, ge=0)
    max_batch: int = Field(16, ge=1)
    max_waiting: int = Field(64, ge=1)  # requests waiting beyond this get 503


class SegmentationChoice(str, Enum):
    none = "none"
    window = "window"
    vad = "vad"


@dataclass
class AnalyzeOptions:
    """The query options of /v1/analyze and /v1/analyze/batch."""

    segmentation: SegmentationChoice = SegmentationChoice.none
    window: float = Query(3.0, gt=0, le=60, description="Window length, seconds (segmentation=window).")
    hop: float | None = Query(None, gt=0, le=60, description="Window hop, seconds (default: the window).")
    emotion_model: str | None = None  # must be the one served (a 400 says which that is)
    dims_model: str | None = None
    laughter_model: str | None = None


class RequestError(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status, self.message = status, message


@dataclass(frozen=True)
class Clip:
    samples: np.ndarray
    segments: list[Segment]

    @property
    def duration_s(self) -> float:
        return len(self.samples) / SAMPLE_RATE


def create_app(settings: ServiceSettings, analyzer=None) -> FastAPI:
    """The app; `analyzer` (loaded from `settings` when None) is shared by every request."""
    if analyzer is None:
        from ser_pipeline.inference import Analyzer

        analyzer = Analyzer(
            device=settings.device,
            emotion_model=settings.emotion_model,
            dims_model=settings.dims_model,
            laughter_model=settings.laughter_model,
            episode_reading=settings.episode_reading,
        )
    from ser_pipeline import __version__
    from ser_pipeline.registry import Registry

    models = analyzer.models.ids
    registry_document = Registry.load().document()
    batcher = Batcher(
        lambda clips: analyzer.analyze_clips([(c.samples, c.segments) for c in clips]),
        settings.batch_window_ms / 1000,
        settings.max_batch,
        settings.max_waiting,
    )
    token = settings.token or os.environ.get(TOKEN_VARIABLE) or None
    app = FastAPI(
        title="ser-pipeline",
        version=__version__,
        description="Emotion, valence/arousal/dominance and laughter in speech audio.",
    )
    app.state.batcher, app.state.analyzer = batcher, analyzer
    app.router.on_shutdown.append(batcher.close)

    @app.exception_handler(RequestError)
    async def request_error(request: Request, error: RequestError) -> JSONResponse:
        return JSONResponse({"error": error.message}, status_code=error.status)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, error: RequestValidationError) -> JSONResponse:
        problem = error.errors()[0]
        where = ".".join(str(part) for part in problem.get("loc", ())[1:]) or "request"
        return JSONResponse({"error": f"{where}: {problem.get('msg', 'invalid')}"}, status_code=400)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, error: StarletteHTTPException) -> JSONResponse:
        return JSONResponse({"error": str(error.detail)}, status_code=error.status_code)

    @app.middleware("http")
    async def require_token(request: Request, call_next):
        if token and request.url.path.startswith("/v1/"):
            given = request.headers.get("authorization", "")
            if not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
                return JSONResponse(
                    {"error": "a bearer token is required: Authorization: Bearer <token>"},
                    status_code=401,
                    headers={"WWW-Authenticate": "Bearer"},
                )
        return await call_next(request)

    @app.get("/healthz")
    async def healthz() -> dict:
        return {"status": "ok", "version": __version__, "models": models}

    @app.get("/v1/models")
    async def list_models() -> dict:
        return {"serving": models, **registry_document}

    async def answer(uploads: list[tuple[bytes, str]], options: AnalyzeOptions) -> list[dict]:
        for task, asked in (("emotion", options.emotion_model), ("dims", options.dims_model),
                            ("laughter", options.laughter_model)):  # fmt: skip
            serving = models[task].split("@")[0]
            if asked and asked != serving:
                raise RequestError(
                    400, f"this server serves {task} model {serving}; start one with --{task}-model {asked} for that"
                )
        clips = [await run_in_threadpool(_clip, data, suffix, settings, options) for data, suffix in uploads]
        try:  # all queued at once, so that a request's files share a batch
            results = await asyncio.gather(*[asyncio.ensure_future(batcher.submit(clip)) for clip in clips])
        except Busy as error:
            raise RequestError(503, f"the server is busy ({error}); try again shortly") from None
        return [
            _answer(clip, scores, models, options.segmentation.value)
            for clip, scores in zip(clips, results, strict=True)
        ]

    @app.post("/v1/analyze")
    async def analyze(request: Request, options: AnalyzeOptions = Depends()) -> dict:
        """One audio file (multipart field `file`, or the raw body with its content type):
        its duration, the models used, one object per segment (the `segments` table's columns)
        and the laughter events."""
        return (await answer(await _uploads(request, settings, many=False), options))[0]

    @app.post("/v1/analyze/batch")
    async def analyze_batch(request: Request, options: AnalyzeOptions = Depends()) -> dict:
        """Several audio files (multipart, any field names), scored together; one answer each, in order."""
        return {"results": await answer(await _uploads(request, settings, many=True), options)}

    return app


def _suffix(filename: str | None, content_type: str | None) -> str:
    suffix = Path(filename or "").suffix.lower()
    if suffix and suffix[1:].isalnum():
        return suffix
    return _SUFFIXES.get((content_type or "").split(";")[0].strip().lower(), ".audio")  # PyAV sniffs the rest


async def _uploads(request: Request, settings: ServiceSettings, many: bool) -> list[tuple[bytes, str]]:
    """(bytes, file suffix) of each uploaded file, each within the size limit."""
    limit = int(settings.max_upload_mb * 1024 * 1024)
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit * (8 if many else 1) + 64 * 1024:
        raise RequestError(413, f"the upload is larger than {settings.max_upload_mb:g} MB")
    content_type = request.headers.get("content-type", "")
    if content_type.startswith("multipart/form-data"):
        try:
            form = await request.form(max_files=8 if many else 1, max_part_size=limit)
        except Exception as error:  # noqa: BLE001 - the multipart parser's own errors: the client's fault
            raise RequestError(400, f"unreadable multipart body: {error}") from None
        files = [value for _, value in form.multi_items() if hasattr(value, "read")]
        if not many:
            files = [form["file"]] if "file" in form and hasattr(form["file"], "read") else files[:1]
        uploads = []
        for upload in files:
            data = await upload.read(limit + 1)
            if len(data) > limit:
                raise RequestError(413, f"{upload.filename or 'a file'} is larger than {settings.max_upload_mb:g} MB")
            uploads.append((data, _suffix(upload.filename, upload.content_type)))
        if not uploads:
            raise RequestError(400, "no file in the multipart body (send it as the field `file`)")
        return uploads
    if many:
        raise RequestError(400, "send several files as multipart/form-data")
    data = bytearray()
    async for chunk in request.stream():
        data += chunk
        if len(data) > limit:
            raise RequestError(413, f"the upload is larger than {settings.max_upload_mb:g} MB")
    return [(bytes(data), _suffix(None, content_type))]


def _clip(data: bytes, suffix: str, settings: ServiceSettings, options: AnalyzeOptions) -> Clip:
    """Decoded and segmented, or a RequestError saying what is wrong with it."""
    if not data:
        raise RequestError(400, "the upload is empty")
    with tempfile.TemporaryDirectory(prefix="ser-api-") as folder:
        path = Path(folder) / f"upload{suffix}"
        path.write_bytes(data)
        try:
            samples = decode(path).samples
        except AudioError as error:
            raise RequestError(415, f"cannot decode the upload as audio: {error}") from None
    seconds = len(samples) / SAMPLE_RATE
    if seconds > settings.max_seconds:
        raise RequestError(413, f"the audio lasts {seconds:.0f} s, longer than the {settings.max_seconds:g} s allowed")
    if len(samples) < SAMPLE_RATE // 10:
        raise RequestError(400, f"the audio lasts {seconds:.3f} s; at least 0.1 s is needed")
    window, hop = options.window, options.hop
    if options.segmentation is SegmentationChoice.window:
        if hop is not None and hop > window:
            raise RequestError(400, f"hop {hop:g} s is longer than the window {window:g} s")
        segments = window_segments(seconds, window, hop)
    elif options.segmentation is SegmentationChoice.vad:
        segments = vad_segments(samples)
    else:
        segments = [Segment(0, "window", 0.0, seconds)]
    return Clip(samples, segments)


def _answer(clip: Clip, scores, models: dict[str, str], segmentation: str) -> dict:
    rows = []
    for index, segment in enumerate(clip.segments):
        row = {
            "segment_id": segment.segment_id,
            "kind": segment.kind,
            "start_s": segment.start_s,
            "end_s": segment.end_s,
        }
        for column in SCORE_COLUMNS:
            value = scores.columns[column][index]
            row[column] = value if isinstance(value, str) else float(value)
        rows.append(row)
    events = [
        {
            "start_s": float(e.start_s),
            "end_s": float(e.end_s),
            "duration_s": float(e.duration_s),
            "peak_prob": float(e.peak_prob),
            "mean_prob": float(e.mean_prob),
        }
        for e in scores.events
    ]
    return {
        "duration_s": clip.duration_s,
        "segmentation": segmentation,
        "models": models,
        "segments": rows,
        "laughter_events": events,
    }


def app_from_environment() -> FastAPI:
    """For uvicorn's worker processes (`--workers N`): the settings from SER_API_SETTINGS."""
    return create_app(ServiceSettings.model_validate_json(os.environ[SETTINGS_VARIABLE]))


def serve(settings: ServiceSettings) -> None:
    """Run the server until stopped (Ctrl-C)."""
    import uvicorn

    if settings.workers > 1:
        os.environ[SETTINGS_VARIABLE] = settings.model_dump_json()
        uvicorn.run(
            "ser_pipeline.service:app_from_environment",
            factory=True,
            host=settings.host,
            port=settings.port,
            workers=settings.workers,
            log_level="warning",
        )
        return
    app = create_app(settings)
    uvicorn.run(app, host=settings.host, port=settings.port, log_level="warning")
