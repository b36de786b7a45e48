# cython: language_level=3, boundscheck=False, wraparound=False, embedsignature=True
"""The Cython backend: the classic ``import spread`` surface over the native
client library (native/, sp.h). Every call that can block releases the GIL.
"""

cimport cython
from cpython.buffer cimport PyBUF_SIMPLE, PyBuffer_Release, PyObject_GetBuffer
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.tuple cimport PyTuple_New, PyTuple_SET_ITEM
from cpython.ref cimport Py_INCREF
from libc.stdlib cimport free, malloc
from libc.string cimport memchr, memcmp, memcpy, memset
from libc.limits cimport INT_MAX, INT_MIN

from .libspread cimport *

include "_constants.pxi"
include "_daemon.pxi"

cdef class _RxState

from . import _args, _ends, _messages
from ._errors import error_class

cdef extern from "Python.h":
    ctypedef struct PyObject
    int PyErr_CheckSignals() except -1
    bint PyLong_CheckExact(object o)
    long PyLong_AsLongAndOverflow(object o, int *overflow) except? -1
    object PyUnicode_DecodeUTF8(const char *s, Py_ssize_t size, const char *errors)
    void Py_XDECREF(PyObject *o)

# Payload recycling: a bytes object that only our ring still references can
# be refilled for the next message of the same size instead of freeing one
# and allocating another (glibc malloc is the largest per-message cost above
# pymalloc's 512 bytes). Nobody else can see it, and its hash was never taken.
# Only where CPython's layout is known and reference counts are plain.
cdef extern from *:
    """
    #if !defined(Py_GIL_DISABLED) && PY_VERSION_HEX >= 0x030B0000 && PY_VERSION_HEX < 0x030E0000
    static inline int spread_bytes_reusable(PyObject *o, Py_ssize_t n) {
    #if defined(__GNUC__)
    #pragma GCC diagnostic push
    #pragma GCC diagnostic ignored "-Wdeprecated-declarations"
    #endif
        return Py_REFCNT(o) == 1 && PyBytes_GET_SIZE(o) == n &&
               ((PyBytesObject *)o)->ob_shash == -1;
    #if defined(__GNUC__)
    #pragma GCC diagnostic pop
    #endif
    }
    #else
    static inline int spread_bytes_reusable(PyObject *o, Py_ssize_t n) {
        (void)o; (void)n; return 0;
    }
    #endif
    /* The payload copy calls libc's vector memcpy: gcc inlines a copy of
     * unknown size here as `rep movsq`, about twice the instructions for
     * 1 KB (callgrind). */
    static void *(*volatile spread_memcpy)(void *, const void *, size_t) = memcpy;
    """
    bint spread_bytes_reusable(PyObject *o, Py_ssize_t n)

# An exact int's value when it fits one digit (service types, message types,
# counts: nearly always), without PyLong_AsLongAndOverflow's ~30 instructions.
cdef extern from *:
    """
    static inline int spread_compact_long(PyObject *o, long *v) {
    #if PY_VERSION_HEX >= 0x030C0000 && !defined(Py_LIMITED_API)
        if (!PyUnstable_Long_IsCompact((PyLongObject *)o))
            return 0;
        *v = (long)PyUnstable_Long_CompactValue((PyLongObject *)o);
        return 1;
    #elif !defined(Py_LIMITED_API)
        Py_ssize_t size = Py_SIZE(o);
        if (size < -1 || size > 1)
            return 0;
        long d = size == 0 ? 0 : (long)((PyLongObject *)o)->ob_digit[0];
        *v = size < 0 ? -d : d;
        return 1;
    #else
        (void)o; (void)v; return 0;
    #endif
    }
    """
    bint spread_compact_long(object o, long *v)
    void spread_memcpy(void *dst, const void *src, size_t n)

DEF SLOT = 32
ctypedef char slot_t[32]
DEF MAX_GROUPS = 100
DEF CACHED_GROUPS = 8
DEF RING = 2048             # recycled payloads per mailbox (see spread_bytes_reusable)
DEF RING_MAX_SIZE = 2048    # larger payloads are not recycled: copying dominates them
# data_len + 32 * groups above SPX_MAX_SAFE_BODY (spx.h) gets a connection killed
# by every Spread 4 daemon, so the binding refuses it up front.

