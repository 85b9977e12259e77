"""``poolwarden postfix config|check`` and ``poolwarden hold release``: the Postfix side.

``postfix config`` prints the main.cf and master.cf pieces for the current inventory
(``adapters.postfix_conf``); ``postfix check`` runs ``postconf -c DIR -n``, reads
``DIR/master.cf`` and prints every mismatch with the inventory (exit 1 when any).
``hold release TENANT`` releases a tenant's held mail with ``postsuper -H`` (which keeps the
route the agent stored with the message; ``-r`` would drop it) once the tenant may send again.
Errors print one line on stderr and exit with status 2.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer

from poolwarden.cli.common import ConfigOption, config_path, err, fail, out
from poolwarden.core.errors import PoolwardenError

postfix_app = typer.Typer(no_args_is_help=True,
                          help="Postfix configuration for the routing agent: generate, check.")
hold_app = typer.Typer(no_args_is_help=True, help="Mail Postfix holds for suspended tenants.")

PostfixDirOption = Annotated[Path | None, typer.Option(
    "--postfix-config", help="Postfix configuration directory (postfix -c DIR) [default: "
    "the policyd.postfix_config_dir setting, else Postfix's default].", show_default=False)]

HELD_STANDINGS = ("suspended", "off-platform")


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


def _postfix_tool(name: str) -> str:
    found = shutil.which(name, path=os.environ.get("PATH", "") + ":/usr/sbin:/sbin")
    if found is None:
        fail(f"{name} not found: is Postfix installed?")
    return found


def _run(argv: list[str], *, stdin: str | None = None) -> str:
    try:
        done = subprocess.run(argv, input=stdin, capture_output=True, text=True, timeout=120,
                              check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        fail(f"{' '.join(argv)}: {exc}")
    if done.returncode != 0:
        fail(f"{' '.join(argv)} exited {done.returncode}: "
              f"{(done.stderr or done.stdout).strip()}")
    return done.stdout


def _with_dir(tool: str, directory: Path | None, *args: str) -> list[str]:
    argv = [_postfix_tool(tool)]
    if directory is not None:
        argv += ["-c", str(directory)]
    return argv + list(args)


# -- postfix config / check ------------------------------------------------------------------


@postfix_app.command("config")
def postfix_config(
    config: ConfigOption = None,
    policy: Annotated[str | None, typer.Option(
        "--policy", help="Policy endpoint in Postfix's syntax (inet:127.0.0.1:10040 or "
        "unix:private/poolwarden) [default: the first policyd.listen entry].",
        show_default=False)] = None,
    part: Annotated[str, typer.Option(help="Which piece: main, master or both.")] = "both",
    bounce_ip: Annotated[str | None, typer.Option(
        "--bounce-ip", help="Egress IP for Postfix's own bounces [default: the first usable "
        "IP of the pool serving tier good].", show_default=False)] = None,
) -> None:
    """Print the main.cf and master.cf pieces for the current inventory."""
    from poolwarden.adapters.postfix_conf import main_cf, master_cf, postfix_endpoint

    loaded = _load(config)
    if part not in ("main", "master", "both"):
        fail("--part is main, master or both")
    try:
        endpoint = postfix_endpoint(policy or loaded.settings.policyd.listen[0])
        main_text = main_cf(loaded.inventory, policy_endpoint=endpoint,
                            bounce_ip=bounce_ip or "auto")
    except ValueError as exc:
        fail(str(exc))
    if part in ("main", "both"):
        sys.stdout.write("# ===== main.cf =====\n" if part == "both" else "")
        sys.stdout.write(main_text)
    if part in ("master", "both"):
        sys.stdout.write("\n# ===== master.cf =====\n" if part == "both" else "")
        sys.stdout.write(master_cf(loaded.inventory))


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
    postconf_n = _run(_with_dir("postconf", directory, "-n"))
    master_dir = directory
    if master_dir is None:
        master_dir = Path(_run([_postfix_tool("postconf"), "-h", "config_directory"]).strip())
    try:
        master_text = (master_dir / "master.cf").read_text(encoding="utf-8")
    except OSError as exc:
        fail(f"cannot read {master_dir / 'master.cf'}: {exc}")
    problems = check(loaded.inventory, postconf_n, master_text, policy)
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


@dataclass(frozen=True, slots=True)
class HeldMessage:
    queue_id: str
    sender: str
    recipients: int
    arrival_time: float = 0.0


def held_messages(postqueue_j: str) -> list[HeldMessage]:
    """The hold-queue messages of ``postqueue -j`` output (one JSON object per line)."""
    held = []
    for line in postqueue_j.splitlines():
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(entry, dict) and entry.get("queue_name") == "hold":
            arrival = entry.get("arrival_time")
            held.append(HeldMessage(str(entry.get("queue_id", "")), str(entry.get("sender", "")),
                                    len(entry.get("recipients") or ()),
                                    float(arrival) if isinstance(arrival, int | float) else 0.0))
    return [m for m in held if m.queue_id]


def tenant_by_sender(sender: str, domains: dict[str, str]) -> str | None:
    """The tenant whose sending domain (or a parent of it) is the sender's domain."""
    _, at, domain = sender.rpartition("@")
    domain = domain.strip().lower().rstrip(".") if at else ""
    while domain:
        if domain in domains:
            return domains[domain]
        _, _, domain = domain.partition(".")
    return None


