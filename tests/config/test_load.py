"""load_config: the example loads; all bad input is a ConfigError naming file, line and field."""

from __future__ import annotations

import dataclasses
import tomllib
from pathlib import Path

import pytest
from pydantic import ValidationError

from poolwarden.config.load import load_config, load_config_text, resolve_store_url
from poolwarden.core.errors import ConfigError
from poolwarden.core.model import IpState, Plan, Tier
from poolwarden.core.providers import DEFAULT_PROVIDERS
from poolwarden.core.thresholds import Thresholds

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "poolwarden.toml"

MINIMAL = """\
[[ips]]
address = "127.0.0.11"
helo = "mta11.example.net"

[[ips]]
address = "127.0.0.12"
helo = "mta12.example.net"

[[ips]]
address = "127.0.0.21"
helo = "ded21.example.net"

[[pools]]
name = "shared-good"
tiers = ["good"]
ips = ["127.0.0.11"]

[[pools]]
name = "shared-new"
tiers = ["new", "risky"]
ips = ["127.0.0.12"]

[[tenants]]
name = "alpha"
plan = "shared"
domains = ["alpha.example"]

[[tenants]]
name = "beta"
plan = "auto"
domains = ["beta.example"]

[[tenants]]
name = "gamma"
plan = "dedicated"
domains = ["gamma.example"]
dedicated_ips = ["127.0.0.21"]
"""


def line_of(text: str, needle: str, start: int = 0) -> int:
    """1-based line of the first line containing ``needle`` at or after line ``start``."""
    for number, line in enumerate(text.splitlines(), start=1):
        if number >= start and needle in line:
            return number
    raise AssertionError(needle)


def error_for(text: str) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        load_config_text(text, file="pw.toml")
    assert info.value.file == "pw.toml"
    return info.value


# --- the example -------------------------------------------------------------------------

def test_example_loads_with_eight_tenants_covering_every_plan() -> None:
    config = load_config(EXAMPLE)
    tenants = config.inventory.tenants
    assert len(tenants) == 8
    assert {t.plan for t in tenants} == set(Plan)
    assert sum(t.plan is Plan.SHARED for t in tenants) == 2
    assert sum(t.plan is Plan.AUTO for t in tenants) == 2
    assert Tier.GOOD in {t.initial_tier for t in tenants if t.plan is Plan.SHARED}


def test_example_uses_every_ip_and_has_one_warming() -> None:
    inv = load_config(EXAMPLE).inventory
    used = [a for p in inv.pools for a in p.ips] + [a for t in inv.tenants for a in t.dedicated_ips]
    assert sorted(used) == sorted(ip.address for ip in inv.ips)
    assert [ip.state for ip in inv.ips].count(IpState.WARMING) == 1
    assert all(len(p.ips) >= 2 for p in inv.pools)


def test_example_threshold_values_are_the_defaults() -> None:
    config = load_config(EXAMPLE)
    written = tomllib.loads(EXAMPLE.read_text())["thresholds"]
    assert len(written) >= 2
    defaults = Thresholds()
    assert all(value == getattr(defaults, name) for name, value in written.items())
    assert config.thresholds == defaults


def test_example_store_defaults_beside_the_file_and_providers_merge() -> None:
    config = load_config(str(EXAMPLE))
    assert config.path == EXAMPLE
    assert config.store_url == f"sqlite:///{EXAMPLE.parent / 'poolwarden.db'}"
    names = [p.name for p in config.inventory.providers]
    assert names[: len(DEFAULT_PROVIDERS)] == [p.name for p in DEFAULT_PROVIDERS]
    assert "gmx" in names


def test_loaded_config_is_frozen() -> None:
    config = load_config_text(MINIMAL, file="pw.toml")
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.store_url = "x"  # type: ignore[misc]
    with pytest.raises(ValidationError):
        config.settings.routing.unknown_tenant = "reject"  # type: ignore[misc]


# --- TOML and schema errors --------------------------------------------------------------

def test_missing_file_names_the_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.toml"
    with pytest.raises(ConfigError, match="not found") as info:
        load_config(missing)
    assert info.value.file == str(missing)


def test_malformed_toml_gives_the_line() -> None:
    text = MINIMAL.replace('plan = "auto"', "plan = auto")
    err = error_for(text)
    assert err.line == line_of(text, "plan = auto")
    assert "invalid TOML" in err.message
    assert "(at line" not in err.message


def test_unterminated_table_at_end_of_document() -> None:
    assert error_for(MINIMAL + "[store\n").line == len(MINIMAL.splitlines()) + 1


def test_unknown_key_in_third_tenant_names_key_and_line() -> None:
    text = MINIMAL.replace('plan = "dedicated"', 'plann = "dedicated"')
    err = error_for(text)
    assert err.field == "tenants[2].plann"
    assert err.line == line_of(text, "plann =")
    assert "unknown key 'plann' (did you mean 'plan'?)" in err.message
    # the missing 'plan' is reported too, after it
    assert "tenants[2].plan': required key 'plan' is missing" in str(err)


def test_unknown_section_suggests_the_right_one() -> None:
    err = error_for(MINIMAL + "\n[thresholdz]\nwindow_days = 3\n")
    assert err.field == "thresholdz"
    assert "did you mean 'thresholds'?" in err.message


def test_unknown_key_in_inline_table_points_at_its_line() -> None:
    err = error_for('store = { uri = "x" }\n' + MINIMAL)
    assert (err.field, err.line) == ("store.uri", 1)


