"""The cffi backend's connection: MailboxBase, whose hot methods (multicast,
multigroup_multicast, receive, poll, fileno) are written out for cffi's
costs, and connect_raw. spread/_mailbox.py adds the cold half."""

from __future__ import annotations

import collections
import select
import threading
import time
from typing import Any

from .. import _args
from .._args import MAX_BODY, NAME_ENCODING
from .._errors import ReceiverClosed, error_class
from .batch import Batch
from .library import LIBRARY, NATIVE, SLOT, ffi, lib, raise_error, sp
from .names import slot, slots

__all__ = ["MailboxBase", "connect_raw"]

# The receive function the growing loop calls: Spread's SP_receive from
# whichever library runs (native/binding/library.c's table).
_SP_RECEIVE = lib.spl.SP_receive
_cff_receive, _cffw_receive = lib.cff_receive, lib.cffw_receive
_cff_multicast = lib.cff_multicast
_WOULD_BLOCK, _PARTIAL = lib.SPX_WOULD_BLOCK, lib.SPX_PARTIAL


def _service(value) -> int:
    if type(value) is int and -(1 << 31) <= value < 1 << 31:
        return value
    return _args.service_type(value)


def _msg_type(value) -> int:
    if type(value) is int and -32768 <= value <= 32767:
        return value
    return _args.msg_type(value)


def _multicast_method(nowait: bool):
    """MailboxBase.multicast (nowait False) or _multicast_nowait (True, for
    spread.aio; see there): one marshalling, written out in the function
    itself, since a helper would cost the hot path a Python call."""

    def multicast(self, service_type, group, data, msg_type=0):
        # Arguments are checked in the Cython backend's order (service, group,
        # msg_type, data).
        svc = (
            service_type
            if type(service_type) is int and -(1 << 31) <= service_type < 1 << 31
            else _args.service_type(service_type)
        )
        if group is self._last_group:
            g = self._last_group_bytes
        else:
            g = _args.group_bytes(group)
            if type(group) is str or type(group) is bytes:  # immutable: safe to remember
                self._last_group, self._last_group_bytes = group, g
        mt = (
            msg_type
            if type(msg_type) is int and -32768 <= msg_type <= 32767
            else _args.msg_type(msg_type)
        )
        if type(data) is bytes:
            p, n = data, len(data)
        else:
            p, n = MailboxBase._payload_arg(data)
        if n + SLOT > MAX_BODY:
            raise_error(lib.MESSAGE_TOO_LONG, f"multicast() of {n} bytes")
        inflight = self._inflight
        inflight.append(None)  # _enter and _leave, written out
        if self._closed:
            self._leave()
            self._enter("multicast")
        # Every argument is checked: the calls themselves cannot raise. With
        # our library a send the socket has room for keeps the interpreter
        # lock; only one that must wait gives it up.
        if NATIVE:
            r = _cff_multicast(self._mbox, svc, g, mt, n, p)
            if r < 0 and not nowait:
                if r == _WOULD_BLOCK:
                    r = lib.SP_multicast(self._mbox, svc, g, mt, n, p)
                elif r == _PARTIAL:
                    r = lib.SPX_finish_send(self._mbox)
        else:  # (an external library has no call that never waits: see _NOWAIT_SENDS)
            r = None if nowait else sp.SP_multicast(self._mbox, svc, g, mt, n, p)
        inflight.pop()
        if self._closed and not inflight:
            self._release()
        if r is None or r < 0:  # (None: nowait over an external library)
            if nowait:
                return MailboxBase._nowait_result(r, "multicast()", svc)
            raise_error(r, "multicast()")
        return r

    if nowait:
        multicast.__name__ = "_multicast_nowait"
        multicast.__qualname__ = "MailboxBase._multicast_nowait"
        multicast.__doc__ = "multicast() that never waits (see above)."
    else:
        multicast.__qualname__ = "MailboxBase.multicast"
        multicast.__doc__ = "Sends data to a group (or a private group); returns its length."
    return multicast