@hold_app.command("release")
def hold_release(
    tenant: Annotated[str, typer.Argument(help="Tenant whose held mail to release.")],
    config: ConfigOption = None,
    postfix_config_dir: PostfixDirOption = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="List, release nothing.")] = False,
) -> None:
    """Release a tenant's held mail (postsuper -H, keeping its route) once it may send."""
    from poolwarden.adapters.sqlstore import open_store
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
        held = held_messages(_run(_with_dir("postqueue", directory, "-j")))
        domains = {d.lower(): t.name for t in loaded.inventory.tenants for d in t.domains}
        mine: list[HeldMessage] = []
        by_log = 0
        for message in held:
            owner = _owner_from_log(store, message.queue_id)
            logged = owner is not None
            if owner is None:
                owner = tenant_by_sender(message.sender, domains)
            if owner == tenant:
                mine.append(message)
                by_log += logged
    finally:
        store.close()
    if not mine:
        out.print(f"{tenant}: no held mail ({len(held)} held messages in all)")
        return
    if dry_run:
        for message in mine:
            out.print(f"would release {message.queue_id} from {message.sender or '<>'} "
                      f"({message.recipients} recipients)", markup=False)
    else:
        _run(_with_dir("postsuper", directory, "-H", "-"),
             stdin="".join(m.queue_id + "\n" for m in mine))
    _warn_expired(mine, directory)
    verb = "would release" if dry_run else "released"
    out.print(f"{tenant}: {verb} {len(mine)} held messages "
              f"({sum(m.recipients for m in mine)} recipients); {len(held) - len(mine)} other "
              f"held messages left; tenant found by the decision log for {by_log}, by sender "
              f"domain for the rest", markup=False)


def _warn_expired(messages: list[HeldMessage], directory: Path | None) -> None:
    """-H keeps the route but not the clock: a message held longer than
    maximal_queue_lifetime bounces at its first temporary failure after release."""
    from poolwarden.adapters.postfix_conf import seconds

    text = _run(_with_dir("postconf", directory, "-h", "maximal_queue_lifetime")).strip()
    lifetime = seconds(text)
    if lifetime is None:
        return
    now = time.time()
    old = [m for m in messages if m.arrival_time and now - m.arrival_time > lifetime]
    if old:
        err.print(f"warning: {len(old)} of these messages were held longer than "
                  f"maximal_queue_lifetime ({text}): a temporary failure on their first "
                  "delivery attempt bounces them", markup=False)


def _owner_from_log(store: Any, queue_id: str) -> str | None:
    """The tenant the routing agent recorded for this queue id, if the log has it."""
    try:
        rows = store.decisions(queue_id=queue_id, limit=10)
    except (PoolwardenError, AttributeError, NotImplementedError):
        return None
    tenants = {row.tenant for row in rows if row.tenant}
    return tenants.pop() if len(tenants) == 1 else None
