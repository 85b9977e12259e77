"""Pools and egress IPs: members, tenants riding each pool, active reaction rules,
reputation per IP and the bad-neighbour ranking (operators only: a ranking names
other tenants)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path

from poolwarden.http.access import API_PREFIX, Ctx, Rule, route
from poolwarden.http.models import IpDetail, IpRow, Neighbour, Pool
from poolwarden.services.queries import reaction_report, reports
from poolwarden.services.queries.listings import pool_rows

router = APIRouter(prefix=API_PREFIX, tags=["pools and IPs"])
Address = Annotated[str, Path(max_length=64, description="Egress IP address.")]


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
