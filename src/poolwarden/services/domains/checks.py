"""Authentication of every tenant domain on every route poolwarden can give it.

For each tenant (``Tenant.domain_roles``) and each route its mail can take — its dedicated
IPs, and every shared pool, because tier moves, warm-up overflow, graduation and reaction
reroutes can each put it there — the checks are:

* **SPF** (MAIL FROM domains): one ``v=spf1`` record, that evaluates without a permanent
  error (syntax, more than ten lookups, redirect loops) and that authorizes every egress IP
  of every route (``ports.SpfEvaluator``: the real evaluation, include/redirect/macros);
  also each pool's own return-path domain for that pool's IPs;
* **DKIM** (d= domains): a key at each selector, ``p=`` present, RSA at least
  ``dkim_min_bits`` (error) and ``dkim_advised_bits`` (warning);
* **DMARC** (From domains): a record at ``_dmarc.DOMAIN`` (or the organizational domain),
  its policy; **alignment** of the From domain with a DKIM d= domain and with a MAIL FROM
  domain of the tenant (relaxed or strict, as the record or the tenant's ``align`` says);
* **tracking** hosts: a CNAME to ``domains.tracking_target``.

Each result is a ``core.auth.Finding`` with the record text and the reason. ``spf_denied``
(``core.auth``) turns the route findings into what ``routing.skip_spf_unauthorized`` needs.
DNS failures give ``unknown`` findings, never a false "missing".
"""

from __future__ import annotations

import base64
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import dkim.crypto  # type: ignore[import-untyped]  # dkimpy ships no type hints

from poolwarden.config.domain_settings import DomainCheckSettings
from poolwarden.core.auth import ERROR, OK, UNKNOWN, WARNING, Finding, tags
from poolwarden.core.domains import aligned, organizational_domain
from poolwarden.core.inventory import canonical_ip
from poolwarden.core.model import DomainRole, Inventory, PoolKind, SendingDomain, Tenant
from poolwarden.ports import DnsTemporaryError, Resolver, SpfEvaluator

# an IP that no real SPF record authorizes: evaluating it walks every mechanism, so the
# lookup count and any syntax error show up whatever the record's order
_PROBE_IP = "0.0.0.1"
SPF_AUTHORIZED = frozenset({"pass"})


@dataclass(frozen=True, slots=True)
class RouteIps:
    """One way out for a tenant's mail: its name and egress IPs."""

    name: str
    why: str
    ips: tuple[str, ...]


def routes_for(tenant: Tenant, inventory: Inventory) -> list[RouteIps]:
    """Every route poolwarden may give ``tenant``: its own IPs, then each shared pool."""
    out: list[RouteIps] = []
    if tenant.dedicated_ips:
        out.append(RouteIps(f"dedicated:{tenant.name}", "its dedicated IPs",
                            tuple(canonical_ip(a) for a in tenant.dedicated_ips)))
    for pool in inventory.pools:
        if pool.kind is PoolKind.SHARED:
            tiers = ", ".join(sorted(t.value for t in pool.tiers)) or "no tier"
            out.append(RouteIps(pool.name, f"shared pool for tier {tiers} (tier moves, "
                                "overflow, graduation, reroutes)",
                                tuple(canonical_ip(a) for a in pool.ips)))
    return out


