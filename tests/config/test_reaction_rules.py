"""Reaction rule files: built-in set, user files, and bad input named by file, line and field."""

from __future__ import annotations

from pathlib import Path

import pytest

from poolwarden.config.load import load_config, load_config_text
from poolwarden.config.reaction_rules import BUILTIN_RULES, load_rule_file, load_rule_text
from poolwarden.core.errors import ConfigError
from poolwarden.core.reaction import Observation, ReactionAction, RuleScope

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "poolwarden.toml"
PROVIDERS = ("google", "microsoft", "yahoo", "apple", "other")
POOLS = ("shared-good", "shared-new")

GOOD = """\
[[rules]]
name = "g"
provider = "google"
code = '4\\.7\\.28'
trigger = "3/10m"
action = "pause"
duration = "20s"
ramp = [0.25, 0.5]
ramp_step = "10s"
"""


def load(text: str) -> tuple[object, ...]:
    return load_rule_text(text, file="rules.toml", providers=PROVIDERS, pools=POOLS)


def test_a_good_rule() -> None:
    (rule,) = load(GOOD)
    assert (rule.threshold, rule.period, rule.duration, rule.ramp, rule.ramp_step) == (
        3, 600.0, 20.0, (0.25, 0.5), 10.0)
    assert rule.origin == "rules.toml:1"


def test_builtin_rules_cover_the_big_providers_and_any() -> None:
    rules = load_rule_file(BUILTIN_RULES, providers=PROVIDERS, pools=())
    assert {r.provider for r in rules} == {"google", "microsoft", "yahoo", "*"}
    by_name = {r.name: r for r in rules}
    yahoo = by_name["yahoo-ts04"]
    # NUMBERS.md: [TS04]/[TSS04] suspends that IP to Yahoo for 2 h (KumoMTA shaping.toml)
    assert (yahoo.action, yahoo.scope, yahoo.threshold, yahoo.duration) == (
        ReactionAction.PAUSE, RuleScope.IP, 1, 7200.0)
    reply = "421 4.7.0 [TSS04] Messages from 127.0.0.21 temporarily deferred due to user " \
            "complaints"
    assert yahoo.matches(Observation(0.0, "yahoo", "127.0.0.21", "t", "deferred", "4.7.0",
                                     reply))
    generic = by_name["generic-ip-reputation"]
    assert generic.duration == 90 * 60  # NUMBERS.md: 90 min
    assert by_name["google-ip-unusual-rate"].code is not None
    assert by_name["google-ip-unusual-rate"].code.fullmatch("4.7.28")
    assert by_name["microsoft-banned-ip"].code is not None
    assert by_name["microsoft-banned-ip"].code.fullmatch("5.7.606")
    assert all(r.origin.startswith(str(BUILTIN_RULES)) for r in rules)


def _error(text: str) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        load(text)
    return info.value


@pytest.mark.parametrize(("old", "new", "line", "field", "message"), [
    ("code = '4\\.7\\.28'", "code = '4\\.7\\.(28'", 4, "rules[0].code",
     "invalid regular expression"),
    ('action = "pause"', 'action = "freeze"', 6, "rules[0].action",
     "unknown action 'freeze' (expected one of: pause, cap, reroute, tier_down, alert)"),
    ('duration = "20s"', 'duration = "30d"', 7, "rules[0].duration",
     "duration '30d' is out of range (1s to 7d)"),
    ('duration = "20s"', 'duration = "soon"', 7, "rules[0].duration", "not a duration"),
    ('provider = "google"', 'provider = "gogle"', 3, "rules[0].provider",
     "unknown provider 'gogle'"),
    ('trigger = "3/10m"', 'trigger = "3 per hour"', 5, "rules[0].trigger",
     'trigger must be "immediate" or "N/period"'),
    ('trigger = "3/10m"', 'trigger = "3/9d"', 5, "rules[0].trigger", "out of range"),
    ("ramp = [0.25, 0.5]", "ramp = [0.5, 0.25]", 8, "rules[0].ramp", "must increase"),
    ("ramp = [0.25, 0.5]", "ramp = [0.25, 1.5]", 8, "rules[0].ramp", "below 1"),
    ('ramp_step = "10s"', 'ramp_stp = "10s"', 9, "rules[0].ramp_stp", "unknown key 'ramp_stp'"),
])
def test_bad_rules_name_file_line_and_field(old: str, new: str, line: int, field: str,
                                            message: str) -> None:
    assert old in GOOD
    err = _error(GOOD.replace(old, new))
    assert err.file == "rules.toml"
    assert (err.line, err.field) == (line, field), str(err)
    assert message in err.message, err.message


