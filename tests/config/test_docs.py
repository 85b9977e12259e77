"""docs/configuration.md documents every setting, and its generated reference is up to date.

Regenerate the reference after changing a setting:

    POOLWARDEN_UPDATE_DOCS=1 .venv/bin/pytest tests/config/test_docs.py
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from poolwarden.config.schema import (
    PoolwardenSettings,
    Setting,
    format_default,
    iter_settings,
)

DOC = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"
BEGIN = "<!-- BEGIN GENERATED REFERENCE (tests/config/test_docs.py) -->"
END = "<!-- END GENERATED REFERENCE -->"
SETTINGS = list(iter_settings())


def render_reference() -> str:
    """The reference part of the document, one section per table, one entry per setting."""
    out: list[str] = []
    for section, info in PoolwardenSettings.model_fields.items():
        item = section in {"ips", "pools", "tenants", "providers"}
        out += [f"## `[[{section}]]`" if item else f"## `[{section}]`", "",
                info.description or "", ""]
        prefix = f"{section}[]." if item else f"{section}."
        for s in (s for s in SETTINGS if s.name.startswith(prefix)):
            out += [f"### `{s.name}`", "", f"- type: {s.type}",
                    f"- default: `{format_default(s.default)}`", "", s.help, ""]
    return "\n".join(out)


@pytest.mark.parametrize("setting", SETTINGS, ids=[s.name for s in SETTINGS])
def test_setting_has_help(setting: Setting) -> None:
    assert setting.help.strip(), f"{setting.name} has no help text"


@pytest.mark.parametrize("name", [s.name for s in SETTINGS])
def test_setting_is_documented(name: str) -> None:
    assert f"`{name}`" in DOC.read_text(encoding="utf-8"), (
        f"{name} is missing from {DOC.name}; regenerate with POOLWARDEN_UPDATE_DOCS=1")


def test_every_section_has_a_description() -> None:
    for name, info in PoolwardenSettings.model_fields.items():
        assert info.description, name


def test_generated_reference_is_current() -> None:
    text = DOC.read_text(encoding="utf-8")
    assert BEGIN in text, f"{DOC.name} lacks the generated-reference markers"
    assert END in text, f"{DOC.name} lacks the generated-reference markers"
    head, _, rest = text.partition(BEGIN + "\n")
    _, _, tail = rest.partition(END)
    fresh = f"{head}{BEGIN}\n\n{render_reference()}\n{END}{tail}"
    if os.environ.get("POOLWARDEN_UPDATE_DOCS"):
        DOC.write_text(fresh, encoding="utf-8")
    assert text == fresh, ("docs/configuration.md is out of date; regenerate with "
                           "POOLWARDEN_UPDATE_DOCS=1 .venv/bin/pytest tests/config/test_docs.py")
