# _flow_fast.pxi -- spread.flow's per-message hot path on the sending side,
# in C (included by _core.pyx). spread/flow/_fast.py picks these, or the
# same in Python (cffi, PyPy).
#
# While credit is short a sender's messages join the channel's open batch:
# that is what nearly every send() of a fast sender does (295,105 of 300,200
# 1 KB messages in the bench's flow row), and in Python it cost ~3.9 us of
# the sender's ~5.6 us per message. FlowSenderBase.offer() does that case in
# one C call, on fields it holds for spread/flow/_sender.py's SenderChannel
# (which reads and writes them as attributes); every other case is the
# Python offer's (SenderChannel._offer), unchanged.

cdef extern from "Python.h":
    int PyByteArray_Resize(object ba, Py_ssize_t size) except -1
    char *PyByteArray_AS_STRING(object ba)
    Py_ssize_t PyByteArray_GET_SIZE(object ba)
    int PyList_Append(object lst, object item) except -1


cdef class FlowBatch:
    """The fields of a batch being built (spread/flow/_sender.py's _Batch
    has its methods): count, the first message and its type, the table
    entries (bytearray), the payloads (list), framed size and payload bytes."""
    cdef public Py_ssize_t count, first_type, size, payload
    cdef public object first
    cdef public bytearray entries
    cdef public list payloads


cdef inline Py_ssize_t _uvarint_size(Py_ssize_t n):
    cdef Py_ssize_t size = 1
    while n >= 0x80:
        n >>= 7
        size += 1
    return size


cdef class FlowSenderBase:
    """The fields of SenderChannel that offer() reads and writes per message,
    and offer() itself for a message that joins the open batch while the
    channel waits for credit (blocked at its last pump, _stuck, and nothing
    changed since, not _dirty: no pump is due). Anything else goes to
    self._offer()."""
    cdef public long long _items, _queued_bytes, max_pending_bytes, max_message_bytes
    cdef public long long max_batch_items, _batch_bytes
    cdef public bint _stuck, _dirty, closed
    cdef public object _open
    cdef public dict stats

    def offer(self, data, msg_type=0, now=0.0):
        """Accept one logical message, or say False: see SenderChannel._offer()."""
        if self._join(data, msg_type):
            return True
        return self._offer(data, msg_type, now)

    cdef int _join(self, data, msg_type) except -1:
        """1: data joined the open batch (the fast case); 0: nothing done,
        the case is _offer()'s."""
        cdef FlowBatch b
        cdef Py_ssize_t size, cost, count, at
        cdef long mt
        cdef int overflow = 0
        cdef char *p
        if (
            type(data) is not bytes
            or type(msg_type) is not int
            or self._items == 0
            or self.closed
            or not self._stuck
            or self._dirty
            or not isinstance(self._open, FlowBatch)
            or (<FlowBatch>self._open).entries is None
            or (<FlowBatch>self._open).payloads is None
        ):
            return 0
        mt = PyLong_AsLongAndOverflow(msg_type, &overflow)
        size = PyBytes_GET_SIZE(data)
        if (
            overflow
            or mt < -32768
            or mt > 32767
            or size > self.max_message_bytes
            or self._queued_bytes + size > self.max_pending_bytes
        ):
            return 0
        b = <FlowBatch>self._open
        count = b.count
        cost = (1 if size < 0x80 else _uvarint_size(size)) + 2 + size
        if (
            count == 0x7F  # nor 0x3FFF: the count's uvarint keeps its size
            or count == 0x3FFF
            or count >= self.max_batch_items
            or b.size + cost > self._batch_bytes
        ):
            return 0
        # The table entry: uvarint length, i16 msg_type (little-endian).
        at = PyByteArray_GET_SIZE(b.entries)
        PyByteArray_Resize(b.entries, at + cost - size)
        p = PyByteArray_AS_STRING(b.entries) + at
        while size >= 0x80:
            p[0] = <char>((size & 0x7F) | 0x80)
            p += 1
            size >>= 7
        p[0] = <char>size
        p[1] = <char>(mt & 0xFF)
        p[2] = <char>((mt >> 8) & 0xFF)
        PyList_Append(b.payloads, data)
        size = PyBytes_GET_SIZE(data)
        b.size += cost
        b.count = count + 1
        b.payload += size
        self._queued_bytes += size
        self._items += 1
        self.stats["offered"] += 1
        return 1


cdef extern from *:
    """
    /* The lock-free send needs the GIL: it makes the check of the session
     * lock and the append one step. Not on a free-threaded build. */
    #if defined(Py_GIL_DISABLED)
    #define FLOW_SEND_WITHOUT_LOCK 0
    #else
    #define FLOW_SEND_WITHOUT_LOCK 1
    #endif
    """
    bint FLOW_SEND_WITHOUT_LOCK