def test_threshold_out_of_range_names_field_and_line() -> None:
    text = MINIMAL + "\n[thresholds]\nwindow_days = 7\nhard_bounce_risky = 1.5\n"
    err = error_for(text)
    assert err.field == "thresholds.hard_bounce_risky"
    assert err.line == line_of(text, "hard_bounce_risky")
    assert "less than or equal to 1" in err.message


@pytest.mark.parametrize("line", ["window_days = 7.0", "auto_off_platform = 1",
                                  'confidence_z = "2"'])
def test_threshold_types_are_strict(line: str) -> None:
    err = error_for(MINIMAL + f"\n[thresholds]\n{line}\n")
    assert err.field == "thresholds." + line.split(" ")[0]


def test_decreasing_ladder_points_at_the_rung_the_file_sets() -> None:
    text = MINIMAL + "\n[thresholds]\nwindow_days = 7\ncomplaint_suspend = 0.002\n"
    err = error_for(text)
    assert err.field == "thresholds.complaint_keep_under"
    assert err.line == line_of(text, "complaint_suspend")
    assert "must not decrease" in err.message


def test_every_schema_error_is_reported() -> None:
    text = MINIMAL.replace('plan = "auto"', 'plan = "sometimes"').replace(
        'tiers = ["good"]', 'tiers = ["great"]')
    err = error_for(text)
    assert err.field == "pools[0].tiers[0]"
    assert err.line == line_of(text, '"great"')
    assert f"pw.toml:{line_of(text, 'sometimes')}, field 'tenants[1].plan'" in str(err)


@pytest.mark.parametrize("value", ['["sasl", "sasl"]', "[]", '["ldap"]'])
def test_bad_tenant_lookup(value: str) -> None:
    err = error_for(f"[routing]\ntenant_lookup = {value}\n" + MINIMAL)
    assert err.line == 2
    assert str(err.field).startswith("routing.tenant_lookup")


# --- inventory errors --------------------------------------------------------------------

def test_ip_in_two_pools_names_pool_and_line() -> None:
    text = MINIMAL.replace('ips = ["127.0.0.12"]', 'ips = ["127.0.0.12", "127.0.0.11"]')
    err = error_for(text)
    assert err.field == "pools[1].ips"
    assert err.line == line_of(text, '"127.0.0.12", "127.0.0.11"')
    assert "pool 'shared-new': IP 127.0.0.11 is already in pool 'shared-good'" in err.message


def test_plan_without_dedicated_ips_points_at_plan() -> None:
    text = MINIMAL.replace('dedicated_ips = ["127.0.0.21"]', "")
    err = error_for(text)
    assert (err.field, err.line) == ("tenants[2].plan", line_of(text, 'plan = "dedicated"'))


def test_missing_shared_tier_points_at_first_pool() -> None:
    text = MINIMAL.replace('tiers = ["new", "risky"]', 'tiers = ["new"]')
    err = error_for(text)
    assert err.field == "pools"
    assert err.line == line_of(text, "[[pools]]")
    assert "no shared pool serves tier 'risky'" in err.message


def test_duplicate_declared_provider_is_an_error() -> None:
    text = MINIMAL + '\n[[providers]]\nname = "gmx"\n\n[[providers]]\nname = "gmx"\n'
    err = error_for(text)
    assert err.field == "providers[1].name"
    assert err.line == line_of(text, 'name = "gmx"', start=line_of(text, 'name = "gmx"') + 1)


def test_declared_provider_replaces_the_builtin_one() -> None:
    text = MINIMAL + '\n[[providers]]\nname = "google"\ndomains = ["gmail.example"]\n'
    providers = load_config_text(text, file="pw.toml").inventory.providers
    google = [p for p in providers if p.name == "google"]
    assert len(google) == 1
    assert google[0].domains == ("gmail.example",)
    assert google[0].major is False


def test_addresses_and_domains_are_canonical() -> None:
    text = MINIMAL.replace('"127.0.0.21"', '"2001:DB8::0:1"').replace(
        '"gamma.example"', '"Gamma.Example."')
    inv = load_config_text(text, file="pw.toml").inventory
    assert inv.ips[2].address == "2001:db8::1"
    assert inv.tenants[2].dedicated_ips == ("2001:db8::1",)
    assert inv.tenants[2].domains == ("gamma.example",)


# --- store URL ---------------------------------------------------------------------------

@pytest.mark.parametrize(("url", "expected"), [
    (None, "sqlite:////etc/pw/poolwarden.db"),
    ("sqlite:///state/pw.db", "sqlite:////etc/pw/state/pw.db"),
    ("sqlite+pysqlite:///pw.db?timeout=5", "sqlite+pysqlite:////etc/pw/pw.db?timeout=5"),
    ("sqlite:////var/lib/pw.db", "sqlite:////var/lib/pw.db"),
    ("sqlite:///:memory:", "sqlite:///:memory:"),
    ("sqlite://", "sqlite://"),
    ("postgresql+psycopg://pw@db/pw", "postgresql+psycopg://pw@db/pw"),
])
def test_store_url_resolution(url: str | None, expected: str) -> None:
    assert resolve_store_url(url, Path("/etc/pw")) == expected


def test_relative_sqlite_url_resolves_against_the_config_file(tmp_path: Path) -> None:
    path = tmp_path / "pw.toml"
    path.write_text('[store]\nurl = "sqlite:///data/pw.db"\n' + MINIMAL)
    assert load_config(path).store_url == f"sqlite:///{tmp_path / 'data' / 'pw.db'}"
