"""Bounce classification: SMTP reply code + enhanced status + reply text -> reason.

Its one job is the matching logic: it applies the reply catalogue of
``wire.reply_catalogue`` (``PROVIDERS``: the providers' documented replies; ``CAUSES``:
causes any server names) and the rule table of ``wire.bounce_rules``
(``PROVIDER_RULES``, ``PHRASES``, ``STATUS_REASONS``; that module carries the sisimai
licence credit), and finds status codes, reply codes and SMTP commands in reply text.
Pure: strings in, a ``Classification`` out. Never touches sockets, files or the clock,
and holds no rule data of its own. The vocabulary is sisimai's (userunknown,
mailboxfull, blocked, ...), so our figures compare with the labelled corpus; the probe
guards below follow sisimai's reason logic (github.com/sisimai, BSD-2-Clause).
docs/classification.md explains the precedence with examples.

Precedence (first answer wins):

1. a ``2.X.Y`` status -> ``delivered``;
2. a provider's own code or wording: the catalogue's ``PROVIDERS`` entries, then the
   signature rules of ``PROVIDER_RULES`` (``host`` gates a rule to the provider's MTA
   names; ``status`` / ``code`` / ``command`` constrain it). Rules marked ``mta`` are one
   MTA's own wording (Exim, qmail, OpenSMTPD, Gmail's bounce text...): a *tentative*
   reason there (userunknown, expired, systemerror...) only presets the answer;
3. a cause the text names (the catalogue's ``CAUSES``: a blocklist, a missing PTR, an SPF
   failure, a rate limit...), the one named first in the text, before any status code;
4. the *probes*, in ``PROBE_ORDER``: each reason fires when the status code names it
   (``STATUS_REASONS``), its phrases match, or it was preset, with sisimai's guards
   (``userunknown`` text counts only at RCPT time unless the status says so, ...);
5. a preset from step 2; then, when the status is vague (``TENTATIVE``): the phrases in
   ``FALLBACK_ORDER``, the status reason, the status class (X.6 content, X.7 security),
   reply-code syntax errors, "delayed" actions -> expired (only now: nothing named a
   cause), HELO rejections -> blocked;
6. ``vacation`` text, else ``onhold`` when there was text, else ``undefined``.

``hard`` follows sisimai (userunknown, hostunknown, hasmoved and notaccept are hard;
everything else, even 5.2.2 mailboxfull, is soft), except that a temporary reply (4.X.Y
status or 4xx reply code) is never hard.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache

from poolwarden.wire.bounce_rules import (
    CLASS_OF,
    EXCLUSIONS,
    FALLBACK_ORDER,
    PHRASES,
    PROBE_ORDER,
    PROVIDER_RULES,
    STATUS_REASONS,
    TENTATIVE,
    Rule,
)
from poolwarden.wire.reply_catalogue import CAUSES, PROVIDERS, Entry

__all__ = [
    "CLASS_OF",
    "PHRASES",
    "PROVIDER_RULES",
    "STATUS_REASONS",
    "Classification",
    "Rule",
    "classify",
    "find_command",
    "find_reply_code",
    "find_status",
    "is_hard",
]


@dataclass(frozen=True, slots=True)
class Classification:
    reason: str
    bounce_class: str  # hard | soft | reputation | policy | content | other
    hard: bool
    rule_id: str  # which row decided: "catalogue:google-...", "cause:...", "status:5.1.1"...
    provider_code: str = ""  # the provider's own code the reply carries (TSS04, S3150...)
    about: str = ""  # ip | domain | content | recipient | sender | rate | system, when known


_ALWAYS_HARD = frozenset({"userunknown", "hostunknown", "hasmoved"})

# What each reason is about when no catalogue entry says (the reaction rules and the
# bad-neighbour ranking want the IP / domain / content split).
_ABOUT_OF: dict[str, str] = {
    "userunknown": "recipient", "hostunknown": "recipient", "hasmoved": "recipient",
    "mailboxfull": "recipient", "suspend": "recipient", "filtered": "recipient",
    "notaccept": "recipient", "exceedlimit": "content", "mesgtoobig": "content",
    "blocked": "ip", "badreputation": "ip", "requireptr": "ip", "speeding": "rate",
    "toomanyconn": "rate", "authfailure": "domain", "rejected": "sender",
    "norelaying": "sender", "securityerror": "sender", "failedstarttls": "sender",
    "spamdetected": "content", "virusdetected": "content", "contenterror": "content",
    "policyviolation": "content", "notcompliantrfc": "content", "systemerror": "system",
    "systemfull": "system", "networkerror": "system", "expired": "system",
}


def is_hard(reason: str, status: str | None, reply: str | None = None) -> bool:
    """sisimai's hard-bounce rule (by reason, not by the 4xx/5xx class), except that a
    temporary reply (a 4.X.Y status or a 4xx reply code) is never hard: the receiver said
    that retrying may work, so it proves nothing about the address."""
    if (status or "").startswith("4") or (reply or "").startswith("4"):
        return False
    if reason in _ALWAYS_HARD:
        return True
    return reason == "notaccept"


# SMTP commands before DATA: a content verdict cannot come from them.
_BEFORE_DATA = frozenset({"CONN", "EHLO", "HELO", "MAIL", "RCPT"})

_EXCLUDED = {reason: re.compile(p) for reason, p in EXCLUSIONS.items()}

_COMPILED: dict[str, list[tuple[re.Pattern[str], Rule]]] = {
    reason: [(re.compile(r.pattern), r) for r in rules] for reason, rules in PHRASES.items()
}
_PROVIDER_COMPILED: list[tuple[re.Pattern[str], re.Pattern[str] | None, Rule]] = [
    (re.compile(r.pattern), re.compile(r.host) if r.host else None, r) for r in PROVIDER_RULES
]

_Compiled = tuple[tuple[re.Pattern[str], re.Pattern[str] | None, Entry], ...]


@cache
def _catalogue() -> tuple[_Compiled, _Compiled]:
    """The reply catalogue (provider entries, explicit causes), compiled once on first use."""
    def build(entries: tuple[Entry, ...]) -> _Compiled:
        return tuple((re.compile(e.pattern), re.compile(e.host) if e.host else None, e)
                     for e in entries)
    return build(PROVIDERS), build(CAUSES)


_STATUS_RE = re.compile(r"(?<![\d.])([245])\.(\d{1,3})\.(\d{1,3})(?![\d]|\.\d)")
_REPLY_RE = re.compile(r"(?<![\d.#\-/:])([245][0-5]\d)(?=[ \-]|$)(?!\.\d)")
_COMMAND_RES: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"after (?:end of data|data|the data command|final data)|final data|"
                r"in reply to (?:end of )?data|end of data|our data|data command"), "DATA"),
    (re.compile(r"rcpt to|in reply to rcpt|after rcpt|rcpt command|rcpt_to|\[rcpt_to\]"),
     "RCPT"),
    (re.compile(r"mail from|in reply to mail|after mail|mail command"), "MAIL"),
    (re.compile(r"after initial connection|while connecting|connection refused|"
                r"connect to \S+ port|lost connection|greeting"), "CONN"),
    (re.compile(r"\behlo\b"), "EHLO"),
    (re.compile(r"\bhelo\b"), "HELO"),
)


def _norm(text: str) -> str:
    return " ".join(text.lower().split())


def find_status(text: str) -> str:
    """The first enhanced status code (``5.1.1``) in the text, or ``""``."""
    first = ""
    for m in _STATUS_RE.finditer(text):
        code = f"{m.group(1)}.{int(m.group(2))}.{int(m.group(3))}"
        if code[0] in "45":
            return code  # a failure code wins over "250 2.1.5 Ok" lines in a transcript
        first = first or code
    return first


def find_reply_code(text: str) -> str:
    """The first plausible SMTP reply code (``550``) in the text, or ``""``."""
    m = _REPLY_RE.search(text)
    return m.group(1) if m else ""


# Upper-case command words, furthest in the session first (sisimai smtp/command.Find).
_COMMAND_WORDS: tuple[tuple[str, str], ...] = (
    ("XFORWARD", "XFORWARD"), ("QUIT", "QUIT"), ("DATA", "DATA"), ("RCPT", "RCPT"),
    ("MAIL F", "MAIL"), ("AUTH", "AUTH"), ("STARTTLS", "STARTTLS"), ("EHLO", "EHLO"),
    ("HELO", "HELO"),
)


def find_command(text: str) -> str:
    """The SMTP command a failure happened at, from phrases like "in reply to RCPT TO"."""
    t = _norm(text)
    phrase = _command_phrase(t)
    if phrase:
        return phrase
    for word, name in _COMMAND_WORDS:
        if re.search(r"(?<![A-Za-z0-9@.])" + word + (r"(?![A-Za-z0-9])" if " " not in word
                                                       else ""), text):
            return name
    return ""


def _command_phrase(t: str) -> str:
    best = ""
    best_pos = -1
    for rx, name in _COMMAND_RES:
        for m in rx.finditer(t):
            if m.start() > best_pos:
                best, best_pos = name, m.start()
            break
    return best


def _includes(reason: str, text: str) -> Rule | None:
    veto = _EXCLUDED.get(reason)
    if veto is not None and veto.search(text):
        return None
    for rx, rule in _COMPILED.get(reason, ()):
        if rx.search(text):
            return rule
    return None


def _prefer(field: str, in_text: str, reply: str) -> str:
    """Choose between the Status: field and a status code quoted in the text (sisimai)."""
    if not field:
        return in_text
    if not in_text or field == in_text:
        return field
    if reply and field[0] != in_text[0]:
        if reply[0] == field[0]:
            return field
        if reply[0] == in_text[0]:
            return in_text
    if ".0.0" in field:
        return in_text if ".0.0" not in in_text else field
    if ".0" in field and ".0" not in in_text:
        return in_text
    if ".0.0" in in_text:
        return field
    if field in ("4.4.7", "4.7.0") or field.startswith("5.3.") or field[1:4] in (
        ".5.1", ".5.2", ".5.4", ".5.5"
    ):
        return in_text
    if field == "5.1.1":
        return field if (".0" in in_text or in_text.startswith("5.5.")) else in_text
    if field == "5.1.3" and in_text.startswith("5.7."):
        return in_text
    return field


@dataclass(frozen=True, slots=True)
class _Facts:
    text: str
    status: str
    reply: str
    command: str
    temp: str  # reason the status code names
    preset: Rule | None = None  # a tentative signature rule that matched


def _probe(reason: str, f: _Facts) -> Rule | str | None:
    """sisimai-style probe: does ``reason`` apply? Returns the deciding rule or a tag."""
    t, temp = f.text, f.temp
    status_tag = f"status:{f.status}"
    if f.preset is not None and f.preset.reason == reason:
        return f"signature:{f.preset.id}"
    if reason == "mailboxfull":
        return status_tag if temp == reason else _includes(reason, t)
    if reason == "mesgtoobig":
        if temp == reason:
            return status_tag
        if temp == "exceedlimit" or f.status == "5.2.3":
            return None
        return _includes(reason, t)
    if reason in ("exceedlimit", "authfailure", "requireptr", "toomanyconn", "blocked"):
        return status_tag if temp == reason else _includes(reason, t)
    if reason == "suspend":
        return "reply:525" if f.reply == "525" else _includes(reason, t)
    if reason in ("hasmoved", "notcompliantrfc", "badreputation", "speeding"):
        return _includes(reason, t)
    if reason == "norelaying":
        return None if f.command in ("CONN", "EHLO", "HELO") else _includes(reason, t)
    if reason == "userunknown":
        if temp == reason:
            for other in ("norelaying", "blocked", "mailboxfull", "hasmoved", "rejected",
                          "notaccept"):
                if _includes(other, t):
                    return None
            return status_tag
        return _includes(reason, t) if f.command == "RCPT" else None
    if reason == "filtered":
        if temp == reason:
            return _includes("userunknown", t) or _includes("filtered", t)
        if f.command in _BEFORE_DATA:
            return None
        return _includes("filtered", t) or _includes("userunknown", t)
    if reason == "contenterror":
        if _probe("spamdetected", f):
            return None
        return status_tag if temp == reason else _includes(reason, t)
    if reason == "rejected":
        if temp == reason:
            return status_tag
        if f.command == "MAIL" or (f.command == "DATA" and temp != "userunknown") or temp in (
            "", "undefined", "onhold", "securityerror", "systemerror"
        ):
            return _includes(reason, t)
        return None
    if reason == "hostunknown":
        if temp == reason:
            return None if _includes("networkerror", t) else status_tag
        return _includes(reason, t)
    if reason == "spamdetected":
        if not f.status:
            return None
        if temp == reason:
            return status_tag
        return None if f.command in _BEFORE_DATA else _includes(reason, t)
    return None


def _provider(f: _Facts, host: str) -> Rule | None:
    for rx, host_rx, rule in _PROVIDER_COMPILED:
        if host_rx is not None and not host_rx.search(host):
            continue
        if rule.status and not re.fullmatch(rule.status, f.status):
            continue
        if rule.code and not re.fullmatch(rule.code, f.reply):
            continue
        if rule.command and rule.command != f.command:
            continue
        if rx.search(f.text):
            return rule
    return None


def _match(table: _Compiled, f: _Facts, host: str, *, earliest: bool = False
           ) -> tuple[Entry, str] | None:
    """The first catalogue entry the reply matches, with the provider code it carries; with
    ``earliest``, the entry whose words come first in the text (ties: table order)."""
    best: tuple[int, Entry, str] | None = None
    for rx, host_rx, entry in table:
        if host_rx is not None and not host_rx.search(host):
            continue
        if entry.status and not re.fullmatch(entry.status, f.status):
            continue
        if entry.reply and not re.fullmatch(entry.reply, f.reply):
            continue
        if entry.command and entry.command != f.command:
            continue
        m = rx.search(f.text)
        if m is None:
            continue
        code = m.groupdict().get("code") or entry.code
        if not earliest:
            return entry, code.upper() if code else ""
        if best is None or m.start() < best[0]:
            best = (m.start(), entry, code.upper() if code else "")
    return None if best is None else (best[1], best[2])


def _result(reason: str, status: str, rule_id: str, *, mta: bool = False, reply: str = "",
            provider_code: str = "", about: str = "") -> Classification:
    if mta and (not status or status.endswith(".0.0")):
        status = "5.0.900"  # an MTA's own verdict with no precise code: sisimai's pseudo code
    hard = is_hard(reason, status, reply)
    return Classification(reason, CLASS_OF.get(reason, "other"), hard, rule_id, provider_code,
                          about or _ABOUT_OF.get(reason, ""))


def _from_entry(found: tuple[Entry, str], status: str, reply: str, kind: str
                ) -> Classification:
    entry, code = found
    return _result(entry.reason, status, f"{kind}:{entry.id}", reply=reply, provider_code=code,
                   about=entry.about)


def _tag(found: Rule | str) -> str:
    return found if isinstance(found, str) else f"phrase:{found.id}"


def classify(
    reply_code: str | None,
    status: str | None,
    text: str,
    *,
    reporting_mta: str | None = None,
    remote_mta: str | None = None,
    command: str | None = None,
    action: str | None = None,
    diagnostic_type: str | None = None,
    preset: str | None = None,
) -> Classification:
    """Classify one failed recipient. Every argument may be missing or junk.

    ``preset`` is a reason the bounce format itself states (e.g. Google Groups'
    refusal): decisive unless it is tentative, like a signature rule's.
    """
    t = _norm(text or "")[:20000]
    in_text = find_status(t)
    field = (status or "").strip()
    field = find_status(field) if field else ""
    reply = (reply_code or "").strip()[:3]
    if not reply.isdigit():
        reply = find_reply_code(t)
    st = _prefer(field, in_text, reply)
    cmd = (command or "").upper() or find_command(t)
    facts = _Facts(t, st, reply, cmd, STATUS_REASONS.get(st, ""))
    dtype = (diagnostic_type or "smtp").lower()
    act = (action or "").lower()

    def done(reason: str, status: str, rule_id: str, *, mta: bool = False) -> Classification:
        return _result(reason, status, rule_id, mta=mta, reply=reply)

    if st.startswith("2."):
        return done("delivered", st, f"status:{st}")
    host = " ".join(x.lower() for x in (remote_mta, reporting_mta) if x)
    providers, causes = _catalogue()
    documented = _match(providers, facts, host)
    if documented is not None:  # 1. a provider's own code or wording
        return _from_entry(documented, st, reply, "catalogue")
    provider = _provider(facts, host)
    if provider is None and preset:
        provider = Rule(f"format-{preset}", preset, "", "stated by the bounce format", mta=True)
    if provider is not None:
        if not provider.mta or provider.reason not in TENTATIVE:
            return done(provider.reason, st, f"signature:{provider.id}", mta=provider.mta)
        if not (facts.temp and facts.temp != provider.reason and ".0" not in st):
            facts = _Facts(t, st, reply, cmd, facts.temp, provider)

    mailer = dtype.startswith("x-unix")
    if not mailer:
        named = _match(causes, facts, host, earliest=True)
        if named is not None:  # 2. a cause the text names, before any status code
            return _from_entry(named, st, reply, "cause")
    if not mailer:
        for reason in PROBE_ORDER:
            found = _probe(reason, facts)
            if found:
                return done(reason, st, _tag(found))
    if facts.preset is not None:
        return done(facts.preset.reason, st, f"signature:{facts.preset.id}")

    temp = facts.temp
    if temp in TENTATIVE or mailer:
        for reason in FALLBACK_ORDER:
            rule = _includes(reason, t)
            if rule is not None:
                return done(reason, st, f"phrase:{rule.id}")
        if temp:
            return done(temp, st, f"status:{st}")
        if st[:3] in ("5.6", "4.6"):
            return done("contenterror", st, f"status-class:{st[:3]}")
        if st[:3] in ("5.7", "4.7"):
            return done("securityerror", st, f"status-class:{st[:3]}")
        if dtype.startswith("x-unix"):
            return done("mailererror", st, "diagnostic-type:x-unix")
        if reply.isdigit() and (400 < int(reply) < 408 or 500 < int(reply) < 508):
            return done("syntaxerror", st, f"reply:{reply}")
        if act in ("delayed", "expired"):
            return done("expired", st, f"action:{act}")
        if cmd in ("EHLO", "HELO"):
            return done("blocked", st, f"command:{cmd}")
    elif temp:
        return done(temp, st, f"status:{st}")
    if act == "delayed":
        return done("expired", st, "action:delayed")
    if _includes("vacation", t):
        return done("vacation", st, "phrase:vacation")
    if t:
        return done("onhold", st, "fallback:onhold")
    return done("undefined", st, "fallback:undefined")