# Whether FlowChannelBase.send ever sends without the session lock (tests).
FLOW_SEND_LOCK_FREE = FLOW_SEND_WITHOUT_LOCK


cdef class FlowChannelBase:
    """spread.flow's Channel.send() for a message that joins the open batch
    (FlowSenderBase._join) while no other thread is inside the session: the
    whole send in one C call, without the session lock. That is safe under
    the GIL: every change to a session's state is made holding its lock, so
    with the lock free and the GIL held (nothing here gives it up or runs
    Python code) no change is half done, and none can start until this
    returns. Everything else is Channel._send()'s, under the lock."""
    cdef public object _session, _ch
    # The session's lock.locked and its core's outbox, for good once read:
    # a session makes both once.
    cdef object _locked, _outbox

    def send(self, data, msg_type=0, timeout=None):
        """Send one message (bytes-like; msg_type 16 bits signed). Blocks while
        there is no room; ``timeout`` (seconds) raises ``SendTimeout`` naming
        the laggards, and nothing of this message was accepted."""
        s = self._session
        if self._locked is None:
            self._locked = s.lock.locked
            self._outbox = s.core._outbox
        if (
            FLOW_SEND_WITHOUT_LOCK
            and isinstance(self._ch, FlowSenderBase)
            and not self._outbox
            and not s._closed
            and s._error is None
            and not self._locked()
            and (<FlowSenderBase>self._ch)._join(data, msg_type)
        ):
            return None
        return self._send(data, msg_type, timeout)


# ---- the receiving side --------------------------------------------------------
# A BATCH frame becomes its FlowMsgs in one call (the loop that made them in
# Python cost ~1 us a message), and a receive's messages are marked consumed
# in one call. spread/flow/_fast.py has both in Python: they are the
# reference (a table this does not read is left to them).

cdef class FlowMsgBase:
    """The fields of spread.flow's FlowMsg (its properties are Python's).
    flow_batch leaves the messages it makes out of the garbage collector
    (see flow_untrackable); setting a field from Python tracks the message
    again, since what is set could lead back to it."""
    cdef object _message, _msg_type, _index, _rec
    cdef public bint _open

    @property
    def message(self):
        return self._message

    @message.setter
    def message(self, value):
        _flow_retrack(self)
        self._message = value

    @property
    def msg_type(self):
        return self._msg_type

    @msg_type.setter
    def msg_type(self, value):
        _flow_retrack(self)
        self._msg_type = value

    @property
    def index(self):
        return self._index

    @index.setter
    def index(self, value):
        _flow_retrack(self)
        self._index = value

    @property
    def _record(self):
        return self._rec

    @_record.setter
    def _record(self, value):
        _flow_retrack(self)
        self._rec = value


cdef extern from *:
    """
    /* A uvarint of at most 4 bytes (the reader's lengths are < 2**28) at
     * *pos, before end: its value, or -1 (too long, or cut off). */
    static Py_ssize_t flow_uvarint(const unsigned char *p, Py_ssize_t *pos, Py_ssize_t end) {
        Py_ssize_t n = 0;
        int shift;
        for (shift = 0; shift < 28; shift += 7) {
            unsigned char b;
            if (*pos >= end)
                return -1;
            b = p[(*pos)++];
            n |= (Py_ssize_t)(b & 0x7F) << shift;
            if (!(b & 0x80))
                return n;
        }
        return -1;
    }

    /* A new instance of t (FlowMsg) through its type's tp_new, as t() would
     * make it with no arguments (a method lookup and call less a message). */
    static PyObject *flow_no_args;

    static PyObject *flow_new(PyTypeObject *t) {
        if (flow_no_args == NULL && (flow_no_args = PyTuple_New(0)) == NULL)
            return NULL;
        return t->tp_new(t, flow_no_args, NULL);
    }

    /* Can t's instances leave the garbage collector's lists? A FlowMsg
     * that flow_batch made holds its payload (bytes), two ints and its
     * frame's record, and nothing those reach (the record, its stream)
     * holds a FlowMsg; its class is spread.flow's, which lives as long as
     * its module. So it is never part of a cycle that could become
     * garbage: freed by its count alone, it need not be tracked (a field
     * set from Python tracks it again). Tracked, the collector walks every
     * queued message at each collection (a window of 1 KB frames is
     * ~36,000 of them): ~550 instructions a message in the flow row. Only
     * for a type that adds no fields, no __dict__ and no weak references
     * to FlowMsgBase. */
    static int flow_untrackable(PyTypeObject *t, PyTypeObject *base) {
        return t->tp_basicsize == base->tp_basicsize && t->tp_dictoffset == 0 &&
               t->tp_weaklistoffset == base->tp_weaklistoffset && t->tp_itemsize == 0;
    }
    """
    Py_ssize_t flow_uvarint(const unsigned char *p, Py_ssize_t *pos, Py_ssize_t end)
    object flow_new(type t)
    int flow_untrackable(type t, type base)
    void PyObject_GC_UnTrack(object o)
    void PyObject_GC_Track(object o)
    bint PyObject_GC_IsTracked(object o)


