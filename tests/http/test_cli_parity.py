"""CLI parity: every GET route of the API has a ``poolwarden`` command whose ``--json``
prints the same data (``cli.api_cmds.API_PARITY`` maps them; a GET route added without
a command fails here). Both run on the same SQLite store, the CLI in process."""

from __future__ import annotations

import json
import time

from typer.testing import CliRunner

from poolwarden.cli.api_cmds import API_PARITY
from poolwarden.http.access import iter_routes
from poolwarden.main import app as cli
from tests.http.conftest import SHARED_IP, Api, B

VALUES = {"tenant": B, "address": SHARED_IP}


def get_routes(api: Api) -> list[str]:
    return sorted(p for m, p, _ in iter_routes(api.app.routes)
                  if m == "GET" and p.startswith("/api/v1"))


def test_every_get_route_has_a_command(api: Api) -> None:
    assert get_routes(api) == sorted(API_PARITY)


def test_each_command_prints_what_its_route_returns(api: Api) -> None:
    # something in every list: a pin, an audit row, a held count, a decision
    assert api.call("POST", "/api/v1/overrides",
                    json={"tenant": "northwind-news", "tier": "good", "reason": "vip"}
                    ).status_code == 201
    api.ctx.clock = time.time  # the CLI reads the real clock
    for path in get_routes(api):
        url = path.format(**VALUES)
        from_api = api.get(url, token="operator-read")
        assert from_api.status_code == 200, url
        argv = [part.format(**VALUES) for part in API_PARITY[path]]
        result = CliRunner().invoke(cli, [*argv, "--json", "-c", str(api.config_file)])
        assert result.exit_code == 0, (argv, result.output)
        from_cli = json.loads(result.stdout)
        assert from_cli == from_api.json(), (path, argv)
        assert from_cli or path in {"/api/v1/tenants/{tenant}/moves"}  # not vacuous
