"""The one error tree of poolwarden; every module raises from here.

    PoolwardenError
    ├── ConfigError          bad configuration: names the file, line and field
    ├── InputError           a bad record in user input (event line, CLI argument): names where
    │   └── UnknownTenantError
    ├── StoreError           the store failed (adapters translate driver errors, ``raise … from``)
    └── RoutingError         the decision function could not decide (callers answer DEFER)

Never touches I/O; only carries messages and locations.
"""

from __future__ import annotations


class PoolwardenError(Exception):
    """Base of every error poolwarden raises on purpose."""


class ConfigError(PoolwardenError):
    """A configuration problem, located as precisely as we can (file, line, field)."""

    def __init__(self, message: str, *, file: str | None = None, line: int | None = None,
                 field: str | None = None) -> None:
        self.message = message
        self.file = file
        self.line = line
        self.field = field
        super().__init__(self.location_text() + message)

    def location_text(self) -> str:
        parts: list[str] = []
        if self.file:
            parts.append(self.file if self.line is None else f"{self.file}:{self.line}")
        elif self.line is not None:
            parts.append(f"line {self.line}")
        if self.field:
            parts.append(f"field '{self.field}'")
        return (", ".join(parts) + ": ") if parts else ""


class InputError(PoolwardenError):
    """A bad record in user-supplied input, with where it was found."""

    def __init__(self, message: str, *, source: str | None = None, line: int | None = None,
                 field: str | None = None) -> None:
        self.message = message
        self.source = source
        self.line = line
        self.field = field
        where = []
        if source:
            where.append(source if line is None else f"{source}:{line}")
        elif line is not None:
            where.append(f"line {line}")
        if field:
            where.append(f"field '{field}'")
        super().__init__((", ".join(where) + ": " if where else "") + message)


class UnknownTenantError(InputError):
    """A tenant name that the configuration does not define."""


class StoreError(PoolwardenError):
    """The store could not complete an operation; nothing partial was written."""


class RoutingError(PoolwardenError):
    """The decision function could not decide; the safe answer is to defer."""
