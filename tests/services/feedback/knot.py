"""A real DNS server for tests: Knot DNS on 127.0.0.1, serving one zone ``test.``.

``shared/dns-recipe.md``: knotd on a free loopback port, zone files from a temporary
directory, ready when the SOA answers with the expected serial. DKIM keys are made with
the ``openssl`` command (the RSA key pair a signer keeps and the public half published as
``SELECTOR._domainkey.DOMAIN TXT``). Nothing is ever asked of the machine's resolver.
"""

from __future__ import annotations

import base64
import contextlib
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import dns.message
import dns.query
import dns.rdatatype

from tests.support.real_parts import missing

KNOTD = shutil.which("knotd", path="/usr/sbin:/usr/bin:/sbin:/bin")
OPENSSL = shutil.which("openssl")


@dataclass(frozen=True, slots=True)
class DkimKey:
    selector: str
    domain: str
    private_pem: bytes
    public_b64: str

    def txt(self) -> str:
        value = f"v=DKIM1; k=rsa; p={self.public_b64}"
        # one TXT record of <=255-byte strings, joined without separator by the reader
        chunks = [value[i:i + 255] for i in range(0, len(value), 255)]
        return " ".join(f'"{c}"' for c in chunks)


def make_key(selector: str, domain: str, workdir: Path, bits: int = 2048) -> DkimKey:
    if OPENSSL is None:
        missing("openssl is not installed")
    pem = workdir / f"{selector}.{domain}.pem"
    subprocess.run([OPENSSL, "genrsa", "-out", str(pem), str(bits)], check=True,
                   capture_output=True)
    der = subprocess.run([OPENSSL, "rsa", "-in", str(pem), "-pubout", "-outform", "DER"],
                         check=True, capture_output=True).stdout
    return DkimKey(selector, domain, pem.read_bytes(), base64.b64encode(der).decode())


def _free_port() -> int:
    """A port free for both UDP and TCP on 127.0.0.1 right now (knotd binds both)."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            udp.bind(("127.0.0.1", 0))
            port: int = udp.getsockname()[1]
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
                try:
                    tcp.bind(("127.0.0.1", port))
                except OSError:
                    continue
                return port


class PortTakenError(RuntimeError):
    pass


class KnotServer:
    """knotd serving ``test.`` from ``records`` (zone-file lines relative to ``test.``)."""

    def __init__(self, workdir: Path, *, prefix: list[str] | None = None,
                 port: int | None = None) -> None:
        self.dir = workdir
        self.port = port or _free_port()
        self.serial = 1
        self.process: subprocess.Popen[bytes] | None = None
        # argv before knotd, e.g. nsenter into a lab's network namespace
        self.prefix = prefix or []

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _write_zone(self, records: list[str]) -> None:
        zones = self.dir / "zones"
        zones.mkdir(exist_ok=True)
        lines = ["$ORIGIN test.", "$TTL 5",
                 f"@ IN SOA ns.test. hostmaster.test. {self.serial} 3600 600 86400 5",
                 "@ IN NS ns.test.", "ns IN A 127.0.0.1", *records]
        (zones / "test.zone").write_text("\n".join(lines) + "\n")

    def start(self, records: list[str], attempts: int = 3) -> None:
        """Start knotd; on another port when the chosen one was taken meanwhile."""
        for attempt in range(attempts):
            try:
                self._start(records)
                return
            except PortTakenError:
                if attempt == attempts - 1:
                    raise
                self.port = _free_port()

    def _start(self, records: list[str]) -> None:
        if KNOTD is None:
            missing("knotd is not installed (scripts/setup.sh installs knot)")
        run = self.dir / "run"
        (run / "db").mkdir(parents=True, exist_ok=True)
        self._write_zone(records)
        conf = self.dir / "knot.conf"
        conf.write_text(f"""\
server:
    rundir: {run}
    listen: 127.0.0.1@{self.port}
    udp-workers: 1
    tcp-workers: 1
    background-workers: 1
database:
    storage: {run / 'db'}
log:
  - target: {run / 'knot.log'}
    any: info
template:
  - id: default
    storage: {self.dir / 'zones'}
    file: "%s.zone"
    zonefile-sync: -1
    zonefile-load: whole
    journal-content: none
zone:
  - domain: test
""")
        self.process = subprocess.Popen([*self.prefix, KNOTD, "-c", str(conf)],
                                        stdin=subprocess.DEVNULL,
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 10
        while self.soa_serial() != self.serial:
            if self.process.poll() is not None or time.time() > deadline:
                log = (run / "knot.log").read_text() if (run / "knot.log").exists() else ""
                self.stop()
                if "address already in use" in log:
                    raise PortTakenError(log)
                raise RuntimeError(f"knotd did not serve the zone:\n{log}")
            time.sleep(0.02)

    def reload(self, records: list[str]) -> None:
        """Serve ``records`` instead: new zone file (serial + 1), ``knotc zone-reload``,
        ready once the new serial answers (a zone with a semantic error never does)."""
        self.serial += 1
        self._write_zone(records)
        knotc = shutil.which("knotc", path="/usr/sbin:/usr/bin:/sbin:/bin")
        assert knotc is not None, "knotc is not installed"
        subprocess.run([knotc, "-c", str(self.dir / "knot.conf"), "zone-reload", "test"],
                       check=True, capture_output=True)
        deadline = time.time() + 5
        while self.soa_serial() != self.serial:
            if time.time() > deadline:
                raise RuntimeError("knotd did not load the new zone: "
                                   + (self.dir / "run" / "knot.log").read_text()[-2000:])
            time.sleep(0.01)

    def soa_serial(self) -> int | None:
        query = dns.message.make_query("test.", dns.rdatatype.SOA)
        try:
            answer = dns.query.udp(query, "127.0.0.1", port=self.port, timeout=0.2)
        except (OSError, dns.exception.Timeout):
            return None
        for rrset in answer.answer:
            for rdata in rrset:
                return int(rdata.serial)  # type: ignore[attr-defined]
        return None

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(5)
            if self.process.poll() is None:
                self.process.kill()
                self.process.wait()


@contextlib.contextmanager
def knot(workdir: Path, records: list[str]) -> Iterator[KnotServer]:
    server = KnotServer(workdir)
    server.start(records)
    try:
        yield server
    finally:
        server.stop()