NAME_ENCODING = _args.NAME_ENCODING


cdef str _error_text(int code):
    return SPX_error_text(code).decode("ascii")


def error_text(code):
    """The Spread library's text for an error code (what SP_error prints)."""
    cdef long c
    if not _small_int(code, INT_MIN, INT_MAX, &c):
        c = _args.integer(code, "code")
        if not INT_MIN <= c <= INT_MAX:
            return _error_text(0)
    return _error_text(<int>c)


cdef int _raise(int code, str where=None) except -1:
    raise _args.error(code, where, _error_text(code))


cdef inline bint _small_int(object o, long lo, long hi, long *out) noexcept:
    """An exact int within [lo, hi], converted without Python code; False for
    anything else (the caller asks _args, which converts or raises)."""
    cdef int overflow = 0
    cdef long v
    if not PyLong_CheckExact(o):
        return False
    if not spread_compact_long(o, &v):
        v = PyLong_AsLongAndOverflow(o, &overflow)
        if overflow:
            return False
    if v < lo or v > hi:
        return False
    out[0] = v
    return True


cdef inline int _service(object o) except? -1:
    cdef long v
    if _small_int(o, INT_MIN, INT_MAX, &v):
        return <int>v
    return <int>_args.service_type(o)


cdef inline int16 _msg_type(object o) except? -1:
    cdef long v
    if _small_int(o, -32768, 32767, &v):
        return <int16>v
    return <int16>_args.msg_type(o)


cdef inline Py_ssize_t _slot_len(const char *slot) noexcept nogil:
    cdef const char *nul = <const char *>memchr(slot, 0, SLOT)
    return (nul - slot) if nul != NULL else SLOT


cdef object _decode(const char *slot, bint as_bytes):
    cdef Py_ssize_t n = _slot_len(slot)
    if as_bytes:
        return PyBytes_FromStringAndSize(slot, n)
    return PyUnicode_DecodeUTF8(slot, n, "surrogateescape")


cdef tuple _decode_slots(const slot_t *slots, int n, bint as_bytes):
    cdef tuple t = PyTuple_New(n)
    cdef int i
    for i in range(n):
        name = _decode(slots[i], as_bytes)
        Py_INCREF(name)
        PyTuple_SET_ITEM(t, i, name)
    return t


cdef int _bufs_init(spx_recv_buffers *b) except -1:
    if spx_recv_buffers_init(b) != 0:
        raise MemoryError()
    return 0


@cython.no_gc
@cython.freelist(1024)
cdef class RegularMsg:
    """A data message (or a reject of one of our requests, see service_type)."""
    cdef readonly object sender
    cdef readonly tuple groups
    cdef readonly bytes message
    cdef readonly int msg_type
    cdef readonly int endian
    cdef readonly int service_type

    def __repr__(self):
        return _messages.regular_repr(self)


