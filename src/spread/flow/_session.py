"""The sync front end: a Session over one mailbox drives the sans-IO
FlowCore, and Channels send through it (DESIGN.md, "Driving it").

Threads (see Session's docstring): the receiver's drain thread (C, no GIL)
empties the socket; the session's flow thread takes what it drained, feeds
the core under the session lock, performs the core's actions (reports, HELLO
answers, frames that credit let go) and ticks the core at its deadlines;
application threads send and receive. Every wait is a condition-variable or
receiver wait with a timeout: nothing spins."""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager
from types import TracebackType
from typing import Any, Literal

from .._errors import Empty, ReceiverClosed, SpreadError
from .._receiver import ThreadedReceiver
from ._core import FlowCore
from ._events import DataLoss, FlowEvent, Laggard, ProtocolErrorEvent
from ._fast import ChannelBase
from ._reconnect import Backoff, ReconnectFailed, Reconnecting, policy
from ._sender import SenderChannel, check_group

# The flow thread wakes at least this often (a report delayed by the
# consumer's own call, a close) even when the core has no deadline.
_IDLE_WAKE = 0.05
_now = time.monotonic
# Frames of ours not yet delivered back to us before new messages wait to
# leave together (SenderChannel's max_inflight): a sender faster than the
# daemon's turnaround sends fewer, fuller daemon messages.
DEFAULT_MAX_INFLIGHT = 2
_BATCH = 256  # raw messages taken from the receiver per call
# A loss seen by a send: the old receiver may still hold what arrived
# before it; it is read until it fails, or for this long at most.
_DRAIN_OLD = 1.0
_MAX_BATCHES = 8  # per _take_input: the lock is not held for long

_CORE_OPTIONS = (
    "max_message_bytes",
    "max_reassembly_bytes",
    "report_delay",
    "hint_ttl",
    "max_hints",
    "rng",
    "reorder_window",
    "repair_retry",
    "orphan_timeout",
)


class SessionClosed(SpreadError):
    """The session was closed (by close(), or its connection failed and
    everything received before was taken)."""


class ChannelView:
    """What a channel shows of its core SenderChannel (the sync and the
    asyncio channels' common part); ``_guard()`` is what reading it takes
    (the session lock, or nothing on an event loop)."""

    def __init__(self, session: Any, core_channel: SenderChannel) -> None:
        self._session = session
        self._ch = core_channel

    def _guard(self) -> AbstractContextManager[Any]:
        return self._session.lock

    @property
    def group(self) -> str:
        return self._ch.group

    @property
    def stream(self) -> int:
        return self._ch.stream

    @property
    def window(self) -> int:
        return self._ch.window

    @property
    def window_bytes(self) -> int:
        return self._ch.window_bytes

    @property
    def core(self) -> SenderChannel:
        """The core's SenderChannel (read its state under ``_guard()``)."""
        return self._ch

    @property
    def last_seq(self) -> int:
        """The stream's last frame put on the wire (a resumed stream: its
        retention store's newest at the start)."""
        with self._guard():
            return self._ch.last_seq

    @property
    def pending(self) -> int:
        """Messages accepted but not yet on the wire."""
        with self._guard():
            return self._ch.pending

    @property
    def stats(self) -> dict[str, int]:
        with self._guard():
            return dict(self._ch.stats)

    def members(self) -> dict[str, str]:
        """{member: state}: "active", "joining" (both waited for),
        "untethered", "foreign" (not waited for)."""
        with self._guard():
            return {m.name: m.state for m in self._ch.members.values()}

    def laggards(self) -> tuple[Laggard, ...]:
        """Who holds the next frame back now, with their lag."""
        with self._guard():
            return self._ch.laggards(time.monotonic())

    def __repr__(self) -> str:
        return (
            f"<{type(self).__module__}.{type(self).__name__} {self.group!r} "
            f"stream={self.stream:#x} window={self.window}>"
        )


