"""Replays every golden vector through a scripted fake daemon.

Our client performs the calls the recording implies (connect, join, leave,
multicast, disconnect, kill, raw sends); the fake daemon checks every byte
the client sends and plays back every byte the real daemon sent. Each
received message is checked against the recording and against what the
reference library returned (api_observations / library_results), through
the raw C semantics (`_receive_raw`) and through the classic objects.
"""

from __future__ import annotations

import os
import socket
import struct

import pytest

import spread
from spread._backend import core as _core
from vectors import (
    HANDSHAKE_UNITS,
    STEP_TIMEOUT,
    AcceptInBackground,
    Record,
    ScriptedDaemon,
    all_names,
    is_api_client,
    load,
    records_of,
    synthetic_handshake,
)

CAPTURED = [n for n in all_names() if not n.startswith("synthetic_")]
SYNTHETIC = [n for n in all_names() if n.startswith("synthetic_")]
JOIN, LEAVE, KILL = 0x10000, 0x20000, 0x40000


def slot(b: bytes) -> bytes:
    return b.split(b"\0", 1)[0]


def parse_message(data: bytes) -> dict:
    """Independent little-endian parse of one recorded message."""
    (typ,) = struct.unpack_from("<I", data, 0)
    ng, hint, dl = struct.unpack_from("<iIi", data, 36)
    off = 48
    old = None
    if typ & spread.REJECT_MESS:
        old = struct.unpack_from("<I", data, 48)[0] & ~0x80000080
        off += 4
    groups = [slot(data[off + 32 * i : off + 32 * (i + 1)]) for i in range(ng)]
    off += 32 * ng
    return {
        "type": typ & ~0x80000080,
        "old": old,
        "sender": slot(data[4:36]),
        "groups": groups,
        "msg_type": struct.unpack("<h", struct.pack("<H", (hint >> 8) & 0xFFFF))[0],
        "body": data[off : off + dl],
        "complete": len(data) >= off + dl,
    }


def data_matches(expected: str, got: bytes) -> bool:
    return expected == got.decode("latin-1") or expected == got.hex()


def check_memb_info(expected: dict, svc: int, body: bytes) -> None:
    info = _core._memb_info(svc, body)
    assert info["ret"] == expected["ret"]
    assert info["gid"] == expected["gid"]
    assert info["changed_member"] == expected.get("changed", expected.get("changed_member"))
    assert info["num_vs_sets"] == expected["num_vs_sets"]
    if "my_vs_set" in expected:
        assert info["my_vs_set"] == expected["my_vs_set"]
    else:
        assert info["my_vs_set"] == [expected["my_num"], expected["my_off"]]


