"""The queue mover's steps against a scripted Postfix (the real one is in
``tests/e2e/test_blocklist_requeue.py``): only deferred mail routed to the IPs is re-queued,
through pickup's filter, the deferred queue named; every step is idempotent, so a run cut
short is finished by the next; the pipe helper submits each recipient once and never turns
a refusal into a bounce."""

from __future__ import annotations

import argparse
import json
import socket
import threading
from pathlib import Path

import pytest

from poolwarden.adapters import reroute_pipe
from poolwarden.adapters.postfix_reroute import PICKUP_FILTER, QueueMover
from poolwarden.adapters.postqueue import PostfixToolError


class FakePostfix:
    """postconf/postqueue/postcat/postsuper/postkick/postfix, as state."""

    def __init__(self, queue: dict[str, tuple[str, str]]) -> None:
        self.queue = queue  # id -> (queue name, content_filter transport)
        self.defer: list[str] = ["smtp-legacy"]
        self.pickup_filter = ""
        self.calls: list[tuple[str, ...]] = []
        self.reroute_service = True
        self.reloaded_with_filter = False

    def __call__(self, name: str, config_dir, *args: str, stdin: str | None = None) -> str:
        self.calls.append((name, *args))
        if name == "postconf" and args == ("-h", "defer_transports"):
            return " ".join(self.defer)
        if name == "postconf" and args[0] == "-e":
            self.defer = args[1].split("=", 1)[1].split()
            return ""
        if name == "postconf" and args == ("-M", "pw-reroute/unix"):
            return "pw-reroute unix - n n - - pipe\n" if self.reroute_service else ""
        if name == "postconf" and args == ("-P", "pickup/unix/content_filter"):
            return (f"pickup/unix/content_filter = {self.pickup_filter}\n"
                    if self.pickup_filter else "")
        if name == "postconf" and args[0] == "-P":
            self.pickup_filter = args[1].split("=", 1)[1]
            return ""
        if name == "postconf" and args[0] == "-PX":
            self.pickup_filter = ""
            return ""
        if name == "postqueue":
            return "".join(json.dumps({"queue_id": q, "queue_name": where}) + "\n"
                           for q, (where, _) in self.queue.items())
        if name == "postcat":
            where, route = self.queue[args[-1]]
            text = "*** ENVELOPE RECORDS ***\n"
            if route.startswith("log_ident="):  # re-queued earlier: no route, a log_ident
                return text + f"named_attribute: {route}\n"
            return text + f"content_filter: {route}:\n"
        if name == "postsuper":
            assert args == ("-r", "-", "deferred")
            assert stdin is not None
            for q in stdin.split():
                assert self.queue[q][0] == "deferred"  # never the active queue
                assert self.pickup_filter == PICKUP_FILTER  # the filter is set first
                assert self.reloaded_with_filter  # and pickup runs with it
                self.queue[f"new-{q}"] = ("maildrop", "")
                del self.queue[q]
            return ""
        if name == "postfix" and args == ("reload",):
            self.reloaded_with_filter = self.pickup_filter == PICKUP_FILTER
            return ""
        if name == "postkick":  # pickup takes the maildrop: copies go to pw-reroute
            for q, (where, _) in list(self.queue.items()):
                if where == "maildrop":
                    self.queue[q] = ("active", "pw-reroute")
            return ""
        return ""


QUEUE = {"A1": ("deferred", "pw-127-0-0-21"), "A2": ("deferred", "pw-127-0-0-21"),
         "B1": ("deferred", "pw-127-0-0-13"), "C1": ("active", "pw-127-0-0-21")}


@pytest.fixture(autouse=True)
def _no_settle(monkeypatch):
    monkeypatch.setattr("poolwarden.adapters.postfix_reroute.RELOAD_SETTLE", 0.0)


def test_moves_only_deferred_mail_routed_to_the_ips():
    fake = FakePostfix(dict(QUEUE))
    result = QueueMover(None, tool=fake, settle_timeout=1).sync({"127.0.0.21"})
    assert sorted(result.moved) == ["A1", "A2"]
    assert fake.defer == ["smtp-legacy", "pw-127-0-0-21"]  # the operator's entry kept
    assert "B1" in fake.queue and "C1" in fake.queue  # other route; active: untouched
    order = [c[0] for c in fake.calls]
    assert order.index("postsuper") < order.index("postkick")
    assert order.count("postfix") == 1  # one reload: defer list and filter together
    assert fake.pickup_filter == PICKUP_FILTER  # kept while the IP is listed
    assert ("postkick", "public", "qmgr", "I") in fake.calls  # locked files rescanned
    QueueMover(None, tool=fake, settle_timeout=1).sync(set())  # delisted
    assert fake.pickup_filter == "" and fake.defer == ["smtp-legacy"]


