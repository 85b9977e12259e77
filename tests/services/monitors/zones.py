"""Test zones for the monitors: every built-in blocklist served under ``.dnsbl.test`` by a
real Knot DNS on loopback, with a listed, a clear and an error-coded target each, and MX
records of company domains hosted at the test providers.

The lists keep their built-in answer codes (``core.blocklists.DEFAULT_BLOCKLISTS``); only
the zone moves into ``test.`` so nothing is ever asked outside loopback. ``config_text``
writes the ``[monitors]`` section that points poolwarden at them.
"""

from __future__ import annotations

import os

import pytest

from poolwarden.core.blocklists import DEFAULT_BLOCKLISTS, Blocklist, ListKind, Meaning

LISTED_IP = "127.0.0.2"
CLEAR_IP = "127.0.0.1"
ERROR_IP = "203.0.113.9"  # every list answers 127.255.255.254 for it
OWN_ERROR_DOMAIN = "refused-domain.test"  # lists with their own error code answer it
LISTED_DOMAIN = "spammy-tenant.test"
CLEAR_DOMAIN = "clean-tenant.test"
ERROR_DOMAIN = "error-domain.test"
TIMEOUT_ZONE = "slow.dnsbl.test"  # served by nobody: see DropServer in the tests

PROVIDER_MX = {  # test providers: MX host suffixes under test.
    "google": "google.test", "microsoft": "mail.protection.outlook.test",
    "yahoo": "yahoodns.test",
}


def missing(reason: str) -> None:
    """A real part is missing: skip, or fail under CI=true (the suite must not pass
    without the part it is about)."""
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"CI=true and the real part is missing: {reason}")
    pytest.skip(reason)


def zone_of(name: str) -> str:
    return f"{name}.dnsbl.test"


def lab_lists() -> list[Blocklist]:
    return [Blocklist(b.name, zone_of(b.name), b.kind, b.answers, b.source)
            for b in DEFAULT_BLOCKLISTS]


def first_code(blocklist: Blocklist, means: Meaning) -> str | None:
    return next((c for c, a in blocklist.answers.items() if a.means is means), None)


def _owner(query_name: str) -> str:
    return query_name.removesuffix(".test")  # records are relative to test.


def blocklist_records(lists: list[Blocklist] | None = None) -> list[str]:
    records = []
    for b in lists or lab_lists():
        listed = first_code(b, Meaning.LISTED)
        own_error = first_code(b, Meaning.ERROR)
        if b.kind is ListKind.IP:
            listed_name, error_name = b.query_name(LISTED_IP), b.query_name(ERROR_IP)
        else:
            listed_name, error_name = b.query_name(LISTED_DOMAIN), b.query_name(ERROR_DOMAIN)
            if own_error and own_error not in ("127.255.255.252", "127.255.255.254"):
                records.append(f"{_owner(b.query_name(OWN_ERROR_DOMAIN))} A {own_error}")
        records += [f"{_owner(listed_name)} A {listed}",
                    f'{_owner(listed_name)} TXT "Listed by {b.name}, see https://{b.name}.test/"',
                    f"{_owner(error_name)} A 127.255.255.254"]
    return records


def mx_records() -> list[str]:
    return [
        "gmail MX 5 gmail-smtp-in.l.google", "gmail-smtp-in.l.google A 127.0.1.1",
        "corp-on-google MX 1 aspmx.l.google", "corp-on-google MX 10 alt1.aspmx.l.google",
        "aspmx.l.google A 127.0.1.1", "alt1.aspmx.l.google A 127.0.1.1",
        "corp-on-m365 MX 0 corp-on-m365-test.mail.protection.outlook",
        "corp-on-m365-test.mail.protection.outlook A 127.0.1.3",
        "corp-on-yahoo MX 1 mta5.am0.yahoodns", "mta5.am0.yahoodns A 127.0.1.2",
        "smallbiz MX 10 mail.smallbiz", "mail.smallbiz A 127.0.1.4",
        "nomx A 127.0.1.4", "nullmx MX 0 .",
        # a provider MX only as the backup: the lowest preference decides
        "backup-at-google MX 5 mx.backup-at-google", "backup-at-google MX 50 aspmx.l.google",
        "mx.backup-at-google A 127.0.1.4",
    ]


def providers_toml() -> str:
    """[[providers]] entries that move the built-in providers' MX suffixes into test."""
    out = []
    for name, suffix in PROVIDER_MX.items():
        out.append(f'[[providers]]\nname = "{name}"\ndomains = ["{name}-mail.test"]\n'
                   f'mx_suffixes = ["{suffix}"]\nmajor = true\n')
    return "\n".join(out)


def monitors_toml(nameserver: str, *, extra: str = "") -> str:
    """A [monitors] section using the test lists (built-in codes, zones under test.)."""
    lines = ["[monitors]", f'nameservers = ["{nameserver}"]', "builtin_blocklists = false",
             "timeout = 0.5", "lifetime = 1.0", extra, ""]
    for b in lab_lists():
        lines += ["[[monitors.blocklists]]", f'name = "{b.name}"', f'zone = "{b.zone}"',
                  f'kind = "{b.kind.value}"']
        for code, answer in b.answers.items():
            lines += ["[[monitors.blocklists.answers]]", f'code = "{code}"',
                      f'means = "{answer.means.value}"', f'label = "{answer.label}"']
        lines.append("")
    return "\n".join(lines)


def lab_config(nameserver: str, *, ips: tuple[str, ...] = (LISTED_IP, CLEAR_IP, "127.0.0.3"),
               monitors_extra: str = "", body: str = "",
               pool: tuple[str, ...] | None = None) -> str:
    """A small configuration: a shared pool of ``ips``, a tenant per test domain."""
    ip_lines = "\n".join(f'[[ips]]\naddress = "{a}"\nhelo = "mta{i}.esp.test"\n'
                         for i, a in enumerate(ips))
    quoted = ", ".join(f'"{a}"' for a in (ips if pool is None else pool))
    return f"""\
[store]
url = "sqlite:///pw.db"

{monitors_toml(nameserver, extra=monitors_extra)}
{ip_lines}
[[pools]]
name = "shared"
tiers = ["good", "new", "risky"]
ips = [{quoted}]

[[tenants]]
name = "spammy"
plan = "shared"
domains = ["{LISTED_DOMAIN}"]

[[tenants]]
name = "clean"
plan = "shared"
domains = ["{CLEAR_DOMAIN}", "{ERROR_DOMAIN}"]

{providers_toml()}
{body}"""