class Channel(ChannelView, ChannelBase):
    """One sending stream on one group (made by :meth:`Session.channel`).

    ``send()`` blocks while the slowest tethered member is ``window`` frames
    or ``window_bytes`` bytes behind what its application consumed (and the
    channel's accumulator, ``max_pending_bytes``, is full). One thread should
    send on a channel at a time; several may (each send is atomic), but then
    the order between them is whichever got the session lock first."""

    _session: Session

    # send(data, msg_type=0, timeout=None) is ChannelBase's: it takes a
    # message that joins the open batch while no other thread is inside the
    # session (in C, with the Cython backend), and leaves the rest to this.
    def _send(self, data: Any, msg_type: int = 0, timeout: float | None = None) -> None:
        """send() under the session lock: every case."""
        s = self._session
        ch = self._ch
        with s.lock:
            if s._closed or s._error is not None:
                s._check_usable()
            if ch.offer(data, msg_type, _now()):
                if s.core._outbox:
                    s._perform()
                return
            deadline = _deadline(timeout)
            start = _now()
            while True:
                s._perform()
                self._wait(start, deadline)
                s._check_usable()
                if ch.offer(data, msg_type, _now()):
                    s._perform()
                    return

    def send_many(
        self, items: Iterable[Any], msg_type: int = 0, timeout: float | None = None
    ) -> int:
        """Send many messages: each item is a payload or a (payload, msg_type)
        pair. Messages that find credit short leave together as batches.
        ``timeout`` bounds the whole call; on SendTimeout, the count of
        messages accepted is ``exc.sent``. Returns how many were sent."""
        s = self._session
        ch = self._ch
        offer = ch.offer
        deadline = _deadline(timeout)
        sent = 0
        with s.lock:
            s._check_usable()
            start = now = _now()
            for item in items:
                if type(item) is tuple:
                    data, mt = item
                else:
                    data, mt = item, msg_type
                if not offer(data, mt, now):
                    while True:
                        s._perform()
                        try:
                            self._wait(start, deadline)
                            s._check_usable()
                        except SpreadError as e:
                            e.sent = sent  # type: ignore[attr-defined]
                            raise
                        now = _now()
                        if offer(data, mt, now):
                            break
                sent += 1
            s._perform()
        return sent

    def flush(self, timeout: float | None = None) -> None:
        """Wait until every accepted message is on the wire (linger ignored),
        and, while the session reconnects, until it is connected again. With
        ``drain=False`` it first reads what has come (reports, repair
        requests, a lost connection): a thread that only sends sees them."""
        s = self._session
        ch = self._ch
        deadline = _deadline(timeout)
        with s.lock:
            start = time.monotonic()
            while True:
                s._check_usable()
                if s._rx is None and not s._reading and s._outage is None:
                    s._read_direct(0.0)
                    s._check_usable()
                ch.flush(time.monotonic())
                s._perform()
                if not ch.pending and s._outage is None:
                    return
                self._wait(start, deadline)

    def wait_consumed(self, timeout: float | None = None) -> None:
        """Wait until every tethered member (and our own delivery) has
        consumed everything sent so far: the channel is idle."""
        s = self._session
        ch = self._ch
        deadline = _deadline(timeout)
        with s.lock:
            start = time.monotonic()
            while True:
                s._check_usable()
                ch.flush(time.monotonic())
                s._perform()
                if not ch.pending and all(m.seq == ch.last_seq for m in ch.counted()):
                    return
                self._wait(start, deadline)

    def _wait(self, start: float, deadline: float) -> None:
        """One wait for credit, under the lock: raises SendTimeout past the
        deadline, or the stall error with on_stall="raise"."""
        s = self._session
        ch = self._ch
        now = time.monotonic()
        if now >= deadline:
            outage = s._outage
            raise ch.send_timeout(now, now - start, None if outage is None else now - outage.since)
        err = ch.stalled(now)
        if err is not None:
            raise err
        s._wait(deadline)

    def close(self, timeout: float | None = None, *, flush: bool = True) -> None:
        """Send what is pending (flush(timeout); ``flush=False`` drops it),
        then say BYE: receivers forget the stream (a StreamEnded event).
        Later sends raise ValueError. Safe to call twice."""
        s = self._session
        if flush and not self._ch.closed:
            self.flush(timeout)
        with s.lock:
            if not self._ch.closed:
                s.core.close_channel(self._ch, time.monotonic())
                s._perform()


