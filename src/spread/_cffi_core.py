"""The cffi backend: the same public surface as the Cython module (_core),
over spread._cffi_native, which cffi builds in out-of-line API mode from the
same native/ sources. cffi releases the GIL around every C call, so blocking
calls never hold it. Used on PyPy, or with SPREAD_BACKEND=cffi.
"""

from __future__ import annotations

import atexit
import os
import threading
import time
import weakref

import select

from . import _args
from ._cffi_native import ffi, lib
from ._daemon_options import DEFAULT_MAX_SESSION_BYTES, check_daemon_options
from ._names import SP_CONSTANTS
from ._errors import BacklogOverflow, Empty, IllegalMessage, ReceiverClosed, error_class

# SPREAD_LIBRARY=/path/to/libspread.so: run on that Spread client library,
# loaded at run time, instead of ours. Only Spread's own API is taken from it
# (native/library.c); our extensions (descriptor holds, interruptible and
# batched receives) are then not used.
LIBRARY = os.environ.get("SPREAD_LIBRARY") or None
if LIBRARY:
    _err = ffi.new("char[512]")
    if lib.spl_load(LIBRARY.encode(), _err, 512) != 0:
        raise ImportError(f"SPREAD_LIBRARY={LIBRARY}: {ffi.string(_err).decode()}")
    sp = ffi.addressof(lib, "spl")  # calls go through the loaded library's table
else:
    sp = lib
NATIVE = LIBRARY is None  # our own library, with its extensions

SLOT = 32
MAX_GROUPS = 100
MAX_BODY = 143952  # payload + 32 * groups above this gets a connection killed by any daemon
FIRST_BUFFER = 16384
FIRST_GROUPS = 16
BATCH_PEEK = 256
HELP_EVERY = 64
NAME_ENCODING = "utf-8"

DEFAULT_BUFFER_SIZE = 10000
DEFAULT_GROUPS_SIZE = 10

# The sp.h constants under their classic names (internal ones stay in lib).
globals().update({n: getattr(lib, n) for n in SP_CONSTANTS})
_MEMBERSHIP_CAUSES = (lib.CAUSED_BY_JOIN | lib.CAUSED_BY_LEAVE | lib.CAUSED_BY_DISCONNECT |
                      lib.CAUSED_BY_NETWORK)
_CHANGE_CAUSES = lib.CAUSED_BY_JOIN | lib.CAUSED_BY_LEAVE | lib.CAUSED_BY_DISCONNECT


def _signed(value: int) -> int:
    """sp.h's int constants (ENDIAN_RESERVED is 0x80000080) as C ints."""
    return value - (1 << 32) if value >= 1 << 31 else value


globals().update({n: _signed(globals()[n]) for n in SP_CONSTANTS})


def error_text(code) -> str:
    """The Spread library's text for an error code (what SP_error prints)."""
    c = code if type(code) is int else _args.integer(code, "code")
    return ffi.string(lib.SPX_error_text(c if -(1 << 31) <= c < 1 << 31 else 0)).decode("ascii")


def _raise(code: int, where: str | None = None):
    raise _args.error(code, where, error_text(code))


_group_bytes = _args.group_bytes


def _service(value) -> int:
    if type(value) is int and -(1 << 31) <= value < 1 << 31:
        return value
    return _args.service_type(value)


def _msg_type(value) -> int:
    if type(value) is int and -32768 <= value <= 32767:
        return value
    return _args.msg_type(value)


def _slot(raw: bytes, as_bytes: bool):
    name = raw.split(b"\0", 1)[0]
    return name if as_bytes else name.decode(NAME_ENCODING, "surrogateescape")


def _slots(buf, n: int, as_bytes: bool) -> tuple:
    raw = ffi.unpack(ffi.cast("char *", buf), n * SLOT)
    return tuple(_slot(raw[i * SLOT:(i + 1) * SLOT], as_bytes) for i in range(n))