cdef class MailboxBase:
    """The backend's connection object: spread.Mailbox (spread/_mailbox.py)
    subclasses it and adds the cold methods; the hot ones are these."""
    cdef mailbox _mbox
    cdef spx_session *_sess          # _mbox's handle, for SPX_view_next (valid while held)
    cdef readonly object private_group
    cdef bint _live                  # _setup ran: the mailbox is ours to close
    cdef bint _closed
    cdef bint _released
    cdef bint _bytes_names
    cdef int _active                 # calls in progress (GIL-protected)
    cdef spx_recv_buffers _bufs
    cdef bint _bufs_busy             # a receive is using _bufs (GIL-protected)
    # Decoded-name caches: consecutive messages mostly share sender and groups.
    cdef char _last_sender[32]
    cdef object _last_sender_obj
    cdef char _last_groups[CACHED_GROUPS][32]
    cdef int _last_ngroups
    cdef tuple _last_groups_obj
    cdef object _last_group_in
    cdef char _last_slot[32]
    cdef int _last_length
    cdef object _last_length_obj
    # The attached receiver's state, never the receiver object: the receiver
    # holds its mailbox, and a reference back would make a cycle that only
    # the garbage collector could free (with the socket and thread in it).
    cdef _RxState _rx
    cdef PyObject *_ring[RING]       # recycled payloads (owned references)
    cdef int _ring_at
    cdef object __weakref__

    def __dealloc__(self):
        if self._rx is not None:
            self._rx.close()  # the drain thread stops before the socket closes
        if self._live:
            if not self._closed:
                with nogil:
                    SP_disconnect(self._mbox)
            if not self._released:
                SPX_release(self._mbox)
        spx_recv_buffers_free(&self._bufs)
        cdef int i
        for i in range(RING):
            Py_XDECREF(self._ring[i])
            self._ring[i] = NULL

    cdef int _setup(self, mailbox mbox, bytes private_group, bint bytes_names) except -1:
        self._mbox = mbox
        self._live = True
        self._released = True  # until the hold below succeeds
        self._bytes_names = bytes_names
        self._last_ngroups = -1
        _bufs_init(&self._bufs)
        self._released = SPX_hold(mbox) != 0
        self._sess = NULL if self._released else SPX_session(mbox)
        SPX_set_interruptible(mbox, 1)  # Ctrl-C ends a receive's wait
        SPX_set_peek(mbox, 1)  # bursts in two system calls; select() on fileno() stays exact
        self.private_group = private_group if bytes_names else private_group.decode(
            NAME_ENCODING, "surrogateescape")
        return 0

    # -- bookkeeping -------------------------------------------------------
    cdef inline int _enter(self, str what) except -1:
        if self._closed:
            raise error_class(ILLEGAL_SESSION)(
                ILLEGAL_SESSION, f"{what}() called on closed mbox")
        self._active += 1
        return 0

    cdef inline void _leave(self) noexcept:
        self._active -= 1
        if self._closed and self._active == 0 and not self._released:
            self._released = True
            SPX_release(self._mbox)

    @property
    def closed(self):
        """True once disconnect() (or kill()) has been called."""
        return self._closed

    @property
    def _descriptor(self):
        return self._mbox

    cdef _RxState _attached(self):
        """The receiver state that owns this mailbox's input, if any; one that
        was closed and has been drained lets go of the mailbox."""
        cdef _RxState st = self._rx
        if st is not None and st._drained_and_closed():
            self._rx = st = None
        return st

    def fileno(self):
        """The socket descriptor, for select() and event loops (with a
        receiver attached: a descriptor readable while messages are queued);
        -1 once disconnected, like a closed socket.socket."""
        cdef _RxState st = self._attached()
        if st is not None:
            return st.fileno()
        return -1 if self._closed else self._mbox

    # -- connection ----------------------------------------------------------
    def _close(self, bint polite):
        """disconnect() (polite) or kill(); safe to call twice."""
        self._do_close(polite)

    cdef void _do_close(self, bint polite):
        if self._closed:
            return
        self._closed = True
        st, self._rx = self._rx, None
        if st is not None:
            (<_RxState>st).close()
        with nogil:
            if polite:
                SP_disconnect(self._mbox)
            else:
                SP_kill(self._mbox)
        # Threads still inside a call keep the descriptor until they leave.
        if self._active == 0 and not self._released:
            self._released = True
            SPX_release(self._mbox)

    def _request(self, bytes group, bint join):
        """SP_join or SP_leave of a checked group name; the library's code."""
        cdef const char *p = group
        cdef int r
        self._enter("join" if join else "leave")
        with nogil:
            r = SP_join(self._mbox, p) if join else SP_leave(self._mbox, p)
        self._leave()
        return r

    def poll(self):
        """The number of bytes waiting to be read (0 when none)."""
        cdef int r
        cdef _RxState st = self._attached()
        if st is not None:
            return st.pending_bytes()
        self._enter("poll")
        with nogil:
            r = SP_poll(self._mbox)
        self._leave()
        if r < 0:
            _raise(r, "poll()")
        return r

    # -- sending ---------------------------------------------------------------
    cdef inline int _slot(self, object group, char *slot) except -1:
        """The group's wire slot; the last one is remembered (most sends repeat it)."""
        if group is self._last_group_in and group is not None:
            memcpy(slot, self._last_slot, SLOT)
            return 0
        cdef bytes b = _args.group_bytes(group)
        SPX_group_slot(slot, b)
        if type(group) is str or type(group) is bytes:  # immutable: safe to remember
            self._last_group_in = group
            memcpy(self._last_slot, slot, SLOT)
        return 0

    def multicast(self, service_type, group, data, msg_type=0):
        """Sends data to a group (or a private group); returns its length.

        data is any bytes-like object (sent without copying) or a str (sent
        as UTF-8). msg_type is a 16-bit message type.
        """
        cdef int r = _send_single(self, service_type, group, data, msg_type, True)
        if r < 0:
            _raise(r, "multicast()")
        return self._length(r)

    cdef inline object _length(self, int r):
        """The int for a byte count; the last one is reused (most sends repeat it)."""
        if r != self._last_length or self._last_length_obj is None:
            self._last_length = r
            self._last_length_obj = r
        return self._last_length_obj

    def multigroup_multicast(self, service_type, groups, data, msg_type=0):
        """Sends one message to several groups (each receiver gets one copy)."""
        cdef int r = _send_multi(self, service_type, groups, data, msg_type, True)
        if r < 0:
            _raise(r, "multigroup_multicast()")
        return self._length(r)

    # -- sends that never wait (spread.aio) ---------------------------------------
    # Private marshalling for an event loop's writer: the same checks as the
    # hot sends (the same helpers), then one non-blocking attempt. They return
    # the length sent, SPX_WOULD_BLOCK (nothing sent) or SPX_PARTIAL (the rest
    # is the library's, for _finish_send_nowait from this thread); errors
    # raise. _cffi_core/mailbox.py has the same methods, with the same outcomes.
    _NOWAIT_SENDS = True  # (the cffi backend over an external library has none)

    def _multicast_nowait(self, service_type, group, data, msg_type=0):
        """multicast() that never waits (see above)."""
        cdef int r = _send_single(self, service_type, group, data, msg_type, False)
        if r < 0 and r != SPX_WOULD_BLOCK and r != SPX_PARTIAL:
            _raise(r, "multicast()")
        return r

    def _multigroup_multicast_nowait(self, service_type, groups, data, msg_type=0):
        """multigroup_multicast() that never waits (see above)."""
        cdef int r = _send_multi(self, service_type, groups, data, msg_type, False)
        if r < 0 and r != SPX_WOULD_BLOCK and r != SPX_PARTIAL:
            _raise(r, "multigroup_multicast()")
        return r

    def _request_nowait(self, bytes group, bint join):
        """_request() that never waits: the library's code, SPX_WOULD_BLOCK or SPX_PARTIAL."""
        cdef int r
        self._enter("join" if join else "leave")
        r = SPX_join_nowait(self._mbox, group) if join else SPX_leave_nowait(self._mbox, group)
        self._leave()
        return r

    def _finish_send_nowait(self):
        """After SPX_PARTIAL: the length once all is sent, or SPX_PARTIAL again."""
        cdef int r
        self._enter("multicast")
        r = SPX_finish_send_nowait(self._mbox)
        self._leave()
        if r < 0 and r != SPX_PARTIAL:
            _raise(r, "multicast()")
        return r

    def _abort_send(self):
        """After SPX_PARTIAL: gives the rest up and fails the connection."""
        if not self._closed:
            SPX_abort_send(self._mbox)

    @staticmethod
    def _check_service(service_type):
        """The service type as an int if a send may carry it; IllegalService otherwise."""
        cdef int svc = _service(service_type)
        if SPX_check_service(svc) != 0:
            _raise(ILLEGAL_SERVICE, f"service_type {svc:#x}")
        return svc

    # -- receiving -------------------------------------------------------------
    cdef object _sender(self, const char *sender):
        if self._last_sender_obj is not None and memcmp(sender, self._last_sender, SLOT) == 0:
            return self._last_sender_obj
        obj = _decode(sender, self._bytes_names)
        memcpy(self._last_sender, sender, SLOT)
        self._last_sender_obj = obj
        return obj

    cdef tuple _group_tuple(self, const slot_t *groups, int n):
        if n == self._last_ngroups and memcmp(groups, self._last_groups, n * SLOT) == 0:
            return self._last_groups_obj
        cdef tuple t = _decode_slots(groups, n, self._bytes_names)
        if n <= CACHED_GROUPS:
            memcpy(self._last_groups, groups, n * SLOT)
            self._last_ngroups = n
            self._last_groups_obj = t
        return t

    def receive(self):
        """Blocks until a message arrives; returns a RegularMsg or MembershipMsg."""
        cdef char sender[32]
        cdef spx_view v
        cdef int n = SPX_NOT_VIEWED
        cdef bytes payload
        cdef bint taken = False
        # The hot path: a data message that has arrived, built straight from
        # the library's buffer, without giving up the GIL. (Nothing here runs
        # Python code while the library holds the message: see SPX_view_next.)
        if self._rx is None and not self._bufs_busy and not self._closed:
            n = SPX_view_next(self._sess, sender, self._bufs.groups_size, self._bufs.groups, &v)
            if n >= 0:
                try:
                    payload = self._payload(v.data, n)
                    taken = True
                finally:  # (a failure leaves the message to the next receive)
                    SPX_view_done(self._sess, taken)
                return self._regular(v.service_type, sender, <const slot_t *>self._bufs.groups,
                                     v.num_groups, v.mess_type, v.endian_mismatch, payload)
        elif self._rx is not None:  # a receiver owns the input: its queue's next, if any
            msg = self._rx.take_one(self)
            if msg is not None:
                return msg
        return self._receive(n != SPX_WOULD_BLOCK)

    cdef object _receive(self, bint try_nowait):
        """receive() past its hot path: through a receiver, or from the
        library; try_nowait first takes a message that has arrived without
        giving up the GIL (False: the caller has seen none)."""
        cdef service svc = 0
        cdef char sender[32]
        cdef int num_groups = 0, endian = 0, n = 0, g
        cdef int16 mess_type = 0
        cdef spx_recv_buffers spare
        cdef spx_recv_buffers *b = &self._bufs
        cdef bint own = not self._bufs_busy
        cdef _RxState st = self._attached()
        if st is not None:
            try:
                return st.get_batch(self, 1, None)[0]
            except ReceiverClosed:
                self._rx = None  # closed meanwhile: read the socket again
        self._enter("receive")
        if own:
            self._bufs_busy = True
        else:  # another thread is receiving into ours: use buffers of our own
            b = &spare
            _bufs_init(b)
        try:
            while True:
                # SPX_receive_grow's loop, written out around a direct call
                # (measured: the loop in C costs this path ~30 instructions).
                n = SPX_WOULD_BLOCK
                if try_nowait:
                    svc = 0
                    n = SPX_receive_nowait(self._mbox, &svc, sender, b.groups_size, &num_groups,
                                           b.groups, &mess_type, &endian, b.data_size, b.data)
                try_nowait = True
                if n == SPX_WOULD_BLOCK:
                    with nogil:
                        svc = 0
                        n = SP_receive(self._mbox, &svc, sender, b.groups_size, &num_groups,
                                       b.groups, &mess_type, &endian, b.data_size, b.data)
                if n >= 0:
                    return self._message(svc, sender, <const slot_t *>b.groups, num_groups,
                                         mess_type, endian, b.data, n)
                if n == SPX_INTERRUPTED:
                    PyErr_CheckSignals()  # raises KeyboardInterrupt and the like
                elif n == BUFFER_TOO_SHORT or n == GROUPS_TOO_SHORT:
                    g = spx_recv_buffers_grow(b, num_groups, endian)  # (the policy, in C)
                    if g < 0:
                        raise MemoryError()
                    if g == 0:
                        _raise(n, "receive()")  # asks for no more than we have
                else:
                    _raise(n, "receive()")
        finally:
            if own:
                self._bufs_busy = False
            else:
                spx_recv_buffers_free(b)
            self._leave()

    cdef object _message(self, service svc, const char *sender, const slot_t *groups,
                         int num_groups, int16 mess_type, int endian, const char *data, int n):
        """The message object for one received message (from any source)."""
        if Is_membership_mess(svc):  # (sp.h: and not a reject)
            return self._membership(svc, sender, groups, num_groups, data, n)
        return self._regular(svc, sender, groups, num_groups, mess_type, endian,
                             self._payload(data, n))

    cdef inline RegularMsg _regular(self, service svc, const char *sender, const slot_t *groups,
                                    int num_groups, int16 mess_type, int endian, bytes payload):
        cdef RegularMsg msg = RegularMsg.__new__(RegularMsg)
        msg.sender = self._sender(sender)
        msg.groups = self._group_tuple(groups, num_groups)
        msg.message = payload
        msg.msg_type = mess_type
        msg.endian = endian
        msg.service_type = svc
        return msg

    cdef bytes _payload(self, const char *data, int n):
        """The payload as bytes, refilling a recycled object when one is free."""
        if n <= 1 or n > RING_MAX_SIZE:
            return PyBytes_FromStringAndSize(data, n)
        cdef int at = self._ring_at
        cdef PyObject *old = self._ring[at]
        cdef bytes out
        self._ring_at = (at + 1) & (RING - 1)  # (RING is a power of two)
        if old != NULL and spread_bytes_reusable(old, n):
            out = <bytes>old
            spread_memcpy(PyBytes_AS_STRING(out), data, n)
            return out
        out = PyBytes_FromStringAndSize(data, n)
        Py_INCREF(out)
        Py_XDECREF(old)
        self._ring[at] = <PyObject *>out
        return out

    cdef object _membership(self, service svc, const char *sender, const slot_t *groups,
                            int num_groups, const char *body, int body_len):
        """The notice's object (spread/_messages.py builds it); IllegalMessage
        for a body that does not hold what its type says."""
        cdef membership_info info
        group = self._sender(sender)
        members = _decode_slots(groups, num_groups, self._bytes_names)
        if _messages.is_self_leave(svc):
            return _messages.membership(svc, group, members)
        if SPX_get_memb_info(body, body_len, svc, &info) < 0:
            _raise(ILLEGAL_MESSAGE, _messages.BAD_BODY)
        gid = (info.gid.id[0], info.gid.id[1], info.gid.id[2])
        if not _messages.wants_vs_sets(svc):
            return _messages.membership(svc, group, members, gid)
        sets, mine = _vs_sets(body, body_len, info.num_vs_sets, self._bytes_names)
        return _messages.membership(svc, group, members, gid,
                                    _decode(info.changed_member, self._bytes_names), sets, mine)

    def _receive_raw(self, int max_groups, int max_len, int service_in=0):
        """SP_receive with caller-sized buffers, for tests of the C semantics.

        Returns (ret, service, sender, num_groups, groups, mess_type, endian,
        data) with names as bytes and data the bytes stored in the buffer.
        """
        cdef service svc = service_in
        cdef char sender[32]
        cdef int num_groups = 0, endian = 0, r
        cdef int16 mess_type = 0
        cdef slot_t *groups = <slot_t *>malloc(max(max_groups, 1) * SLOT)
        cdef char *buf = <char *>malloc(max(max_len, 1))
        if groups == NULL or buf == NULL:
            free(groups)
            free(buf)
            raise MemoryError()
        memset(sender, 0, SLOT)
        try:
            self._enter("receive")
            with nogil:
                r = SP_receive(self._mbox, &svc, sender, max_groups, &num_groups, groups,
                               &mess_type, &endian, max_len, buf)
            self._leave()
            kept = min(abs(num_groups), max_groups) if r >= 0 or r == BUFFER_TOO_SHORT else 0
            stored = (r if r >= 0 else (max_len if r == BUFFER_TOO_SHORT and
                                        service_in & DROP_RECV else 0))
            return (r, svc, _decode(sender, True), num_groups,
                    list(_decode_slots(groups, kept, True)), mess_type, endian,
                    PyBytes_FromStringAndSize(buf, min(stored, max_len)))
        finally:
            free(groups)
            free(buf)


