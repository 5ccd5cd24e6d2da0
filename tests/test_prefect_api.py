"""Which Prefect API `run` uses: the configured one, else a temporary server of its own."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

pytestmark = pytest.mark.slow

PROBE = textwrap.dedent(
    """
    import httpx, subprocess
    from ser_pipeline.prefect_api import prefect_api
    started = []
    original = subprocess.Popen.__init__
    def spy(self, *args, **kwargs):
        started.append(self)
        original(self, *args, **kwargs)
    subprocess.Popen.__init__ = spy
    with prefect_api() as url:
        healthy = httpx.get(url + "/health", timeout=5).status_code == 200 if not url.endswith(":9/api") else None
        print(url, healthy, len(started))
    print("left running", sum(p.poll() is None for p in started))
    """
)


def _probe(tmp_path, **env) -> list[str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    environment |= {"PREFECT_HOME": str(tmp_path / "home"), **env}
    done = subprocess.run([sys.executable, "-c", PROBE], env=environment, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout.split()


def test_a_server_named_in_the_profile_is_used_and_the_early_temporary_one_stopped(tmp_path):
    profiles = tmp_path / "profiles.toml"
    profiles.write_text('active = "remote"\n\n[profiles.remote]\nPREFECT_API_URL = "http://127.0.0.1:9/api"\n')
    url, healthy, started, *rest = _probe(tmp_path, PREFECT_PROFILES_PATH=str(profiles))
    assert (url, healthy, started) == ("http://127.0.0.1:9/api", "None", "1")  # started early, then stopped
    assert rest == ["left", "running", "0"]


def test_without_a_configured_server_a_temporary_one_answers_and_is_stopped_after(tmp_path):
    url, healthy, started, *rest = _probe(tmp_path)
    assert url.startswith("http://127.0.0.1:") and healthy == "True" and started == "1"
    assert rest == ["left", "running", "0"]


def test_a_server_in_the_environment_is_used_without_starting_one(tmp_path):
    url, healthy, started, *rest = _probe(tmp_path, PREFECT_API_URL="http://127.0.0.1:9/api")
    assert (url, started) == ("http://127.0.0.1:9/api", "0")


@pytest.mark.parametrize("signal_name", ["SIGKILL", "SIGTERM"])
def test_the_temporary_server_dies_with_the_process_that_started_it(signal_name, tmp_path):
    import signal
    import time

    code = (
        "from ser_pipeline.prefect_api import TemporaryServer; server = TemporaryServer(); server.wait_ready();"
        " print(server.process.pid, flush=True); import time; time.sleep(600)"
    )
    env = {**os.environ, "PREFECT_HOME": str(tmp_path)}
    parent = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, env=env)
    server = int(parent.stdout.readline())
    os.kill(server, 0)  # running
    parent.send_signal(getattr(signal, signal_name))
    parent.wait(timeout=30)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            os.kill(server, 0)
        except ProcessLookupError:
            return
        if open(f"/proc/{server}/stat").read().split()[2] == "Z":  # exited, not yet reaped
            return
        time.sleep(0.2)
    os.kill(server, signal.SIGKILL)
    pytest.fail(f"the server (pid {server}) outlived its parent's {signal_name}")