class GroupId:
    """A group id: opaque, compared with ``==`` and ``!=``, hashable."""

    __slots__ = ("_id",)

    def __eq__(self, other):
        if not isinstance(other, GroupId):
            return NotImplemented
        return self._id == other._id

    def __ne__(self, other):
        if not isinstance(other, GroupId):
            return NotImplemented
        return self._id != other._id

    def __hash__(self):
        return hash(self._id)

    def __repr__(self):
        return "<group_id %08X:%08X:%08X>" % tuple(v & 0xFFFFFFFF for v in self._id)

    @property
    def id(self):
        """The three 32-bit integers: (daemon address, membership time, counter)."""
        return self._id


def _group_id(gid) -> GroupId:
    g = GroupId.__new__(GroupId)
    g._id = (gid.id[0], gid.id[1], gid.id[2])
    return g


class RegularMsg:
    """A data message (or a reject of one of our requests, see service_type)."""

    __slots__ = ("sender", "groups", "message", "msg_type", "endian", "service_type")

    def __repr__(self):
        return (f"<RegularMsg sender={self.sender!r} groups={self.groups!r} "
                f"msg_type={self.msg_type} len={len(self.message)}>")


class MembershipMsg:
    """A membership notice for a group we belong to."""

    __slots__ = ("reason", "msg_subtype", "service_type", "group", "group_id", "members",
                 "extra", "orig_members", "changed_member")

    def __repr__(self):
        return (f"<MembershipMsg group={self.group!r} reason={self.reason:#x} "
                f"members={self.members!r} changed_member={self.changed_member!r}>")

    @property
    def from_daemon(self):
        """False for a forgery: a client's message sent with membership bits
        (real Spread daemons forward those) names its sender, a private group
        ("#name#daemon"), where a daemon's notice names the group."""
        return not self.group.startswith("#" if isinstance(self.group, str) else b"#")


_new_regular = object.__new__


def _read_vs_sets(body, body_len: int, capacity: int, as_bytes: bool):
    """(count, index of ours, [(num_members, members_offset, names)]) or an error code.
    Our length-checked decoders, whichever library received the body."""
    sets = ffi.new("vs_set_info[]", max(capacity, 1))
    mine = ffi.new("unsigned int *")
    k = lib.SPX_get_vs_sets_info(body, body_len, sets, capacity, mine)
    if k < 0:
        return k
    result = []
    for i in range(k):
        n = sets[i].num_members
        names = ffi.new("char[][32]", max(n, 1))
        got = lib.SPX_get_vs_set_members(body, body_len, ffi.addressof(sets, i), names, n)
        if got < 0:
            return got
        result.append((n, sets[i].members_offset, _slots(names, got, as_bytes)))
    return k, mine[0], result


def _message(mbox, svc, sender, groups, num_groups, mess_type, endian, data, n):
    """The message object for one received message (from any source)."""
    as_bytes = mbox._bytes_names
    if (svc & lib.MEMBERSHIP_MESS) and not (svc & lib.REJECT_MESS):
        m = MembershipMsg()
        m.service_type = svc
        m.reason = svc & _MEMBERSHIP_CAUSES
        m.msg_subtype = svc & (lib.REG_MEMB_MESS | lib.TRANSITION_MESS)
        m.group = mbox._sender(sender)
        m.members = _slots(groups, num_groups, as_bytes)
        m.extra = ()
        m.orig_members = ()
        m.group_id = None
        m.changed_member = None
        if (svc & lib.CAUSED_BY_LEAVE) and not (svc & (lib.REG_MEMB_MESS | lib.TRANSITION_MESS)):
            return m  # our own leave
        info = ffi.new("membership_info *")
        if lib.SPX_get_memb_info(data, n, svc, info) < 0:
            _raise(lib.ILLEGAL_MESSAGE, "membership message body")
        m.group_id = _group_id(info.gid)
        if not svc & lib.REG_MEMB_MESS:
            return m
        if svc & _CHANGE_CAUSES:
            m.changed_member = _slot(ffi.buffer(info.changed_member, SLOT)[:], as_bytes)
        r = _read_vs_sets(data, n, info.num_vs_sets, as_bytes)
        if isinstance(r, int):
            _raise(r, "membership vs-sets")
        m.orig_members = tuple(names for _, _, names in r[2])
        if 0 <= r[1] < len(m.orig_members):
            m.extra = m.orig_members[r[1]]
        return m
    msg = _new_regular(RegularMsg)
    msg.sender = mbox._sender(sender)
    msg.groups = mbox._group_tuple(groups, num_groups)
    msg.message = ffi.unpack(data, n)
    msg.msg_type = mess_type
    msg.endian = endian
    msg.service_type = svc
    return msg


