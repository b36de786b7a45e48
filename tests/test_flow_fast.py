"""The sending side's hot path (spread/flow/_fast.py): the backend's offer()
in C (Cython: spread/_flow_fast.pxi) and the same in Python, each against
SenderChannel._offer(), the general path, as the reference.

One script of offers (sizes around the batch, count and uvarint
boundaries, valid and invalid types), own deliveries, reports and flushes
drives three channels: on the backend's base, on the Python base, and one
whose offer() is _offer() itself. After every step they must agree on what
offer returned or raised, every frame sent (byte for byte), the stats, and
what is pending."""

from __future__ import annotations

import gc
import sys
import sysconfig
import threading
import types

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from spread._backend import core
from spread.flow import _fast
from spread.flow import _frame as fr
from spread.flow._sender import SenderChannel
from spread.flow._session import Channel

ME, PEER = "#me#h", "#peer#h"


def _on(base: type) -> type:
    """SenderChannel's Python methods over another base."""
    body = {k: v for k, v in vars(SenderChannel).items() if k not in ("__dict__", "__weakref__")}
    return type(f"SenderChannelOn{base.__name__}", (base,), body)


class _General(_fast.PySenderBase):
    def offer(self, data, msg_type=0, now=0.0):  # type: ignore[no-untyped-def]
        return self._offer(data, msg_type, now)


KINDS = {
    "backend": SenderChannel,
    "python": _on(_fast.PySenderBase),
    "general": _on(_General),
}

SIZES = [0, 0, 0, 1, 2, 100, 126, 127, 128, 129, 500, 1000, 2000, 4000, 9000, 16383, 16384]
TYPES = [0, 0, 7, -1, 32767, -32768, 32768, -32769, True, 2**70, 1.0]

offer_op = st.tuples(
    st.just("offer"),
    st.sampled_from(SIZES),
    st.sampled_from(TYPES),
    st.sampled_from(["bytes", "bytes", "bytes", "bytearray", "memoryview"]),
    st.sampled_from([1, 1, 3, 40, 300]),  # that many offers in a row
)
ops = st.lists(
    st.one_of(
        offer_op,
        offer_op,
        offer_op,
        st.tuples(st.just("self"), st.integers(1, 4)),
        st.tuples(st.just("report"), st.integers(0, 6)),
        st.tuples(st.just("flush")),
    ),
    max_size=120,
)
options = st.fixed_dictionaries(
    {
        "window": st.sampled_from([2, 8, 64]),
        "window_bytes": st.sampled_from([1 << 12, 1 << 16, 1 << 20]),
        "max_frame": st.sampled_from([200, 4096, 20000]),
        "max_batch_items": st.sampled_from([1, 5, 200, 4096]),
        "max_pending_bytes": st.sampled_from([3000, 1 << 16, 1 << 22]),
        "max_inflight": st.sampled_from([None, 1, 2]),
        "max_message_bytes": st.sampled_from([5000, 1 << 20]),
    }
)


