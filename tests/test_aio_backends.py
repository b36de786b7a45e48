"""The backends' private primitives that spread.aio is built on behave alike:
one table of calls (the non-blocking sends and requests, finishing and
giving up a partly written message, the service check, the descriptor)
runs once on the Cython and once on the cffi backend, each in a process of
its own, and each call must give the same result, or the same exception
type and text (test_differential.py does this for the public calls).

A row that needs a full socket gets one deterministically: the daemon is
told to stop reading the sender's requests (pause_session) before it sends.
"""

from __future__ import annotations

import base64
import os
import pickle
import subprocess
import sys

import pytest

from spread.testing import EmbeddedDaemon
from test_differential import BODY_LIMIT, outcome
from test_differential import Env as TableEnv

BACKENDS = ("cython", "cffi")
AGREED, FIFO, REG_MEMB_MESS, SELF_DISCARD = 0x10, 0x04, 0x1000, 0x40
WOULD_BLOCK, PARTIAL = -1001, -1002
BIG = bytes(range(256)) * 256  # 64 KB: a few fill the socket

pytestmark = [pytest.mark.filterwarnings("error"), pytest.mark.timeout(120)]


class Env(TableEnv):
    """What a row may use: test_differential's (spread as core, the daemon,
    mailboxes made on demand), and the daemon's controls."""

    def __init__(self, core, address, control):
        super().__init__(core, address)
        self.control = control

    def new(self, **kwargs):
        return self.connect(self.address, "", **kwargs)


def _mcast(*args):
    return lambda e: e.mbox._multicast_nowait(*args)


def _mgroup(*args):
    return lambda e: e.mbox._multigroup_multicast_nowait(*args)


def _closed(method, *args):
    return lambda e: getattr(e.closed_mbox(), method)(*args)


def _joined_round_trip(e):
    """join, multicast, multigroup and leave without waiting, then what a
    member receives: the same messages and notices on both backends."""
    m = e.new()
    group = e.group.encode()
    out = [m._request_nowait(group, True)]
    out.append(type(m.receive()).__name__)  # the join notice
    out.append(m._multicast_nowait(AGREED, e.group, b"abc", 5))
    out.append(m._multicast_nowait(AGREED, e.group, "h\u00e9", -3))
    out.append(m._multigroup_multicast_nowait(AGREED, [e.group], memoryview(b"xyz")[1:], 6))
    out.append(m._multicast_nowait(AGREED | SELF_DISCARD, e.group, b"not to me", 7))
    out.append(m._multicast_nowait(AGREED, e.group, bytearray(b"last"), 8))
    for _ in range(4):
        msg = m.receive()
        out.append((msg.message, msg.msg_type, msg.groups == (e.group,)))
    out.append(m._request_nowait(group, False))
    out.append(type(m.receive()).__name__)  # the leave notice
    return out


def _fill(e, payload=BIG):
    """A sender whose requests the daemon does not read, sent to until a
    message goes out partly (SPX_PARTIAL). [results before], sender, receiver."""
    rx = e.new()
    rx.join(e.group)
    rx.receive()
    tx = e.new(membership=0)
    e.control.pause_session(tx.private_group)
    results = []
    while True:
        r = tx._multicast_nowait(FIFO, e.group, payload, len(results))
        if r == WOULD_BLOCK:
            # The buffer filled exactly at a message's end: let the daemon
            # read a little, and fill it again until one goes out partly.
            e.control.resume_session(tx.private_group)
            e.control.pause_session(tx.private_group)
            continue
        results.append(r)
        if r == PARTIAL:
            return results, tx, rx
        assert r == len(payload) and len(results) < 5000, r


def _partial_then_finish(e):
    results, tx, rx = _fill(e)
    out = [results[-1], all(r == len(BIG) for r in results[:-1])]
    # While the library holds the rest, nothing else can start:
    out.append(tx._multicast_nowait(FIFO, e.group, b"x"))
    out.append(tx._multigroup_multicast_nowait(FIFO, [e.group], b"x"))
    out.append(tx._request_nowait(b"other", True))
    out.append(tx._finish_send_nowait())  # the daemon still reads nothing
    e.control.resume_session(tx.private_group)
    while (r := tx._finish_send_nowait()) == PARTIAL:
        pass
    out.append(r)
    out.append(tx._multicast_nowait(FIFO, e.group, b"after", -2))
    got = [rx.receive() for _ in range(len(results) + 1)]
    # (the partial message's msg_type is its place in the fill: how many fit
    # in the buffer first depends on the machine, not on the backend)
    partial, after = got[-2:]
    out.append(
        [
            (partial.msg_type == len(results) - 1, len(partial.message)),
            (after.msg_type, after.message),
        ]
    )
    out.append(all(g.message == BIG for g in got[:-1]))
    return out