class Mailbox:
    """A connection to a Spread daemon; made by :func:`connect`."""

    def __init__(self, *args, **kwargs):
        raise TypeError("Mailbox objects are made by spread.connect()")

    def _setup(self, mbox: int, private_group: bytes, bytes_names: bool) -> None:
        self._mbox = mbox
        self._closed = False
        self._released = True
        self._bytes_names = bytes_names
        self._buf = ffi.new("char[]", FIRST_BUFFER)
        self._groups = ffi.new("char[][32]", FIRST_GROUPS)
        # The receive call's outputs, allocated once (used with _buf, under _busy).
        self._out = (ffi.new("service *"), ffi.new("char[32]"), ffi.new("int *"),
                     ffi.new("short *"), ffi.new("int *"))
        self._busy = False
        self._last_sender = None
        self._last_groups = None
        self._last_group = self._last_group_bytes = None
        self._receiver = None
        self._lock = threading.Lock()  # makes disconnect() and the release happen once
        self._inflight = []  # calls in progress (see _enter)
        self._failed_once = False  # the last receive failed (external libraries)
        if NATIVE:
            self._released = lib.SPX_hold(mbox) != 0
            lib.SPX_set_interruptible(mbox, 1)  # Ctrl-C ends a receive's wait

        self._private_group = (private_group if bytes_names else
                               private_group.decode(NAME_ENCODING, "surrogateescape"))

    @property
    def private_group(self):
        """This connection's private group name, e.g. '#alice#localhost'."""
        return self._private_group

    def __del__(self):
        if getattr(self, "_mbox", None) is None:
            return
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
                lib.ILLEGAL_SESSION, f"{what}() called on closed mbox")

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

    def _attached(self):
        rx = self._receiver
        if rx is None:
            return None
        if rx._drained_and_closed():
            self._receiver = None
            return None
        return rx

    def start_receiver(self, **options):
        """Starts a ThreadedReceiver on this mailbox and returns it. From then
        on receive(), poll() and fileno() work through its queue."""
        return ThreadedReceiver(self, **options)

    def fileno(self):
        """The socket descriptor, for select() and event loops (with a
        receiver attached: a descriptor readable while messages are queued)."""
        rx = self._attached()
        if rx is not None:
            return rx.fileno()
        return -1 if self._closed else self._mbox

    def __repr__(self):
        state = "closed" if self._closed else f"fd={self._mbox}"
        return f"<spread.Mailbox {self.private_group!r} {state}>"

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.disconnect()
        return False

    # -- connection ----------------------------------------------------------
    def disconnect(self):
        """Leaves every group and closes the connection; safe to call twice."""
        self._close(True)

    def kill(self):
        """Closes the connection without a disconnect request (SP_kill)."""
        self._close(False)

    def _close(self, polite: bool) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
        rx, self._receiver = self._receiver, None  # no cycle keeps either alive
        if rx is not None:
            rx.close()
        if polite:
            sp.SP_disconnect(self._mbox)
        else:
            sp.SP_kill(self._mbox)
        if not self._inflight:
            self._release()  # else the last call in progress does

    def join(self, group):
        """Joins a group; membership notices follow as messages."""
        self._membership_request(group, True)

    def leave(self, group):
        """Leaves a group."""
        self._membership_request(group, False)

    def _membership_request(self, group, join: bool) -> None:
        g = _group_bytes(group)
        what = "join" if join else "leave"
        self._enter(what)
        try:
            r = sp.SP_join(self._mbox, g) if join else sp.SP_leave(self._mbox, g)
        finally:
            self._leave()
        if r < 0:
            _raise(r, f"{what}({group!r})")

    def poll(self):
        """The number of bytes waiting to be read (0 when none)."""
        rx = self._attached()
        if rx is not None:
            return rx._poll_bytes()
        self._enter("poll")
        try:
            r = sp.SP_poll(self._mbox)
        finally:
            self._leave()
        if r < 0:
            _raise(r, "poll()")
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

    def multicast(self, service_type, group, data, msg_type=0):
        """Sends data to a group (or a private group); returns its length."""
        # The hot path is written out: every call here is measured. Arguments
        # are checked in the Cython backend's order (service, group, msg_type, data).
        svc = service_type if type(service_type) is int and -(1 << 31) <= service_type < 1 << 31 \
            else _args.service_type(service_type)
        if group is self._last_group:
            g = self._last_group_bytes
        else:
            g = _group_bytes(group)
            if type(group) is str or type(group) is bytes:  # immutable: safe to remember
                self._last_group, self._last_group_bytes = group, g
        mt = msg_type if type(msg_type) is int and -32768 <= msg_type <= 32767 \
            else _args.msg_type(msg_type)
        if type(data) is bytes:
            p, n = data, len(data)
        else:
            p, n = self._payload_arg(data)
        if n + SLOT > MAX_BODY:
            _raise(lib.MESSAGE_TOO_LONG, f"multicast() of {n} bytes")
        inflight = self._inflight
        inflight.append(None)  # _enter and _leave, written out
        if self._closed:
            self._leave()
            self._enter("multicast")
        # Every argument is checked: the call itself cannot raise.
        r = sp.SP_multicast(self._mbox, svc, g, mt, n, p)
        inflight.pop()
        if self._closed and not inflight:
            self._release()
        if r < 0:
            _raise(r, "multicast()")
        return r

    def multigroup_multicast(self, service_type, groups, data, msg_type=0):
        """Sends one message to several groups (each receiver gets one copy)."""
        svc = _service(service_type)
        names = _args.group_list(groups)
        mt = _msg_type(msg_type)
        slots = ffi.new("char[][32]", len(names))
        for i, name in enumerate(names):
            ffi.memmove(slots[i], name, len(name))
        p, n = self._payload_arg(data)
        if n + SLOT * len(names) > MAX_BODY:
            _raise(lib.MESSAGE_TOO_LONG,
                   f"multigroup_multicast() of {n} bytes to {len(names)} groups")
        self._enter("multigroup_multicast")
        try:
            r = sp.SP_multigroup_multicast(self._mbox, svc, len(names), slots, mt, n, p)
        finally:
            self._leave()
        if r < 0:
            _raise(r, "multigroup_multicast()")
        return r

    # -- receiving -------------------------------------------------------------
    def _sender(self, sender):
        raw = ffi.unpack(sender, SLOT)
        last = self._last_sender
        if last is not None and last[0] == raw:
            return last[1]
        obj = _slot(raw, self._bytes_names)
        self._last_sender = (raw, obj)
        return obj

    def _group_tuple(self, groups, n):
        raw = ffi.unpack(ffi.cast("char *", groups), n * SLOT)
        last = self._last_groups
        if last is not None and last[0] == raw:
            return last[1]
        t = tuple(_slot(raw[i * SLOT:(i + 1) * SLOT], self._bytes_names) for i in range(n))
        self._last_groups = (raw, t)
        return t

    def receive(self):
        """Blocks until a message arrives; returns a RegularMsg or MembershipMsg."""
        rx = self._attached()
        if rx is not None:
            try:
                return rx.get()
            except ReceiverClosed:
                self._receiver = None
        self._enter("receive")
        try:
            own = not self._busy
            if own:
                self._busy = True
                buf, groups = self._buf, self._groups
            else:  # another thread is receiving into ours: use buffers of our own
                buf, groups = ffi.new("char[]", FIRST_BUFFER), ffi.new("char[][32]", FIRST_GROUPS)
            try:
                if own:
                    svc, sender, num_groups, mess_type, endian = self._out
                else:
                    svc, sender, num_groups, mess_type, endian = (
                        ffi.new("service *"), ffi.new("char[32]"), ffi.new("int *"),
                        ffi.new("short *"), ffi.new("int *"))
                receive = sp.SP_receive
                mbox = self._mbox
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
                    svc[0] = 0
                    n = receive(mbox, svc, sender, len(groups), num_groups, groups, mess_type,
                                endian, len(buf), buf)
                    if n >= 0:
                        return _message(self, svc[0], sender, groups, num_groups[0],
                                        mess_type[0], endian[0], buf, n)
                    if n == lib.SPX_INTERRUPTED:
                        time.sleep(0)  # lets a pending signal handler run (Ctrl-C)
                    elif n in (lib.BUFFER_TOO_SHORT, lib.GROUPS_TOO_SHORT):
                        if -num_groups[0] > len(groups):
                            groups = ffi.new("char[][32]", -num_groups[0])
                        if -endian[0] > len(buf):
                            buf = ffi.new("char[]", -endian[0])
                        if own:
                            self._buf, self._groups = buf, groups
                    else:
                        self._failed_once = True
                        _raise(n, "receive()")
            finally:
                if own:
                    self._busy = False
        finally:
            self._leave()

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
            r = sp.SP_receive(self._mbox, svc, sender, max_groups, num_groups, groups,
                               mess_type, endian, max_len, buf)
        finally:
            self._leave()
        kept = (min(abs(num_groups[0]), max_groups)
                if r >= 0 or r == lib.BUFFER_TOO_SHORT else 0)
        stored = (r if r >= 0 else
                  (max_len if r == lib.BUFFER_TOO_SHORT and service_in & lib.DROP_RECV else 0))
        return (r, svc[0], _slot(ffi.buffer(sender, SLOT)[:], True), num_groups[0],
                list(_slots(groups, kept, True)), mess_type[0], endian[0],
                ffi.buffer(buf, min(stored, max_len))[:])


