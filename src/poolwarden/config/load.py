"""Load the TOML configuration file into validated settings, a core Inventory and Thresholds.

Every problem becomes one ``ConfigError`` naming the file, line and field:
TOML syntax, schema (types, ranges, unknown keys), threshold ladders and
inventory consistency. All problems of a stage are reported together. Reads
only the one file it is given; never touches the store it names.
"""

from __future__ import annotations

import difflib
import re
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, get_args, get_origin

from pydantic import BaseModel, ValidationError

from poolwarden.config.locate import index_lines, line_for
from poolwarden.config.monitors import resolve_blocklists
from poolwarden.config.reaction_rules import resolve_rules
from poolwarden.config.schema import PoolwardenSettings, ProviderSettings
from poolwarden.config.warmup_files import check_warmup
from poolwarden.core.blocklists import Blocklist
from poolwarden.core.domains import validate_sending_domains
from poolwarden.core.errors import ConfigError
from poolwarden.core.inventory import canonical_ip, validate_inventory
from poolwarden.core.model import (
    DomainRole,
    EgressIp,
    Inventory,
    Pool,
    Provider,
    SendingDomain,
    Tenant,
)
from poolwarden.core.providers import DEFAULT_PROVIDERS
from poolwarden.core.reaction import Rule
from poolwarden.core.thresholds import Thresholds, validate_thresholds
from poolwarden.core.warmup import Schedule

DEFAULT_DB_NAME = "poolwarden.db"
_TOML_POSITION = re.compile(r"\s*\(at line (\d+), column (\d+)\)$")
_SQLITE = re.compile(r"(sqlite(?:\+\w+)?):///(.*)", re.DOTALL)
_THRESHOLD_NAMES = tuple(f.name for f in fields(Thresholds))


@dataclass(frozen=True, slots=True)
class LoadedConfig:
    path: Path
    settings: PoolwardenSettings
    inventory: Inventory
    thresholds: Thresholds
    store_url: str
    warmup_schedules: tuple[Schedule, ...] = ()  # built-in and [warmup] schedule_files
    reaction_rules: tuple[Rule, ...] = ()  # built-in and [reaction] rule_files, validated
    blocklists: tuple[Blocklist, ...] = ()  # built-in and [monitors] blocklists


def load_config(path: str | Path) -> LoadedConfig:
    """Read and validate the configuration file at ``path``."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise ConfigError("configuration file not found", file=str(path)) from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read configuration file: {exc}", file=str(path)) from exc
    return load_config_text(text, file=str(path))


def load_config_text(text: str, *, file: str) -> LoadedConfig:
    """Validate configuration ``text``; ``file`` names it in errors and anchors relative paths."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        message = str(exc)
        found = _TOML_POSITION.search(message)
        line = int(found.group(1)) if found else None
        if line is None and message.endswith("(at end of document)"):
            line = max(1, len(text.splitlines()))
        raise ConfigError(f"invalid TOML: {_TOML_POSITION.sub('', message)}",
                          file=file, line=line) from exc
    index = index_lines(text)
    try:
        settings = PoolwardenSettings.model_validate(data)
    except ValidationError as exc:
        # unknown keys first: "plann" explains the missing "plan" that follows it
        errors = sorted(exc.errors(), key=lambda err: err["type"] != "extra_forbidden")
        raise _combined(file, [_schema_problem(index, err) for err in errors]) from exc

    values = settings.thresholds.model_dump()
    problems = [_threshold_problem(index, name, problem)
                for name, problem in validate_thresholds(values)]
    if problems:
        raise _combined(file, problems)
    thresholds = Thresholds(**values)

    declared = _inventory(settings, tuple(_provider(p) for p in settings.providers))
    problems = [(line_for(index, path), _dotted(path), problem)
                for path, problem in (*validate_inventory(declared),
                                      *validate_sending_domains(declared))]
    if problems:
        raise _combined(file, problems)
    inventory = _inventory(settings, _merge_providers(declared.providers))
    reaction = settings.reaction
    rules = resolve_rules(builtin=reaction.builtin_rules, files=reaction.rule_files,
                          disable=reaction.disable, base=Path(file).absolute().parent,
                          providers=[p.name for p in inventory.providers] + ["other"],
                          pools=[p.name for p in inventory.pools], config_file=file,
                          index=index)
    schedules = check_warmup(settings, inventory, index=index, file=file)
    return LoadedConfig(Path(file), settings, inventory, thresholds,
                        resolve_store_url(settings.store.url, Path(file).absolute().parent),
                        reaction_rules=rules, warmup_schedules=schedules,
                        blocklists=resolve_blocklists(settings.monitors))


