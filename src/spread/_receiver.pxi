# _receiver.pxi -- ThreadedReceiver's hot half: Python's side of the native
# receiver, native/binding/receiver*.c (included by _core.pyx after
# MailboxBase). The drain thread is
# pure C; Python objects are built only when a consumer takes messages.
# spread/_receiver.py adds the cold half (options, close, stats).
#
# Who holds whom: a receiver holds its mailbox and its _RxState; the mailbox
# holds the _RxState only. No cycle, so a dropped pair is freed at once.

import os
import time

from ._errors import Empty, IllegalMessage, ReceiverClosed

DEF BATCH_PEEK = 1024  # a get_batch(1000) is one peek and one list
DEF HELP_EVERY = 64

from cpython.list cimport PyList_New, PyList_SET_ITEM

# The consumer's common case, inline: a data message from the last sender to
# the last single group (callgrind: memcmp's calls and the dispatch through
# _message were ~40 of the ~520 instructions a 1 KB message costs a consumer).
cdef extern from *:
    """
    #include <stdint.h>
    #include <string.h>
    static inline int spread_slot_eq(const char *a, const char *b) {
        uint64_t x[4], y[4];
        memcpy(x, a, 32);
        memcpy(y, b, 32);
        return ((x[0] ^ y[0]) | (x[1] ^ y[1]) | (x[2] ^ y[2]) | (x[3] ^ y[3])) == 0;
    }
    /* A list's length cut to the items set so far (the rest are NULL). */
    static inline void spread_list_truncate(PyObject *list, Py_ssize_t n) {
        Py_SET_SIZE(list, n);
    }
    """
    bint spread_slot_eq(const char *a, const char *b) nogil
    void spread_list_truncate(object lst, Py_ssize_t n)

# The consumers' turn is a plain mutex: a Python lock's non-blocking acquire
# reads the clock (~140 instructions, callgrind), paid by every classic
# receive() through a receiver.
cdef extern from "<pthread.h>" nogil:
    ctypedef struct pthread_mutex_t:
        pass
    int pthread_mutex_init(pthread_mutex_t *m, const void *attr)
    int pthread_mutex_destroy(pthread_mutex_t *m)
    int pthread_mutex_lock(pthread_mutex_t *m)
    int pthread_mutex_trylock(pthread_mutex_t *m)
    int pthread_mutex_unlock(pthread_mutex_t *m)


cdef inline object _timeout(object t):
    """get()'s time-out: None, or seconds (checked by _args unless plainly fine)."""
    if t is None or (type(t) is float and 0.0 <= <double>t <= 1e9):
        return t
    return _args.seconds(t, "timeout", zero_ok=True)


cdef inline object _queued_message(MailboxBase mb, const spr_msg *m):
    """mb._message for a queued record: the same object, the usual case
    built here."""
    cdef RegularMsg msg
    cdef const char *g = <const char *>spx_record_groups(m)
    if (Is_membership_mess(m.service) or m.num_groups != 1 or mb._last_ngroups != 1
            or mb._last_sender_obj is None or not spread_slot_eq(m.sender, mb._last_sender)
            or not spread_slot_eq(g, mb._last_groups[0])):
        return mb._message(m.service, m.sender, spx_record_groups(m), m.num_groups,
                           m.mess_type, m.endian, spx_record_data(m), m.data_len)
    msg = RegularMsg.__new__(RegularMsg)
    msg.sender = mb._last_sender_obj
    msg.groups = mb._last_groups_obj
    msg.message = mb._payload(spx_record_data(m), m.data_len)
    msg.msg_type = m.mess_type
    msg.endian = m.endian
    msg.service_type = m.service
    return msg


