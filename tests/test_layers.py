"""The house rules that keep the package readable: imports go downward only, the surfaces
(``cli``, ``http``, ``sim``) never import each other (``poolwarden.main`` wires them), and
each long-running job has its own room under ``services/``, and modules stay short."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "poolwarden"

# layer -> the layers it may import (besides itself); "main" is the one composition root
ALLOWED: dict[str, set[str]] = {
    "core": set(),
    "wire": {"core"},
    "ports": {"core"},
    "config": {"core"},
    "adapters": {"core", "wire", "ports", "config"},
    "services": {"core", "wire", "ports", "config", "adapters"},
    "cli": {"core", "wire", "ports", "config", "adapters", "services"},
    "http": {"core", "wire", "ports", "config", "adapters", "services"},
    "sim": {"core", "wire", "ports", "config", "adapters", "services"},
    "testing": {"core"},
    "main": {"core", "wire", "ports", "config", "adapters", "services", "cli", "http", "sim"},
    # the console entry: answers classify and --help itself, hands the rest to main
    "entry": {"cli", "main"},
}
ROOMS = {"routing", "ingest", "reputation", "feedback", "alerts", "access", "queries",
         "monitors", "domains"}


def _layer(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "(package)"


def _imports(path: Path) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "poolwarden":
                found += [(node.lineno, f"poolwarden.{a.name}") for a in node.names]
            elif node.module.startswith("poolwarden."):
                found.append((node.lineno, node.module))
        elif isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names
                      if a.name.startswith("poolwarden.")]
    return found


def _modules() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if "migrations" not in p.parts)


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_go_downward_only(path: Path) -> None:
    own = path.relative_to(PACKAGE).parts[0].removesuffix(".py")
    if own == "__init__":
        return
    assert own in ALLOWED, f"{own}: a new top-level package needs its place in ALLOWED"
    wrong = [f"line {line}: {module}" for line, module in _imports(path)
             if _layer(module) != own and _layer(module) not in ALLOWED[own]]
    assert not wrong, f"{path.relative_to(PACKAGE)} imports upward or sideways: {wrong}"


def test_every_service_module_lives_in_a_room() -> None:
    services = PACKAGE / "services"
    loose = {p.name for p in services.glob("*.py")} - {"__init__.py", "runtime.py"}
    assert not loose, f"services/ modules outside a room: {sorted(loose)}"
    rooms = {p.name for p in services.iterdir() if p.is_dir() and p.name != "__pycache__"}
    assert rooms == ROOMS, f"rooms changed: {sorted(rooms ^ ROOMS)} (update ROOMS and docs)"


def test_no_hand_written_c_beside_the_python() -> None:
    assert not list(PACKAGE.rglob("*.c")), "one implementation: compile the typed Python"


# modules that are data tables (rules and catalogues as literals), allowed to be long
DATA_TABLES = {"wire/bounce_rules.py", "wire/reply_catalogue.py"}
MAX_LINES = 600


def test_modules_stay_short() -> None:
    long = {str(p.relative_to(PACKAGE)): n for p in _modules()
            if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_LINES}
    assert set(long) <= DATA_TABLES, f"split these (over {MAX_LINES} lines): {long}"
