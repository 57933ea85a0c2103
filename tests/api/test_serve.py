"""``connector serve`` as a real process on 127.0.0.1, and the in-process server runner."""

from __future__ import annotations

import os
import selectors
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml

from connector.api import ApiServer, create_api
from mapping.errors import ConfigError
from tests.api.helpers import AUTH, TOKEN
from tests.support.world import World, base_config

ROOT = Path(__file__).resolve().parents[2]


def write_config(world: World, **api: object) -> Path:
    data = base_config(world.crm, world.tmp, api={"tokens": ["${CONNECTOR_API_TOKEN}"], **api})
    path = world.tmp / "config.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return path


def start(config: Path, *extra: str, command: str = "serve") -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "CONNECTOR_API_TOKEN": TOKEN}
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "connector",
            "--config",
            str(config),
            "--lang",
            "en",
            command,
            *extra,
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def first_line(process: subprocess.Popen[str], timeout: float = 20.0) -> str:
    assert process.stdout is not None
    selector = selectors.DefaultSelector()
    selector.register(process.stdout, selectors.EVENT_READ)
    try:
        if not selector.select(timeout):
            raise AssertionError("the server printed nothing in time")
        return process.stdout.readline().strip()
    finally:
        selector.close()


@pytest.fixture
def served(api_world: World) -> Iterator[tuple[subprocess.Popen[str], str]]:
    process = start(write_config(api_world), "--listen", "127.0.0.1:0")
    try:
        line = first_line(process)
        assert line.startswith("HTTP API and invitation dialog at http://127.0.0.1:"), line
        yield process, line.split(" at ")[1].split(" ")[0]
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT])
def test_serve_answers_and_stops_gracefully_on_a_signal(
    served: tuple[subprocess.Popen[str], str], api_world: World, stop_signal: int
) -> None:
    process, url = served
    with httpx.Client(base_url=url, timeout=10) as http:
        assert http.get("/healthz").json() == {"status": "ok"}
        assert http.get("/readyz").status_code == 401
        assert http.get("/readyz", headers=AUTH).json()["status"] == "ready"
        sent = http.post(
            f"/activities/{api_world.ex.meeting}/invitation",
            json={"user": "Supervisor"},
            headers=AUTH,
        )
    assert sent.status_code == 200 and sent.json()["status"] == "sent"
    assert len(list(api_world.outbox.glob("*.eml"))) == 1
    process.send_signal(stop_signal)
    out, err = process.communicate(timeout=20)
    assert process.returncode == 0, err
    assert out.strip().endswith("Stopped.")
    assert TOKEN not in out + err


def test_serve_refuses_to_start_without_tokens(api_world: World) -> None:
    config = write_config(api_world)
    data = yaml.safe_load(config.read_text())
    data["api"]["tokens"] = []
    config.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    process = start(config, "--listen", "127.0.0.1:0")
    _out, err = process.communicate(timeout=30)
    assert process.returncode == 2
    assert "api.tokens: at least one token is needed" in err


def test_serve_reports_a_busy_port(api_world: World) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        process = start(write_config(api_world), "--listen", f"127.0.0.1:{port}")
        _out, err = process.communicate(timeout=30)
    assert process.returncode == 2
    assert f"api.listen: cannot listen on 127.0.0.1:{port}" in err


def test_the_runner_starts_and_stops_from_another_thread(api_world: World) -> None:
    server = ApiServer(create_api(api_world.app), "127.0.0.1:0")
    server.start()
    try:
        assert server.port > 0 and server.alive
        assert httpx.get(f"{server.base_url}/healthz", timeout=5).status_code == 200
        stopper = threading.Thread(target=server.stop)
        started = time.monotonic()
        stopper.start()
        stopper.join(20)
        assert not stopper.is_alive() and not server.alive
        assert time.monotonic() - started < 10
    finally:
        server.stop()
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://127.0.0.1:{server.port}/healthz", timeout=2)


def test_the_runner_lets_a_request_in_flight_finish(api_world: World) -> None:
    """A send that is running when the stop comes still gets its answer."""
    release = threading.Event()
    inner_send = api_world.transport.inner.send

    def slow_send(envelope):  # type: ignore[no-untyped-def]
        release.wait(10)
        return inner_send(envelope)

    api_world.transport.inner.send = slow_send  # type: ignore[method-assign]
    server = ApiServer(create_api(api_world.app), "127.0.0.1:0")
    server.start()
    answers: list[httpx.Response] = []

    def press_the_button() -> None:
        answers.append(
            httpx.post(
                f"{server.base_url}/activities/{api_world.ex.meeting}/invitation",
                json={"user": "Supervisor"},
                headers=AUTH,
                timeout=20,
            )
        )

    caller = threading.Thread(target=press_the_button)
    caller.start()
    deadline = time.monotonic() + 10
    while not api_world.app.store.messages() and time.monotonic() < deadline:
        time.sleep(0.02)
    stopper = threading.Thread(target=server.stop)
    stopper.start()
    time.sleep(0.3)
    release.set()
    caller.join(20)
    stopper.join(20)
    assert [a.status_code for a in answers] == [200]
    assert answers[0].json()["status"] == "sent"


def test_the_runner_reports_a_busy_port(api_world: World) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        server = ApiServer(create_api(api_world.app), f"127.0.0.1:{busy.getsockname()[1]}")
        with pytest.raises(ConfigError):
            server.start()


class Lines:
    """The lines a child process writes to a stream, collected by a thread as they come."""

    def __init__(self, stream: object) -> None:
        self.lines: list[str] = []
        self._thread = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self._thread.start()

    def _read(self, stream: object) -> None:
        for line in stream:  # type: ignore[attr-defined]
            self.lines.append(line)

    def wait_for(self, text: str, timeout: float = 30.0) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in list(self.lines):
                if text in line:
                    return line
            time.sleep(0.05)
        raise AssertionError(f"no line with {text!r} in time: {self.lines[-5:]}")

    def text(self) -> str:
        self._thread.join(10)
        return "".join(self.lines)


def test_run_serves_the_api_beside_the_scheduler(api_world: World) -> None:
    config = write_config(
        api_world,
        listen="127.0.0.1:0",
    )
    data = yaml.safe_load(config.read_text())
    data["sync"] = {"interval_seconds": 0.5}
    data["delivery"] = {**data["delivery"], "poll_seconds": 0.5}
    data["logging"] = {"level": "INFO", "format": "kv"}
    config.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    process = start(config, command="run")
    log = Lines(process.stderr)
    try:
        line = log.wait_for("event=api_listening url=")
        url = line.split("url=")[1].split()[0]
        log.wait_for("event=service_started")
        with httpx.Client(base_url=url, timeout=20) as http:
            assert http.get("/healthz").status_code == 200
            sent = http.post(
                f"/activities/{api_world.ex.meeting}/invitation",
                json={"user": "Supervisor"},
                headers=AUTH,
            )
        assert sent.status_code == 200 and sent.json()["status"] == "sent"
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(30)
    text = log.text()
    assert process.returncode == 0, text
    assert "event=api_stopped clean=True" in text and "event=service_stopped" in text
    assert TOKEN not in text
    assert len(list(api_world.outbox.glob("*.eml"))) == 1


def test_run_refuses_an_enabled_api_without_tokens(api_world: World) -> None:
    config = write_config(api_world)
    data = yaml.safe_load(config.read_text())
    data["api"]["tokens"] = []
    config.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    process = start(config, command="run")
    _out, err = process.communicate(timeout=30)
    assert process.returncode == 2
    assert "api.tokens: at least one token is needed" in err
