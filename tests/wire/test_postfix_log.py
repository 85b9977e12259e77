"""Postfix log parser and correlator: the corpus (whyscream fields, lightmeter status counts),
the recipe's real lines, queue ids, timestamps, keys, bounded memory and garbage."""

from __future__ import annotations

import csv
import json
import re
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from poolwarden.core.transports import transport_name
from poolwarden.wire.postfix_correlate import Correlator, Delivery
from poolwarden.wire.postfix_log import (
    LogParser,
    LogRecord,
    egress_ip_of,
    parse_line,
    parse_message,
    transport_of,
)
from poolwarden.wire.postfix_message import (
    ACTION,
    CLIENT,
    DELIVERY,
    DIAGNOSTIC,
    EXPIRED,
    MESSAGE_ID,
    NOTIFICATION,
    QUEUED,
    REMOVED,
    parse_command_counts,
    parse_tls_features,
    split_relay,
)

CORPUS = Path(__file__).parents[2].parent / "shared" / "corpus"
LOGS = CORPUS / "postfix-logs"


def _manifest(prefix: str) -> list[dict[str, str]]:
    path = LOGS / "manifest.csv"
    if not path.exists():
        return []
    with path.open(encoding="utf-8") as f:
        return [row for row in csv.DictReader(f) if row["file"].startswith(prefix)]


def _corpus_params(prefix: str) -> list[Any]:
    rows = _manifest(prefix)
    if not rows:
        return [pytest.param(None, marks=pytest.mark.skip(
            reason=f"corpus not found at {LOGS} (expected ../shared/corpus next to the repo)"))]
    return [pytest.param(row, id=row["file"]) for row in rows]


def _feed(lines: list[str], *, year: int = 2026, correlator: Correlator | None = None
          ) -> tuple[list[LogRecord], list[Delivery]]:
    parser = LogParser(year=year)
    correlator = correlator if correlator is not None else Correlator()
    records: list[LogRecord] = []
    deliveries: list[Delivery] = []
    for line in lines:
        record = parser.parse(line)
        if record is not None:
            records.append(record)
            deliveries.extend(correlator.feed(record))
    return records, deliveries


# --- whyscream: every expected grok capture, mapped to our field names -----------------------

def _f(name: str) -> Callable[[LogRecord], Any]:
    return lambda r: r.fields.get(name)


GROK: dict[str, Callable[[LogRecord], Any]] = {
    "postfix_action": _f("action"),
    "postfix_anvil_cache_size": _f("anvil_cache_size"),
    "postfix_anvil_conn_count": _f("anvil_conn_count"),
    "postfix_anvil_conn_period": _f("anvil_period"),
    "postfix_anvil_conn_rate": _f("anvil_conn_rate"),
    "postfix_anvil_timestamp": _f("at"),
    "postfix_bounce_queueid": _f("notice_queue_id"),
    "postfix_bounce_reason": _f("notice_type"),
    "postfix_bounce_recipient": _f("notice_to"),
    "postfix_client_hostname": _f("client_name"),
    "postfix_client_ip": _f("client_ip"),
    "postfix_client_ip_unknown": _f("client_ip"),
    "postfix_client_port": _f("client_port"),
    "postfix_command_counter_data": _f("commands"),
    "postfix_config_path": _f("config"),
    "postfix_dnsbl_domain": _f("dnsbl_domain"),
    "postfix_dnsbl_result": _f("dnsbl_result"),
    "postfix_error_response": _f("reply"),
    "postfix_from": _f("from"),
    "postfix_message": _f("text"),
    "postfix_message-id": _f("message_id"),
    "postfix_message_level": lambda r: r.fields.get("level") or r.fields.get("action"),
    "postfix_milter_message": lambda r: "{stage} from {client_name}[{client_ip}]: {reply}".format(
        **r.fields),
    "postfix_milter_result": lambda r: r.fields["action"].removeprefix("milter-"),
    "postfix_pipe_response": _f("reply"),
    "postfix_postscreen_access": _f("access"),
    "postfix_postscreen_cache_dropped": _f("cache_dropped"),
    "postfix_postscreen_cache_retained": _f("cache_retained"),
    "postfix_postscreen_dnsbl_rank": _f("dnsbl_rank"),
    "postfix_postscreen_violation": _f("violation"),
    "postfix_postscreen_violation_time": _f("violation_time"),
    "postfix_postsuper_action": _f("action"),
    "postfix_postsuper_summary_action": _f("action"),
    "postfix_postsuper_summary_count": _f("count"),
    "postfix_prepend_trigger": _f("check_text"),
    "postfix_prepend_type": _f("check_part"),
    "postfix_prepend_value": _f("value"),
    "postfix_proxy_message": _f("reply"),
    "postfix_proxy_result": lambda r: r.fields["action"].removeprefix("proxy-"),
    "postfix_proxy_smtp_stage": _f("stage"),
    "postfix_proxy_status_code": _f("code"),
    "postfix_proxy_status_code_enhanced": _f("enhanced"),
    "postfix_relay_hostname": _f("relay_host"),
    "postfix_relay_ip": _f("relay_ip"),
    "postfix_relay_port": _f("relay_port"),
    "postfix_scache_addresses": _f("scache_addresses"),
    "postfix_scache_connection": _f("scache_connection"),
    "postfix_scache_domains": _f("scache_domains"),
    "postfix_scache_hits": _f("scache_hits"),
    "postfix_scache_miss": _f("scache_miss"),
    "postfix_scache_success": _f("scache_success"),
    "postfix_scache_timestamp": _f("at"),
    "postfix_service": _f("anvil_service"),
    "postfix_smtp_lostconn_data": _f("text"),
    "postfix_smtp_response": _f("reply"),
    "postfix_smtp_stage": _f("stage"),
    "postfix_smtpd_lostconn_data": _f("event"),
    "postfix_status": _f("status"),
    "postfix_status_code": _f("code"),
    "postfix_status_code_enhanced": _f("enhanced"),
    "postfix_status_data": _f("status_data"),
    "postfix_status_message": _f("text"),
    "postfix_termination_signal": _f("signal"),
    "postfix_tls_cipher": _f("tls_cipher"),
    "postfix_tls_cipher_size": _f("tls_bits"),
    "postfix_tls_error": _f("text"),
    "postfix_tls_key_exchange": _f("tls_key_exchange"),
    "postfix_tls_server_digest": _f("tls_digest"),
    "postfix_tls_server_signature": _f("tls_signature"),
    "postfix_tls_server_signature_size": _f("tls_signature_bits"),
    "postfix_tls_trustlevel": _f("tls_trust"),
    "postfix_tls_version": _f("tls_version"),
    "postfix_verify_cache_dropped": _f("cache_dropped"),
    "postfix_verify_cache_retained": _f("cache_retained"),
    "postfix_verify_cleanup_type": _f("cleanup_type"),
    "postfix_version": _f("version"),
}
# Grok captures we deliberately do not reproduce, with the reason. Empty: every capture in the
# development set is parsed. A capture missing from both tables fails the test by name.
OUT_OF_SCOPE: dict[str, str] = {}
TLS_FEATURES = {"postfix_tls_security_level": "tls_level",
                "postfix_tls_policy_undecided": "tls_undecided",
                "postfix_requiretls": "requiretls",
                "postfix_requiretls_policy_undecided": "requiretls_undecided",
                "postfix_requiretls_policy_violation": "requiretls_violation",
                "postfix_requiretls_downgrade_level": "requiretls_downgrade"}
