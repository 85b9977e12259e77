"""wire.verp: round trip, tampering, key rotation, case folding, Postfix VERP suffixes."""

from __future__ import annotations

import ipaddress
import string

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from poolwarden.wire import verp

KEY = b"k" * 16 + b"0123456789"
NEW = b"new-key-0123456789abcdef"


def test_round_trip_gives_tenant_reference_and_ip() -> None:
    address = verp.encode(KEY, "bigretail", "4Xyz19QbM2", "192.0.2.10", "Bounces.Example.")
    local, _, domain = address.partition("@")
    assert domain == "bounces.example"
    assert local.startswith("b+")
    assert set(local[2:]) <= set(string.ascii_lowercase + "234567")
    assert len(local) <= 64  # a typical IPv4 token stays within RFC 5321's local-part size
    assert verp.decode(KEY, address) == verp.VerpToken("bigretail", "4Xyz19QbM2", "192.0.2.10")


@pytest.mark.parametrize("ip", [None, "2001:db8::1", "127.0.0.21", "::ffff:192.0.2.1"])
def test_ip_forms(ip: str | None) -> None:
    token = verp.decode(KEY, verp.encode(KEY, "t", "", ip, "b.example"))
    canonical = None if ip is None else str(ipaddress.ip_address(ip))  # as the inventory has it
    assert token is not None and token.ip == canonical and token.message_ref == ""


@settings(max_examples=200, deadline=None)
@given(tenant=st.text(min_size=1, max_size=20).filter(lambda t: len(t.encode()) <= 64),
       ref=st.text(max_size=20).filter(lambda r: len(r.encode()) <= 64))
def test_any_tenant_and_reference_round_trip(tenant: str, ref: str) -> None:
    token = verp.decode(KEY, verp.encode(KEY, tenant, ref, None, "b.example"))
    assert token == verp.VerpToken(tenant, ref, None)


def test_every_single_character_change_is_refused() -> None:
    address = verp.encode(KEY, "bigretail", "Q1", "192.0.2.10", "b.example")
    local, _, domain = address.partition("@")
    token = local[2:]
    for i, ch in enumerate(token):
        for other in "a7z2":
            if other == ch:
                continue
            forged = f"b+{token[:i]}{other}{token[i + 1:]}@{domain}"
            assert verp.decode(KEY, forged) is None, (i, other)


def test_truncated_extended_and_foreign_tokens_are_refused() -> None:
    address = verp.encode(KEY, "bigretail", "Q1", None, "b.example")
    local, _, domain = address.partition("@")
    assert verp.decode(KEY, f"{local[:-1]}@{domain}") is None
    assert verp.decode(KEY, f"{local[:-8]}@{domain}") is None
    assert verp.decode(KEY, f"{local}aaaaaaaa@{domain}") is None
    assert verp.decode(NEW, address) is None  # made with a key we do not hold
    assert verp.decode(KEY, "b+@b.example") is None
    assert verp.decode(KEY, "") is None
    assert verp.decode(KEY, "postmaster@b.example") is None
    assert verp.decode(KEY, "b+" + "a" * 600 + "@b.example") is None


def test_non_canonical_spelling_of_the_same_bytes_is_refused() -> None:
    """Base32 leaves unused bits in the last character; flipping them must not verify."""
    address = verp.encode(KEY, "bigretail", "Q12", None, "b.example")
    local, _, domain = address.partition("@")
    token = local[2:]
    alphabet = string.ascii_lowercase + "234567"
    last = alphabet.index(token[-1])
    variants = [alphabet[last ^ bit] for bit in (1, 2, 4, 8, 16)]
    for ch in variants:
        assert verp.decode(KEY, f"b+{token[:-1]}{ch}@{domain}") is None


