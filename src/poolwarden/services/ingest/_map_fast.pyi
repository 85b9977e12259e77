"""Type stub of the C module built from _map_fast.c (see DeliveryMapper.rows)."""

from poolwarden.adapters.event_rows import EventRow
from poolwarden.ports import DecisionRow
from poolwarden.services.ingest.pipeline import DeliveryMapper
from poolwarden.wire.postfix_correlate import Delivery

def map_rows(mapper: DeliveryMapper, deliveries: list[Delivery],
             decisions: dict[str, list[DecisionRow]], out: list[EventRow],
             sources: list[Delivery] | None, /) -> None: ...
def key_of(delivery: Delivery, /) -> str: ...
