"""The cffi backend's receiver: the native drain thread's state (_RxState)
and ReceiverBase, whose hot methods (get, get_nowait, get_batch, __next__,
fileno) are written out for cffi's costs. spread/_receiver.py adds the cold
half.

Who holds whom: a receiver holds its mailbox and its _RxState; the mailbox
holds the _RxState only. No cycle, so a dropped pair is freed at once."""

from __future__ import annotations

import os
import threading
import time
from typing import Any

from .. import _args, _ends
from .._errors import Empty, IllegalMessage, ReceiverClosed
from .batch import Batch
from .library import NATIVE, error_text, ffi, lib

__all__ = ["ReceiverBase", "start_receiver"]

_HELP_DUE = lib.CFF_HELP_DUE
_cff_take, _cff_consume = lib.cff_take, lib.cff_consume


def _native_library():
    """The library the drain thread calls (native/binding/library.c: Spread's
    API from whichever library runs, our extensions only from ours)."""
    libs = ffi.new("spr_library *")
    lib.spl_receiver_library(libs)
    return libs


def _timeout(t):
    """get()'s time-out: None, or seconds (checked by _args unless plainly fine)."""
    if t is None or (type(t) is float and 0.0 <= t <= 1e9):
        return t
    return _args.seconds(t, "timeout", zero_ok=True)


class _RxState:
    """One native receiver (its queue, thread and consumer lock), shared by
    the receiver object and, while attached, its mailbox."""

    __slots__ = ("_r", "_libs", "_consumer", "_batch", "_help", "_ended", "closed", "__weakref__")
    _r: Any
    _libs: Any

    def __init__(self):
        self._r = ffi.NULL
        self._consumer = threading.Lock()
        self._batch = Batch()  # what consumers take, described by C (under _consumer)
        # Our library's spr_help never waits: cff_take helps itself. An
        # external one's may, so it is called here, without the lock.
        self._help = lib.CFF_HELP_INLINE if NATIVE else lib.CFF_HELP_ASK
        self._ended = False  # the last look found the queue empty and the receiver ended
        self.closed = False

    def __del__(self):
        if self._r != ffi.NULL:
            lib.spr_free(self._r)
            self._r = ffi.NULL

    def close(self):
        """Stops the thread, even while it waits in receive; idempotent."""
        if self.closed or self._r == ffi.NULL:
            return
        self.closed = True
        lib.spr_close(self._r)

    def _stats(self):
        st = ffi.new("spr_stats *")
        lib.spr_get_stats(self._r, st)
        return st

    def stats(self):
        """spr_get_stats as a tuple, in spread/_receiver.py's STATS order."""
        st = self._stats()
        return (
            st.received,
            st.received_by_consumers,
            st.delivered,
            st.backlog_messages,
            st.backlog_bytes,
            st.peak_messages,
            st.peak_bytes,
            st.first_at,
            st.last_at,
            st.state,
            st.error,
        )

    def fileno(self):
        if self.closed and self.drained_and_closed():
            return -1
        return lib.spr_fileno(self._r)

    def drained_and_closed(self):
        if not self.closed:  # (SPR_CLOSED comes from close() only; receive() asks every time)
            return False
        # (From stats, not spr_peek: this is no consumer and may run beside one.)
        st = self._stats()
        return st.state == lib.SPR_CLOSED and st.backlog_messages == 0

    def pending_bytes(self):
        return lib.spr_pending_bytes(self._r)

    def _raise_end(self, mb):
        st = self._stats()
        # One snapshot: messages queued before the end are taken before it.
        if st.state == lib.SPR_RUNNING or st.backlog_messages > 0:
            return
        if st.state == lib.SPR_OVERFLOWED:
            mb._close(False)
        raise _ends.end_error(st.state, st.error, error_text(st.error))

    def _wait(self, timeout):
        if timeout == 0:  # cff_take has just looked, and taken what the socket held
            raise Empty()
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            ms = -1 if deadline is None else _args.ms_until(deadline)
            w = lib.spr_wait(self._r, ms)
            if w > 0:
                return
            if w < 0:
                time.sleep(0)  # lets a pending signal handler run (Ctrl-C)
            elif deadline is not None and time.monotonic() >= deadline:
                raise Empty()

    def _take(self, mb, max_messages):
        """Builds and removes up to max_messages queued messages; a message
        leaves the queue only once its object exists (see the Cython twin).
        One cffi call describes up to CFF_BATCH messages and one removes
        them; neither gives up the interpreter lock."""
        out: list[Any] = []
        r, batch, as_bytes = self._r, self._batch, mb._bytes_names
        b = batch.b
        lock = self._consumer
        lock.acquire()  # (a with statement costs this path ~1,000 instructions more)
        try:
            while max_messages > 0:
                n = _cff_take(r, b, max_messages, self._help)
                if n == _HELP_DUE:  # an external library's help may wait: unlocked
                    lib.spr_help(r)
                    n = _cff_take(r, b, max_messages, lib.CFF_HELP_DONE)
                if n <= 0:
                    self._ended = n == lib.CFF_ENDED
                    if n == lib.SPX_NO_MEMORY and not out:
                        raise MemoryError()
                    break
                before = len(out)
                try:
                    n = batch.build(as_bytes, n, out)
                except IllegalMessage:
                    # Never buildable (a malformed membership body): it fails alone.
                    if not out:
                        _cff_consume(r, 1)
                        raise
                    _cff_consume(r, len(out) - before)
                    return out
                except BaseException:
                    built = len(out) - before
                    if built:
                        _cff_consume(r, built)
                    if out:
                        return out
                    raise
                _cff_consume(r, n)
                max_messages -= n
        finally:
            lock.release()
        return out

    def get_batch(self, mb, max_messages, timeout):
        while True:
            out = self._take(mb, max_messages)
            if out:
                return out
            if self._ended:
                self._raise_end(mb)
                out = self._take(mb, max_messages)  # what arrived before the end
                if out:
                    return out
            self._wait(timeout)


