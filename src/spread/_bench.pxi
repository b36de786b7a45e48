# _bench.pxi -- the C baseline loops of native/bench/bench.c, for spread.bench
# (included by _core.pyx). Each runs with the GIL released.


cdef mailbox _bench_mailbox(MailboxBase m, str what) except -1:
    m._enter(what)
    m._leave()
    return m._mbox


def c_multicast(MailboxBase m, group, int size, int count, int last_type=0):
    """Seconds to multicast count messages of size bytes (C loop)."""
    cdef bytes g = _args.group_bytes(group)
    cdef const char *gp = g
    cdef mailbox mb = _bench_mailbox(m, "c_multicast")
    cdef double seconds = 0
    cdef int r
    with nogil:
        r = spb_multicast(mb, gp, size, count, <int16>last_type, &seconds)
    if r < 0:
        _raise(r, "c_multicast")
    return seconds


def c_self(MailboxBase m, group, int size, int count, int window):
    """Seconds to send count messages to a joined group and read them back."""
    cdef bytes g = _args.group_bytes(group)
    cdef const char *gp = g
    cdef mailbox mb = _bench_mailbox(m, "c_self")
    cdef double seconds = 0
    cdef int r
    with nogil:
        r = spb_self(mb, gp, size, count, window, &seconds)
    if r < 0:
        _raise(r, "c_self")
    return seconds


def c_receive(MailboxBase m, int end_type):
    """(messages, seconds first to last, error code or 0) until end_type."""
    cdef mailbox mb = _bench_mailbox(m, "c_receive")
    cdef long n = 0
    cdef double seconds = 0
    cdef int error = 0
    with nogil:
        spb_receive(mb, <int16>end_type, &n, &seconds, &error)
    return n, seconds, error


def c_ping(MailboxBase m, peer_group, int size, int warmup, int rounds):
    """Round-trip times in microseconds (C loop)."""
    cdef bytes g = _args.group_bytes(peer_group)
    cdef const char *gp = g
    cdef mailbox mb = _bench_mailbox(m, "c_ping")
    cdef double *rtt = <double *>malloc(max(rounds, 1) * sizeof(double))
    cdef int r
    if rtt == NULL:
        raise MemoryError()
    try:
        with nogil:
            r = spb_ping(mb, gp, size, warmup, rounds, rtt)
        if r < 0:
            _raise(r, "c_ping")
        return [rtt[i] for i in range(rounds)]
    finally:
        free(rtt)


def c_pong(MailboxBase m, reply_group, int end_type):
    """Echoes data messages to reply_group until end_type; returns the count."""
    cdef bytes g = _args.group_bytes(reply_group)
    cdef const char *gp = g
    cdef mailbox mb = _bench_mailbox(m, "c_pong")
    cdef long n = 0
    cdef int r
    with nogil:
        r = spb_pong(mb, gp, <int16>end_type, &n)
    if r < 0:
        _raise(r, "c_pong")
    return n
