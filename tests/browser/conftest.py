"""Real browser, real server: Debian's Chromium driven by Playwright against the app under
uvicorn on 127.0.0.1, over a seeded SQLite store; attacker pages served from other loopback
origins. Skips (saying why) only when /usr/bin/chromium is absent."""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import uvicorn
from playwright.sync_api import Browser, Page, sync_playwright

from poolwarden.http.app import create_app
from poolwarden.services.queries.context import NodeContext
from tests.http.web.support import context, seed
from tests.support.real_parts import REASON_PREFIX, missing

# Debian's Chromium, never a browser build downloaded by ``playwright install``
CHROMIUM = Path(os.environ.get("POOLWARDEN_CHROMIUM", "/usr/bin/chromium"))
NO_CHROMIUM = (f"{REASON_PREFIX}browser tests need Debian's chromium at {CHROMIUM} "
               "(scripts/setup.sh installs it)")

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "browser"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]


def free_port(host: str) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


@dataclass
class Dashboard:
    url: str
    ctx: NodeContext


@pytest.fixture(scope="session")
def template_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("browser-seed") / "template.db"
    seed(path)
    return path


@pytest.fixture
def dashboard(template_db: Path, tmp_path: Path) -> Iterator[Dashboard]:
    db = tmp_path / "store.db"
    shutil.copy(template_db, db)
    ctx = context(db)
    port = free_port("127.0.0.1")
    server = uvicorn.Server(uvicorn.Config(create_app(ctx), host="127.0.0.1", port=port,
                                           log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, name="dashboard", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    try:
        yield Dashboard(f"http://127.0.0.1:{port}", ctx)
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        ctx.store.close()


class Attacker:
    """A web server on another loopback origin serving fixed pages (forged forms)."""

    def __init__(self, host: str, pages: dict[str, str]) -> None:
        pages_ = pages

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = pages_.get(self.path.split("?")[0])
                if body is None:
                    self.send_error(404)
                    return
                data = body.encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer((host, 0), Handler)
        self.url = f"http://{host}:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


# module scope, not session: sync_playwright runs an event loop in this thread until
# it exits, and every asyncio.run() in later test modules would fail while it lives
@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        missing(NO_CHROMIUM[len(REASON_PREFIX):])
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    try:
        yield context.new_page()
    finally:
        context.close()


def shot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)