def _int16(value: int) -> int:
    return value - 65536 if value > 32767 else value


def _memb_info(service_type, body):
    """SP_get_memb_info over a received body, as a dict (for tests)."""
    info = ffi.new("membership_info *")
    r = lib.SPX_get_memb_info(body, len(body), service_type, info)
    if r < 0:
        return {"ret": r}
    return {"ret": r, "gid": [info.gid.id[0], info.gid.id[1], info.gid.id[2]],
            "changed_member": _slot(ffi.buffer(info.changed_member, SLOT)[:], True)
            .decode("ascii", "replace"),
            "num_vs_sets": info.num_vs_sets,
            "my_vs_set": [info.my_vs_set.num_members, info.my_vs_set.members_offset]}


def _vs_sets_info(body, capacity):
    """SP_get_vs_sets_info and SP_get_vs_set_members over a body (for tests)."""
    r = _read_vs_sets(body, len(body), capacity, True)
    if isinstance(r, int):
        return {"ret": r}
    return {"ret": r[0], "my_vs_set_index": r[1],
            "sets": [{"num_members": n, "members_offset": off, "members": list(names)}
                     for n, off, names in r[2]]}


def connect(daemon="4803", name="", priority=0, membership=1, *, bytes_names=False,
            timeout=_args.DEFAULT_TIMEOUT, socket_buffer=None):
    """Connects to a Spread daemon and returns a Mailbox (see the Cython
    backend's docstring: the arguments are the same)."""
    d, nm, prio, memb, as_bytes, secs, sbuf = _args.connect_args(
        daemon, name, priority, membership, bytes_names, timeout, socket_buffer)
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
            raise ValueError(f"socket_buffer={socket_buffer!r}: SPREAD_LIBRARY={LIBRARY} "
                             "sizes its own socket buffers; only None is possible with it")
        r = _external_connect(d, nm, prio, int(memb), mbox, group, secs)
    if r != lib.ACCEPT_SESSION:
        raise _args.connect_error(r, daemon, secs, error_text(r))
    mb = Mailbox.__new__(Mailbox)
    mb._mbox = None  # until set up, nothing to close in __del__
    mb._setup(mbox[0], ffi.string(group), as_bytes)
    return mb


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
    if secs is not None and r in (lib.CONNECTION_CLOSED, lib.COULD_NOT_CONNECT) and \
            time.monotonic() - start >= secs:
        return lib.SPX_TIMED_OUT
    return r


