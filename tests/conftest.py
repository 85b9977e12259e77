"""The whole suite's setup: with ``POOLWARDEN_INTERPRETED=1``, the modules setup.py compiles
with mypyc are imported from their ``.py`` source instead (``scripts/test.sh`` runs a parity
subset so, next to the suite on the compiled build)."""

from __future__ import annotations

import os

from tests.support.compiled import prefer_source

if os.environ.get("POOLWARDEN_INTERPRETED") == "1":
    prefer_source()
