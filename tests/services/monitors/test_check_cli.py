"""``poolwarden check blocklists|mx --json`` against the loopback Knot, through the
configured resolver only."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from poolwarden.main import app
from tests.services.monitors.zones import (
    CLEAR_DOMAIN,
    ERROR_DOMAIN,
    LISTED_DOMAIN,
    LISTED_IP,
    lab_config,
)

runner = CliRunner()


def config(tmp_path: Path, port: int) -> Path:
    path = tmp_path / "pw.toml"
    path.write_text(lab_config(f"127.0.0.1:{port}"))
    return path


def test_check_blocklists_json_every_egress_ip_and_tenant_domain(knot, tmp_path):
    result = runner.invoke(app, ["check", "blocklists", "--json", "-c",
                                 str(config(tmp_path, knot.port))])
    assert result.exit_code == 1, result.output  # something is listed
    data = json.loads(result.output)
    listed = {(f["target"], f["list"]) for f in data["findings"] if f["status"] == "listed"}
    ip_lists = {"spamhaus-zen", "spamcop", "barracuda", "psbl", "mailspike", "uceprotect-1"}
    assert listed == ({(LISTED_IP, n) for n in ip_lists}
                      | {(LISTED_DOMAIN, n) for n in ("spamhaus-dbl", "surbl", "uribl")})
    statuses = {(f["target"], f["list"]): f["status"] for f in data["findings"]}
    assert statuses[(ERROR_DOMAIN, "spamhaus-dbl")] == "unknown"
    assert statuses[(CLEAR_DOMAIN, "surbl")] == "clear"
    # 3 egress IPs x 6 IP lists + 3 tenant domains x 3 domain lists
    assert data["checked"] == 27 and data["listed"] == 9 and data["unknown"] == 3


def test_check_blocklists_clear_ip_exits_zero(knot, tmp_path):
    result = runner.invoke(app, ["check", "blocklists", "--ip", "127.0.0.1", "--list", "spamcop",
                                 "-c", str(config(tmp_path, knot.port))])
    assert result.exit_code == 0, result.output
    assert "1 checks: 0 listed, 0 unknown" in result.output


def test_check_mx_json(knot, tmp_path):
    result = runner.invoke(app, ["check", "mx", "corp-on-google.test", "smallbiz.test",
                                 "google-mail.test", "--json", "-c",
                                 str(config(tmp_path, knot.port))])
    assert result.exit_code == 0, result.output
    rows = {r["domain"]: r for r in json.loads(result.output)}
    assert rows["corp-on-google.test"]["provider"] == "google"
    assert rows["corp-on-google.test"]["mx"] == "aspmx.l.google.test"
    assert rows["smallbiz.test"]["provider"] == "other"
    assert "one of google's domains" in rows["google-mail.test"]["how"]


def test_check_without_nameservers_is_a_clear_error(tmp_path):
    path = tmp_path / "pw.toml"
    path.write_text(lab_config("127.0.0.1:53").replace('nameservers = ["127.0.0.1:53"]', ""))
    result = runner.invoke(app, ["check", "mx", "x.test", "-c", str(path)])
    assert result.exit_code == 2
    assert "monitors.nameservers" in result.output


def test_route_says_how_the_recipient_domain_was_recognised(knot, tmp_path):
    path = config(tmp_path, knot.port)
    result = runner.invoke(app, ["route", "-r", "ceo@corp-on-google.test", "-t", "clean",
                                 "--json", "-c", str(path)])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["provider"] == "google"  # the decision counted it as Google
    assert data["recognised"]["provider"] == "google"
    assert "aspmx.l.google.test" in data["recognised"]["how"]
    result = runner.invoke(app, ["route", "-r", "x@google-mail.test", "-t", "clean", "-c",
                                 str(path)])
    assert "one of google's domains" in result.output
    result = runner.invoke(app, ["route", "-r", "x@smallbiz.test", "-t", "clean", "--json",
                                 "-c", str(path)])
    data = json.loads(result.output)
    assert data["provider"] == "other" and "no known provider" in data["recognised"]["how"]
