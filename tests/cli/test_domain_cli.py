"""``poolwarden ingest dmarc``, ``poolwarden domains`` and ``poolwarden domain show`` end to
end on the example configuration, a real SQLite store and a loopback Knot DNS."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

from typer.testing import CliRunner

from poolwarden.main import app
from tests.services.domains.dmarc_samples import mail_with, report_xml
from tests.services.feedback import knot as knot_mod
from tests.services.feedback.knot import KnotServer
from tests.support.real_parts import missing


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner(mix_stderr=False).invoke(app, list(args), catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def reports(folder: Path) -> Path:
    folder.mkdir()
    (folder / "a.xml").write_bytes(report_xml(report_id="a", domain="cornerbakery.example",
                                              records=[("127.0.0.13", 30, "pass", "pass"),
                                                       ("203.0.113.9", 4, "fail", "fail")]))
    (folder / "b.xml.gz").write_bytes(gzip.compress(report_xml(
        report_id="b", domain="cornerbakery.example", records=[("127.0.0.14", 10, "pass",
                                                                "fail")])))
    (folder / "c.eml").write_bytes(mail_with([("a.zip", "application/zip", b"PK\x03\x04junk")]))
    (folder / "d.xml").write_bytes(b"<!DOCTYPE x [<!ENTITY a 'b'>]><feedback/>")
    return folder


def test_ingest_dmarc_stores_once_and_names_each_rejection(config_file: Path,
                                                         tmp_path: Path) -> None:
    folder = reports(tmp_path / "in")
    code, out, err = run("ingest", "dmarc", str(folder), "--config", str(config_file))
    assert code == 0, err
    assert "4 inputs: 2 reports stored, 0 already stored, 2 rejected" in out
    assert "c.eml" in err and "corrupt zip" in err
    assert "d.xml: DTD/entity not allowed" in err
    code, out, _ = run("ingest", "dmarc", str(folder), "--config", str(config_file), "--json")
    summary = json.loads(out)
    assert (summary["stored"], summary["duplicate"], summary["rejected"]) == (0, 2, 2)
    code, out, _ = run("domain", "show", "cornerbakery.example", "--json", "--config",
                       str(config_file))
    (view,) = json.loads(out)
    dmarc = view["dmarc"]
    assert view["tenant"] == "corner-bakery" and view["status"] == "unchecked"
    assert dmarc["ours"]["messages"] == 40 and dmarc["ours"]["spf_aligned"] == 30
    assert dmarc["foreign"]["messages"] == 4
    assert list(dmarc["foreign_sources"]) == ["203.0.113.9"]
    assert set(dmarc["by_route"]) == {"shared-new"}


def test_domains_check_asks_the_configured_dns_and_stores_findings(
        config_file: Path, tmp_path: Path) -> None:
    if knot_mod.KNOTD is None:
        missing("knotd is not installed (scripts/setup.sh installs knot)")
    dns = KnotServer(tmp_path)
    dns.start(['shop TXT "v=spf1 ip4:127.0.0.11 ip4:127.0.0.12 -all"',
               '_dmarc.shop TXT "v=DMARC1; p=quarantine; rua=mailto:d@esp.test"'])
    try:
        text = config_file.read_text().replace(
            'domains = ["cornerbakery.example"]', 'domains = ["cornerbakery.example", '
            '"shop.test"]', 1)
        text += f'\n[domains]\nnameservers = ["127.0.0.1:{dns.port}"]\ntimeout = 2.0\n'
        config_file.write_text(text)
        code, out, err = run("domains", "--check", "--json", "--tenant", "corner-bakery",
                             "--config", str(config_file))
        assert code == 0, err
    finally:
        dns.stop()
    views = {v["domain"]: v for v in json.loads(out)}
    shop = views["shop.test"]
    assert shop["checks"]["spf"] == "ok" and shop["checks"]["spf-route"] == "error"
    assert shop["checks"]["dmarc"] == "ok"
    denied = {f["ip"] for f in shop["findings"]
              if f["check"] == "spf-route" and f["status"] == "error"}
    assert denied == {"127.0.0.13", "127.0.0.14", "127.0.0.15"}  # shared-new is not listed
    # the stored findings are shown without asking the DNS again (it is stopped now)
    code, out, _ = run("domain", "show", "shop.test", "--config", str(config_file))
    assert code == 0
    assert "127.0.0.13 (shared-new" in out and "v=DMARC1; p=quarantine" in out
    code, out, err = run("domain", "show", "nowhere.test", "--config", str(config_file))
    assert code == 2 and "no tenant or pool declares the domain" in err
