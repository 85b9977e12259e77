"""Postfix's queue tools on one instance: run ``postqueue``, ``postsuper``, ``postconf``…
and read the hold queue from ``postqueue -j``.

``run_tool(name, config_dir, *args)`` runs a tool with ``-c config_dir`` (Postfix's default
instance when None) and returns its stdout; a missing tool, a timeout or a non-zero exit is
a ``PostfixToolError`` naming the command, so callers change nothing and say why (held mail
stays held). Whose message is whose is not decided here (``services.queries.held``).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from poolwarden.core.errors import PoolwardenError

TOOL_TIMEOUT = 60.0


class PostfixToolError(PoolwardenError):
    """A Postfix tool is missing, timed out or failed."""


@dataclass(frozen=True, slots=True)
class HeldMessage:
    """One message of Postfix's hold queue."""

    queue_id: str
    sender: str
    recipients: int
    arrival_time: float = 0.0


def run_tool(name: str, config_dir: str | Path | None, *args: str, stdin: str | None = None,
             timeout: float = TOOL_TIMEOUT) -> str:
    """Run Postfix's ``name`` on the instance in ``config_dir`` and return its stdout."""
    found = shutil.which(name, path=os.environ.get("PATH", "") + ":/usr/sbin:/sbin")
    if found is None:
        raise PostfixToolError(f"{name} not found: is Postfix installed?")
    argv = [found, *(["-c", str(config_dir)] if config_dir is not None else []), *args]
    try:
        done = subprocess.run(argv, input=stdin, capture_output=True, text=True,
                              timeout=timeout, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise PostfixToolError(f"{' '.join(argv)}: {exc}") from exc
    if done.returncode != 0:
        raise PostfixToolError(f"{' '.join(argv)} exited {done.returncode}: "
                               f"{(done.stderr or done.stdout).strip()}")
    return done.stdout


def held_messages(postqueue_j: str) -> list[HeldMessage]:
    """The hold-queue messages of ``postqueue -j`` output (one JSON object per line)."""
    held = []
    for line in postqueue_j.splitlines():
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(entry, dict) and entry.get("queue_name") == "hold":
            arrival = entry.get("arrival_time")
            held.append(HeldMessage(str(entry.get("queue_id", "")), str(entry.get("sender", "")),
                                    len(entry.get("recipients") or ()),
                                    float(arrival) if isinstance(arrival, int | float) else 0.0))
    return [m for m in held if m.queue_id]


def hold_queue(config_dir: str | Path | None, *, timeout: float = TOOL_TIMEOUT
               ) -> list[HeldMessage]:
    """The messages in the instance's hold queue."""
    return held_messages(run_tool("postqueue", config_dir, "-j", timeout=timeout))


def release_from_hold(config_dir: str | Path | None, queue_ids: list[str], *,
                      timeout: float = TOOL_TIMEOUT) -> None:
    """``postsuper -H``: release these messages; each keeps the FILTER route the agent stored
    with it at END-OF-MESSAGE (``-r`` would send it back through cleanup, which drops it)."""
    if queue_ids:
        run_tool("postsuper", config_dir, "-H", "-", stdin="".join(q + "\n" for q in queue_ids),
                 timeout=timeout)


def queue_lifetime_text(config_dir: str | Path | None) -> str:
    """The instance's ``maximal_queue_lifetime`` as written (``5d``)."""
    return run_tool("postconf", config_dir, "-h", "maximal_queue_lifetime").strip()