class Replay:
    def __init__(self, vector: dict, mode: str):
        self.mode = mode
        recs = records_of(vector)
        order: list[int] = []
        for r in recs:
            if r.conn not in order:
                order.append(r.conn)
        self.by_conn = {c: [r for r in recs if r.conn == c] for c in order}
        events = sorted(vector.get("connection_events", []), key=lambda e: e["t"])
        first_eof: dict[int, str] = {}
        for e in events:
            if e["event"] == "eof":
                first_eof.setdefault(e["conn"], e["from"])
        server_closes = {c for c, who in first_eof.items() if who == "server"}
        self.server_closed = server_closes
        self.timeline: list[tuple[float, int, str, object]] = [
            (r.t, r.index, "record", r) for r in recs
        ]
        for c, who in first_eof.items():
            sends_kill = any(
                r.dir == "c2s" and r.unit == "message" and parse_message(r.data)["type"] & KILL
                for r in self.by_conn[c]
            )
            if who == "client" and is_api_client(self.by_conn[c]) and not sends_kill:
                t = next(e["t"] for e in events if e["conn"] == c and e["event"] == "eof")
                self.timeline.append((t, -1, "kill", c))
        self.timeline.sort(key=lambda x: (x[0], x[1]))
        self.daemon = ScriptedDaemon(
            [self.by_conn[c] for c in order],
            unix=vector.get("transport") == "unix socket",
            server_closes=server_closes,
        )
        self.clients: dict[int, spread.Mailbox] = {}
        # The reference library's receive results, per connection, in order.
        names = {c: self.by_conn[c][0].decoded.get("name") for c in order}
        self.observed: dict[int, list[dict]] = {c: [] for c in order}
        for ob in vector.get("api_observations", []):
            if ob["call"] == "SP_receive":
                conn = next((c for c, n in names.items() if n == ob["client"]), None)
                if conn is not None:
                    self.observed[conn].append(ob["result"])

    def run(self) -> None:
        try:
            for _, _, kind, item in self.timeline:
                if kind == "kill":
                    self.clients.pop(item).kill()
                else:
                    self.step(item)
            for conn in list(self.clients):
                mbox = self.clients.pop(conn)
                if conn in self.server_closed:
                    # The daemon closed this connection: the client sees that.
                    self.daemon.conns[conn].done.wait(STEP_TIMEOUT)
                    with pytest.raises(spread.ConnectionClosed):
                        mbox.receive()
                mbox.kill()
        finally:
            for mbox in self.clients.values():
                mbox.kill()
            self.daemon.close()
        assert self.daemon.errors == []

    def step(self, r: Record) -> None:
        if r.dir == "c2s" and r.unit in ("connect", "incomplete-connect"):
            self.connect(r)
        elif r.dir == "c2s" and r.unit not in HANDSHAKE_UNITS:
            self.send(r)
        elif r.dir == "s2c" and r.unit not in HANDSHAKE_UNITS:
            self.daemon.conns[r.conn].release(r.index)
            self.receive(r)

    def connect(self, r: Record) -> None:
        recs = self.by_conn[r.conn]
        acceptor = AcceptInBackground(self.daemon)
        acceptor.start()
        if not is_api_client(recs):
            self.raw_conversation(recs)
        else:
            d = r.decoded
            reject = next((x for x in recs if x.unit == "reject"), None)
            args = (self.daemon.address, d["name"], d["priority"], d["membership"])
            if reject is not None:
                with pytest.raises(spread.SpreadError) as ei:
                    spread.connect(*args)
                assert ei.value.code == struct.unpack("b", reject.data[:1])[0]
            else:
                mbox = spread.connect(*args)
                accept = next(x for x in recs if x.unit == "accept")
                assert mbox.private_group == accept.decoded["private_group"]
                self.clients[r.conn] = mbox
        acceptor.join(STEP_TIMEOUT)
        assert acceptor.error is None and acceptor.conn is not None

    def raw_conversation(self, recs: list[Record]) -> None:
        """A client our library would never be (old versions, bad requests)."""
        fam = socket.AF_UNIX if self.daemon.unix else socket.AF_INET
        addr = self.daemon.path if self.daemon.unix else ("127.0.0.1", self.daemon.port)
        with socket.socket(fam) as s:
            s.settimeout(STEP_TIMEOUT)
            s.connect(addr)
            for x in recs:
                if x.dir == "c2s":
                    s.sendall(x.data)
                else:
                    got = b""
                    while len(got) < len(x.data):
                        chunk = s.recv(len(x.data) - len(got))
                        if not chunk:
                            break
                        got += chunk
                    assert got == x.data

    def send(self, r: Record) -> None:
        mbox = self.clients[r.conn]
        m = parse_message(r.data)
        t = m["type"]
        service_bits = t & 0x3F
        valid_data = (
            service_bits
            and not service_bits & (service_bits - 1)
            and not t & 0x00FFC000
            and m["complete"]
        )
        if t == JOIN and m["complete"]:
            mbox.join(m["groups"][0])
        elif t == LEAVE and m["complete"]:
            mbox.leave(m["groups"][0])
        elif t == KILL and m["complete"]:
            assert mbox.poll() == 0, "messages left unread before disconnect"
            self.clients.pop(r.conn).disconnect()
        elif valid_data and len(m["groups"]) == 1:
            assert mbox.multicast(t, m["groups"][0], m["body"], m["msg_type"]) == len(m["body"])
        elif valid_data:
            assert mbox.multigroup_multicast(t, m["groups"], m["body"], m["msg_type"]) == len(
                m["body"]
            )
        else:
            os.write(mbox.fileno(), r.data)  # a request our library refuses to make

    def receive(self, r: Record) -> None:
        mbox = self.clients[r.conn]
        m = parse_message(r.data)
        svc = (m["old"] | spread.REJECT_MESS) if m["old"] is not None else m["type"]
        observed = self.observed[r.conn].pop(0) if self.observed[r.conn] else None
        if self.mode == "raw":
            ret, rsvc, sender, ng, groups, mt, endian, data = mbox._receive_raw(200, 200000)
            assert (ret, rsvc, sender, groups, data) == (
                len(m["body"]),
                svc,
                m["sender"],
                m["groups"],
                m["body"],
            )
            assert ng == len(groups)
            if observed:
                assert ret == observed["ret"] and rsvc == observed["service"]
                assert sender.decode() == observed["sender"]
                assert [g.decode() for g in groups] == observed["groups"]
                assert (mt, endian) == (observed["mess_type"], observed["endian_mismatch"])
                assert data_matches(observed["data"], data)
                if "memb_info" in observed:
                    check_memb_info(observed["memb_info"], rsvc, data)
            return
        msg = mbox.receive()
        assert msg.service_type == svc
        if svc & spread.MEMBERSHIP_MESS and not svc & spread.REJECT_MESS:
            assert isinstance(msg, spread.MembershipMsg)
            assert msg.group == m["sender"].decode()
            assert msg.members == tuple(g.decode() for g in m["groups"])
            assert msg.reason == svc & 0xF00
            assert msg.msg_subtype == svc & 0x3000
            body = m["body"]
            if svc & 0x3000 == 0:  # self-leave
                assert msg.group_id is None and msg.extra == () and msg.changed_member is None
            else:
                assert msg.group_id.id == struct.unpack_from("<iii", body, 0)
                changed = slot(body[24:56]).decode()
                assert msg.changed_member == changed
                assert msg.extra == (changed,)
                assert msg.orig_members == ((changed,),)
        else:
            assert isinstance(msg, spread.RegularMsg)
            assert msg.sender == m["sender"].decode()
            assert msg.groups == tuple(g.decode() for g in m["groups"])
            assert msg.message == m["body"]
            assert msg.msg_type == m["msg_type"]
            assert msg.endian == 0


