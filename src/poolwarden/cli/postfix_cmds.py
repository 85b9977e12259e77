"""``poolwarden postfix config|check`` and ``poolwarden hold release``: the Postfix side.

``postfix config`` prints the main.cf and master.cf pieces for the current inventory
(``adapters.postfix_conf``); ``postfix check`` runs ``postconf -c DIR -n``, reads
``DIR/master.cf`` and prints every mismatch with the inventory (exit 1 when any).
``hold release TENANT`` releases a tenant's held mail with ``postsuper -H`` (which keeps the
route the agent stored with the message; ``-r`` would drop it) once the tenant may send again.
Errors print one line on stderr and exit with status 2.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from poolwarden.cli.common import ConfigOption, config_path, err, fail, out
from poolwarden.core.errors import PoolwardenError

if TYPE_CHECKING:
    from poolwarden.adapters.postqueue import HeldMessage

postfix_app = typer.Typer(no_args_is_help=True,
                          help="Postfix configuration for the routing agent: generate, check.")
hold_app = typer.Typer(no_args_is_help=True, help="Mail Postfix holds for suspended tenants.")

PostfixDirOption = Annotated[Path | None, typer.Option(
    "--postfix-config", help="Postfix configuration directory (postfix -c DIR) [default: "
    "the policyd.postfix_config_dir setting, else Postfix's default].", show_default=False)]

def _load(option: Path | None) -> Any:
    from poolwarden.config.load import load_config

    try:
        return load_config(config_path(option))
    except PoolwardenError as exc:
        fail(str(exc))


def _postfix_dir(option: Path | None, config: Any) -> Path | None:
    if option is not None:
        return option
    setting = config.settings.policyd.postfix_config_dir
    return Path(setting) if setting else None


def _tool(name: str, directory: Path | None, *args: str, stdin: str | None = None) -> str:
    from poolwarden.adapters.postqueue import PostfixToolError, run_tool

    try:
        return run_tool(name, directory, *args, stdin=stdin, timeout=120)
    except PostfixToolError as exc:
        fail(str(exc))


# -- postfix config / check ------------------------------------------------------------------


@postfix_app.command("config")
def postfix_config(
    config: ConfigOption = None,
    policy: Annotated[str | None, typer.Option(
        "--policy", help="Policy endpoint in Postfix's syntax (unix:private/poolwarden or "
        "inet:127.0.0.1:10040) [default: the first policyd.listen entry, by default the unix "
        "socket].",
        show_default=False)] = None,
    part: Annotated[str, typer.Option(help="Which piece: main, master or both.")] = "both",
    bounce_ip: Annotated[str | None, typer.Option(
        "--bounce-ip", help="Egress IP for Postfix's own bounces [default: the first usable "
        "IP of the pool serving tier good].", show_default=False)] = None,
    reroute: Annotated[bool, typer.Option(
        "--reroute", help="Add the pw-reroute pipe and the loopback smtpd (127.0.0.1:10026) "
        "that move queued mail off a drained, listed or paused IP (monitors.move_queued).")]
    = False,
    reroute_done: Annotated[str, typer.Option(
        "--reroute-done", help="Directory, writable by user nobody, where the reroute helper "
        "marks what it submitted (exactly once).")] = "/var/lib/poolwarden/reroute",
) -> None:
    """Print the main.cf and master.cf pieces for the current inventory."""
    from poolwarden.adapters.postfix_conf import main_cf, master_cf, postfix_endpoint
    from poolwarden.adapters.postfix_reroute import reroute_main_cf, reroute_master_cf

    loaded = _load(config)
    if part not in ("main", "master", "both"):
        fail("--part is main, master or both")
    try:
        endpoint = postfix_endpoint(policy or loaded.settings.policyd.listen[0])
        main_text = main_cf(loaded.inventory, policy_endpoint=endpoint,
                            bounce_ip=bounce_ip or "auto",
                            tenant_lookup=loaded.settings.routing.tenant_lookup)
    except ValueError as exc:
        fail(str(exc))
    master_text = master_cf(loaded.inventory)
    if reroute:
        main_text += reroute_main_cf(endpoint)
        master_text += reroute_master_cf(
            [sys.executable, "-m", "poolwarden.adapters.reroute_pipe"], reroute_done)
    if part in ("main", "both"):
        sys.stdout.write("# ===== main.cf =====\n" if part == "both" else "")
        sys.stdout.write(main_text)
    if part in ("master", "both"):
        sys.stdout.write("\n# ===== master.cf =====\n" if part == "both" else "")
        sys.stdout.write(master_text)


@postfix_app.command("check")
def postfix_check(
    config: ConfigOption = None,
    postfix_config_dir: PostfixDirOption = None,
    policy: Annotated[str | None, typer.Option(
        "--policy", help="The policy endpoint Postfix must use (Postfix or policyd syntax) "
        "[default: any check_policy_service].", show_default=False)] = None,
) -> None:
    """Check a Postfix configuration against the inventory; print each mismatch."""
    from poolwarden.adapters.postfix_conf import check

    loaded = _load(config)
    directory = _postfix_dir(postfix_config_dir, loaded)
    postconf_n = _tool("postconf", directory, "-n")
    master_dir = directory
    if master_dir is None:
        master_dir = Path(_tool("postconf", None, "-h", "config_directory").strip())
    try:
        master_text = (master_dir / "master.cf").read_text(encoding="utf-8")
    except OSError as exc:
        fail(f"cannot read {master_dir / 'master.cf'}: {exc}")
    problems = check(loaded.inventory, postconf_n, master_text, policy,
                     tenant_lookup=loaded.settings.routing.tenant_lookup,
                     idle_timeout=loaded.settings.policyd.idle_timeout)
    where = str(master_dir)
    if not problems:
        out.print(f"ok: Postfix in {where} routes all {len(loaded.inventory.ips)} egress IPs "
                  "through poolwarden")
        return
    for problem in problems:
        out.print(f"mismatch: {problem}", markup=False)
    out.print(f"{len(problems)} mismatches in {where}")
    raise typer.Exit(1)


# -- hold release ------------------------------------------------------------------------


@hold_app.command("release")
def hold_release(
    tenant: Annotated[str, typer.Argument(help="Tenant whose held mail to release.")],
    config: ConfigOption = None,
    postfix_config_dir: PostfixDirOption = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="List, release nothing.")] = False,
) -> None:
    """Release a tenant's held mail (postsuper -H, keeping its route) once it may send."""
    from poolwarden.adapters.postqueue import PostfixToolError
    from poolwarden.adapters.sqlstore import open_store
    from poolwarden.services.queries.held import HELD_STANDINGS, hold_queue_by_tenant
    from poolwarden.services.reputation.engine import Engine

    loaded = _load(config)
    names = {t.name for t in loaded.inventory.tenants}
    if tenant not in names:
        fail(f"unknown tenant '{tenant}'")
    directory = _postfix_dir(postfix_config_dir, loaded)
    try:
        store = open_store(loaded.store_url)
    except PoolwardenError as exc:
        fail(str(exc))
    try:
        standing = Engine(loaded, store, now=time.time()).standings()[tenant]
        if standing.tier.value in HELD_STANDINGS:
            fail(f"tenant '{tenant}' is {standing.tier.value}: its mail stays held until it "
                  "may send again (poolwarden override … --tier …)", 1)
        try:
            queue = hold_queue_by_tenant(loaded, store, directory, timeout=120)
        except PostfixToolError as exc:
            fail(str(exc))
    finally:
        store.close()
    mine = queue.by_tenant.get(tenant, [])
    by_log, total = queue.by_log.get(tenant, 0), queue.total
    if not mine:
        out.print(f"{tenant}: no held mail ({total} held messages in all)")
        return
    if dry_run:
        for message in mine:
            out.print(f"would release {message.queue_id} from {message.sender or '<>'} "
                      f"({message.recipients} recipients)", markup=False)
    else:
        _tool("postsuper", directory, "-H", "-", stdin="".join(m.queue_id + "\n" for m in mine))
    _warn_expired(mine, directory)
    verb = "would release" if dry_run else "released"
    out.print(f"{tenant}: {verb} {len(mine)} held messages "
              f"({sum(m.recipients for m in mine)} recipients); {total - len(mine)} other "
              f"held messages left; tenant found by the decision log for {by_log}, by sender "
              f"domain for the rest", markup=False)


def _warn_expired(messages: list[HeldMessage], directory: Path | None) -> None:
    """-H keeps the route but not the clock: a message held longer than
    maximal_queue_lifetime bounces at its first temporary failure after release."""
    from poolwarden.adapters.postfix_conf import seconds

    text = _tool("postconf", directory, "-h", "maximal_queue_lifetime").strip()
    lifetime = seconds(text)
    if lifetime is None:
        return
    now = time.time()
    old = [m for m in messages if m.arrival_time and now - m.arrival_time > lifetime]
    if old:
        err.print(f"warning: {len(old)} of these messages were held longer than "
                  f"maximal_queue_lifetime ({text}): a temporary failure on their first "
                  "delivery attempt bounces them", markup=False)
