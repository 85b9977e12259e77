"""Type stub of the C module built from _fold_fast.c (see event_rows.fold_rows)."""

from collections.abc import Sequence
from typing import Any

def fold_rows(rows: Sequence[tuple[Any, ...]], positions: dict[str, int], width: int,
              scopes: tuple[str, str, str, str], all_providers: str, /
              ) -> list[tuple[Any, ...]]: ...
def scan_rows(rows: Sequence[tuple[Any, ...]], kinds: set[str] | frozenset[str],
              text_columns: tuple[int, ...], reason_column: int, max_reason: int, /
              ) -> int: ...
def flat_values(rows: Sequence[tuple[Any, ...]], /) -> list[Any]: ...
