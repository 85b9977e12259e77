"""The ``poolwarden`` console entry: answers the two calls that must start fast itself.

``poolwarden classify FILE...`` (one bounce at a time is a common call from scripts and
mail filters) and ``poolwarden --help`` are answered without loading the command
framework (Typer and Rich cost most of a second of start-up, the store and the services
more): ``classify`` goes straight to ``cli.classify_cmd``; the top-level help is the
text in ``cli/usage.txt``, which ``render_usage`` builds from the real command tree and a
test holds equal to it (regenerate it with ``python -m poolwarden.entry --write-usage``).
Every other call, and any ``classify`` call with options other than ``--json``, is handed
to the composition root ``poolwarden.main.app`` unchanged.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import typer

__all__ = ["USAGE_FILE", "main", "render_usage"]

USAGE_FILE = Path(__file__).resolve().parent / "cli" / "usage.txt"
_WIDTH = 100


def _fast_classify(args: list[str]) -> int | None:
    """Run ``classify`` without the framework when its arguments are plain; else None."""
    files = [a for a in args if a != "--json"]
    if not files or any(a.startswith("-") for a in files):
        return None  # --help, unknown options, no file: the full CLI explains
    from poolwarden.cli.classify_cmd import classify_command

    return classify_command([Path(f) for f in files], "--json" in args)


def render_usage(app: typer.Typer) -> str:
    """The top-level help as plain text, from the command tree itself."""
    import click
    import typer.main

    group = typer.main.get_command(app)
    ctx = click.Context(group, info_name="poolwarden")
    rows = []
    assert isinstance(group, click.Group)
    for name in group.list_commands(ctx):
        cmd = group.get_command(ctx, name)
        if cmd is not None and not cmd.hidden:
            rows.append((name, cmd.get_short_help_str(limit=_WIDTH - 16)))
    lines = ["Usage: poolwarden [OPTIONS] COMMAND [ARGS]...", "",
             f"  {app.info.help}", "", "Options:",
             "  --help      Show this message and exit.", "", "Commands:"]
    lines += [f"  {name:<12}{summary}" for name, summary in rows]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    """Console entry point."""
    args = sys.argv[1:] if argv is None else argv
    if args[:1] == ["classify"]:
        status = _fast_classify(args[1:])
        if status is not None:
            raise SystemExit(status)
    elif args == ["--help"] and USAGE_FILE.is_file():
        sys.stdout.write(USAGE_FILE.read_text(encoding="utf-8"))
        return
    elif args == ["--write-usage"]:
        from poolwarden.main import app as full

        USAGE_FILE.write_text(render_usage(full), encoding="utf-8")
        return
    from poolwarden.main import app

    app(args=args, prog_name="poolwarden")


if __name__ == "__main__":  # pragma: no cover
    main()