def _partial_then_abort(e):
    results, tx, _ = _fill(e)
    out = [results[-1], tx._abort_send(), tx._abort_send()]
    for call in (
        lambda: tx._multicast_nowait(FIFO, e.group, b"x"),
        lambda: tx._multigroup_multicast_nowait(FIFO, [e.group], b"x"),
        lambda: tx._request_nowait(b"g", True),
        lambda: tx.multicast(FIFO, e.group, b"x"),
        tx._finish_send_nowait,
    ):
        try:
            out.append(("returned", call()))
        except Exception as exc:  # the exception is the outcome compared
            out.append(("raised", type(exc).__qualname__, str(exc)))
    e.control.resume_session(tx.private_group)
    return out


def _nowait_flag(e):
    return e.mbox._NOWAIT_SENDS


CALLS = {
    "flag": _nowait_flag,
    "descriptor": lambda e: type(e.mbox._descriptor).__name__,
    "round trip": _joined_round_trip,
    "partial then finish": _partial_then_finish,
    "partial then abort": _partial_then_abort,
    # _multicast_nowait: the hot sends' checks, in their order
    "mcast ok": _mcast(AGREED, "g", b"x"),
    "mcast bytes group": _mcast(AGREED, b"g", b"xy"),
    "mcast empty data": _mcast(AGREED, "g", b""),
    "mcast at limit": _mcast(AGREED, "g", bytes(BODY_LIMIT)),
    "mcast over limit": _mcast(AGREED, "g", bytes(BODY_LIMIT + 1)),
    "mcast service float": _mcast(1.5, "g", b"x"),
    "mcast service str": _mcast("16", "g", b"x"),
    "mcast service none": _mcast(0, "g", b"x"),
    "mcast two services": _mcast(AGREED | FIFO, "g", b"x"),
    "mcast membership bits": _mcast(AGREED | REG_MEMB_MESS, "g", b"x"),
    "mcast service huge": _mcast(2**40, "g", b"x"),
    "mcast group int": _mcast(AGREED, 5, b"x"),
    "mcast group empty": _mcast(AGREED, "", b"x"),
    "mcast group 32": _mcast(AGREED, "g" * 32, b"x"),
    "mcast group NUL": _mcast(AGREED, "g\0", b"x"),
    "mcast msg_type float": _mcast(AGREED, "g", b"x", 2.5),
    "mcast msg_type 65536": _mcast(AGREED, "g", b"x", 65536),
    "mcast msg_type -32769": _mcast(AGREED, "g", b"x", -32769),
    "mcast data int": _mcast(AGREED, "g", 5),
    "mcast data None": _mcast(AGREED, "g", None),
    # _multigroup_multicast_nowait
    "mgroup ok": _mgroup(AGREED, ["g1", b"g2"], b"x", 3),
    "mgroup empty": _mgroup(AGREED, [], b"x"),
    "mgroup single str": _mgroup(AGREED, "g1", b"x"),
    "mgroup 100": _mgroup(AGREED, [f"g{i}" for i in range(100)], b"x"),
    "mgroup 101": _mgroup(AGREED, [f"g{i}" for i in range(101)], b"x"),
    "mgroup member int": _mgroup(AGREED, ["g", 5], b"x"),
    "mgroup over limit": _mgroup(AGREED, ["g1", "g2"], bytes(BODY_LIMIT - 31)),
    "mgroup service float": _mgroup(2.0, ["g"], b"x"),
    "mgroup membership bits": _mgroup(AGREED | REG_MEMB_MESS, ["g"], b"x"),
    "mgroup msg_type big": _mgroup(AGREED, ["g"], b"x", 70000),
    "mgroup data int": _mgroup(AGREED, ["g"], 5),
    # _request_nowait (the writer passes checked group bytes)
    "join ok": lambda e: e.mbox._request_nowait(b"jg", True),
    "leave not joined": lambda e: e.mbox._request_nowait(b"jg2", False),
    # nothing held
    "finish with nothing held": lambda e: e.mbox._finish_send_nowait(),
    "abort with nothing held": lambda e: e.mbox._abort_send(),
    # a closed mailbox
    "closed mcast": _closed("_multicast_nowait", AGREED, "g", b"x"),
    "closed mgroup": _closed("_multigroup_multicast_nowait", AGREED, ["g"], b"x"),
    "closed join": _closed("_request_nowait", b"g", True),
    "closed leave": _closed("_request_nowait", b"g", False),
    "closed finish": _closed("_finish_send_nowait"),
    "closed abort": _closed("_abort_send"),
    "closed descriptor": lambda e: type(e.closed_mbox()._descriptor).__name__,
    # _check_service
    "service ok": lambda e: e.core.Mailbox._check_service(AGREED | SELF_DISCARD),
    "service two": lambda e: e.core.Mailbox._check_service(AGREED | FIFO),
    "service none": lambda e: e.core.Mailbox._check_service(0),
    "service membership": lambda e: e.core.Mailbox._check_service(FIFO | REG_MEMB_MESS),
    "service float": lambda e: e.core.Mailbox._check_service(1.0),
    "service str": lambda e: e.core.Mailbox._check_service("16"),
    "service bool": lambda e: e.core.Mailbox._check_service(True),
    "service huge": lambda e: e.core.Mailbox._check_service(2**40),
    "service negative": lambda e: e.core.Mailbox._check_service(-1),
}