class MailboxBase:
    """The backend's connection object: spread.Mailbox (spread/_mailbox.py)
    subclasses it and adds the cold methods; the hot ones are these."""

    def _setup(self, mbox: int, private_group: bytes, bytes_names: bool) -> None:
        self._mbox = mbox
        self._closed = False
        self._released = True
        self._bytes_names = bytes_names
        # What receive() fills, described by C (cffi_fast.h), made once (under _busy).
        self._batch = Batch()
        self._busy = False
        self._last_group: object = None
        self._last_group_bytes: bytes | None = None
        # The attached receiver's state, never the receiver object: the
        # receiver holds its mailbox, and a reference back would make a cycle.
        self._rx = None
        self._lock = threading.Lock()  # makes disconnect() and the release happen once
        # Calls in progress (see _enter): a deque, whose append and pop allocate
        # nothing (a list's resize at every 0 <-> 1 costs a realloc each way).
        self._inflight: collections.deque[None] = collections.deque()
        self._failed_once = False  # the last receive failed (external libraries)
        if NATIVE:
            self._released = lib.SPX_hold(mbox) != 0
            lib.SPX_set_interruptible(mbox, 1)  # Ctrl-C ends a receive's wait
            lib.SPX_set_peek(mbox, 1)  # bursts in two system calls; fileno() stays exact

        self._private_group = (
            private_group if bytes_names else private_group.decode(NAME_ENCODING, "surrogateescape")
        )

    @property
    def private_group(self):
        """This connection's private group name, e.g. '#alice#localhost'."""
        return self._private_group

    def __del__(self):
        if getattr(self, "_mbox", None) is None:
            return
        if self._rx is not None:
            self._rx.close()  # the drain thread stops before the socket closes
        if not self._closed:
            sp.SP_disconnect(self._mbox)
        if not self._released:
            lib.SPX_release(self._mbox)

    # -- bookkeeping -------------------------------------------------------
    # The descriptor stays held (SPX_hold) while calls are in progress, so a
    # call racing with disconnect() from another thread gets ILLEGAL_SESSION
    # and never reaches a new connection that reused the number; the last one
    # out after disconnect() lets it go. _inflight's append and pop are atomic
    # under the interpreter lock: a call appends before it looks at _closed,
    # disconnect sets _closed before it looks at _inflight, so one of the two
    # always sees the other.
    def _enter(self, what: str) -> None:
        self._inflight.append(None)
        if self._closed:
            self._leave()
            raise error_class(lib.ILLEGAL_SESSION)(
                lib.ILLEGAL_SESSION, f"{what}() called on closed mbox"
            )

    def _leave(self) -> None:
        inflight = self._inflight
        inflight.pop()
        if self._closed and not inflight:
            self._release()

    def _release(self) -> None:
        with self._lock:
            if self._released:
                return
            self._released = True
        lib.SPX_release(self._mbox)

    @property
    def closed(self):
        """True once disconnect() (or kill()) has been called."""
        return self._closed

    @property
    def _descriptor(self):
        return self._mbox

    def _attached(self):
        """The receiver state that owns this mailbox's input, if any; one
        that was closed and has been drained lets go of the mailbox."""
        st = self._rx
        if st is not None and st.drained_and_closed():
            self._rx = st = None
        return st

    def fileno(self):
        """The socket descriptor, for select() and event loops (with a
        receiver attached: a descriptor readable while messages are queued)."""
        st = self._attached()
        if st is not None:
            return st.fileno()
        return -1 if self._closed else self._mbox

    def _close(self, polite: bool) -> None:
        """disconnect() (polite) or kill(); safe to call twice."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        st, self._rx = self._rx, None
        if st is not None:
            st.close()
        if polite:
            sp.SP_disconnect(self._mbox)
        else:
            sp.SP_kill(self._mbox)
        if not self._inflight:
            self._release()  # else the last call in progress does

    def _request(self, group: bytes, join: bool) -> int:
        """SP_join or SP_leave of a checked group name; the library's code."""
        self._enter("join" if join else "leave")
        try:
            return sp.SP_join(self._mbox, group) if join else sp.SP_leave(self._mbox, group)
        finally:
            self._leave()

    def poll(self):
        """The number of bytes waiting to be read (0 when none)."""
        st = self._attached()
        if st is not None:
            return st.pending_bytes()
        self._enter("poll")
        try:
            r = sp.SP_poll(self._mbox)
        finally:
            self._leave()
        if r < 0:
            raise_error(r, "poll()")
        return r

    # -- sending ---------------------------------------------------------------
    @staticmethod
    def _payload_arg(data):
        if isinstance(data, str):
            data = data.encode("utf-8")
        if type(data) is bytes:
            return data, len(data)
        buf = ffi.from_buffer(data)
        return buf, len(buf)

    def _many(self, service_type, groups, data, msg_type):
        """multigroup_multicast()'s arguments checked and marshalled: (svc,
        the names' slots, their count, msg_type, payload, its length)."""
        svc = _service(service_type)
        names = _args.group_list(groups)
        mt = _msg_type(msg_type)
        slots = ffi.new("char[][32]", len(names))
        for i, name in enumerate(names):
            ffi.memmove(slots[i], name, len(name))
        p, n = self._payload_arg(data)
        if n + SLOT * len(names) > MAX_BODY:
            raise_error(
                lib.MESSAGE_TOO_LONG, f"multigroup_multicast() of {n} bytes to {len(names)} groups"
            )
        return svc, slots, len(names), mt, p, n

    multicast = _multicast_method(nowait=False)

    def multigroup_multicast(self, service_type, groups, data, msg_type=0):
        """Sends one message to several groups (each receiver gets one copy)."""
        svc, slots, count, mt, p, n = self._many(service_type, groups, data, msg_type)
        self._enter("multigroup_multicast")
        try:
            if NATIVE:
                r = lib.cff_multigroup_multicast(self._mbox, svc, count, slots, mt, n, p)
                if r == _WOULD_BLOCK:
                    r = lib.SP_multigroup_multicast(self._mbox, svc, count, slots, mt, n, p)
                elif r == _PARTIAL:
                    r = lib.SPX_finish_send(self._mbox)
            else:
                r = sp.SP_multigroup_multicast(self._mbox, svc, count, slots, mt, n, p)
        finally:
            self._leave()
        if r < 0:
            raise_error(r, "multigroup_multicast()")
        return r

    # -- sends that never wait (spread.aio) ---------------------------------------
    # Private marshalling for an event loop's writer, as in the Cython
    # backend: the hot sends' checks, then one non-blocking attempt. They
    # return the length sent, SPX_WOULD_BLOCK (nothing sent) or SPX_PARTIAL
    # (the rest is the library's, for _finish_send_nowait from this thread);
    # errors raise. Over an external library (no such calls in it) every
    # attempt is SPX_WOULD_BLOCK, and _NOWAIT_SENDS tells the caller to send
    # with the blocking forms from a thread of its own instead.
    _NOWAIT_SENDS = NATIVE

    _multicast_nowait = _multicast_method(nowait=True)

    def _multigroup_multicast_nowait(self, service_type, groups, data, msg_type=0):
        """multigroup_multicast() that never waits (see above)."""
        svc, slots, count, mt, p, n = self._many(service_type, groups, data, msg_type)
        self._enter("multigroup_multicast")
        try:
            r = (
                lib.cff_multigroup_multicast(self._mbox, svc, count, slots, mt, n, p)
                if NATIVE
                else None
            )
        finally:
            self._leave()
        return self._nowait_result(r, "multigroup_multicast()", svc)

    @staticmethod
    def _nowait_result(r, where: str, svc: int) -> int:
        if r is None:  # an external library: the caller sends with the blocking form
            MailboxBase._check_service(svc)
            return lib.SPX_WOULD_BLOCK
        if r < 0 and r != lib.SPX_WOULD_BLOCK and r != lib.SPX_PARTIAL:
            raise_error(r, where)
        return r

    def _request_nowait(self, group: bytes, join: bool) -> int:
        """_request() that never waits: the library's code, SPX_WOULD_BLOCK or SPX_PARTIAL."""
        self._enter("join" if join else "leave")
        try:
            if not NATIVE:
                return lib.SPX_WOULD_BLOCK
            return (
                lib.SPX_join_nowait(self._mbox, group)
                if join
                else lib.SPX_leave_nowait(self._mbox, group)
            )
        finally:
            self._leave()

    def _finish_send_nowait(self) -> int:
        """After SPX_PARTIAL: the length once all is sent, or SPX_PARTIAL again."""
        self._enter("multicast")
        try:
            r = lib.cff_finish_send(self._mbox) if NATIVE else lib.ILLEGAL_SESSION
        finally:
            self._leave()
        if r < 0 and r != lib.SPX_PARTIAL:
            raise_error(r, "multicast()")
        return r

    def _abort_send(self) -> None:
        """After SPX_PARTIAL: gives the rest up and fails the connection."""
        if not self._closed and NATIVE:
            lib.SPX_abort_send(self._mbox)

    @staticmethod
    def _check_service(service_type) -> int:
        """The service type as an int if a send may carry it; IllegalService otherwise."""
        svc = _service(service_type)
        if lib.SPX_check_service(svc) != 0:
            raise_error(lib.ILLEGAL_SERVICE, f"service_type {svc:#x}")
        return svc

    # -- receiving -------------------------------------------------------------
    def receive(self):
        """Blocks until a message arrives; returns a RegularMsg or MembershipMsg."""
        st = self._rx
        if st is not None:
            if st.closed:  # (only a closed one lets go, once drained: see _attached)
                st = self._attached()
            if st is not None:
                try:
                    return st.get_batch(self, 1, None)[0]
                except ReceiverClosed:
                    self._rx = None  # closed meanwhile: read the socket again
        inflight = self._inflight
        inflight.append(None)  # _enter and _leave, written out
        if self._closed:
            self._leave()
            self._enter("receive")
        try:
            own = not self._busy
            if own:
                self._busy = True
                batch = self._batch
            else:  # another thread is receiving into ours: use one of our own
                batch = Batch()
            try:
                receive, mbox, b = _SP_RECEIVE, self._mbox, batch.b
                while True:
                    if not NATIVE and not self._failed_once:
                        # An external library waits uninterruptibly: wait in
                        # Python's poll, where signal handlers (Ctrl-C) run.
                        # Not right after an error, which may have ended the
                        # session: the library then answers at once.
                        poller = select.poll()
                        poller.register(self._mbox, select.POLLIN)
                        poller.poll()
                    self._failed_once = False
                    # A message that has arrived is taken keeping the interpreter
                    # lock (our library: peeked read-ahead); else one call that
                    # may wait: the receive, its buffers grown, the message described.
                    n = _cff_receive(mbox, b) if NATIVE else _WOULD_BLOCK
                    if n == _WOULD_BLOCK:  # (any other code is the message's outcome)
                        n = _cffw_receive(receive, mbox, b)
                    if n > 0:
                        out: list[Any] = []
                        batch.build(self._bytes_names, n, out)
                        return out[0]
                    if n == lib.SPX_INTERRUPTED:
                        time.sleep(0)  # lets a pending signal handler run (Ctrl-C)
                    elif n == lib.SPX_NO_MEMORY:
                        raise MemoryError()
                    else:
                        self._failed_once = True
                        raise_error(n, "receive()")
            finally:
                if own:
                    self._busy = False
        finally:
            inflight.pop()
            if self._closed and not inflight:
                self._release()

    def _receive_raw(self, max_groups, max_len, service_in=0):
        """SP_receive with caller-sized buffers, for tests of the C semantics."""
        svc = ffi.new("service *", service_in)
        sender = ffi.new("char[32]")
        num_groups = ffi.new("int *")
        mess_type = ffi.new("short *")
        endian = ffi.new("int *")
        groups = ffi.new("char[][32]", max(max_groups, 1))
        buf = ffi.new("char[]", max(max_len, 1))
        self._enter("receive")
        try:
            r = sp.SP_receive(
                self._mbox,
                svc,
                sender,
                max_groups,
                num_groups,
                groups,
                mess_type,
                endian,
                max_len,
                buf,
            )
        finally:
            self._leave()
        kept = min(abs(num_groups[0]), max_groups) if r >= 0 or r == lib.BUFFER_TOO_SHORT else 0
        stored = (
            r
            if r >= 0
            else (max_len if r == lib.BUFFER_TOO_SHORT and service_in & lib.DROP_RECV else 0)
        )
        return (
            r,
            svc[0],
            slot(ffi.buffer(sender, SLOT)[:], True),
            num_groups[0],
            list(slots(groups, kept, True)),
            mess_type[0],
            endian[0],
            ffi.buffer(buf, min(stored, max_len))[:],
        )


