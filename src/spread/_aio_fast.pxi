# _aio_fast.pxi -- spread.aio's hot paths in C (included by _core.pyx after
# MailboxBase): `async for m in conn`, `await conn.receive()` and `await
# conn.multicast()` without a Python coroutine when they can finish at once.
# spread/aio/fast.py picks these, or the same paths in Python (cffi).
#
# An awaited call that returns at once costs a coroutine (~1,060
# instructions, callgrind). Here it is an AioCall: a small awaitable (a
# coroutine as asyncio sees it: __await__, send, throw, close) that does
# nothing until it is first sent to, so that a call never awaited, or
# cancelled before it starts, takes and sends nothing. Its first send tries
# the step that needs no wait (a message already in the inbox's deque; a
# write the socket takes at once) and returns its result through am_send,
# with no StopIteration made (Python 3.10 and 3.11; later versions' SEND
# asks tp_iternext: a StopIteration kept for it, see aio_stop). Otherwise
# it makes the Python
# coroutine that does the rest (spread/aio's, which waits, takes from C at
# most once per turn of the loop, and handles every cancellation) and from
# then on only passes sends, throws and close through to it.

from collections import deque

cdef extern from *:
    """
    #define AIO_ARGS 4
    /* An inbox's state its takes read, in its AioInbox (spread/aio keeps it). */
    typedef struct {
        PyObject *buf; /* the deque (the AioInbox holds it) */
        int plain;
        Py_ssize_t limit, failures;
    } spread_aio_inbox;

    typedef PyObject *(*spread_aio_step)(PyObject *owner, int kind, PyObject **args);
    /* now: the result if the call can finish at once (a new reference),
     * Py_None if it cannot (no call returns None), NULL with an exception.
     * later: the coroutine that does the rest. Both set once, at import. */
    static spread_aio_step spread_aio_now, spread_aio_later;

    /* An AioCall is FRESH until its first send, DELEGATING while a
     * coroutine does the rest, then DONE. An iterator (AioIter_Type: what
     * __aiter__ returns) is its own __anext__'s awaitable: IDLE between
     * them, FRESH once __anext__ has handed it out. */
    enum { AIO_FRESH, AIO_DELEGATING, AIO_DONE, AIO_IDLE };

    typedef struct {
        PyObject_HEAD
        PyObject *owner;          /* the inbox or writer the call is on */
        spread_aio_inbox *in;     /* an inbox's: in owner (else NULL) */
        PyObject *args[AIO_ARGS]; /* its arguments (None for those it has not) */
        PyObject *inner;          /* while delegating: the coroutine doing the rest */
        int kind;
        int state;
    } AioCall;

    static PyTypeObject AioCall_Type, AioIter_Type;

    /* Freed calls are kept for the next (a call per message). Not where
     * several threads may run at once. */
    #if defined(Py_GIL_DISABLED)
    #define AIO_FREE 0
    #else
    #define AIO_FREE 8
    #endif
    static AioCall *aio_free[AIO_FREE > 0 ? AIO_FREE : 1];
    static int aio_nfree;

    static PyObject *aio_new(PyTypeObject *type, PyObject *owner, spread_aio_inbox *in, int kind,
                             PyObject *a0, PyObject *a1, PyObject *a2, PyObject *a3) {
        AioCall *c;
        int i;
        if (type == &AioCall_Type && aio_nfree > 0) {
            c = aio_free[--aio_nfree];
            (void)PyObject_Init((PyObject *)c, type);
        } else {
            c = PyObject_GC_New(AioCall, type);
            if (c == NULL)
                return NULL;
        }
        Py_INCREF(owner);
        c->owner = owner;
        c->in = in;
        c->args[0] = a0;
        c->args[1] = a1;
        c->args[2] = a2;
        c->args[3] = a3;
        for (i = 0; i < AIO_ARGS; i++)
            Py_INCREF(c->args[i]);
        c->inner = NULL;
        c->kind = kind;
        c->state = type == &AioIter_Type ? AIO_IDLE : AIO_FRESH;
        PyObject_GC_Track((PyObject *)c);
        return (PyObject *)c;
    }

    static PyObject *spread_aio_call(PyObject *owner, spread_aio_inbox *in, int kind, PyObject *a0,
                                     PyObject *a1, PyObject *a2, PyObject *a3) {
        return aio_new(&AioCall_Type, owner, in, kind, a0, a1, a2, a3);
    }

    static PyObject *spread_aio_iter(PyObject *owner, spread_aio_inbox *in, int kind) {
        return aio_new(&AioIter_Type, owner, in, kind, Py_None, Py_None, Py_None, Py_None);
    }

    /* The call has ended (returned or raised): an iterator is ready for
     * its next __anext__. */
    static void aio_end(AioCall *c) {
        c->state = Py_TYPE(c) == &AioIter_Type ? AIO_IDLE : AIO_DONE;
        Py_CLEAR(c->inner);
    }

    static int aio_clear(PyObject *self) {
        AioCall *c = (AioCall *)self;
        int i;
        c->state = AIO_DONE;
        c->in = NULL;
        Py_CLEAR(c->owner);
        for (i = 0; i < AIO_ARGS; i++)
            Py_CLEAR(c->args[i]);
        Py_CLEAR(c->inner);
        return 0;
    }

    static void aio_dealloc(PyObject *self) {
        PyObject_GC_UnTrack(self);
        aio_clear(self);
        if (Py_TYPE(self) == &AioCall_Type && aio_nfree < AIO_FREE)
            aio_free[aio_nfree++] = (AioCall *)self;
        else
            PyObject_GC_Del(self);
    }

    static int aio_traverse(PyObject *self, visitproc visit, void *arg) {
        AioCall *c = (AioCall *)self;
        int i;
        Py_VISIT(c->owner);
        for (i = 0; i < AIO_ARGS; i++)
            Py_VISIT(c->args[i]);
        Py_VISIT(c->inner);
        return 0;
    }

    /* deque.popleft's C function, called without a method call's
     * dispatch (a message each), where the descriptor is the usual one;
     * and the deque type, whose length is its Py_SIZE (CPython's deque
     * keeps it there), read without a call. */
    static PyCFunction aio_popleft_fn;
    static PyTypeObject *aio_deque_type;

    static PyObject *spread_aio_popleft(PyObject *deque) {
        if (aio_popleft_fn != NULL)
            return aio_popleft_fn(deque, NULL);
        return PyObject_CallMethod(deque, "popleft", NULL);
    }

    static Py_ssize_t aio_len(PyObject *deque) {
        return Py_IS_TYPE(deque, aio_deque_type) ? Py_SIZE(deque) : PyObject_Size(deque);
    }

    /* Taking the inbox's next message is all there is to do (see
     * spread/aio/fast.py's PyInboxBase): 1, else 0, -1 with an exception. */
    static int aio_takes(spread_aio_inbox *in) {
        Py_ssize_t n = aio_len(in->buf);
        if (n < 0)
            return -1;
        return n > 0 && (in->plain || (n > in->limit && in->failures == 0));
    }

    /* An inbox's next message when taking it is all there is to do, else None. */
    static PyObject *aio_take(spread_aio_inbox *in) {
        int takes = aio_takes(in);
        if (takes < 0)
            return NULL;
        if (takes)
            return spread_aio_popleft(in->buf);
        Py_RETURN_NONE;
    }

    static PySendResult aio_send(PyObject *self, PyObject *value, PyObject **result) {
        AioCall *c = (AioCall *)self;
        PySendResult r;
        /* The commonest send of all (async for, receive() with a message
         * waiting): the first, on an inbox that has it, taken here. */
        if (c->state == AIO_FRESH && c->in != NULL && value == Py_None &&
            aio_takes(c->in) > 0) {
            *result = spread_aio_popleft(c->in->buf);
            if (*result == NULL)
                return PYGEN_ERROR;
            c->state = Py_IS_TYPE(self, &AioIter_Type) ? AIO_IDLE : AIO_DONE;
            return PYGEN_RETURN;
        }
        *result = NULL;
        if (c->state == AIO_FRESH) {
            if (value != Py_None) {
                PyErr_SetString(PyExc_TypeError,
                                "can't send non-None value to a just-started coroutine");
                return PYGEN_ERROR;
            }
            aio_end(c); /* (whatever happens next) */
            PyObject *now = c->in != NULL ? aio_take(c->in)
                                          : spread_aio_now(c->owner, c->kind, c->args);
            if (now == NULL)
                return PYGEN_ERROR;
            if (now != Py_None) {
                *result = now;
                return PYGEN_RETURN;
            }
            Py_DECREF(now);
            c->inner = spread_aio_later(c->owner, c->kind, c->args);
            if (c->inner == NULL)
                return PYGEN_ERROR;
            c->state = AIO_DELEGATING;
        } else if (c->state != AIO_DELEGATING) {
            PyErr_SetString(PyExc_RuntimeError, "cannot reuse already awaited coroutine");
            return PYGEN_ERROR;
        }
        r = PyIter_Send(c->inner, value, result);
        if (r != PYGEN_NEXT)
            aio_end(c);
        return r;
    }

    /* A returned value as a StopIteration (steals value). Python 3.12's
     * SEND asks tp_iternext, not am_send, and an exception set is then
     * made at once (~500 instructions): there one StopIteration is kept
     * and raised again while nobody else holds it, its value replaced and
     * nothing else left on it (its args stay empty: value is what
     * awaiting reads). Before 3.12 an exception is
     * set unmade, and a plain value costs nothing. */
    #if PY_VERSION_HEX >= 0x030C0000 && !defined(Py_GIL_DISABLED)
    static PyObject *aio_stop_kept;

    static void aio_stop(PyObject *value) {
        PyBaseExceptionObject *e = (PyBaseExceptionObject *)aio_stop_kept;
        if (e == NULL || Py_REFCNT(e) != 1) {
            Py_XDECREF(e);
            aio_stop_kept = NULL;
            e = (PyBaseExceptionObject *)PyObject_CallNoArgs(PyExc_StopIteration);
            if (e == NULL) {
                Py_DECREF(value);
                return;
            }
            aio_stop_kept = (PyObject *)e;
        }
        Py_XSETREF(((PyStopIterationObject *)e)->value, value);
        Py_CLEAR(e->notes);
        Py_CLEAR(e->traceback);
        Py_CLEAR(e->context);
        Py_CLEAR(e->cause);
        e->suppress_context = 0;
        Py_INCREF(e);
        PyErr_SetRaisedException((PyObject *)e);
    }
    #else
    static void aio_stop(PyObject *value) {
        if (PyTuple_Check(value) || PyExceptionInstance_Check(value)) {
            PyObject *e = PyObject_CallOneArg(PyExc_StopIteration, value);
            if (e != NULL) {
                PyErr_SetObject(PyExc_StopIteration, e);
                Py_DECREF(e);
            }
        } else {
            PyErr_SetObject(PyExc_StopIteration, value);
        }
        Py_DECREF(value);
    }
    #endif

    static PyObject *aio_send_method(PyObject *self, PyObject *value) {
        PyObject *result;
        PySendResult r = aio_send(self, value, &result);
        if (r == PYGEN_NEXT)
            return result;
        if (r == PYGEN_RETURN)
            aio_stop(result);
        return NULL;
    }

    static PyObject *aio_iternext(PyObject *self) {
        return aio_send_method(self, Py_None);
    }

    static PyObject *aio_self(PyObject *self) {
        Py_INCREF(self);
        return self;
    }

    /* An iterator's __anext__: itself when it is free, else a call of its own. */
    static PyObject *aio_anext(PyObject *self) {
        AioCall *c = (AioCall *)self;
        if (c->state == AIO_IDLE) {
            c->state = AIO_FRESH;
            Py_INCREF(self);
            return self;
        }
        if (c->owner == NULL) {
            PyErr_SetString(PyExc_RuntimeError, "the iterator was cleared");
            return NULL;
        }
        return spread_aio_call(c->owner, c->in, c->kind, Py_None, Py_None, Py_None, Py_None);
    }

    static PyObject *aio_throw(PyObject *self, PyObject *args) {
        AioCall *c = (AioCall *)self;
        PyObject *typ, *val = Py_None, *tb = Py_None;
        if (c->state == AIO_DELEGATING) {
            PyObject *throw_ = PyObject_GetAttrString(c->inner, "throw");
            PyObject *r = throw_ == NULL ? NULL : PyObject_Call(throw_, args, NULL);
            Py_XDECREF(throw_);
            if (r == NULL)
                aio_end(c);
            return r;
        }
        /* Not started (or ended): nothing was taken or sent; it goes through. */
        if (c->state == AIO_FRESH)
            aio_end(c);
        if (!PyArg_UnpackTuple(args, "throw", 1, 3, &typ, &val, &tb))
            return NULL;
        if (PyExceptionInstance_Check(typ)) {
            if (tb != Py_None && PyException_SetTraceback(typ, tb) < 0)
                return NULL;
            PyErr_SetObject((PyObject *)Py_TYPE(typ), typ);
        } else if (PyExceptionClass_Check(typ)) {
            PyErr_SetObject(typ, val);
        } else {
            PyErr_SetString(PyExc_TypeError,
                            "exceptions must be classes or instances deriving from BaseException");
        }
        return NULL;
    }

    static PyObject *aio_close(PyObject *self, PyObject *unused) {
        AioCall *c = (AioCall *)self;
        PyObject *inner = c->inner, *r;
        (void)unused;
        if (c->state != AIO_FRESH && c->state != AIO_DELEGATING)
            Py_RETURN_NONE;
        c->inner = NULL; /* (ours, to close) */
        aio_end(c);
        if (inner == NULL)
            Py_RETURN_NONE;
        r = PyObject_CallMethod(inner, "close", NULL);
        Py_DECREF(inner);
        return r;
    }

    static PyMethodDef aio_methods[] = {
        {"send", (PyCFunction)aio_send_method, METH_O, NULL},
        {"throw", (PyCFunction)aio_throw, METH_VARARGS, NULL},
        {"close", (PyCFunction)aio_close, METH_NOARGS, NULL},
        {NULL, NULL, 0, NULL},
    };

    static PyAsyncMethods aio_call_async = {
        .am_await = aio_self,
        .am_send = aio_send,
    };

    static PyAsyncMethods aio_iter_async = {
        .am_await = aio_self,
        .am_aiter = aio_self,
        .am_anext = aio_anext,
        .am_send = aio_send,
    };

    static PyTypeObject AioCall_Type = {
        PyVarObject_HEAD_INIT(NULL, 0)
        .tp_name = "spread._core.AioCall",
        .tp_basicsize = sizeof(AioCall),
        .tp_dealloc = aio_dealloc,
        .tp_as_async = &aio_call_async,
        .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
        .tp_doc = "An awaited spread.aio call (spread/_aio_fast.pxi).",
        .tp_traverse = aio_traverse,
        .tp_clear = aio_clear,
        .tp_iter = PyObject_SelfIter,
        .tp_iternext = aio_iternext,
        .tp_methods = aio_methods,
    };

    static PyTypeObject AioIter_Type = {
        PyVarObject_HEAD_INIT(NULL, 0)
        .tp_name = "spread._core.AioIter",
        .tp_basicsize = sizeof(AioCall),
        .tp_dealloc = aio_dealloc,
        .tp_as_async = &aio_iter_async,
        .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
        .tp_doc = "async for over a spread.aio inbox (spread/_aio_fast.pxi).",
        .tp_traverse = aio_traverse,
        .tp_clear = aio_clear,
        .tp_iter = PyObject_SelfIter,
        .tp_iternext = aio_iternext,
        .tp_methods = aio_methods,
    };

    static int spread_aio_ready(spread_aio_step now, spread_aio_step later, PyObject *deque_type) {
        PyObject *d = PyObject_GetAttrString(deque_type, "popleft");
        if (d == NULL)
            return -1;
        if (Py_IS_TYPE(d, &PyMethodDescr_Type) &&
            (((PyMethodDescrObject *)d)->d_method->ml_flags & ~METH_COEXIST) == METH_NOARGS)
            aio_popleft_fn = ((PyMethodDescrObject *)d)->d_method->ml_meth;
        Py_DECREF(d);
        if (PyType_Check(deque_type)) { /* (it is: collections.deque, kept) */
            Py_INCREF(deque_type);
            aio_deque_type = (PyTypeObject *)deque_type;
        }
        spread_aio_now = now;
        spread_aio_later = later;
        if (PyType_Ready(&AioCall_Type) < 0 || PyType_Ready(&AioIter_Type) < 0)
            return -1;
        return 0;
    }

    static PyObject *spread_aio_type(int iterator) {
        PyObject *t = iterator ? (PyObject *)&AioIter_Type : (PyObject *)&AioCall_Type;
        Py_INCREF(t);
        return t;
    }
    """
    ctypedef struct spread_aio_inbox:
        PyObject *buf
        int plain
        Py_ssize_t limit
        Py_ssize_t failures
    object spread_aio_call(object owner, spread_aio_inbox *inbox, int kind,
                           object a0, object a1, object a2, object a3)
    object spread_aio_iter(object owner, spread_aio_inbox *inbox, int kind)
    object spread_aio_popleft(object deque)
    int spread_aio_ready(object (*now)(object, int, PyObject **),
                         object (*later)(object, int, PyObject **), object deque_type) except -1
    object spread_aio_type(int iterator)


