"""``poolwarden serve --http``: the API answers beside the routing agent in one real
process (its own loop, real sockets on loopback), SIGTERM stops both cleanly, and a
non-loopback or taken address is refused before anything starts."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.http.conftest import EXAMPLE

POOLWARDEN = [str(Path(sys.executable).parent / "poolwarden")]  # the installed entry point
WAIT = 60.0  # seconds to wait for the server to come up (a bound, not an assertion)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    target = tmp_path / "poolwarden.toml"
    shutil.copy(EXAMPLE, target)
    return target


def cli(config_file: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*POOLWARDEN, *args, "-c", str(config_file)], capture_output=True,
                          text=True, timeout=120, check=False, env=os.environ.copy())


@pytest.fixture
def served(config_file: Path) -> Iterator[tuple[subprocess.Popen[str], int, int, str]]:
    made = cli(config_file, "token", "create", "--name", "t", "--role", "operator-read",
               "--json")
    assert made.returncode == 0, made.stderr
    token = json.loads(made.stdout)["token"]
    http_port, policy_port = free_port(), free_port()
    proc = subprocess.Popen([*POOLWARDEN, "serve", "-c", str(config_file), "--policy",
                             f"tcp:127.0.0.1:{policy_port}", "--http",
                             f"127.0.0.1:{http_port}"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + WAIT
    while True:
        try:
            httpx.get(f"http://127.0.0.1:{http_port}/api/v1/openapi.json", timeout=2)
            break
        except httpx.TransportError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                pytest.fail(f"serve did not come up: {proc.communicate()[1][-2000:]}")
            time.sleep(0.2)
    try:
        yield proc, http_port, policy_port, token
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


def policy_request(port: int) -> str:
    request = ("request=smtpd_access_policy\nprotocol_state=RCPT\nprotocol_name=ESMTP\n"
               "sasl_username=bigretail\nsender=a@bigretail.example\n"
               "recipient=ann@gmail.com\ninstance=1.2.3\n\n")
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        conn.sendall(request.encode())
        reply = b""
        while not reply.endswith(b"\n\n"):
            chunk = conn.recv(4096)
            if not chunk:
                break
            reply += chunk
    return reply.decode()


def test_api_and_agent_answer_side_by_side_and_stop_on_sigterm(served) -> None:
    proc, http_port, policy_port, token = served
    base = f"http://127.0.0.1:{http_port}/api/v1"
    tenants = httpx.get(f"{base}/tenants", headers={"Authorization": f"Bearer {token}"},
                        timeout=10)
    assert tenants.status_code == 200
    assert "bigretail" in {t["name"] for t in tenants.json()}
    assert httpx.get(f"{base}/tenants", timeout=10).status_code == 401
    assert policy_request(policy_port).startswith("action=FILTER")
    metrics = httpx.get(f"http://127.0.0.1:{http_port}/metrics", timeout=10)
    assert metrics.status_code in (200, 401, 403, 404)  # served by the metrics part if present
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err[-2000:]
    assert "stopped" in err


@pytest.mark.parametrize(("address", "message"), [
    ("0.0.0.0:{port}", "not a loopback address"),
    ("localhost-ish:{port}", "not an IP address"),
    ("127.0.0.1:99999", "expected HOST:PORT"),
])
def test_a_bad_http_address_fails_before_starting(config_file: Path, address: str,
                                                  message: str) -> None:
    done = cli(config_file, "serve", "--policy", f"tcp:127.0.0.1:{free_port()}", "--http",
               address.format(port=free_port()))
    assert done.returncode == 2
    assert message in done.stderr


def test_a_taken_port_fails_with_a_clear_message(config_file: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        done = cli(config_file, "serve", "--policy", f"tcp:127.0.0.1:{free_port()}",
                   "--http", f"127.0.0.1:{port}")
    assert done.returncode == 2
    assert f"cannot listen on 127.0.0.1:{port}" in done.stderr


def test_a_follow_path_that_does_not_exist_is_refused_naming_where_it_was_looked_for(
        config_file: Path) -> None:
    done = cli(config_file, "serve", "--policy", f"tcp:127.0.0.1:{free_port()}", "--no-http",
               "--follow", "logs/mail.log")
    assert done.returncode == 2, done.stderr
    expected = config_file.parent / "logs" / "mail.log"
    assert f"followed log {expected} does not exist" in done.stderr
    assert f"resolved against {config_file.parent}" in done.stderr
    assert "--wait-for-log" in done.stderr


def test_wait_for_log_starts_warns_and_picks_the_file_up_once_it_exists(
        config_file: Path) -> None:
    log_file = config_file.parent / "mail.log"
    proc = subprocess.Popen([*POOLWARDEN, "serve", "-c", str(config_file), "--policy",
                             f"tcp:127.0.0.1:{free_port()}", "--no-http", "--follow",
                             "mail.log", "--wait-for-log"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(4)
        log_file.write_text("")
        time.sleep(2)
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    # the start names every path it resolved
    assert f"configuration {config_file}" in err and f"following {log_file} (missing)" in err
    assert f"waiting for followed log(s) that do not exist: {log_file}" in err
    assert f"followed log {log_file} exists now" in err
