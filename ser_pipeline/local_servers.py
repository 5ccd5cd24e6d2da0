"""Child server processes on loopback (Prefect's temporary API, `ser-pipeline api` under the
benchmark): a free port, waiting until the server answers, stopping it."""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Callable


class ServerDidNotStart(RuntimeError):
    pass


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_until_healthy(
    process: subprocess.Popen, url: str, timeout_s: float, name: str, output: Callable[[], str]
) -> None:
    """Return once `url` answers 200; ServerDidNotStart (with `output()`, what the server printed)
    when `process` exits first or `timeout_s` passes (the process is then stopped)."""
    import httpx

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise ServerDidNotStart(f"{name} exited with code {process.returncode}:\n{output()}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    stop(process)
    raise ServerDidNotStart(f"{name} did not answer within {timeout_s:.0f} s")


def stop(process: subprocess.Popen) -> None:
    """SIGTERM, then SIGKILL after 10 s."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
