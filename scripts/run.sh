#!/usr/bin/env bash
# Install the Python environment and run the main job on the example configuration:
# simulated traffic for the example tenants, routed, measured and re-tiered day by day.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh python
exec .venv/bin/poolwarden demo --config examples/poolwarden.toml "$@"
