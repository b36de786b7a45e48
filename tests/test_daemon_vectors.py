"""Replays the client side of every captured vector against the embedded
daemon and compares what it answers with what a real Spread 4.0 daemon
answered, masking only the membership time (group id word 1)."""

from __future__ import annotations

import re
import socket
import struct

import pytest

from vectors import all_names, load, records_of

# Vectors that need something the stock daemon does not have (a deny policy)
# or have no client side at all.
SKIP = {"reject_messages_deny_policy"}
CAPTURED = [n for n in all_names() if not n.startswith("synthetic_") and n not in SKIP]
RANDOM_NAME = re.compile(rb"^\x01\x04\x00\x00(.)#r(\d{1,4})-(\d{1,4})#localhost$", re.S)


def masked(data: bytes) -> bytes:
    """The bytes with group id word 1 of a membership body zeroed."""
    if len(data) < 48:
        return data
    (typ,) = struct.unpack_from("<I", data, 0)
    if not typ & 0x1000 or typ & 0x400000:
        return data
    (ng,) = struct.unpack_from("<i", data, 36)
    at = 48 + 32 * ng + 4
    out = bytearray(data)
    out[at : at + 4] = bytes(4)
    return bytes(out)


def read_exact(sock: socket.socket, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            break
        buf += chunk
    return buf


@pytest.mark.parametrize("name", CAPTURED)
def test_daemon_answers_like_spread(name, spread_daemon_factory):
    vector = load(name)
    daemon = spread_daemon_factory()
    unix = vector.get("transport") == "unix socket"
    socks: dict[int, socket.socket] = {}
    first_eof: dict[int, tuple[float, str]] = {}
    for e in sorted(vector.get("connection_events", []), key=lambda e: e["t"]):
        if e["event"] == "eof":
            first_eof.setdefault(e["conn"], (e["t"], e["from"]))
    server_closes = {c for c, (_, who) in first_eof.items() if who == "server"}
    # Clients that closed first (SP_kill, or the end of a raw conversation).
    timeline = [(r.t, r.index, r) for r in records_of(vector)]
    timeline += [(t, -1, c) for c, (t, who) in first_eof.items() if who == "client"]
    timeline.sort(key=lambda x: (x[0], x[1]))
    try:
        for _, _, r in timeline:
            if isinstance(r, int):
                socks[r].shutdown(socket.SHUT_WR)
                continue
            if r.conn not in socks:
                s = socket.socket(socket.AF_UNIX if unix else socket.AF_INET)
                s.settimeout(5)
                s.connect(f"/tmp/{daemon.port}" if unix else ("127.0.0.1", daemon.port))
                socks[r.conn] = s
            s = socks[r.conn]
            if r.dir == "c2s":
                s.sendall(r.data)
                continue
            if name == "connect_random_name" and r.unit == "accept":
                got = read_exact(s, 5)
                got += read_exact(s, got[4])
                assert RANDOM_NAME.match(got), got
                continue
            got = read_exact(s, len(r.data))
            assert masked(got) == masked(r.data), f"record {r.index} ({r.unit})"
        for conn in server_closes:
            assert read_exact(socks[conn], 1) == b"", f"conn {conn} should be closed"
    finally:
        for s in socks.values():
            s.close()