class Run:
    """One channel of a kind, with its own deliveries and its peer's reports."""

    def __init__(self, kind: type, opts: dict) -> None:
        self.out: list = []
        self.ch = kind("g", 1, ME, self.out, retention=False, **opts)
        self.ch.on_view({ME, PEER}, 0.0, speakers={PEER})
        self.sent: list[bytes] = []  # every frame, in order
        self.back = 0  # frames delivered back to us
        self.consumed = 0  # frames the peer consumed

    def _collect(self) -> None:
        self.sent.extend(a.data for a in self.out)
        self.out.clear()

    def step(self, op: tuple, now: float) -> object:
        ch = self.ch
        try:
            if op[0] == "offer":
                _, size, msg_type, kind, repeat = op
                make = {"bytes": bytes, "bytearray": bytearray, "memoryview": memoryview}[kind]
                result: object = []
                for i in range(repeat):  # sizes and types vary along a run
                    n = (size + 37 * i) % 300 if i else size
                    data = make(b"%d" % (n % 10) * n)
                    result.append(ch.offer(data, msg_type if i % 7 else i % 3 - 1, now))
            elif op[0] == "self":
                for _ in range(op[1]):
                    if self.back < len(self.sent):
                        frame = self.sent[self.back]
                        hdr = fr.decode_header(frame)
                        ch.on_self(hdr.seq, hdr.offset + len(frame), now)
                        self.back += 1
                result = None
            elif op[0] == "report":
                # The peer consumed up to a frame it has had (our own deliveries
                # come back in the same order, so it has what came back to us).
                k = min(self.back, self.consumed + op[1])
                if k > self.consumed:
                    frame = self.sent[k - 1]
                    hdr = fr.decode_header(frame)
                    ch.on_report(PEER, hdr.seq, hdr.offset + len(frame), now)
                    self.consumed = k
                result = None
            else:
                ch.flush(now)
                result = None
        except (TypeError, ValueError) as e:
            result = (type(e), str(e))
        self._collect()
        return result

    def state(self) -> tuple:
        ch = self.ch
        return (
            self.sent,
            dict(ch.stats),
            ch.pending,
            ch._queued_bytes,
            ch._stuck,
            ch._dirty,
            ch.next_seq,
            ch.sent_bytes,
        )


@pytest.mark.timeout(300)
@settings(max_examples=400, deadline=None)
@given(opts=options, script=ops)
def test_the_fast_offers_do_what_the_general_path_does(opts: dict, script: list) -> None:
    runs = {name: Run(kind, opts) for name, kind in KINDS.items()}
    for i, op in enumerate(script):
        now = i * 0.001
        results = {name: r.step(op, now) for name, r in runs.items()}
        ref = runs["general"].state()
        for name, r in runs.items():
            assert results[name] == results["general"], (name, i, op)
            assert r.state() == ref, (name, i, op)


def test_the_backend_base_is_used_where_the_backend_has_one() -> None:
    from spread._backend import core

    assert _fast.SenderBase is getattr(core, "FlowSenderBase", _fast.PySenderBase)
    assert _fast.BatchBase is getattr(core, "FlowBatch", _fast.PyBatchBase)
    assert issubclass(SenderChannel, _fast.SenderBase)
    assert _fast.ChannelBase is getattr(core, "FlowChannelBase", _fast.PyChannelBase)
    assert issubclass(Channel, _fast.ChannelBase)
    # (the lock-free send: with the GIL, in the backend's C only)
    free_threaded = bool(sysconfig.get_config_var("Py_GIL_DISABLED"))
    assert _fast.SEND_LOCK_FREE == (hasattr(core, "FlowChannelBase") and not free_threaded)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("kind", sorted(KINDS))
def test_messages_that_wait_for_credit_leave_in_one_batch(kind: str) -> None:
    # The case the fast offer exists for: the peer holds the window, every
    # message joins the open batch, and all of them leave in one frame.
    calls = []

    class Counted(KINDS[kind]):  # type: ignore[misc,valid-type]
        def _offer(self, data, msg_type=0, now=0.0):  # type: ignore[no-untyped-def]
            calls.append(len(data))
            return super()._offer(data, msg_type, now)

    r = Run(Counted, {"window": 1, "max_inflight": None})
    assert r.ch.offer(b"abc") is True  # frame 1 takes the window
    for i in range(300):
        assert r.ch.offer(b"x" * (i % 200), i - 150) is True
    r._collect()
    assert r.ch.pending == 300 and len(r.sent) == 1
    # The fast offers take all but three: the first (sent), the second (it
    # opened the batch) and the 128th (the count's uvarint grows a byte).
    # The general path takes every one.
    assert calls == ([3, *(i % 200 for i in range(300))] if kind == "general" else [3, 0, 127])
    r.step(("self", 1), 0.0)
    r.step(("report", 1), 0.0)  # credit for one more frame: the batch
    assert len(r.sent) == 2
    hdr = fr.decode_header(r.sent[1])
    assert hdr.kind == fr.BATCH
    pos, lengths, types = fr.batch_table(r.sent[1])
    assert list(lengths) == [i % 200 for i in range(300)]
    assert list(types) == [i - 150 for i in range(300)]
    assert r.ch.stats["offered"] == 301 and r.ch.pending == 0 and r.ch._queued_bytes == 0


