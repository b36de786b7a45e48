"""The message classes that are not per-message hot, written once for both
backends: GroupId, MembershipMsg and how a membership notice becomes one,
and the text of every message's repr. (RegularMsg itself is a backend class:
one is built per data message, so each backend makes it its fastest way.)

The backends decode the notice's body with the C library's length-checked
decoders and hand the fields to membership(); what the fields mean for the
object (which apply to which kind of notice) is decided here.
"""

from __future__ import annotations

from typing import Any

# sp.h's service bits used here (tests/test_surface.py checks them against the backend).
REG_MEMB_MESS, TRANSITION_MESS = 0x1000, 0x2000
CAUSED_BY_JOIN, CAUSED_BY_LEAVE, CAUSED_BY_DISCONNECT = 0x100, 0x200, 0x400
CAUSED_BY_NETWORK = 0x800
CAUSES = CAUSED_BY_JOIN | CAUSED_BY_LEAVE | CAUSED_BY_DISCONNECT | CAUSED_BY_NETWORK
MEMBER_CAUSES = CAUSED_BY_JOIN | CAUSED_BY_LEAVE | CAUSED_BY_DISCONNECT  # name one member
SUBTYPES = REG_MEMB_MESS | TRANSITION_MESS

# What a backend's IllegalMessage says when a notice's body does not hold
# what its service type promises (a forged or damaged message: it fails alone).
BAD_BODY = "membership message body"
BAD_VS_SETS = "membership vs-sets"


def is_self_leave(service_type: int) -> bool:
    """Our own leave: a notice with no body (sp.h's Is_self_leave)."""
    return bool(service_type & CAUSED_BY_LEAVE) and not service_type & SUBTYPES


def wants_vs_sets(service_type: int) -> bool:
    """Only a regular membership notice carries the changed member and vs-sets."""
    return bool(service_type & REG_MEMB_MESS)


class GroupId:
    """A group id: opaque, compared with ``==`` and ``!=``, hashable."""

    __slots__ = ("_id",)

    def __init__(self, id: tuple[int, int, int]) -> None:
        self._id = (id[0], id[1], id[2])  # as sp.h's int32 fields hold them (signed)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, GroupId):
            return NotImplemented
        return self._id == other._id

    def __ne__(self, other: object) -> bool:
        if not isinstance(other, GroupId):
            return NotImplemented
        return self._id != other._id

    def __hash__(self) -> int:
        return hash(self._id)

    def __repr__(self) -> str:
        a, b, c = (v & 0xFFFFFFFF for v in self._id)
        return f"<group_id {a:08X}:{b:08X}:{c:08X}>"

    @property
    def id(self) -> tuple[int, int, int]:
        """The three 32-bit integers: (daemon address, membership time, counter)."""
        return self._id


class MembershipMsg:
    """A membership notice for a group we belong to."""

    __slots__ = (
        "reason",
        "msg_subtype",
        "service_type",
        "group",
        "group_id",
        "members",
        "extra",
        "orig_members",
        "changed_member",
    )
    reason: int
    msg_subtype: int
    service_type: int
    group: Any
    group_id: GroupId | None
    members: tuple[Any, ...]
    extra: tuple[Any, ...]
    orig_members: tuple[tuple[Any, ...], ...]
    changed_member: Any

    def __repr__(self) -> str:
        return (
            f"<MembershipMsg group={self.group!r} reason={self.reason:#x} "
            f"members={self.members!r} changed_member={self.changed_member!r}>"
        )

    @property
    def from_daemon(self) -> bool:
        """False for a forgery: a client's message sent with membership bits
        (real Spread daemons forward those) names its sender, a private group
        ("#name#daemon"), where a daemon's notice names the group."""
        return not self.group.startswith("#" if isinstance(self.group, str) else b"#")


def membership(
    service_type: int,
    group: object,
    members: tuple,
    gid: tuple[int, int, int] | None = None,
    changed_member: object = None,
    vs_sets: tuple = (),
    mine: int = -1,
) -> MembershipMsg:
    """The notice's object from its decoded parts: gid the three ints of its
    group id (None for our own leave), vs_sets the members of each vs-set
    and mine the index of ours (regular notices only)."""
    m = MembershipMsg()
    m.service_type = service_type
    m.reason = service_type & CAUSES
    m.msg_subtype = service_type & SUBTYPES
    m.group = group
    m.members = members
    m.group_id = None if gid is None else GroupId(gid)
    regular = wants_vs_sets(service_type)
    m.changed_member = changed_member if regular and service_type & MEMBER_CAUSES else None
    m.orig_members = vs_sets if regular else ()
    m.extra = vs_sets[mine] if regular and 0 <= mine < len(vs_sets) else ()
    return m


def regular_repr(msg: Any) -> str:
    """RegularMsg's repr (the class is the backend's; its text is this)."""
    return (
        f"<RegularMsg sender={msg.sender!r} groups={msg.groups!r} "
        f"msg_type={msg.msg_type} len={len(msg.message)}>"
    )
