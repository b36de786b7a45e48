"""Per-call cost of the binding's hot paths, grouped by payload size."""

import time

import pytest

import spread
from conftest import SIZES
from spread._backend import core as _core

BATCH = 100


def fill(m, target, size, count=BATCH):
    """Queues `count` messages of `size` bytes for the mailbox `target`."""
    _core.c_multicast(m, target, size, count)


def wait_queued(rx, count, timeout=10.0):
    deadline = time.monotonic() + timeout
    while rx.qsize() < count and time.monotonic() < deadline:
        time.sleep(0.0005)


@pytest.mark.parametrize("size", SIZES)
def test_multicast(benchmark, mbox, group, size):
    benchmark.group = f"{size} B"
    data = b"x" * size
    benchmark(mbox.multicast, spread.RELIABLE_MESS, group, data)


@pytest.mark.parametrize("size", SIZES)
def test_receive(benchmark, daemon, mbox, size):
    """receive() of BATCH queued messages per round (time is per round)."""
    benchmark.group = f"{size} B"
    feeder = spread.connect(daemon.unix_address, membership=0)
    recv = mbox.receive

    # As much as the socket buffers hold (about 400 KB), so that rounds rarely wait.
    want = min(BATCH * (48 + 32 + size), 300_000)

    def setup():
        fill(feeder, mbox.private_group, size)
        deadline = time.monotonic() + 10
        while mbox.poll() < want and time.monotonic() < deadline:
            time.sleep(0.0005)

    def take():
        for _ in range(BATCH):
            recv()

    benchmark.pedantic(take, setup=setup, rounds=50)
    feeder.disconnect()


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("how", ["get", "get_batch"])
def test_receiver(benchmark, daemon, mbox, size, how):
    """ThreadedReceiver.get() / get_batch() of BATCH queued messages per round:
    this is the cost of building the message objects."""
    benchmark.group = f"{size} B"
    feeder = spread.connect(daemon.unix_address, membership=0)
    rx = mbox.start_receiver()

    def setup():
        fill(feeder, mbox.private_group, size)
        wait_queued(rx, BATCH)

    if how == "get":
        get = rx.get_nowait

        def take():
            for _ in range(BATCH):
                get()
    else:

        def take():
            rx.get_batch(BATCH)

    benchmark.pedantic(take, setup=setup, rounds=50)
    rx.close()
    feeder.disconnect()