def version():
    """The Spread protocol version of the library: (major, minor, patch)."""
    v = ffi.new("int[3]")
    sp.SP_version(v, v + 1, v + 2)
    return (v[0], v[1], v[2])


# -- the background receiver ---------------------------------------------------------

_live_receivers: weakref.WeakSet = weakref.WeakSet()


@atexit.register
def _close_live_receivers():
    for rx in list(_live_receivers):
        rx.close()


def _native_library():
    """The library the drain thread calls, as function pointers: Spread's API
    from whichever library runs, our extensions only from ours."""
    libs = ffi.new("spr_library *")
    libs.receive = lib.spl.SP_receive
    libs.disconnect = lib.spl.SP_disconnect
    if NATIVE:
        for field, fn in (("hold", "SPX_hold"), ("release", "SPX_release"),
                          ("readahead", "SPX_set_readahead"), ("pending", "SPX_pending"),
                          ("records", "SPX_receive_records_nowait"),
                          ("lend", "SPX_lend_readahead"), ("lent_room", "SPX_lent_room")):
            setattr(libs, field, ffi.addressof(lib, fn))
    return libs


def _timeout(t):
    """get()'s time-out: None, or seconds (checked by _args unless plainly fine)."""
    if t is None or (type(t) is float and 0.0 <= t <= 1e9):
        return t
    return _args.seconds(t, "timeout", zero_ok=True)


