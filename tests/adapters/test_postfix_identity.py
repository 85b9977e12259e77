"""Sender login restrictions: generated when a tenant can be claimed, checked, warned about."""

from __future__ import annotations

import re
from pathlib import Path

from poolwarden.adapters.postfix_conf import check, main_cf, master_cf
from poolwarden.adapters.postfix_identity import claimable, login_map, owners
from poolwarden.config.load import load_config

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "poolwarden.toml"
LOOKUP = ("sasl", "sender_domain", "client_address")
STOCK = "retry unix - - n - - error\nerror unix - - n - - error\n"


def inventory():  # type: ignore[no-untyped-def]
    return load_config(EXAMPLE).inventory


def table_rules(table: str) -> list[tuple[re.Pattern[str], str]]:
    """The generated regexp table as (compiled pattern, logins), in order."""
    rules = re.findall(r"\{/(.+?)/ ([^}]+)\}", table.replace("$$", "$"))
    return [(re.compile(pattern, re.I), logins) for pattern, logins in rules]


def lookup(table: str, address: str) -> str | None:
    return next((logins for pattern, logins in table_rules(table) if pattern.search(address)),
                None)


def test_the_map_gives_each_domain_and_its_subdomains_to_the_tenants_logins():
    table = login_map(inventory())
    assert table is not None and "$$/" in table  # main.cf would expand a lone $
    assert lookup(table, "a@bigretail.example") == "bigretail"
    assert lookup(table, "a@eu.bigretail.example") == "bigretail"
    assert lookup(table, "a@news.northwind.example") == "northwind"
    assert lookup(table, "a@notbigretail.example") is None  # no suffix confusion
    assert lookup(table, "a@greenleaf.example") is None  # no SASL login: cannot be owned


def test_nested_domains_of_two_tenants_go_to_the_most_specific():
    ordered = [domain for domain, _ in owners(inventory())]
    assert ordered.index("mail.bigretail.example") < ordered.index("bigretail.example")


def test_main_cf_emits_the_restrictions_only_for_a_claiming_lookup():
    inv = inventory()
    with_lookup = main_cf(inv, policy_endpoint="unix:private/poolwarden", tenant_lookup=LOOKUP)
    assert "smtpd_sender_restrictions = reject_sender_login_mismatch" in with_lookup
    assert "smtpd_sender_login_maps = regexp:{" in with_lookup
    sasl_only = main_cf(inv, policy_endpoint="unix:private/poolwarden", tenant_lookup=("sasl",))
    assert "login_mismatch" not in sasl_only


def test_check_fails_without_each_piece_and_passes_with_all():
    inv = inventory()
    main = main_cf(inv, policy_endpoint="unix:private/poolwarden", tenant_lookup=LOOKUP)
    main += "smtpd_sasl_auth_enable = yes\n"
    master = STOCK + master_cf(inv)

    def problems(text: str) -> str:
        return "\n".join(check(inv, text, master, None, tenant_lookup=LOOKUP))

    assert problems(main) == ""
    assert "smtpd_sasl_auth_enable is not yes" in problems(
        main.replace("smtpd_sasl_auth_enable = yes", ""))
    assert "smtpd_sender_login_maps is not set" in problems(
        re.sub(r"(?m)^smtpd_sender_login_maps = .*$", "", main))
    assert "does not name travelhub.example" in problems(
        main.replace("travelhub", "elsewhere"))
    assert "permit_* before it" in problems(main.replace(
        "smtpd_sender_restrictions = ", "smtpd_sender_restrictions = permit_mynetworks, "))
    only_half = main.replace("= reject_sender_login_mismatch",
                             "= reject_known_sender_login_mismatch")
    assert "no reject_sender_login_mismatch" in problems(only_half)
    # not needed when the tenant is found by its login alone
    assert check(inv, re.sub(r"(?m)^smtpd_sender_.*$", "", main), master, None,
                 tenant_lookup=("sasl",)) == []


def test_check_wants_the_agent_idle_timeout_above_postfix_max_idle():
    inv = inventory()
    main = main_cf(inv, policy_endpoint="unix:private/poolwarden")
    master = STOCK + master_cf(inv)
    assert check(inv, main, master, None, idle_timeout=330) == []
    bad = check(inv, main + "smtpd_policy_service_max_idle = 400s\n", master, None,
                idle_timeout=330)
    assert any("smtpd_policy_service_max_idle = 400s is not below" in p for p in bad)


def test_validate_warns_about_claimable_lookups():
    inv = inventory()
    warnings = claimable(inv, LOOKUP)
    assert any("greenleaf-crm" in w and "no sasl_usernames" in w for w in warnings)
    assert any("client_address" in w for w in warnings)
    assert claimable(inv, ("sasl",)) == []