def connect_raw(cls, d: bytes, nm: bytes, prio: int, memb: bool, as_bytes: bool, secs, sbuf: int):
    """SPX_connect (or an external library's SP_connect) with arguments
    spread.connect() has checked, retried when a signal handler returns;
    (ACCEPT_SESSION, a cls over the connection) or (the error code, None)."""
    mbox = ffi.new("mailbox *", -1)
    group = ffi.new("char[32]")
    if NATIVE:
        deadline = None if secs is None else time.monotonic() + secs
        while True:
            ms = -1 if deadline is None else _args.ms_until(deadline)
            r = lib.SPX_connect(d, nm, prio, int(memb), mbox, group, ms, 1, sbuf)
            if r != lib.SPX_INTERRUPTED:
                break
            time.sleep(0)  # lets a pending signal handler run (Ctrl-C raises here)
    else:
        if sbuf != _args.SOCKET_BUFFER_DEFAULT:
            # Spread's SP_connect sizes its socket itself, before connecting.
            raise ValueError(
                f"socket_buffer={sbuf!r}: SPREAD_LIBRARY={LIBRARY} "
                "sizes its own socket buffers; only None is possible with it"
            )
        r = _external_connect(d, nm, prio, int(memb), mbox, group, secs)
    if r != lib.ACCEPT_SESSION:
        return r, None
    mb = MailboxBase.__new__(cls)
    mb._mbox = None  # until set up, nothing to close in __del__
    mb._setup(mbox[0], ffi.string(group), as_bytes)
    return r, mb