# -- the sends' marshalling, shared by the hot sends and spread.aio's -------
cdef inline object _send_bytes(object data, Py_buffer *view, bint *have_view,
                               const char **p, Py_ssize_t *n):
    """data as the bytes to send (p, n): a bytes object's own, a str's UTF-8,
    or any buffer's (then have_view: the caller releases view). Returns what
    must stay alive while p is used."""
    if type(data) is bytes:
        p[0] = PyBytes_AS_STRING(data)
        n[0] = PyBytes_GET_SIZE(data)
        return data
    if isinstance(data, str):
        data = (<str>data).encode("utf-8")
        p[0] = PyBytes_AS_STRING(data)
        n[0] = PyBytes_GET_SIZE(data)
        return data
    PyObject_GetBuffer(data, view, PyBUF_SIMPLE)
    have_view[0] = True
    p[0] = <const char *>view.buf
    n[0] = view.len
    return data


cdef inline int _send_single(MailboxBase mb, object service_type, object group, object data,
                             object msg_type, bint wait) except? -1:
    """multicast(): its arguments checked, then _send."""
    cdef int svc = _service(service_type)
    cdef char slot[32]
    mb._slot(group, slot)
    return _send(mb, svc, slot, NULL, 1, _msg_type(msg_type), data, wait)