Located = tuple[int | None, str, str]  # line, dotted field, message


def _combined(file: str, problems: Sequence[Located]) -> ConfigError:
    line, field, message = problems[0]
    for other_line, other_field, other in problems[1:]:
        message += "\n" + str(ConfigError(other, file=file, line=other_line, field=other_field))
    return ConfigError(message, file=file, line=line, field=field)


def _dotted(path: Sequence[str | int]) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
    return out


def _schema_problem(index: dict[tuple[str | int, ...], int], err: Any) -> Located:
    loc: tuple[str | int, ...] = tuple(err["loc"])
    key = loc[-1] if loc else ""
    if err["type"] == "extra_forbidden":
        message = f"unknown key '{key}'"
        close = difflib.get_close_matches(str(key), _known_keys(loc[:-1]), n=1)
        if close:
            message += f" (did you mean '{close[0]}'?)"
    elif err["type"] == "missing":
        message = f"required key '{key}' is missing"
    else:
        shown = repr(err["input"])
        message = f"{err['msg']} (got {shown if len(shown) <= 60 else shown[:57] + '...'})"
    return line_for(index, loc), _dotted(loc), message


def _known_keys(loc: tuple[str | int, ...]) -> list[str]:
    model: type[BaseModel] = PoolwardenSettings
    for part in loc:
        if isinstance(part, int):
            continue
        info = model.model_fields.get(part)
        inner = info.annotation if info else None
        if get_origin(inner) is tuple:
            inner = get_args(inner)[0]
        if not (isinstance(inner, type) and issubclass(inner, BaseModel)):
            return []
        model = inner
    return list(model.model_fields)


def _threshold_problem(index: dict[tuple[str | int, ...], int], name: str,
                       problem: str) -> Located:
    # a ladder problem names its first rung; point at whichever rung the file sets
    named = [name, *(n for n in _THRESHOLD_NAMES if n != name and n in problem)]
    line = next((index[("thresholds", n)] for n in named if ("thresholds", n) in index), None)
    return line or line_for(index, ("thresholds",)), f"thresholds.{name}", problem


def _domains(names: Sequence[str]) -> tuple[str, ...]:
    return tuple(name.strip().lower().rstrip(".") for name in names)


def _provider(p: ProviderSettings) -> Provider:
    return Provider(name=p.name, domains=_domains(p.domains),
                    mx_suffixes=_domains(p.mx_suffixes), major=p.major)


def _merge_providers(declared: Sequence[Provider]) -> tuple[Provider, ...]:
    """Built-in providers, each replaced by a declared one of the same name; others added."""
    merged = {p.name: p for p in DEFAULT_PROVIDERS}
    merged.update((p.name, p) for p in declared)
    return tuple(merged.values())


def _inventory(s: PoolwardenSettings, providers: tuple[Provider, ...]) -> Inventory:
    return Inventory(
        tenants=tuple(
            Tenant(name=t.name, plan=t.plan, domains=_domains(t.domains),
                   dedicated_ips=tuple(canonical_ip(a) for a in t.dedicated_ips),
                   private_domains=_domains(t.private_domains), sasl_usernames=t.sasl_usernames,
                   client_addresses=tuple(canonical_ip(a) for a in t.client_addresses),
                   initial_tier=t.tier,
                   sending_domains=tuple(
                       SendingDomain(_domains([d.domain])[0],
                                     frozenset(DomainRole(r) for r in d.roles),
                                     d.dkim_selectors, d.align)
                       for d in t.sending_domains))
            for t in s.tenants),
        ips=tuple(EgressIp(address=canonical_ip(ip.address), helo=ip.helo, state=ip.state)
                  for ip in s.ips),
        pools=tuple(Pool(name=p.name, kind=p.kind, tiers=frozenset(p.tiers),
                         ips=tuple(canonical_ip(a) for a in p.ips),
                         return_path_domain=(_domains([p.return_path_domain])[0]
                                             if p.return_path_domain else None))
                    for p in s.pools),
        providers=providers,
    )


def resolve_store_url(url: str | None, base: Path) -> str:
    """The store URL, with the default and relative SQLite paths anchored at ``base``."""
    if url is None:
        return f"sqlite:///{base / DEFAULT_DB_NAME}"
    match = _SQLITE.fullmatch(url)
    if match is None:
        return url
    scheme, rest = match.groups()
    file_part, sep, query = rest.partition("?")
    if not file_part or file_part == ":memory:" or file_part.startswith("/") \
            or file_part.startswith("file:"):
        return url
    return f"{scheme}:///{base / file_part}{sep}{query}"
