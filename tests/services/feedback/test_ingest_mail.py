"""``poolwarden ingest mail FILE|MAILDIR`` on a real SQLite store; I7 (b) idempotency."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from typer.testing import CliRunner

from poolwarden.adapters.sqlstore import open_store
from poolwarden.cli.ingest_cmds import ingest_app
from poolwarden.config.load import load_config
from tests.services.feedback.support import FEEDBACK_SECTION, SECRET, arf, dsn, load, return_path

runner = CliRunner()


def maildir(root: Path) -> Path:
    for sub in ("cur", "new", "tmp"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    return root


def ingest(config: Path, path: Path, *extra: str) -> dict[str, object]:
    result = runner.invoke(ingest_app, ["mail", str(path), "-c", str(config), "--json", *extra],
                           catch_exceptions=False)
    assert result.exit_code == 0, result.output
    summary: dict[str, object] = json.loads(result.stdout.splitlines()[-1])
    return summary


def store_state(config: Path) -> tuple[int, dict[str, int]]:
    store = open_store(load_config(config).store_url)
    try:
        return store.event_count(), store.feedback_counts()
    finally:
        store.close()


def test_the_same_dsn_delivered_twice_adds_nothing(tmp_path: Path) -> None:
    """I7 (b): the same DSN twice in a Maildir, then the whole Maildir again."""
    load(tmp_path)
    config = tmp_path / "poolwarden.toml"
    box = maildir(tmp_path / "Maildir")
    bounce = dsn(return_path(), message_id="<dsn-same@mx.gmail.example>")
    (box / "new" / "1.host").write_bytes(bounce)
    (box / "cur" / "1.host:2,S").write_bytes(bounce)  # delivered twice (e.g. re-fetched)
    (box / "new" / "2.host").write_bytes(arf(return_path(ref="Q2")))
    (box / "new" / "3.host").write_bytes(dsn("nobody@bounces.example.net", "z@gmail.com"))
    (box / "new" / "4.host").write_bytes(b"Subject: " + b"A" * 100_000 + b"\r\n\r\nx")
    (box / "tmp" / "5.host").write_bytes(bounce)  # still being delivered: not read

    first = ingest(config, box)
    assert (first["messages"], first["trusted"], first["untrusted"], first["rejected"]) == (
        5, 3, 1, 1)
    assert first["events_added"] == 2  # one hard bounce, one complaint
    assert first["rows_added"] == 4  # the second copy of the DSN is the same row
    state = store_state(config)
    assert state == (2, {"trusted": 2, "untrusted": 1, "rejected": 1})

    again = ingest(config, box)
    assert again["events_added"] == 0 and again["rows_added"] == 0
    assert store_state(config) == state


def test_one_file_and_the_text_summary(tmp_path: Path) -> None:
    load(tmp_path)
    config = tmp_path / "poolwarden.toml"
    message = tmp_path / "bounce.eml"
    message.write_bytes(dsn(return_path()))
    result = runner.invoke(ingest_app, ["mail", str(message), "-c", str(config)],
                           catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert ("1 messages: 1 trusted, 0 untrusted, 0 rejected; 1 feedback rows and 1 events "
            "added") in result.output
    assert SECRET.decode() not in result.output


def test_an_oversize_file_is_recorded_as_rejected_without_reading_it_all(
        tmp_path: Path) -> None:
    load(tmp_path)
    config = tmp_path / "poolwarden.toml"
    big = tmp_path / "big.eml"
    with big.open("wb") as fh:
        fh.write(b"Subject: big\r\n\r\n")
        fh.truncate(5 * 1024 * 1024)  # over the 1 MiB cap of the test configuration
    summary = ingest(config, big)
    assert summary["rejected"] == 1 and summary["rows_added"] == 1
    store = open_store(load_config(config).store_url)
    try:
        [row] = store.feedback()
        assert row.reason == f"rejected: too large ({5 * 1024 * 1024} bytes > 1048576)"
        assert row.raw_size == 5 * 1024 * 1024
    finally:
        store.close()


def test_errors_exit_2_with_one_line(tmp_path: Path) -> None:
    load(tmp_path)
    config = tmp_path / "poolwarden.toml"
    missing = runner.invoke(ingest_app, ["mail", str(tmp_path / "nope"), "-c", str(config)])
    assert missing.exit_code == 2 and "no such file" in missing.output
    plain_dir = tmp_path / "plain"
    plain_dir.mkdir()
    not_maildir = runner.invoke(ingest_app, ["mail", str(plain_dir), "-c", str(config)])
    assert not_maildir.exit_code == 2 and "not a Maildir" in not_maildir.output


def test_secrets_from_a_file_and_no_secret_warning(tmp_path: Path) -> None:
    secrets = tmp_path / "verp.keys"
    secrets.write_text(f"# current key first\n{SECRET.decode()}\n\n")
    section = FEEDBACK_SECTION.replace(
        FEEDBACK_SECTION.splitlines()[2], 'verp_secrets_file = "verp.keys"')
    load(tmp_path, section)
    config = tmp_path / "poolwarden.toml"
    message = tmp_path / "bounce.eml"
    message.write_bytes(dsn(return_path()))
    assert ingest(config, message)["trusted"] == 1

    short = tmp_path / "short"
    shutil.copytree(tmp_path, short, ignore=shutil.ignore_patterns("*.db*", "short"))
    (short / "verp.keys").write_text("tooshort\n")
    result = runner.invoke(ingest_app, ["mail", str(short / "bounce.eml"), "-c",
                                        str(short / "poolwarden.toml")])
    assert result.exit_code == 2 and "at least 16 bytes" in result.output
    assert "tooshort" not in result.output

    none = tmp_path / "none"
    none.mkdir()
    load(none, "")
    result = runner.invoke(ingest_app, ["mail", str(message), "-c",
                                        str(none / "poolwarden.toml")])
    assert result.exit_code == 0
    assert "no VERP secret configured" in result.output
    assert "0 trusted, 1 untrusted" in result.output