cdef inline int _send_multi(MailboxBase mb, object service_type, object groups, object data,
                            object msg_type, bint wait) except? -1:
    """multigroup_multicast(): its arguments checked, then _send."""
    cdef char slots[MAX_GROUPS][32]
    cdef int count = 0
    cdef bytes b
    cdef int svc = _service(service_type)
    for b in _args.group_list(groups):
        memset(slots[count], 0, SLOT)
        memcpy(slots[count], PyBytes_AS_STRING(b), PyBytes_GET_SIZE(b))
        count += 1
    return _send(mb, svc, NULL, <const slot_t *>slots, count, _msg_type(msg_type), data, wait)


cdef inline int _send(MailboxBase mb, int svc, const char *slot, const slot_t *slots, int count,
                      int16 mt, object data, bint wait) except? -1:
    """One send (to slot, or to the count slots), first without giving up
    the GIL; with wait, one that cannot go at once, or only in part, goes on
    waiting for room without it. The library's result."""
    cdef Py_buffer view
    cdef bint have_view = False
    cdef const char *p
    cdef Py_ssize_t n
    cdef int r
    _keep = _send_bytes(data, &view, &have_view, &p, &n)
    try:
        if n + SLOT * count > SPX_MAX_SAFE_BODY:
            _raise(MESSAGE_TOO_LONG, f"multicast() of {n} bytes" if slots == NULL else
                   f"multigroup_multicast() of {n} bytes to {count} groups")
        mb._enter("multicast" if slots == NULL else "multigroup_multicast")
        if slots == NULL:
            r = SPX_send_nowait(mb._sess, svc, slot, mt, <int>n, p)
        else:
            r = SPX_multigroup_multicast_nowait(mb._mbox, svc, count, slots, mt, <int>n, p)
        if wait and r == SPX_WOULD_BLOCK:
            with nogil:
                if slots == NULL:
                    r = SP_multicast(mb._mbox, svc, slot, mt, <int>n, p)
                else:
                    r = SP_multigroup_multicast(mb._mbox, svc, count, slots, mt, <int>n, p)
        elif wait and r == SPX_PARTIAL:
            with nogil:
                r = SPX_finish_send(mb._mbox)
        mb._leave()
    finally:
        if have_view:
            PyBuffer_Release(&view)
    return r


