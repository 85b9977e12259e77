"""Bad monitor configuration is refused with the file, line and field: a bad zone name, a
negative query budget, an answer meaning outside the vocabulary, a public resolver."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from poolwarden.config.load import load_config_text
from poolwarden.core.blocklists import DEFAULT_BLOCKLISTS
from poolwarden.core.errors import ConfigError
from poolwarden.main import app
from tests.services.monitors.zones import lab_config

BASE = lab_config("127.0.0.1:5353")


def line_of(text: str, needle: str, nth: int = 1) -> int:
    hits = [i for i, raw in enumerate(text.splitlines(), 1) if needle in raw]
    return hits[nth - 1]


@pytest.mark.parametrize(("old", "new", "field", "words"), [
    ('zone = "spamcop.dnsbl.test"', 'zone = "spam cop..test"',
     "monitors.blocklists[1].zone", "not a DNS zone name"),
    ("lifetime = 1.0", "lifetime = 1.0\nquery_budget = -5", "monitors.query_budget",
     "greater than or equal to 0"),
    ('means = "listed"', 'means = "blocked"', "monitors.blocklists[0].answers[0].means",
     "'listed', 'error' or 'ignore'"),
    ('nameservers = ["127.0.0.1:5353"]', 'nameservers = ["8.8.8.8"]', "monitors.nameservers",
     "public resolver"),
    ('code = "127.0.0.2"', 'code = "listed"', "monitors.blocklists[0].answers[0].code",
     "not an IPv4 address"),
])
def test_bad_monitor_settings_name_file_line_and_field(tmp_path: Path, old, new, field, words):
    assert old in BASE
    text = BASE.replace(old, new, 1)
    with pytest.raises(ConfigError) as caught:
        load_config_text(text, file="pw.toml")
    err = caught.value
    assert err.file == "pw.toml"
    assert err.field == field, err
    assert words in err.message
    assert err.line == line_of(text, new.splitlines()[-1])
    # and poolwarden validate says the same, with exit status 2
    path = tmp_path / "pw.toml"
    path.write_text(text)
    result = CliRunner().invoke(app, ["validate", str(path)])
    assert result.exit_code == 2
    assert f"{path}:{err.line}" in result.output and field in result.output


def test_lists_merge_by_name_and_disable():
    loaded = load_config_text("[monitors]\ndisable = [\"psbl\"]\n[[monitors.blocklists]]\n"
                              'name = "spamcop"\nzone = "spamcop.internal.test"\nkind = "ip"\n'
                              '[[monitors.blocklists]]\nname = "extra"\n'
                              'zone = "extra.internal.test"\nkind = "domain"\n', file="x.toml")
    names = [b.name for b in loaded.blocklists]
    assert "psbl" not in names and "extra" in names
    assert len(names) == len(DEFAULT_BLOCKLISTS)  # one disabled, one added
    assert next(b for b in loaded.blocklists if b.name == "spamcop").zone \
        == "spamcop.internal.test"
