"""What every ``poolwarden`` command module shares: the two consoles, the ``--config``
option and where it defaults to, and the one way a command fails (one line on stderr,
exit status 2)."""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, NoReturn, TypeVar

import typer
from rich.console import Console

from poolwarden.cli.render import escape
from poolwarden.core.errors import PoolwardenError

T = TypeVar("T")

# wide enough for the tenant table when output goes to a file or a pipe
out = Console(soft_wrap=True, width=None if sys.stdout.isatty() else 160, highlight=False)
err = Console(stderr=True, soft_wrap=True, highlight=False)

ConfigOption = Annotated[Path | None, typer.Option(
    "--config", "-c", help="Configuration file [default: $POOLWARDEN_CONFIG, else "
    "./poolwarden.toml].", show_default=False)]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]


def config_path(option: Path | None) -> Path:
    if option is not None:
        return option
    return Path(os.environ.get("POOLWARDEN_CONFIG") or "poolwarden.toml")


def fail(message: str, code: int = 2) -> NoReturn:
    err.print(f"[bold red]error:[/] {escape(message)}", markup=True, highlight=False)
    raise typer.Exit(code)


def guarded(fn: Callable[..., T]) -> Callable[..., T]:
    """Turn our own errors into one clear line and exit status 2."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> T:
        try:
            return fn(*args, **kwargs)
        except PoolwardenError as exc:
            fail(str(exc))

    return wrapper