cdef enum:
    _AIO_NEXT = 0        # __anext__()
    _AIO_RECEIVE = 1     # receive(timeout)
    _AIO_MULTICAST = 2   # multicast(service_type, group, data, msg_type)


cdef class AioInbox:
    """The base of spread.aio's Inbox on this backend: the deque its
    messages wait in, and receive() and ``async for`` taking one from it in
    C. When none is there, or there may be more to do than take it (see
    spread/aio/fast.py's PyInboxBase), the call goes on in Python: the
    inbox's _receive_slow() and _anext_slow()."""
    cdef readonly object _buf
    cdef spread_aio_inbox _st     # _buf, and what spread/aio keeps (inbox.py)

    def __cinit__(self, *args, **kwargs):
        self._buf = deque()
        self._st.buf = <PyObject *>self._buf

    @property
    def _plain(self):
        return self._st.plain != 0

    @_plain.setter
    def _plain(self, bint value):
        self._st.plain = value

    @property
    def _limit(self):
        return self._st.limit

    @_limit.setter
    def _limit(self, Py_ssize_t value):
        self._st.limit = value

    @property
    def _failures(self):
        return self._st.failures

    @_failures.setter
    def _failures(self, Py_ssize_t value):
        self._st.failures = value

    def receive(self, timeout=None):
        """The next message (RegularMsg or MembershipMsg); TimeoutError after
        timeout seconds (None: no limit). Cancelling it never loses one."""
        return spread_aio_call(self, &self._st, _AIO_RECEIVE, timeout, None, None, None)

    def __aiter__(self):
        # An AioIter, its own __anext__'s awaitable while that is free. (Not
        # self: a Python subclass's __anext__ is looked up by name each time.)
        return spread_aio_iter(self, &self._st, _AIO_NEXT)

    def __anext__(self):
        return spread_aio_call(self, &self._st, _AIO_NEXT, None, None, None, None)


