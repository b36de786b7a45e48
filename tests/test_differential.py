"""The two backends behave alike: one table of calls (valid, invalid and
edge inputs) runs through `import spread` once on the Cython and once on
the cffi backend (each in a process of its own, as a user gets it), and
each call must give the same result, or the same exception type and text.
The hot paths' checks are written in each backend; this holds them to one
behaviour."""

from __future__ import annotations

import array
import base64
import math
import os
import pickle
import subprocess
import sys
import uuid

import pytest

# The Cython backend beside the cffi one: both exist on CPython only.
pytest.importorskip("spread._core", reason="the Cython backend is built on CPython only")

BACKENDS = ("cython", "cffi")


class Env:
    """What a call in the table may use: the spread module, the daemon's
    address, a connected mailbox (made on first use) and a group name."""

    def __init__(self, core, address):
        self.core = core
        self.address = address
        self.group = "d" + uuid.uuid4().hex[:12]
        self._mbox = None
        self.opened = []

    @property
    def mbox(self):
        if self._mbox is None:
            self._mbox = self.connect(self.address, "")
        return self._mbox

    def connect(self, *args, **kwargs):
        m = self.core.connect(*args, **kwargs)
        self.opened.append(m)
        return m

    def closed_mbox(self):
        m = self.connect(self.address, "")
        m.disconnect()
        return m

    def close(self):
        for m in self.opened:
            m.disconnect()


def _mcast(*args):
    return lambda e: e.mbox.multicast(*args)


def _mgroup(*args, **kwargs):
    return lambda e: e.mbox.multigroup_multicast(*args, **kwargs)


def _connect(*args, **kwargs):
    return lambda e: e.connect(e.address, *args, **kwargs).private_group[:1]


def _connect_to(daemon, **kwargs):
    return lambda e: e.connect(daemon, **kwargs)


def _own_message(e, data, msg_type):
    m = e.connect(e.address, "", membership=0)
    m.join(e.group)
    m.multicast(AGREED, e.group, data, msg_type)
    msg = m.receive()
    return (
        type(msg).__name__,
        msg.sender == m.private_group,
        msg.groups == (e.group,),
        msg.message,
        msg.msg_type,
        msg.service_type,
        msg.endian,
    )


def _receiver(**options):
    def call(e):
        m = e.connect(e.address, "")
        rx = m.start_receiver(**options)
        rx.close()
        return type(rx).__name__

    return call


def _rx_call(method, *args, **kwargs):
    def call(e):
        m = e.connect(e.address, "", membership=0)
        rx = m.start_receiver()
        try:
            return getattr(rx, method)(*args, **kwargs)
        finally:
            rx.close()

    return call


def _second_receiver(e):
    m = e.connect(e.address, "")
    m.start_receiver()
    return m.start_receiver()


def _after_close(method, *args):
    return lambda e: getattr(e.closed_mbox(), method)(*args)


AGREED, FIFO, RELIABLE, SELF_DISCARD = 0x10, 0x04, 0x02, 0x40
REG_MEMB_MESS, CAUSED_BY_JOIN, REJECT_MESS = 0x1000, 0x100, 0x400000
BODY_LIMIT = 143551 - 32  # the largest payload to one group

