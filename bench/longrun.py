"""Long-run resource benchmarks: memory and descriptors over many messages,
connections and group names, against the embedded daemon.

    python bench/longrun.py                 # every benchmark, full size (minutes each)
    python bench/longrun.py --quick         # a smoke run of every one (seconds)
    python bench/longrun.py --only cycles,churn --json out.json

Not tests: each prints figures to compare across versions of the package
(run the script with another version's interpreter; it tolerates the older
API and reports what that version can do).

clientrss  A reader process's RSS while it receives 1M messages of 1 KB, through a
           ThreadedReceiver (get_batch) and through plain receive(): at the start, after
           the first 100k, at the end, and the growth per 100k after the first 100k;
           its peak (VmHWM), and its RSS after malloc_trim(0) at the end. The sender is
           another process (the C loop c_multicast), held to a window of messages the
           reader has acknowledged, so neither side's queue grows.
cycles     25k connect + start_receiver() + disconnect() cycles in one process (over the
           unix socket): RSS, open descriptors, threads and live Mailbox objects every 5k,
           at the end, after gc.collect() and after malloc_trim(0) (what is still
           resident then is held, not merely kept in malloc's free lists); then the same
           cycles without disconnect() (the objects are dropped, the collector enabled).
churn      The daemon's RSS while clients join and leave a new group name each time
           (1M join/leave pairs, one churned group alive at a time, a new client every
           10k pairs, one steady client in a steady group), every 100k pairs.
noread     The daemon's RSS while 4 clients joined to a group never read and a sender
           multicasts 100 KB messages until the daemon has killed each of them (by
           max_session_messages or max_session_bytes): peak RSS, when each reader was
           killed, and what it saw on its next receive().
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import re
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable

END = 99  # msg_type of the last message of a stream
BARRIER = 98  # msg_type of a message a client sends itself to sync with the daemon
ACK = 97  # msg_type of a reader's acknowledgement
KIB = 1024
MIB = 1024 * 1024

FULL = {
    "clientrss": {"count": 1_000_000, "step": 100_000, "size": 1024, "chunk": 200, "window": 600},
    "cycles": {"cycles": 25_000, "every": 5_000},
    "churn": {"pairs": 1_000_000, "every": 100_000, "per_client": 10_000, "barrier": 100},
    "noread": {"readers": 4, "size": 100 * KIB, "max_session_bytes": 64 * MIB, "cap": 3_000},
}
QUICK = {
    "clientrss": {"count": 20_000, "step": 5_000, "size": 1024, "chunk": 200, "window": 600},
    "cycles": {"cycles": 600, "every": 200},
    "churn": {"pairs": 20_000, "every": 5_000, "per_client": 5_000, "barrier": 100},
    "noread": {"readers": 4, "size": 100 * KIB, "max_session_bytes": 8 * MIB, "cap": 3_000},
}
BENCHES = tuple(FULL)


def proc_status(pid="self") -> dict:
    """VmRSS and VmHWM in KiB and the thread count, from /proc/PID/status."""
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM", "Threads"):
                out[key] = int(value.split()[0])
    return out


def rss_kib(pid="self") -> int:
    return proc_status(pid)["VmRSS"]


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def malloc_trim() -> bool:
    """Gives the free pages of glibc's heaps back to the system (what
    remains resident after it is held, not merely cached); False elsewhere."""
    try:
        import ctypes

        ctypes.CDLL(None).malloc_trim(0)
    except (OSError, AttributeError):
        return False
    return True


def confirm_joins(m, spread) -> None:
    """Returns once the daemon has handled every request m sent before (a
    message to m's own private group comes back after them); other messages
    are dropped."""
    m.multicast(spread.RELIABLE_MESS, m.private_group, b"", BARRIER)
    while True:
        msg = m.receive()
        if isinstance(msg, spread.RegularMsg) and msg.msg_type == BARRIER:
            return


# -- the processes the driver starts: `python longrun.py --role ROLE JSON` --------


def role_reader(address, group, ack_group, kind, step, ack_every):
    """Reads until the end message, acknowledging every `ack_every` messages
    and taking its RSS every `step`."""
    import spread

    m = spread.connect(address, membership=0)
    m.join(group)
    confirm_joins(m, spread)
    rx = m.start_receiver() if kind == "threaded" else None
    samples = [[0, rss_kib()]]
    print("ready", flush=True)
    mc = m.multicast
    svc = spread.RELIABLE_MESS
    regular = spread.RegularMsg
    n = 0
    start = time.perf_counter()
    # One loop for both readers: a batch from the receiver, or one message.
    if rx is not None:

        def batch():
            return rx.get_batch(1000)
    else:

        def batch():
            return (m.receive(),)

    done = False
    while not done:
        for msg in batch():
            if isinstance(msg, regular) and msg.msg_type == END:
                done = True
                break
            n += 1
            if n % ack_every == 0:
                mc(svc, ack_group, str(n), ACK)
            if n % step == 0:
                samples.append([n, rss_kib()])
    seconds = time.perf_counter() - start
    mc(svc, ack_group, str(n), ACK)  # the last: the sender may go
    if samples[-1][0] != n:
        samples.append([n, rss_kib()])
    peak = proc_status()["VmHWM"]
    trimmed = malloc_trim()
    trimmed_kib = rss_kib() if trimmed else None
    m.disconnect()
    return {
        "messages": n,
        "seconds": seconds,
        "samples": samples,
        "hwm_kib": peak,
        "rss_trimmed_kib": trimmed_kib,
    }


def role_sender(address, group, ack_group, size, count, chunk, window):
    """`count` messages of `size` bytes in chunks of the C loop, never more
    than `window` ahead of the reader's acknowledgements, then the end."""
    import spread
    from spread._backend import core

    m = spread.connect(address, membership=0)
    m.join(ack_group)
    confirm_joins(m, spread)
    sent = acked = 0
    while sent < count:
        n = min(chunk, count - sent)
        core.c_multicast(m, group, size, n)
        sent += n
        while sent - acked > window:
            msg = m.receive()
            if isinstance(msg, spread.RegularMsg) and msg.msg_type == ACK:
                acked = max(acked, int(msg.message))
    core.c_multicast(m, group, size, 1, END)
    # Closing a socket with unread acknowledgements resets the connection,
    # and what it had not yet sent is lost: wait for the last one.
    while acked < sent:
        msg = m.receive()
        if isinstance(msg, spread.RegularMsg) and msg.msg_type == ACK:
            acked = max(acked, int(msg.message))
    m.disconnect()
    return {"sent": sent}


def _live(spread) -> tuple[int, int]:
    """Mailbox and ThreadedReceiver objects the collector knows of."""
    mailboxes = receivers = 0
    for o in gc.get_objects():
        t = type(o)
        if t is spread.Mailbox:
            mailboxes += 1
        elif t is spread.ThreadedReceiver:
            receivers += 1
    return mailboxes, receivers


def role_cycles(address, cycles, every, disconnect):
    import spread

    gc.enable()

    def sample(at):
        st = proc_status()
        mailboxes, receivers = _live(spread)
        return {
            "at": at,
            "rss_kib": st["VmRSS"],
            "fds": open_fds(),
            "threads": st["Threads"],
            "mailboxes": mailboxes,
            "receivers": receivers,
        }

    def cycle():
        m = spread.connect(address, membership=0)
        m.start_receiver()
        if disconnect:
            m.disconnect()
        # Without disconnect() the mailbox and its receiver are dropped here.

    samples = [sample("start")]
    error = None
    done = 0
    start = time.perf_counter()
    for i in range(1, cycles + 1):
        try:
            cycle()
        except Exception as e:  # a descriptor or connection limit: where and which
            error = f"{type(e).__name__}: {e}"
            break
        done = i
        if i % every == 0:
            samples.append(sample(i))
    seconds = time.perf_counter() - start
    if samples[-1]["at"] != done:
        samples.append(sample(done))
    collected = gc.collect()
    time.sleep(0.5)  # threads told to stop at finalisation get to exit
    after = sample("after gc.collect()")
    after["collected"] = collected
    samples.append(after)
    if malloc_trim():
        samples.append(sample("after malloc_trim(0)"))
    return {
        "cycles": done,
        "seconds": seconds,
        "error": error,
        "samples": samples,
        "collected": collected,
        "garbage": len(gc.garbage),
    }


def role_churn(address, pairs, every, per_client, barrier, daemon_pid):
    import spread

    prefix = uuid.uuid4().hex[:6]
    samples = [[0, rss_kib(daemon_pid)]]
    notices = 0
    start = time.perf_counter()

    def sync(m):
        nonlocal notices
        m.multicast(spread.RELIABLE_MESS, m.private_group, b"", BARRIER)
        while True:
            msg = m.receive()
            if isinstance(msg, spread.RegularMsg):
                if msg.msg_type == BARRIER:
                    return
            else:
                notices += 1

    m = spread.connect(address, membership=1)
    for i in range(pairs):
        if i and i % per_client == 0:
            sync(m)
            m.disconnect()
            m = spread.connect(address, membership=1)
        group = f"{prefix}{i:x}"
        m.join(group)
        m.leave(group)
        if (i + 1) % barrier == 0:
            sync(m)
        if (i + 1) % every == 0:
            samples.append([i + 1, rss_kib(daemon_pid)])
    sync(m)
    m.disconnect()
    seconds = time.perf_counter() - start
    if samples[-1][0] != pairs:
        samples.append([pairs, rss_kib(daemon_pid)])
    return {
        "pairs": pairs,
        "seconds": seconds,
        "samples": samples,
        "notices": notices,
        "daemon_hwm_kib": proc_status(daemon_pid)["VmHWM"],
    }


def role_noread(address, group, name):
    """Joins, then reads nothing until told to on stdin; then reads until the
    end message or an error."""
    import spread

    m = spread.connect(address, name=name, membership=0)
    m.join(group)
    confirm_joins(m, spread)
    print("ready", flush=True)
    sys.stdin.readline()
    n = 0
    error = None
    try:
        while True:
            msg = m.receive()
            if isinstance(msg, spread.RegularMsg) and msg.msg_type == END:
                break
            n += 1
    except spread.SpreadError as e:
        error = f"spread.{type(e).__name__}"
    try:
        m.disconnect()
    except spread.SpreadError:
        pass
    return {"read": n, "error": error}


ROLES: dict[str, Callable[..., dict]] = {
    "reader": role_reader,
    "sender": role_sender,
    "cycles": role_cycles,
    "churn": role_churn,
    "noread": role_noread,
}


# -- the driver -------------------------------------------------------------------


class BenchError(Exception):
    pass


def worker(role, stdin=False, **args):
    return subprocess.Popen(
        [sys.executable, os.path.abspath(__file__), "--role", role, json.dumps(args)],
        stdout=subprocess.PIPE,
        stdin=subprocess.PIPE if stdin else None,
        text=True,
    )


def wait_ready(proc, what, timeout=30.0):
    import select

    if (
        not select.select([proc.stdout], [], [], timeout)[0]
        or "ready" not in proc.stdout.readline()
    ):
        proc.kill()
        proc.wait()
        raise BenchError(f"{what} did not get ready")


def result(proc, what, timeout):
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        raise BenchError(f"{what} did not finish within {timeout:.0f} s") from None
    lines = [line for line in out.splitlines() if line.startswith("{")]
    if not lines:
        raise BenchError(f"{what} failed (exit status {proc.returncode})")
    return json.loads(lines[-1])


def daemon_options(spread_testing, **wanted):
    """The options this version's EmbeddedDaemon knows (older ones have no
    OPTIONS and no max_session_bytes)."""
    known = getattr(spread_testing, "OPTIONS", ("max_session_messages", "log_level"))
    return {k: v for k, v in wanted.items() if k in known}


def start_daemon(**wanted):
    import spread.testing as st

    d = st.EmbeddedDaemon(port=st.free_port(), **daemon_options(st, **wanted))
    return d.start()


def mib(kib):
    return f"{kib / KIB:.1f}"


def bench_clientrss(cfg, timeout):
    rows = []
    for kind in ("threaded", "plain"):
        d = start_daemon(log_level="info")
        try:
            group, ack_group = f"lr{uuid.uuid4().hex[:10]}", f"la{uuid.uuid4().hex[:10]}"
            rx = worker(
                "reader",
                address=d.address,
                group=group,
                ack_group=ack_group,
                kind=kind,
                step=cfg["step"],
                ack_every=cfg["chunk"],
            )
            wait_ready(rx, f"the {kind} reader")
            tx = worker(
                "sender",
                address=d.address,
                group=group,
                ack_group=ack_group,
                size=cfg["size"],
                count=cfg["count"],
                chunk=cfg["chunk"],
                window=cfg["window"],
            )
            got = result(rx, f"the {kind} reader", timeout)
            sent = result(tx, "the sender", 30)
        finally:
            d.stop()
        samples = got["samples"]
        first = next((s for s in samples if s[0] >= cfg["step"]), samples[-1])
        last = samples[-1]
        steps = (last[0] - first[0]) / cfg["step"]
        growth = (last[1] - first[1]) / steps if steps else 0.0
        rows.append(
            {
                "reader": "ThreadedReceiver.get_batch" if kind == "threaded" else "receive()",
                "kind": kind,
                "messages": got["messages"],
                "sent": sent["sent"],
                "seconds": got["seconds"],
                "rss_start_kib": samples[0][1],
                "rss_first_step_kib": first[1],
                "rss_end_kib": last[1],
                "growth_per_step_kib": growth,
                "hwm_kib": got["hwm_kib"],
                "rss_trimmed_kib": got.get("rss_trimmed_kib"),
                "samples": samples,
            }
        )
    step = f"{cfg['step'] // 1000}k"
    table(
        f"Client RSS, {cfg['count']:,} messages of {cfg['size']} B (MiB; growth in KiB "
        f"per {step} after the first {step})",
        (
            "reader",
            "messages",
            "RSS start",
            f"RSS @{step}",
            "RSS end",
            f"growth/{step} KiB",
            "peak (VmHWM)",
            "end, malloc_trim",
            "s",
        ),
        [
            (
                r["reader"],
                r["messages"],
                mib(r["rss_start_kib"]),
                mib(r["rss_first_step_kib"]),
                mib(r["rss_end_kib"]),
                f"{r['growth_per_step_kib']:+.0f}",
                mib(r["hwm_kib"]),
                mib(r["rss_trimmed_kib"]) if r["rss_trimmed_kib"] is not None else "-",
                f"{r['seconds']:.1f}",
            )
            for r in rows
        ],
    )
    return rows


def bench_cycles(cfg, timeout):
    out = []
    d = start_daemon(log_level="error")
    try:
        for disconnect in (True, False):
            label = "disconnect()" if disconnect else "dropped, no disconnect()"
            got = result(
                worker(
                    "cycles",
                    address=d.unix_address,
                    cycles=cfg["cycles"],
                    every=cfg["every"],
                    disconnect=disconnect,
                ),
                f"the cycles ({label})",
                timeout,
            )
            got["variant"] = label
            out.append(got)
    finally:
        d.stop()
    rows = []
    for got in out:
        for s in got["samples"]:
            if s["at"] == "after malloc_trim(0)":
                got["rss_after_trim_kib"] = s["rss_kib"]
            at = s["at"]
            rows.append(
                (
                    got["variant"],
                    f"{at:,}" if isinstance(at, int) else at,
                    mib(s["rss_kib"]),
                    s["fds"],
                    s["threads"],
                    s["mailboxes"],
                    s["receivers"],
                )
            )
    table(
        f"{cfg['cycles']:,} connect + start_receiver() cycles in one process, unix socket "
        f"(RSS in MiB; Mailbox/ThreadedReceiver objects the collector tracks)",
        ("variant", "cycle", "RSS", "fds", "threads", "mailboxes", "receivers"),
        rows,
    )
    for got in out:
        print(
            f"{got['variant']}: {got['cycles']:,} cycles in {got['seconds']:.1f} s"
            + (f", stopped by {got['error']}" if got["error"] else "")
            + f"; gc.collect() found {got['collected']}, "
            f"gc.garbage {got['garbage']}"
        )
    return out


def bench_churn(cfg, timeout):
    d = start_daemon(log_level="error")
    try:
        # One steady client in a steady group, there for the whole run.
        import spread

        steady = spread.connect(d.address, membership=0)
        steady.join(f"steady{uuid.uuid4().hex[:8]}")
        confirm_joins(steady, spread)
        got = result(
            worker(
                "churn",
                address=d.address,
                pairs=cfg["pairs"],
                every=cfg["every"],
                per_client=cfg["per_client"],
                barrier=cfg["barrier"],
                daemon_pid=d.process.pid,
            ),
            "the churn",
            timeout,
        )
        steady.disconnect()
    finally:
        d.stop()
    samples = got["samples"]
    first = next((s for s in samples if s[0] >= cfg["every"]), samples[-1])
    steps = (samples[-1][0] - first[0]) / cfg["every"]
    got["growth_per_step_kib"] = (samples[-1][1] - first[1]) / steps if steps else 0.0
    table(
        f"Daemon RSS under name churn: {cfg['pairs']:,} join/leave pairs of new names, "
        f"a new client every {cfg['per_client']:,} (MiB)",
        ("pairs", "daemon RSS"),
        [(f"{n:,}", mib(kib)) for n, kib in samples],
    )
    print(
        f"{got['seconds']:.1f} s, {got['notices']:,} membership notices read; growth "
        f"{got['growth_per_step_kib']:+.0f} KiB per {cfg['every']:,} pairs after the first; "
        f"daemon VmHWM {mib(got['daemon_hwm_kib'])} MiB"
    )
    return got


KILL = re.compile(
    r"killing connection \d+ \(#(nr\d+)#[^)]*\) for not reading"
    r"(?: \((\d+) messages, (\d+) bytes queued\))?"
)


def bench_noread(cfg, timeout):
    import spread
    import spread.testing as st

    wanted = {"log_level": "info", "max_session_bytes": cfg["max_session_bytes"]}
    opts = daemon_options(st, **wanted)
    limit_msgs = 1000
    d = start_daemon(**wanted)
    pid = d.process.pid
    group = f"nr{uuid.uuid4().hex[:10]}"
    names = [f"nr{k}" for k in range(cfg["readers"])]
    readers = {}
    kills: dict[str, dict] = {}
    try:
        for name in names:
            readers[name] = worker("noread", stdin=True, address=d.address, group=group, name=name)
            wait_ready(readers[name], f"reader {name}")
        base = proc_status(pid)["VmRSS"]
        peak = base
        data = b"x" * cfg["size"]
        m = spread.connect(d.address, membership=0)
        seen = 0
        sent = 0
        deadline = time.monotonic() + timeout

        def scan():
            nonlocal seen
            lines = d.log[seen:]
            seen += len(lines)
            for line in lines:
                k = KILL.search(line)
                if k and k.group(1) not in kills:
                    kills[k.group(1)] = {
                        "after_sent": sent,
                        "queued_messages": int(k.group(2)) if k.group(2) else None,
                        "queued_bytes": int(k.group(3)) if k.group(3) else None,
                    }

        while len(kills) < len(names) and sent < cfg["cap"] and time.monotonic() < deadline:
            m.multicast(spread.RELIABLE_MESS, group, data)
            sent += 1
            peak = max(peak, proc_status(pid)["VmRSS"])
            scan()
        wait_until = time.monotonic() + 5
        while len(kills) < len(names) and time.monotonic() < wait_until:
            time.sleep(0.05)
            peak = max(peak, proc_status(pid)["VmRSS"])
            scan()
        m.multicast(spread.RELIABLE_MESS, group, b"", END)
        time.sleep(1.0)
        scan()
        status = proc_status(pid)
        after = status["VmRSS"]
        hwm = status["VmHWM"]
        m.disconnect()
        seen_by = {}
        for proc in readers.values():
            proc.stdin.write("go\n")
            proc.stdin.flush()
        for name, proc in readers.items():
            seen_by[name] = result(proc, f"reader {name}", timeout)
    finally:
        for proc in readers.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        d.stop()
    rows = []
    for name in names:
        k = kills.get(name)
        reason = "-"
        if k:
            if k["queued_messages"] is None:  # an older daemon: its only limit
                reason = "messages" if "max_session_bytes" not in opts else "?"
            elif k["queued_messages"] >= limit_msgs:
                reason = "messages"
            else:
                reason = "bytes"
        rows.append(
            {
                "reader": name,
                "killed": bool(k),
                "reason": reason,
                "after_sent": k["after_sent"] if k else None,
                "queued_messages": k["queued_messages"] if k else None,
                "queued_bytes": k["queued_bytes"] if k else None,
                "read_before_error": seen_by[name]["read"],
                "error": seen_by[name]["error"],
            }
        )
    limits = (
        f"max_session_bytes {opts['max_session_bytes'] // MIB} MiB, "
        if "max_session_bytes" in opts
        else "no byte limit in this version, "
    )
    table(
        f"{len(names)} readers that never read, {cfg['size'] // KIB} KB messages "
        f"({limits}max_session_messages {limit_msgs})",
        (
            "reader",
            "killed",
            "by",
            "after sent",
            "queued msgs",
            "queued MiB",
            "read, then",
            "error on receive",
        ),
        [
            (
                r["reader"],
                "yes" if r["killed"] else "no",
                r["reason"],
                r["after_sent"] or "-",
                r["queued_messages"] if r["queued_messages"] is not None else "-",
                f"{r['queued_bytes'] / MIB:.1f}" if r["queued_bytes"] is not None else "-",
                r["read_before_error"],
                r["error"] or "none",
            )
            for r in rows
        ],
    )
    print(
        f"daemon RSS: {mib(base)} MiB before, peak {mib(peak)} MiB sampled after each "
        f"message (VmHWM {mib(hwm)}), {mib(after)} MiB 1 s after the kills; {sent} "
        f"messages sent ({sent * cfg['size'] / MIB:.0f} MiB)"
    )
    return {
        "options": opts,
        "sent": sent,
        "rss_before_kib": base,
        "rss_peak_kib": peak,
        "hwm_kib": hwm,
        "rss_after_kib": after,
        "readers": rows,
    }


RUNNERS: dict[str, Callable[[dict, float], object]] = {
    "clientrss": bench_clientrss,
    "cycles": bench_cycles,
    "churn": bench_churn,
    "noread": bench_noread,
}


def table(title, head, rows):
    print(f"\n{title}")
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for row in rows:
        print("| " + " | ".join(str(c) for c in row) + " |")
    sys.stdout.flush()


def main(argv=None):
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split("\n\n", 3)[3],
    )
    p.add_argument("--role", help=argparse.SUPPRESS)
    p.add_argument("role_args", nargs="?", help=argparse.SUPPRESS)
    p.add_argument("--quick", action="store_true", help="a short smoke run of each")
    p.add_argument(
        "--only",
        default=",".join(BENCHES),
        help=f"comma-separated, of: {', '.join(BENCHES)} (default: all)",
    )
    p.add_argument(
        "--timeout",
        type=float,
        default=None,
        help="seconds a benchmark's process may take (default 1800, quick 60)",
    )
    p.add_argument("--label", default="", help="a name for this run in the output")
    p.add_argument("--json", help="also write every figure to this file")
    args = p.parse_args(argv)
    if args.role:
        print(json.dumps(ROLES[args.role](**json.loads(args.role_args))), flush=True)
        return
    only = [b for b in args.only.split(",") if b]
    for b in only:
        if b not in BENCHES:
            p.error(f"unknown benchmark {b!r}: one of {', '.join(BENCHES)}")
    import spread

    cfgs = QUICK if args.quick else FULL
    timeout = args.timeout or (60.0 if args.quick else 1800.0)
    print(
        f"spread {spread.__version__} ({spread.backend}) from "
        f"{os.path.dirname(spread.__file__)}{', ' + args.label if args.label else ''}"
        f"{', quick' if args.quick else ''}"
    )
    results = {}
    failed = False
    for b in only:
        start = time.monotonic()
        try:
            results[b] = RUNNERS[b](cfgs[b], timeout)
        except BenchError as e:
            print(f"\n{b}: {e}")
            results[b] = {"error": str(e)}
            failed = True
        print(f"({b}: {time.monotonic() - start:.0f} s)", flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(
                {
                    "label": args.label,
                    "version": spread.__version__,
                    "backend": spread.backend,
                    "package": os.path.dirname(spread.__file__),
                    "quick": args.quick,
                    "config": {b: cfgs[b] for b in only},
                    "results": results,
                },
                f,
                indent=1,
            )
    if failed:
        sys.exit(1)


if __name__ == "__main__":
    threading.current_thread().name = "longrun"
    main()