class ThreadedReceiver:
    """Drains a mailbox in a background thread so the daemon never sees a
    slow reader; take messages with get(), get_batch() or iteration."""

    def __init__(self, mailbox, *args, **options):
        self._r = ffi.NULL
        if not isinstance(mailbox, Mailbox):
            raise TypeError(f"ThreadedReceiver needs a spread Mailbox, not "
                            f"{type(mailbox).__name__}")
        limit, block = _args.start_receiver(*args, **options)
        policy = lib.SPR_OVERFLOW_BLOCK if block else lib.SPR_OVERFLOW_DISCONNECT
        self._closed = False
        self._consumer = threading.Lock()
        self._since_help = 0
        mailbox._enter("start_receiver")
        try:
            if mailbox._attached() is not None:  # a closed one lets go once drained
                raise ValueError("this mailbox already has a receiver")
            self._libs = _native_library()  # kept alive as long as the thread runs
            err = ffi.new("int *")
            r = lib.spr_start(mailbox._mbox, self._libs, limit, policy, err)
            if r == ffi.NULL:
                raise OSError(err[0], f"cannot start the receiver: {os.strerror(err[0])}")
            self._r = r
            self._mailbox = mailbox
            mailbox._receiver = self
        finally:
            mailbox._leave()
        _live_receivers.add(self)

    def __del__(self):
        if getattr(self, "_r", ffi.NULL) != ffi.NULL:
            lib.spr_free(self._r)
            self._r = ffi.NULL

    def close(self):
        """Stops the thread, even while it waits in receive. Queued messages
        stay readable."""
        if self._closed:
            return
        self._closed = True
        lib.spr_close(self._r)

    @property
    def closed(self):
        return self._closed

    @property
    def mailbox(self):
        """The mailbox this receiver drains."""
        return self._mailbox

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def fileno(self):
        """A descriptor readable exactly while messages are queued; -1 once
        the receiver is closed and every message has been taken."""
        if self._closed and self._drained_and_closed():
            return -1
        return lib.spr_fileno(self._r)

    def _stats(self):
        st = ffi.new("spr_stats *")
        lib.spr_get_stats(self._r, st)
        return st

    def qsize(self):
        """The number of messages queued."""
        return self._stats().backlog_messages

    @property
    def backlog_bytes(self):
        """Payload bytes queued."""
        return self._stats().backlog_bytes

    @property
    def stats(self):
        """Counters: received, delivered, backlog, peak backlog, drain rate."""
        st = self._stats()
        span = st.last_at - st.first_at
        return {"received": st.received, "received_by_consumers": st.received_by_consumers,
                "delivered": st.delivered,
                "backlog_messages": st.backlog_messages, "backlog_bytes": st.backlog_bytes,
                "peak_backlog_messages": st.peak_messages, "peak_backlog_bytes": st.peak_bytes,
                "drain_rate": (st.received - 1) / span if span > 0 else 0.0}

    def _raise_end(self):
        st = self._stats()
        # One snapshot: messages queued before the end are taken before it.
        if st.state == lib.SPR_RUNNING or st.backlog_messages > 0:
            return
        if st.state == lib.SPR_FAILED:
            _raise(st.error, "receive()")
        if st.state == lib.SPR_OVERFLOWED:
            self._mailbox._close(False)
            raise BacklogOverflow(lib.CONNECTION_CLOSED,
                                  "receiver backlog passed max_backlog_bytes; disconnected")
        raise ReceiverClosed(lib.ILLEGAL_SESSION, "the receiver is closed and drained")

    def _wait(self, timeout):
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

    def _take(self, max_messages):
        out = []
        ms = ffi.new("const spx_record *[]", BATCH_PEEK)
        with self._consumer:
            if self._since_help >= HELP_EVERY or lib.spr_peek(self._r, ms, 1) == 0:
                self._since_help = 0
                lib.spr_help(self._r)
            mbox = self._mailbox
            while max_messages > 0:
                n = lib.spr_peek(self._r, ms, min(max_messages, BATCH_PEEK))
                if n == 0:
                    break
                chunk = []
                append = chunk.append
                groups_of, data_of = lib.spx_record_groups_flat, lib.spx_record_data
                try:
                    for i in range(n):
                        m = ms[i]
                        append(_message(mbox, m.service, m.sender, groups_of(m), m.num_groups,
                                        m.mess_type, m.endian, data_of(m), m.data_len))
                except IllegalMessage:
                    # Never buildable (a malformed membership body): it fails alone.
                    if not chunk and not out:
                        lib.spr_consume(self._r, 1)
                        raise
                    lib.spr_consume(self._r, len(chunk))
                    out.extend(chunk)
                    return out
                except BaseException:
                    if out:
                        return out
                    raise
                lib.spr_consume(self._r, n)
                self._since_help += n
                out.extend(chunk)
                max_messages -= n
        return out

    def get(self, timeout=None):
        """The next message; blocks without the GIL; spread.Empty on time-out."""
        return self._get_batch(1, _timeout(timeout))[0]

    def get_nowait(self):
        """The next message, or spread.Empty at once."""
        return self._get_batch(1, 0)[0]

    def get_batch(self, max_messages, timeout=None):
        """Up to max_messages messages (at least one), waiting like get()."""
        if not (type(max_messages) is int and max_messages >= 1):
            max_messages = _args.batch_size(max_messages)
        return self._get_batch(max_messages, _timeout(timeout))

    def _get_batch(self, max_messages, timeout):
        while True:
            out = self._take(max_messages)
            if out:
                return out
            self._raise_end()
            out = self._take(max_messages)
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

    def _drained_and_closed(self):
        ms = ffi.new("const spx_record *[]", 1)
        return self._stats().state == lib.SPR_CLOSED and lib.spr_peek(self._r, ms, 1) == 0

    def _poll_bytes(self):
        st = self._stats()
        return st.backlog_bytes + 48 * st.backlog_messages


