"""Pools and egress IPs: members, tenants riding each pool, active reaction rules,
reputation per IP and the bad-neighbour ranking (operators only: a ranking names
other tenants)."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path

from poolwarden.core.snapshot import Snapshot
from poolwarden.http.access import API_PREFIX, Ctx, Rule, route
from poolwarden.http.models import IpDetail, IpRow, Neighbour, Pool
from poolwarden.services.queries import reaction_report, reports

router = APIRouter(prefix=API_PREFIX, tags=["pools and IPs"])
Address = Annotated[str, Path(max_length=64, description="Egress IP address.")]


def restriction_dicts(snapshot: Snapshot, ips: set[str] | None = None) -> list[dict[str, Any]]:
    return [{k: (v.value if hasattr(v, "value") else v) for k, v in asdict(r).items()}
            for r in snapshot.restrictions.all if ips is None or r.ip in ips]


def pool_rows(snapshot: Snapshot) -> list[dict[str, Any]]:
    riders: dict[str, list[str]] = {}
    for name, entry in snapshot.tenants.items():
        for route_ in (entry.route, entry.major_route, entry.private_route):
            if route_ is not None and route_.pool:
                riders.setdefault(route_.pool, [])
                if name not in riders[route_.pool]:
                    riders[route_.pool].append(name)
    return [{"name": p.name, "kind": p.kind.value,
             "tiers": sorted(t.value for t in p.tiers), "ips": list(p.ips),
             "tenants": sorted(riders.get(p.name, [])),
             "restrictions": restriction_dicts(snapshot, set(p.ips))}
            for p in snapshot.pools.values()]


@route(router, "GET", "/pools", Rule.OPERATOR_READ, response_model=list[Pool],
       summary="Every pool: its IPs, the tenants it carries and active reaction rules")
def list_pools(ctx: Ctx) -> list[dict[str, Any]]:
    return pool_rows(ctx.snapshot())


@route(router, "GET", "/ips", Rule.OPERATOR_READ, response_model=list[IpRow],
       summary="Every egress IP: state, pools, volume and rates")
def list_ips(ctx: Ctx) -> list[dict[str, Any]]:
    return reports.ip_rows(ctx.engine(), ctx.snapshot(), ctx.now())


def ip_detail(ctx: Ctx, address: str) -> dict[str, Any]:
    snapshot = ctx.snapshot()
    if address not in snapshot.ips:
        raise HTTPException(404, "unknown IP")
    now = ctx.now()
    detail = reports.ip_detail(ctx.engine(), snapshot, address, now)
    detail["reactions"] = reaction_report.for_ip(ctx.store, address, now)
    return detail


@route(router, "GET", "/ips/{address}", Rule.OPERATOR_READ, response_model=IpDetail,
       summary="One IP with its rates per provider and its bad-neighbour ranking")
def get_ip(address: Address, ctx: Ctx) -> dict[str, Any]:
    return ip_detail(ctx, address)


@route(router, "GET", "/ips/{address}/neighbours", Rule.OPERATOR_READ,
       response_model=list[Neighbour],
       summary="Which tenant caused which share of the IP's bounces, complaints and traps")
def ip_neighbours(address: Address, ctx: Ctx) -> list[dict[str, Any]]:
    neighbours: list[dict[str, Any]] = ip_detail(ctx, address)["neighbours"]
    return neighbours
