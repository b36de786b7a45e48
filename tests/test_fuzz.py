"""Random and mutated frames against a running daemon: it must survive every
one, keep serving others, and keep its group state consistent."""

from __future__ import annotations

import random
import socket
import time

import spread
from vectors import load, records_of

SEED = 20261121
FRAMES = 400
TIME_LIMIT = 20.0
GROUP = "fz"


def seed_frames() -> list[bytes]:
    frames = []
    for name in (
        "multicast_service_types",
        "multigroup_open_group",
        "join_leave_self",
        "connection_killed_invalid_header",
        "msg_type_encoding",
    ):
        frames += [
            r.data
            for r in records_of(load(name))
            if r.dir == "c2s" and r.unit in ("message", "incomplete-msgs")
        ]
    return frames


def handshake(port: int, name: bytes) -> socket.socket | None:
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    s.sendall(bytes([4, 0, 0, 1, len(name)]) + name)
    if s.recv(6) != b"\x05NULL ":
        s.close()
        return None
    s.sendall(b"NULL".ljust(90, b"\0"))
    accept = b""
    while len(accept) < 5 + 1 + len(name) + 1 + 9:
        chunk = s.recv(64)
        if not chunk:
            break
        accept += chunk
    if not accept.startswith(b"\x01\x04\x00\x00"):
        s.close()
        return None
    return s


def mutate(rng: random.Random, frame: bytes, sender: bytes) -> bytes:
    data = bytearray(frame)
    if len(data) >= 36 and rng.random() < 0.8:
        data[4:36] = sender.ljust(32, b"\0")  # get past the sender check, mostly
    choice = rng.randrange(6)
    if choice == 0 and data:  # flip bits
        for _ in range(rng.randint(1, 8)):
            i = rng.randrange(len(data))
            data[i] ^= 1 << rng.randrange(8)
    elif choice == 1 and len(data) > 1:  # truncate
        del data[rng.randrange(1, len(data)) :]
    elif choice == 2 and len(data) >= 48:  # absurd counts and lengths
        at = rng.choice([36, 44])
        data[at : at + 4] = rng.choice(
            [b"\xff\xff\xff\xff", b"\x00\x00\x00\x80", b"\x65\x00\x00\x00", b"\x10\x32\x02\x00"]
        )
    elif choice == 3:  # random bytes
        data = bytearray(rng.randbytes(rng.randint(1, 300)))
    elif choice == 4 and len(data) >= 4:  # odd type bits
        data[0:4] = rng.randbytes(4)
    else:  # several frames glued together
        data += frame + rng.randbytes(rng.randint(0, 64))
    return bytes(data)


def test_daemon_survives_fuzzing(spread_daemon_factory):
    daemon = spread_daemon_factory(max_session_messages=200)
    rng = random.Random(SEED)
    frames = seed_frames()
    watcher = spread.connect(daemon.address, "watcher")
    watcher.join(GROUP)
    assert watcher.receive().members == ("#watcher#localhost",)
    deadline = time.monotonic() + TIME_LIMIT
    sent = 0
    for i in range(FRAMES):
        if time.monotonic() > deadline:
            break
        if rng.random() < 0.1:  # garbage instead of a handshake
            with socket.create_connection(("127.0.0.1", daemon.port), timeout=5) as s:
                s.sendall(rng.randbytes(rng.randint(1, 20)))
            continue
        name = b"f%d" % i
        s = handshake(daemon.port, name)
        assert s is not None, "the daemon stopped accepting clients"
        with s:
            sender = b"#" + name + b"#localhost"
            if rng.random() < 0.5:  # a valid join first, so that the kill shows
                join = bytearray(frames[0][:48])
                join[0:4] = (0x80010080).to_bytes(4, "little")
                join[4:36] = sender.ljust(32, b"\0")
                join[36:40] = (1).to_bytes(4, "little")
                join[40:44] = (0x80000080).to_bytes(4, "little")
                join[44:48] = bytes(4)
                s.sendall(bytes(join) + GROUP.encode().ljust(32, b"\0"))
            for _ in range(rng.randint(1, 4)):
                try:
                    s.sendall(mutate(rng, rng.choice(frames), sender))
                except OSError:
                    break  # killed already
            sent += 1
    assert sent > 50
    # The daemon still serves, and the watcher's view of the group ends with
    # every fuzz client gone again.
    probe = spread.connect(daemon.address, "probe")
    probe.join(GROUP)
    final = None
    while True:
        msg = watcher.receive()
        if isinstance(msg, spread.MembershipMsg):
            final = msg
            if msg.changed_member == "#probe#localhost":
                break
    assert final.members == ("#probe#localhost", "#watcher#localhost")
    probe.disconnect()
    watcher.disconnect()