# -- the embedded daemon ----------------------------------------------------------------

LOG_LEVELS = {"quiet": lib.SPD_LOG_QUIET, "error": lib.SPD_LOG_ERROR, "info": lib.SPD_LOG_INFO,
              "debug": lib.SPD_LOG_DEBUG}


class NativeDaemon:
    """Sockets bound on construction; run() serves until stop_fd is readable."""

    def __init__(self, port, host="127.0.0.1", name="localhost", max_session_messages=1000,
                 tcp=True, unix_socket=True, log_level="error",
                 max_session_bytes=DEFAULT_MAX_SESSION_BYTES):
        check_daemon_options(port, max_session_messages, max_session_bytes, tcp, unix_socket,
                             log_level)
        self._running = False
        self._keep = (ffi.new("char[]", host.encode("ascii")),
                      ffi.new("char[]", name.encode("ascii")))
        cfg = ffi.new("spd_config *", {"port": port, "host": self._keep[0],
                                       "name": self._keep[1],
                                       "max_session_messages": max_session_messages,
                                       "max_session_bytes": max_session_bytes,
                                       "tcp": int(tcp), "unix_socket": int(unix_socket),
                                       "log_level": LOG_LEVELS[log_level]})
        err = ffi.new("char[256]")
        self._d = lib.spd_open(cfg, err, 256)
        if self._d == ffi.NULL:
            raise OSError(ffi.string(err).decode("utf-8", "replace"))

    @property
    def port(self):
        """The port it listens on (the one it picked, if created with 0)."""
        if self._d == ffi.NULL:
            raise ValueError("daemon is closed")
        return lib.spd_port(self._d)

    def stats(self):
        """Sizes of the daemon's tables (a dict); only while it is not running."""
        if self._d == ffi.NULL:
            raise ValueError("daemon is closed")
        if self._running:
            raise RuntimeError("stats() needs the daemon stopped (run() has returned)")
        s = ffi.new("spd_stats *")
        lib.spd_get_stats(self._d, s)
        return {"groups": s.groups, "group_slots": s.group_slots, "names": s.names,
                "name_slots": s.name_slots, "connections": s.connections}

    def run(self, stop_fd):
        """Serves until stop_fd becomes readable (GIL released throughout)."""
        if self._d == ffi.NULL:
            raise ValueError("daemon is closed")
        if self._running:
            raise RuntimeError("daemon is already running")
        self._running = True
        try:
            r = lib.spd_run(self._d, stop_fd)
        finally:
            self._running = False
        if r != 0:
            raise OSError("daemon event loop failed")

    def close(self):
        """Closes every connection and the listening sockets."""
        if self._running:
            raise RuntimeError("stop the daemon before closing it")
        if self._d != ffi.NULL:
            lib.spd_close(self._d)
            self._d = ffi.NULL

    def __del__(self):
        if getattr(self, "_d", ffi.NULL) != ffi.NULL and not self._running:
            lib.spd_close(self._d)