_KV = re.compile(r"([\w-]+)=(<[^>]*>|[^,\s]*)")


def _check_fixture(pattern: str, text: str, expected: dict[str, Any]) -> dict[str, Any]:
    """Our value for every expected grok capture (the caller compares)."""
    if pattern == "POSTFIX_COMMAND_COUNTER_DATA":
        counts = parse_command_counts(text)
        got: dict[str, Any] = {}
        for name in expected:
            command = name.removeprefix("postfix_cmd_").removesuffix("_accepted")
            command = "commands" if command == "count" else command
            accepted, total = counts[command]
            got[name] = accepted if name.endswith("_accepted") else total
        return got
    if pattern == "POSTFIX_TLS_FEATURES":
        features = parse_tls_features(text)
        assert features is not None
        return {name: features.get(TLS_FEATURES[name]) for name in expected}
    record = parse_message("postfix/" + pattern.removeprefix("POSTFIX_").lower()
                           .replace("_", "-"), text)
    got = {}
    for name, value in expected.items():
        if name in OUT_OF_SCOPE:
            got[name] = value
        elif name == "postfix_queueid":
            got[name] = record.queue_id if value != "NOQUEUE" else (
                "NOQUEUE" if record.queue_id is None and text.startswith("NOQUEUE: ") else None)
        elif name == "postfix_keyvalue_data":  # grok's raw "k=v, k=v" text: compare pair by pair
            pairs = {k: v.strip("<>") for k, v in _KV.findall(value)}
            got[name] = value if all(record.fields.get(k) == v for k, v in pairs.items()) \
                else {k: record.fields.get(k) for k in pairs}
        else:
            assert name in GROK, f"grok field {name} is neither mapped nor declared out of scope"
            got[name] = GROK[name](record)
    return got


@pytest.mark.parametrize("row", _corpus_params("whyscream-"))
def test_whyscream_fixture_reproduces_every_expected_field(row: dict[str, str]) -> None:
    text = (LOGS / row["file"]).read_text(encoding="utf-8").rstrip("\n")
    expected = json.loads(row["expected_fields_json"])
    got = _check_fixture(row["grok_pattern"], text, expected)
    assert {k: str(v) for k, v in got.items()} == {k: str(v) for k, v in expected.items()}
    if row["expected_status"] not in ("", "no-status") and row["grok_pattern"].startswith(
            "POSTFIX_") and row["grok_pattern"] not in ("POSTFIX_TLS_FEATURES",
                                                        "POSTFIX_COMMAND_COUNTER_DATA"):
        program = "postfix/" + row["grok_pattern"][8:].lower().replace("_", "-")
        assert parse_message(program, text).fields.get("status") == row["expected_status"]


# --- lightmeter: whole syslog files, status counts through the correlator -------------------

