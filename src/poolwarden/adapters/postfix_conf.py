"""Postfix configuration for poolwarden: generate the main.cf and master.cf pieces, check a
running Postfix against the inventory.

Pure text in, text out; no files, no processes (the CLI runs ``postconf`` and reads master.cf).

What the generator emits, and why (see ``shared/postfix-recipe.md``):

* **master.cf**: one ``smtp`` transport per egress IP, named ``transport_name(ip)``
  (``pw-127-0-0-11``), with ``smtp_bind_address`` (``smtp_bind_address6`` for IPv6), the IP's
  HELO name, ``inet_protocols`` limited to the IP's family (so an IPv4 transport never opens
  an IPv6 connection from the host's default IPv6 address, and the reverse) and
  ``syslog_name=postfix/pw-…`` so every log line names the route. ``chroot`` is ``n``: a
  chrooted smtp would need copies of resolv.conf and hosts in the jail.
* **main.cf**:

  - ``smtp_bind_address_enforce = yes``: without it a transport whose address is missing from
    the host still delivers, from the host's default address (pitfall P6). With it, such
    mail is deferred.
  - ``default_transport`` and ``relay_transport`` = ``retry:4.3.5 …``: the routing agent
    routes every message with ``FILTER pw-…:`` (FILTER overrides both). Mail that gets no
    FILTER (the policy check bypassed by a ``permit`` before it, a local submission through
    sendmail/pickup, a misconfigured restriction list) is therefore **deferred and kept in
    the queue**, never sent from an arbitrary IP. An operator finds it with ``postqueue -p``
    (reason "no poolwarden route") and can route it once fixed.
  - ``smtpd_reject_unlisted_recipient = no``: smtpd refuses at RCPT (450 for ``retry``, 550 for
    ``error``) every recipient whose address resolves to the retry or error transport, and
    FILTER does not change that resolution: with the default ``yes`` every FILTER-routed
    recipient was refused (observed: ``450 4.3.5 <x@gmail.com>: Recipient address rejected:
    poolwarden: no egress route chosen …`` right after ``triggers FILTER pw-127-0-0-13:``).
  - ``sender_dependent_default_transport_maps = inline:{ <>=pw-…: }``: Postfix's own
    bounces and delay notices (null sender, ``empty_address_default_transport_maps_lookup_key``
    is ``<>``) never pass smtpd, so no FILTER: they leave from one chosen egress IP
    (``bounce_ip``; by default the first usable IP of the shared pool serving tier ``good``,
    as they go to the tenants' own return paths). With no such IP the map is left out and
    bounces wait in the deferred queue like any unrouted mail.
  - ``check_policy_service`` at RCPT (``smtpd_recipient_restrictions``) and at
    END-OF-MESSAGE (``smtpd_end_of_data_restrictions``, which binds the decision to the queue
    id and gives held mail its route) with ``timeout=2s`` and
    ``{ default_action = 451 4.3.5 … }`` in its own braces (pitfall P3): when the agent is
    down or hung, mail stays at the client with a 4xx, never ``DUNNO``.
  - ``enable_long_queue_ids = yes``: short ids repeat, long ids do not (event keys).
  - with ``sender_domain`` or ``client_address`` in ``tenant_lookup``:
    ``smtpd_sender_login_maps`` and ``reject_sender_login_mismatch``, so no client can
    claim a tenant through its MAIL FROM domain (``postfix_identity``).
"""

from __future__ import annotations

import ipaddress
import os.path
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from poolwarden.adapters.postfix_identity import (
    check_sender_login,
    needs_sender_login,
    sender_login_lines,
)
from poolwarden.core.inventory import canonical_ip
from poolwarden.core.model import Inventory, Tier
from poolwarden.core.transports import transport_name