# -- the C baseline loops (spread.bench) ---------------------------------------------------

def c_multicast(m, group, size, count, last_type=0):
    """Seconds to multicast count messages of size bytes (C loop)."""
    secs = ffi.new("double *")
    r = lib.spb_multicast(_bench_mbox(m), _group_bytes(group), size, count, _int16(last_type),
                          secs)
    if r < 0:
        _raise(r, "c_multicast")
    return secs[0]


def c_self(m, group, size, count, window):
    """Seconds to send count messages to a joined group and read them back."""
    secs = ffi.new("double *")
    r = lib.spb_self(_bench_mbox(m), _group_bytes(group), size, count, window, secs)
    if r < 0:
        _raise(r, "c_self")
    return secs[0]


def c_receive(m, end_type):
    """(messages, seconds first to last, error code or 0) until end_type."""
    n, secs, err = ffi.new("long *"), ffi.new("double *"), ffi.new("int *")
    lib.spb_receive(_bench_mbox(m), _int16(end_type), n, secs, err)
    return n[0], secs[0], err[0]


def c_ping(m, peer_group, size, warmup, rounds):
    """Round-trip times in microseconds (C loop)."""
    rtt = ffi.new("double[]", max(rounds, 1))
    r = lib.spb_ping(_bench_mbox(m), _group_bytes(peer_group), size, warmup, rounds, rtt)
    if r < 0:
        _raise(r, "c_ping")
    return list(rtt[0:rounds])


def c_pong(m, reply_group, end_type):
    """Echoes data messages to reply_group until end_type; returns the count."""
    n = ffi.new("long *")
    r = lib.spb_pong(_bench_mbox(m), _group_bytes(reply_group), _int16(end_type), n)
    if r < 0:
        _raise(r, "c_pong")
    return n[0]


def _bench_mbox(m) -> int:
    m._enter("bench")
    m._leave()
    return m._mbox


MailboxType = Mailbox
RegularMsgType = RegularMsg
MembershipMsgType = MembershipMsg
