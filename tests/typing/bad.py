"""Mistakes mypy --strict must report, each where its line says: `# E: <code>`
names the error code(s) expected on that line, and no other line may have
one (tests/test_typing.py). Never run: it is only type-checked."""

from __future__ import annotations

import spread

spread.connect(4803)  # E: call-overload
spread.connect("4803", priority=1.5)  # E: call-overload
spread.connect("4803", timeout="10")  # E: call-overload
spread.nonexistent  # E: attr-defined
spread.AGREED_MESS = 2  # E: misc


def typed_names(mbox: spread.Mailbox[str], bmbox: spread.Mailbox[bytes]) -> None:
    x: int = mbox.receive()  # E: assignment
    msg = mbox.receive()
    print(msg.group)  # E: union-attr
    if isinstance(msg, spread.RegularMsg):
        wrong: bytes = msg.sender  # E: assignment
        msg.sender = "someone"  # E: misc
    else:
        print(msg.group_id.id)  # E: union-attr
    bmsg = bmbox.receive()
    if isinstance(bmsg, spread.MembershipMsg):
        member: str = bmsg.members[0]  # E: assignment
    private: str = bmbox.private_group  # E: assignment
    bmbox_again: spread.Mailbox[bytes] = spread.connect("4803")  # E: assignment
    print(x, wrong, member, private, bmbox_again)


def calls(mbox: spread.Mailbox[str]) -> None:
    mbox.join(7)  # E: arg-type
    mbox.multicast(spread.SAFE_MESS, "g", 42)  # E: arg-type
    mbox.multicast(1.5, "g", b"x")  # E: arg-type
    mbox.multigroup_multicast(spread.SAFE_MESS, [1, 2], b"x")  # E: list-item list-item
    rx = mbox.start_receiver(on_overflow="drop")  # E: arg-type
    rx.get(timeout="1")  # E: arg-type
    print(rx.stats["nonexistent"])  # E: typeddict-item
    n: str = rx.qsize()  # E: assignment
    print(n, spread.error_text("x"))  # E: arg-type


def unparameterized(mbox: spread.Mailbox) -> None:  # E: type-arg
    version: tuple[int, int] = spread.version()  # E: assignment
    try:
        mbox.disconnect()
    except spread.SpreadError as e:
        text: int = e.text  # E: assignment
        print(version, text)


def made_by_connect() -> None:
    spread.Mailbox()  # E: call-arg
    spread.Mailbox("4803")  # E: arg-type
