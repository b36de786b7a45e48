"""Message objects from what the library received: RegularMsg (built per
message by batch.py, as cheaply as cffi allows) and membership notices,
decoded with our length-checked C decoders whichever library received the
body and built by spread/_messages.py."""

from __future__ import annotations

from typing import Any

from .. import _messages
from .library import SLOT, ffi, lib, raise_error
from .names import slot, slots


class RegularMsg:
    """A data message (or a reject of one of our requests, see service_type)."""

    __slots__ = ("sender", "groups", "message", "msg_type", "endian", "service_type")
    sender: Any
    groups: tuple[Any, ...]
    message: bytes
    msg_type: int
    endian: int
    service_type: int

    def __repr__(self):
        return _messages.regular_repr(self)


def read_vs_sets(body, body_len: int, capacity: int, as_bytes: bool):
    """(count, index of ours, [(num_members, members_offset, names)]) or an error code."""
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
        result.append((n, sets[i].members_offset, slots(names, got, as_bytes)))
    return k, mine[0], result


def membership(svc: int, group, members: tuple, body: bytes, as_bytes: bool):
    """The notice's object, from its names (decoded) and body; IllegalMessage
    for a body that does not hold what its type says."""
    if _messages.is_self_leave(svc):
        return _messages.membership(svc, group, members)
    n = len(body)
    info = ffi.new("membership_info *")
    if lib.SPX_get_memb_info(body, n, svc, info) < 0:
        raise_error(lib.ILLEGAL_MESSAGE, _messages.BAD_BODY)
    gid = (info.gid.id[0], info.gid.id[1], info.gid.id[2])
    if not _messages.wants_vs_sets(svc):
        return _messages.membership(svc, group, members, gid)
    r = read_vs_sets(body, n, info.num_vs_sets, as_bytes)
    if isinstance(r, int):
        raise_error(r, _messages.BAD_VS_SETS)
    return _messages.membership(
        svc,
        group,
        members,
        gid,
        slot(ffi.buffer(info.changed_member, SLOT)[:], as_bytes),
        tuple(names for _, _, names in r[2]),
        r[1],
    )


def _memb_info(service_type, body):
    """SP_get_memb_info over a received body, as a dict (for tests)."""
    info = ffi.new("membership_info *")
    r = lib.SPX_get_memb_info(body, len(body), service_type, info)
    if r < 0:
        return {"ret": r}
    return {
        "ret": r,
        "gid": [info.gid.id[0], info.gid.id[1], info.gid.id[2]],
        "changed_member": slot(ffi.buffer(info.changed_member, SLOT)[:], True).decode(
            "ascii", "replace"
        ),
        "num_vs_sets": info.num_vs_sets,
        "my_vs_set": [info.my_vs_set.num_members, info.my_vs_set.members_offset],
    }


def _vs_sets_info(body, capacity):
    """SP_get_vs_sets_info and SP_get_vs_set_members over a body (for tests)."""
    r = read_vs_sets(body, len(body), capacity, True)
    if isinstance(r, int):
        return {"ret": r}
    return {
        "ret": r[0],
        "my_vs_set_index": r[1],
        "sets": [
            {"num_members": n, "members_offset": off, "members": list(names)}
            for n, off, names in r[2]
        ],
    }
