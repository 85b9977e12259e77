"""Sending domains in the configuration: roles, selectors and return paths, validated with
the file, line and field of each problem; a plain ``domains`` list keeps its meaning."""

from __future__ import annotations

import pytest

from poolwarden.config.load import load_config_text
from poolwarden.core.errors import ConfigError
from poolwarden.core.model import DomainRole
from tests.config.test_load import MINIMAL, error_for, line_of

GOOD = MINIMAL.replace('''name = "alpha"
plan = "shared"
domains = ["alpha.example"]
''', '''name = "alpha"
plan = "shared"
domains = ["alpha.example"]

[[tenants.sending_domains]]
domain = "alpha.example"
roles = ["from"]

[[tenants.sending_domains]]
domain = "bounce.alpha.example"
roles = ["mailfrom"]

[[tenants.sending_domains]]
domain = "alpha.esp-dkim.example"
roles = ["dkim"]
dkim_selectors = ["s1", "s2024"]

[[tenants.sending_domains]]
domain = "click.alpha.example"
roles = ["tracking"]
''').replace('''name = "shared-good"
tiers = ["good"]
ips = ["127.0.0.11"]''', '''name = "shared-good"
tiers = ["good"]
ips = ["127.0.0.11"]
return_path_domain = "bounces-good.esp.example"''')


def test_roles_selectors_and_return_paths_load() -> None:
    config = load_config_text(GOOD, file="pw.toml")
    alpha = config.inventory.tenants[0]
    roles = {d.domain: d for d in alpha.domain_roles()}
    assert roles["alpha.example"].roles == {DomainRole.FROM}
    assert roles["bounce.alpha.example"].roles == {DomainRole.MAILFROM}
    assert roles["alpha.esp-dkim.example"].dkim_selectors == ("s1", "s2024")
    assert roles["click.alpha.example"].roles == {DomainRole.TRACKING}
    assert config.inventory.pools[0].return_path_domain == "bounces-good.esp.example"
    beta = config.inventory.tenants[1]  # a plain domain list: From and MAIL FROM
    (plain,) = beta.domain_roles()
    assert plain.domain == "beta.example"
    assert plain.roles == {DomainRole.FROM, DomainRole.MAILFROM}


@pytest.mark.parametrize(("old", "new", "field", "message", "line_after", "line_at"), [
    ('domain = "bounce.alpha.example"', 'domain = "bounce.other.example"',
     "tenants[0].sending_domains[1].roles", "not one of the tenant's domains",
     "bounce.other.example", 'roles = ["mailfrom"]'),
    ('dkim_selectors = ["s1", "s2024"]', "", "tenants[0].sending_domains[2].dkim_selectors",
     "role 'dkim' but no dkim_selectors", 'roles = ["mailfrom"]',
     "[[tenants.sending_domains]]"),  # the key is absent: its entry's header
    ('roles = ["tracking"]', 'roles = ["tracking"]\ndkim_selectors = ["s1"]',
     "tenants[0].sending_domains[3].dkim_selectors", "not the role 'dkim'",
     "click.alpha.example", 'dkim_selectors = ["s1"]'),
    ('dkim_selectors = ["s1", "s2024"]', 'dkim_selectors = ["s 1"]',
     "tenants[0].sending_domains[2].dkim_selectors", "not a valid DKIM selector",
     "alpha.esp-dkim.example", 'dkim_selectors = ["s 1"]'),
    ('roles = ["from"]', 'roles = ["sender"]', "tenants[0].sending_domains[0].roles[0]",
     "Input should be 'from', 'mailfrom', 'dkim' or 'tracking'", "[[tenants]]",
     'roles = ["sender"]'),
    ('roles = ["from"]', 'roles = ["from", "from"]', "tenants[0].sending_domains[0].roles",
     "lists a role more than once", "[[tenants]]", 'roles = ["from", "from"]'),
    ('domain = "click.alpha.example"', 'domain = "alpha.example"',
     "tenants[0].sending_domains[3].domain", "listed twice", 'roles = ["dkim"]',
     'domain = "alpha.example"'),
    ('return_path_domain = "bounces-good.esp.example"', 'return_path_domain = "bad domain"',
     "pools[0].return_path_domain", "not a valid domain name", "[[pools]]",
     "return_path_domain"),
])
def test_problems_name_line_and_field(old: str, new: str, field: str, message: str,
                                      line_after: str, line_at: str) -> None:
    assert old in GOOD
    text = GOOD.replace(old, new, 1)
    error = error_for(text)
    assert error.field == field, error
    assert message in str(error), error
    assert error.line == line_of(text, line_at, line_of(text, line_after)), str(error)


def test_unknown_key_in_a_sending_domain_is_an_error() -> None:
    text = GOOD.replace('roles = ["mailfrom"]', 'roles = ["mailfrom"]\nselector = "s1"', 1)
    with pytest.raises(ConfigError, match="unknown key 'selector'"):
        load_config_text(text, file="pw.toml")


def test_feedback_accepts_tokens_at_each_pool_return_path() -> None:
    from poolwarden.services.feedback.settings import feedback_settings

    text = GOOD + '\n[feedback]\nverp_secrets = ["0123456789abcdef0123"]\n' \
        'verp_domain = "Bounces.ESP.example"\n'
    settings = feedback_settings(load_config_text(text, file="pw.toml"))
    assert settings.verp_domains == ("bounces.esp.example", "bounces-good.esp.example")
