"""The DMARC corpus: every sample parses or is refused as its manifest says, and the
mail-auth samples match their expected-output JSON field by field.

``shared/corpus/dmarc/manifest.csv`` lists each sample's report type, whether it parses,
and (for aggregate reports) the reporter, report id, policy domain, ``p``, record count and
message count. The mail-auth ``*.expected.json`` files are that library's parse of the
same bytes; ``mail_auth_shape`` writes our values in its vocabulary (``Relaxed``,
``MailFrom``, ``TrustedForwarder``...) so the two are compared whole.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import pytest

from poolwarden.core.dmarc import AggregateReport
from poolwarden.wire.dmarc_archive import ReportRejected
from poolwarden.wire.dmarc_mail import AGGREGATE, parts_of
from poolwarden.wire.dmarc_xml import parse_report

CORPUS = Path(__file__).resolve().parents[4] / "shared" / "corpus" / "dmarc"
if not CORPUS.is_dir():
    CORPUS = Path("/work/shared/corpus/dmarc")
ROWS = list(csv.DictReader((CORPUS / "manifest.csv").open(encoding="utf-8")))


def _camel(value: str | None, default: str = "Unspecified") -> str:
    if not value:
        return default
    return "".join(part.capitalize() for part in value.replace("-", "_").split("_"))


_ALIGN = {"r": "Relaxed", "s": "Strict"}
_SCOPE = {"mfrom": "MailFrom", "helo": "Helo"}


def mail_auth_shape(r: AggregateReport) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "org_name": r.org_name, "email": r.email, "extra_contact_info": r.extra_contact_info,
        "report_id": r.report_id, "date_range": {"begin": r.begin, "end": r.end},
        "error": list(r.errors)}
    if r.generator is not None:
        meta["generator"] = r.generator
    p = r.policy
    policy: dict[str, Any] = {
        "domain": p.domain, "version_published": p.version_published,
        "adkim": _ALIGN.get(p.adkim or "", "Unspecified"),
        "aspf": _ALIGN.get(p.aspf or "", "Unspecified"),
        "p": _camel(p.p), "sp": _camel(p.sp), "testing": p.testing == "y"}
    if p.np is not None:
        policy["np"] = _camel(p.np)
    if p.discovery_method is not None:
        policy["discovery_method"] = _camel(p.discovery_method)
    policy["fo"] = p.fo
    records = [{
        "row": {"source_ip": rec.source_ip, "count": rec.count, "policy_evaluated": {
            "disposition": _camel(rec.disposition), "dkim": _camel(rec.dkim),
            "spf": _camel(rec.spf),
            "reason": [{"type_": _camel(x.type), "comment": x.comment}
                       for x in rec.reasons]}},
        # RFC 7489's schema makes envelope_from required: mail-auth writes an absent one
        # as "", we keep it as None (absent)
        "identifiers": {"envelope_to": rec.envelope_to, "envelope_from": rec.envelope_from or "",
                        "header_from": rec.header_from},
        "auth_results": {
            "dkim": [{"domain": a.domain, "selector": a.selector, "result": _camel(a.result),
                      "human_result": a.human_result} for a in rec.dkim_auth],
            "spf": [{"domain": a.domain, "scope": _SCOPE.get(a.scope or "", "Unspecified"),
                     "result": _camel(a.result), "human_result": a.human_result}
                    for a in rec.spf_auth]},
        "extensions": []} for rec in r.records]
    return {"version": float(r.version) if r.version else 0.0, "report_metadata": meta,
            "policy_published": policy, "record": records, "extensions": []}


def _parse(row: dict[str, str]) -> list[tuple[str, AggregateReport | None]]:
    data = (CORPUS / row["file"]).read_bytes()
    out: list[tuple[str, AggregateReport | None]] = []
    for part in parts_of(data, name=row["file"]):
        out.append((part.kind, parse_report(part.data, name=part.name)
                    if part.kind == AGGREGATE else None))
    return out


@pytest.mark.parametrize("row", ROWS, ids=[r["file"] for r in ROWS])
def test_sample_parses_as_its_manifest_says(row: dict[str, str]) -> None:
    if row["expected_parse"] == "error":
        with pytest.raises(ReportRejected) as caught:
            _parse(row)
        assert caught.value.reason
        return
    found = _parse(row)
    assert [kind for kind, _ in found] == [row["report_type"]]
    report = found[0][1]
    if row["report_type"] != AGGREGATE:
        return
    assert report is not None
    expected = {"derived_org_name": report.org_name, "derived_report_id": report.report_id,
                "derived_policy_domain": report.policy.domain,
                "derived_policy_p": report.policy.p or "",
                "derived_record_count": str(len(report.records)),
                "derived_message_count": str(report.messages)}
    for column, ours in expected.items():
        if row[column]:
            assert ours == row[column], column
    if row["derived_xml_wellformed"] == "false":
        assert report.warnings, "a repaired report says what was repaired"
    else:
        assert report.warnings == ()


EXPECTED = [r for r in ROWS if r["expected_output_file"] and r["report_type"] == AGGREGATE]


@pytest.mark.parametrize("row", EXPECTED, ids=[r["file"] for r in EXPECTED])
def test_mail_auth_expected_output_matches_field_by_field(row: dict[str, str]) -> None:
    expected = json.loads((CORPUS / row["expected_output_file"]).read_text(encoding="utf-8"))
    (_, report), = _parse(row)
    assert report is not None
    ours = mail_auth_shape(report)
    assert ours["report_metadata"] == expected["report_metadata"]
    assert ours["policy_published"] == expected["policy_published"]
    assert len(ours["record"]) == len(expected["record"])
    for mine, theirs in zip(ours["record"], expected["record"], strict=True):
        assert mine == theirs
    assert ours == expected
