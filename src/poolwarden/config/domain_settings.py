"""Settings of sending domains and DMARC reports, declared once (``config.schema`` uses them).

``[dmarc]`` (report ingest caps and the mailboxes reports arrive at), ``[domains]`` (the DNS
the authentication checks ask and what they expect) and the per-tenant
``[[tenants.sending_domains]]`` entries that give each domain its roles. Pydantic models
only; never reads files.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

DomainRole = Literal["from", "mailfrom", "dkim", "tracking"]
MB = 1024 * 1024


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DmarcSettings(_Section):
    """DMARC aggregate report ingest (poolwarden ingest dmarc, the feedback LMTP listener)."""

    max_report_bytes: int = Field(
        10 * MB, ge=1024, le=100 * MB, description="Largest report accepted as received "
        "(compressed, or plain XML), in bytes; RFC 7489 7.2.1.1 calls ten megabytes a "
        "commonly observed receiver limit. Larger reports are recorded as rejected.")
    max_xml_bytes: int = Field(
        50 * MB, ge=1024, le=1024 * MB, description="Largest report XML after "
        "decompression, in bytes, enforced while decompressing (a compression bomb stops "
        "here, whatever sizes its headers declare).")
    addresses: tuple[str, ...] = Field(
        (), description="Envelope recipients (rua mailboxes, e.g. dmarc@esp.example) whose "
        "mail the feedback LMTP listener treats as DMARC reports. Mail to other "
        "recipients is still read as a DMARC report when its subject starts with "
        "'Report Domain:' (RFC 7489 7.2.1.2).")

    @field_validator("addresses")
    @classmethod
    def _lower(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for address in value:
            if address.count("@") != 1:
                raise ValueError(f"{address!r} is not an e-mail address")
        return tuple(a.strip().lower() for a in value)


class DomainCheckSettings(_Section):
    """Authentication checks of tenant domains: SPF, DKIM keys, DMARC, tracking hosts."""

    nameservers: tuple[str, ...] = Field(
        (), description="DNS servers the checks ask, as IP or IP:PORT. Unset: the system "
        "resolver (/etc/resolv.conf).")
    timeout: float = Field(
        5.0, gt=0, le=60, description="Seconds one DNS lookup may take before the check "
        "reports a temporary error.")
    tracking_target: str | None = Field(
        None, description="The operator's tracking host: a tenant's tracking domain is "
        "branded when it is a CNAME to this name. Unset: tracking domains are not checked.")
    dkim_min_bits: int = Field(
        1024, ge=512, le=8192, description="A DKIM RSA key shorter than this is an error "
        "(RFC 8301: verifiers must not accept keys under 1024 bits).")
    dkim_advised_bits: int = Field(
        2048, ge=512, le=8192, description="A DKIM RSA key shorter than this (but not "
        "under dkim_min_bits) is a warning.")


class SendingDomainSettings(_Section):
    """One domain of a tenant and the roles it plays in the tenant's mail."""

    domain: str = Field(description="The domain name.")
    roles: tuple[DomainRole, ...] = Field(
        ("from", "mailfrom"), min_length=1, description="Roles: from (5322.From, the domain "
        "DMARC protects), mailfrom (5321.MAILFROM / return path, the domain SPF checks), "
        "dkim (DKIM d=, needs dkim_selectors) and tracking (click/open and image host, "
        "checked against domains.tracking_target).")
    dkim_selectors: tuple[str, ...] = Field(
        (), description="DKIM selectors published under this domain (role dkim): each "
        "key at SELECTOR._domainkey.DOMAIN is checked.")
    align: Literal["relaxed", "strict"] | None = Field(
        None, description="Alignment the tenant needs with this From domain, overriding the "
        "adkim/aspf of its DMARC record. Unset: what the DMARC record says.")

    @field_validator("roles")
    @classmethod
    def _no_repeats(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if len(set(value)) != len(value):
            raise ValueError("lists a role more than once")
        return value
