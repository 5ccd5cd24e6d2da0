"""The HTTP service on a real uvicorn server on a loopback port: the same numbers as `predict`,
batching of requests that arrive together, limits and errors (JSON, 4xx, never 500 for bad
input), the token, and 503 when more requests wait than the server takes."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import threading
import time

import httpx
import numpy as np
import pytest

from conftest import write_audio
from ser_pipeline.clip_prediction import predict_files
from ser_pipeline.local_servers import free_port
from ser_pipeline.request_batching import Batcher, Busy
from ser_pipeline.schema import SCORE_COLUMNS
from ser_pipeline.service import ServiceSettings, create_app
from ser_pipeline.service_bench import clip_wav

NUMBERS = [c for c in SCORE_COLUMNS if c not in ("emotion", "sentiment")]


@contextlib.contextmanager
def running(analyzer, **settings):
    """A real uvicorn server for the app on a free loopback port; yields its base URL."""
    import uvicorn

    port = free_port()
    app = create_app(ServiceSettings(port=port, **settings), analyzer)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.started
    try:
        yield f"http://127.0.0.1:{port}", app
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@pytest.fixture(scope="module")
def service(analyzer):
    with running(analyzer, max_upload_mb=1.0, max_seconds=20.0) as (url, app):
        yield url, app


def _post(url: str, data: bytes, path: str = "/v1/analyze", **params) -> httpx.Response:
    return httpx.post(url + path, content=data, headers={"content-type": "audio/wav"}, params=params, timeout=60)


def test_health_models_and_docs(service):
    url, _ = service
    health = httpx.get(url + "/healthz").json()
    assert health["status"] == "ok" and health["models"]["emotion"] == "ser-whisper-head-v1"
    models = httpx.get(url + "/v1/models").json()
    assert models["serving"] == health["models"] and {m["id"] for m in models["models"]} >= {"ser-whisper-head-v1"}
    assert "/v1/analyze" in httpx.get(url + "/openapi.json").json()["paths"]
    assert httpx.get(url + "/docs").status_code == 200


def test_a_clip_gets_the_numbers_predict_gives_it(service, analyzer, tmp_path):
    url, _ = service
    data = clip_wav(4.0, seed=3)
    (tmp_path / "clip.wav").write_bytes(data)
    (expected,) = predict_files(analyzer, [tmp_path / "clip.wav"])
    raw = _post(url, data)
    assert raw.status_code == 200, raw.text
    answer = raw.json()
    (segment,) = answer["segments"]
    assert answer["duration_s"] == pytest.approx(4.0) and (segment["start_s"], segment["end_s"]) == (0.0, 4.0)
    assert segment["emotion"] == expected.scores["emotion"] and segment["sentiment"] == expected.scores["sentiment"]
    for column in NUMBERS:
        assert segment[column] == pytest.approx(float(expected.scores[column]), abs=1e-6), column
    as_form = httpx.post(url + "/v1/analyze", files={"file": ("clip.wav", data, "audio/wav")}, timeout=60).json()
    assert as_form["segments"] == answer["segments"]
    assert set(segment) == {"segment_id", "kind", "start_s", "end_s", *SCORE_COLUMNS}
    assert isinstance(answer["laughter_events"], list) and answer["models"]["laughter"].startswith("laughter-")


def test_windows_and_voice_activity(service):
    url, _ = service
    data = clip_wav(7.0)
    windows = _post(url, data, segmentation="window", window=2, hop=1).json()["segments"]
    assert [(s["start_s"], s["end_s"]) for s in windows] == [(i, min(i + 2, 7)) for i in range(6)]
    vad = _post(url, data, segmentation="vad").json()
    assert vad["segmentation"] == "vad" and all(s["kind"] == "vad" for s in vad["segments"])


def test_several_files_in_one_request_and_requests_together_are_batched(service):
    url, app = service
    clips = [clip_wav(3.0 + i, seed=i) for i in range(4)]
    alone = [_post(url, c).json()["segments"][0] for c in clips]
    files = [("f", (f"c{i}.wav", c, "audio/wav")) for i, c in enumerate(clips)]
    before = app.state.batcher.batches
    together = httpx.post(url + "/v1/analyze/batch", files=files, timeout=60).json()["results"]
    assert [r["duration_s"] for r in together] == pytest.approx([3.0, 4.0, 5.0, 6.0])
    assert app.state.batcher.batches - before == 1  # one request's files: one batch
    before = app.state.batcher.batches
    with concurrent.futures.ThreadPoolExecutor(len(clips) * 2) as pool:
        answers = list(pool.map(lambda c: _post(url, c), clips * 2))
    assert all(a.status_code == 200 for a in answers)
    assert app.state.batcher.batches - before < len(answers)  # some requests shared a batch
    for results in (together, [a.json() for a in answers[:4]], [a.json() for a in answers[4:]]):
        for single, result in zip(alone, results, strict=True):
            for column in NUMBERS:  # batched under bfloat16, the encoder rounds a little differently
                assert result["segments"][0][column] == pytest.approx(single[column], abs=0.005), column


@pytest.mark.parametrize(
    ("body", "params", "status", "says"),
    [
        (b"", {}, 400, "empty"),
        (b"not audio at all" * 10, {}, 415, "cannot decode"),
        ("long", {}, 413, "longer than the 20 s"),
        ("big", {}, 413, "larger than 1 MB"),
        ("clip", {"segmentation": "sentence"}, 400, "segmentation"),
        ("clip", {"segmentation": "window", "window": 1, "hop": 2}, 400, "hop 2 s is longer"),
        ("clip", {"window": -1}, 400, "window"),
        ("clip", {"emotion_model": "ser-crnn-v3"}, 400, "this server serves emotion model"),
        ("short", {}, 400, "at least 0.1 s"),
    ],
)
def test_bad_input_is_a_json_4xx(service, body, params, status, says):
    url, _ = service
    data = {
        "long": clip_wav(25.0),
        "big": clip_wav(40.0),  # 1.3 MB of WAV: refused before decoding
        "clip": clip_wav(2.0),
        "short": clip_wav(0.05),
    }.get(body, body)
    answer = _post(url, data, **params)
    assert answer.status_code == status and says in answer.json()["error"], answer.text


def test_a_multipart_body_without_a_file_and_a_batch_without_multipart_are_400(service):
    url, _ = service
    body = b'--b\r\nContent-Disposition: form-data; name="x"\r\n\r\n1\r\n--b--\r\n'
    answer = httpx.post(url + "/v1/analyze", content=body, headers={"content-type": "multipart/form-data; boundary=b"})
    assert answer.status_code == 400 and "no file" in answer.json()["error"]
    assert httpx.post(url + "/v1/analyze", data={"x": "1"}).status_code == 415  # a form is no audio
    assert "multipart" in _post(url, clip_wav(1.0), path="/v1/analyze/batch").json()["error"]


def test_the_token_guards_v1_but_not_health(analyzer):
    with running(analyzer, token="s3cret") as (url, _):
        assert httpx.get(url + "/healthz").status_code == 200
        refused = httpx.get(url + "/v1/models")
        assert refused.status_code == 401 and "bearer token" in refused.json()["error"]
        assert httpx.get(url + "/v1/models", headers={"authorization": "Bearer wrong"}).status_code == 401
        assert httpx.get(url + "/v1/models", headers={"authorization": "Bearer s3cret"}).status_code == 200


def test_requests_beyond_capacity_get_503_not_a_crash(analyzer):
    with running(analyzer, max_waiting=1, max_batch=1, batch_window_ms=0) as (url, _):
        data = clip_wav(6.0)
        with concurrent.futures.ThreadPoolExecutor(10) as pool:
            answers = list(pool.map(lambda _: _post(url, data), range(10)))
        statuses = [a.status_code for a in answers]
        assert set(statuses) <= {200, 503} and 503 in statuses and 200 in statuses
        assert all("busy" in a.json()["error"] for a in answers if a.status_code == 503)
        assert _post(url, data).status_code == 200  # and it goes on serving


def test_the_batcher_gives_each_job_its_own_result_or_error():
    def work(items):
        time.sleep(0.05)
        return [ValueError(f"bad {i}") if i < 0 else i * 10 for i in items]

    batcher = Batcher(work, window_s=0.02, max_batch=8, max_waiting=3)

    async def main():
        jobs = [asyncio.ensure_future(batcher.submit(i)) for i in (1, -2, 3)]
        return await asyncio.gather(*jobs, return_exceptions=True)

    one, two, three = asyncio.run(main())
    assert (one, three) == (10, 30) and isinstance(two, ValueError) and batcher.batches == 1

    async def flood():
        return await asyncio.gather(*[batcher.submit(i) for i in range(12)], return_exceptions=True)

    results = asyncio.run(flood())
    assert any(isinstance(r, Busy) for r in results) and 0 in results
    batcher.close()


@pytest.mark.slow
def test_the_command_serves_and_the_benchmark_measures_it(tmp_path):
    from ser_pipeline.service_bench import run_service_bench

    result = run_service_bench(tmp_path, "cpu", memory_requests=40, say=lambda m: None)
    assert result.errors == 0 and len(result.one_client_ms) == 50 and len(result.concurrent_ms) == 200
    assert result.concurrent_rps > 0 and "## The HTTP service" in "\n".join(result.markdown_lines())


def test_an_upload_is_decoded_as_run_decodes_files(service, tmp_path):
    """An MP3 (another container than WAV) through the raw body, typed by its content type."""
    url, _ = service
    path = write_audio(tmp_path / "c.mp3", np.sin(np.linspace(0, 3000, 48_000)).astype(np.float32) * 0.3, 16_000)
    answer = httpx.post(url + "/v1/analyze", content=path.read_bytes(), headers={"content-type": "audio/mpeg"})
    assert answer.status_code == 200 and answer.json()["duration_s"] == pytest.approx(3.0, abs=0.1)


def test_a_service_started_without_the_episode_reading_says_so():
    with running(None, device="cpu", episode_reading=False) as (url, _):
        serving = httpx.get(url + "/v1/models").json()["serving"]
    assert serving["emotion_reading"] == "alone"