class _Session:
    """What Channel.send reads of its session."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.core = types.SimpleNamespace(_outbox=[])
        self._closed = False
        self._error: BaseException | None = None


class _Recorded(Channel):
    """A Channel whose general send records that it was asked, and offers
    the message if told to (the lock and the engine are Session's)."""

    general: list
    offers = False

    def _send(self, data, msg_type=0, timeout=None):  # type: ignore[no-untyped-def]
        self.general.append((data, msg_type, timeout))
        if self.offers:
            assert self._ch.offer(data, msg_type)


def _stuck_channel() -> tuple[_Recorded, Run]:
    """A channel waiting for credit with a batch open (the fast case)."""
    r = Run(SenderChannel, {"window": 1, "max_inflight": None})
    assert r.ch.offer(b"first") and r.ch.offer(b"opens the batch")
    ch = _Recorded(_Session(), r.ch)
    ch.general = []
    return ch, r


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    "blocker",
    ["none", "lock held", "closed", "error", "outbox", "bytearray", "bad msg_type"],
)
def test_send_joins_the_batch_itself_only_with_the_session_free(blocker: str) -> None:
    # The C send takes the lock-free case only when the backend has it (a
    # check of the lock and the append are one step only in C); everything
    # else, and every send in Python, goes to Channel._send, which waits
    # for the lock.
    ch, r = _stuck_channel()
    s = ch._session
    data: object = b"payload"
    msg_type = 3
    other = threading.Thread(target=s.lock.acquire)  # held by another thread
    if blocker == "lock held":
        other.start()
        other.join(5)
        assert s.lock.locked()
    elif blocker == "closed":
        s._closed = True
    elif blocker == "error":
        s._error = RuntimeError("gone")
    elif blocker == "outbox":
        s.core._outbox.append("an action not yet performed")
    elif blocker == "bytearray":
        data = bytearray(b"payload")
    elif blocker == "bad msg_type":
        msg_type = 1 << 16
    pending = r.ch.pending
    assert ch.send(data, msg_type, 2.5) is None
    fast = blocker == "none" and _fast.SEND_LOCK_FREE
    if fast:
        assert ch.general == [] and r.ch.pending == pending + 1
        assert r.ch.stats["offered"] == 3
    else:
        assert ch.general == [(data, msg_type, 2.5)] and r.ch.pending == pending


@pytest.mark.timeout(60)
def test_what_the_fast_send_joined_leaves_as_offer_would_send_it() -> None:
    ch, r = _stuck_channel()
    ch.offers = True
    ref = Run(SenderChannel, {"window": 1, "max_inflight": None})
    assert ref.ch.offer(b"first") and ref.ch.offer(b"opens the batch")
    for i in range(300):
        ch.send(b"m%d" % i * (i % 50), i - 150)
        assert ref.ch.offer(b"m%d" % i * (i % 50), i - 150)
    for run in (r, ref):
        run._collect()
        run.step(("self", 1), 0.0)
        run.step(("report", 1), 0.0)
    assert r.sent == ref.sent and len(r.sent) == 2
    assert dict(r.ch.stats) == dict(ref.ch.stats) and r.ch.pending == ref.ch.pending == 0
    # The general path took what the fast one left it: where the backend
    # has one, the one send at which the count's uvarint grows a byte.
    assert len(ch.general) == (1 if _fast.SEND_LOCK_FREE else 300)


# ---- the receiving side ------------------------------------------------------------

BATCHERS = {"python": _fast.py_batch_messages, "backend": _fast.batch_messages}
CONSUMERS = {"python": _fast.py_consume, "backend": _fast.consume}


class _Rec:
    __slots__ = ("remaining", "name")

    def __init__(self, name: str, remaining: int) -> None:
        self.name, self.remaining = name, remaining


def _frame_of(items: list[tuple[bytes, int]]) -> bytes:
    return fr.header(fr.BATCH, 1, 1, 0) + fr.encode_batch_body(items)