class DomainChecker:
    def __init__(self, resolver: Resolver, spf: SpfEvaluator,
                 settings: DomainCheckSettings) -> None:
        self.resolver = resolver
        self.spf = spf
        self.settings = settings

    def check_inventory(self, inventory: Inventory, tenants: Iterable[str] | None = None
                        ) -> list[Finding]:
        wanted = set(tenants) if tenants is not None else None
        found: list[Finding] = []
        for tenant in inventory.tenants:
            if wanted is None or tenant.name in wanted:
                found += self.check_tenant(tenant, inventory)
        if wanted is None:
            found += self.check_return_paths(inventory)
        return found

    def check_tenant(self, tenant: Tenant, inventory: Inventory) -> list[Finding]:
        routes = routes_for(tenant, inventory)
        found: list[Finding] = []
        roles = tenant.domain_roles()
        for sd in roles:
            if DomainRole.MAILFROM in sd.roles:
                found += self._spf(tenant.name, sd.domain, routes)
            if DomainRole.DKIM in sd.roles:
                found += [self._dkim(tenant.name, sd.domain, s) for s in sd.dkim_selectors]
            if DomainRole.TRACKING in sd.roles:
                found.append(self._tracking(tenant.name, sd.domain))
        for sd in roles:
            if DomainRole.FROM in sd.roles:
                found += self._dmarc(tenant.name, sd.domain, sd.align, roles)
        return found

    def check_return_paths(self, inventory: Inventory) -> list[Finding]:
        found: list[Finding] = []
        for pool in inventory.pools:
            if pool.return_path_domain is None:
                continue
            route = RouteIps(pool.name, "the pool's own return path",
                             tuple(canonical_ip(a) for a in pool.ips))
            for f in self._spf(None, pool.return_path_domain, [route]):
                found.append(Finding(f.tenant, f.domain, "return-path", f.status, f.reason,
                                     f.record, f.route, f.ip))
        return found

    # -- SPF ----------------------------------------------------------------------------

    def _spf(self, tenant: str | None, domain: str, routes: list[RouteIps]) -> list[Finding]:
        try:
            records = [t for t in self.resolver.txt(domain)
                       if t.lower().startswith("v=spf1") and (len(t) == 6 or t[6] == " ")]
        except DnsTemporaryError as exc:
            return [Finding(tenant, domain, "spf", UNKNOWN, str(exc))]
        if not records:
            return [Finding(tenant, domain, "spf", ERROR, f"no SPF record at {domain}: "
                            "receivers treat its mail as SPF none, so DMARC rests on DKIM")]
        if len(records) > 1:
            return [Finding(tenant, domain, "spf", ERROR, f"{len(records)} SPF records at "
                            f"{domain}: RFC 7208 4.5 makes that a permerror",
                            " | ".join(records))]
        record = records[0]
        probe = self.spf.evaluate(domain, _PROBE_IP)
        if probe.result in ("permerror", "temperror"):
            status = ERROR if probe.result == "permerror" else UNKNOWN
            return [Finding(tenant, domain, "spf", status, f"SPF evaluation gives "
                            f"{probe.result}: {probe.explanation}", record)]
        out = [Finding(tenant, domain, "spf", OK, f"SPF record parses, {probe.lookups} of "
                       "10 DNS lookups", record)]
        for route in routes:
            for ip in route.ips:
                verdict = self.spf.evaluate(domain, ip)
                if verdict.result in SPF_AUTHORIZED:
                    out.append(Finding(tenant, domain, "spf-route", OK,
                                       f"{ip} is authorized ({route.why})", record,
                                       route.name, ip))
                elif verdict.result == "temperror":
                    out.append(Finding(tenant, domain, "spf-route", UNKNOWN,
                                       f"{ip}: {verdict.explanation}", record, route.name, ip))
                else:
                    out.append(Finding(tenant, domain, "spf-route", ERROR,
                                       f"{ip} ({route.name}: {route.why}) is not authorized: "
                                       f"SPF {verdict.result}; mail from {domain} leaving "
                                       "there fails SPF", record, route.name, ip))
        return out

    # -- DKIM ---------------------------------------------------------------------------

    def _dkim(self, tenant: str, domain: str, selector: str) -> Finding:
        name = f"{selector}._domainkey.{domain}"
        try:
            records = [t for t in self.resolver.txt(name) if "p=" in t]
        except DnsTemporaryError as exc:
            return Finding(tenant, domain, "dkim", UNKNOWN, str(exc))
        if not records:
            return Finding(tenant, domain, "dkim", ERROR, f"no DKIM key at {name}")
        record = records[0]
        t = tags(record)
        if not t.get("p"):
            return Finding(tenant, domain, "dkim", ERROR, f"the key at {name} is revoked "
                           "(empty p=)", record)
        kind = t.get("k", "rsa").lower()
        if kind != "rsa":
            return Finding(tenant, domain, "dkim", OK, f"{kind} key at {name}", record)
        try:
            bits = int(dkim.crypto.parse_public_key(base64.b64decode(t["p"]))["modulus"]
                       .bit_length())
        except Exception as exc:  # junk base64 or DER: the key cannot verify anything
            return Finding(tenant, domain, "dkim", ERROR, f"the key at {name} does not "
                           f"parse: {type(exc).__name__}", record)
        if bits < self.settings.dkim_min_bits:
            return Finding(tenant, domain, "dkim", ERROR, f"{bits}-bit RSA key at {name}: "
                           f"under {self.settings.dkim_min_bits} bits, verifiers reject it",
                           record)
        if bits < self.settings.dkim_advised_bits:
            return Finding(tenant, domain, "dkim", WARNING, f"{bits}-bit RSA key at {name}: "
                           f"{self.settings.dkim_advised_bits} bits advised", record)
        return Finding(tenant, domain, "dkim", OK, f"{bits}-bit RSA key at {name}", record)

    # -- DMARC and alignment ------------------------------------------------------------

    def _dmarc_record(self, domain: str) -> tuple[str | None, str]:
        for name in dict.fromkeys((f"_dmarc.{domain}",
                                   f"_dmarc.{organizational_domain(domain)}")):
            found = [t for t in self.resolver.txt(name) if t.lower().startswith("v=dmarc1")]
            if found:
                return found[0], name
        return None, f"_dmarc.{domain}"

    def _dmarc(self, tenant: str, domain: str, align: str | None,
               roles: tuple[SendingDomain, ...]) -> list[Finding]:
        try:
            record, name = self._dmarc_record(domain)
        except DnsTemporaryError as exc:
            return [Finding(tenant, domain, "dmarc", UNKNOWN, str(exc))]
        out: list[Finding] = []
        t = tags(record) if record else {}
        if record is None:
            out.append(Finding(tenant, domain, "dmarc", ERROR, f"no DMARC record at {name}: "
                               "Gmail and Yahoo require one of bulk senders"))
        elif t.get("p", "").lower() not in ("none", "quarantine", "reject"):
            out.append(Finding(tenant, domain, "dmarc", ERROR, f"DMARC record at {name} has "
                               f"no valid p= ({t.get('p', 'missing')})", record))
        else:
            policy = t["p"].lower()
            status = WARNING if policy == "none" else OK
            out.append(Finding(tenant, domain, "dmarc", status, f"DMARC p={policy}"
                               + (" (monitoring only)" if policy == "none" else "")
                               + (f", rua={t['rua']}" if t.get("rua") else ", no rua: no "
                                  "aggregate reports"), record))
        dkim_domains = [r.domain for r in roles if DomainRole.DKIM in r.roles]
        mailfrom = [r.domain for r in roles if DomainRole.MAILFROM in r.roles]
        adkim = align or t.get("adkim", "r")
        aspf = align or t.get("aspf", "r")
        for check, mode, candidates, what in (("dkim", adkim, dkim_domains, "DKIM d="),
                                              ("spf", aspf, mailfrom, "MAIL FROM")):
            mode_text = "strict" if mode in ("s", "strict") else "relaxed"
            hits = [c for c in candidates if aligned(c, domain, mode)]
            if hits:
                out.append(Finding(tenant, domain, "alignment", OK, f"{what} {hits[0]} "
                                   f"aligns with From {domain} ({mode_text})", record))
            else:
                status = ERROR if check == "dkim" or not dkim_domains else WARNING
                listed = ", ".join(candidates) or "none declared"
                out.append(Finding(tenant, domain, "alignment", status, f"no {what} domain "
                                   f"aligns with From {domain} ({mode_text}; {listed})",
                                   record))
        return out

    # -- tracking -----------------------------------------------------------------------

    def _tracking(self, tenant: str, domain: str) -> Finding:
        target = self.settings.tracking_target
        if target is None:
            return Finding(tenant, domain, "tracking", UNKNOWN, "domains.tracking_target is "
                           "not set: tracking hosts are not checked")
        try:
            found = self.resolver.cname(domain)
        except DnsTemporaryError as exc:
            return Finding(tenant, domain, "tracking", UNKNOWN, str(exc))
        want = target.lower().rstrip(".")
        if found == want:
            return Finding(tenant, domain, "tracking", OK, f"branded: CNAME to {want}",
                           f"{domain} CNAME {found}")
        if found is None:
            return Finding(tenant, domain, "tracking", ERROR, f"{domain} is not a CNAME to "
                           f"the tracking host {want}")
        return Finding(tenant, domain, "tracking", ERROR, f"{domain} is a CNAME to {found}, "
                       f"not to the tracking host {want}", f"{domain} CNAME {found}")


def by_tenant(findings: Iterable[Finding]) -> Mapping[str | None, list[Finding]]:
    out: dict[str | None, list[Finding]] = {}
    for f in findings:
        out.setdefault(f.tenant, []).append(f)
    return out
