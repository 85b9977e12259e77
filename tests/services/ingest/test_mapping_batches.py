"""``DeliveryMapper.rows`` batch after batch, as its caches fill, gives exactly the rows,
sources and counts a mapper with empty caches gives for each delivery on its own: on
generated logs with the decision log and without it, with unknown tenants, Postfix's own
notifications, deferrals, bounces and expiries; a reply classified once is mapped from the
cache to the same row; and ``Delivery.key`` is the documented digest of its material."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from poolwarden.adapters.sqlstore import open_store
from poolwarden.config.load import load_config_text
from poolwarden.services.ingest import pipeline as ingest_pipeline
from poolwarden.services.ingest.ingestd import Ingestd
from poolwarden.services.ingest.pipeline import (
    DeliveryMapper,
    IngestMetrics,
    Pipeline,
    lookup_decisions,
)
from poolwarden.wire.postfix_correlate import Delivery, MessageInfo
from poolwarden.wire.postfix_log import LogParser
from tests.services.ingest.loggen import config_toml, generate


def _deliveries(lines: list[str], size: int) -> list[list[Delivery]]:
    pipeline = Pipeline(LogParser(year=2026))
    batches = []
    for start in range(0, len(lines), size):
        data = "".join(lines[start:start + size]).encode()
        pipeline.feed(1, start, data, emit=True)
        batches.append(pipeline.take())
    return batches


@pytest.mark.parametrize("with_decisions", [True, False])
def test_warm_caches_give_the_rows_of_cold_ones(tmp_path: Path, with_decisions: bool) -> None:
    url = f"sqlite:///{tmp_path / 'pw.db'}"
    config = load_config_text(config_toml(url), file=str(tmp_path / "pw.toml"))
    store = open_store(url)
    try:
        log = generate(11, 900)
        if with_decisions:
            store.add_decisions(log.decisions)
        snapshot = Ingestd(config, store, [tmp_path / "none.log"]).mapper.snapshot
        slow_metrics, fast_metrics = IngestMetrics(), IngestMetrics()
        fast = DeliveryMapper(snapshot, fast_metrics)
        stored = 0
        for batch in _deliveries(log.lines, 700):
            decisions = lookup_decisions(store, batch)
            slow_sources: list[Delivery] = []
            fast_sources: list[Delivery] = []
            expected = [row for d in batch  # a fresh mapper, empty caches, for each delivery
                        for row in DeliveryMapper(snapshot, slow_metrics).rows(
                            [d], decisions, slow_sources)]
            got = fast.rows(batch, decisions, fast_sources)
            assert got == expected
            assert fast_sources == slow_sources
            stored += len(got)
        assert fast_metrics.as_dict() == slow_metrics.as_dict()
        assert stored > 1000 and slow_metrics.unknown_tenants > 0 and slow_metrics.skipped > 0
    finally:
        store.close()


_text = st.one_of(st.none(), st.text(max_size=12))


@settings(max_examples=300, deadline=None)
@given(host=_text, qid=st.text(min_size=1, max_size=12), recipient=st.text(max_size=30),
       status=st.sampled_from(["sent", "deferred", "bounced", "expired", "x" * 70]),
       time=st.floats(allow_nan=False, allow_infinity=False, min_value=-1e12, max_value=1e12),
       seq=st.integers(min_value=0, max_value=10**6))
def test_the_key_is_the_digest_of_its_material(host: str | None, qid: str, recipient: str,
                                               status: str, time: float, seq: int) -> None:
    d = Delivery(time, host, qid, recipient, status, status, None, None, None, None, None,
                 "smtp", MessageInfo(host, qid), seq=seq)
    material = "\x1f".join([str(host), qid, recipient, status, f"{time:.6f}", str(seq)])
    assert d.key == "pflog:" + hashlib.sha256(material.encode()).hexdigest()[:32]


_words = st.sampled_from(["550", "5.1.1", "<a@b.c>:", "user", "unknown", "1234567890",
                          "abcdefghij", "abcdefghi9", "quota", "\t", "  ", "x@y", "Greylisted",
                          "\x1c", "é", "try again later"])


@settings(max_examples=200, deadline=None)
@given(replies=st.lists(st.lists(_words, max_size=8).map(" ".join), min_size=1, max_size=6),
       relay=st.sampled_from(["mx.b.c[1.2.3.4]:25", "localhost[127.0.0.1]:25", "none"]))
def test_a_reply_classified_once_maps_from_the_cache(replies: list[str], relay: str) -> None:
    """The classifier's cache key (DSN, site, reply shape): once a reply is mapped, the
    same delivery maps from the caches alone, to the same row."""
    config = load_config_text(config_toml("sqlite://"), file="pw.toml")
    snapshot = Ingestd(config, open_store("sqlite://"), []).mapper.snapshot
    info = MessageInfo("mx1", "ABCDEF1", sender="news@acme.example", sasl_username="acme",
                       client_ip="10.1.0.1")
    deliveries = [Delivery(1_795_392_000.0 + i, "mx1", "ABCDEF1", f"r{i}@gmail.com",
                           status, status, dsn, reply, relay, None, None, "smtp", info, seq=0)
                  for i, reply in enumerate(replies)
                  for status, dsn in (("deferred", "4.2.2"), ("bounced", "5.1.1"))]
    mapper = DeliveryMapper(snapshot, IngestMetrics())
    expected = mapper.rows(deliveries, {})  # fills every cache
    assert expected == [row for d in deliveries  # the rows of empty caches
                        for row in DeliveryMapper(snapshot, IngestMetrics()).rows([d], {})]
    calls: list[str | None] = []
    classify = ingest_pipeline.classify

    def spy(*args: object, **kwargs: object) -> object:
        calls.append(str(args))
        return classify(*args, **kwargs)  # type: ignore[arg-type]

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(ingest_pipeline, "classify", spy)
        assert mapper.rows(deliveries, {}) == expected
    assert calls == []
