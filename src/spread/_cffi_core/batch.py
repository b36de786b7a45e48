"""Message objects from a cff_batch (native/include/cffi_fast.h): what C
described in one call, built here with as few cffi operations as possible
(one unpack of the batch's ints, one slice of its scratch per name or
payload). One Batch per mailbox (plain receive) and per receiver; callers
use it one at a time (the mailbox's busy flag, the receiver's consumer
lock)."""

from __future__ import annotations

from typing import Any

from .library import SLOT, ffi, lib
from .messages import RegularMsg, membership
from .names import slot

__all__ = ["Batch"]

_new_regular = object.__new__
_MEMBERSHIP, _REJECT = lib.MEMBERSHIP_MESS, lib.REJECT_MESS
_SENDER, _GROUPS = lib.CFF_SENDER, lib.CFF_GROUPS
_INFO = lib.CFF_INFO


class Batch:
    """A cff_batch, freed with this object, and the names of the last
    message built from it (C sends a name only when it changes)."""

    __slots__ = ("b", "_info", "_view", "_sender", "_groups")

    def __init__(self):
        b = lib.cff_batch_new()
        if b == ffi.NULL:
            raise MemoryError()
        self.b = ffi.gc(b, lib.cff_batch_free)
        self._info = self.b.info
        self._view = ffi.buffer(self.b.scratch, self.b.scratch_size)
        self._sender: Any = None
        self._groups: tuple[Any, ...] = ()

    def build(self, as_bytes: bool, n: int, out: list) -> None:
        """Appends the objects of the batch's first n messages to out. A
        message that cannot be built (IllegalMessage: a malformed membership
        body) raises with the ones before it in out; so does any other
        error. Either way C is told to send names again, since these caches
        may not hold the last message's."""
        info = ffi.unpack(self._info, 1 + _INFO * n)
        if info[0]:  # scratch moved
            self._view = ffi.buffer(self.b.scratch, self.b.scratch_size)
        view = self._view
        append = out.append
        at = 0
        try:
            for i in range(1, 1 + _INFO * n, _INFO):
                svc, length, ngroups, endian, mess_type, flags = info[i : i + _INFO]
                if flags & _SENDER:
                    self._sender = slot(view[at : at + SLOT], as_bytes)
                    at += SLOT
                if flags & _GROUPS:
                    end = at + ngroups * SLOT
                    self._groups = tuple(
                        slot(view[k : k + SLOT], as_bytes) for k in range(at, end, SLOT)
                    )
                    at = end
                end = at + length
                if svc & _MEMBERSHIP and not svc & _REJECT:
                    append(membership(svc, self._sender, self._groups, view[at:end], as_bytes))
                else:
                    msg = _new_regular(RegularMsg)
                    msg.sender = self._sender
                    msg.groups = self._groups
                    msg.message = view[at:end]
                    msg.msg_type = mess_type
                    msg.endian = endian
                    msg.service_type = svc
                    append(msg)
                at = end
        except BaseException:
            lib.cff_batch_forget(self.b)
            raise