cdef class AioWriter:
    """The base of spread.aio's Writer on this backend: what an awaited
    multicast reads in C."""
    cdef public bint direct         # nothing queued or held: a send may go straight out
    cdef public MailboxBase _mbox


cdef class AioConnection(AioInbox):
    """The base of spread.aio's Connection on this backend: multicast()."""
    cdef public AioWriter _writer

    def multicast(self, service_type, group, data, msg_type=0):
        """Sends data to a group; returns its length once the message is
        committed: written to the socket (or its unsent rest held by the
        library), or queued behind what the *_nowait forms queued. While
        the socket is full it waits for room, with nothing queued: a
        cancelled call has sent nothing."""
        return spread_aio_call(self._writer, NULL, _AIO_MULTICAST, service_type, group, data,
                               msg_type)


cdef object _aio_now(object owner, int kind, PyObject **args):
    """A writer's call's result when it can finish at once, else None (an
    inbox's is C's aio_take)."""
    cdef AioWriter w = <AioWriter>owner
    cdef int r
    # multicast: one non-blocking write if nothing is queued or held (what
    # MailboxBase._multicast_nowait does); the socket full: later.
    if not w.direct:
        return None
    r = _send_single(w._mbox, <object>args[0], <object>args[1], <object>args[2],
                     <object>args[3], False)
    if r >= 0:
        return w._mbox._length(r)
    if r == SPX_PARTIAL:  # committed: the library holds the rest
        return owner.after_multicast(r, <object>args[0], <object>args[1], <object>args[2],
                                     <object>args[3])
    if r != SPX_WOULD_BLOCK:
        _raise(r, "multicast()")
    return None


cdef object _aio_later(object owner, int kind, PyObject **args):
    """The Python coroutine that does the rest of a call."""
    if kind == _AIO_NEXT:
        return owner._anext_slow()
    if kind == _AIO_RECEIVE:
        return owner._receive_slow(<object>args[0])
    return owner.send("m", (<object>args[0], <object>args[1], <object>args[2], <object>args[3]))


spread_aio_ready(_aio_now, _aio_later, deque)
AioCall = spread_aio_type(False)
AioIter = spread_aio_type(True)
