# _receiver.pxi -- ThreadedReceiver: Python's side of native/receiver.c
# (included by _core.pyx after Mailbox). The drain thread is pure C; Python
# objects are built only when a consumer takes messages.

import atexit
import os
import time
import weakref

from ._errors import BacklogOverflow, Empty, IllegalMessage, ReceiverClosed

DEF BATCH_PEEK = 256
DEF HELP_EVERY = 64

cdef object _live_receivers = weakref.WeakSet()


@atexit.register
def _close_live_receivers():
    for rx in list(_live_receivers):
        rx.close()


cdef inline object _timeout(object t):
    """get()'s time-out: None, or seconds (checked by _args unless plainly fine)."""
    if t is None or (type(t) is float and 0.0 <= <double>t <= 1e9):
        return t
    return _args.seconds(t, "timeout", zero_ok=True)


cdef spr_library _native_library():
    cdef spr_library lib
    lib.receive = <spr_receive_fn>SP_receive
    lib.disconnect = SP_disconnect
    lib.hold = SPX_hold
    lib.release = SPX_release
    lib.readahead = SPX_set_readahead
    lib.pending = SPX_pending
    lib.records = SPX_receive_records_nowait
    lib.lend = SPX_lend_readahead
    lib.lent_room = SPX_lent_room
    return lib