cdef class _RxState:
    """One native receiver (its queue, thread and consumer lock), shared by
    the receiver object and, while attached, its mailbox."""
    cdef spr_receiver *_r
    cdef pthread_mutex_t _consumer
    cdef bint _consumer_made
    cdef int _since_help              # messages taken since the consumer last helped
    cdef readonly bint closed
    cdef object __weakref__

    def __dealloc__(self):
        if self._r != NULL:
            with nogil:
                spr_free(self._r)
            self._r = NULL
        if self._consumer_made:
            pthread_mutex_destroy(&self._consumer)

    def close(self):
        """Stops the thread, even while it waits in receive; idempotent."""
        if self.closed or self._r == NULL:
            return
        self.closed = True
        with nogil:
            spr_close(self._r)

    def stats(self):
        """spr_get_stats as a tuple, in spread/_receiver.py's STATS order."""
        cdef spr_stats st
        spr_get_stats(self._r, &st)
        return (st.received, st.received_by_consumers, st.delivered, st.backlog_messages,
                st.backlog_bytes, st.peak_messages, st.peak_bytes, st.first_at, st.last_at,
                st.state, st.error)

    cdef int fileno(self):
        if self.closed and self._drained_and_closed():
            return -1
        return spr_fileno(self._r)

    cdef bint _drained_and_closed(self):
        # (From stats, not spr_peek: fileno() is no consumer and may run beside one.)
        cdef spr_stats st
        spr_get_stats(self._r, &st)
        return st.state == SPR_CLOSED and st.backlog_messages == 0

    cdef int pending_bytes(self):
        return <int>spr_pending_bytes(self._r)

    cdef int _raise_end(self, MailboxBase mb) except -1:
        """Raises why no message will come, once the queue is empty."""
        cdef spr_stats st
        spr_get_stats(self._r, &st)
        # One snapshot: messages queued before the end are taken before it.
        if st.state == SPR_RUNNING or st.backlog_messages > 0:
            return 0
        if st.state == SPR_OVERFLOWED:
            mb._do_close(False)
        raise _ends.end_error(st.state, st.error, _error_text(st.error))

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

    cdef int _lock(self) except -1:
        """Consumers take turns: building objects can run Python code (a
        garbage collection's finalizers), and with it another thread."""
        if pthread_mutex_trylock(&self._consumer) != 0:
            with nogil:
                pthread_mutex_lock(&self._consumer)
        return 0

    cdef list _take(self, MailboxBase mb, int max_messages):
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
                chunk = PyList_New(n)  # its items are set below, in order
                i = 0
                try:
                    while i < n:
                        msg = _queued_message(mb, ms[i])
                        Py_INCREF(msg)  # (the list takes this reference)
                        PyList_SET_ITEM(chunk, i, msg)
                        i += 1
                except IllegalMessage:
                    spread_list_truncate(chunk, i)  # the messages built before it
                    if i == 0 and not out:
                        spr_consume(self._r, 1)
                        raise
                    spr_consume(self._r, i)  # the bad one comes next, alone
                    out.extend(chunk)
                    return out
                except BaseException:
                    spread_list_truncate(chunk, i)
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
            pthread_mutex_unlock(&self._consumer)

    cdef object take_one(self, MailboxBase mb):
        """The next queued message for a classic receive(), or None (none is
        queued, it is a membership notice, the drain thread wants help, or
        another consumer has the turn): then get_batch, which sorts that out
        (a notice whose body is bad fails there, alone). No list is made."""
        cdef const spr_msg *m
        if self._since_help >= HELP_EVERY:
            return None
        if pthread_mutex_trylock(&self._consumer) != 0:
            return None
        if spr_peek(self._r, &m, 1) == 0 or Is_membership_mess(m.service):
            pthread_mutex_unlock(&self._consumer)
            return None
        try:
            msg = _queued_message(mb, m)  # (a data message: only MemoryError can come)
            spr_consume(self._r, 1)
            self._since_help += 1
            return msg
        finally:
            pthread_mutex_unlock(&self._consumer)

    cdef list get_batch(self, MailboxBase mb, int max_messages, object timeout):
        while True:
            out = self._take(mb, max_messages)
            if out:
                return out
            self._raise_end(mb)
            out = self._take(mb, max_messages)  # what arrived before the end
            if out:
                return out
            self._wait(timeout)


def start_receiver(cls, MailboxBase mb, size_t limit, bint block):
    """Starts the native receiver on mb and returns a cls (a subclass of
    ReceiverBase) holding it; options already checked by spread._receiver."""
    cdef spr_library lib
    spl_receiver_library(&lib)  # (native/binding/library.c: ours, or SPREAD_LIBRARY's)
    cdef int policy = SPR_OVERFLOW_BLOCK if block else SPR_OVERFLOW_DISCONNECT
    cdef int err = 0
    cdef _RxState st = _RxState.__new__(_RxState)
    if pthread_mutex_init(&st._consumer, NULL) != 0:
        raise MemoryError()
    st._consumer_made = True
    mb._enter("start_receiver")
    try:
        if mb._attached() is not None:  # a closed one lets go once drained
            raise ValueError("this mailbox already has a receiver")
        with nogil:
            st._r = spr_start(mb._mbox, &lib, limit, policy, &err)
        if st._r == NULL:
            raise OSError(err, f"cannot start the receiver: {os.strerror(err)}")
        mb._rx = st
    finally:
        mb._leave()
    cdef ReceiverBase rx = ReceiverBase.__new__(cls)
    rx.mailbox = mb
    rx._state = st
    return rx


cdef class ReceiverBase:
    """The backend's receiver object: spread.ThreadedReceiver
    (spread/_receiver.py) subclasses it and adds the cold methods; the hot
    ones are these."""
    cdef readonly MailboxBase mailbox
    cdef readonly _RxState _state
    cdef object __weakref__

    def fileno(self):
        """A descriptor readable exactly while messages are queued (or an
        error waits to be raised), for select, selectors and asyncio; -1
        once the receiver is closed and every message has been taken."""
        return self._state.fileno()

    def get(self, timeout=None):
        """The next message (RegularMsg or MembershipMsg). Blocks without the
        GIL; raises spread.Empty after timeout seconds, and the connection's
        error once every message received before it has been taken."""
        return self._state.get_batch(self.mailbox, 1, _timeout(timeout))[0]

    def get_nowait(self):
        """The next message, or spread.Empty at once."""
        return self._state.get_batch(self.mailbox, 1, 0)[0]

    def get_batch(self, max_messages, timeout=None):
        """Up to max_messages messages (at least one), waiting like get()."""
        cdef long n
        if not _small_int(max_messages, 1, INT_MAX, &n):
            n = _args.batch_size(max_messages)
        return self._state.get_batch(self.mailbox, <int>n, _timeout(timeout))

    def __iter__(self):
        return self

    def __next__(self):
        try:
            return self._state.get_batch(self.mailbox, 1, None)[0]
        except ReceiverClosed:
            raise StopIteration