@pytest.mark.parametrize("mode", ["raw", "classic"])
@pytest.mark.parametrize("name", CAPTURED)
def test_captured_vector(name, mode):
    Replay(load(name), mode).run()


@pytest.mark.parametrize("name", SYNTHETIC)
def test_synthetic_vector(name):
    """Foreign byte order, network memberships and transitional messages."""
    vector = load(name)
    script = synthetic_handshake("alice") + [
        Record(i, "s2c", 1, bytes.fromhex(r["hex"]), float(i), "message")
        for i, r in enumerate(vector["records"])
    ]
    daemon = ScriptedDaemon([script], server_closes={1})
    try:
        acceptor = AcceptInBackground(daemon)
        acceptor.start()
        mbox = spread.connect(daemon.address, "alice")
        acceptor.join(STEP_TIMEOUT)
        for rec in script[4:]:
            acceptor.conn.release(rec.index)
        lr = vector["library_results"]
        ret, svc, sender, ng, groups, mt, endian, data = mbox._receive_raw(100, 100000)
        assert ret == lr["ret"]
        assert svc == int(lr["service"], 16)
        assert sender.decode() == lr["sender"]
        assert ng == lr["num_groups"]
        assert [g.decode() for g in groups] == lr["groups"]
        assert (mt, endian) == (lr["mess_type"], lr["endian_mismatch"])
        if "data" in lr:
            assert data_matches(lr["data"], data)
        if "body_after_receive_hex" in lr:
            assert data.hex() == lr["body_after_receive_hex"]
        if "memb_info" in lr:
            check_memb_info(lr["memb_info"], svc, data)
        if "vs_sets_info" in lr:
            exp = lr["vs_sets_info"]
            got = _core._vs_sets_info(data, 100)
            assert got["ret"] == exp["ret"]
            assert got["my_vs_set_index"] == exp["my_vs_set_index"]
            assert got["sets"] == [
                {
                    "num_members": s["num_members"],
                    "members_offset": s["members_offset"],
                    "members": [n.encode() for n in s["members"]],
                }
                for s in exp["sets"]
            ]
        if "vs_sets_info_capacity_1" in lr:
            assert _core._vs_sets_info(data, 1)["ret"] == lr["vs_sets_info_capacity_1"]
        mbox.kill()
    finally:
        daemon.close()
    assert daemon.errors == []