DEFAULT_TIMEOUT = "2s"
DEFAULT_ACTION = "451 4.3.5 poolwarden unavailable"
NO_ROUTE = "retry:4.3.5 poolwarden: no egress route chosen for this message"
SYSLOG_BASE = "postfix"
DEFAULT_QUEUE_DIRECTORY = "/var/spool/postfix"
# Postfix's defaults for parameters ``postconf -n`` leaves out
POSTFIX_DEFAULTS = {
    "smtp_bind_address_enforce": "no",
    "enable_long_queue_ids": "no",
    "default_transport": "smtp",
    "relay_transport": "relay",
    "smtpd_policy_service_default_action": "451 4.3.5 Server configuration problem",
    "smtpd_policy_service_timeout": "100s",
    "queue_directory": DEFAULT_QUEUE_DIRECTORY,
    "smtpd_reject_unlisted_recipient": "yes",
}
MAX_TIMEOUT_SECONDS = 10  # a longer policy timeout stalls every RCPT while the agent hangs
# services whose command never delivers mail anywhere: safe as the default transport
NON_DELIVERING = frozenset({"error", "discard"})


# -- generator ------------------------------------------------------------------------


def postfix_endpoint(listen: str, queue_directory: str = DEFAULT_QUEUE_DIRECTORY) -> str:
    """A policyd listen address in Postfix's syntax: ``tcp:127.0.0.1:10040`` →
    ``inet:127.0.0.1:10040``, ``tcp:[::1]:10040`` → ``inet:[::1]:10040``, ``unix:P`` as is,
    except that a socket under ``queue_directory`` is named relative to it
    (``unix:private/poolwarden``): a chrooted smtpd sees only that directory.
    Raises ValueError for anything else."""
    kind, _, rest = listen.partition(":")
    if kind == "unix" and rest:
        base = os.path.normpath(queue_directory)
        path = os.path.normpath(rest)
        if rest.startswith("/") and path.startswith(base + "/"):
            return "unix:" + path[len(base) + 1:]
        return listen
    if kind in ("tcp", "inet"):
        host, _, port = rest.rpartition(":")
        host = host.strip("[]")
        if host and port.isdigit():
            return f"inet:[{host}]:{port}" if ":" in host else f"inet:{host}:{port}"
    raise ValueError(f"{listen!r} is not tcp:HOST:PORT or unix:PATH")


def policy_block(endpoint: str, *, timeout: str = DEFAULT_TIMEOUT,
                 default_action: str = DEFAULT_ACTION) -> str:
    """``check_policy_service { ENDPOINT, timeout=2s, { default_action = 451 4.3.5 … } }``.

    A value with spaces needs its own braces (pitfall P3: without them smtpd dies with
    "malformed option: missing '=' after attribute name")."""
    return (f"check_policy_service {{ {endpoint}, timeout={timeout}, "
            f"{{ default_action = {default_action} }} }}")


def default_bounce_ip(inventory: Inventory) -> str | None:
    """The first usable IP of the shared pool serving tier ``good``, else of any pool."""
    usable = {ip.address for ip in inventory.ips if ip.usable}
    ordered = sorted(inventory.pools, key=lambda p: (Tier.GOOD not in p.tiers, p.kind.value))
    for pool in ordered:
        for address in pool.ips:
            if address in usable:
                return address
    return None