def start_receiver(cls, mb, limit: int, block: bool):
    """Starts the native receiver on mb and returns a cls (a subclass of
    ReceiverBase) holding it; options already checked by spread._receiver."""
    policy = lib.SPR_OVERFLOW_BLOCK if block else lib.SPR_OVERFLOW_DISCONNECT
    st = _RxState()
    mb._enter("start_receiver")
    try:
        if mb._attached() is not None:  # a closed one lets go once drained
            raise ValueError("this mailbox already has a receiver")
        st._libs = _native_library()  # kept alive as long as the thread runs
        err = ffi.new("int *")
        r = lib.spr_start(mb._mbox, st._libs, limit, policy, err)
        if r == ffi.NULL:
            raise OSError(err[0], f"cannot start the receiver: {os.strerror(err[0])}")
        st._r = r
        mb._rx = st
    finally:
        mb._leave()
    rx = object.__new__(cls)
    rx._mailbox = mb
    rx._state = st
    return rx


class ReceiverBase:
    """The backend's receiver object: spread.ThreadedReceiver
    (spread/_receiver.py) subclasses it and adds the cold methods; the hot
    ones are these."""

    __slots__ = ("_mailbox", "_state", "__weakref__")
    _mailbox: Any
    _state: _RxState

    @property
    def mailbox(self):
        """The mailbox this receiver drains."""
        return self._mailbox

    def fileno(self):
        """A descriptor readable exactly while messages are queued (or an
        error waits to be raised), for select, selectors and asyncio; -1
        once the receiver is closed and every message has been taken."""
        return self._state.fileno()

    def get(self, timeout=None):
        """The next message (RegularMsg or MembershipMsg). Blocks without the
        GIL; raises spread.Empty after timeout seconds, and the connection's
        error once every message received before it has been taken."""
        return self._state.get_batch(self._mailbox, 1, _timeout(timeout))[0]

    def get_nowait(self):
        """The next message, or spread.Empty at once."""
        return self._state.get_batch(self._mailbox, 1, 0)[0]

    def get_batch(self, max_messages, timeout=None):
        """Up to max_messages messages (at least one), waiting like get()."""
        if not (type(max_messages) is int and max_messages >= 1):
            max_messages = _args.batch_size(max_messages)
        return self._state.get_batch(self._mailbox, max_messages, _timeout(timeout))

    def __iter__(self):
        return self

    def __next__(self):
        try:
            return self._state.get_batch(self._mailbox, 1, None)[0]
        except ReceiverClosed:
            raise StopIteration from None
