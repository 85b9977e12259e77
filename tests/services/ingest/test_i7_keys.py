"""I7: idempotent event keys. The same log imported twice (plain, then gzipped) adds
nothing; one short queue id on two days or two hosts gives distinct events; two
ingesters on overlapping segments of one log, and an archive import over a followed
log, store every event once.
"""

from __future__ import annotations

import gzip
import re
from pathlib import Path

from typer.testing import CliRunner

from poolwarden.adapters.sqlstore import open_store
from poolwarden.config.load import load_config_text
from poolwarden.main import app
from poolwarden.services.ingest.ingestd import Ingestd
from poolwarden.services.ingest.log_import import import_logs
from tests.services.ingest.conftest import read_events
from tests.services.ingest.loggen import config_toml, default_start, generate, observed, stamp


def setup(tmp_path: Path) -> tuple[Path, str]:
    url = f"sqlite:///{tmp_path / 'pw.db'}"
    config = tmp_path / "pw.toml"
    config.write_text(config_toml(url))
    return config, url


def test_i7a_the_same_file_imported_twice_adds_nothing(tmp_path: Path) -> None:
    config, url = setup(tmp_path)
    log = generate(11, 300)
    plain = tmp_path / "mail.log.1"
    plain.write_text("".join(log.lines))
    runner = CliRunner()
    first = runner.invoke(app, ["ingest", "log", str(plain), "-c", str(config),
                                "--no-evaluate"])
    assert first.exit_code == 0, first.output
    added = int(re.search(r"(\d+) events added", first.output)[1])  # type: ignore[index]
    again = runner.invoke(app, ["ingest", "log", str(plain), "-c", str(config),
                                "--no-evaluate"])
    assert again.exit_code == 0, again.output
    assert "0 events added" in again.output
    # its checkpoint says it was stored whole: not parsed again
    assert f"{added} events added" in first.output and "0 lines" in again.output
    assert "1 file(s) imported before" in again.output
    # the same content gzipped (as logrotate leaves it): still nothing new
    packed = tmp_path / "mail.log.1.gz"
    with gzip.open(packed, "wt") as f:
        f.write("".join(log.lines))
    third = runner.invoke(app, ["ingest", "log", str(packed), "-c", str(config),
                                "--no-evaluate"])
    assert third.exit_code == 0, third.output
    assert "0 events added" in third.output
    assert "1 file(s) imported before" in third.output
    store = open_store(url)
    try:
        # umbrella's mail is attributed by the decision log only: it was not loaded here
        truth = log.truth()
        assert observed(read_events(store)) == {k: v for k, v in truth.items()
                                                if k.tenant != "umbrella"}
    finally:
        store.close()


def test_ingest_log_refuses_a_missing_file(tmp_path: Path) -> None:
    config, _ = setup(tmp_path)
    result = CliRunner().invoke(app, ["ingest", "log", str(tmp_path / "nope.log"), "-c",
                                      str(config)])
    assert result.exit_code == 2
    assert "no such file" in result.output


def test_i7d_one_short_queue_id_on_two_days_and_two_hosts(tmp_path: Path) -> None:
    _, url = setup(tmp_path)
    config = load_config_text(config_toml(url), file="pw.toml")
    start = default_start() - 3 * 86400

    def message(at: float, host: str) -> str:
        head = f"{stamp(at, 'iso')} {host} postfix"
        return (f"{head}/submission/smtpd[9]: 4ABC12: client=app[10.1.0.1], "
                "sasl_method=PLAIN, sasl_username=acme\n"
                f"{head}/qmgr[8]: 4ABC12: from=<news@acme.example>, size=10, nrcpt=1 "
                "(queue active)\n"
                f"{head}/pw-127-0-0-11/smtp[7]: 4ABC12: to=<bob@gmail.com>, relay=gmail-smtp-in"
                ".l.google.com[192.0.2.1]:25, delay=1, delays=0/0/0.5/0.5, dsn=2.0.0, "
                "status=sent (250 ok)\n"
                f"{head}/qmgr[8]: 4ABC12: removed\n")

    path = tmp_path / "mail.log"
    path.write_text(message(start, "mx1") + message(start + 86400, "mx1")
                    + message(start, "mx2"))
    store = open_store(url)
    try:
        result = import_logs(config, store, [path])
        events = read_events(store)
        assert result.metrics.events_stored == 3 == len({e.key for e in events})
        assert sorted(e.time for e in events) == [start, start, start + 86400]
    finally:
        store.close()


def test_i7e_two_ingesters_on_overlapping_segments(tmp_path: Path) -> None:
    _, url = setup(tmp_path)
    config = load_config_text(config_toml(url), file="pw.toml")
    store = open_store(url)
    try:
        log = generate(12, 500)
        store.add_decisions(log.decisions)
        path = tmp_path / "mail.log"
        path.touch()
        # both start before anything is stored: each keeps its own position (failover)
        first = Ingestd(config, store, [path], batch_lines=200, rotate_wait=0.0)
        second = Ingestd(config, store, [path], batch_lines=300, rotate_wait=0.0)
        step = len(log.lines) // 7
        for n, start in enumerate(range(0, len(log.lines), step)):
            with open(path, "a") as f:
                f.writelines(log.lines[start:start + step])
            (first if n % 3 else second).run_once()
        first.run_once()
        second.run_once()
        assert observed(read_events(store)) == log.truth()
        assert first.metrics.duplicates + second.metrics.duplicates > 0
        # and an archive import of the followed file on top: nothing new
        result = import_logs(config, store, [path])
        assert result.metrics.events_stored == 0
        assert result.metrics.duplicates == sum(log.truth().values())
        first.close()
        second.close()
    finally:
        store.close()
