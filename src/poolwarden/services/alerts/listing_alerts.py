"""Alerts for DNS blocklists: each listing and delisting, and pools whose every IP is listed.

A listing of an egress IP says which list, what its answer code means, the list's own
text, what poolwarden did (drained, or alert only) and the bad-neighbour ranking of the
tenants that sent from that IP in the tier window before the listing. A delisting says
the IP is back. A shared pool whose every IP is listed is a standing condition: its mail
is deferred (or sent anyway when ``send_when_all_listed``), and the alert says so until it
clears. Reads the listing store and, for rankings, the engine the alerter hands in.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from poolwarden.config.load import LoadedConfig
from poolwarden.core.blocklists import listed_ips
from poolwarden.ports import ListingChange, ListingStore
from poolwarden.services.alerts.channels import Alert

KINDS = ("blocklist_listed", "blocklist_delisted")
RANKED = 5  # tenants named in the text; the numbers carry the whole ranking


class ListingAlerts:
    def __init__(self, started: float) -> None:
        self.mark = started  # time of the newest change already alerted

    def remember(self, kind: str, numbers: dict[str, Any]) -> None:
        """A change alerted before a restart (from the stored alerts)."""
        at = numbers.get("change_at")
        if kind in KINDS and isinstance(at, int | float) and at > self.mark:
            self.mark = float(at)

    def detect(self, store: ListingStore, config: LoadedConfig, now: float,
               engine: Callable[[LoadedConfig, float], Any] | None,
               link: Callable[[str, str], str]) -> list[Alert]:
        listings = store
        changes = [c for c in listings.listing_history(limit=1000) if c.at > self.mark]
        if changes:
            self.mark = max(c.at for c in changes)
        # one engine for the whole batch (it loads every day counter): rankings end today
        ranker: list[Any] = []

        def ranking_engine(config: LoadedConfig, at: float) -> Any:
            if not ranker:
                assert engine is not None
                ranker.append(engine(config, now))
            return ranker[0]

        alerts = [self._change(c, config, None if engine is None else ranking_engine, link)
                  for c in
                  sorted(changes, key=lambda c: c.at)]
        return alerts + self._all_listed(config, listed_ips(listings.listings()), now, link)

    def _change(self, c: ListingChange, config: LoadedConfig,
                engine: Callable[[LoadedConfig, float], Any] | None,
                link: Callable[[str, str], str]) -> Alert:
        numbers: dict[str, Any] = {
            "change_at": c.at, "list": c.list, "codes": list(c.codes), "meaning": c.meaning,
            "reason": c.reason, "consequence": c.consequence, "kind": c.kind}
        text = (f"{c.target} {c.change} on {c.list}: {', '.join(c.codes) or '-'} "
                f"({c.meaning or 'no listing'}). {c.reason} Consequence: {c.consequence}.")
        if c.kind == "ip" and c.change == "listed" and engine is not None:
            ranking = [r.as_dict() for r in engine(config, c.at).neighbours(c.target, c.at)]
            numbers["neighbours"] = ranking
            if ranking:
                text += " Tenants on this IP before the listing, worst first: " + "; ".join(
                    f"{r['tenant']} (harm {r['harm']:.0%}, {r['volume']} sent, "
                    f"{r['hard_bounces']} hard bounces, {r['complaints']} complaints, "
                    f"{r['trap_hits']} trap hits)" for r in ranking[:RANKED]) + "."
        owner = next((t.name for t in config.inventory.tenants if c.target in t.domains), None)
        page = link("ips", c.target) if c.kind == "ip" else (
            link("tenants", owner) if owner else link("", ""))
        return Alert(key=f"blocklist_{c.change}:{c.target}:{c.list}:{c.at!r}",
                     kind=f"blocklist_{c.change}",
                     subject=f"{c.target} {c.change} on {c.list}", text=text.strip(),
                     link=page, at=c.at, numbers=numbers,
                     tenant=owner, ip=c.target if c.kind == "ip" else None)

    def _all_listed(self, config: LoadedConfig, listed: dict[str, str], now: float,
                    link: Callable[[str, str], str]) -> list[Alert]:
        settings = config.settings.monitors
        alerts = []
        for pool in config.inventory.pools:
            if not pool.ips or not all(a in listed for a in pool.ips):
                continue
            what = ("sent anyway from the listed IPs (send_when_all_listed = true)"
                    if settings.send_when_all_listed else "deferred: it waits in the queue")
            if settings.on_listing != "drain":
                what = "still sent from them (on_listing = \"alert\")"
            alerts.append(Alert(
                key=f"pool_all_listed:{pool.name}", kind="pool_all_listed",
                subject=f"every IP of pool {pool.name} is listed",
                text=(f"Every IP of pool {pool.name} is on a DNS blocklist: "
                      + "; ".join(f"{a}: {listed[a]}" for a in pool.ips)
                      + f". The pool's mail is {what}."),
                link=link("", ""), at=now,
                numbers={"pool": pool.name, "ips": {a: listed[a] for a in pool.ips},
                         "standing": True}, standing=True))
        return alerts