cdef inline void _flow_retrack(FlowMsgBase m):
    if not PyObject_GC_IsTracked(m):
        PyObject_GC_Track(m)


# The one class whose instances flow_batch untracks: spread.flow's FlowMsg,
# named by flow_untrack_instances (a class of the application's could hold
# its instances, through a closure or a class attribute, and make a cycle).
cdef object _flow_untracked = None


def flow_untrack_instances(type cls not None):
    """Makes flow_batch leave cls's instances (spread.flow's FlowMsg) out of
    the garbage collector; TypeError for a class that adds fields, a
    __dict__ or weak references to FlowMsgBase."""
    global _flow_untracked
    if not issubclass(cls, FlowMsgBase) or not flow_untrackable(cls, FlowMsgBase):
        raise TypeError(f"{cls.__name__} adds to FlowMsgBase: its instances stay tracked")
    _flow_untracked = cls


def flow_batch(type cls not None, bytes frame not None, object rec, object general):
    """The messages of a BATCH frame (its header is 32 bytes) as cls
    instances (FlowMsg) of record rec, in order: general(cls, frame, rec)
    (the Python reader) where the table is not one read here, or is
    malformed (general raises why)."""
    cdef const unsigned char *p = <const unsigned char *>PyBytes_AS_STRING(frame)
    cdef Py_ssize_t end = PyBytes_GET_SIZE(frame)
    cdef Py_ssize_t pos = 32, count, i, n, at, total = 0
    cdef FlowMsgBase m
    cdef list out
    cdef bint untrack
    if not issubclass(cls, FlowMsgBase):
        raise TypeError(f"flow_batch makes FlowMsgBase instances, not {cls.__name__}")
    untrack = cls is _flow_untracked
    if end <= pos:
        return general(cls, frame, rec)
    count = flow_uvarint(p, &pos, end)
    if count <= 0 or count > 1 << 20 or count * 3 > end - pos:
        return general(cls, frame, rec)
    # The table: uvarint length, i16 msg_type; then the payloads, filling
    # the frame exactly.
    at = pos
    for i in range(count):
        n = flow_uvarint(p, &at, end)
        if n < 0 or at + 2 > end:
            return general(cls, frame, rec)
        at += 2
        total += n
        if total > end:
            return general(cls, frame, rec)
    if at + total != end:
        return general(cls, frame, rec)
    out = PyList_New(count)
    for i in range(count):
        n = flow_uvarint(p, &pos, end)
        m = <FlowMsgBase>flow_new(cls)
        m._msg_type = <short>(p[pos] | (p[pos + 1] << 8))
        pos += 2
        m._message = PyBytes_FromStringAndSize(<const char *>p + at, n)
        at += n
        m._index = i
        m._rec = rec
        m._open = True
        if untrack:
            PyObject_GC_UnTrack(m)
        Py_INCREF(m)
        PyList_SET_ITEM(out, i, m)
    return out


def flow_consume(type cls not None, list items not None):
    """Marks the open cls messages (FlowMsg) among items consumed: each
    record's remaining count drops by its messages here. Returns the
    records that reached 0, in order (their streams may advance)."""
    cdef list done = []
    cdef object rec = None, item
    cdef Py_ssize_t run = 0
    cdef FlowMsgBase m
    if not issubclass(cls, FlowMsgBase):
        raise TypeError(f"flow_consume takes FlowMsgBase instances, not {cls.__name__}")
    for item in items:
        if type(item) is not cls:
            continue
        m = <FlowMsgBase>item
        if not m._open:
            continue  # taking twice counts once
        m._open = False
        if m._rec is not rec:
            if run:
                _flow_consumed(rec, run, done)
            rec = m._rec
            run = 0
        run += 1
    if run:
        _flow_consumed(rec, run, done)
    return done


cdef inline _flow_consumed(object rec, Py_ssize_t run, list done):
    remaining = rec.remaining - run
    rec.remaining = remaining
    if remaining == 0:
        done.append(rec)
