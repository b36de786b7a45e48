"""The benchmark workloads: each has a Python loop and the same loop in C
(native/bench/bench.c), run against the same daemon. Loops are plain functions
with local names only, the way an application would write them."""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import time
import uuid

import spread
from spread._backend import core as _core

SVC = spread.RELIABLE_MESS
END = 99  # msg_type that ends a two-process run
WINDOW = 100  # own messages in flight in the send-and-receive-own loop
CHUNK = 2000  # messages between clock checks


def unique(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:12]}"


def _py_multicast(m, group, data, count):
    mc = m.multicast
    svc = SVC
    for _ in range(count):
        mc(svc, group, data)


def multicast_rate(address: str, size: int, seconds: float, impl: str) -> float:
    """Messages per second multicast to a group nobody has joined."""
    group = unique("mc")
    data = b"m" * size
    with spread.connect(address, membership=0) as m:
        sent, elapsed = 0, 0.0
        while elapsed < seconds:
            if impl == "c":
                elapsed += _core.c_multicast(m, group, size, CHUNK)
            else:
                start = time.perf_counter()
                _py_multicast(m, group, data, CHUNK)
                elapsed += time.perf_counter() - start
            sent += CHUNK
        # The daemon has taken them all once our own message comes back.
        m.multicast(SVC, m.private_group, b"")
        m.receive()
    return sent / elapsed


def _py_self(m, group, data, count):
    mc = m.multicast
    recv = m.receive
    svc = SVC
    window = WINDOW
    sent = got = 0
    while got < count:
        while sent < count and sent - got < window:
            mc(svc, group, data)
            sent += 1
        recv()
        got += 1


def self_rate(address: str, size: int, seconds: float, impl: str) -> float:
    """Own messages per second, sent and read back with a bounded window."""
    group = unique("se")
    data = b"s" * size
    with spread.connect(address, membership=0) as m:
        m.join(group)
        done, elapsed = 0, 0.0
        while elapsed < seconds:
            if impl == "c":
                elapsed += _core.c_self(m, group, size, CHUNK, WINDOW)
            else:
                start = time.perf_counter()
                _py_self(m, group, data, CHUNK)
                elapsed += time.perf_counter() - start
            done += CHUNK
    return done / elapsed


# -- two processes ------------------------------------------------------------


def worker(role: str, **args) -> subprocess.Popen:
    """Starts `python -m spread.bench.worker` for one side of a run."""
    return subprocess.Popen(
        [sys.executable, "-m", "spread.bench.worker", role, json.dumps(args)],
        stdout=subprocess.PIPE,
        text=True,
    )


def worker_result(proc: subprocess.Popen, timeout: float) -> dict:
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
        return {"error": "timeout"}
    lines = [line for line in out.splitlines() if line.startswith("{")]
    return json.loads(lines[-1]) if lines else {"error": f"exit {proc.returncode}"}


class WorkerError(Exception):
    """A benchmark worker did not get ready."""


def wait_ready(proc: subprocess.Popen, timeout: float = 20.0) -> None:
    # Until "ready" the worker writes nothing else: one line is all we read.
    out = proc.stdout
    assert out is not None, "workers are started with stdout=PIPE"
    if not select.select([out], [], [], timeout)[0]:
        proc.kill()
        proc.wait()
        raise WorkerError(f"a benchmark worker was not ready within {timeout:.0f} s")
    line = out.readline()
    if "ready" not in line:
        proc.wait()
        raise WorkerError(f"a benchmark worker did not start (exit status {proc.returncode})")


def two_process(address: str, size: int, count: int, receiver: str) -> dict:
    """A C sender at full speed; a receiver of kind `receiver` ("plain",
    "threaded" or "c"). Returns the receiver's rate and whether it was killed."""
    group = unique("tp")
    rx = worker("receive", address=address, group=group, kind=receiver)
    wait_ready(rx)
    tx = worker("send", address=address, group=group, size=size, count=count)
    sent = worker_result(tx, 120)
    got = worker_result(rx, 120)
    got["sent"] = sent.get("sent", 0)
    if isinstance(got.get("error"), str):
        # The worker itself failed (a timeout, a crash): no rate, and the
        # table says "failed" rather than killed.
        got.update(killed=True, failed=True)
    got.setdefault("rate", None)
    got.setdefault("drain_rate", None)
    return got


def survival(address: str, size: int, count: int, receiver: str) -> dict:
    """One run of the no-kill row: `count` messages from a C sender at full
    speed to a receiver of kind `receiver`, as in two_process, with what the
    receiver lost (sent but never received: with no kill this must be 0)."""
    got = two_process(address, size, count, receiver)
    got["lost"] = max(0, got["sent"] - (got.get("messages") or 0))
    return got