def take(
    ready: deque[Any], n: int, core: FlowCore, strict: bool, raise_loss: bool = False
) -> list[Any]:
    """What a receive hands the application: up to n items off ready (not
    empty), the FlowMsgs among them consumed (their credit goes back).
    Under strict, a ProtocolErrorEvent ends the batch, and with raise_loss
    (``on_loss="raise"``) a DataLoss does: what follows it stays, and it is
    raised when it comes first, else by the next call. Shared by the sync
    and the asyncio sessions."""
    if len(ready) <= n:
        items = list(ready)
        ready.clear()
    else:
        items = [ready.popleft() for _ in range(n)]
    error: BaseException | None = None
    if strict or raise_loss:
        for i, item in enumerate(items):
            if (strict and isinstance(item, ProtocolErrorEvent)) or (
                raise_loss and type(item) is DataLoss
            ):
                ready.extendleft(reversed(items[i:]))
                del items[i:]
                if i == 0:
                    first = ready.popleft()
                    error = first if type(first) is DataLoss else first.error()
                break
    core.receiver.consume_many(items, _now())
    if error is not None:
        raise error
    return items


def check_on_loss(on_loss: object) -> None:
    if on_loss not in ("event", "raise"):
        raise ValueError(f'on_loss is "event" or "raise", not {on_loss!r}')


def short_name(private_group: str) -> str:
    """The name a session connects again with: members know its streams by
    its private group (the daemon's pick, when it connected with "")."""
    return private_group.split("#")[1]


def _deadline(timeout: float | None) -> float:
    if timeout is None:
        return math.inf
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)):
        raise TypeError(f"timeout must be a number of seconds or None, not {timeout!r}")
    if math.isnan(timeout) or timeout < 0:
        raise ValueError(f"timeout must be >= 0 seconds or None, not {timeout}")
    return time.monotonic() + timeout


class SessionChecks:
    """What every call checks first (the sync and asyncio sessions)."""

    _closed: bool
    _error: BaseException | None
    _outage: Any
    _channels: list[Any]
    core: FlowCore

    def _check_usable(self) -> None:
        if self._closed:
            raise SessionClosed(-11, "the flow session is closed")
        if self._error is not None:
            raise self._error

    def _to_flush(self) -> list[Any]:
        """At a close: the channels with accepted messages still to send
        (none if the connection failed or is being made again)."""
        if self._closed or self._error is not None or self._outage is not None:
            return []
        return [ch for ch in self._channels if not ch._ch.closed and ch._ch.pending]

    def _new_channel(self, group: str, now: float, drain: bool, options: dict[str, Any]) -> Any:
        """The core's channel with the sessions' defaults: with a drain
        thread (our own deliveries come back quickly) at most
        DEFAULT_MAX_INFLIGHT frames of ours in flight before messages wait
        to leave together, unless max_batch_items is 1 (nothing can join a
        batch: the bound would only hold each message back a daemon round
        trip); an accumulator of one batch."""
        if drain and options.get("max_batch_items") != 1:
            options.setdefault("max_inflight", DEFAULT_MAX_INFLIGHT)
        ch = self.core.channel(group, now=now, **options)
        if options.get("max_pending_bytes") is None:
            ch.max_pending_bytes = ch._batch_bytes
        return ch

    def _check_readable(self) -> None:
        # With nothing left to take: the failure, or the close.
        if self._error is not None:
            raise self._error
        if self._closed:
            raise SessionClosed(-11, "the flow session is closed")