def main_cf(inventory: Inventory, *, policy_endpoint: str, timeout: str = DEFAULT_TIMEOUT,
            default_action: str = DEFAULT_ACTION, bounce_ip: str | None = "auto",
            no_route: str = NO_ROUTE, tenant_lookup: Iterable[str] = ()) -> str:
    """The main.cf settings poolwarden needs, as text to paste into (or append to) main.cf.

    ``bounce_ip``: the egress IP for Postfix's own bounces; ``"auto"`` picks
    ``default_bounce_ip``; None leaves bounces unrouted (they wait in the deferred queue).
    ``tenant_lookup``: with ``sender_domain`` or ``client_address`` in it, the sender
    login restrictions of ``postfix_identity`` are emitted too."""
    if not re.fullmatch(r"4\d\d 4\.\d{1,3}\.\d{1,3}( .*)?", default_action):
        raise ValueError(f"default_action {default_action!r} is not a 4xx reply with a 4.x.x "
                         "status: mail would be rejected or sent unrouted when the agent fails")
    if bounce_ip == "auto":
        bounce_ip = default_bounce_ip(inventory)
    elif bounce_ip is not None and bounce_ip not in {ip.address for ip in inventory.ips}:
        raise ValueError(f"bounce IP {bounce_ip} is not an egress IP of the inventory")
    block = policy_block(policy_endpoint, timeout=timeout, default_action=default_action)
    lines = [
        f"# --- poolwarden: main.cf for {len(inventory.ips)} egress IPs (generated) ---",
        "# Mail leaves only through the pw-* transport the routing agent chose (FILTER).",
        "# Mail without a route (policy check bypassed, local submission) is deferred, never",
        "# sent from an arbitrary address:",
        f"default_transport = {no_route}",
        f"relay_transport = {no_route}",
        "# smtpd rejects (450) every recipient whose default transport is retry or error,",
        "# FILTER-routed ones too, unless this is off (unknown local/virtual/relay-domain",
        "# recipients are then no longer refused at RCPT: add reject_unlisted_recipient for",
        "# such domains with a check_recipient_access if this MTA also receives mail):",
        "smtpd_reject_unlisted_recipient = no",
    ]
    if bounce_ip is not None:
        lines += [
            f"# Postfix's own bounces and notices (null sender) leave from {bounce_ip}:",
            "sender_dependent_default_transport_maps = "
            f"inline:{{ <>={transport_name(bounce_ip)}: }}",
        ]
    else:
        lines += ["# No usable egress IP for Postfix's own bounces: they stay deferred."]
    lines += [
        "# A transport whose address is missing must defer, not send from another (P6):",
        "smtp_bind_address_enforce = yes",
        "# Long queue ids never repeat (event keys):",
        "enable_long_queue_ids = yes",
        "# The routing agent at RCPT (route, hold, split) and at END-OF-MESSAGE (binds the",
        "# queue id; held mail's route). Keep it before any permit_* in the list.",
        "smtpd_recipient_restrictions =",
        f"    {block}",
        "smtpd_end_of_data_restrictions =",
        f"    {block}",
    ]
    if needs_sender_login(tenant_lookup):
        lines += sender_login_lines(inventory)
    return "\n".join(lines) + "\n"


def master_cf(inventory: Inventory, *, syslog_base: str = SYSLOG_BASE) -> str:
    """One smtp transport per egress IP, as master.cf text."""
    lines = [f"# --- poolwarden: one smtp transport per egress IP ({len(inventory.ips)}; "
             "generated) ---"]
    for ip in inventory.ips:
        name = transport_name(ip.address)
        v6 = ipaddress.ip_address(ip.address).version == 6
        lines += [
            f"# {ip.address} ({ip.state.value})",
            f"{name} unix - - n - - smtp",
            f"  -o smtp_bind_address{'6' if v6 else ''}={ip.address}",
            f"  -o inet_protocols={'ipv6' if v6 else 'ipv4'}",
            f"  -o smtp_helo_name={ip.helo}",
            f"  -o syslog_name={syslog_base}/{name}",
        ]
    return "\n".join(lines) + "\n"


# -- parsers ----------------------------------------------------------------------------


def _logical_lines(text: str) -> Iterator[str]:
    """Postfix's logical lines: a line starting with whitespace continues the previous one;
    comment lines (first non-blank is ``#``) and blank lines are skipped."""
    current: str | None = None
    for raw in text.splitlines():
        stripped = raw.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if raw[0] in " \t" and current is not None:
            current += " " + stripped
            continue
        if current is not None:
            yield current
        current = stripped
    if current is not None:
        yield current


