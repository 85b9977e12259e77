"""B3: malformed but real DMARC reports are stored with warnings or refused with a reason.

parsedmarc's samples (``shared/corpus/dmarc``) plus reproductions of its tracker cases:
an ``xs:schema`` wrapper (#18), byte 0x91 (PR #122), stray ``<>`` in ``<email>`` (PR #740),
an empty file (PR #349), a body of just ``unused`` (#409), a span over 24 h (PR #587),
``PASS`` in upper case, no ``<policy_published>``. One batch holds them all: none aborts
it, each ends stored (its warnings on the report) or rejected (its reason), and every
stored field is a string or an integer, never a nested value.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from poolwarden.adapters.sqlstore import open_store
from poolwarden.services.domains.dmarc_ingest import DmarcIngest, ingest_paths, input_files
from tests.services.domains.dmarc_samples import inventory, mail_with, report_xml

CORPUS = Path(__file__).resolve().parents[3] / "shared" / "corpus" / "dmarc"
if not CORPUS.is_dir():
    CORPUS = Path("/work/shared/corpus/dmarc")

CASES: dict[str, tuple[bytes, str, str]] = {
    # name: (bytes, expected status, text expected in the warnings or the reason)
    "schema-wrapper.xml": (b'<?xml version="1.0"?><xs:schema xmlns:xs="urn:x">'
                           + report_xml(report_id="wrapped").split(b"?>", 1)[1],
                           "stored", "xs:schema wrapper"),
    "byte-0x91.xml": (report_xml(report_id="cp1252").replace(
        b"<org_name>google.com", b"<org_name>\x91google.com"), "stored", "not UTF-8"),
    "angle-email.xml": (report_xml(report_id="angles").replace(
        b"<email>noreply@google.com</email>", b"<email><noreply@google.com></email>"),
        "stored", "stray '<'"),
    "empty.xml": (b"", "rejected", "empty report"),
    "unused.eml": (b"From: x@yahoo.com\nTo: dmarc@esp.test\nSubject: report\n\nunused\n",
                   "rejected", "no DMARC report attached"),
    "long-span.xml": (report_xml(report_id="span", end=1_700_000_000 + 7 * 86400),
                      "stored", "more than a day"),
    "upper-pass.xml": (report_xml(report_id="upper", records=[("127.0.0.13", 3, "PASS",
                                                               "FAIL")]),
                       "stored", "upper-case values"),
    "no-policy.xml": (report_xml(report_id="nopolicy", policy=None), "stored",
                      "no <policy_published>"),
    "not-xml.xml": (b"<feedback><report_metadata>", "rejected", "not well-formed XML"),
    "zz-good.eml": (mail_with([("r.xml", "text/xml", report_xml(report_id="last"))]),
                    "stored", ""),
}


@pytest.fixture
def batch(tmp_path: Path) -> Path:
    folder = tmp_path / "reports"
    folder.mkdir()
    for name, (data, _, _) in CASES.items():
        (folder / name).write_bytes(data)
    for sample in sorted((CORPUS / "parsedmarc" / "aggregate").iterdir()):
        (folder / f"pm-{sample.name}").write_bytes(sample.read_bytes())
    return folder


def test_every_case_ends_stored_or_rejected_and_the_batch_goes_on(batch: Path,
                                                                    tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'pw.db'}")
    try:
        ingest = DmarcIngest(store, inventory(), clock=lambda: 1.7e9)
        summary = ingest_paths(ingest, input_files(batch))
        by_name = {Path(o.source.split(" (")[0]).name: o for o in summary.outcomes}
        for name, (_, status, text) in CASES.items():
            outcome = by_name[name]
            assert outcome.status == status, (name, outcome)
            shown = outcome.reason if status == "rejected" else " ".join(outcome.warnings)
            assert text in shown, (name, shown)
        pm = [o for o in summary.outcomes if Path(o.source).name.startswith("pm-")]
        assert pm and all(o.status == "stored" for o in pm), pm
        rows = store.dmarc_reports(limit=1000)
        for row in rows:
            for f in dataclasses.fields(row):
                value = getattr(row, f.name)
                assert value is None or isinstance(value, str | int | float | tuple), row
            assert all(isinstance(w, str) for w in row.warnings)
        stored = {r.report_id: r for r in rows if r.status == "stored"}
        assert {"wrapped", "cp1252", "angles", "span", "upper", "nopolicy", "last"} <= set(stored)
        assert "\ufffd" in stored["cp1252"].org_name
        records = {j.report_key.split("|")[1]: j for j in store.dmarc_records()}
        assert records["upper"].record.dkim == "pass" and records["upper"].record.spf == "fail"
        for joined in store.dmarc_records():
            for value in (joined.record.source_ip, joined.record.header_from,
                          joined.record.disposition, joined.record.dkim, joined.record.spf):
                assert isinstance(value, str)
            assert isinstance(joined.record.count, int)
        assert stored["nopolicy"].policy_domain == "shop.example"
        # the same batch again adds nothing: every report is stored once
        again = ingest_paths(ingest, input_files(batch))
        assert {o.status for o in again.outcomes} <= {"duplicate", "rejected"}
        assert len(store.dmarc_reports(limit=1000)) == len(rows)
    finally:
        store.close()