item = st.tuples(
    st.one_of(st.binary(max_size=40), st.integers(0, 20000).map(lambda n: b"p" * n)),
    st.integers(-32768, 32767),
)


def _mangled(draw_frame: bytes, how: int, at: int, byte: int) -> bytes:
    f = bytearray(draw_frame)
    if how == 1:  # cut short
        return bytes(f[: max(fr.HEADER_SIZE, len(f) - 1 - at % max(1, len(f) - fr.HEADER_SIZE))])
    if how == 2:  # a byte changed in the table or the payloads
        i = fr.HEADER_SIZE + at % max(1, len(f) - fr.HEADER_SIZE)
        if i < len(f):
            f[i] = byte
        return bytes(f)
    if how == 3:  # bytes after the last item
        return bytes(f) + bytes([byte]) * (1 + at % 5)
    return bytes(f)


@pytest.mark.timeout(300)
@settings(max_examples=500, deadline=None)
@given(
    items=st.lists(item, min_size=1, max_size=300),
    how=st.sampled_from([0, 0, 1, 2, 3]),
    at=st.integers(0, 1 << 20),
    byte=st.integers(0, 255),
)
def test_a_batch_frame_becomes_the_messages_the_wire_codec_reads(
    items: list, how: int, at: int, byte: int
) -> None:
    from spread.flow import FlowMsg

    frame = _mangled(_frame_of(items), how, at, byte)
    try:
        expected: object = [(x.msg_type, bytes(x.data)) for x in fr.decode_batch_body(frame[32:])]
    except fr.FrameError as e:
        expected = str(e)
    rec = _Rec("r", 0)
    for name, batch in BATCHERS.items():
        try:
            msgs = batch(FlowMsg, frame, rec)
        except fr.FrameError as e:
            assert expected == str(e), name
            continue
        assert [(m.msg_type, m.message) for m in msgs] == expected, name
        assert all(type(m) is FlowMsg and type(m.message) is bytes for m in msgs)
        assert [m.index for m in msgs] == list(range(len(msgs)))
        assert all(m._record is rec and m._open is True for m in msgs), name


@pytest.mark.timeout(60)
def test_the_backend_decodes_a_well_formed_batch_itself() -> None:
    # (A C decoder that handed every frame to the Python one would pass the
    # comparison above, only slower.)
    from spread._backend import core
    from spread.flow import FlowMsg

    frame = _frame_of([(b"x" * n, n - 300) for n in range(0, 3000, 7)])
    c_batch = getattr(core, "flow_batch", None)
    if c_batch is None:
        assert _fast.batch_messages is _fast.py_batch_messages  # (cffi: Python's)
        return
    calls = []

    def general(cls, f, rec):  # type: ignore[no-untyped-def]
        calls.append(len(f))
        return _fast.py_batch_messages(cls, f, rec)

    msgs = c_batch(FlowMsg, frame, None, general)
    assert len(msgs) == 429 and not calls
    assert [m.message for m in msgs] == [b"x" * n for n in range(0, 3000, 7)]
    with pytest.raises(fr.FrameError):
        c_batch(FlowMsg, frame[:-1], None, general)  # malformed: the Python reader says why
    assert calls == [len(frame) - 1]
    with pytest.raises(TypeError):
        c_batch(bytes, frame, None, general)  # only FlowMsgBase instances are made
    with pytest.raises(TypeError):
        core.flow_consume(int, [1])