@pytest.mark.parametrize("row", _corpus_params("lightmeter-"))
def test_lightmeter_log_status_counts_through_the_correlator(row: dict[str, str]) -> None:
    """The manifest counts ``status=`` occurrences (one per line). The correlator emits one
    Delivery per delivery line and, for qmgr's single ``status=expired`` line, one per
    still-deferred recipient; every expired message in the corpus had one such recipient, so
    both views must give the manifest's numbers: checked per Delivery and per parsed line."""
    text = (LOGS / row["file"]).read_text(encoding="utf-8", errors="replace")
    correlator = Correlator()
    records, deliveries = _feed(text.splitlines(keepends=True), year=2020, correlator=correlator)
    expected = {s: int(row[f"derived_status_{s}"] or 0)
                for s in ("sent", "bounced", "deferred", "expired")}
    by_delivery = Counter(d.status for d in deliveries)
    by_line = Counter(r.fields["status"] for r in records if r.kind in (DELIVERY, EXPIRED))
    assert {s: by_delivery[s] for s in expected} == expected
    assert {s: by_line[s] for s in expected} == expected
    assert not row["derived_status_other"]
    dsn = Counter(r.fields["dsn"] for r in records if r.kind == DELIVERY)
    wanted = dict(item.split(":") for item in row["derived_dsn_codes"].split(";") if item)
    assert {k: str(v) for k, v in dsn.items()} == wanted
    assert len({d.key for d in deliveries}) == len(deliveries)  # keys are unique
    assert correlator.evicted == 0


# --- the recipe's real lines (section 6) ------------------------------------------------------

RECIPE = """\
Nov 23 19:49:08 mta pfxlab/smtpd[26949]: NOQUEUE: filter: RCPT from unknown[127.0.0.1]: <ok@gmail.test>: Recipient address triggers FILTER smtp_ded1:; from=<b@t2.test> to=<ok@gmail.test> proto=ESMTP helo=<client.lab.test>
Nov 23 19:49:08 mta pfxlab/smtpd[26949]: EC9B620C075: client=unknown[127.0.0.1]
Nov 23 19:49:08 mta pfxlab/qmgr[26861]: EC9B620C075: from=<b@t2.test>, size=321, nrcpt=3 (queue active)
Nov 23 19:49:08 mta pfxlab/ded1/smtp[27688]: EC9B620C075: to=<reject1@gmail.test>, relay=gmail.test[127.0.0.53]:25, delay=0.02, delays=0/0.01/0/0.01, dsn=5.1.1, status=bounced (host gmail.test[127.0.0.53] said: 550 5.1.1 <reject1@gmail.test>: Recipient address rejected: User unknown (in reply to RCPT TO command))
Nov 23 19:49:08 mta pfxlab/ded1/smtp[27688]: EC9B620C075: to=<tempfail1@gmail.test>, relay=gmail.test[127.0.0.53]:25, delay=0.02, delays=0/0.01/0/0.01, dsn=4.2.0, status=deferred (host gmail.test[127.0.0.53] said: 451 4.2.0 <tempfail1@gmail.test>: mailbox busy, try later (in reply to RCPT TO command))
Nov 23 19:49:08 mta pfxlab/ded1/smtp[27688]: EC9B620C075: to=<ok@gmail.test>, relay=gmail.test[127.0.0.53]:25, delay=0.02, delays=0/0.01/0/0.01, dsn=2.0.0, status=sent (250 2.0.0 Ok: queued by sink)
Nov 23 19:49:08 mta pfxlab/bounce[27689]: EC9B620C075: sender non-delivery notification: F1EC020C0C1
Nov 23 19:49:08 mta pfxlab/qmgr[26861]: EC9B620C075: removed
Nov 23 19:49:56 mta pfxlab/bad/smtp[28082]: BA34D20C1A4: to=<bad@corp.test>, relay=none, delay=0.01, delays=0.01/0/0/0, dsn=4.4.0, status=deferred (server configuration error)
Nov 23 19:48:23 mta pfxlab/smtpd[26949]: NOQUEUE: reject: RCPT from unknown[127.0.0.1]: 451 4.3.5 <x@gmail.test>: Recipient address rejected: Policy service unavailable; from=<a@t1.test> to=<x@gmail.test> proto=ESMTP helo=<client.lab.test>
"""  # noqa: E501


