"""Principals and credentials: API tokens and dashboard users, with their roles.

Roles: ``operator-read`` (every read), ``operator-write`` (reads and writes) and
``tenant`` (bound to one tenant: sees only that tenant, writes nothing).

Tokens are ``pw_`` + ``secrets.token_urlsafe(32)`` (256 random bits), shown once and
stored as their SHA-256 plus a short prefix. A plain hash is enough here (ASVS 6.5.2):
a password KDF exists to slow down guessing of low-entropy secrets, and nobody guesses
2^256 values whatever the hash costs; a fast hash also keeps every API request cheap.
Passwords are chosen by people, so they get scrypt with a per-user salt and are
compared in constant time; an unknown user costs the same scrypt as a known one, so
timing does not tell which names exist.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import secrets
from dataclasses import dataclass, replace
from enum import StrEnum

from poolwarden.core.errors import InputError, StoreError
from poolwarden.ports import AccessStore, TokenRow, UserRow

TOKEN_PREFIX = "pw_"
TOKEN_BYTES = 32  # 256 bits of randomness, well over the 128 the API requires
SHOWN_PREFIX = 10  # "pw_" and 7 characters: tells tokens apart in a listing
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**14, 8, 1  # ~16 MiB and ~50 ms per check
SALT_BYTES = 16
MIN_PASSWORD = 10
TOUCH_EVERY = 60.0  # seconds: last_used_at is refreshed at most this often per token
NAME_MAX = 255


class Role(StrEnum):
    OPERATOR_READ = "operator-read"
    OPERATOR_WRITE = "operator-write"
    TENANT = "tenant"


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: a token or a user, with a role (and a tenant for tenant roles)."""

    name: str  # "token:<name>#<id>" or "user:<name>"
    role: Role
    tenant: str | None = None

    @property
    def is_operator(self) -> bool:
        return self.role is not Role.TENANT

    @property
    def can_write(self) -> bool:
        return self.role is Role.OPERATOR_WRITE


@dataclass(frozen=True, slots=True)
class NewToken:
    """A token just created: ``secret`` is its only appearance in plaintext."""

    id: int
    secret: str
    row: TokenRow


def hash_token(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8", "replace")).hexdigest()


def _scrypt(password: str, salt: bytes) -> bytes:
    return hashlib.scrypt(password.encode("utf-8", "replace"), salt=salt, n=SCRYPT_N,
                          r=SCRYPT_R, p=SCRYPT_P, dklen=32)


def _check_role(role: str, tenant: str | None, known_tenants: set[str] | None) -> Role:
    try:
        parsed = Role(role)
    except ValueError:
        raise InputError(f"unknown role '{role}' (one of: "
                         f"{', '.join(r.value for r in Role)})", field="role") from None
    if parsed is Role.TENANT:
        if not tenant:
            raise InputError("a tenant role needs a tenant", field="tenant")
        if known_tenants is not None and tenant not in known_tenants:
            raise InputError(f"unknown tenant '{tenant}'", field="tenant")
    elif tenant:
        raise InputError("only the tenant role is bound to a tenant", field="tenant")
    return parsed


def _check_name(name: str, field: str) -> str:
    name = name.strip()
    if not name or len(name) > NAME_MAX or not name.isprintable():
        raise InputError(f"a {field} is 1 to {NAME_MAX} printable characters", field=field)
    return name


def create_token(store: AccessStore, *, name: str, role: str, tenant: str | None = None,
                 created_by: str, now: float,
                 known_tenants: set[str] | None = None) -> NewToken:
    parsed = _check_role(role, tenant, known_tenants)
    secret = TOKEN_PREFIX + secrets.token_urlsafe(TOKEN_BYTES)
    row = TokenRow(id=0, name=_check_name(name, "name"), prefix=secret[:SHOWN_PREFIX],
                   token_hash=hash_token(secret), role=parsed.value,
                   tenant=tenant if parsed is Role.TENANT else None, created_at=now,
                   created_by=created_by)
    token_id = store.add_token(row)
    return NewToken(id=token_id, secret=secret, row=replace(row, id=token_id))


def verify_token(store: AccessStore, secret: str, *, now: float) -> Principal | None:
    """The principal of a live token, or None (unknown, malformed or revoked)."""
    if not secret.startswith(TOKEN_PREFIX) or len(secret) > 200:
        return None
    row = store.token_by_hash(hash_token(secret))
    # the lookup is by hash, so a timing difference tells nothing about the token;
    # compare anyway so a store that matched loosely cannot let a wrong token in
    if row is None or not hmac.compare_digest(row.token_hash, hash_token(secret)):
        return None
    if row.revoked_at is not None:
        return None
    if row.last_used_at is None or now - row.last_used_at >= TOUCH_EVERY:
        # bookkeeping only: a busy store must not refuse a valid token
        with contextlib.suppress(StoreError):
            store.touch_token(row.id, now)
    return Principal(name=f"token:{row.name}#{row.id}", role=Role(row.role), tenant=row.tenant)


def revoke(store: AccessStore, token_id: int, *, now: float) -> bool:
    """Revoke a token at once: the next request with it is refused."""
    return store.revoke_token(token_id, now)


def create_user(store: AccessStore, *, name: str, password: str, role: str,
                tenant: str | None = None, now: float,
                known_tenants: set[str] | None = None) -> UserRow:
    parsed = _check_role(role, tenant, known_tenants)
    if len(password) < MIN_PASSWORD:
        raise InputError(f"a password has at least {MIN_PASSWORD} characters",
                         field="password")
    salt = secrets.token_bytes(SALT_BYTES)
    row = UserRow(name=_check_name(name, "name"), role=parsed.value,
                  tenant=tenant if parsed is Role.TENANT else None, salt=salt.hex(),
                  password_hash=_scrypt(password, salt).hex(), created_at=now)
    store.add_user(row)
    return row


_DUMMY_SALT = secrets.token_bytes(SALT_BYTES)
_DUMMY_HASH = _scrypt("not a password", _DUMMY_SALT)


def verify_password(store: AccessStore, name: str, password: str) -> Principal | None:
    """The principal of a user whose password matches, or None."""
    row = store.user(name) if len(name) <= NAME_MAX else None
    if row is None or row.disabled:
        hmac.compare_digest(_scrypt(password, _DUMMY_SALT), _DUMMY_HASH)  # same cost
        return None
    if not hmac.compare_digest(_scrypt(password, bytes.fromhex(row.salt)),
                               bytes.fromhex(row.password_hash)):
        return None
    return Principal(name=f"user:{row.name}", role=Role(row.role), tenant=row.tenant)
