"""The C baseline loops of native/bench/bench.c, for spread.bench."""

from __future__ import annotations

from .._args import group_bytes
from .library import ffi, lib, raise_error

__all__ = ["c_multicast", "c_ping", "c_pong", "c_receive", "c_self"]


def _int16(value: int) -> int:
    return value - 65536 if value > 32767 else value


def c_multicast(m, group, size, count, last_type=0):
    """Seconds to multicast count messages of size bytes (C loop)."""
    secs = ffi.new("double *")
    r = lib.spb_multicast(_bench_mbox(m), group_bytes(group), size, count, _int16(last_type), secs)
    if r < 0:
        raise_error(r, "c_multicast")
    return secs[0]


def c_self(m, group, size, count, window):
    """Seconds to send count messages to a joined group and read them back."""
    secs = ffi.new("double *")
    r = lib.spb_self(_bench_mbox(m), group_bytes(group), size, count, window, secs)
    if r < 0:
        raise_error(r, "c_self")
    return secs[0]


def c_receive(m, end_type):
    """(messages, seconds first to last, error code or 0) until end_type."""
    n, secs, err = ffi.new("long *"), ffi.new("double *"), ffi.new("int *")
    lib.spb_receive(_bench_mbox(m), _int16(end_type), n, secs, err)
    return n[0], secs[0], err[0]


def c_ping(m, peer_group, size, warmup, rounds):
    """Round-trip times in microseconds (C loop)."""
    rtt = ffi.new("double[]", max(rounds, 1))
    r = lib.spb_ping(_bench_mbox(m), group_bytes(peer_group), size, warmup, rounds, rtt)
    if r < 0:
        raise_error(r, "c_ping")
    return list(rtt[0:rounds])


def c_pong(m, reply_group, end_type):
    """Echoes data messages to reply_group until end_type; returns the count."""
    n = ffi.new("long *")
    r = lib.spb_pong(_bench_mbox(m), group_bytes(reply_group), _int16(end_type), n)
    if r < 0:
        raise_error(r, "c_pong")
    return n[0]


def _bench_mbox(m) -> int:
    m._enter("bench")
    m._leave()
    return m._mbox
