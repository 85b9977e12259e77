"""Builds the optional C accelerators of the log ingest (metadata is in pyproject.toml).

``optional=True``: without a C compiler the install still succeeds and the ingest runs
its pure-Python loop, which gives the same results (tests/wire/test_postfix_log_fast.py).
"""

from setuptools import Extension, setup

ACCELERATORS = {
    "poolwarden.wire._postfix_fast": "src/poolwarden/wire/_postfix_fast.c",  # parse+correlate
    "poolwarden.services.ingest._map_fast": "src/poolwarden/services/ingest/_map_fast.c",  # deliveries->rows
}

setup(ext_modules=[Extension(name, [source], extra_compile_args=["-O2", "-Wall", "-Wextra"],
                             optional=True)
                   for name, source in ACCELERATORS.items()])
