"""B1: hostile DMARC XML is refused with a named reason, fetches nothing, costs little.

Billion laughs, quadratic blowup, an external entity naming /etc/passwd, an external DTD
pointing at a loopback canary HTTP server, and a 100 MB single-token attribute. Each is
refused ("DTD/entity not allowed", "too large") in under 2 s with RSS growth under 100 MB
(measured in a fresh interpreter), the canary sees no connection, and the good report in
the same batch is stored while what was stored before is unchanged.
"""

from __future__ import annotations

import http.server
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from poolwarden.adapters.memory import MemoryStore
from poolwarden.services.domains.dmarc_ingest import DmarcIngest, ingest_paths
from poolwarden.wire.dmarc_archive import ReportRejected
from poolwarden.wire.dmarc_xml import parse_report
from tests.services.domains.dmarc_samples import MB, gz, inventory, peak_rss_of, report_xml

HEAD = b'<?xml version="1.0"?>\n'
LAUGHS = HEAD + b"""<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol9 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
]><feedback><report_metadata><org_name>&lol9;</org_name></report_metadata></feedback>"""
QUADRATIC = (HEAD + b'<!DOCTYPE q [<!ENTITY a "' + b"x" * 50_000 + b'">]><feedback>'
             + b"&a;" * 50_000 + b"</feedback>")
PASSWD = (HEAD + b'<!DOCTYPE f [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
          b"<feedback><report_metadata><org_name>&x;</org_name></report_metadata></feedback>")


@pytest.fixture
def canary() -> Iterator[list[str]]:
    """An HTTP server on loopback that records every request it gets."""
    hits: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            hits.append(self.path)
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b'<!ENTITY x "pwned">')

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    hits.append(f"port:{server.server_address[1]}")
    try:
        yield hits
    finally:
        server.shutdown()
        server.server_close()


def external_dtd(port: int) -> bytes:
    return (HEAD + f'<!DOCTYPE feedback SYSTEM "http://127.0.0.1:{port}/evil.dtd">'.encode()
            + b"<feedback><report_metadata><org_name>&x;</org_name></report_metadata>"
            b"</feedback>")


def huge_attribute() -> bytes:
    return b'<feedback a="' + b"A" * (100 * MB) + b'"></feedback>'


@pytest.mark.parametrize(("name", "data", "reason"), [
    ("billion-laughs.xml", LAUGHS, "DTD/entity not allowed"),
    ("quadratic.xml", QUADRATIC, "DTD/entity not allowed"),
    ("passwd.xml", PASSWD, "DTD/entity not allowed"),
])
def test_entities_and_dtds_are_refused_fast(name: str, data: bytes, reason: str) -> None:
    started = time.perf_counter()
    with pytest.raises(ReportRejected) as caught:
        parse_report(data, name=name)
    assert caught.value.reason.startswith(reason)
    assert time.perf_counter() - started < 2.0


def test_external_dtd_is_never_fetched(canary: list[str]) -> None:
    port = int(canary[0].split(":")[1])
    with pytest.raises(ReportRejected, match="DTD/entity not allowed"):
        parse_report(external_dtd(port))
    time.sleep(0.2)
    assert canary[1:] == [], "the parser fetched the external DTD"


@pytest.mark.parametrize("packed", [False, True], ids=["plain", "gzip"])
def test_a_100_mb_token_is_too_large(packed: bool) -> None:
    data = huge_attribute()
    if packed:
        data = gz(data)
    started = time.perf_counter()
    with pytest.raises(ReportRejected, match="too large"):
        parse_report(data, name="token.xml.gz" if packed else "token.xml")
    assert time.perf_counter() - started < 2.0


@pytest.mark.parametrize("case", ["laughs", "quadratic", "token-gzip"])
def test_memory_stays_bounded(case: str, tmp_path: Path) -> None:
    data = {"laughs": LAUGHS, "quadratic": QUADRATIC,
            "token-gzip": gz(huge_attribute())}[case]
    sample = tmp_path / "sample"
    sample.write_bytes(data)
    peak, output = peak_rss_of(
        "from pathlib import Path\n"
        "from poolwarden.wire.dmarc_xml import parse_report\n"
        "from poolwarden.wire.dmarc_archive import ReportRejected\n"
        "data = Path(sys.argv[1]).read_bytes()\n"
        "mark()\n"
        "try:\n"
        "    parse_report(data)\n"
        "except ReportRejected as exc:\n"
        "    print('REJECTED', exc.reason)\n", str(sample))
    assert output.startswith("REJECTED")
    assert peak < 100 * MB, f"RSS grew {peak / MB:.0f} MB"


def test_the_rest_of_the_batch_is_stored(tmp_path: Path, canary: list[str]) -> None:
    store = MemoryStore()
    ingest = DmarcIngest(store, inventory(), clock=lambda: 1_700_100_000.0)
    (tmp_path / "0-before.xml").write_bytes(report_xml(report_id="before"))
    ingest_paths(ingest, [tmp_path / "0-before.xml"])
    before = store.dmarc_records()
    files = {"1-laughs.xml": LAUGHS, "2-quadratic.xml": QUADRATIC, "3-passwd.xml": PASSWD,
             "4-dtd.xml": external_dtd(int(canary[0].split(":")[1])),
             "5-good.xml": report_xml(report_id="good")}
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    summary = ingest_paths(ingest, sorted(tmp_path / name for name in files))
    statuses = [(Path(o.source).name, o.status, o.reason) for o in summary.outcomes]
    assert [s[1] for s in statuses] == ["rejected"] * 4 + ["stored"], statuses
    assert all(s[2].startswith("DTD/entity not allowed") for s in statuses[:4])
    stored = {r.report_id: r for r in store.dmarc_reports(status="stored")}
    assert set(stored) == {"before", "good"}
    assert store.dmarc_records()[:len(before)] == before
    rejected = store.dmarc_reports(status="rejected")
    assert len(rejected) == 4 and all("DTD/entity" in r.reason for r in rejected)
    assert canary[1:] == []
