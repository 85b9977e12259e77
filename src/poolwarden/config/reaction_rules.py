"""Load reaction-rule files (TOML ``[[rules]]``) into validated ``core.reaction.Rule`` values.

The built-in set (``config/builtin/reaction_rules.toml``) goes through this same
loader as the operator's files named in ``[reaction] rule_files``. Every problem
becomes a ``ConfigError`` naming the rule file, the line and the field
(``rules[2].duration``): TOML syntax, unknown keys, an invalid regex, an unknown
action, scope or provider, a duration out of range, a ramp that does not increase.
All problems of one file are reported together. Reads only the files it is given.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Collection, Sequence
from pathlib import Path
from typing import Any

from poolwarden.config.locate import index_lines, line_for
from poolwarden.core.errors import ConfigError
from poolwarden.core.reaction import (
    ANY_PROVIDER,
    RAMPED_ACTIONS,
    ReactionAction,
    Rule,
    RuleScope,
    format_duration,
    parse_duration,
)

BUILTIN_RULES = Path(__file__).resolve().parent / "builtin" / "reaction_rules.toml"
MIN_DURATION = 1.0
MAX_DURATION = 7 * 86400.0  # a week: longer is an operator's decision, not automation
MAX_PERIOD = 86400.0
MAX_RAMP_STEP = 86400.0
MAX_RAMP_STEPS = 10
MAX_THRESHOLD = 100_000
STATUSES = ("deferred", "bounced")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,99}")
_TRIGGER = re.compile(r"\s*(\d+)\s*/\s*(.+)")
_TOML_POSITION = re.compile(r"\s*\(at line (\d+), column \d+\)$")
KEYS = ("name", "provider", "code", "text", "status", "scope", "trigger", "action",
        "cap_factor", "pool", "duration", "ramp", "ramp_step", "source", "description")

Problem = tuple[tuple[str | int, ...], str]  # TOML path, message


def load_rule_file(path: Path, *, providers: Collection[str], pools: Collection[str],
                   label: str | None = None) -> tuple[Rule, ...]:
    """The rules of one file; ``label`` names it in errors (default: the path)."""
    name = label or str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise ConfigError("reaction rule file not found", file=name) from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read reaction rule file: {exc}", file=name) from exc
    return load_rule_text(text, file=name, providers=providers, pools=pools)


def load_rule_text(text: str, *, file: str, providers: Collection[str],
                   pools: Collection[str]) -> tuple[Rule, ...]:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        where = _TOML_POSITION.search(str(exc))
        raise ConfigError(f"invalid TOML: {_TOML_POSITION.sub('', str(exc))}",
                          file=file, line=int(where.group(1)) if where else None) from exc
    index = index_lines(text)
    problems: list[Problem] = [((key,), f"unknown key '{key}' (a rule file holds [[rules]])")
                               for key in data if key != "rules"]
    items = data.get("rules", [])
    if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
        problems.append((("rules",), "'rules' must be an array of tables ([[rules]])"))
        items = []
    rules: list[Rule] = []
    seen: set[str] = set()
    for number, item in enumerate(items):
        rule, found = _rule(item, (("rules", number)), providers, pools,
                            f"{file}:{line_for(index, ('rules', number)) or '?'}")
        problems.extend(found)
        if rule is not None:
            if rule.name in seen:
                problems.append((("rules", number, "name"),
                                 f"rule name '{rule.name}' is used twice in this file"))
            seen.add(rule.name)
            rules.append(rule)
    if problems:
        raise _combined(file, index, problems)
    return tuple(rules)


def _combined(file: str, index: dict[tuple[str | int, ...], int],
              problems: Sequence[Problem]) -> ConfigError:
    def dotted(path: tuple[str | int, ...]) -> str:
        out = ""
        for part in path:
            out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
        return out

    (first_path, message), rest = problems[0], problems[1:]
    for path, other in rest:
        message += "\n" + str(ConfigError(other, file=file, line=line_for(index, path),
                                          field=dotted(path)))
    return ConfigError(message, file=file, line=line_for(index, first_path),
                       field=dotted(first_path))


def _rule(item: dict[str, Any], at: tuple[str | int, ...], providers: Collection[str],
          pools: Collection[str], origin: str) -> tuple[Rule | None, list[Problem]]:
    problems: list[Problem] = []

    def bad(key: str, message: str) -> None:
        problems.append(((*at, key), message))

    for key in item:
        if key not in KEYS:
            bad(key, f"unknown key '{key}' (known: {', '.join(KEYS)})")

    def text_of(key: str, *, required: bool = False) -> str | None:
        value = item.get(key)
        if value is None:
            if required:
                bad(key, f"required key '{key}' is missing")
            return None
        if not isinstance(value, str):
            bad(key, f"'{key}' must be a string, got {type(value).__name__}")
            return None
        return value

    name = text_of("name", required=True)
    if name is not None and not _NAME.fullmatch(name):
        bad("name", f"rule name {name!r} must be 1-100 letters, digits, _ . : -")
    provider = text_of("provider", required=True)
    if provider is not None and provider != ANY_PROVIDER and provider not in providers:
        bad("provider", f"unknown provider '{provider}' (known: "
            f"{', '.join(sorted(providers))}, or \"*\" for any)")
    code = _regex(text_of("code"), "code", bad)
    reply = _regex(text_of("text"), "text", bad)
    if "code" not in item and "text" not in item:
        bad("code", "a rule needs 'code' (enhanced status code regex) and/or 'text' "
            "(reply regex)")
    statuses = _statuses(item.get("status", list(STATUSES)), bad)
    scope = _choice(text_of("scope") or "ip", "scope", RuleScope, bad)
    action_text = text_of("action", required=True)
    action = _choice(action_text, "action", ReactionAction, bad) if action_text else None
    threshold, period = _trigger(item.get("trigger", "immediate"), bad)
    duration = _duration(item.get("duration"), "duration", MIN_DURATION, MAX_DURATION, bad,
                         required=True)
    cap_factor = item.get("cap_factor")
    pool = text_of("pool")
    if action is ReactionAction.CAP:
        if cap_factor is None:
            bad("cap_factor", "action 'cap' needs cap_factor (0 < cap_factor < 1)")
        elif isinstance(cap_factor, bool) or not isinstance(cap_factor, int | float) \
                or not 0 < cap_factor < 1:
            bad("cap_factor", f"cap_factor must be a number above 0 and below 1 "
                f"(got {cap_factor!r})")
            cap_factor = None
    elif cap_factor is not None:
        bad("cap_factor", "cap_factor only applies to action 'cap'")
    if action is ReactionAction.REROUTE:
        if pool is None:
            bad("pool", "action 'reroute' needs the pool to send to")
        elif pool not in pools:
            bad("pool", f"unknown pool '{pool}' (known: {', '.join(sorted(pools)) or 'none'})")
    elif pool is not None:
        bad("pool", "pool only applies to action 'reroute'")
    if action in (ReactionAction.REROUTE, ReactionAction.TIER_DOWN) \
            and scope is not RuleScope.TENANT:
        bad("scope", f"action '{action}' acts on a tenant: it needs scope = \"tenant\"")
    ramp, ramp_step = _ramp(item, action, cap_factor, bad)
    for key in ("source", "description"):
        text_of(key)
    if problems or name is None or provider is None or action is None or scope is None \
            or duration is None or statuses is None:
        return None, problems
    return Rule(name=name, provider=provider, action=action, duration=duration, code=code,
                text=reply, statuses=statuses, scope=scope, threshold=threshold,
                period=period, cap_factor=float(cap_factor) if cap_factor is not None else None,
                pool=pool, ramp=ramp, ramp_step=ramp_step, origin=origin), problems


def _regex(pattern: str | None, key: str, bad: Any) -> re.Pattern[str] | None:
    if pattern is None:
        return None
    if not pattern:
        bad(key, f"'{key}' is empty: it would match every reply")
        return None
    try:
        return re.compile(pattern, re.IGNORECASE if key == "text" else 0)
    except re.error as exc:
        bad(key, f"invalid regular expression {pattern!r}: {exc}")
        return None


def _statuses(value: Any, bad: Any) -> frozenset[str] | None:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not value or \
            any(not isinstance(v, str) or v not in STATUSES for v in value):
        bad("status", f"status must be a non-empty list of {', '.join(STATUSES)} "
            f"(got {value!r})")
        return None
    return frozenset(value)


def _choice(value: str | None, key: str, enum: Any, bad: Any) -> Any:
    if value is None:
        return None
    try:
        return enum(value)
    except ValueError:
        allowed = ", ".join(m.value for m in enum)
        bad(key, f"unknown {key} '{value}' (expected one of: {allowed})")
        return None


def _duration(value: Any, key: str, low: float, high: float, bad: Any, *,
              required: bool = False) -> float | None:
    if value is None:
        if required:
            bad(key, f"required key '{key}' is missing (e.g. \"30m\", \"2h\")")
        return None
    if isinstance(value, bool):
        seconds = None
    elif isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str):
        try:
            seconds = parse_duration(value)
        except ValueError as exc:
            bad(key, str(exc))
            return None
    else:
        seconds = None
    if seconds is None:
        bad(key, f"'{key}' must be a duration such as \"90m\" (got {value!r})")
        return None
    if not low <= seconds <= high:
        bad(key, f"{key} {value!r} is out of range ({format_duration(low)} to "
            f"{format_duration(high)})")
        return None
    return seconds


def _trigger(value: Any, bad: Any) -> tuple[int, float]:
    if isinstance(value, str) and value.strip().lower() == "immediate":
        return 1, 0.0
    match = _TRIGGER.fullmatch(value) if isinstance(value, str) else None
    if match is None:
        bad("trigger", f"trigger must be \"immediate\" or \"N/period\" such as \"3/10m\" "
            f"(got {value!r})")
        return 1, 0.0
    count = int(match.group(1))
    if not 1 <= count <= MAX_THRESHOLD:
        bad("trigger", f"trigger count {count} is out of range (1 to {MAX_THRESHOLD})")
        return 1, 0.0
    period = _duration(match.group(2), "trigger", MIN_DURATION, MAX_PERIOD, bad)
    if period is None:
        return 1, 0.0
    return count, period


def _ramp(item: dict[str, Any], action: ReactionAction | None, cap_factor: Any,
          bad: Any) -> tuple[tuple[float, ...], float]:
    ramp = item.get("ramp", [])
    if not ramp:
        if "ramp_step" in item:
            bad("ramp_step", "ramp_step without a ramp")
        return (), 0.0
    if action is not None and action not in RAMPED_ACTIONS:
        bad("ramp", f"ramp applies to actions pause and cap, not '{action}'")
        return (), 0.0
    if not isinstance(ramp, list) or len(ramp) > MAX_RAMP_STEPS or any(
            isinstance(f, bool) or not isinstance(f, int | float) or not 0 < f < 1
            for f in ramp):
        bad("ramp", f"ramp must be a list of at most {MAX_RAMP_STEPS} cap factors above 0 "
            f"and below 1 (got {ramp!r})")
        return (), 0.0
    factors = tuple(float(f) for f in ramp)
    floor = cap_factor if isinstance(cap_factor, int | float) and action is \
        ReactionAction.CAP else 0.0
    if any(b <= a for a, b in zip((floor, *factors), factors, strict=False)):
        bad("ramp", f"ramp must increase step by step (from cap_factor {floor:g} when "
            f"capping): got {list(factors)!r}")
        return (), 0.0
    step = _duration(item.get("ramp_step"), "ramp_step", MIN_DURATION, MAX_RAMP_STEP, bad,
                     required=True)
    return (factors, step) if step is not None else ((), 0.0)


def resolve_rules(*, builtin: bool, files: Sequence[str], disable: Sequence[str],
                  base: Path, providers: Collection[str], pools: Collection[str],
                  config_file: str, index: dict[tuple[str | int, ...], int]
                  ) -> tuple[Rule, ...]:
    """The rules in force: the built-in set (when ``builtin``), then each file of ``files``
    (relative to ``base``) in order, a later rule replacing an earlier one of the same
    name; minus the names in ``disable``. Errors in the configuration file itself name
    ``config_file`` and its ``[reaction]`` line."""
    merged: dict[str, Rule] = {}
    if builtin:
        for rule in load_rule_file(BUILTIN_RULES, providers=providers, pools=pools,
                                   label="builtin:reaction_rules.toml"):
            merged[rule.name] = rule
    for number, name in enumerate(files):
        path = Path(name).expanduser()
        if not path.is_absolute():
            path = base / path
        if not path.is_file():
            raise ConfigError(f"reaction rule file {str(path)!r} not found", file=config_file,
                              line=line_for(index, ("reaction", "rule_files")),
                              field=f"reaction.rule_files[{number}]")
        for rule in load_rule_file(path, providers=providers, pools=pools, label=str(path)):
            merged[rule.name] = rule
    for number, name in enumerate(disable):
        if name not in merged:
            raise ConfigError(f"no reaction rule named '{name}' to disable (known: "
                              f"{', '.join(sorted(merged)) or 'none'})", file=config_file,
                              line=line_for(index, ("reaction", "disable")),
                              field=f"reaction.disable[{number}]")
        del merged[name]
    return tuple(merged.values())
