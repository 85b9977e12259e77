"""Report builders for the DMARC tests: a valid report, its containers, and hostile inputs.

Everything is generated in the test (no network, no fixtures from elsewhere) so each case
states exactly what it sends.
"""

from __future__ import annotations

import gzip
import io
import os
import resource
import subprocess
import sys
import zipfile
import zlib
from email.message import EmailMessage
from pathlib import Path

from poolwarden.core.model import Inventory
from poolwarden.testing.builders import small_esp

REPO = Path(__file__).resolve().parents[3]
MB = 1024 * 1024


def report_xml(*, report_id: str = "r-1", org: str = "google.com", domain: str = "shop.example",
               records: list[tuple[str, int, str, str]] | None = None,
               begin: int = 1_700_000_000, end: int | None = None,
               policy: str | None = "<p>reject</p><adkim>r</adkim><aspf>r</aspf>",
               extra: str = "") -> bytes:
    """A report; ``records`` are (source IP, count, dkim, spf) for header_from ``domain``."""
    rows = records if records is not None else [("127.0.0.13", 10, "pass", "pass")]
    body = "".join(
        f"<record><row><source_ip>{ip}</source_ip><count>{n}</count><policy_evaluated>"
        f"<disposition>none</disposition><dkim>{dk}</dkim><spf>{sp}</spf>"
        f"</policy_evaluated></row><identifiers><header_from>{domain}</header_from>"
        f"</identifiers><auth_results><dkim><domain>{domain}</domain><selector>s1</selector>"
        f"<result>{dk}</result></dkim><spf><domain>{domain}</domain><result>{sp}</result>"
        f"</spf></auth_results></record>" for ip, n, dk, sp in rows)
    published = (f"<policy_published><domain>{domain}</domain>{policy}</policy_published>"
                 if policy is not None else "")
    return (f'<?xml version="1.0" encoding="UTF-8"?>\n<feedback><report_metadata>'
            f"<org_name>{org}</org_name><email>noreply@{org}</email>"
            f"<report_id>{report_id}</report_id><date_range><begin>{begin}</begin>"
            f"<end>{end if end is not None else begin + 86399}</end></date_range>"
            f"</report_metadata>{published}{extra}{body}</feedback>\n").encode()


def gz(data: bytes) -> bytes:
    return gzip.compress(data)


def zipped(members: list[tuple[str, bytes]]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members:
            archive.writestr(name, data)
    return buf.getvalue()


def gzip_bomb(size: int, prefix: bytes = b"<feedback>", *, text: bool = False) -> bytes:
    """A gzip stream of ``prefix`` and ``size`` spaces (deflate's best ratio, ~1000:1);
    with ``text``, a '>' every KB (legal in text) so it is not one endless token."""
    comp = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    parts = [comp.compress(prefix)]
    block = (b" " * 1023 + b">") * 1024 if text else b" " * MB
    for _ in range(size // MB):
        parts.append(comp.compress(block))
    parts.append(comp.flush())
    return b"".join(parts)


def zip_with_declared_size(data: bytes, declared: int) -> bytes:
    """A one-member zip whose headers (local and central) declare ``declared`` bytes."""
    raw = bytearray(zipped([("report.xml", data)]))
    local = raw.find(b"PK\x03\x04")
    raw[local + 22:local + 26] = declared.to_bytes(4, "little")
    central = raw.find(b"PK\x01\x02")
    raw[central + 24:central + 28] = declared.to_bytes(4, "little")
    return bytes(raw)


def mail_with(attachments: list[tuple[str, str, bytes]], *, subject: str = "Report Domain: "
              "shop.example Submitter: google.com Report-ID: r-1", body: str = "report attached"
              ) -> bytes:
    """A report mail; attachments are (filename, content type, bytes)."""
    msg = EmailMessage()
    msg["From"] = "noreply-dmarc-support@google.com"
    msg["To"] = "dmarc@esp.test"
    msg["Subject"] = subject
    msg["Message-ID"] = f"<{os.urandom(6).hex()}@google.com>"
    msg.set_content(body)
    for filename, ctype, data in attachments:
        maintype, subtype = ctype.split("/")
        msg.add_attachment(data, maintype=maintype, subtype=subtype, filename=filename)
    return msg.as_bytes(policy=msg.policy.clone(linesep="\r\n"))  # SMTP line ends


def inventory() -> Inventory:
    """``small_esp`` (tenants shop, news, ...): shop.example belongs to tenant shop."""
    return small_esp()


def peak_rss_of(script: str, *args: str) -> tuple[int, str]:
    """Run ``script`` in a fresh interpreter; (peak RSS growth in bytes after its imports,
    stdout). The script calls ``mark()`` once its imports are done."""
    prelude = ("import resource, sys\n"
               "def mark():\n"
               "    global BASE\n"
               "    BASE = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n")
    tail = ("\nprint('PEAK', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - BASE)\n")
    done = subprocess.run([sys.executable, "-c", prelude + script + tail, *args],
                          capture_output=True, text=True, timeout=120, cwd=REPO,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    peak = next(int(line.split()[1]) for line in lines if line.startswith("PEAK"))
    return peak * 1024, "\n".join(line for line in lines if not line.startswith("PEAK"))


_ = resource  # the child uses it; imported here so a missing module fails the collection
