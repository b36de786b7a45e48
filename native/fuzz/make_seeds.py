#!/usr/bin/env python3
"""Writes the fuzzers' seed corpus (native/fuzz/seeds/<target>/) from the
golden vectors (tests/vectors/*.json): the bytes a real daemon and its
clients exchanged, arranged as each harness reads its input (see the
comment at the top of each fuzz_*.c). Run from anywhere; the output is
committed, so this is only needed when the vectors change."""

import glob
import hashlib
import json
import os
import shutil
from collections import defaultdict

HERE = os.path.dirname(os.path.abspath(__file__))
VECTORS = os.path.join(HERE, "..", "..", "tests", "vectors")
SEEDS = os.path.join(HERE, "seeds")
HANDSHAKE_S2C = {"auth-list", "accept", "reject"}


CONTROL_SEEDS = [
    b"ping\n",
    b"totals\nsessions\n",
    b"session fzpeer\nsession #fzpeer#localhost\nsession nobody\n",
    b"pause fzpeer\nsessions\nresume fzpeer\n",
    b"pause fzpeer deliveries\npause #fzpeer#localhost both\ntotals\nresume fzpeer\n",
    b"pause-daemon\nsessions\ntotals\nresume-daemon\nping\n",
    b"kill fzpeer\nsession fzpeer\nkill fzpeer\n",
    b"drop #fzpeer#localhost\nsessions\n",
    b"ping\r\ntotals\r\n",
    b"\n   \nbogus\nkill\nping extra\npause a b c\npause a sideways\n",
    b"kill " + b"n" * 40 + b"\nkill a\x01b\nkill \xff\n",
    b"x" * 300 + b"\nping\n",
    b"sessions",
    # The simulated network (remote.h): daemons, members, events, payloads.
    b"network\nnetwork-address 127.0.0.5\nnetwork-clock 1700000000\nremote-add east\n"
    b"remote-add west 10.0.0.2 alone\nnetwork\n",
    b"remote-add east\nremote-member east bob\nremote-member east bob join grp\n"
    b"remote-member east eve join grp\nremote-member east bob leave grp\n"
    b"remote-member east eve disconnect\nremote-member east zed leave grp\n",
    b"remote-add east\nremote-member east bob join grp\n"
    b"remote-multicast east bob agreed 7 grp,#fzpeer#localhost 5\nhello"
    b"remote-multicast east bob 80 -3 grp 0\nremote-multicast east bob safe 65535 #x#west 2\nab",
    b"remote-add east\nremote-add west\nremote-member east bob join grp\n"
    b"remote-member west dave join grp\npartition east\npartition west\nmerge east west\n"
    b"partition east west\nmerge west\ncrash east\nmerge east\nnetwork\n",
    b"remote-add east\ncrash east\nremote-member east bob\npartition east\nmerge east\n"
    b"network-clock real\n",
    b"remote-add\nremote-add a 1.2.3\nremote-add a 0.0.0.0\nremote-add a#b\n"
    b"remote-member east bob hop grp\nremote-multicast east bob 3 0 grp 5\nping\n"
    b"remote-multicast east bob agreed 0 a,,b 0\nremote-multicast east bob agreed 0 #a 0\n"
    b"remote-multicast east bob agreed 0 grp 144001\npartition a a\ncrash a b\n"
    b"network-clock 0\nnetwork x\npartition localhost\n",
    b"remote-add east\nremote-member east bob join grp\n"
    b"remote-multicast east bob agreed 0 grp 100\nshort",
    # Churn: changes begun and settled, cascades, events later.
    b"remote-add east\nremote-add west\nremote-member east bob join grp\n"
    b"remote-member west dave join grp\nbegin partition east\nremote-member west dave leave grp\n"
    b"remote-member east bob leave grp\nremote-member west x join grp\nbegin crash west\n"
    b"merge east\nbegin partition east\nsettle\nsettle\nnetwork\n",
    b"remote-add east\nremote-member east bob join grp\nafter 0 partition east\n"
    b"after 50 merge east\nafter 10 begin crash east\nafter 20 settle\nnetwork\n",
    b"after\nafter x partition e\nafter 10 ping\nbegin settle\nbegin\nsettle now\n"
    b"after 3600001 settle\nafter 10 partition nobody\n",
]


def connections():
    """(vector name, records of one connection in order) for every connection."""
    for path in sorted(glob.glob(os.path.join(VECTORS, "*.json"))):
        with open(path) as f:
            vector = json.load(f)
        by_conn = defaultdict(list)
        for record in vector["records"]:
            by_conn[record.get("conn", 0)].append(record)
        name = os.path.splitext(os.path.basename(path))[0]
        for conn in sorted(by_conn, key=str):
            yield name, by_conn[conn]


def private_group(records):
    """The private group from the connection's accept, or a stand-in."""
    for r in records:
        if r["dir"] == "s2c" and r["unit"] == "accept":
            raw = bytes.fromhex(r["hex"])
            # An accept ends with the group's length byte and the group,
            # which starts with '#'.
            return raw[raw.index(b"#"):]
    return b"#fz#localhost"


def units(records, direction, kinds=None):
    return [bytes.fromhex(r["hex"]) for r in records
            if r["dir"] == direction and (kinds is None or r["unit"] in kinds)]


def main():
    seeds = defaultdict(set)
    for _name, records in connections():
        group = private_group(records)
        s2c_msgs = b"".join(units(records, "s2c", {"message"}))
        # fuzz_daemon cuts its input into writes at each F5 5F.
        c2s_all = b"\xf5\x5f".join(units(records, "c2s"))
        handshake = b"".join(units(records, "s2c", HANDSHAKE_S2C))
        for m in units(records, "s2c", {"message"}) + units(records, "c2s", {"message"}):
            seeds["wire"].add(m)
        if s2c_msgs:
            # flags (read-ahead on / off, API), read-ahead size, private group
            for flags in (0x00, 0x01, 0x02, 0x05, 0x07):
                seeds["receive"].add(bytes([flags, 3, len(group)]) + group + s2c_msgs)
        if handshake:
            for flags in (0x01, 0x00):
                seeds["connect"].add(bytes([flags]) + handshake + s2c_msgs)
        if c2s_all:
            seeds["daemon"].add(c2s_all)
    # fuzz_control: control-channel requests (no vector has them), one
    # per kind and the refused ones, acting on its peer session "fzpeer".
    for text in CONTROL_SEEDS:
        seeds["control"].add(text)
    if os.path.isdir(SEEDS):
        shutil.rmtree(SEEDS)
    for target, inputs in sorted(seeds.items()):
        out = os.path.join(SEEDS, target)
        os.makedirs(out)
        for data in sorted(inputs):
            name = hashlib.sha1(data).hexdigest()[:16]
            with open(os.path.join(out, name), "wb") as f:
                f.write(data)
        print(f"{target}: {len(inputs)} seeds")


if __name__ == "__main__":
    main()
