"""Builds the compiled parts of poolwarden (metadata is in pyproject.toml).

The ingest's hot modules are compiled from their own typed source with mypyc (as black and
mypy ship): the same ``.py`` files, which run interpreted wherever they are not compiled.
Without a C compiler (or with ``POOLWARDEN_COMPILE=0``) the install still succeeds, says so,
and runs them interpreted; ``scripts/setup.sh`` asks for the compiled build and the test
command checks it is the one imported (tests/wire/test_compiled.py).
"""

import os
import shutil
import sys

from setuptools import Extension, setup

# one list for the build and for the test that checks the build (tests/wire/test_compiled.py)
COMPILED = ["src/poolwarden/wire/postfix_log.py", "src/poolwarden/wire/postfix_message.py",
            "src/poolwarden/wire/postfix_correlate.py"]


def compiled_modules() -> list[Extension]:
    if os.environ.get("POOLWARDEN_COMPILE", "1") == "0":
        print("poolwarden: POOLWARDEN_COMPILE=0: the ingest runs interpreted", file=sys.stderr)
        return []
    if shutil.which(os.environ.get("CC", "cc")) is None:
        print("poolwarden: no C compiler: the ingest runs interpreted", file=sys.stderr)
        return []
    from mypyc.build import mypycify

    # mypy's own settings, not pyproject's: its pydantic plugin is not in the build env
    return mypycify(["--config-file", os.devnull, "--strict", *COMPILED], opt_level="3")


setup(ext_modules=compiled_modules())