def _at(text: str) -> float:
    return datetime.strptime(text, "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC).timestamp()


def test_recipe_lines_parse_to_the_expected_records() -> None:
    records = [parse_line(line, year=2026) for line in RECIPE.splitlines()]
    assert all(r is not None for r in records)
    r = [x for x in records if x is not None]
    assert [x.kind for x in r] == [ACTION, CLIENT, QUEUED, DELIVERY, DELIVERY, DELIVERY,
                                   NOTIFICATION, REMOVED, DELIVERY, ACTION]
    assert r[0].queue_id is None and r[0].host == "mta" and r[0].pid == 26949
    assert r[0].fields == {
        "action": "filter", "stage": "RCPT", "client_name": "unknown", "client_ip": "127.0.0.1",
        "reply": "<ok@gmail.test>: Recipient address triggers FILTER smtp_ded1:",
        "status_data": "ok@gmail.test", "text": "Recipient address triggers FILTER smtp_ded1:",
        "from": "b@t2.test", "to": "ok@gmail.test", "proto": "ESMTP",
        "helo": "client.lab.test"}
    assert r[1].fields == {"client_name": "unknown", "client_ip": "127.0.0.1"}
    assert r[2].fields == {"from": "b@t2.test", "size": "321", "nrcpt": "3"}
    bounced = r[3]
    assert (bounced.timestamp, bounced.program, bounced.syslog_name, bounced.service,
            bounced.transport, bounced.queue_id) == (
        _at("2026-11-23 19:49:08"), "pfxlab/ded1/smtp", "pfxlab/ded1", "smtp", "ded1",
        "EC9B620C075")
    assert bounced.fields == {
        "to": "reject1@gmail.test", "relay": "gmail.test[127.0.0.53]:25", "delay": "0.02",
        "delays": "0/0.01/0/0.01", "dsn": "5.1.1", "status": "bounced",
        "reply": "host gmail.test[127.0.0.53] said: 550 5.1.1 <reject1@gmail.test>: Recipient "
                 "address rejected: User unknown (in reply to RCPT TO command)"}
    assert r[6].fields == {"notice_to": "sender", "notice_type": "non-delivery",
                           "notice_queue_id": "F1EC020C0C1"}
    assert r[8].fields["relay"] == "none" and r[8].fields["reply"] == "server configuration error"
    assert r[9].fields["code"] == "451" and r[9].fields["enhanced"] == "4.3.5"
    assert r[9].fields["text"] == "Recipient address rejected: Policy service unavailable"


def test_recipe_message_correlates_with_the_pw_transport_giving_the_egress_ip() -> None:
    lines = RECIPE.replace("pfxlab/ded1/smtp", "postfix/pw-127-0-0-21/smtp").splitlines()
    correlator = Correlator()
    _, deliveries = _feed(lines, correlator=correlator)
    assert [(d.recipient, d.status, d.dsn) for d in deliveries] == [
        ("reject1@gmail.test", "bounced", "5.1.1"), ("tempfail1@gmail.test", "deferred", "4.2.0"),
        ("ok@gmail.test", "sent", "2.0.0"), ("bad@corp.test", "deferred", "4.4.0")]
    first = deliveries[0]
    assert (first.transport, first.egress_ip, first.service) == (
        "pw-127-0-0-21", "127.0.0.21", "smtp")
    assert (first.message.sender, first.message.size, first.message.nrcpt,
            first.message.client_name, first.message.client_ip) == (
        "b@t2.test", 321, 3, "unknown", "127.0.0.1")
    assert (first.delay, first.delays, first.relay) == (
        0.02, "0/0.01/0/0.01", "gmail.test[127.0.0.53]:25")
    assert first.reply is not None and "User unknown" in first.reply
    assert all(d.message is first.message for d in deliveries[:3])  # one shared snapshot
    assert (deliveries[3].transport, deliveries[3].egress_ip) == ("bad", None)
    assert deliveries[3].message.sender is None  # its earlier lines are not in this log
    assert correlator.pending == 2  # BA34D20C1A4 and the notification F1EC020C0C1 stay open
    assert len({d.key for d in deliveries}) == 4 and all(
        d.key.startswith("pflog:") and len(d.key) == 38 for d in deliveries)


def test_optional_orig_to_and_conn_use_and_unknown_fields() -> None:
    line = ("Nov 23 19:49:08 mta postfix/pw-10-0-0-7/smtp[1]: 3F2A1B0C9D: to=<a@x.test>, "
            "orig_to=<alias@y.test>, relay=mx.x.test[192.0.2.5]:25, conn_use=2, delay=1.5, "
            "delays=0.1/0/0.4/1, tls=may, dsn=2.0.0, status=sent (250 ok)")
    record = parse_line(line, year=2026)
    assert record is not None and record.kind == DELIVERY
    assert {k: record.fields[k] for k in ("orig_to", "conn_use", "tls", "relay")} == {
        "orig_to": "alias@y.test", "conn_use": "2", "tls": "may",
        "relay": "mx.x.test[192.0.2.5]:25"}
    (delivery,) = Correlator().feed(record)
    assert (delivery.orig_to, delivery.conn_use, delivery.egress_ip) == (
        "alias@y.test", 2, "10.0.0.7")
    odd = parse_message("postfix/smtp", "3F2A1B0C9D: to=<a@x.test>, relay=none, future=1, "
                                        "delay=1, dsn=4.4.1, delays=0/0/0/0, status=deferred (x)")
    assert odd.kind == DELIVERY and odd.fields["dsn"] == "4.4.1" and odd.fields["future"] == "1"
    broken = parse_message("postfix/smtp", "3F2A1B0C9D: to=<a@x.test>, relay=x, conn_use=zz, "
                                           "delay=q, dsn=2.0.0, status=sent (ok)")
    (delivery,) = Correlator().feed(broken)
    assert (delivery.status, delivery.conn_use, delivery.delay) == ("sent", None, None)
    assert split_relay("gmail.test[127.0.0.53]:25") == ("gmail.test", "127.0.0.53", 25)
    assert split_relay("h[private/dovecot-lmtp]") == ("h", "private/dovecot-lmtp", None)
    assert split_relay("none") == ("none", None, None)


@pytest.mark.parametrize(("transport", "ip"), [
    ("pw-127-0-0-11", "127.0.0.11"), ("pw-10-1-2-3", "10.1.2.3"),
    ("pw-2001-db8--1", "2001:db8::1"), ("pw-ded1", None), ("pw-300-1-1-1", None),
    ("pool_a", None), (None, None), ("pw-", None)])
def test_egress_ip_from_the_transport_name(transport: str | None, ip: str | None) -> None:
    assert egress_ip_of(transport) == ip


def test_transport_names_round_trip_except_ipv4_embedded_ipv6() -> None:
    for ip in ("127.0.0.11", "192.0.2.254", "2001:db8::1", "2001:db8:0:1::25"):
        assert egress_ip_of(transport_name(ip)) == ip
    # '.' and ':' are both written '-': an IPv4-embedded IPv6 address reads back wrong.
    assert egress_ip_of(transport_name("::ffff:192.0.2.1")) != "::ffff:192.0.2.1"
    assert transport_of("postfix/pw-127-0-0-11") == "pw-127-0-0-11"
    assert transport_of("postfix") is None


# --- queue ids ---------------------------------------------------------------------------------

def _message(qid: str, stamp: str, sender: str, rcpt: str, *, host: str = "mta",
             removed: bool = True) -> list[str]:
    lines = [f"{stamp} {host} postfix/smtpd[1]: {qid}: client=c.test[192.0.2.1], "
             f"sasl_method=PLAIN, sasl_username={sender.split('@')[0]}",
             f"{stamp} {host} postfix/cleanup[2]: {qid}: message-id=<{sender}.{rcpt}>",
             f"{stamp} {host} postfix/qmgr[3]: {qid}: from=<{sender}>, size=10, nrcpt=1 "
             "(queue active)",
             f"{stamp} {host} postfix/pw-10-0-0-1/smtp[4]: {qid}: to=<{rcpt}>, relay=mx[192.0.2.9]"
             ":25, delay=1, delays=0/0/0.5/0.5, dsn=2.0.0, status=sent (250 ok)"]
    return [*lines, f"{stamp} {host} postfix/qmgr[3]: {qid}: removed"] if removed else lines


def test_long_queue_ids_correlate_like_short_ones() -> None:
    _, deliveries = _feed(_message("4Kq2Bw0Dz5zJxT", "Nov 23 10:00:00", "a@t.test", "r@x.test"))
    (d,) = deliveries
    assert d.queue_id == "4Kq2Bw0Dz5zJxT" and d.message.sasl_username == "a"
    assert d.message.message_id == "a@t.test.r@x.test"


@pytest.mark.parametrize(("message", "qid"), [
    ("48rT2v1hQrz1J0N: removed", "48rT2v1hQrz1J0N"), ("0F5383D: removed", "0F5383D"),
    ("D4F2023DB: requeued", "D4F2023DB"), ("warning: 9BECF3F19D: lookup problem", "9BECF3F19D"),
    ("warning: hostname x.test does not resolve", None), ("statistics: max cache size 1 at x",
                                                          None),
    ("NOQUEUE: reject: RCPT from u[192.0.2.1]: 550 5.1.1 <a@b>: no; to=<a@b>", None),
    ("Deleted: 3 messages", None), ("DEADBE: removed", "DEADBE"), ("ABCDE: removed", None),
    ("abcdefghijk: removed", None)])
def test_queue_id_shapes(message: str, qid: str | None) -> None:
    assert parse_message("postfix/qmgr", message).queue_id == qid


def test_queue_id_reuse_after_removed_starts_a_fresh_message() -> None:
    first = _message("1A2B3C4D5E", "Nov 23 10:00:00", "a@t1.test", "r1@x.test")
    second = _message("1A2B3C4D5E", "Nov 23 10:05:00", "b@t2.test", "r2@x.test")
    correlator = Correlator()
    _, deliveries = _feed(first + second, correlator=correlator)
    assert [(d.message.sender, d.message.sasl_username, d.attempt) for d in deliveries] == [
        ("a@t1.test", "a", 1), ("b@t2.test", "b", 1)]
    assert deliveries[0].key != deliveries[1].key
    assert (correlator.pending, correlator.superseded) == (0, 0)


def test_queue_id_reuse_without_removed_is_detected() -> None:
    first = _message("1A2B3C4D5E", "Nov 23 10:00:00", "a@t1.test", "r1@x.test", removed=False)
    second = _message("1A2B3C4D5E", "Nov 23 10:05:00", "b@t2.test", "r1@x.test")
    correlator = Correlator()
    _, deliveries = _feed(first + second, correlator=correlator)
    assert [d.message.sender for d in deliveries] == ["a@t1.test", "b@t2.test"]
    assert deliveries[1].attempt == 1  # a new message, not a second attempt
    assert correlator.superseded == 1
    bounce_made = [  # a bounce-created message starts at cleanup: a second message-id
        "Nov 23 11:00:00 mta postfix/cleanup[2]: 1A2B3C4D5E: message-id=<one@x>",
        "Nov 23 11:00:00 mta postfix/qmgr[3]: 1A2B3C4D5E: from=<>, size=10, nrcpt=1 (queue active)",
        "Nov 23 12:00:00 mta postfix/cleanup[2]: 1A2B3C4D5E: message-id=<two@x>",
        "Nov 23 12:00:00 mta postfix/local[5]: 1A2B3C4D5E: to=<u@x>, relay=local, delay=0, "
        "delays=0/0/0/0, dsn=2.0.0, status=sent (delivered to mailbox)"]
    _, later = _feed(bounce_made)
    assert later[0].message.message_id == "two@x" and later[0].message.sender is None


def test_keys_same_short_id_on_other_days_or_hosts_differ_and_rereads_are_identical() -> None:
    day1 = _message("1A2B3C4D5E", "Nov 23 10:00:00", "a@t.test", "r@x.test")
    day2 = _message("1A2B3C4D5E", "Nov 24 10:00:00", "a@t.test", "r@x.test")
    host2 = _message("1A2B3C4D5E", "Nov 23 10:00:00", "a@t.test", "r@x.test", host="mta2")
    _, once = _feed(day1 + day2 + host2)
    assert len({d.key for d in once}) == 3  # I7 (d)
    _, again = _feed(day1 + day2 + host2)
    assert [d.key for d in again] == [d.key for d in once]  # I7 (a)
    _, tail_only = _feed(day2)  # read from the middle (a restart): same key for the same line
    assert tail_only[0].key == once[1].key
    line = day1[3]
    _, repeated = _feed([*day1[:3], line, line])
    assert [d.seq for d in repeated] == [0, 1] and repeated[0].key != repeated[1].key


# --- expiry, notifications, requeue, cleanup rejects -------------------------------------------

def test_expiry_returns_each_still_deferred_recipient() -> None:
    qid = "5E6F7A8B9C"
    head = [f"Sep 25 18:00:00 mta postfix/smtpd[1]: {qid}: client=c[192.0.2.1]",
            f"Sep 25 18:00:00 mta postfix/qmgr[3]: {qid}: from=<s@t.test>, size=9, nrcpt=3 "
            "(queue active)"]
    attempts = [f"Sep 25 18:00:01 mta postfix/smtp[4]: {qid}: to=<{r}@x.test>, relay=mx[192.0."
                f"2.9]:25, delay=1, delays=0/0/0.5/0.5, dsn={dsn}, status={status} (reply {r})"
                for r, dsn, status in (("a", "2.0.0", "sent"), ("b", "4.2.2", "deferred"),
                                       ("c", "4.2.2", "deferred"), ("b", "4.2.2", "deferred"))]
    tail = [f"Sep 30 18:00:00 mta postfix/qmgr[3]: {qid}: from=<s@t.test>, status=expired, "
            "returned to sender", f"Sep 30 18:00:00 mta postfix/qmgr[3]: {qid}: removed"]
    _, deliveries = _feed(head + attempts + tail)
    expired = [d for d in deliveries if d.status == "expired"]
    assert [(d.recipient, d.attempt, d.dsn, d.reply) for d in expired] == [
        ("b@x.test", 2, "4.2.2", "reply b"), ("c@x.test", 1, "4.2.2", "reply c")]
    assert {d.service for d in expired} == {"qmgr"} and expired[0].time == _at(
        "2026-09-30 18:00:00")
    _, orphan = _feed(tail)  # the deferrals were before the log began
    assert [(d.recipient, d.status) for d in orphan] == [(None, "expired")]
    line = attempts[0].replace("status=sent (reply a)", "status=bounced (message expired)")
    _, relabelled = _feed([line])
    assert (relabelled[0].status, relabelled[0].log_status) == ("expired", "bounced")


def test_bounce_notification_links_the_notice_to_its_original() -> None:
    lines = [
        "Sep 30 20:46:08 h postfix/cleanup[1]: A7E673C067: message-id=<n@h>",
        "Sep 30 20:46:08 h postfix/qmgr[2]: A7E673C067: from=<>, size=3503, nrcpt=1 (queue active)",
        "Sep 30 20:46:08 h postfix/bounce[3]: 23EBE3D5C0: sender non-delivery notification: "
        "A7E673C067",
        "Sep 30 20:46:08 h postfix/local[4]: A7E673C067: to=<s@h>, relay=local, delay=0.14, "
        "delays=0.01/0/0.11/0.02, dsn=2.0.0, status=sent (delivered to command: procmail)"]
    _, (notice,) = _feed(lines)
    assert (notice.message.notification_of, notice.message.sender, notice.service) == (
        "23EBE3D5C0", "", "local")


def test_requeue_through_pickup_keeps_the_context() -> None:
    lines = [*_message("1A2B3C4D5E", "Nov 23 10:00:00", "a@t.test", "r@x.test",
                       removed=False)[:3],
             "Nov 23 10:01:00 mta postfix/postsuper[9]: 1A2B3C4D5E: requeued",
             "Nov 23 10:01:01 mta postfix/pickup[8]: 9F8E7D6C5B: uid=0 from=<a@t.test> "
             "orig_id=1A2B3C4D5E",
             "Nov 23 10:01:02 mta postfix/smtp[4]: 9F8E7D6C5B: to=<r@x.test>, relay=mx[192.0.2.9]"
             ":25, delay=1, delays=0/0/0.5/0.5, dsn=2.0.0, status=sent (250 ok)"]
    correlator = Correlator()
    _, (d,) = _feed(lines, correlator=correlator)
    assert (d.queue_id, d.message.sasl_username, d.message.message_id) == (
        "9F8E7D6C5B", "a", "a@t.test.r@x.test")
    assert correlator.pending == 1  # the old id was handed over


def test_cleanup_reject_ends_the_message() -> None:
    lines = ["Jan 25 18:54:51 mx postfix/smtpd[1]: B37FD2E05B9: client=h[254.65.43.194]",
             "Jan 25 18:54:51 mx postfix/cleanup[2]: B37FD2E05B9: milter-reject: END-OF-MESSAGE "
             "from h[254.65.43.194]: 4.7.1 Try again later; from=<a@b> to=<c@d> proto=ESMTP "
             "helo=<h>"]
    correlator = Correlator()
    records, deliveries = _feed(lines, correlator=correlator)
    assert records[1].fields["action"] == "milter-reject" and not deliveries
    assert correlator.pending == 0


# --- bounded memory ------------------------------------------------------------------------------

def test_messages_idle_past_the_ttl_are_evicted_and_counted() -> None:
    correlator = Correlator(ttl=3600)
    stale = _message("1A2B3C4D5E", "Nov 23 10:00:00", "a@t.test", "r@x.test", removed=False)
    fresh = _message("5A5B5C5D5E", "Nov 23 12:00:00", "b@t.test", "q@x.test", removed=False)
    _feed(stale + fresh, correlator=correlator)
    assert (correlator.pending, correlator.evicted) == (1, 1)
    late = ("Nov 23 12:00:05 mta postfix/smtp[4]: 1A2B3C4D5E: to=<r@x.test>, relay=none, "
            "delay=1, delays=0/0/0/1, dsn=4.4.1, status=deferred (connection refused)")
    _, (d,) = _feed([late], correlator=correlator)
    assert d.message.sender is None and d.attempt == 1  # still reported, context lost
    capped = Correlator(max_messages=2)
    for n in range(5):
        _feed(_message(f"ABCDEF{n:04X}", "Nov 23 10:00:00", "a@t.test", "r@x.test",
                       removed=False), correlator=capped)
    assert (capped.pending, capped.evicted) == (2, 3)


# --- timestamps -------------------------------------------------------------------------------

TAIL = " mta postfix/qmgr[3]: 1A2B3C4D5E: removed"


@pytest.mark.parametrize(("stamp", "expected"), [
    ("Nov 23 19:49:08", "2026-11-23 19:49:08"),
    ("Nov  3 19:49:08", "2026-11-03 19:49:08"),  # syslog: space-padded day
    ("Nov 03 19:49:08", "2026-11-03 19:49:08"),  # maillog_file: strftime %d, zero-padded
    ("2026-11-23T19:49:08+00:00", "2026-11-23 19:49:08"),
    ("2026-11-23T19:49:08Z", "2026-11-23 19:49:08"),
    ("2026-11-23T20:49:08+0100", "2026-11-23 19:49:08"),
    ("2026-11-23T20:49:08.000000+01:00", "2026-11-23 19:49:08")])
def test_timestamp_forms(stamp: str, expected: str) -> None:
    record = parse_line(stamp + TAIL, year=2026)
    assert record is not None and record.timestamp == _at(expected)
    assert record.kind == REMOVED and record.queue_id == "1A2B3C4D5E"


def test_iso_fraction_and_naive_local_time() -> None:
    record = parse_line("2026-11-23T19:49:08.123456+00:00" + TAIL)
    assert record is not None and record.timestamp == pytest.approx(_at("2026-11-23 19:49:08")
                                                                     + 0.123456)
    record = parse_line("2026-11-23T19:49:08.123456789+00:00" + TAIL)  # nanoseconds
    assert record is not None and record.timestamp is not None
    plus2 = timezone(timedelta(hours=2))
    record = parse_line("2026-11-23 21:49:08" + TAIL, tz=plus2)
    assert record is not None and record.timestamp == _at("2026-11-23 19:49:08")
    record = parse_line("Nov 23 21:49:08" + TAIL, year=2026, tz=plus2)
    assert record is not None and record.timestamp == _at("2026-11-23 19:49:08")


def test_year_from_a_reference_and_across_new_year() -> None:
    assert parse_line("Nov 23 19:49:08" + TAIL) is not None
    assert parse_line("Nov 23 19:49:08" + TAIL).timestamp is None  # type: ignore[union-attr]
    january = _at("2027-01-02 00:00:00")
    record = parse_line("Dec 31 23:59:59" + TAIL, reference=january)
    assert record is not None and record.timestamp == _at("2026-12-31 23:59:59")
    parser = LogParser(reference=_at("2027-01-05 00:00:00"))
    times = [parser.parse(s + TAIL) for s in (
        "Dec 31 23:59:58", "Jan  1 00:00:01", "Dec 31 23:59:59", "Jan  1 00:00:02")]
    assert [t.timestamp if t else None for t in times] == [
        _at("2026-12-31 23:59:58"), _at("2027-01-01 00:00:01"), _at("2026-12-31 23:59:59"),
        _at("2027-01-01 00:00:02")]
    parser = LogParser(year=2026)
    assert [parser.parse(s + TAIL).timestamp for s in (  # type: ignore[union-attr]
        "Dec 31 23:59:59", "Jan  1 00:00:00")] == [_at("2026-12-31 23:59:59"),
                                                   _at("2027-01-01 00:00:00")]


# --- garbage ----------------------------------------------------------------------------------

@pytest.mark.parametrize("line", [
    "", "\n", "garbage", "Nov 23 19:49:08", "Nov 23 19:49:08 mta", "Oct 13 16:40\n",
    "Sep 25 18:26:34 smtpnode16 h-353d61658b320[1877]: DKIM signing - signed",
    "Feb  1 13:17:08 mail dovecot: lmtp(28700): Connect from local",
    "Feb  1 13:17:08 mail amavis[28236]: (28236-10) Passed,",
    "ir/)", "\x00\xff\ud7ff", "Nov 23 19:49:08 mta postfix-script: no slash",
    "Nov 23 19:49:08 mta postfix/smtp: syslog lines always carry the pid"])
def test_garbage_lines_give_none(line: str) -> None:
    assert parse_line(line, year=2026) is None


def test_odd_postfix_lines_parse_without_fields_rather_than_fail() -> None:
    record = parse_line("Feb 30 10:00:00 mta postfix/smtp[1]: 1A2B3C4D5E: to=<broken", year=2026)
    assert record is not None and record.timestamp is None  # no Feb 30
    assert (record.kind, record.fields) == ("other", {})
    record = parse_line("2026-11-23T19:49:08Z mta postfix/smtp: 1A2B3C4D5E: removed")
    assert record is not None and record.pid is None and record.kind == REMOVED  # no [pid]
    for stamp in ("2026-99-99T99:99:99Z", "Foo 23 10:00:00"):
        record = parse_line(stamp + " mta postfix/smtp[1]: x", year=2026)
        assert record is not None and record.timestamp is None
    assert parse_message("postfix/smtpd", "warning: x[1.2.3.4]: SASL fail").kind == DIAGNOSTIC
    assert parse_message("postfix/cleanup", "0F5383D: message-id=").kind == MESSAGE_ID


HEADERS = st.sampled_from([
    "Nov 23 19:49:08 mta postfix/smtp[1]: ", "Nov  3 19:49:08 mta postfix/pw-1-2-3-4/smtp[1]: ",
    "2026-11-23T19:49:08Z mta postfix/qmgr[2]: ", "Nov 23 19:49:08 mta postfix/smtpd[3]: ",
    "Nov 23 19:49:08 mta postfix/cleanup[3]: 1A2B3C4D5E: ",
    "Nov 23 19:49:08 mta postfix/smtp[3]: 1A2B3C4D5E: to=<",
    "Nov 23 19:49:08 mta postfix/qmgr[3]: 4Kq2Bw0Dz5zJxT: from=<",
    "Nov 23 19:49:08 mta postfix/smtpd[3]: NOQUEUE: reject: RCPT from x[", ""])
WORDS = st.sampled_from([
    "to=<", ">, ", "relay=", "delay=", "delays=", "dsn=", "status=", "sent", "(", ")", "[", "]",
    ":", "; from=<", " to=<", "client=", "message-id=", "removed", "warning: ", "statistics: ",
    "1A2B3C4D5E: ", "size=", "nrcpt=", "status=expired, returned to sender", "\n", " ", ",",
    "conn_use=", "orig_to=<", "uid=", "orig_id=", "sender non-delivery notification: "])


@settings(max_examples=300, deadline=None)
@given(header=HEADERS, body=st.lists(st.one_of(WORDS, st.text(max_size=12)), max_size=12))
def test_random_text_never_raises(header: str, body: list[str]) -> None:
    line = header + "".join(body)
    correlator = Correlator()
    for record in (parse_line(line, year=2026), parse_line(line),
                   parse_message("postfix/smtp", "".join(body))):
        if record is not None:
            assert isinstance(record.kind, str) and isinstance(record.fields, dict)
            assert isinstance(repr(record), str)
            for delivery in correlator.feed(record):
                assert delivery.key.startswith("pflog:")


@settings(max_examples=200, deadline=None)
@given(st.text())
def test_any_text_never_raises(text: str) -> None:
    record = parse_line(text, year=2026)
    if record is not None:
        assert isinstance(record.fields, dict)
    assert isinstance(parse_message("postfix/smtpd", text).fields, dict)
    assert parse_tls_features(text) is None or isinstance(parse_tls_features(text), dict)
    assert isinstance(parse_command_counts(text), dict)