# Rows whose result is pinned here too (agreeing on a wrong answer is no pass).
PINNED = {
    "flag": True,
    "descriptor": "int",
    "round trip": [
        0,
        "MembershipMsg",
        3,
        3,
        2,
        9,
        4,
        (b"abc", 5, True),
        (b"h\xc3\xa9", -3, True),
        (b"yz", 6, True),
        (b"last", 8, True),
        0,
        "MembershipMsg",
    ],
    "mcast ok": 1,
    "mcast at limit": BODY_LIMIT,
    "mgroup ok": 1,
    "mgroup 100": 1,
    "join ok": 0,
    "abort with nothing held": None,
    "closed abort": None,
    "service ok": AGREED | SELF_DISCARD,
}
RAISES = {
    "mcast over limit": "MessageTooLong",
    "mcast two services": "IllegalService",
    "mcast group empty": "IllegalGroup",
    "mgroup 101": "ValueError",
    "service two": "IllegalService",
    "finish with nothing held": "IllegalSession",
    "closed mcast": "IllegalSession",
    "closed join": "IllegalSession",
    "closed finish": "IllegalSession",
}


def run_table(address: str, control_address: str) -> dict:
    """Every row through this process's `import spread`."""
    import spread
    from spread.daemon._control import DaemonControls, connect_control

    class Controls(DaemonControls):
        def __init__(self) -> None:
            self._channel = connect_control(control_address)

        def _control_channel(self):
            return self._channel

    control = Controls()
    env = Env(spread, address, control)
    try:
        return {name: outcome(env, fn) for name, fn in CALLS.items()}
    finally:
        env.close()
        control._channel.close()


EXTERNAL = bool(os.environ.get("SPREAD_LIBRARY"))


@pytest.fixture(scope="module")
def outcomes():
    with EmbeddedDaemon() as daemon:  # (its controls fill a socket on demand)
        return {backend: _table(daemon, backend) for backend in BACKENDS}


def _table(daemon, backend: str) -> dict:
    proc = subprocess.run(
        [sys.executable, __file__, daemon.address, daemon.control_address],
        env=dict(os.environ, SPREAD_BACKEND=backend),
        capture_output=True,
        timeout=100,
    )
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")
    return pickle.loads(base64.b64decode(proc.stdout))


@pytest.mark.skipif(EXTERNAL, reason="over an external library cffi has no non-blocking sends")
@pytest.mark.parametrize("call", list(CALLS))
def test_backends_agree(outcomes, call):
    assert outcomes["cython"][call] == outcomes["cffi"][call]


@pytest.mark.skipif(EXTERNAL, reason="over an external library cffi has no non-blocking sends")
def test_the_outcomes_are_the_right_ones(outcomes):
    got = outcomes["cython"]
    for name, value in PINNED.items():
        assert got[name] == ("returned", value), (name, got[name])
    for name, error in RAISES.items():
        assert got[name][0] == "raised" and got[name][2] == error, (name, got[name])
    status, finish = got["partial then finish"]
    assert status == "returned", finish
    partial, whole, *during, still, done, after, tail, intact = finish
    assert (partial, whole) == (PARTIAL, True)
    assert during == [WOULD_BLOCK] * 3  # nothing starts while the library holds a rest
    assert still == PARTIAL  # the daemon still reads nothing
    assert (done, after, intact) == (len(BIG), 5, True)
    assert tail == [(True, len(BIG)), (-2, b"after")]  # the finished one, then the next
    status, abort = got["partial then abort"]
    assert status == "returned" and abort[:3] == [PARTIAL, None, None], abort
    # the connection is failed: every later send says so (a request: its code)
    assert [r[0] for r in abort[3:]] == ["raised", "raised", "returned", "raised", "raised"]
    assert abort[5] == ("returned", -18) and abort[6][1] == "NetErrorOnSession"


if __name__ == "__main__":  # the table in this process, for the fixture above
    sys.stdout.write(base64.b64encode(pickle.dumps(run_table(sys.argv[1], sys.argv[2]))).decode())