def test_case_folding_keeps_the_token_valid() -> None:
    address = verp.encode(KEY, "BigRetail", "AbC", "192.0.2.10", "b.example")
    expected = verp.VerpToken("BigRetail", "AbC", "192.0.2.10")
    assert verp.decode(KEY, address.upper()) == expected
    assert verp.decode(KEY, address.lower()) == expected
    mixed = "".join(c.upper() if i % 2 else c for i, c in enumerate(address))
    assert verp.decode(KEY, mixed) == expected
    assert verp.decode(KEY, f"  <{address.upper()}> ") == expected


def test_postfix_verp_suffix_and_other_prefixes() -> None:
    address = verp.encode(KEY, "bigretail", "Q1", None, "b.example", prefix="bounce")
    local, _, domain = address.partition("@")
    assert local.startswith("bounce+")
    expected = verp.VerpToken("bigretail", "Q1", None)
    assert verp.decode(KEY, f"{local}+ann=gmail.com@{domain}") == expected
    assert verp.decode(KEY, f"{local}-ann=gmail.com@{domain}") == expected
    assert verp.decode(KEY, local) == expected  # a bare local part


def test_key_rotation_first_signs_all_verify() -> None:
    old_address = verp.encode(KEY, "bigretail", "old", None, "b.example")
    new_address = verp.encode([NEW, KEY], "bigretail", "new", None, "b.example")
    assert verp.decode(KEY, new_address) is None  # signed with the new key
    both = [NEW, KEY]
    old = verp.decode(both, old_address)
    new = verp.decode(both, new_address)
    assert old is not None and old.key_index == 1 and old.message_ref == "old"
    assert new is not None and new.key_index == 0 and new.message_ref == "new"
    assert verp.decode([NEW], old_address) is None  # the old key dropped: old tokens die


@pytest.mark.parametrize(("args", "message"), [
    (dict(secret=b"short"), "at least 16"),
    (dict(secret=[]), "no VERP secret"),
    (dict(tenant=""), "tenant"),
    (dict(tenant="t" * 65), "tenant"),
    (dict(ref="r" * 65), "message_ref"),
    (dict(ip="300.1.1.1"), "does not appear to be an IPv4 or IPv6 address"),
    (dict(domain="not a domain"), "host name"),
    (dict(prefix="b+x"), "prefix"),
])
def test_encode_refuses_bad_input(args: dict[str, object], message: str) -> None:
    values: dict[str, object] = dict(secret=KEY, tenant="t", ref="r", ip=None,
                                     domain="b.example", prefix="b")
    values.update(args)
    with pytest.raises(ValueError, match=message):
        verp.encode(values["secret"], values["tenant"], values["ref"],  # type: ignore[arg-type]
                    values["ip"], values["domain"], prefix=values["prefix"])  # type: ignore[arg-type]


def test_find_tokens_in_text_only_at_our_domain() -> None:
    ours = verp.encode(KEY, "bigretail", "Q1", None, "bounces.example")
    elsewhere = verp.encode(KEY, "fitclub", "Q2", None, "other.example")
    forged = ours.replace(ours[5], "a" if ours[5] != "a" else "b", 1)
    text = (f"Return-Path: <{ours}>\r\nX-Other: {elsewhere}\r\nX-Forged: {forged}\r\n"
            f"Received: by x (envelope-from {ours.upper()})\r\n").encode()
    found = verp.find_tokens(KEY, text, domain="bounces.example")
    assert [t.tenant for t in found] == ["bigretail", "bigretail"]
    assert {t.tenant for t in verp.find_tokens(KEY, text)} == {"bigretail", "fitclub"}
    # each pool may have its own return-path domain: tokens count at any of them
    both = verp.find_tokens(KEY, text, domain=["bounces.example", "Other.example."])
    assert sorted(t.tenant for t in both) == ["bigretail", "bigretail", "fitclub"]
    assert verp.find_tokens(KEY, text, domain=["third.example"]) == []


def test_find_tokens_is_linear_on_hostile_text() -> None:
    import time

    for text in (b"+" + b"a" * 5_000_000, b"+aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa=b" * 150_000,
                 b"+aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa@x" * 150_000):
        started = time.perf_counter()
        verp.find_tokens(KEY, text)
        assert time.perf_counter() - started < 2.0
