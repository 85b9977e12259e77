"""Type stub of the C module built from _postfix_fast.c (see Correlator.feed_chunk)."""

from poolwarden.wire.postfix_correlate import Correlator, Delivery, MessageInfo
from poolwarden.wire.postfix_log import LogParser

def feed_chunk(correlator: Correlator, parser: LogParser, data: bytes,
               out: list[Delivery], /) -> int: ...
def use_types(delivery_type: type[Delivery], info_type: type[MessageInfo], /) -> None: ...
