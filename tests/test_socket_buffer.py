"""connect(socket_buffer=): the choice reaches the socket, and bad values
are refused before anything is connected (README.md, "Socket buffers")."""

from __future__ import annotations

import os
import socket

import pytest

import spread

EXTERNAL = bool(os.environ.get("SPREAD_LIBRARY"))
pytestmark = pytest.mark.timeout(30)
native_only = pytest.mark.skipif(
    EXTERNAL,
    reason="an external library sets its own buffers "
    "(test_an_external_library_refuses_a_socket_buffer)",
)


def _buffers(mbox) -> tuple[int, int]:
    """(SO_RCVBUF, SO_SNDBUF) of the mailbox's socket, as the kernel reports them."""
    with socket.socket(fileno=os.dup(mbox.fileno())) as s:
        return (
            s.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF),
            s.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF),
        )


def _kernel_default_rcvbuf() -> int:
    """The receive buffer a TCP socket starts with when nobody sets one
    (net.ipv4.tcp_rmem's middle value); autotuning grows it from there."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        return s.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)


@pytest.fixture
def tcp_address(spread_daemon):
    if "@" not in spread_daemon.address:
        pytest.skip("needs a daemon reached over TCP")
    return spread_daemon.address


@native_only
@pytest.mark.parametrize("choice", [None, 0])
def test_autotuned_sockets_keep_the_kernel_default(spread_mailbox_factory, tcp_address, choice):
    m = spread_mailbox_factory(membership=0, socket_buffer=choice)
    rcvbuf, _ = _buffers(m)
    # Nothing was set: the kernel's starting size, which it may grow. Right
    # after the handshake (a few dozen bytes) it has not had cause to.
    assert rcvbuf == _kernel_default_rcvbuf()


@native_only
@pytest.mark.parametrize("size", [4096, 100_000])
def test_a_fixed_size_is_set_on_both_buffers(spread_mailbox_factory, tcp_address, size):
    m = spread_mailbox_factory(membership=0, socket_buffer=size)
    # Linux doubles what is asked (its bookkeeping overhead); both sizes are
    # under the usual net.core.rmem_max / wmem_max (212992), so not capped.
    assert _buffers(m) == (2 * size, 2 * size)


@native_only
def test_the_fixed_size_is_still_a_working_connection(spread_mailbox_factory, tcp_address):
    m = spread_mailbox_factory(membership=0, socket_buffer=8192)
    data = b"x" * 100_000  # more than the buffers hold at once
    m.join("sockbuf")
    m.multicast(spread.RELIABLE_MESS, "sockbuf", data)
    msg = m.receive()
    assert msg.message == data


@pytest.fixture
def unix_address(spread_daemon):
    address = getattr(spread_daemon, "unix_address", None)
    if not address or "@" in address or not os.path.exists(f"/tmp/{address}"):
        pytest.skip("needs the daemon's unix socket")
    return address


@native_only
def test_the_unix_socket_takes_a_fixed_size_too(unix_address):
    with spread.connect(unix_address, membership=0, socket_buffer=50_000) as m:
        assert _buffers(m) == (100_000, 100_000)


@native_only
def test_the_unix_socket_keeps_spreads_sizes_by_default(unix_address):
    # No autotuning there, and no retransmission to stall on: Spread's
    # 200 KiB (as far as net.core.*mem_max allow), as before the option.
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        kernel = s.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF)
    with spread.connect(unix_address, membership=0) as m:
        rcv, snd = _buffers(m)
    with spread.connect(unix_address, membership=0, socket_buffer=0) as m:
        assert _buffers(m)[1] == kernel
    assert rcv == snd and snd != kernel and snd <= 2 * 200 * 1024


@pytest.mark.parametrize(
    "value, error, text",
    [
        (
            -1,
            ValueError,
            r"socket_buffer=-1: socket_buffer is None .* 0 .* from 4096 to 1073741824",
        ),
        (1, ValueError, r"socket_buffer=1: "),
        (4095, ValueError, r"socket_buffer=4095: "),
        ((1 << 30) + 1, ValueError, r"socket_buffer=1073741825: "),
        (2**64, ValueError, r"socket_buffer=18446744073709551616: "),
        (True, TypeError, r"socket_buffer must be an int or None, not bool"),
        (65536.0, TypeError, r"socket_buffer must be an int or None, not float"),
        ("65536", TypeError, r"socket_buffer must be an int or None, not str"),
    ],
)
def test_bad_values_are_refused_before_connecting(value, error, text):
    # No daemon is needed: the check comes first (port 1 would refuse).
    with pytest.raises(error, match=text):
        spread.connect("1@127.0.0.1", socket_buffer=value, timeout=5)


@native_only
def test_an_index_is_an_int(spread_mailbox_factory, tcp_address):
    class Size:
        def __index__(self):
            return 100_000

    m = spread_mailbox_factory(membership=0, socket_buffer=Size())
    assert _buffers(m) == (200_000, 200_000)


@pytest.mark.skipif(not EXTERNAL, reason="only an external library refuses the option")
def test_an_external_library_refuses_a_socket_buffer(spread_daemon):
    with pytest.raises(ValueError, match="SPREAD_LIBRARY"):
        spread.connect(spread_daemon.address, socket_buffer=65536)
    spread.connect(spread_daemon.address, socket_buffer=None).disconnect()
