"""Load warm-up schedule files (built-in and the operator's) into ``core.warmup.Schedule``.

One loader for both: the built-ins ship as package data (``config/builtin/warmup-*.toml``)
and go through exactly the checks a user file does. Every problem becomes one
``ConfigError`` naming the file, the line and the field (a schedule that
decreases, an unknown provider, a negative cap). Reads files; no store.
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from poolwarden.config.locate import index_lines, line_for
from poolwarden.config.schema import PoolwardenSettings
from poolwarden.core.errors import ConfigError
from poolwarden.core.model import OTHER_PROVIDER, Inventory
from poolwarden.core.warmup import Schedule, parse_schedule

BUILTIN_DIR = Path(__file__).resolve().parent / "builtin"
BUILTIN_PREFIX = "warmup-"


def _dotted(path: Sequence[str | int]) -> str:
    return ".".join(str(p) for p in path)


def load_schedule_text(text: str, *, file: str, known_providers: Sequence[str]) -> Schedule:
    """One schedule from TOML text; ``file`` names it in errors."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"invalid TOML: {exc}", file=file) from exc
    default_name = Path(file).stem.removeprefix(BUILTIN_PREFIX)
    schedule, problems = parse_schedule(data, name=default_name,
                                        known_providers=known_providers, file=file)
    if problems:
        index = index_lines(text)
        errors = [ConfigError(message, file=file, line=line_for(index, path),
                              field=_dotted(path)) for path, message in problems]
        first = errors[0]
        message = first.message + "".join("\n" + str(e) for e in errors[1:])
        raise ConfigError(message, file=file, line=first.line, field=first.field)
    assert schedule is not None
    return schedule


def load_schedule_file(path: Path, *, known_providers: Sequence[str],
                       shown_as: str | None = None) -> Schedule:
    shown = shown_as or str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise ConfigError("warm-up schedule file not found", file=shown) from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read warm-up schedule file: {exc}", file=shown) from exc
    return load_schedule_text(text, file=shown, known_providers=known_providers)


def builtin_schedule_files() -> list[Path]:
    return sorted(BUILTIN_DIR.glob(f"{BUILTIN_PREFIX}*.toml"))


def load_schedules(files: Iterable[str], *, base: Path, known_providers: Sequence[str],
                   ) -> dict[str, Schedule]:
    """The built-in schedules, then the operator's ``files`` (relative to ``base``); a user
    schedule with a built-in's name replaces it, two user files may not share a name."""
    schedules: dict[str, Schedule] = {}
    for path in builtin_schedule_files():
        schedule = load_schedule_file(path, known_providers=known_providers)
        schedules[schedule.name] = schedule
    seen: dict[str, str] = {}
    for name in files:
        path = Path(name) if Path(name).is_absolute() else base / name
        schedule = load_schedule_file(path, known_providers=known_providers, shown_as=str(path))
        if schedule.name in seen:
            raise ConfigError(f"schedule name '{schedule.name}' is also used by "
                              f"{seen[schedule.name]}", file=str(path), field="name")
        seen[schedule.name] = str(path)
        schedules[schedule.name] = schedule
    return schedules


def schedule_names(schedules: Mapping[str, Schedule]) -> str:
    return ", ".join(sorted(schedules))


def check_warmup(settings: PoolwardenSettings, inventory: Inventory, *,
                 index: dict[tuple[str | int, ...], int], file: str) -> tuple[Schedule, ...]:
    """Load the schedules a configuration uses and check every reference to them: the
    schedule names, each warming IP's schedule, each tenant's warmup_domains."""
    known = [p.name for p in inventory.providers]
    if OTHER_PROVIDER not in known:
        known.append(OTHER_PROVIDER)
    warmup = settings.warmup
    base = Path(file).absolute().parent
    try:
        schedules = load_schedules(warmup.schedule_files, base=base, known_providers=known)
    except ConfigError as exc:
        if exc.file is None:
            raise ConfigError(exc.message, file=file,
                              line=line_for(index, ("warmup", "schedule_files")),
                              field="warmup.schedule_files") from exc
        raise
    problems: list[tuple[tuple[str | int, ...], str]] = []
    for key in ("ip_schedule", "domain_schedule"):
        name = getattr(warmup, key)
        if name not in schedules:
            problems.append((("warmup", key), f"unknown schedule '{name}' (known: "
                             f"{schedule_names(schedules)})"))
    for i, ip in enumerate(settings.ips):
        if ip.warmup_schedule is not None and ip.warmup_schedule not in schedules:
            problems.append((("ips", i, "warmup_schedule"), f"unknown schedule "
                             f"'{ip.warmup_schedule}' (known: {schedule_names(schedules)})"))
    for i, tenant in enumerate(settings.tenants):
        domains = {d.strip().lower().rstrip(".") for d in tenant.domains}
        for domain in tenant.warmup_domains:
            if domain.strip().lower().rstrip(".") not in domains:
                problems.append((("tenants", i, "warmup_domains"), f"'{domain}' is not one of "
                                 f"the tenant's domains"))
    if problems:
        errors = [ConfigError(message, file=file, line=line_for(index, path),
                              field=_field(path)) for path, message in problems]
        first = errors[0]
        raise ConfigError(first.message + "".join("\n" + str(e) for e in errors[1:]),
                          file=file, line=first.line, field=first.field)
    return tuple(schedules.values())


def _field(path: Sequence[str | int]) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
    return out
