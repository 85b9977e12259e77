"""``import_logs``' per-content checkpoints: a content imported before is not parsed again
(renamed or gzipped, too), a grown file is parsed from where the last import stopped and
still attributes the messages open there, a file imported before keeps giving its open
messages to the next file of an import, and another content with the same first 64 KiB
is read whole.
"""

from __future__ import annotations

import gzip
import os
import time
from pathlib import Path
from typing import Any

import pytest

from poolwarden.adapters.sqlstore import SqlStore, open_store
from poolwarden.config.load import LoadedConfig, load_config_text
from poolwarden.services.ingest import ingestd
from poolwarden.services.ingest.log_import import IMPORT_ID_BYTES, import_logs
from tests.services.ingest.conftest import read_events
from tests.services.ingest.loggen import Log, config_toml, generate, observed


@pytest.fixture
def env(tmp_path: Path) -> Any:
    url = f"sqlite:///{tmp_path / 'pw.db'}"
    config = load_config_text(config_toml(url), file="pw.toml")
    store = open_store(url)
    yield config, store
    store.close()


def _log(store: SqlStore, seed: int = 21, messages: int = 600) -> Log:
    log = generate(seed, messages)
    store.add_decisions(log.decisions)  # one tenant is known from the decision log only
    return log


def _write(path: Path, lines: list[str], mtime: float | None = None) -> Path:
    path.write_text("".join(lines))
    if mtime is not None:
        os.utime(path, (mtime, mtime))
    return path


def _no_parsing(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> int:
        raise AssertionError("a content imported before was parsed again")

    monkeypatch.setattr(ingestd.Pipeline, "feed", refuse)


def test_a_second_import_parses_nothing_and_adds_nothing(
        env: tuple[LoadedConfig, SqlStore], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    config, store = env
    log = _log(store)
    path = _write(tmp_path / "mail.log", log.lines)
    first = import_logs(config, store, [path])
    assert first.metrics.events_stored > 0
    assert observed(read_events(store)) == log.truth()
    assert first.known_files == 0

    _no_parsing(monkeypatch)
    again = import_logs(config, store, [path], pipelined=True, store_process=True)
    m = again.metrics
    assert (m.events_stored, m.duplicates, m.lines_read, m.bytes_read, m.lines_replayed) \
        == (0, 0, 0, 0, 0)
    assert again.known_files == 1
    assert again.skipped_bytes == path.stat().st_size
    assert observed(read_events(store)) == log.truth()


def test_a_renamed_or_gzipped_copy_is_recognised(
        env: tuple[LoadedConfig, SqlStore], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    config, store = env
    log = _log(store)
    import_logs(config, store, [_write(tmp_path / "mail.log", log.lines)])
    rotated = _write(tmp_path / "mail.log.1", log.lines)
    packed = tmp_path / "mail.log.2.gz"
    with gzip.open(packed, "wt") as f:
        f.write("".join(log.lines))

    _no_parsing(monkeypatch)
    for copy in (rotated, packed):
        result = import_logs(config, store, [copy])
        assert (result.known_files, result.metrics.events_stored,
                result.metrics.lines_read) == (1, 0, 0), copy.name
    assert observed(read_events(store)) == log.truth()


def test_a_grown_file_adds_only_the_new_deliveries_with_their_context(
        env: tuple[LoadedConfig, SqlStore], tmp_path: Path) -> None:
    config, store = env
    log = _log(store)
    cut = len(log.lines) * 11 // 20  # in the middle of messages: some are open there
    path = _write(tmp_path / "mail.log", log.lines[:cut])
    first = import_logs(config, store, [path])
    stored_first = first.metrics.events_stored
    with path.open("a") as f:
        f.writelines(log.lines[cut:])

    grown = import_logs(config, store, [path])
    m = grown.metrics
    assert grown.known_files == 1
    assert m.lines_read == len(log.lines) - cut  # only the appended lines are new
    assert m.lines_replayed > 0  # the open messages' first lines, re-read, not stored
    assert m.duplicates == 0
    assert m.events_stored == sum(log.truth().values()) - stored_first
    # every tenant still right: the replay gave the open messages their SASL user,
    # sender and client
    assert observed(read_events(store)) == log.truth()


def test_a_file_imported_before_gives_its_open_messages_to_the_next(
        env: tuple[LoadedConfig, SqlStore], tmp_path: Path) -> None:
    config, store = env
    log = _log(store)
    half = len(log.lines) // 2
    now = time.time()  # the dates are placed by the files' mtimes: both recent
    older = _write(tmp_path / "mail.log.1", log.lines[:half], mtime=now - 60)
    import_logs(config, store, [older])
    newer = _write(tmp_path / "mail.log", log.lines[half:], mtime=now)

    both = import_logs(config, store, [newer, older])
    assert both.known_files == 1
    assert both.metrics.lines_read == len(log.lines) - half
    assert both.metrics.lines_replayed > 0
    assert both.metrics.duplicates == 0
    assert observed(read_events(store)) == log.truth()


def test_the_same_head_with_other_bytes_is_read_whole(
        env: tuple[LoadedConfig, SqlStore], tmp_path: Path) -> None:
    config, store = env
    log = _log(store)
    text = "".join(log.lines)
    assert len(text) > 2 * IMPORT_ID_BYTES
    import_logs(config, store, [_write(tmp_path / "mail.log", log.lines)])
    # the first 64 KiB and the length kept, everything after the head replaced
    head = text[:text.index("\n", IMPORT_ID_BYTES) + 1]
    other = generate(99, 600)
    body = "".join(other.lines)
    body = body[:len(text) - len(head)]
    body = body[:body.rindex("\n") + 1]
    changed = tmp_path / "other.log"
    changed.write_text(head + body)

    result = import_logs(config, store, [changed])
    assert result.known_files == 0
    assert result.metrics.lines_read == (head + body).count("\n")


def test_without_the_replay_the_open_messages_lose_their_tenant(
        env: tuple[LoadedConfig, SqlStore], tmp_path: Path) -> None:
    """The limit the replay exists for: past ``max_replay_bytes`` the lines before the
    offset are not re-read, and deliveries of messages open there lose their tenant."""
    config, store = env
    log = _log(store)
    cut = len(log.lines) * 11 // 20
    path = _write(tmp_path / "mail.log", log.lines[:cut])
    import_logs(config, store, [path], max_replay_bytes=0)
    with path.open("a") as f:
        f.writelines(log.lines[cut:])
    grown = import_logs(config, store, [path], max_replay_bytes=0)
    assert grown.metrics.lines_replayed == 0
    assert observed(read_events(store)) != log.truth()
