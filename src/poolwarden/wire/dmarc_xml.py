"""DMARC aggregate report XML in, ``core.dmarc.AggregateReport`` out, safe by construction.

Every byte first passes defusedxml's expat gate (RELIABILITY B1, ASVS 1.5.1): any DTD is
refused, so no entity is ever declared or expanded (billion laughs, quadratic blowup) and
no external entity or DTD is fetched. Only bytes the gate accepted reach the tree builder
(ElementTree's C parser: the gate builds nothing, so both run at C speed). The XML is fed
chunk by chunk from ``wire.dmarc_archive`` (which enforces the size caps), and each
``<record>`` is turned into a value and dropped as soon as it ends, so memory follows the
record, not the report.

Real reports are often broken (RELIABILITY B3, parsedmarc's tracker): upper-case values
(``PASS``), a stray ``xs:schema`` wrapper, ``<``/``>`` inside text (``<email>`` in angle
brackets), bytes that are not UTF-8. When the strict parse fails, one bounded repair pass
runs on the same capped text (undo the wrapper, escape stray ``<``, replace bad bytes) and
each repair is recorded as a warning on the report; a report that still does not parse is
refused with the parser's reason. Fields are always strings or integers, never nested
values. Sans-io.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from typing import Any
from xml.etree.ElementTree import Element, ParseError, XMLPullParser
from xml.parsers.expat import ExpatError

from defusedxml import DTDForbidden, EntitiesForbidden, ExternalReferenceForbidden
from defusedxml.ElementTree import DefusedXMLParser

from poolwarden.core.dmarc import (
    AggregateReport,
    DkimAuth,
    DmarcRecord,
    PolicyPublished,
    Reason,
    SpfAuth,
)
from poolwarden.wire.dmarc_archive import DEFAULT_CAPS, Caps, ReportRejected, open_report

# a report's period longer than this is recorded as a warning (parsedmarc PR #587 aborted a
# whole mailbox run on it; RFC 7489 asks for at most a day, larger spans occur in the wild)
MAX_SPAN = 24 * 3600 + 60
MAX_FIELD = 1024  # longer text is cut (and warned about): no column holds a novel
# bytes between two '>' at most: Expat before 2.6 rescans an unfinished token at every
# feed, so one huge token would cost quadratic time; no real report comes near this
MAX_TOKEN = 1024 * 1024
CHUNK = 64 * 1024  # bytes fed to the parsers at a time
_NS = re.compile(r"^\{[^}]*\}")
_OPENING = re.compile(rb"<[A-Za-z_]")
_TAG = re.compile(rb"<(?:/?[A-Za-z_][\w.:-]*(?:\s[^<>]*)?/?|\?[^<>]*\?|!--.*?--)>", re.DOTALL)


def parse_report(data: bytes, *, name: str = "", caps: Caps = DEFAULT_CAPS) -> AggregateReport:
    """Open ``data`` (XML, gzip or zip) and parse the report; ``ReportRejected`` says why not."""
    try:
        return _parse_chunks(open_report(data, name=name, caps=caps), ())
    except _MalformedError as first:
        # the strict pass failed on syntax: rebuild the capped text and repair it once
        text = b"".join(open_report(data, name=name, caps=caps))
        repaired, repairs = repair(text)
        if not repairs:
            raise ReportRejected(f"not well-formed XML: {first}") from None
        try:
            return _parse_chunks(iter((repaired,)), tuple(repairs))
        except _MalformedError as second:
            raise ReportRejected(f"not well-formed XML: {second} (after repairing: "
                                 f"{'; '.join(repairs)})") from None


def parse_xml(xml: bytes) -> AggregateReport:
    """Parse plain report XML (no container); the strict pass only."""
    try:
        return _parse_chunks(iter((xml,)), ())
    except _MalformedError as exc:
        raise ReportRejected(f"not well-formed XML: {exc}") from None


class _MalformedError(Exception):
    """The strict parse hit a syntax error (a candidate for the repair pass)."""


def repair(text: bytes) -> tuple[bytes, list[str]]:
    """The known breakages undone, and a note for each one found."""
    notes: list[str] = []
    try:
        text.decode("utf-8")
    except UnicodeDecodeError:
        text = text.decode("utf-8", "replace").encode("utf-8")
        notes.append("bytes that are not UTF-8 were replaced")
    start = text.find(b"<feedback")
    end = text.rfind(b"</feedback>")
    if start > 0 and re.search(rb"<(?!\?)[^>]*>", text[:start]):
        notes.append("removed markup around <feedback> (e.g. an xs:schema wrapper)")
        text = text[start:]
        end = text.rfind(b"</feedback>")
    if end >= 0 and text[end + 11:].strip():
        notes.append("removed text after </feedback>")
        text = text[:end + 11]
    out: list[bytes] = []
    pos, stray = 0, 0
    for match in re.finditer(rb"<", text):
        at = match.start()
        if at < pos:
            continue
        tag = _TAG.match(text, at)
        if tag is not None:
            out.append(text[pos:tag.end()])
            pos = tag.end()
        else:
            out.append(text[pos:at] + b"&lt;")
            pos = at + 1
            stray += 1
    out.append(text[pos:])
    if stray:
        notes.append(f"escaped {stray} stray '<' in text")
    return b"".join(out), notes


class _Builder:
    """Turns parsed elements into values, collecting warnings as it goes."""

    def __init__(self, repairs: tuple[str, ...]) -> None:
        self.warnings: list[str] = list(repairs)
        self._seen: set[str] = set()

    def warn(self, text: str) -> None:
        if text not in self._seen:
            self._seen.add(text)
            self.warnings.append(text)

    def text(self, elem: Element | None, *, lower: bool = False) -> str | None:
        if elem is None:
            return None
        if not len(elem):  # the common case first: a leaf with short text
            value = elem.text
            if value is None:
                return ""
            value = value.strip()
            if len(value) <= MAX_FIELD and (not lower or value.islower()
                                            or value == value.lower()):
                return value
        if len(elem):
            # a value that is itself markup (<email><a@b></email> parsed as a tag): keep
            # its text only, so the column stays a string (parsedmarc PR #740)
            self.warn(f"<{_local(elem.tag)}> held markup instead of text; kept its text")
            value = "".join(elem.itertext())
        else:
            value = elem.text or ""
        value = value.strip()
        if len(value) > MAX_FIELD:
            self.warn(f"<{_local(elem.tag)}> cut to {MAX_FIELD} characters")
            value = value[:MAX_FIELD]
        if lower and value != value.lower():
            self.warn("upper-case values were read in lower case")
            value = value.lower()
        return value

    def integer(self, elem: Element | None, what: str) -> int | None:
        value = self.text(elem)
        if not value:
            return None
        try:
            return int(float(value)) if "." in value else int(value)
        except ValueError:
            self.warn(f"<{what}> is not a number: {value[:40]!r}")
            return None


def _local(tag: str) -> str:
    return _NS.sub("", tag) if tag[:1] == "{" else tag


def _children(elem: Element) -> dict[str, Element]:
    """Children by local name; of repeated names the first counts."""
    out: dict[str, Element] = {}
    for child in reversed(elem):
        tag = child.tag
        out[tag if tag[0] != "{" else _NS.sub("", tag)] = child
    return out


def _all(elem: Element | None, tag: str) -> Iterator[Element]:
    if elem is None:
        return
    for child in elem:
        if _local(child.tag) == tag:
            yield child


def _events(parser: XMLPullParser) -> Iterable[tuple[str, Element]]:
    """The parser's pending events, taken in one piece from its queue when it has one
    (ElementTree's ``read_events`` is a Python generator: a call per element)."""
    queue = getattr(parser, "_events_queue", None)
    if queue is None:
        return parser.read_events()
    pending = list(queue)
    queue.clear()
    return pending


def _guard() -> Any:
    """defusedxml's expat parser as a gate: its DTD, entity and external-reference
    handlers stay (any of them raises), its element handlers go, so the gate runs at
    expat's C speed and builds nothing."""
    gate = DefusedXMLParser(forbid_dtd=True, forbid_entities=True,
                            forbid_external=True).parser
    for handler in ("StartElementHandler", "EndElementHandler", "CharacterDataHandler",
                    "DefaultHandlerExpand", "CommentHandler", "ProcessingInstructionHandler",
                    "StartNamespaceDeclHandler", "EndNamespaceDeclHandler"):
        setattr(gate, handler, None)
    return gate


def _parse_chunks(chunks: Iterable[bytes], repairs: tuple[str, ...]) -> AggregateReport:
    # Every chunk passes defusedxml's gate before the tree builder sees it: a DTD or an
    # entity stops the gate inside that chunk, so the builder never receives it, and the
    # builder (ElementTree's C parser, same expat) only ever reads bytes the gate accepted.
    gate = _guard()
    # end events only: the top-level children are known by name (DMARC nests no
    # <record>, <report_metadata> or <policy_published> elsewhere); the root's end is last
    parser = XMLPullParser(events=("end",))
    b = _Builder(repairs)
    records: list[DmarcRecord] = []
    meta: Element | None = None
    policy: Element | None = None
    version: str | None = None
    root: Element | None = None
    since_markup = 0
    opened = False  # an element start was seen (else a syntax error means "empty")
    step = CHUNK
    try:
        for whole in chunks:
            for at in range(0, len(whole), step):
                chunk = whole[at:at + step] if len(whole) > step else whole
                last = chunk.rfind(b">")
                since_markup = (len(chunk) - last - 1 if last >= 0
                                else since_markup + len(chunk))
                if since_markup > MAX_TOKEN:
                    raise ReportRejected(f"too large: a single XML token or text over "
                                         f"{MAX_TOKEN:,} bytes")
                if not opened and _OPENING.search(chunk):
                    opened = True
                gate.Parse(chunk, False)
                parser.feed(chunk)
                for _event, elem in _events(parser):
                    tag = elem.tag
                    if tag[0] == "{":
                        tag = _local(tag)
                    if tag == "record":
                        records.append(_record(elem, b))
                        elem.clear()  # memory follows the record, not the report
                    elif tag == "report_metadata":
                        meta = elem
                    elif tag == "policy_published":
                        policy = elem
                    elif tag == "version":
                        version = b.text(elem)
                    root = elem
        gate.Parse(b"", True)
        parser.close()
        for _event, elem in parser.read_events():
            root = elem
    except (DTDForbidden, EntitiesForbidden, ExternalReferenceForbidden) as exc:
        raise ReportRejected(f"DTD/entity not allowed: {type(exc).__name__}") from None
    except (ParseError, ExpatError) as exc:
        if not opened and "no element found" in str(exc) and not repairs:
            raise ReportRejected("empty report: no XML element") from None
        raise _MalformedError(str(exc)) from None
    if root is None:
        raise ReportRejected("empty report: no XML element")
    if _local(root.tag) != "feedback":
        raise ReportRejected(f"not a DMARC aggregate report: the root element is "
                             f"<{_local(root.tag)[:40]}>, not <feedback>")
    return _report(meta, policy, version, records, b)


def _report(meta: Element | None, policy: Element | None, version: str | None,
            records: list[DmarcRecord], b: _Builder) -> AggregateReport:
    if meta is None:
        raise ReportRejected("no <report_metadata>")
    m = _children(meta)
    org = b.text(m.get("org_name")) or ""
    report_id = b.text(m.get("report_id")) or ""
    if not org or not report_id:
        raise ReportRejected("<report_metadata> lacks " + ("<org_name>" if not org
                                                            else "<report_id>"))
    span = _children(m["date_range"]) if "date_range" in m else {}
    begin = b.integer(span.get("begin"), "begin")
    end = b.integer(span.get("end"), "end")
    if begin is None or end is None:
        raise ReportRejected("<date_range> lacks a numeric <begin> or <end>")
    if end < begin:
        raise ReportRejected(f"<date_range> ends ({end}) before it begins ({begin})")
    if end - begin > MAX_SPAN:
        b.warn(f"the report covers {(end - begin) / 3600:.0f} hours, more than a day")
    if policy is None:
        b.warn("no <policy_published>: the policy is unknown")
        published = PolicyPublished(domain=records[0].header_from if records else "")
    else:
        p = _children(policy)
        published = PolicyPublished(
            domain=(b.text(p.get("domain"), lower=True) or ""),
            p=b.text(p.get("p"), lower=True) or None, sp=b.text(p.get("sp"), lower=True) or None,
            np=b.text(p.get("np"), lower=True) or None,
            adkim=b.text(p.get("adkim"), lower=True) or None,
            aspf=b.text(p.get("aspf"), lower=True) or None,
            pct=b.integer(p.get("pct"), "pct"), fo=b.text(p.get("fo")),
            testing=b.text(p.get("testing"), lower=True) or None,
            discovery_method=b.text(p.get("discovery_method"), lower=True) or None,
            version_published=b.text(p.get("version_published")) or None)
    if not records:
        b.warn("the report has no <record>")
    return AggregateReport(
        org_name=org, report_id=report_id, begin=begin, end=end, policy=published,
        records=tuple(records), email=b.text(m.get("email")),
        extra_contact_info=b.text(m.get("extra_contact_info")),
        errors=tuple(b.text(e) or "" for e in _all(meta, "error")),
        generator=b.text(m.get("generator")), version=version, warnings=tuple(b.warnings))


_GROUPS = frozenset({"dkim", "spf", "reason"})  # containers that repeat inside a record
_LEAVES = frozenset({"source_ip", "count", "disposition", "dkim", "spf", "header_from",
                     "envelope_from", "envelope_to"})


def _record(elem: Element, b: _Builder) -> DmarcRecord:
    # The hot loop of a big report: one pass over the record in document order. A <dkim>
    # or <spf> with children is an auth result (a group), without children the policy's
    # verdict; group fields (domain, selector, result, scope, type, comment) go to the
    # group they are in. The first of a repeated field counts.
    leaf: dict[str, Element] = {}
    groups: list[tuple[str, dict[str, Element]]] = []
    current: dict[str, Element] | None = None
    for el in elem.iter():
        tag = el.tag
        if tag[0] == "{":
            tag = _local(tag)
        if len(el):
            if tag in _GROUPS:
                current = {}
                groups.append((tag, current))
            continue
        if tag in _LEAVES and tag not in leaf and (current is None or tag in ("dkim", "spf")
                                                  or tag not in _GROUP_FIELDS):
            leaf[tag] = el
        elif current is not None:
            current.setdefault(tag, el)
    text = b.text
    count = b.integer(leaf.get("count"), "count")
    if count is None or count < 0:
        b.warn("a record without a valid <count> counted as 0")
        count = 0
    reasons, dkim, spf = [], [], []
    for kind, c in groups:
        if kind == "dkim":
            dkim.append(DkimAuth(text(c.get("domain"), lower=True) or "",
                                 text(c.get("selector")) or None,
                                 text(c.get("result"), lower=True) or "",
                                 text(c.get("human_result")) or None))
        elif kind == "spf":
            spf.append(SpfAuth(text(c.get("domain"), lower=True) or "",
                               text(c.get("scope"), lower=True) or None,
                               text(c.get("result"), lower=True) or "",
                               text(c.get("human_result")) or None))
        else:
            reasons.append(Reason(text(c.get("type"), lower=True) or "",
                                  text(c.get("comment")) or None))
    return DmarcRecord(
        source_ip=text(leaf.get("source_ip")) or "", count=count,
        disposition=text(leaf.get("disposition"), lower=True) or "",
        dkim=text(leaf.get("dkim"), lower=True) or "",
        spf=text(leaf.get("spf"), lower=True) or "",
        header_from=(text(leaf.get("header_from"), lower=True) or "").rstrip("."),
        envelope_from=text(leaf.get("envelope_from"), lower=True),
        envelope_to=text(leaf.get("envelope_to"), lower=True),
        reasons=tuple(reasons), dkim_auth=tuple(dkim), spf_auth=tuple(spf))


_GROUP_FIELDS = frozenset({"domain", "selector", "result", "human_result", "scope", "type",
                           "comment"})