CALLS = {
    # connect(): the address
    "connect ok": _connect("a"),
    "connect bytes address": lambda e: e.connect(e.address.encode(), "b").private_group[:1],
    "connect int address": _connect_to(4803),
    "connect None address": _connect_to(None),
    "connect empty address": _connect_to(""),
    "connect host:port form": _connect_to("localhost:4803"),
    "connect port out of range": _connect_to("99999"),
    "connect port zero": _connect_to("0"),
    "connect address with space": _connect_to("4803 @localhost"),
    "connect address NUL": _connect_to("48\x0003"),
    "connect no host after @": _connect_to("4803@"),
    # connect(): the other arguments
    "connect name too long": _connect("x" * 11),
    "connect name of 10": _connect("y" * 10),
    "connect name int": _connect(5),
    "connect name NUL": _connect("a\0b"),
    "connect name None": _connect(None),
    "connect priority float": _connect("", 1.5),
    "connect priority str": _connect("", "1"),
    "connect priority huge": _connect("", 2**40),
    "connect membership str": _connect("", 0, "yes"),
    "connect membership float": _connect("", 0, 1.0),
    "connect membership bool": _connect("", 0, False),
    "connect timeout str": _connect("", timeout="1"),
    "connect timeout negative": _connect("", timeout=-1),
    "connect timeout zero": _connect("", timeout=0),
    "connect timeout nan": _connect("", timeout=math.nan),
    "connect timeout bool": _connect("", timeout=True),
    "connect timeout int": _connect("", timeout=5),
    "connect socket_buffer None": _connect("", socket_buffer=None),
    "connect socket_buffer 0": _connect("", socket_buffer=0),
    "connect socket_buffer fixed": _connect("", socket_buffer=65536),
    "connect socket_buffer smallest": _connect("", socket_buffer=4096),
    "connect socket_buffer too small": _connect("", socket_buffer=4095),
    "connect socket_buffer negative": _connect("", socket_buffer=-1),
    "connect socket_buffer huge": _connect("", socket_buffer=2**31),
    "connect socket_buffer float": _connect("", socket_buffer=65536.0),
    "connect socket_buffer bool": _connect("", socket_buffer=True),
    "connect socket_buffer str": _connect("", socket_buffer="65536"),
    "connect bytes_names str": _connect("", bytes_names="yes"),
    "connect unknown keyword": _connect("", colour="red"),
    # join / leave
    "join ok": lambda e: e.mbox.join(e.group),
    "join bytes": lambda e: e.mbox.join(e.group.encode()),
    "join bytearray": lambda e: e.mbox.join(bytearray(e.group.encode())),
    "join int": lambda e: e.mbox.join(5),
    "join None": lambda e: e.mbox.join(None),
    "join empty": lambda e: e.mbox.join(""),
    "join too long": lambda e: e.mbox.join("g" * 40),
    "join of 31": lambda e: e.mbox.join("h" * 31),
    "join NUL": lambda e: e.mbox.join("a\0b"),
    "leave too long": lambda e: e.mbox.leave("g" * 32),
    "leave int": lambda e: e.mbox.leave(7),
    # multicast: service type
    "mcast ok": _mcast(AGREED, "g", b"x"),
    "mcast str data": _mcast(AGREED, "g", "h\u00e9"),
    "mcast service float": _mcast(1.5, "g", b"x"),
    "mcast service str": _mcast("16", "g", b"x"),
    "mcast service none": _mcast(0, "g", b"x"),
    "mcast two services": _mcast(AGREED | FIFO, "g", b"x"),
    "mcast membership bits": _mcast(AGREED | REG_MEMB_MESS, "g", b"x"),
    "mcast cause bits": _mcast(AGREED | CAUSED_BY_JOIN, "g", b"x"),
    "mcast reject bit": _mcast(AGREED | REJECT_MESS, "g", b"x"),
    "mcast self discard": _mcast(AGREED | SELF_DISCARD, "g", b"x"),
    "mcast service huge": _mcast(2**40, "g", b"x"),
    "mcast service negative": _mcast(-1, "g", b"x"),
    # multicast: msg_type
    "mcast msg_type float": _mcast(AGREED, "g", b"x", 2.9),
    "mcast msg_type str": _mcast(AGREED, "g", b"x", "3"),
    "mcast msg_type 65535": _mcast(AGREED, "g", b"x", 65535),
    "mcast msg_type 65536": _mcast(AGREED, "g", b"x", 65536),
    "mcast msg_type -32768": _mcast(AGREED, "g", b"x", -32768),
    "mcast msg_type -32769": _mcast(AGREED, "g", b"x", -32769),
    "mcast msg_type huge": _mcast(AGREED, "g", b"x", 2**70),
    # multicast: group and data
    "mcast group int": _mcast(AGREED, 5, b"x"),
    "mcast group empty": _mcast(AGREED, "", b"x"),
    "mcast group 32": _mcast(AGREED, "g" * 32, b"x"),
    "mcast group NUL": _mcast(AGREED, "g\0", b"x"),
    "mcast data int": _mcast(AGREED, "g", 5),
    "mcast data None": _mcast(AGREED, "g", None),
    "mcast data list": _mcast(AGREED, "g", [1, 2]),
    "mcast data memoryview": _mcast(AGREED, "g", memoryview(b"abcdef")[1:4]),
    "mcast data bytearray": _mcast(AGREED, "g", bytearray(b"xyz")),
    "mcast data array": _mcast(AGREED, "g", array.array("i", [1, 2, 3])),
    "mcast data empty": _mcast(AGREED, "g", b""),
    "mcast data at limit": _mcast(AGREED, "g", bytes(BODY_LIMIT)),
    "mcast data over limit": _mcast(AGREED, "g", bytes(BODY_LIMIT + 1)),
    # multigroup_multicast
    "mgroup ok": _mgroup(AGREED, ["g1", "g2"], b"x"),
    "mgroup tuple of bytes": _mgroup(AGREED, (b"g1", "g2"), b"x", 3),
    "mgroup generator": lambda e: e.mbox.multigroup_multicast(AGREED, iter(["g1"]), b"x"),
    "mgroup single str": _mgroup(AGREED, "g1", b"x"),
    "mgroup single bytes": _mgroup(AGREED, b"g1", b"x"),
    "mgroup empty": _mgroup(AGREED, [], b"x"),
    "mgroup 100": _mgroup(AGREED, [f"g{i}" for i in range(100)], b"x"),
    "mgroup 101": _mgroup(AGREED, [f"g{i}" for i in range(101)], b"x"),
    "mgroup member int": _mgroup(AGREED, ["g", 5], b"x"),
    "mgroup member too long": _mgroup(AGREED, ["g", "x" * 32], b"x"),
    "mgroup not iterable": _mgroup(AGREED, 5, b"x"),
    "mgroup msg_type float": _mgroup(AGREED, ["g"], b"x", 1.5),
    "mgroup msg_type big": _mgroup(AGREED, ["g"], b"x", 70000),
    "mgroup service float": _mgroup(2.0, ["g"], b"x"),
    "mgroup membership bits": _mgroup(AGREED | REG_MEMB_MESS, ["g"], b"x"),
    "mgroup data int": _mgroup(AGREED, ["g"], 5),
    "mgroup over limit": _mgroup(AGREED, ["g1", "g2"], bytes(BODY_LIMIT - 31)),
    # receiving
    "receive own": lambda e: _own_message(e, b"payload", 7),
    "receive own negative type": lambda e: _own_message(e, b"", -2),
    "receive own high type": lambda e: _own_message(e, "text", 40000),
    "poll": lambda e: type(e.mbox.poll()).__name__,
    "fileno": lambda e: type(e.mbox.fileno()).__name__,
    # after disconnect
    "closed disconnect again": lambda e: e.closed_mbox().disconnect(),
    "closed fileno": lambda e: e.closed_mbox().fileno(),
    "closed join": _after_close("join", "g"),
    "closed leave": _after_close("leave", "g"),
    "closed multicast": _after_close("multicast", AGREED, "g", b"x"),
    "closed mgroup": _after_close("multigroup_multicast", AGREED, ["g"], b"x"),
    "closed receive": _after_close("receive"),
    "closed poll": _after_close("poll"),
    "closed start_receiver": _after_close("start_receiver"),
    "closed flag": lambda e: e.closed_mbox().closed,
    # the receiver
    "receiver ok": _receiver(),
    "receiver bounded": _receiver(max_backlog_bytes=1 << 20, on_overflow="block"),
    "receiver unknown option": _receiver(colour=1),
    "receiver backlog zero": _receiver(max_backlog_bytes=0),
    "receiver backlog float": _receiver(max_backlog_bytes=1.5),
    "receiver backlog str": _receiver(max_backlog_bytes="1"),
    "receiver overflow bad": _receiver(on_overflow="drop"),
    "receiver of non-mailbox": lambda e: e.core.ThreadedReceiver("mbox"),
    "receiver twice": _second_receiver,
    "rx get_nowait empty": _rx_call("get_nowait"),
    "rx get timeout negative": _rx_call("get", -1),
    "rx get timeout str": _rx_call("get", "1"),
    "rx get timeout nan": _rx_call("get", math.nan),
    "rx get_batch zero": _rx_call("get_batch", 0),
    "rx get_batch float": _rx_call("get_batch", 1.5),
    "rx get_batch str": _rx_call("get_batch", "2"),
    "rx qsize": _rx_call("qsize"),
    # module functions
    "error_text": lambda e: e.core.error_text(-8),
    "error_text unknown": lambda e: e.core.error_text(12345),
    "error_text float": lambda e: e.core.error_text(1.5),
    "version": lambda e: e.core.version(),
    "Mailbox()": lambda e: e.core.Mailbox(),
}


