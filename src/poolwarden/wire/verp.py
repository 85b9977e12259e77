"""VERP return paths with an HMAC-signed token: who sent the message a bounce is about.

Pure: bytes and strings in, values out; no I/O, no clock. A return path looks like
``b+<token>@bounces.example``; the token carries the tenant, a message reference
(whatever the caller uses to find the message again: a queue id, a campaign
message id), optionally the egress IP, and an HMAC-SHA256 over all of them
truncated to 80 bits. The token is lower-case base32 (``a-z2-7``), so a mail
system that lower-cases local parts (many do) or upper-cases them does not
break it, and it contains none of the characters Postfix uses as recipient or
VERP delimiters (``+ - =``), so Postfix's own VERP suffix
(``b+<token>+rcpt=example.net@bounces.example``) may follow it.

Layout of the decoded token (version 1)::

    0x01 | ip kind (0 none, 4, 6) | ip (0, 4 or 16 bytes)
         | tenant length (1..64) | tenant (UTF-8) | message ref (UTF-8, 0..64 bytes)
         | HMAC-SHA256(secret, "poolwarden-verp-v1" NUL everything before)[:10]

A typical token (IPv4, a 10-letter tenant and a 12-character reference) is 64
characters; an IPv6 address adds 20. RFC 5321 asks receivers to accept local
parts of 64 octets and most accept much longer ones (every VERP scheme in use
exceeds it); keep message references short.

Key rotation: ``encode`` signs with the first secret of a list, ``decode``
accepts any of them (and says which one matched). ``decode`` returns None for
anything it cannot verify (a changed character, a truncated token, a token made
with a secret we no longer hold); the MAC comparison is constant-time. A valid
token proves *we* issued that return path: it is the only thing feedback
attribution may rest on (docs/testing.md B4/B5), never ``Original-Recipient`` or
``From`` text.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import ipaddress
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

__all__ = ["MAC_BYTES", "MIN_SECRET_BYTES", "VerpToken", "decode", "encode", "find_tokens"]

VERSION = 1
MAC_BYTES = 10  # 80 bits
MIN_SECRET_BYTES = 16
MAX_TENANT_BYTES = 64
MAX_REF_BYTES = 64
MAX_ADDRESS = 512  # longer "addresses" are not ours: not even looked at
_CONTEXT = b"poolwarden-verp-v1\x00"
_ALPHABET = re.compile(r"[a-z2-7]+")
# the smallest token: version, ip kind, length, a 1-byte tenant, no ref, the MAC
_MIN_TOKEN_CHARS = (4 + MAC_BYTES) * 8 // 5
_IP_LENGTH = {0: 0, 4: 4, 6: 16}

Secrets = bytes | Sequence[bytes]


@dataclass(frozen=True, slots=True)
class VerpToken:
    """What a verified token says."""

    tenant: str
    message_ref: str
    ip: str | None
    key_index: int = 0  # which secret of the list verified it (0: the current one)


def _secret_list(secret: Secrets) -> list[bytes]:
    keys = [bytes(secret)] if isinstance(secret, bytes | bytearray) else [bytes(s) for s in secret]
    if not keys:
        raise ValueError("no VERP secret given")
    for key in keys:
        if len(key) < MIN_SECRET_BYTES:
            raise ValueError(f"a VERP secret must have at least {MIN_SECRET_BYTES} bytes")
    return keys


def _mac(key: bytes, body: bytes) -> bytes:
    return hmac.new(key, _CONTEXT + body, hashlib.sha256).digest()[:MAC_BYTES]


def _b32(data: bytes) -> str:
    return base64.b32encode(data).decode("ascii").rstrip("=").lower()


def _unb32(text: str) -> bytes | None:
    if len(text) % 8 in (1, 3, 6):  # no byte string encodes to these lengths
        return None
    try:
        data = base64.b32decode(text.upper() + "=" * (-len(text) % 8))
    except (binascii.Error, ValueError):
        return None
    # canonical form only: unused trailing bits must be zero, so one token has one spelling
    return data if _b32(data) == text else None


def encode(secret: Secrets, tenant: str, message_ref: str, ip: str | None, domain: str,
           *, prefix: str = "b") -> str:
    """The return path ``<prefix>+<token>@<domain>`` for one message of ``tenant``.

    ``secret`` is one key or a list (the first signs). Raises ``ValueError`` for
    an empty or short secret, an empty or over-long tenant, an over-long
    reference, an invalid IP address or a prefix/domain that cannot be mailed to.
    """
    key = _secret_list(secret)[0]
    tenant_bytes = tenant.encode("utf-8")
    ref_bytes = message_ref.encode("utf-8")
    if not 1 <= len(tenant_bytes) <= MAX_TENANT_BYTES:
        raise ValueError(f"tenant must be 1 to {MAX_TENANT_BYTES} bytes of UTF-8")
    if len(ref_bytes) > MAX_REF_BYTES:
        raise ValueError(f"message_ref must be at most {MAX_REF_BYTES} bytes of UTF-8")
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._]*", prefix):
        raise ValueError(f"prefix {prefix!r} must be letters, digits, '.' or '_'")
    domain = domain.strip().rstrip(".").lower()
    if not re.fullmatch(r"[a-z0-9](?:[a-z0-9-]*[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)*",
                        domain):
        raise ValueError(f"domain {domain!r} is not a host name")
    if ip is None:
        ip_part = b"\x00"
    else:
        packed = ipaddress.ip_address(ip).packed  # ValueError for a bad address
        ip_part = bytes([4 if len(packed) == 4 else 6]) + packed
    body = bytes([VERSION]) + ip_part + bytes([len(tenant_bytes)]) + tenant_bytes + ref_bytes
    return f"{prefix}+{_b32(body + _mac(key, body))}@{domain}"


def _verify(keys: Sequence[bytes], data: bytes) -> VerpToken | None:
    if len(data) < 4 + MAC_BYTES or data[0] != VERSION:
        return None
    body, mac = data[:-MAC_BYTES], data[-MAC_BYTES:]
    matched = -1
    for index, key in enumerate(keys):
        # every key is tried (no early exit): the time taken says nothing about which matched
        if hmac.compare_digest(_mac(key, body), mac) and matched < 0:
            matched = index
    if matched < 0:
        return None
    ip_len = _IP_LENGTH.get(body[1])
    if ip_len is None:
        return None
    pos = 2 + ip_len
    if len(body) < pos + 1:
        return None
    ip = str(ipaddress.ip_address(body[2:pos])) if ip_len else None
    tenant_len = body[pos]
    tenant_bytes = body[pos + 1:pos + 1 + tenant_len]
    ref_bytes = body[pos + 1 + tenant_len:]
    if tenant_len == 0 or len(tenant_bytes) != tenant_len or len(ref_bytes) > MAX_REF_BYTES:
        return None
    try:
        return VerpToken(tenant_bytes.decode("utf-8"), ref_bytes.decode("utf-8"), ip, matched)
    except UnicodeDecodeError:
        return None


def decode(secret: Secrets, address: str) -> VerpToken | None:
    """The verified token in a return path (any case, with or without ``<>``), or None.

    Every run of token characters in the local part is tried, so a prefix other
    than ``b`` and a Postfix VERP suffix after the token are fine.
    """
    keys = _secret_list(secret)
    text = address.strip().strip("<>").strip()
    if not text or len(text) > MAX_ADDRESS:
        return None
    local, at, _domain = text.rpartition("@")
    if not at:
        local = text
    for segment in _ALPHABET.findall(local.lower()):
        if len(segment) < _MIN_TOKEN_CHARS:
            continue
        data = _unb32(segment)
        if data is None:
            continue
        token = _verify(keys, data)
        if token is not None:
            return token
    return None


# anchored at the "+" before a token: every attempt scans a bounded stretch, so the scan is
# linear in the text however hostile it is
_CANDIDATE = re.compile(rb"\+([A-Za-z2-7]{%d,200})(?:[+=-][^\s<>@\"+]{0,200})?"
                        rb"@([A-Za-z0-9.-]{1,253})" % _MIN_TOKEN_CHARS)


def find_tokens(secret: Secrets, text: bytes, *, domain: str | Iterable[str] | None = None,
                limit: int = 20) -> list[VerpToken]:
    """Verified tokens of the return paths found anywhere in ``text``, in order; at most
    ``limit`` candidates are verified, and only addresses at ``domain`` (one, or any of
    several: each pool may have its own return-path domain) when it is given."""
    keys = _secret_list(secret)
    names = [domain] if isinstance(domain, str) else list(domain or ())
    want = {d.strip().rstrip(".").lower() for d in names if d.strip()} or None
    found: list[VerpToken] = []
    tried = 0
    for match in _CANDIDATE.finditer(text):
        if want is not None and match.group(2).decode("ascii").rstrip(".").lower() not in want:
            continue
        tried += 1
        if tried > limit:
            break
        data = _unb32(match.group(1).decode("ascii").lower())
        token = _verify(keys, data) if data is not None else None
        if token is not None:
            found.append(token)
    return found
