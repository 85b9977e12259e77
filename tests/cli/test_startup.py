"""CLI start-up: what ``poolwarden --help`` and ``poolwarden classify`` load, and the
fast entry's answers equal the full command line's."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from poolwarden.entry import USAGE_FILE, main, render_usage

HEAVY = ("sqlalchemy", "fastapi", "starlette", "pydantic", "alembic", "poolwarden.services",
         "poolwarden.adapters", "poolwarden.config.schema", "poolwarden.http")

BOUNCE = b"""From: Mail Delivery System <MAILER-DAEMON@mx.example.org>
To: sender@example.org
Subject: Undelivered Mail Returned to Sender
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status; boundary="B"

--B
Content-Type: text/plain

<nobody@gmail.com>: host gmail-smtp-in.l.google.com[192.0.2.1] said: 550-5.1.1
    The email account that you tried to reach does not exist. (in reply to RCPT TO command)

--B
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.example.org

Final-Recipient: rfc822; nobody@gmail.com
Action: failed
Status: 5.1.1
Remote-MTA: dns; gmail-smtp-in.l.google.com
Diagnostic-Code: smtp; 550-5.1.1 The email account that you tried to reach does not exist.

--B--
"""


def _loaded_after(code: str) -> list[str]:
    probe = (f"import sys\n{code}\n"
             f"print('LOADED:', *(m for m in {HEAVY!r} if any(k == m or k.startswith(m + '.') "
             "for k in sys.modules)))")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          check=True, timeout=120)
    last = done.stdout.splitlines()[-1]
    assert last.startswith("LOADED:")
    return last.split()[1:]


def test_importing_the_command_line_loads_no_store_config_or_web() -> None:
    assert _loaded_after("import poolwarden.cli.main") == []
    assert _loaded_after("import poolwarden.main") == []


def test_fast_entry_classify_loads_neither_the_framework_nor_the_store(tmp_path: Path) -> None:
    eml = tmp_path / "one.eml"
    eml.write_bytes(BOUNCE)
    code = (f"from poolwarden.entry import main\ntry:\n    main(['classify', {str(eml)!r}])\n"
            "except SystemExit:\n    pass")
    assert _loaded_after(code) == []
    probe = code + "\nimport sys\nassert 'typer' not in sys.modules and 'rich' not in sys.modules"
    subprocess.run([sys.executable, "-c", probe], check=True, timeout=120, capture_output=True)


def test_usage_file_matches_the_command_tree() -> None:
    from poolwarden.main import app

    assert USAGE_FILE.read_text(encoding="utf-8") == render_usage(app), (
        "regenerate with: python -m poolwarden.entry --write-usage")


def test_fast_help_prints_the_usage(capsys: pytest.CaptureFixture[str]) -> None:
    main(["--help"])
    assert "classify" in capsys.readouterr().out


def test_fast_classify_json_gives_reply_code_status_diagnostic_and_rule(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    eml = tmp_path / "one.eml"
    eml.write_bytes(BOUNCE)
    with pytest.raises(SystemExit) as done:
        main(["classify", "--json", str(eml)])
    assert done.value.code == 0
    (rcpt,) = json.loads(capsys.readouterr().out)["recipients"]
    assert rcpt["address"] == "nobody@gmail.com"
    assert (rcpt["reason"], rcpt["hard"], rcpt["reply_code"], rcpt["dsn_status"]) == (
        "userunknown", True, "550", "5.1.1")
    assert rcpt["rule"] == "catalogue:google-nouser"
    assert rcpt["diagnostic"].isprintable() and "does not exist" in rcpt["diagnostic"]


def test_fast_classify_hands_options_to_the_full_cli(tmp_path: Path) -> None:
    from poolwarden.entry import _fast_classify

    assert _fast_classify(["--help"]) is None
    assert _fast_classify([]) is None
    assert _fast_classify(["--json"]) is None
