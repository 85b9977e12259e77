"""DMARC report mail through the real feedback LMTP listener (smtplib.LMTP on loopback).

Mail to a configured rua address, or with a report's subject, is stored as a DMARC report
(gzip and zip attachments alike); a second delivery of the same report adds nothing; a
bomb gets 250 with its rejection recorded (retrying cannot help) and the next mail in the
same connection is stored; an ordinary bounce still goes to the bounce intake.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from poolwarden.adapters.sqlstore import open_store
from poolwarden.services.domains.dmarc_ingest import dmarc_mailbox
from poolwarden.services.feedback.lmtpd import LmtpServer, parse_listen
from tests.services.domains.dmarc_samples import MB, gz, gzip_bomb, mail_with, report_xml, zipped
from tests.services.feedback.support import FEEDBACK_SECTION, dsn, load, return_path, service
from tests.services.feedback.test_lmtpd import connect, transaction

DMARC = FEEDBACK_SECTION + '\n[dmarc]\naddresses = ["dmarc@esp.example"]\n'


def test_report_mail_is_stored_once_and_bombs_do_not_stop_the_next(tmp_path: Path) -> None:
    config = load(tmp_path, DMARC)
    store = open_store(f"sqlite:///{tmp_path / 'pw.db'}")
    domain = config.inventory.tenants[0].domains[0]
    good = report_xml(report_id="lmtp-1", domain=domain)
    mails = [
        ("dmarc@esp.example", mail_with([("r.xml.gz", "application/gzip", gz(good))])),
        ("dmarc@esp.example", mail_with([("r.zip", "application/zip",
                                          zipped([("r.xml", good)]))])),
        ("dmarc@esp.example", mail_with([("b.xml.gz", "application/gzip",
                                          gzip_bomb(200 * MB, text=True))])),
        ("other@esp.example", mail_with([("r.zip", "application/zip", zipped([(
            "r.xml", report_xml(report_id="lmtp-2", domain=domain))]))])),
        ("b@bounces.example", dsn(return_path())),
    ]

    def client(address: str) -> list[list[tuple[int, bytes]]]:
        with connect(address) as lmtp:
            return [transaction(lmtp, "noreply@google.com", [rcpt], raw)
                    for rcpt, raw in mails]

    async def main() -> list[list[tuple[int, bytes]]]:
        svc = service(config, store)
        server = LmtpServer(svc, max_message_bytes=svc.settings.max_message_bytes,
                            socket_group=None, reports=dmarc_mailbox(store, config))
        await server.start([parse_listen("tcp:127.0.0.1:0")])
        try:
            return await asyncio.to_thread(client, server.addresses[0])
        finally:
            await server.stop()

    try:
        replies = asyncio.run(main())
        texts = [r[0][1].decode() for r in replies]
        assert [r[0][0] for r in replies] == [250] * 5, texts
        assert texts[0].endswith("DMARC 1 stored")
        assert texts[1].endswith("DMARC 1 duplicate")
        assert texts[2].endswith("DMARC 1 rejected")
        assert texts[3].endswith("DMARC 1 stored")  # by its subject
        assert "Feedback" in texts[4]
        stored = sorted(r.report_id for r in store.dmarc_reports(status="stored"))
        assert stored == ["lmtp-1", "lmtp-2"]
        (bomb,) = store.dmarc_reports(status="rejected")
        assert "decompresses past the cap" in bomb.reason
        assert {j.tenant for j in store.dmarc_records()} == {config.inventory.tenants[0].name}
    finally:
        store.close()
