"""The decision-latency histogram folds in batches exactly as one-by-one bucketing would."""

from __future__ import annotations

from bisect import bisect_left

from hypothesis import given
from hypothesis import strategies as st

from poolwarden.services.queries.metrics import FOLD_EVERY, LATENCY_BUCKETS, LatencyHistogram

values = st.one_of(st.sampled_from([0.0, *LATENCY_BUCKETS, 5.0]),
                   st.floats(min_value=0, max_value=2, allow_nan=False))


@given(st.lists(values, max_size=3 * FOLD_EVERY // 2), st.integers(1, 4))
def test_batched_folding_equals_one_by_one(observed: list[float], pipelined: int) -> None:
    h = LatencyHistogram()
    for v in observed:
        h.observe(v)
    h.observe_many(0.004 * pipelined, pipelined)  # a pipelined batch: the mean, n times
    everything = [*observed, *[0.004 * pipelined / pipelined] * pipelined]
    expected = [0] * (len(LATENCY_BUCKETS) + 1)
    for v in everything:
        expected[bisect_left(LATENCY_BUCKETS, v)] += 1  # the first bound >= v
    cumulative, total, count = h.read()
    running = 0
    for (label, n), want in zip(cumulative, expected, strict=True):
        running += want
        assert n == running, label
    assert cumulative[-1][0] == "+Inf" and count == len(everything)
    assert abs(total - sum(everything)) < 1e-9
    assert h.read()[2] == count  # reading twice folds nothing twice