cdef object _read_vs_sets(const char *body, int body_len, int capacity, bint as_bytes):
    """SP_get_vs_sets_info and SP_get_vs_set_members over a membership body:
    (count, index of ours, [(num_members, members_offset, names), ...]), or
    the negative error code."""
    cdef vs_set_info *sets = <vs_set_info *>malloc(max(capacity, 1) * sizeof(vs_set_info))
    cdef slot_t *names
    cdef unsigned int mine = 0
    cdef int k, i, got
    if sets == NULL:
        raise MemoryError()
    try:
        k = SPX_get_vs_sets_info(body, body_len, sets, capacity, &mine)
        if k < 0:
            return k
        result = []
        for i in range(k):
            names = <slot_t *>malloc(max(sets[i].num_members, 1) * SLOT)
            if names == NULL:
                raise MemoryError()
            try:
                got = SPX_get_vs_set_members(body, body_len, &sets[i], names,
                                             sets[i].num_members)
                if got < 0:
                    return got
                result.append((sets[i].num_members, sets[i].members_offset,
                               _decode_slots(names, got, as_bytes)))
            finally:
                free(names)
        return k, <int>mine, result
    finally:
        free(sets)


cdef tuple _vs_sets(const char *body, int body_len, unsigned int count, bint as_bytes):
    """All vs-sets of a regular membership body, and the index of ours."""
    r = _read_vs_sets(body, body_len, count, as_bytes)
    if isinstance(r, int):
        _raise(r, _messages.BAD_VS_SETS)
    return tuple(names for _, _, names in r[2]), r[1]