class Session(SessionChecks):
    """A flow-controlled session over one mailbox (``spread.connect(...,
    membership=1)``, str names): per-group sending channels, and a receive
    side that hands out FlowMsg, flow events, and the mailbox's other
    messages (plain data of classic clients, memberships) unchanged, in the
    order they arrived.

    ``drain=True`` (default): a ThreadedReceiver (C drain thread) empties
    the socket and the session's flow thread drives the core, answering
    HELLOs and processing reports and memberships whether or not the
    application is receiving. ``drain=False``: no thread at all; the core is
    driven from inside receive() and blocked sends, reading the mailbox
    directly, so the daemon's queue is the only buffer (use it from one
    thread, or a receiving thread and sending threads that accept that
    reports reach them only while someone is in a call).

    Thread safety: every method may be called from any thread; the core is
    guarded by one lock (``session.lock``). Send on a channel from one
    thread at a time for a defined order. Receive from one thread: two
    receiving threads each get whole messages, but their interleaving is
    arbitrary. A message's consumption is reported when receive() hands it
    out: the application took it. A member that stops calling receive()
    holds senders for at most ``stall_timeout``."""

    def __init__(
        self,
        mailbox: Any,
        *,
        drain: bool = True,
        max_backlog_bytes: int | None = None,
        strict: bool = False,
        owns_mailbox: bool = False,
        reconnect: Backoff | bool | None = None,
        connect: Callable[[], Any] | None = None,
        on_loss: str = "event",
        positions: Iterable[tuple[str, str, int, int, int]] = (),
        **core_options: Any,
    ) -> None:
        unknown = set(core_options) - set(_CORE_OPTIONS)
        if unknown:
            raise TypeError(f"Session() got unknown option(s): {', '.join(sorted(unknown))}")
        check_on_loss(on_loss)
        backoff = policy(reconnect, connect)
        me = mailbox.private_group
        if not isinstance(me, str):
            raise TypeError("spread.flow needs a mailbox with str names (bytes_names=False)")
        self.mailbox = mailbox
        self.core = FlowCore(me, strict=strict, **core_options)
        self.core.restore(positions, time.monotonic())
        self.strict = bool(strict)
        self.on_loss = on_loss
        self.backoff = backoff
        self._connector = connect
        self._backlog_limit = max_backlog_bytes
        self._drain = drain
        self._outage: Reconnecting | None = None  # while the connection is being made again
        self._lost_error = ""
        self._next_attempt = math.inf
        self._attempting = False  # the flow thread is inside an attempt's connect
        self._lost_at = math.inf  # when the loss was seen (the old receiver drains until it raises)
        self._old_drained = True
        self.lock = threading.Lock()
        self._cond = threading.Condition(self.lock)
        self._ready: deque[Any] = deque()
        self._error: BaseException | None = None
        self._closed = False
        self._owns = owns_mailbox
        self._joined: set[str] = set()
        self._channels: list[Channel] = []
        self._reading = False  # drain=False: a thread is reading the mailbox
        self._rx: ThreadedReceiver[str] | None = None
        self._thread: threading.Thread | None = None
        if drain:
            self._rx = ThreadedReceiver(mailbox, max_backlog_bytes=max_backlog_bytes)
            self._thread = threading.Thread(target=self._run, name=f"spread.flow {me}", daemon=True)
            self._thread.start()

    # ---- groups and channels --------------------------------------------------

    @property
    def private_group(self) -> str:
        return self.core.me

    def join(self, group: str) -> None:
        """Join a flow group: our HELLO goes first, so members count us at once."""
        with self.lock:
            self._check_usable()
            check_group(group)
            self._joined.add(group)
            if self._outage is None:  # (else the reconnect joins it, HELLO first)
                self.core.join(group, time.monotonic())
                self._perform()
                self._mailbox_call(self.mailbox.join, group)

    def leave(self, group: str) -> None:
        with self.lock:
            self._check_usable()
            self.core.leave(group, time.monotonic())
            self._joined.discard(group)
            if self._outage is None:
                self._perform()
                self._mailbox_call(self.mailbox.leave, group)

    def channel(self, group: str, **options: Any) -> Channel:
        """A sending channel on group (joined if need be). Options are
        SenderChannel's: ``window`` (frames, 256), ``window_bytes`` (8 MiB),
        ``service_type`` (AGREED_MESS; FIFO, CAUSAL, SAFE), ``stall_timeout``
        (5 s; None: never), ``on_stall`` ("untether", "wait", "raise"),
        ``max_frame``, ``max_batch_items``, ``max_batch_bytes``, ``linger``,
        ``max_pending_bytes`` (the accumulator; default one batch, so send()
        blocks as soon as one batch waits for credit), ``max_inflight`` (2
        with the drain thread, unless max_batch_items is 1: frames of ours
        not yet back from the daemon before messages wait to leave together;
        None: never), ``max_message_bytes``,
        ``join_grace``, ``stream``. A bad one raises ValueError/TypeError."""
        with self.lock:
            self._check_usable()
            ch = self._new_channel(group, time.monotonic(), self._rx is not None, options)
            self._perform()
            out = Channel(self, ch)
            self._channels.append(out)
        if group not in self._joined:
            # (after the channel: our HELLO names its stream, so members that
            # hold a stream of ours it resumes ask for what they miss)
            self.join(group)
        return out

    # ---- receiving ----------------------------------------------------------------

    def receive(self, timeout: float | None = None) -> Any:
        """The next message: a FlowMsg, a FlowEvent (StreamGap, StreamEnded,
        MemberUntethered, ...), or the mailbox's RegularMsg / MembershipMsg
        unchanged. Raises spread.Empty after ``timeout`` seconds; once the
        connection failed and everything before was taken, its error."""
        deadline = _deadline(timeout)
        with self.lock:
            while not self._ready:
                self._check_readable()
                if time.monotonic() >= deadline:
                    raise Empty()
                self._wait(deadline)
            try:
                return take(self._ready, 1, self.core, self.strict, self.on_loss == "raise")[0]
            finally:
                self._perform()

    def receive_batch(self, max_messages: int, timeout: float | None = None) -> list[Any]:
        """Up to max_messages at once (at least one, or spread.Empty after
        timeout)."""
        if isinstance(max_messages, bool) or not isinstance(max_messages, int):
            raise TypeError("max_messages must be an int")
        if max_messages < 1:
            raise ValueError(f"max_messages must be >= 1, not {max_messages}")
        deadline = _deadline(timeout)
        with self.lock:
            while not self._ready:
                self._check_readable()
                if time.monotonic() >= deadline:
                    raise Empty()
                self._wait(deadline)
            try:
                return take(
                    self._ready, max_messages, self.core, self.strict, self.on_loss == "raise"
                )
            finally:
                self._perform()

    def __iter__(self) -> Iterator[Any]:
        """receive() until the session is closed (or its connection failed)."""
        while True:
            try:
                yield self.receive()
            except SessionClosed:
                return

    def positions(self) -> list[tuple[str, str, int, int, int]]:
        """A checkpoint of what the application has taken: (group, sender,
        stream, seq, bytes) per stream. Pass it back in (``positions=``) to
        a session of a restarted process: it is repaired from there."""
        with self.lock:
            return self.core.positions()

    def backlog(self) -> dict[str, int]:
        """What this process holds for the application: ``raw`` messages the
        drain thread read that the core has not seen, ``ready`` items handed
        to receive() not yet taken, and the flow streams' unconsumed
        ``frames`` and ``bytes`` (what the window bounds)."""
        with self.lock:
            streams = self.core.receiver.streams.values()
            return {
                "raw": self._rx.qsize() if self._rx is not None else 0,
                "ready": len(self._ready),
                "frames": sum(st.unconsumed_frames for st in streams),
                "bytes": sum(st.unconsumed_bytes for st in streams),
            }

    @property
    def stats(self) -> dict[str, Any]:
        with self.lock:
            out: dict[str, Any] = dict(self.core.stats)
            out["receiver"] = dict(self.core.receiver.stats)
            if self._rx is not None:
                out["drain"] = self._rx.stats
            return out

    # ---- closing ----------------------------------------------------------------

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self, timeout: float | None = 5.0) -> None:
        """Channels send what they accepted (for at most ``timeout`` seconds
        in all: what credit does not let go by then is dropped) and say BYE,
        the flow thread and the receiver stop; a session made by
        spread.flow.connect() also disconnects its mailbox. Safe to call
        twice. Blocked calls in other threads raise SessionClosed. During a
        reconnect attempt it also waits for that attempt's connect to
        return (spread.connect's own time-out bounds it)."""
        deadline = _deadline(timeout)
        for ch in self._to_flush():
            try:
                ch.flush(max(0.0, deadline - _now()))
            except SpreadError:
                break  # (a timeout, or the connection failed: BYE what went)
        with self.lock:
            if self._closed:
                return
            now = time.monotonic()
            if self._error is None:
                for ch in self._channels:
                    if not ch._ch.closed:
                        self.core.close_channel(ch._ch, now)
                try:
                    self._perform()
                except SpreadError:
                    pass
            self._closed = True
            self._cond.notify_all()
        if self._rx is not None:
            self._rx.close()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(5.0)
            while self._attempting and self._thread.is_alive():
                # Inside an attempt's connect (it has its own time-out): it
                # sees the close when it returns and disconnects what it made.
                self._thread.join(0.05)
        if self._owns:
            try:
                self.mailbox.disconnect()
            except SpreadError:
                pass  # (a connection already lost)

    def __enter__(self) -> Session:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> Literal[False]:
        self.close()
        return False

    def __repr__(self) -> str:
        state = "closed" if self._closed else ("drain" if self._rx is not None else "direct")
        return f"<spread.flow.Session {self.private_group} {state}>"

    # ---- the engine (all under self.lock) ---------------------------------------

    def _perform(self) -> None:
        if self._outage is not None:
            self.core.actions()  # nowhere to send them: receivers ask again
            return
        actions = self.core.actions()
        if not actions:
            return
        mc = self.mailbox.multicast
        for a in actions:
            try:
                mc(a.service_type, a.group, a.data, a.msg_type)
            except SpreadError as e:
                if self._lost(e, drained=False):
                    return
                if self._error is None:
                    self._error = e
                self._cond.notify_all()
                raise

    def _mailbox_call(self, call: Callable[..., Any], *args: Any) -> None:
        """A mailbox request (join, leave) whose failure may be a lost connection."""
        try:
            call(*args)
        except SpreadError as e:
            if not self._lost(e, drained=False):
                raise

    # ---- reconnecting (all under self.lock) -------------------------------------

    def _lost(self, error: BaseException, *, drained: bool) -> bool:
        """The connection failed with error: True if the session reconnects
        (an outage begins, or one is under way), False if the error is the
        session's. ``drained``: the receiver has handed out everything it
        read before the failure (its take raised it)."""
        if self._outage is not None:
            self._old_drained = self._old_drained or drained
            return True
        if self.backoff is None or self._closed:
            return False
        now = _now()
        try:
            self._outage, self._next_attempt = Reconnecting.begin(self.backoff, error, now)
        except ReconnectFailed as e:
            self._error = e
            self._cond.notify_all()
            return True
        self._lost_error = str(error)
        self._lost_at = now
        self._old_drained = drained or self._rx is None
        self.core.on_connection_lost(now)
        self._cond.notify_all()
        return True

    def _attempt_due(self, now: float) -> bool:
        """An outage's next attempt may be made now."""
        return (
            self._outage is not None
            and now >= self._next_attempt
            and (self._old_drained or now >= self._lost_at + _DRAIN_OLD)
        )

    def _attempt(self) -> None:
        """One attempt to connect again (the lock released while connecting).
        Success: the new mailbox (and receiver) replace the old, every group
        is joined again (HELLO first, naming our streams: members ask for
        what they miss of them), and a Reconnected event is received."""
        assert self._outage is not None and self._connector is not None
        old_rx, old_mbox = self._rx, self.mailbox
        self._rx = None
        self._next_attempt = math.inf  # (nobody else attempts meanwhile)
        mbox = None
        err: BaseException | None = None
        self._attempting = True
        self.lock.release()
        try:
            if old_rx is not None:
                old_rx.close()
            try:
                old_mbox.disconnect()
            except SpreadError:
                pass
            mbox = self._connector()
        except Exception as e:  # (not retryable unless a SpreadError says so)
            err = e
        finally:
            self.lock.acquire()
            self._attempting = False
        now = _now()
        outage = self._outage
        if self._closed:
            if mbox is not None:
                mbox.disconnect()
            return
        self.mailbox = mbox if mbox is not None else old_mbox
        if err is not None or mbox is None:
            try:
                self._next_attempt = outage.failed(err or SpreadError(0, "no mailbox"), now)
            except ReconnectFailed as e:
                self._outage = None
                self._error = e
            self._cond.notify_all()
            return
        if self._drain:
            self._rx = ThreadedReceiver(mbox, max_backlog_bytes=self._backlog_limit)
        self._outage = None
        self._old_drained = True
        self._ready.append(outage.succeeded(now, self._lost_error))
        for group in sorted(self._joined):
            self.core.join(group, now)
            self._perform()
            self._mailbox_call(mbox.join, group)
            if self._outage is not None:
                break  # lost again at once
        self._cond.notify_all()

    def _feed(self, batch: list[Any]) -> None:
        now = time.monotonic()
        on_message = self.core.on_message
        ready = self._ready
        for msg in batch:
            ready.extend(on_message(msg, now))
        if now >= self.core.next_deadline():
            ready.extend(self.core.tick(now))
        self._perform()
        self._cond.notify_all()

    def _tick(self) -> None:
        now = time.monotonic()
        if now >= self.core.next_deadline():
            events: list[FlowEvent] = self.core.tick(now)
            self._ready.extend(events)
            self._perform()
            self._cond.notify_all()

    def _wait(self, deadline: float) -> None:
        """Wait (lock held, released while waiting) until something may have
        changed: new input, a core deadline, or the caller's deadline."""
        if self._take_input():
            return  # something changed: the caller looks again
        now = time.monotonic()
        until = min(deadline, self.core.next_deadline())
        if self._outage is not None:
            if self._rx is None and self._attempt_due(now):
                self._attempt()  # drain=False: the waiting caller reconnects
            else:
                # (_next_attempt is inf while another thread attempts: its
                # end notifies; a wait is bounded either way, as below.)
                wake = self._next_attempt if self._rx is None else now + _IDLE_WAKE
                self._cond.wait(max(0.0, min(until - now, wake - now, _IDLE_WAKE * 4)))
        elif self._rx is None and not self._reading:
            self._read_direct(until - now)
        else:
            self._cond.wait(max(0.0, min(until - now, _IDLE_WAKE * 4)))
        self._tick()

    def _read_direct(self, timeout: float) -> None:
        """drain=False: read what the mailbox has (waiting up to timeout for
        the first message), the lock released while blocked."""
        import select

        mbox = self.mailbox
        self._reading = True
        batch: list[Any] = []
        err: BaseException | None = None
        self.lock.release()
        try:
            fd = mbox.fileno()
            wait = None if timeout == math.inf else max(0.0, timeout)
            if fd >= 0 and (mbox.poll() or select.select([fd], [], [], wait)[0]):
                batch.append(mbox.receive())
                while len(batch) < _BATCH and mbox.poll():
                    batch.append(mbox.receive())
            elif fd < 0:
                mbox.receive()  # raises the connection's error
        except SpreadError as e:
            err = e
        finally:
            self.lock.acquire()
            self._reading = False
        self._feed(batch)
        if err is not None and not self._lost(err, drained=True) and self._error is None:
            self._error = err
            self._cond.notify_all()

    def _take_input(self) -> int:
        """Feeds the core what the drain thread has queued (lock held):
        every take from the receiver happens under the lock, so whichever
        thread holds it (the flow thread, a blocked sender, a receiver
        finding nothing ready) does the work, in order, with no hand-off
        to another thread. Returns how many messages were fed."""
        rx = self._rx
        if rx is None or self._error is not None or self._closed:
            return 0
        fed = 0
        try:
            for _ in range(_MAX_BATCHES):
                batch = rx.get_batch(_BATCH, 0)
                self._feed(batch)
                fed += len(batch)
                if len(batch) < _BATCH:
                    break
        except Empty:
            pass
        except ReceiverClosed:
            if self._error is None and not self._closed and self._outage is None:
                self._error = SessionClosed(-11, "the session's receiver was closed")
            self._cond.notify_all()
        except SpreadError as e:  # the connection failed, BacklogOverflow
            if not self._lost(e, drained=True) and self._error is None:
                self._error = e
            self._cond.notify_all()
        return fed

    def _run(self) -> None:
        """The flow thread (drain=True): waits for the receiver's ready
        descriptor (readable while messages are queued) outside the lock,
        then takes and feeds under it."""
        import select

        while True:
            with self.lock:
                if self._closed or self._error is not None:
                    return
                now = time.monotonic()
                if self._attempt_due(now):
                    self._attempt()
                    continue
                rx = self._rx
                if rx is None:  # an outage: wait for its next attempt
                    self._cond.wait(max(0.0, min(self._next_attempt - now, _IDLE_WAKE)))
                    continue
                fd = rx.fileno()
                timeout = min(self.core.next_deadline() - now, _IDLE_WAKE)
            try:
                select.select([fd], [], [], max(0.0, timeout))
            except (OSError, ValueError):  # the receiver was closed under us
                pass
            with self.lock:
                try:
                    if not self._take_input():
                        self._tick()
                except SpreadError:
                    return  # recorded by _perform