def ping_pong(address: str, size: int, warmup: int, rounds: int, impl: str) -> list[float]:
    """Round-trip times in microseconds; the echo side is of the same kind."""
    ping_group, pong_group = unique("pi"), unique("po")
    pong = worker("pong", address=address, group=pong_group, reply=ping_group, impl=impl)
    wait_ready(pong)
    with spread.connect(address, membership=0) as m:
        m.join(ping_group)
        if impl == "c":
            rtts = _core.c_ping(m, pong_group, size, warmup, rounds)
        else:
            rtts = _py_ping(m, pong_group, b"p" * size, warmup, rounds)
        m.multicast(SVC, pong_group, b"", END)
    worker_result(pong, 30)
    return rtts


def _py_ping(m, peer, data, warmup, rounds):
    mc = m.multicast
    recv = m.receive
    svc = SVC
    clock = time.perf_counter
    regular = spread.RegularMsg
    out = []
    for i in range(warmup + rounds):
        start = clock()
        mc(svc, peer, data)
        while type(recv()) is not regular:
            pass
        if i >= warmup:
            out.append((clock() - start) * 1e6)
    return out


def slow_reader(address: str, count: int, sleepy: int, threaded: bool) -> dict:
    """A full-speed sender while the consumer sleeps 1 ms per message for its
    first `sleepy` messages: is it killed, and how many messages are lost?"""
    group = unique("sl")
    rx = worker("slow", address=address, group=group, sleepy=sleepy, threaded=threaded)
    wait_ready(rx)
    tx = worker("send", address=address, group=group, size=1024, count=count)
    sent = worker_result(tx, 120).get("sent", 0)
    got = worker_result(rx, 120)
    got["sent"] = sent
    got["lost"] = sent - got.get("messages", 0)
    got.setdefault("killed", True)
    return got


def _flow_send(address, group, payloads, window, many, options=None):
    """Sends through a spread.flow channel to a flow receiver worker already
    in the group; returns the sender's rate (accepted until consumed)."""
    from spread import flow

    with flow.connect(address) as s:
        ch = s.channel(group, window=window, **(options or {}))
        start = time.perf_counter()
        if many:
            for i in range(0, len(payloads), 1000):
                ch.send_many(payloads[i : i + 1000], timeout=60)
        else:
            send = ch.send
            for data in payloads:
                send(data, 0, 60)
        ch.wait_consumed(timeout=60)
        seconds = time.perf_counter() - start
        stats = ch.stats
    return {"rate": len(payloads) / seconds, "seconds": seconds, "frames": stats["frames"]}


def _flow_pair(address, payloads, window=256, many=False, sleep=0.0, options=None):
    group = unique("fl")
    rx = worker("flowrecv", address=address, group=group, count=len(payloads), sleep=sleep)
    wait_ready(rx)
    try:
        sent = _flow_send(address, group, payloads, window, many, options)
    except spread.SpreadError as e:
        sent = {"rate": None, "error": str(e)}
    got = worker_result(rx, 120)
    if isinstance(got.get("error"), str):
        got.update(killed=True, failed=True)
    return {"sender": sent, "receiver": got}


def flow_runs(address: str, size: int, count: int, slow_count: int, sleep: float) -> dict:
    """spread.flow's rows: (1) flow control on with a fast flow receiver
    beside Python's raw multicast() rate in the same run; (2) batching:
    small messages by send_many, logical messages per second at the
    receiver, beside the same messages unbatched (one daemon message each);
    (3) a consumer sleeping `sleep` s per message against an
    unthrottled sender: both rates, kills, peak backlog."""
    out: dict = {}
    out["raw"] = multicast_rate(address, size, 0.3, "py")
    data = b"f" * size
    out["flow"] = _flow_pair(address, [data] * count)
    small = [b"b" * 16] * (count * 4)
    out["batch"] = _flow_pair(address, small, many=True)
    out["batch_single"] = _flow_pair(address, small[:count], many=False)
    # Unbatched: every message its own daemon message (max_batch_items=1: a
    # message that finds credit short waits alone, where by default it would
    # join the next batch; the frame count shows it), paced by the window only.
    out["unbatched"] = _flow_pair(address, small[:count], options={"max_batch_items": 1})
    out["slow"] = _flow_pair(address, [data] * slow_count, window=32, sleep=sleep)
    return out


def cpu_count() -> int:
    return len(os.sched_getaffinity(0))