def parse_postconf(text: str) -> dict[str, str]:
    """``name = value`` lines (``postconf -n`` output or main.cf text) as a dict."""
    out: dict[str, str] = {}
    for line in _logical_lines(text):
        name, sep, value = line.partition("=")
        if sep and name.strip():
            out[name.strip()] = value.strip()
    return out


def split_tokens(text: str, separators: str = " \t,") -> list[str]:
    """Split on ``separators`` outside braces; a ``{ … }`` group is one token (braces kept)."""
    tokens: list[str] = []
    current: list[str] = []
    depth = 0
    for ch in text:
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth = max(depth - 1, 0)
        if depth == 0 and ch in separators:
            if current:
                tokens.append("".join(current))
                current = []
            continue
        current.append(ch)
    if current:
        tokens.append("".join(current))
    return tokens


def _unbrace(token: str) -> str:
    token = token.strip()
    if token.startswith("{") and token.endswith("}"):
        return token[1:-1].strip()
    return token


@dataclass(frozen=True, slots=True)
class PolicyCheck:
    """One ``check_policy_service`` in a restriction list."""

    endpoint: str
    options: dict[str, str] = field(default_factory=dict)
    position: int = 0  # index in the restriction list
    before: tuple[str, ...] = ()  # the restrictions before it


def policy_checks(restrictions: str) -> list[PolicyCheck]:
    """Every ``check_policy_service`` of a restriction list, plain or in the block form."""
    tokens = split_tokens(restrictions)
    checks: list[PolicyCheck] = []
    items: list[str] = []
    i = 0
    while i < len(tokens):
        token = tokens[i]
        if token == "check_policy_service" and i + 1 < len(tokens):
            arg = tokens[i + 1]
            options: dict[str, str] = {}
            if arg.startswith("{"):
                parts = split_tokens(_unbrace(arg))
                endpoint = parts[0] if parts else ""
                for part in parts[1:]:
                    name, _, value = _unbrace(part).partition("=")
                    options[name.strip()] = value.strip()
            else:
                endpoint = arg
            checks.append(PolicyCheck(endpoint, options, len(items), tuple(items)))
            items.append(token)
            i += 2
            continue
        items.append(token)
        i += 1
    return checks


@dataclass(frozen=True, slots=True)
class MasterService:
    """One master.cf service line."""

    name: str
    type: str
    private: str
    unpriv: str
    chroot: str
    wakeup: str
    maxproc: str
    command: str
    args: tuple[str, ...]
    options: dict[str, str]


def parse_master_cf(text: str) -> dict[str, MasterService]:
    """master.cf services by (service name, type); the key is ``name/type`` but a plain
    ``name`` also finds a ``unix`` service (see ``find_service``)."""
    services: dict[str, MasterService] = {}
    for line in _logical_lines(text):
        fields = split_tokens(line, " \t")
        if len(fields) < 8:
            continue
        args = fields[8:]
        options: dict[str, str] = {}
        j = 0
        while j < len(args):
            arg = args[j]
            value: str | None = None
            if arg == "-o" and j + 1 < len(args):
                value = args[j + 1]
                j += 2
            elif arg.startswith("-o") and len(arg) > 2:
                value = arg[2:]
                j += 1
            else:
                j += 1
            if value is not None:
                name, _, setting = _unbrace(value).partition("=")
                options[name.strip()] = setting.strip()
        service = MasterService(fields[0], fields[1], fields[2], fields[3], fields[4],
                                fields[5], fields[6], fields[7], tuple(args), options)
        services[f"{service.name}/{service.type}"] = service
    return services


def find_service(services: dict[str, MasterService], name: str) -> MasterService | None:
    """The delivery service ``name`` (type unix, else any type)."""
    found = services.get(f"{name}/unix")
    if found is not None:
        return found
    return next((s for s in services.values() if s.name == name), None)


# -- check --------------------------------------------------------------------------------