def connect(
    daemon: str = "4803",
    name: str = "",
    *,
    groups: Iterable[str] = (),
    priority: int = 0,
    timeout: float | None = 10.0,
    socket_buffer: int | None = None,
    **options: Any,
) -> Session:
    """spread.connect() (membership notices on, str names), then a Session
    over it that owns the mailbox (close() disconnects), joined to groups.
    Options: Session's (drain, max_backlog_bytes, strict, ``reconnect``
    (True: the default Backoff; a Backoff; False: a lost connection is the
    session's error), ``on_loss``, and the core's max_message_bytes,
    max_reassembly_bytes, report_delay, reorder_window, repair_retry,
    orphan_timeout, ...)."""
    import spread

    mbox = spread.connect(daemon, name, priority, 1, timeout=timeout, socket_buffer=socket_buffer)
    short = short_name(mbox.private_group)

    def again() -> Any:
        return spread.connect(
            daemon, short, priority, 1, timeout=timeout, socket_buffer=socket_buffer
        )

    options.setdefault("reconnect", True)
    try:
        session = Session(mbox, owns_mailbox=True, connect=again, **options)
    except BaseException:
        mbox.disconnect()
        raise
    for g in groups:
        session.join(g)
    return session


__all__ = ["Channel", "Session", "SessionClosed", "connect"]