def test_second_run_reads_each_other_message_once_and_moves_nothing():
    fake = FakePostfix(dict(QUEUE))
    mover = QueueMover(None, tool=fake, settle_timeout=1)
    mover.sync({"127.0.0.21"})
    fake.calls.clear()
    assert mover.sync({"127.0.0.21"}).moved == []
    assert [c for c in fake.calls if c[0] == "postcat"] == []  # B1 remembered
    assert not any(c[0] in ("postsuper", "postfix") for c in fake.calls)  # no reload


def test_interrupted_run_is_finished_by_the_next():
    fake = FakePostfix(dict(QUEUE))
    fake.pickup_filter = PICKUP_FILTER  # killed after setting the filter...
    fake.queue["M1"] = ("maildrop", "")  # ...and after a re-queue, before its postkick
    fake.defer = ["pw-127-0-0-21"]
    result = QueueMover(None, tool=fake, settle_timeout=2).sync(set())
    assert ("postkick", "public", "pickup", "W") in fake.calls  # not 60 s of pickup sleep
    assert result.waiting == 0 and fake.queue["M1"] == ("active", "pw-reroute")
    assert fake.pickup_filter == ""  # removed once the maildrop is empty
    assert fake.defer == []  # the IP is usable again: its transport delivers again


def test_missing_reroute_service_is_an_error_not_a_stuck_queue():
    fake = FakePostfix(dict(QUEUE))
    fake.reroute_service = False
    with pytest.raises(PostfixToolError, match="pw-reroute"):
        QueueMover(None, tool=fake).sync({"127.0.0.21"})
    assert not any(c[0] == "postsuper" for c in fake.calls)


class Smtpd:
    """A tiny loopback SMTP server answering DATA with ``code``; counts messages."""

    def __init__(self, code: int) -> None:
        self.code = code
        self.messages = 0
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen()
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn, conn.makefile("rwb") as f:
                f.write(b"220 t\r\n")
                f.flush()
                data = False
                for line in f:
                    if data:
                        if line == b".\r\n":
                            data = False
                            self.messages += 1
                            f.write(f"{self.code} done\r\n".encode())
                            f.flush()
                        continue
                    verb = line[:4].upper()
                    reply = {b"EHLO": b"250 t", b"XCLI": b"220 ok", b"DATA": b"354 go",
                             b"QUIT": b"221 bye"}.get(verb, b"250 ok")
                    f.write(reply + b"\r\n")
                    f.flush()
                    if verb == b"DATA":
                        data = True
                    if verb == b"QUIT":
                        break


def run_helper(port: int, done: Path) -> int:
    ns = argparse.Namespace(done=str(done), host="127.0.0.1", port=port, timeout=5.0,
                            sender="a@t.example", sasl_username="t", client_address="1.2.3.4",
                            client_helo="h", queue_id="ABC123", recipient="x@gmail.com")
    return reroute_pipe.submit(ns, b"Subject: x\r\n\r\nhi\r\n")


def test_helper_submits_once_and_a_retry_after_success_sends_nothing(tmp_path):
    server = Smtpd(250)
    assert run_helper(server.port, tmp_path) == 0
    assert run_helper(server.port, tmp_path) == 0  # the exit status was lost: retried
    assert server.messages == 1


@pytest.mark.parametrize("code", [451, 550])
def test_helper_turns_every_refusal_into_try_later(tmp_path, code):
    server = Smtpd(code)
    assert run_helper(server.port, tmp_path) == reroute_pipe.EX_TEMPFAIL  # never a bounce
    assert not list(tmp_path.iterdir())  # nothing marked: the next try submits again


def test_helper_without_a_server_tries_later(tmp_path):
    assert run_helper(9, tmp_path) == reroute_pipe.EX_TEMPFAIL


def test_stranded_copies_of_a_killed_run_are_moved_and_pickup_reloaded():
    fake = FakePostfix({"S1": ("deferred", "log_ident=OLD1"),
                        "L1": ("deferred", "log_ident=L1"),  # its own id: a local submission
                        "A1": ("deferred", "pw-127-0-0-21")})
    fake.pickup_filter = PICKUP_FILTER  # written, but the run was killed before the reload
    fake.defer = ["pw-127-0-0-21"]
    result = QueueMover(None, tool=fake, settle_timeout=1).sync({"127.0.0.21"})
    assert sorted(result.moved) == ["A1", "S1"]
    assert "L1" in fake.queue