def test_every_problem_of_a_file_is_reported() -> None:
    text = GOOD + GOOD.replace('name = "g"', 'name = "h"').replace("pause", "explode") \
        .replace('"20s"', '"0s"')
    err = _error(text)
    assert "rules[1].action" in str(err) and "rules[1].duration" in str(err)
    assert err.line == 15


@pytest.mark.parametrize(("extra", "field", "message"), [
    ('action = "reroute"\nscope = "tenant"\npool = "nowhere"', "rules[0].pool",
     "unknown pool 'nowhere'"),
    ('action = "reroute"\npool = "shared-good"', "rules[0].scope", 'needs scope = "tenant"'),
    ('action = "cap"', "rules[0].cap_factor", "needs cap_factor"),
    ('action = "cap"\ncap_factor = 1.5', "rules[0].cap_factor", "below 1"),
    ('action = "alert"\nramp = [0.5]\nramp_step = "1m"', "rules[0].ramp",
     "ramp applies to actions pause and cap"),
])
def test_action_specific_checks(extra: str, field: str, message: str) -> None:
    text = f'[[rules]]\nname = "x"\nprovider = "*"\ntext = "busy"\nduration = "1h"\n{extra}\n'
    err = _error(text)
    assert err.field == field and message in err.message, str(err)


def test_a_rule_needs_a_match_and_a_unique_name() -> None:
    assert "needs 'code'" in str(_error('[[rules]]\nname = "x"\nprovider = "*"\n'
                                        'action = "alert"\nduration = "1h"\n'))
    assert "used twice" in str(_error(GOOD + GOOD))


def test_toml_syntax_error_names_the_line() -> None:
    err = _error(GOOD + "oops = \n")
    assert err.line == 10 and "invalid TOML" in err.message


def _config(tmp_path: Path, reaction: str) -> Path:
    path = tmp_path / "poolwarden.toml"
    path.write_text(EXAMPLE.read_text() + "\n[reaction]\n" + reaction + "\n")
    return path


def test_user_files_replace_and_disable_builtin_rules(tmp_path: Path) -> None:
    (tmp_path / "mine.toml").write_text(GOOD.replace('name = "g"',
                                                     'name = "google-ip-unusual-rate"'))
    config = load_config(_config(tmp_path, 'rule_files = ["mine.toml"]\n'
                                           'disable = ["yahoo-ts04"]'))
    names = {r.name: r for r in config.reaction_rules}
    assert "yahoo-ts04" not in names and "yahoo-tss05" in names
    assert names["google-ip-unusual-rate"].duration == 20.0  # the user's version
    only = load_config(_config(tmp_path, 'builtin_rules = false\nrule_files = ["mine.toml"]'))
    assert [r.name for r in only.reaction_rules] == ["google-ip-unusual-rate"]


def test_a_bad_rule_file_fails_the_whole_configuration(tmp_path: Path) -> None:
    (tmp_path / "bad.toml").write_text(GOOD.replace("pause", "explode"))
    with pytest.raises(ConfigError) as info:
        load_config(_config(tmp_path, 'rule_files = ["bad.toml"]'))
    assert info.value.file == str(tmp_path / "bad.toml")
    assert (info.value.line, info.value.field) == (6, "rules[0].action")


def test_missing_rule_file_and_unknown_disable_name_the_config(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(_config(tmp_path, 'rule_files = ["absent.toml"]'))
    assert info.value.field == "reaction.rule_files[0]" and "not found" in info.value.message
    assert info.value.file == str(tmp_path / "poolwarden.toml") and info.value.line
    with pytest.raises(ConfigError) as info:
        load_config(_config(tmp_path, 'disable = ["no-such-rule"]'))
    assert info.value.field == "reaction.disable[0]"


def test_the_example_loads_the_builtin_rules() -> None:
    config = load_config_text(EXAMPLE.read_text(), file=str(EXAMPLE))
    assert len(config.reaction_rules) >= 10
