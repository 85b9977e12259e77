"""The ``[feedback]`` section resolved for the feedback service: VERP secrets read (from the
configuration or its secrets file), names normalised, DKIM name servers parsed.

``feedback_settings(config)`` raises ``ConfigError`` naming the file and the setting (never a
key) when the secrets are unusable.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from poolwarden.config.load import LoadedConfig
from poolwarden.config.monitors import nameserver_address
from poolwarden.core.errors import ConfigError
from poolwarden.wire import dsn, verp


@dataclass(frozen=True, slots=True)
class FeedbackSettings:
    """The ``[feedback]`` section, resolved (secrets read, names normalised)."""

    secrets: tuple[bytes, ...] = field(default=(), repr=False)
    verp_domain: str | None = None
    # where VERP tokens are looked for inside a message: verp_domain and every pool's own
    # return_path_domain (empty: anywhere)
    verp_domains: tuple[str, ...] = ()
    fbl_sources: tuple[str, ...] = ()
    local_reporting_mtas: frozenset[str] = frozenset()
    max_message_bytes: int = dsn.MAX_BYTES
    max_events_per_message: int = 50
    require_dkim: bool = True
    dkim_nameservers: tuple[tuple[str, int], ...] = ()  # () -> the system resolver
    dkim_timeout: float = 5.0


def _secret_problem(secrets: Sequence[bytes]) -> str | None:
    if any(len(s) < verp.MIN_SECRET_BYTES for s in secrets):
        return f"every VERP secret needs at least {verp.MIN_SECRET_BYTES} bytes"
    return None


def feedback_settings(config: LoadedConfig) -> FeedbackSettings:
    """Resolve ``[feedback]``; reads ``verp_secrets_file``. ``ConfigError`` (naming the
    file and setting, never a key) when the keys are unusable."""
    section = config.settings.feedback
    where = str(config.path)
    if section.verp_secrets and section.verp_secrets_file:
        raise ConfigError("give feedback.verp_secrets or feedback.verp_secrets_file, not both",
                          file=where, field="feedback.verp_secrets_file")
    secrets: list[bytes] = [s.get_secret_value().encode() for s in section.verp_secrets]
    field_name = "feedback.verp_secrets"
    if section.verp_secrets_file:
        field_name = "feedback.verp_secrets_file"
        path = Path(section.verp_secrets_file)
        if not path.is_absolute():
            path = config.path.absolute().parent / path
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8"
            raise ConfigError(f"cannot read the VERP secrets file {path}: {reason}",
                              file=where, field=field_name) from None
        secrets = [line.strip().encode() for line in text.splitlines()
                   if line.strip() and not line.lstrip().startswith("#")]
    problem = _secret_problem(secrets)
    if problem:
        raise ConfigError(problem, file=where, field=field_name)
    own = section.verp_domain.strip().lower().rstrip(".") if section.verp_domain else None
    pools = [p.return_path_domain for p in config.inventory.pools if p.return_path_domain]
    return FeedbackSettings(
        secrets=tuple(secrets),
        verp_domains=tuple(dict.fromkeys([own, *pools])) if own else tuple(pools),
        verp_domain=section.verp_domain.strip().lower().rstrip(".") if section.verp_domain
        else None,
        fbl_sources=tuple(s.strip().lower().rstrip(".") for s in section.fbl_sources
                          if s.strip()),
        local_reporting_mtas=frozenset(h.strip().lower().rstrip(".")
                                       for h in section.local_reporting_mtas if h.strip()),
        max_message_bytes=section.max_message_bytes,
        max_events_per_message=section.max_events_per_message,
        require_dkim=section.fbl_require_dkim,
        dkim_nameservers=tuple(a for a in map(nameserver_address, section.dkim_nameservers)
                               if a is not None),
        dkim_timeout=section.dkim_timeout,
    )
