#!/usr/bin/env bash
# Install everything and run every check: ruff, mypy, the whole pytest suite on the compiled
# build (setup.py compiles the ingest's hot modules with mypyc; a test fails if they were
# not), then a quick parity subset with those modules interpreted from their .py source.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh all
.venv/bin/ruff check src tests bench
.venv/bin/mypy
POOLWARDEN_EXPECT_COMPILED=1 .venv/bin/pytest -q "$@"
if [ "$#" -eq 0 ]; then
  POOLWARDEN_INTERPRETED=1 .venv/bin/pytest -q -p no:cacheprovider \
    tests/wire/test_compiled.py tests/wire/test_postfix_log.py \
    tests/wire/test_postfix_log_fast.py tests/services/ingest/test_mapping.py
fi