cdef class ThreadedReceiver:
    """Drains a mailbox in a background thread so the daemon never sees a
    slow reader; take messages with get(), get_batch() or iteration.

    max_backlog_bytes: None (unbounded, the default) or the most payload bytes
    to hold (one read of up to 256 KiB may pass it). on_overflow: "disconnect" (leave the daemon cleanly; get()
    raises BacklogOverflow once the queued messages are taken) or "block"
    (stop draining until the consumer catches up; the daemon's own
    slow-reader rule then applies).
    """
    cdef spr_receiver *_r
    cdef PyThread_type_lock _consumer
    cdef int _since_help              # messages taken since the consumer last helped
    cdef readonly Mailbox mailbox
    cdef bint _closed
    cdef object __weakref__

    def __cinit__(self, mailbox, *args, **options):
        cdef spr_library lib = _native_library()
        cdef size_t limit = 0
        cdef int policy, err = 0
        if not isinstance(mailbox, Mailbox):
            raise TypeError(f"ThreadedReceiver needs a spread Mailbox, not "
                            f"{type(mailbox).__name__}")
        cdef Mailbox mb = <Mailbox>mailbox
        limit, block = _args.start_receiver(*args, **options)
        policy = SPR_OVERFLOW_BLOCK if block else SPR_OVERFLOW_DISCONNECT
        self._consumer = PyThread_allocate_lock()
        if self._consumer == NULL:
            raise MemoryError()
        mb._enter("start_receiver")
        try:
            if mb._attached() is not None:  # a closed one lets go once drained
                raise ValueError("this mailbox already has a receiver")
            with nogil:
                self._r = spr_start(mb._mbox, &lib, limit, policy, &err)
            if self._r == NULL:
                raise OSError(err, f"cannot start the receiver: {os.strerror(err)}")
            self.mailbox = mb
            mb._receiver = self
        finally:
            mb._leave()
        _live_receivers.add(self)

    def __dealloc__(self):
        if self._r != NULL:
            with nogil:
                spr_free(self._r)
            self._r = NULL
        if self._consumer != NULL:
            PyThread_free_lock(self._consumer)

    def close(self):
        """Stops the thread, even while it waits in receive. Queued messages
        stay readable."""
        if self._closed:
            return
        self._closed = True
        with nogil:
            spr_close(self._r)

    @property
    def closed(self):
        return self._closed

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def fileno(self):
        """A descriptor readable exactly while messages are queued (or an
        error waits to be raised), for select, selectors and asyncio; -1
        once the receiver is closed and every message has been taken."""
        if self._closed and self._drained_and_closed():
            return -1
        return spr_fileno(self._r)

    def qsize(self):
        """The number of messages queued."""
        cdef spr_stats st
        spr_get_stats(self._r, &st)
        return st.backlog_messages

    @property
    def backlog_bytes(self):
        """Payload bytes queued."""
        cdef spr_stats st
        spr_get_stats(self._r, &st)
        return st.backlog_bytes

    @property
    def stats(self):
        """Counters: received (of which received_by_consumers: taken off the
        socket by a waiting consumer itself rather than the drain thread),
        delivered, backlog and peak backlog (messages, bytes), and the drain
        rate so far (messages per second taken off the socket, first to
        latest)."""
        cdef spr_stats st
        spr_get_stats(self._r, &st)
        span = st.last_at - st.first_at
        return {"received": st.received, "received_by_consumers": st.received_by_consumers,
                "delivered": st.delivered,
                "backlog_messages": st.backlog_messages, "backlog_bytes": st.backlog_bytes,
                "peak_backlog_messages": st.peak_messages, "peak_backlog_bytes": st.peak_bytes,
                "drain_rate": (st.received - 1) / span if span > 0 else 0.0}

    cdef int _raise_end(self) except -1:
        """Raises why no message will come, once the queue is empty."""
        cdef spr_stats st
        spr_get_stats(self._r, &st)
        # One snapshot: messages queued before the end are taken before it.
        if st.state == SPR_RUNNING or st.backlog_messages > 0:
            return 0
        if st.state == SPR_FAILED:
            _raise(st.error, "receive()")
        if st.state == SPR_OVERFLOWED:
            self.mailbox._close(False)
            raise BacklogOverflow(CONNECTION_CLOSED,
                                  "receiver backlog passed max_backlog_bytes; disconnected")
        raise ReceiverClosed(ILLEGAL_SESSION, "the receiver is closed and drained")

    cdef int _wait(self, object timeout) except -1:
        """Waits for a message or an end; raises Empty after timeout seconds
        (a number checked by get_batch)."""
        cdef int ms, w
        cdef double deadline = 0
        if timeout is not None:
            deadline = time.monotonic() + timeout
        while True:
            ms = -1 if timeout is None else _args.ms_until(deadline)
            with nogil:
                w = spr_wait(self._r, ms)
            if w > 0:
                return 0
            if w < 0:
                PyErr_CheckSignals()  # Ctrl-C
            elif timeout is not None and time.monotonic() >= deadline:
                raise Empty()

    cdef object _build(self, const spr_msg *m):
        return self.mailbox._message(m.service, m.sender, spx_record_groups(m), m.num_groups,
                                     m.mess_type, m.endian, spx_record_data(m), m.data_len)

    cdef int _lock(self) except -1:
        """Consumers take turns: building objects can run Python code (a
        garbage collection's finalizers), and with it another thread."""
        if not PyThread_acquire_lock(self._consumer, NOWAIT_LOCK):
            with nogil:
                PyThread_acquire_lock(self._consumer, WAIT_LOCK)
        return 0

    cdef list _take(self, int max_messages):
        """Builds and removes up to max_messages queued messages. A message
        leaves the queue only once its object exists, so a failure loses
        nothing: what was built is returned, the rest stays queued. A message
        that can never be built (IllegalMessage: a malformed membership body)
        fails alone: it is removed as its error is raised, once the messages
        before it have been returned."""
        cdef const spr_msg *ms[BATCH_PEEK]
        cdef int n, i = 0
        out = []
        self._lock()
        try:
            # If the drain thread waits for a CPU while this one runs, take what
            # the socket holds from here (at most every HELP_EVERY messages, and
            # whenever the queue has run dry), so the daemon still sees a reader.
            if self._since_help >= HELP_EVERY or spr_peek(self._r, ms, 1) == 0:
                self._since_help = 0
                spr_help(self._r)  # never waits: keeping the GIL is cheaper than a hand-over
            while max_messages > 0:
                n = spr_peek(self._r, ms, min(max_messages, BATCH_PEEK))
                if n == 0:
                    break
                chunk = [None] * n
                try:
                    for i in range(n):
                        chunk[i] = self._build(ms[i])
                except IllegalMessage:
                    if i == 0 and not out:
                        spr_consume(self._r, 1)
                        raise
                    spr_consume(self._r, i)  # the bad one comes next, alone
                    out.extend(chunk[:i])
                    return out
                except BaseException:
                    if out:
                        return out  # the error comes back on the next call
                    raise
                spr_consume(self._r, n)
                self._since_help += n
                if not out:
                    out = chunk
                else:
                    out.extend(chunk)
                max_messages -= n
            return out
        finally:
            PyThread_release_lock(self._consumer)

    def get(self, timeout=None):
        """The next message (RegularMsg or MembershipMsg). Blocks without the
        GIL; raises spread.Empty after timeout seconds, and the connection's
        error once every message received before it has been taken."""
        return self._get_batch(1, _timeout(timeout))[0]

    def get_nowait(self):
        """The next message, or spread.Empty at once."""
        return self._get_batch(1, 0)[0]

    def get_batch(self, max_messages, timeout=None):
        """Up to max_messages messages (at least one), waiting like get()."""
        cdef long n
        if not _small_int(max_messages, 1, INT_MAX, &n):
            n = _args.batch_size(max_messages)
        return self._get_batch(<int>n, _timeout(timeout))

    cdef list _get_batch(self, int max_messages, object timeout):
        while True:
            out = self._take(max_messages)
            if out:
                return out
            self._raise_end()
            out = self._take(max_messages)  # what arrived before the end
            if out:
                return out
            self._wait(timeout)

    def __iter__(self):
        return self

    def __next__(self):
        try:
            return self._get_batch(1, None)[0]
        except ReceiverClosed:
            raise StopIteration

    cdef bint _drained_and_closed(self):
        cdef const spr_msg *m
        cdef spr_stats st
        spr_get_stats(self._r, &st)
        return st.state == SPR_CLOSED and spr_peek(self._r, &m, 1) == 0

    cdef int _poll_bytes(self):
        cdef spr_stats st
        spr_get_stats(self._r, &st)
        return <int>(st.backlog_bytes + 48 * st.backlog_messages)
