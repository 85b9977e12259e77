"""B2: compression bombs and hostile archives are refused at the documented caps.

Caps (docs/configuration.md ``[dmarc]``): 10 MB as received, 50 MB of XML after
decompression, one member per zip; enforced while decompressing, never read from a
header. Cases: a ~1 MB gzip that inflates to 1 GB, a zip whose member's declared size
lies (small, and a 2 GB claim), 10,000 members, a nested zip, a member named
``../../etc/cron.d/x``, a ``.xml.gz`` attachment that is really a zip, a truncated gzip.
Each is refused with its reason, peak RSS stays within the cap + 20 MB (measured in a fresh
interpreter), nothing is written anywhere, and the next report in the Maildir is stored.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from poolwarden.adapters.memory import MemoryStore
from poolwarden.services.domains.dmarc_ingest import DmarcIngest, ingest_paths, input_files
from poolwarden.wire.dmarc_archive import DEFAULT_CAPS, ReportRejected
from poolwarden.wire.dmarc_xml import parse_report
from tests.services.domains.dmarc_samples import (
    MB,
    gz,
    gzip_bomb,
    inventory,
    mail_with,
    peak_rss_of,
    report_xml,
    zip_with_declared_size,
    zipped,
)

GOOD = report_xml(report_id="good")


@pytest.fixture(scope="module")
def bomb() -> bytes:
    data = gzip_bomb(1024 * MB)
    assert len(data) < 2 * MB  # about 1 MB that inflates to 1 GB
    return data


@pytest.fixture(scope="module")
def text_bomb() -> bytes:
    """The same ratio, but text the parser accepts, so only the output cap stops it."""
    data = gzip_bomb(1024 * MB, text=True)
    assert len(data) < 3 * MB
    return data


def many_members() -> bytes:
    return zipped([(f"r{i}.xml", GOOD) for i in range(10_000)])


CASES = {
    "lying-size": (lambda: zip_with_declared_size(report_xml(report_id="big") +
                                                  b" " * (3 * MB), 100),
                   "corrupt zip member"),
    "many-members": (many_members, "exactly one report, this one has 10,000 members"),
    "nested-zip": (lambda: zipped([("inner.zip", zipped([("r.xml", GOOD)]))]),
                   "nested archive"),
    "zip-slip": (lambda: zipped([("../../etc/cron.d/x", GOOD)]), "is a path outside"),
    "truncated-gzip": (lambda: gz(GOOD)[:-20], "gzip"),
}


@pytest.mark.parametrize(("which", "reason"), [
    ("bomb", "too large: a single XML token or text over 1,048,576 bytes"),
    ("text_bomb", "too large: decompresses past the cap of 52,428,800 bytes")])
def test_gzip_bomb_stops_at_a_cap(which: str, reason: str,
                                  request: pytest.FixtureRequest) -> None:
    data = request.getfixturevalue(which)
    started = time.perf_counter()
    with pytest.raises(ReportRejected) as caught:
        parse_report(data, name="bomb.xml.gz")
    assert caught.value.reason == reason
    assert time.perf_counter() - started < 5.0


@pytest.mark.parametrize("case", sorted(CASES))
def test_hostile_archive_is_refused(case: str) -> None:
    make, reason = CASES[case]
    with pytest.raises(ReportRejected) as caught:
        parse_report(make(), name="report.zip" if "gzip" not in case else "report.xml.gz")
    assert reason in caught.value.reason


def test_a_zip_named_gzip_is_refused() -> None:
    with pytest.raises(ReportRejected, match="named as gzip .* content is a zip"):
        parse_report(zipped([("r.xml", GOOD)]), name="google.com!x!1!2.xml.gz")


def test_a_declared_2_gb_size_is_not_believed() -> None:
    """The header claims 2 GB; nothing is allocated for it and the real content counts."""
    report = parse_report(zip_with_declared_size(GOOD, 2 * 1024 * MB), name="r.zip")
    assert report.report_id == "good"


@pytest.mark.parametrize("case", ["bomb", "text_bomb", "lying-size", "many-members"])
def test_peak_memory_within_cap_plus_20_mb(case: str, tmp_path: Path,
                                           request: pytest.FixtureRequest) -> None:
    data = (request.getfixturevalue(case) if "bomb" in case else CASES[case][0]())
    sample = tmp_path / "sample"
    sample.write_bytes(data)
    peak, output = peak_rss_of(
        "from pathlib import Path\n"
        "from poolwarden.wire.dmarc_xml import parse_report\n"
        "from poolwarden.wire.dmarc_archive import ReportRejected\n"
        "data = Path(sys.argv[1]).read_bytes()\n"
        "mark()\n"
        "try:\n"
        "    parse_report(data, name='r.zip')\n"
        "except ReportRejected as exc:\n"
        "    print('REJECTED', exc.reason)\n", str(sample))
    assert output.startswith("REJECTED"), output
    assert peak < DEFAULT_CAPS.max_output + 20 * MB, f"RSS grew {peak / MB:.0f} MB"


def test_mailbox_goes_on_after_each_bad_report(tmp_path: Path, bomb: bytes) -> None:
    maildir = tmp_path / "Maildir"
    for sub in ("cur", "new", "tmp"):
        (maildir / sub).mkdir(parents=True)
    bad = [mail_with([("bomb.xml.gz", "application/gzip", bomb)]),
           *(mail_with([("r.zip", "application/zip", CASES[c][0]())]) for c in sorted(CASES)
             if c != "many-members"),
           mail_with([("google.com!shop.example!1!2.xml.gz", "application/gzip",
                       zipped([("r.xml", GOOD)]))])]
    for i, raw in enumerate([*bad, mail_with([("r.xml.gz", "application/gzip", gz(GOOD))])]):
        (maildir / "new" / f"{i:02d}.mail").write_bytes(raw)
    before = {p for p in Path("/").glob("etc/cron.d/*")}
    work = os.getcwd()
    store = MemoryStore()
    summary = ingest_paths(DmarcIngest(store, inventory(), clock=lambda: 1.7e9),
                           input_files(maildir))
    statuses = [o.status for o in summary.outcomes]
    assert statuses == ["rejected"] * len(bad) + ["stored"], summary.outcomes
    assert [r.report_id for r in store.dmarc_reports(status="stored")] == ["good"]
    assert {p for p in Path("/").glob("etc/cron.d/*")} == before
    assert os.getcwd() == work and sorted(os.listdir(maildir / "tmp")) == []
