"""Prefect's API for `ser-pipeline run`: the configured server (PREFECT_API_URL, from the
environment or the Prefect profile), else a temporary local one for the command's duration.

Prefect would start a temporary server by itself at the first flow call and then wait 6-12 s
for it. Started here instead, as `prefect server start` (API only: no UI, no background
services) before torch and the models load, it comes up while they do.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from ser_pipeline.files import exclusive_lock
from ser_pipeline.local_servers import ServerDidNotStart, free_port, stop, wait_until_healthy

STARTUP_TIMEOUT_S = 180.0


class PrefectServerError(RuntimeError):
    pass


def _die_with_parent(parent: int) -> Callable[[], None] | None:
    """For the child, before it runs: on Linux, ask the kernel for SIGTERM when this process
    dies, however it dies (kill -9 included), so no server outlives its run."""
    if not sys.platform.startswith("linux"):
        return None

    def arrange() -> None:
        import ctypes
        import signal

        pr_set_pdeathsig = 1
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)
        if os.getppid() != parent:  # the parent died before the request was in place
            os._exit(1)

    return arrange


class TemporaryServer:
    """`prefect server start` on a free loopback port; `wait_ready` before use, `stop` after.
    Without `services` (the scheduler among them) it is an API only, all a run needs."""

    def __init__(self, services: bool = False) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/api"
        self._log = tempfile.TemporaryFile()
        prefect = Path(sys.executable).with_name("prefect")
        command = [
            str(prefect) if prefect.exists() else "prefect",
            "server", "start", "--host", "127.0.0.1", "--port", str(self.port),
            *([] if services else ["--no-services"]), "--no-ui", "--analytics-off",
        ]  # fmt: skip
        # Registering Prefect's block types again on every start costs a second; a long-lived
        # `prefect server start` on the same database registers them.
        env = {"PREFECT_API_BLOCKS_REGISTER_ON_START": "false", **os.environ}
        self.process = subprocess.Popen(
            command,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            preexec_fn=_die_with_parent(os.getpid()),
        )

    def output(self) -> str:
        """The end of what the server printed."""
        self._log.seek(0)
        return self._log.read().decode(errors="replace")[-2000:]

    def wait_ready(self, timeout_s: float = STARTUP_TIMEOUT_S) -> None:
        try:
            wait_until_healthy(
                self.process, f"{self.url}/health", timeout_s, "the temporary Prefect server", self.output
            )
        except ServerDidNotStart as error:
            self.stop()
            raise PrefectServerError(str(error)) from None

    def stop(self) -> None:
        stop(self.process)
        if not self._log.closed:
            self._log.close()


@contextmanager
def prefect_api(load: Callable[[], object] = lambda: None) -> Iterator[str]:
    """Yields the API URL the flow will use. Without a configured server, a temporary one
    starts first and `load()` (imports, models) runs while it comes up; it is stopped on exit.

    Whether a server is configured (environment, or the Prefect profile) only Prefect's settings
    can tell, and importing them takes 2 s: so unless PREFECT_API_URL is in the environment, the
    temporary server is started before that import, and stopped at once if a profile names one.
    """
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")  # no telemetry from offline machines
    configured = os.environ.get("PREFECT_API_URL")
    if not configured:
        # Two servers starting at once on a new database would both migrate it (and one fails):
        # runs started together take turns until their server answers.
        home = Path(os.environ.get("PREFECT_HOME", "~/.prefect")).expanduser()
        home.mkdir(parents=True, exist_ok=True)
        with exclusive_lock(home / "ser-pipeline-server.lock"):
            server = TemporaryServer()
            try:
                from prefect.settings import PREFECT_API_URL

                configured = PREFECT_API_URL.value()
                if configured:
                    server.stop()
                else:
                    load()
                    server.wait_ready()
            except BaseException:
                server.stop()
                raise
    if configured:
        load()
        yield configured
        return
    from prefect.settings import temporary_settings

    try:
        with temporary_settings(updates={PREFECT_API_URL: server.url}):
            try:
                yield server.url
            finally:
                send_pending_logs_and_events()
    finally:
        server.stop()


def send_pending_logs_and_events() -> None:
    """Prefect ships logs and events from background workers that drain at interpreter exit,
    after this server would be gone: drain them while it still answers."""
    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker

    for worker in (APILogWorker, EventsWorker):
        worker.drain_all(timeout=10, at_exit=False)
