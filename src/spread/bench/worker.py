"""One side of a two-process benchmark run:
``python -m spread.bench.worker ROLE JSON-ARGS``. Prints "ready" once set
up, then one JSON line with its result."""

from __future__ import annotations

import json
import resource
import sys
import threading
import time
from collections.abc import Callable

import spread
from spread._backend import core as _core
from spread.bench.workloads import END, SVC


def ready() -> None:
    print("ready", flush=True)


def send(address, group, size, count):
    with spread.connect(address, membership=0) as m:
        seconds = _core.c_multicast(m, group, size, count, END)
    return {"sent": count - 1, "seconds": seconds}


# The two receive loops below repeat their bodies on purpose: they are the
# measured Python side, and any helper call per message would be measured too.
# Like the C loop (native/bench/bench.c), they read the clock at the first message
# and at the end message only.
# A kill ends them with the count so far and the error's code (the try
# costs nothing per message).
def _plain(m):
    recv = m.receive
    regular = spread.RegularMsg
    n = 0
    first = 0.0
    clock = time.perf_counter
    try:
        while True:
            msg = recv()
            if type(msg) is not regular:
                continue
            if n == 0:
                first = clock()
            if msg.msg_type == END:
                return n, clock() - first, 0
            n += 1
    except spread.SpreadError as e:
        return n, clock() - first, e.args[0]


def _threaded(rx):
    get_batch = rx.get_batch
    n = 0
    first = 0.0
    clock = time.perf_counter
    regular = spread.RegularMsg
    try:
        while True:
            for msg in get_batch(1000):
                if type(msg) is not regular:
                    continue
                if n == 0:
                    first = clock()
                if msg.msg_type == END:
                    return n, clock() - first, 0
                n += 1
    except spread.SpreadError as e:
        return n, clock() - first, e.args[0]


def _spin(stop):
    x = 0
    while not stop.is_set():
        x += 1


def receive(address, group, kind):
    m = spread.connect(address, membership=0)
    m.join(group)
    threaded = kind.startswith("threaded")
    stop = threading.Event()
    if threaded:
        rx = m.start_receiver()
    if kind.endswith("_busy"):  # another Python thread spinning in this process
        threading.Thread(target=_spin, args=(stop,), daemon=True).start()
    ready()
    before = resource.getrusage(resource.RUSAGE_SELF)
    if kind.startswith("c"):
        n, seconds, error = _core.c_receive(m, END)
    elif threaded:
        n, seconds, error = _threaded(rx)
    else:
        n, seconds, error = _plain(m)
    killed = error != 0
    stop.set()
    after = resource.getrusage(resource.RUSAGE_SELF)
    st = rx.stats if threaded else None
    m.disconnect()
    # The receiving process's CPU time and context switches, spinner included.
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    switches = (after.ru_nvcsw - before.ru_nvcsw) + (after.ru_nivcsw - before.ru_nivcsw)
    return {
        "messages": n,
        "seconds": seconds,
        "rate": n / seconds if seconds else 0.0,
        "drain_rate": st["drain_rate"] if st else None,
        "killed": killed,
        "error": error,
        "cpu_us_per_message": cpu * 1e6 / n if n else None,
        "switches_per_message": switches / n if n else None,
        "peak": st["peak_backlog_messages"] if st else 0,
        "drained": st["received"] if st else None,
        "faults_per_message": (after.ru_minflt - before.ru_minflt) / n if n else None,
    }


def pong(address, group, reply, impl):
    with spread.connect(address, membership=0) as m:
        m.join(group)
        ready()
        if impl == "c":
            return {"echoed": _core.c_pong(m, reply, END)}
        mc = m.multicast
        recv = m.receive
        regular = spread.RegularMsg
        n = 0
        while True:
            msg = recv()
            if type(msg) is not regular:
                continue
            if msg.msg_type == END:
                return {"echoed": n}
            mc(SVC, reply, msg.message)
            n += 1


def slow(address, group, sleepy, threaded):
    """Sleeps 1 ms per message for the first `sleepy` messages, then reads
    the rest at full speed; counts what arrives before the end or an error."""
    m = spread.connect(address, membership=0)
    m.join(group)
    if threaded:
        m.start_receiver()
    ready()
    n = 0
    killed = False
    try:
        while True:
            msg = m.receive()
            if isinstance(msg, spread.RegularMsg) and msg.msg_type == END:
                break
            n += 1
            if n <= sleepy:
                time.sleep(0.001)
    except spread.SpreadError:
        killed = True
    m.disconnect()
    return {"messages": n, "killed": killed}


def flowrecv(address, group, count, sleep):
    """A spread.flow receiver: takes `count` logical messages (sleeping
    `sleep` s after each, when set) and says how fast, whether it was killed,
    and the peak of what it held unconsumed."""
    from spread import flow

    s = flow.connect(address, groups=[group])
    ready()
    n = 0
    first = 0.0
    clock = time.perf_counter
    peak_frames = peak_ready = 0
    killed = False
    msg_type = flow.FlowMsg
    try:
        while n < count:
            for msg in s.receive_batch(1000 if not sleep else 1):
                if type(msg) is not msg_type:
                    continue
                if n == 0:
                    first = clock()
                n += 1
                if sleep:
                    b = s.backlog()
                    peak_frames = max(peak_frames, b["frames"])
                    peak_ready = max(peak_ready, b["ready"] + b["raw"])
                    time.sleep(sleep)
        seconds = clock() - first
    except spread.SpreadError:
        killed, seconds = True, 0.0
    s.close()
    return {
        "messages": n,
        "seconds": seconds,
        "rate": n / seconds if seconds else 0.0,
        "killed": killed,
        "peak_frames": peak_frames,
        "peak_messages": peak_ready,
    }


ROLES: dict[str, Callable[..., dict]] = {
    "flowrecv": flowrecv,
    "send": send,
    "receive": receive,
    "pong": pong,
    "slow": slow,
}


def main() -> None:
    role, args = sys.argv[1], json.loads(sys.argv[2])
    result = ROLES[role](**args)
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    threading.current_thread().name = "bench-worker"
    main()
