"""The HTTP service under load (`ser-pipeline bench`): a real `ser-pipeline api` process on a free
loopback port, 5-second clips posted to `/v1/analyze` by one client, then by eight at once, then
a thousand more while the server's resident memory is watched."""

from __future__ import annotations

import concurrent.futures
import io
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from ser_pipeline.audio import SAMPLE_RATE
from ser_pipeline.local_servers import free_port, stop, wait_until_healthy

CLIP_S = 5.0


@dataclass(frozen=True)
class ServiceBench:
    one_client_ms: list[float]  # latency of each request, one client
    concurrent_ms: list[float]  # 8 clients
    concurrent_seconds: float  # wall time of the 8 clients' requests
    errors: int  # non-200 answers under load
    rss_after_warmup_mb: float
    rss_after_mb: float
    memory_requests: int

    @property
    def one_client_rps(self) -> float:
        return 1000 / float(np.mean(self.one_client_ms))

    @property
    def concurrent_rps(self) -> float:
        return len(self.concurrent_ms) / self.concurrent_seconds

    def markdown_lines(self) -> list[str]:
        p = np.percentile
        one, many = self.one_client_ms, self.concurrent_ms
        return [
            "",
            "## The HTTP service: `ser-pipeline api` on loopback, 5 s clips, models warm",
            "",
            "| load | requests | p50 | p95 | requests/s | errors |",
            "|---|---|---|---|---|---|",
            f"| one client | {len(one)} | {p(one, 50):.0f} ms | {p(one, 95):.0f} ms | {self.one_client_rps:.1f} | 0 |",
            f"| 8 clients at once | {len(many)} | {p(many, 50):.0f} ms | {p(many, 95):.0f} ms | "
            f"{self.concurrent_rps:.1f} | {self.errors} |",
            "",
            f"Server RSS over {self.memory_requests} more requests: {self.rss_after_warmup_mb:.0f} MB after warm-up, "
            f"{self.rss_after_mb:.0f} MB after (growth {self.rss_after_mb - self.rss_after_warmup_mb:+.0f} MB).",
            "Requests arriving within 10 ms of each other are scored in one batch (`--batch-window-ms`).",
            "",
        ]


def clip_wav(seconds: float = CLIP_S, seed: int = 0) -> bytes:
    """A voiced-sounding 16 kHz WAV clip (an amplitude-modulated tone with noise)."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    samples = 0.3 * np.sin(2 * np.pi * 180 * t) * (1 + np.sin(2 * np.pi * 3 * t)) + 0.01 * rng.standard_normal(len(t))
    buffer = io.BytesIO()
    sf.write(buffer, samples.astype(np.float32), SAMPLE_RATE, format="WAV")
    return buffer.getvalue()


def start_server(port: int, log: Path, *options: str) -> subprocess.Popen:
    """`ser-pipeline api` on 127.0.0.1:`port`, returned once /healthz answers."""
    command = [sys.executable, "-m", "ser_pipeline", "api", "--port", str(port), *options]
    server = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=log.open("a"))
    wait_until_healthy(
        server, f"http://127.0.0.1:{port}/healthz", 180, f"`{' '.join(command)}`", lambda: log.read_text()[-3000:]
    )
    return server


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def run_service_bench(workdir: Path, device: str = "auto", memory_requests: int = 1000, say=print) -> ServiceBench:
    import httpx

    port, data = free_port(), clip_wav()
    url = f"http://127.0.0.1:{port}/v1/analyze"
    headers = {"content-type": "audio/wav"}
    server = start_server(port, workdir / "api.log", "--device", device)
    try:

        def requests(count: int) -> list[tuple[float, int]]:
            out = []
            with httpx.Client(timeout=60) as client:
                for _ in range(count):
                    began = time.perf_counter()
                    status = client.post(url, content=data, headers=headers).status_code
                    out.append(((time.perf_counter() - began) * 1000, status))
            return out

        requests(10)  # warm-up
        say("service: one client")
        one = requests(50)
        say("service: 8 clients, 200 requests")
        began = time.perf_counter()
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            many = [r for batch in pool.map(requests, [25] * 8) for r in batch]
        concurrent_seconds = time.perf_counter() - began
        warm = _rss_mb(server.pid)
        say(f"service: {memory_requests} requests for memory")
        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            statuses = [s for batch in pool.map(requests, [memory_requests // 4] * 4) for _, s in batch]
        after = _rss_mb(server.pid)
    finally:
        stop(server)
    errors = sum(s != 200 for _, s in [*one, *many]) + sum(s != 200 for s in statuses)
    return ServiceBench(
        [ms for ms, _ in one], [ms for ms, _ in many], concurrent_seconds, errors, warm, after, memory_requests
    )
