"""Warm-up state and daily counts in the store: SQLite, PostgreSQL and memory behave alike.

States round-trip and are replaced by key; counts from several writers (nodes) add
up per day, survive reopening the store (a restart does not reset today's counts),
and old days are pruned.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from poolwarden.adapters.warmup_store import KEEP_COUNT_DAYS
from poolwarden.core.warmup import WarmupState
from poolwarden.ports import Store, WarmupStore

DAY = 20000


def state(provider: str = "google", **kw: object) -> WarmupState:
    base = WarmupState("ip", "127.0.0.23", provider, "sparkpost", 2, DAY - 5, DAY - 1, DAY - 1,
                       DAY - 1, "day 5, stage 2 of 'sparkpost' done: delivered 480 of 500")
    return replace(base, **kw)  # type: ignore[arg-type]


def test_states_round_trip_and_replace(store: Store) -> None:
    ws: WarmupStore = store
    assert ws.warmup_states() == []
    ws.save_warmup_states([state(), state("yahoo", stage=0, last_active_day=None)], at=1.0)
    got = {s.provider: s for s in ws.warmup_states()}
    assert got == {"google": state(), "yahoo": state("yahoo", stage=0, last_active_day=None)}
    ws.save_warmup_states([state(stage=3, why="stage 4")], at=2.0)
    got = {s.provider: s for s in ws.warmup_states()}
    assert got["google"].stage == 3 and got["google"].why == "stage 4"
    assert len(got) == 2


def test_counts_add_up_across_nodes_and_restarts(make_store: Callable[[], Store]) -> None:
    node_a, node_b = make_store(), make_store()
    wa: WarmupStore = node_a
    wb: WarmupStore = node_b
    if wa is not wb and type(wa).__name__ == "MemoryStore":
        wb = wa  # memory: two "nodes" share one process-local store
    key = ("ip", "127.0.0.23", "google")
    wa.add_warmup_counts(DAY, {key: 3, ("tenant", "fitclub", "google"): 3})
    wb.add_warmup_counts(DAY, {key: 2})
    wa.add_warmup_counts(DAY - 1, {key: 50})
    assert wa.warmup_counts(DAY)[key] == 5
    assert wb.warmup_counts(DAY) == {key: 5, ("tenant", "fitclub", "google"): 3}
    assert wa.warmup_counts(DAY - 1) == {key: 50}
    # a later day's flush prunes days older than the ones ever read
    wa.add_warmup_counts(DAY + KEEP_COUNT_DAYS, {key: 1})
    assert wa.warmup_counts(DAY - 1) == {}
    assert wa.warmup_counts(DAY)[key] == 5


def test_counts_survive_reopening(make_store: Callable[[], Store], db_url: str | None) -> None:
    if db_url is None:
        return  # memory does not outlive its process: nothing to reopen
    first = make_store()
    first.add_warmup_counts(DAY, {("ip", "127.0.0.23", "google"): 7})
    first.close()
    again = make_store()
    assert again.warmup_counts(DAY) == {("ip", "127.0.0.23", "google"): 7}
