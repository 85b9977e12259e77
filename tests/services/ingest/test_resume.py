"""Open messages across a restart: the lines before the checkpoint are re-read (not
stored again) so a message's SASL user, its deferred recipients and its delivery keys
come out as without the restart -- also when the message began in the file read before
a rotation. Past ``max_replay_bytes`` the context is lost: the delivery is counted as
unknown instead of being stored under a guessed tenant.
"""

from __future__ import annotations

import os
from pathlib import Path

from poolwarden.adapters.sqlstore import open_store
from poolwarden.config.load import load_config_text
from poolwarden.services.ingest.ingestd import Ingestd
from tests.services.ingest.conftest import read_events
from tests.services.ingest.loggen import config_toml, default_start, stamp

T0 = default_start()


def line(at: int, prog: str, text: str) -> str:
    return f"{stamp(T0 + at, 'syslog')} mx1 postfix/{prog}: {text}\n"


def opening(qid: str, at: int, rcpts: int = 2) -> str:
    # only the SASL user says it is acme's: the sender domain is nobody's
    return (line(at, "submission/smtpd[5]", f"{qid}: client=app[10.7.0.1], "
                 "sasl_method=PLAIN, sasl_username=acme")
            + line(at, "cleanup[6]", f"{qid}: message-id=<{qid}@x.example>")
            + line(at, "qmgr[7]", f"{qid}: from=<news@elsewhere.example>, size=9, "
                   f"nrcpt={rcpts} (queue active)"))


def attempt(qid: str, at: int, rcpt: str, status: str) -> str:
    reply = "250 ok" if status == "sent" else \
        "host mx[192.0.2.1] said: 451 4.7.1 try later (in reply to RCPT TO command)"
    dsn = "2.0.0" if status == "sent" else "4.7.1"
    return line(at, "pw-127-0-0-11/smtp[8]", f"{qid}: to=<{rcpt}>, relay=mx.example.org"
                f"[192.0.2.1]:25, delay=1, delays=0/0/0.5/0.5, dsn={dsn}, status={status} "
                f"({reply})")


def expiry(qid: str, at: int) -> str:
    return (line(at, "qmgr[7]", f"{qid}: from=<news@elsewhere.example>, status=expired, "
                 "returned to sender") + line(at, "qmgr[7]", f"{qid}: removed"))


class Setup:
    def __init__(self, tmp_path: Path, **options: object) -> None:
        url = f"sqlite:///{tmp_path / 'pw.db'}"
        self.config = load_config_text(config_toml(url), file="pw.toml")
        self.store = open_store(url)
        self.log = tmp_path / "mail.log"
        self.options = {"rotate_wait": 0.0, **options}

    def run(self) -> Ingestd:
        ingestd = Ingestd(self.config, self.store, [self.log], **self.options)  # type: ignore[arg-type]
        ingestd.run_once()
        ingestd.close()  # and gone: the next run is a restart
        return ingestd

    def write(self, text: str) -> None:
        with open(self.log, "a") as f:
            f.write(text)

    def kinds(self) -> list[tuple[str, str]]:
        return sorted((e.tenant, e.kind.value) for e in read_events(self.store))


def test_a_message_open_at_a_restart_keeps_its_sasl_user_and_recipients(tmp_path: Path) -> None:
    s = Setup(tmp_path)
    try:
        s.write(opening("4F00A1", 0) + attempt("4F00A1", 1, "a@example.org", "deferred")
                + attempt("4F00A1", 1, "b@example.org", "deferred"))
        first = s.run()
        assert first.metrics.unknown_tenants == 0 and len(s.kinds()) == 2
        s.write(line(600, "qmgr[7]", "4F00A1: from=<news@elsewhere.example>, size=9, "
                     "nrcpt=2 (queue active)")
                + attempt("4F00A1", 601, "a@example.org", "sent") + expiry("4F00A1", 900))
        second = s.run()
        assert second.metrics.lines_replayed > 0 and second.metrics.context_lost == 0
        assert second.metrics.unknown_tenants == 0
        # a delivered, b still deferred when qmgr gave up: one expiry, for b only
        assert s.kinds() == [("acme", "deferred"), ("acme", "deferred"), ("acme", "delivered"),
                             ("acme", "soft_bounce")]
    finally:
        s.store.close()


def test_a_message_begun_before_a_rotation_keeps_its_context(tmp_path: Path) -> None:
    s = Setup(tmp_path)
    try:
        s.write(opening("4F00B2", 0, rcpts=1) + attempt("4F00B2", 1, "a@example.org", "deferred"))
        s.run()
        os.rename(s.log, tmp_path / "mail.log.1")
        s.write(line(300, "qmgr[7]", "4F00C3: removed"))  # something in the new file
        s.run()  # reads the rest of the old file, then the new one: a checkpoint in it
        cp = s.store.checkpoint(str(s.log))
        assert cp is not None and cp.resume_fingerprint is not None  # begins in mail.log.1
        s.write(attempt("4F00B2", 601, "a@example.org", "sent"))
        again = s.run()
        assert again.metrics.context_lost == 0 and again.metrics.unknown_tenants == 0
        assert s.kinds() == [("acme", "deferred"), ("acme", "delivered")]
    finally:
        s.store.close()


def test_past_max_replay_bytes_the_context_is_lost_and_counted(tmp_path: Path) -> None:
    s = Setup(tmp_path, max_replay_bytes=100)
    try:
        s.write(opening("4F00D4", 0, rcpts=1) + attempt("4F00D4", 1, "a@example.org",
                                                        "deferred"))
        s.run()
        s.write(attempt("4F00D4", 601, "a@example.org", "sent"))
        again = s.run()
        assert again.metrics.lines_replayed == 0
        # the delivery is still read, but nothing is left to say whose it is
        assert again.metrics.unknown_tenants == 1
        assert s.kinds() == [("acme", "deferred")]
    finally:
        s.store.close()
