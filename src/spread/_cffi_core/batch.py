"""Message objects from a cff_batch (native/include/cffi_fast.h): what C
described in one call, built here with as few cffi operations as possible
(one unpack of the batch's ints, one slice of its scratch per name or
payload). One Batch per mailbox (plain receive) and per receiver; callers
use it one at a time (the mailbox's busy flag, the receiver's consumer
lock)."""

from __future__ import annotations

import struct
from typing import Any

from .library import SLOT, ffi, lib
from .messages import RegularMsg, membership
from .names import slot

__all__ = ["Batch"]

_new_regular = object.__new__
_SENDER, _GROUPS, _NOTICE = lib.CFF_SENDER, lib.CFF_GROUPS, lib.CFF_NOTICE
MOVED = lib.CFF_MOVED
# A message's ints (cffi_fast.h: service, data_len, num_groups, endian,
# mess_type, flags), read a batch at a time: one tuple per message.
_ROW = struct.Struct(f"{lib.CFF_INFO}i")
_ROW_BYTES = _ROW.size


def _names(view, at: int, n: int, as_bytes: bool) -> tuple:
    """n names in their slots at view[at:]."""
    return tuple(slot(view[k : k + SLOT], as_bytes) for k in range(at, at + n * SLOT, SLOT))


class Batch:
    """A cff_batch, freed with this object, and the names of the last
    message built from it (C sends a name only when it changes)."""

    __slots__ = ("b", "_rows", "_view", "_sender", "_groups")

    def __init__(self):
        b = lib.cff_batch_new()
        if b == ffi.NULL:
            raise MemoryError()
        self.b = ffi.gc(b, lib.cff_batch_free)
        self._rows = memoryview(ffi.buffer(self.b.info))
        self._view = ffi.buffer(self.b.scratch, self.b.scratch_size)
        self._sender: Any = None
        self._groups: tuple[Any, ...] = ()

    def build(self, as_bytes: bool, n: int, out: list) -> int:
        """Appends the objects of the batch's first n messages to out (n as
        C returned it: CFF_MOVED added when scratch moved); returns how many
        that is. A message that
        cannot be built (IllegalMessage: a malformed membership body) raises
        with the ones before it in out; so does any other error. Either way
        C is told to send names again, since these caches may then not hold
        the last message's."""
        if n > MOVED:
            n -= MOVED
            self._view = ffi.buffer(self.b.scratch, self.b.scratch_size)
        view, append, new = self._view, out.append, _new_regular
        sender, groups = self._sender, self._groups
        at = 0
        # (one message, the classic receive()'s: a tuple of one is cheaper than an iterator)
        rows = (
            (_ROW.unpack_from(self._rows),)
            if n == 1
            else _ROW.iter_unpack(self._rows[: n * _ROW_BYTES])
        )
        try:
            for svc, length, ngroups, endian, mess_type, flags in rows:
                if flags:
                    if flags & _SENDER:
                        sender = slot(view[at : at + SLOT], as_bytes)
                        at += SLOT
                    if flags & _GROUPS:
                        groups = _names(view, at, ngroups, as_bytes)
                        at += ngroups * SLOT
                    if flags & _NOTICE:
                        end = at + length
                        append(membership(svc, sender, groups, view[at:end], as_bytes))
                        at = end
                        continue
                msg = new(RegularMsg)
                msg.sender = sender
                msg.groups = groups
                msg.message = view[at : at + length]
                msg.msg_type = mess_type
                msg.endian = endian
                msg.service_type = svc
                append(msg)
                at += length
        except BaseException:
            lib.cff_batch_forget(self.b)
            raise
        self._sender, self._groups = sender, groups
        return n