def _memb_info(int service_type, bytes body):
    """SP_get_memb_info over a received body, as a dict (for tests)."""
    cdef membership_info info
    cdef int r = SPX_get_memb_info(body, len(body), service_type, &info)
    if r < 0:
        return {"ret": r}
    return {"ret": r, "gid": [info.gid.id[0], info.gid.id[1], info.gid.id[2]],
            "changed_member": _decode(info.changed_member, True).decode("ascii", "replace"),
            "num_vs_sets": info.num_vs_sets,
            "my_vs_set": [info.my_vs_set.num_members, info.my_vs_set.members_offset]}


def _vs_sets_info(bytes body, int capacity):
    """SP_get_vs_sets_info and SP_get_vs_set_members over a body (for tests)."""
    r = _read_vs_sets(body, len(body), capacity, True)
    if isinstance(r, int):
        return {"ret": r}
    return {"ret": r[0], "my_vs_set_index": r[1],
            "sets": [{"num_members": n, "members_offset": off, "members": list(names)}
                     for n, off, names in r[2]]}


def connect_raw(cls, bytes d, bytes nm, int prio, bint membership, bint as_bytes, secs,
                int sbuf):
    """SPX_connect with arguments spread.connect() has checked, retried when
    a signal handler returns; (ACCEPT_SESSION, a cls over the connection) or
    (the library's error code, None)."""
    cdef const char *dp = d
    cdef const char *np = nm
    cdef int ms
    cdef mailbox mbox = -1
    cdef char group[32]
    cdef int r
    cdef double deadline = 0 if secs is None else time.monotonic() + secs
    while True:
        ms = -1 if secs is None else _args.ms_until(deadline)
        memset(group, 0, SLOT)
        with nogil:
            r = SPX_connect(dp, np, prio, membership, &mbox, group, ms, 1, sbuf)
        if r != SPX_INTERRUPTED:
            break
        PyErr_CheckSignals()  # Ctrl-C raises here; other handlers return and we go on
    if r != ACCEPT_SESSION:
        return r, None
    cdef MailboxBase mb = MailboxBase.__new__(cls)
    # On failure the half-made mailbox disconnects as it is deallocated.
    mb._setup(mbox, PyBytes_FromStringAndSize(group, _slot_len(group)), as_bytes)
    return r, mb


def version():
    """The Spread protocol version of the library: (major, minor, patch)."""
    cdef int major = 0, minor = 0, patch = 0
    SP_version(&major, &minor, &patch)
    return (major, minor, patch)


include "_receiver.pxi"
include "_aio_fast.pxi"
include "_flow_fast.pxi"
include "_bench.pxi"