def outcome(env, call):
    try:
        result = call(env)
    except Exception as exc:  # the exception is the outcome compared
        return ("raised", type(exc).__module__, type(exc).__qualname__, str(exc))
    return ("returned", result)


def run_table(address: str) -> dict:
    """Every call of the table through this process's `import spread`."""
    import spread

    env = Env(spread, address)
    try:
        return {call: outcome(env, fn) for call, fn in CALLS.items()}
    finally:
        env.close()


@pytest.fixture(scope="module")
def outcomes(spread_daemon):
    results = {}
    for backend in BACKENDS:
        proc = subprocess.run(
            [sys.executable, __file__, spread_daemon.address],
            env=dict(os.environ, SPREAD_BACKEND=backend),
            capture_output=True,
            timeout=120,
        )
        assert proc.returncode == 0, proc.stderr.decode(errors="replace")
        results[backend] = pickle.loads(base64.b64decode(proc.stdout))
    return results


def test_the_table_is_large_enough():
    assert len(CALLS) >= 50


# Over an external library (SPREAD_LIBRARY) the cffi backend cannot set
# socket buffers: there it must refuse a size with a ValueError instead.
EXTERNAL = bool(os.environ.get("SPREAD_LIBRARY"))
NEEDS_OUR_LIBRARY = {
    "connect socket_buffer 0",
    "connect socket_buffer fixed",
    "connect socket_buffer smallest",
}


@pytest.mark.parametrize("call", list(CALLS))
def test_backends_agree(outcomes, call):
    if EXTERNAL and call in NEEDS_OUR_LIBRARY:
        assert outcomes["cffi"][call][:3] == ("raised", "builtins", "ValueError")
        return
    assert outcomes["cython"][call] == outcomes["cffi"][call]


if __name__ == "__main__":  # the table in this process, for the fixture above
    sys.stdout.write(base64.b64encode(pickle.dumps(run_table(sys.argv[1]))).decode())
