"""locate: key paths to 1-based lines in TOML text, with fallbacks to enclosing tables."""

from __future__ import annotations

import tomllib

import pytest

from poolwarden.config.locate import index_lines, locate

TEXT = """\
# comment = not a key
top = 1
[store]
url = "sqlite:///x.db"   # trailing comment

[routing]
  tenant_lookup = [
    "sasl",
    "sender_domain",
  ]
"unknown_tenant" = "defer"
thresholds.window_days = 7

[[tenants]]
name = "a"
plan = "shared"

[[ tenants ]]  # second
name = "b"
notes = '''
plan = "fake, inside a multi-line string"
'''
plan = "dedicated"

[[tenants]]
name = "c"
inline = { plann = "x" }

[[tenants.labels]]
key = "team"

[[tenants.labels]]
key = "tier"

[[pools]]
name = "p"
"""


def test_text_is_valid_toml() -> None:
    tomllib.loads(TEXT)


@pytest.mark.parametrize(("path", "line"), [
    (("top",), 2),
    (("store",), 3),
    (("store", "url"), 4),
    (("routing", "tenant_lookup"), 7),
    (("routing", "tenant_lookup", 1), 7),  # list item: the key's line
    (("routing", "unknown_tenant"), 11),  # quoted key
    (("routing", "thresholds", "window_days"), 12),  # dotted key
    (("tenants",), 14),
    (("tenants", 0), 14),
    (("tenants", 0, "plan"), 16),
    (("tenants", 1), 18),  # spaces inside the header, trailing comment
    (("tenants", 1, "plan"), 23),  # not the line inside the multi-line string
    (("tenants", 2, "name"), 26),
    (("tenants", 2, "inline", "plann"), 27),  # inline table: falls back to its key
    (("tenants", 2, "missing"), 25),  # falls back to the item's header
    (("tenants", 2, "labels", 0, "key"), 30),  # nested array of tables
    (("tenants", 2, "labels", 1, "key"), 33),
    (("pools", 0, "name"), 36),
])
def test_locate(path: tuple[str | int, ...], line: int) -> None:
    assert locate(TEXT, path) == line


@pytest.mark.parametrize("path", [(), ("nowhere",), ("nowhere", 0, "x")])
def test_not_found(path: tuple[str | int, ...]) -> None:
    assert locate(TEXT, path) is None


def test_item_past_the_last_falls_back_to_the_array() -> None:
    assert locate(TEXT, ("tenants", 9, "name")) == 14


def test_comments_are_not_keys() -> None:
    index = index_lines("# a = 1\na = 1\n")
    assert index == {("a",): 2}
