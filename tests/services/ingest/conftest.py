"""A log directory, a store and an in-process ingester that tests drive step by step.

``Harness`` writes the log the way writers and rotators do (append, partial line,
rename, copytruncate, truncate, delete + create, ``postfix logrotate``'s rename + gzip),
runs the real ``Ingestd`` with ``run_once`` and "kills" it by dropping it without any
commit (its descriptors are closed, as the kernel would). ``standalone(i)`` is one
self-contained delivery line whose tenant only the decision log knows, so each line is
one event (``stored_ids`` reads them back).
"""

from __future__ import annotations

import gzip
import os
import re
import shutil
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from poolwarden.adapters import schema
from poolwarden.adapters.sqlstore import SqlStore, open_store
from poolwarden.config.load import LoadedConfig, load_config_text
from poolwarden.core.events import Event, EventKind
from poolwarden.ports import DecisionRow, Store
from poolwarden.services.ingest.ingestd import Ingestd
from tests.adapters.conftest import fresh_pg_database
from tests.services.ingest.loggen import config_toml, default_start, observed, stamp

START = default_start()
_ID = re.compile(r"to=<r(\d+)@")


def read_events(store: Store) -> list[Event]:
    """Every stored event (SQL stores)."""
    assert isinstance(store, SqlStore)
    with store.engine.connect() as conn:
        rows = conn.execute(select(schema.events)).mappings().all()
    return [Event(key=r["key"], time=r["time"], kind=EventKind(r["kind"]), tenant=r["tenant"],
                  provider=r["provider"], ip=r["ip"], sending_domain=r["sending_domain"],
                  recipient_domain=r["recipient_domain"], reason=r["reason"]) for r in rows]


def qid(i: int) -> str:
    """A short Postfix queue id (upper-case hex) of its own for line ``i``."""
    return f"{0xA0000000 + i:X}"


def standalone(i: int, *, host: str = "mx1") -> str:
    """Delivery line number ``i``: its own queue id, time and recipient (``r<i>@…``)."""
    return (f"{stamp(START + i, 'iso')} {host} postfix/pw-127-0-0-22/smtp[77]: {qid(i)}: "
            f"to=<r{i}@gmail.com>, relay=gmail-smtp-in.l.google.com[192.0.2.1]:25, delay=1, "
            f"delays=0/0/0.5/0.5, dsn=2.0.0, status=sent (250 2.0.0 OK line {i})\n")


def standalone_decisions(ids: range, *, host: str = "mx1") -> list[DecisionRow]:
    return [DecisionRow(at=START + i - 1, node=host, instance=f"inst{i}", tenant="umbrella",
                        recipient=f"r{i}@gmail.com", action="FILTER pw-127-0-0-22:",
                        ip="127.0.0.22", pool=None, rule="dedicated", snapshot_version=1,
                        queue_id=qid(i)) for i in ids]


class Harness:
    def __init__(self, root: Path, url: str, **options: object) -> None:
        self.dir = root / "log"
        self.dir.mkdir(exist_ok=True)
        self.log = self.dir / "mail.log"
        self.url = url
        self.config: LoadedConfig = load_config_text(config_toml(url), file=str(root / "pw.toml"))
        self.store = open_store(url)
        self.options = {"rotate_wait": 0.0, "batch_lines": 50, **options}
        self.ingestd: Ingestd | None = None
        self.rotation = 0
        self.gaps: list[object] = []

    # -- the ingester ---------------------------------------------------------

    def start(self) -> Ingestd:
        if self.ingestd is None:
            self.ingestd = Ingestd(self.config, self.store, [self.log],  # type: ignore[arg-type]
                                   **self.options)
        return self.ingestd

    def poll(self) -> Ingestd:
        ingestd = self.start()
        ingestd.run_once()
        return ingestd

    def kill(self) -> None:
        """kill -9: nothing more is committed; the descriptors go away."""
        if self.ingestd is not None:
            self.gaps.extend(self.ingestd.metrics.gap_records)
            self.ingestd.close()
            self.ingestd = None

    def all_gaps(self) -> list[object]:
        return [*self.gaps, *(self.ingestd.metrics.gap_records if self.ingestd else ())]

    def close(self) -> None:
        self.kill()
        self.store.close()

    # -- writing and rotating ---------------------------------------------------

    def write(self, text: str, path: Path | None = None) -> None:
        with open(path or self.log, "a", encoding="utf-8") as f:
            f.write(text)

    def rename_rotate(self, create: bool = True) -> Path:
        """logrotate ``create``: mail.log -> mail.log.N (N grows), then a new mail.log."""
        self.rotation += 1
        target = self.dir / f"mail.log.{self.rotation}"
        os.rename(self.log, target)
        if create:
            self.log.touch()
        return target

    def gzip_rotated(self, path: Path) -> Path:
        """``postfix logrotate``'s compressor: path -> path.gz (mtime kept), path removed."""
        target = path.with_name(path.name + ".gz")
        with open(path, "rb") as src, gzip.open(target, "wb") as dst:
            shutil.copyfileobj(src, dst)
        shutil.copystat(path, target)
        path.unlink()
        return target

    def postfix_logrotate(self) -> Path:
        rotated = self.rename_rotate()
        return self.gzip_rotated(rotated)

    def copy_for_truncate(self) -> Path:
        self.rotation += 1
        target = self.dir / f"mail.log.{self.rotation}"
        shutil.copyfile(self.log, target)
        return target

    def truncate(self, size: int = 0) -> None:
        os.truncate(self.log, size)

    # -- what was stored ----------------------------------------------------------

    def events(self) -> list[Event]:
        return read_events(self.store)

    def stored_ids(self) -> Counter[int]:
        """How many events each standalone line number produced (mutually unique times)."""
        return Counter(int(e.time) - START for e in self.events())

    def observed(self) -> Counter[object]:
        return observed(self.events())  # type: ignore[return-value]


@pytest.fixture
def harness(tmp_path: Path) -> Iterator[Harness]:
    h = Harness(tmp_path, f"sqlite:///{tmp_path / 'pw.db'}")
    h.store.add_decisions(standalone_decisions(range(0, 3000)))
    yield h
    h.close()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'pw.db'}"
    else:
        with fresh_pg_database() as url:
            yield url
