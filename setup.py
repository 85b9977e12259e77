"""Builds the optional C accelerators of the log ingest (metadata is in pyproject.toml).

``optional=True``: without a C compiler the install still succeeds and the ingest runs
its pure-Python code, which gives the same results.
"""

from setuptools import Extension, setup

ACCELERATORS = {
    "poolwarden.adapters._fold_fast": "src/poolwarden/adapters/_fold_fast.c",  # counter deltas
}

setup(ext_modules=[Extension(name, [source], extra_compile_args=["-O2", "-Wall", "-Wextra"],
                             optional=True)
                   for name, source in ACCELERATORS.items()])