@pytest.mark.timeout(60)
@pytest.mark.skipif(
    not hasattr(gc, "is_tracked"), reason="CPython's collector (PyPy counts no references)"
)
def test_the_messages_of_a_batch_are_left_out_of_the_garbage_collector() -> None:
    # The collector walked every queued FlowMsg at each collection; nothing
    # they reach leads back to them, so the C decoder untracks spread.flow's
    # FlowMsg (and no other class: one of the application's could hold its
    # instances). Either way they are freed at once.
    from spread.flow import FlowMsg
    from spread.flow._receiver import Stream, _Record

    frame = _frame_of([(b"p%d" % i, i) for i in range(50)])
    c_form = _fast.batch_messages is not _fast.py_batch_messages
    rec = _Record(Stream("#s#h", "g", 1, 1, 0), 1, len(frame), 50, 0)
    msgs = _fast.batch_messages(FlowMsg, frame, rec)
    assert [gc.is_tracked(m) for m in msgs] == [not c_form] * 50
    assert [m.message for m in msgs] == [b"p%d" % i for i in range(50)]
    assert [(m.msg_type, m.index, m._record) for m in msgs] == [(i, i, rec) for i in range(50)]
    del msgs

    class WithDict(FlowMsg):
        pass

    class Slotted(FlowMsg):
        __slots__ = ()

    for cls in (WithDict, Slotted):
        assert all(gc.is_tracked(m) for m in _fast.batch_messages(cls, frame, rec))
    # Nothing a message reaches refers back to it: its count frees it (no
    # collection runs here), and its record with it.
    gc.disable()
    try:
        before = sys.getrefcount(rec)
        msgs = _fast.batch_messages(FlowMsg, frame, rec)
        assert sys.getrefcount(rec) == before + 50
        del msgs
        assert sys.getrefcount(rec) == before
    finally:
        gc.enable()


@pytest.mark.timeout(60)
@pytest.mark.parametrize("field", ["message", "msg_type", "index", "_record"])
def test_a_field_set_by_the_application_tracks_the_message_again(field: str) -> None:
    # What is set could lead back to the message: a cycle through an
    # untracked object would never be collected.
    import weakref

    from spread.flow import FlowMsg
    from spread.flow._receiver import Stream, _Record

    class Box:
        msg: object = None

    frame = _frame_of([(b"p", 1)])
    rec = _Record(Stream("#s#h", "g", 1, 1, 0), 1, len(frame), 1, 0)
    m = _fast.batch_messages(FlowMsg, frame, rec)[0]
    box = Box()
    box.msg = m
    setattr(m, field, box)  # a cycle: m -> box -> m
    assert getattr(m, field) is box
    if hasattr(gc, "is_tracked"):  # (CPython's collector)
        assert gc.is_tracked(m)
    probe = weakref.ref(box)
    del m, box
    gc.collect()
    assert probe() is None
    if hasattr(core, "flow_untrack_instances"):
        with pytest.raises(TypeError):  # a class that adds a __dict__
            core.flow_untrack_instances(type("WithDict", (FlowMsg,), {}))


@pytest.mark.timeout(120)
@settings(max_examples=300, deadline=None)
@given(
    script=st.lists(st.tuples(st.integers(0, 3), st.integers(0, 5)), max_size=200),
    take=st.lists(st.integers(0, 1 << 16), max_size=400),
)
def test_consuming_counts_each_open_message_once_per_record(script: list, take: list) -> None:
    from spread.flow import FlowMsg

    def world() -> tuple[list, list]:
        recs = [_Rec(f"r{i}", 0) for i in range(4)]
        msgs: list = []
        for r, n in script:  # n messages of record r
            for _ in range(n):
                m = FlowMsg.__new__(FlowMsg)
                m._record, m._open, m.message = recs[r], True, b""
                recs[r].remaining += 1
                msgs.append(m)
        # What a receive hands out: messages (some twice, some closed
        # already) among other items.
        items: list = []
        for k in take:
            if msgs and k % 7:
                items.append(msgs[k % len(msgs)])
            else:
                items.append(("event", k))
        for m in msgs[::5]:
            m._open = False
            m._record.remaining -= 1
        return recs, items

    outcomes = {}
    for name, consume in CONSUMERS.items():
        recs, items = world()
        done = consume(FlowMsg, items)
        outcomes[name] = (
            [r.name for r in done],
            [r.remaining for r in recs],
            [m._open for m in items if type(m) is FlowMsg],
        )
        # Every record that reached 0 is named once, and only those.
        assert sorted(r.name for r in done) == sorted({r.name for r in done})
        assert all(r.remaining == 0 for r in done)
        assert all(r.remaining >= 0 for r in recs)
    assert outcomes["backend"] == outcomes["python"]