def _external_connect(d, nm, prio, memb, mbox, group, secs):
    """SP_connect(_timeout) of an external library, which waits deaf to
    signals: it runs in a thread of its own while this one waits where
    Ctrl-C works. A connection made after the caller gave up is closed."""
    outcome = []
    gave_up = threading.Event()

    def run():
        if secs is None:
            r = sp.SP_connect(d, nm, prio, memb, mbox, group)
        else:
            t = ffi.new("sp_time *")
            t.sec = int(secs)
            t.usec = int((secs - t.sec) * 1000000) or (0 if t.sec else 1)
            r = sp.SP_connect_timeout(d, nm, prio, memb, mbox, group, t[0])
        outcome.append(r)
        if gave_up.is_set() and r == lib.ACCEPT_SESSION:
            sp.SP_disconnect(mbox[0])

    start = time.monotonic()
    worker = threading.Thread(target=run, name="spread-connect", daemon=True)
    worker.start()
    try:
        while worker.is_alive():
            worker.join(0.05)
    except BaseException:
        gave_up.set()
        raise
    r = outcome[0]
    # Spread's library reports a time-out as a closed or failed connection.
    if (
        secs is not None
        and r in (lib.CONNECTION_CLOSED, lib.COULD_NOT_CONNECT)
        and time.monotonic() - start >= secs
    ):
        return lib.SPX_TIMED_OUT
    return r