def seconds(text: str) -> float | None:
    """A Postfix time value (``2s``, ``5d``, ``100``) in seconds, or None."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*", text)
    if not match:
        return None
    unit = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}[match.group(2)]
    return float(match.group(1)) * unit


def _norm_endpoint(endpoint: str, queue_directory: str) -> str:
    endpoint = endpoint.strip()
    kind, _, rest = endpoint.partition(":")
    if kind == "unix":
        path = rest if rest.startswith("/") else os.path.join(queue_directory, rest)
        return "unix:" + os.path.normpath(path)
    try:
        return postfix_endpoint(endpoint).lower()
    except ValueError:
        return endpoint.lower()


def _yes(value: str) -> bool:
    return value.strip().lower() in ("yes", "true", "1", "on")


def check(inventory: Inventory, postconf_n: str, master_cf_text: str,
          policy_endpoint: str | None = None, tenant_lookup: Iterable[str] = (),
          idle_timeout: float | None = None) -> list[str]:
    """Every way a Postfix configuration (``postconf -n`` output and master.cf text) fails to
    route the inventory safely; empty when it is right. ``policy_endpoint`` None accepts any
    ``check_policy_service``; given (Postfix or policyd syntax), it must be that one.
    ``tenant_lookup`` adds the sender login checks (``postfix_identity``); ``idle_timeout``
    (the agent's) must be above ``smtpd_policy_service_max_idle``."""
    conf = {**POSTFIX_DEFAULTS, **parse_postconf(postconf_n)}
    services = parse_master_cf(master_cf_text)
    problems: list[str] = []

    if not _yes(conf["smtp_bind_address_enforce"]):
        problems.append(f"smtp_bind_address_enforce = {conf['smtp_bind_address_enforce']}: "
                        "a transport whose address is missing sends from another address; "
                        "set it to yes")
    if not _yes(conf["enable_long_queue_ids"]):
        problems.append(f"enable_long_queue_ids = {conf['enable_long_queue_ids']}: short "
                        "queue ids repeat; set it to yes")
    problems += _check_policy(conf, policy_endpoint)
    recipient_list = split_tokens(conf.get("smtpd_recipient_restrictions", ""))
    if "check_policy_service" in recipient_list:  # only what runs before the agent counts
        recipient_list = recipient_list[:recipient_list.index("check_policy_service")]
    problems += check_sender_login(inventory, conf, tenant_lookup, {
        "smtpd_sender_restrictions": split_tokens(conf.get("smtpd_sender_restrictions", "")),
        "smtpd_recipient_restrictions": recipient_list})
    max_idle = seconds(conf.get("smtpd_policy_service_max_idle", "300s"))
    if idle_timeout is not None and max_idle is not None and max_idle >= idle_timeout:
        problems.append(
            f"smtpd_policy_service_max_idle = {conf['smtpd_policy_service_max_idle']} is not "
            f"below policyd.idle_timeout ({idle_timeout:g} s): the agent would close "
            "connections Postfix still counts on")
    problems += _check_unrouted(conf, services)
    problems += _check_transports(inventory, services)
    return problems


def _check_policy(conf: dict[str, str], policy_endpoint: str | None) -> list[str]:
    problems: list[str] = []
    queue_directory = conf["queue_directory"]
    wanted = (_norm_endpoint(policy_endpoint, queue_directory)
              if policy_endpoint is not None else None)
    for parameter, stage in (("smtpd_recipient_restrictions", "RCPT"),
                             ("smtpd_end_of_data_restrictions", "END-OF-MESSAGE")):
        checks = [c for c in policy_checks(conf.get(parameter, ""))
                  if wanted is None or _norm_endpoint(c.endpoint, queue_directory) == wanted]
        if not checks:
            which = f"check_policy_service {policy_endpoint}" if policy_endpoint else (
                "check_policy_service")
            problems.append(f"policy service not wired at {stage}: {parameter} has no "
                            f"{which}")
            continue
        for found in checks:
            action = found.options.get(
                "default_action", conf["smtpd_policy_service_default_action"])
            if not re.match(r"4\d\d\b", action.strip()):
                problems.append(
                    f"{parameter}: check_policy_service {found.endpoint} default_action is "
                    f"{action!r}: when the agent fails, mail must be deferred (4xx), never "
                    "sent unrouted (DUNNO/OK) or rejected (5xx)")
            timeout = found.options.get("timeout", conf["smtpd_policy_service_timeout"])
            limit = seconds(timeout)
            if limit is None or limit > MAX_TIMEOUT_SECONDS:
                problems.append(
                    f"{parameter}: check_policy_service {found.endpoint} timeout is "
                    f"{timeout}: a hung agent stalls every RCPT for twice that; use "
                    f"{DEFAULT_TIMEOUT}")
            permits = [r for r in found.before if r.startswith("permit")]
            if stage == "RCPT" and permits:
                problems.append(
                    f"{parameter}: {', '.join(permits)} before check_policy_service "
                    f"{found.endpoint}: mail it permits skips the routing agent")
    return problems


def _check_unrouted(conf: dict[str, str], services: dict[str, MasterService]) -> list[str]:
    """Mail without a FILTER must never be delivered by a default transport."""
    problems: list[str] = []
    parameters = ["default_transport"]
    if conf.get("relay_domains", "").strip():
        parameters.append("relay_transport")
    for parameter in parameters:
        value = conf[parameter]
        transport = value.partition(":")[0].strip()
        service = find_service(services, transport)
        if service is None:
            problems.append(f"{parameter} = {value}: master.cf has no service {transport!r}")
        elif service.command not in NON_DELIVERING:
            problems.append(
                f"{parameter} = {value}: mail without a poolwarden route would be delivered "
                f"by {transport} ({service.command}) from the host's default address; use "
                f"{NO_ROUTE.partition(' ')[0]} …")
        elif (transport in ("error", "retry")
              and _yes(conf["smtpd_reject_unlisted_recipient"])):
            problems.append(
                f"{parameter} = {value} with smtpd_reject_unlisted_recipient = "
                f"{conf['smtpd_reject_unlisted_recipient']}: smtpd refuses every recipient "
                "at RCPT (450/550), FILTER-routed ones too; set it to no")
    return problems


def _check_transports(inventory: Inventory, services: dict[str, MasterService]) -> list[str]:
    problems: list[str] = []
    names: dict[str, str] = {}
    for ip in inventory.ips:
        name = transport_name(ip.address)
        names[name] = ip.address
        service = find_service(services, name)
        if service is None:
            problems.append(f"egress IP {ip.address} has no transport: master.cf lacks {name}")
            continue
        if service.type != "unix" or service.command != "smtp":
            problems.append(f"transport {name} is '{service.type} … {service.command}', "
                            "expected a unix smtp service")
        v6 = ipaddress.ip_address(ip.address).version == 6
        option = "smtp_bind_address6" if v6 else "smtp_bind_address"
        bound = service.options.get(option, "")
        if not bound:
            problems.append(f"transport {name} binds no address ({option} unset); expected "
                            f"{ip.address}")
        elif canonical_ip(bound) != ip.address:
            problems.append(f"transport {name} binds {bound}, expected {ip.address}")
        helo = service.options.get("smtp_helo_name", "")
        if helo != ip.helo:
            problems.append(f"transport {name} announces HELO {helo or '$myhostname'}, "
                            f"expected {ip.helo}")
    for key, service in services.items():
        if not service.name.startswith("pw-") or service.name in names:
            continue
        bound = (service.options.get("smtp_bind_address")
                 or service.options.get("smtp_bind_address6") or "nothing")
        problems.append(f"transport {service.name} binds {bound}, which is not an egress IP "
                        f"of the inventory ({key})")
    return problems
