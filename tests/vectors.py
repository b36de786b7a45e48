"""Loading the golden vectors (tests/vectors/, bytes recorded from a real
Spread daemon and their decoded results) and replaying
their daemon side: a scripted fake daemon that plays the recorded s2c bytes
and checks every c2s byte our client sends against the recording."""

from __future__ import annotations

import json
import os
import socket
import threading
from dataclasses import dataclass, field
from pathlib import Path

from spread.testing import free_port

HERE = Path(__file__).resolve().parent
# The vectors live in the repository; SPREAD_VECTORS points at another copy
# (a fresh capture, say) to replay that instead.
VECTORS = Path(os.environ.get("SPREAD_VECTORS") or HERE / "vectors")
HANDSHAKE_UNITS = {"connect", "incomplete-connect", "auth-list", "auth-choice", "accept", "reject"}
NULL_CHOICE = b"NULL".ljust(90, b"\0")
STEP_TIMEOUT = 10.0


def load(name: str) -> dict:
    """One vector; a missing file fails the test that needs it, not collection."""
    return json.loads((VECTORS / f"{name}.json").read_text())


def all_names() -> list[str]:
    """Every vector's name (none when the folder is missing: test_vectors_present
    says so, and collection of everything else goes on)."""
    return sorted(p.stem for p in VECTORS.glob("*.json"))


@dataclass
class Record:
    index: int
    dir: str
    conn: int
    data: bytes
    t: float
    unit: str
    decoded: dict = field(default_factory=dict)


def records_of(vector: dict) -> list[Record]:
    recs = [
        Record(
            i,
            r["dir"],
            r["conn"],
            bytes.fromhex(r["hex"]),
            r.get("t", float(i)),
            r.get("unit", "message"),
            r.get("decoded") or {},
        )
        for i, r in enumerate(vector["records"])
    ]
    return sorted(recs, key=lambda r: (r.t, r.index))


def normalize_slots(data: bytes) -> bytes:
    """A message with every name slot cut at its first NUL and zero padded.

    Receivers read a slot only up to its NUL (SPEC.md 3.4); the reference
    library leaves stack garbage behind the NUL of some slots it sends."""
    if len(data) < 48:
        return data
    out = bytearray(data)
    typ = int.from_bytes(data[0:4], "little" if data[0] & 0x80 else "big")
    num_groups = int.from_bytes(data[36:40], "little" if data[0] & 0x80 else "big", signed=True)
    first = 48 + (4 if typ & 0x00400000 else 0)
    slots = [4] + [first + 32 * i for i in range(max(0, min(num_groups, 100)))]
    for at in slots:
        chunk = out[at : at + 32]
        if len(chunk) == 32 and 0 in chunk:
            cut = chunk.index(0)
            out[at + cut : at + 32] = bytes(32 - cut)
    return bytes(out)


def connect_bytes(decoded: dict) -> bytes:
    """What our client sends for a connect request with these settings."""
    name = decoded.get("name", "").encode()
    return bytes([4, 0, 0, decoded["flags_byte"], len(name)]) + name


def is_api_client(recs: list[Record]) -> bool:
    """True when our client library would produce this connection's handshake."""
    first = recs[0]
    if first.dir != "c2s" or first.unit != "connect" or "flags_byte" not in first.decoded:
        return False
    if first.data != connect_bytes(first.decoded):
        return False
    choice = [r for r in recs if r.unit == "auth-choice"]
    return all(r.data == NULL_CHOICE for r in choice)


class FakeConnection(threading.Thread):
    """Plays one connection's script. Handshake bytes flow freely; each
    post-handshake s2c message waits until the driver releases it, so that
    what the client can read at any moment matches the recording's order."""

    def __init__(
        self, daemon: ScriptedDaemon, sock: socket.socket, recs: list[Record], server_closes: bool
    ):
        super().__init__(daemon=True)
        self.owner = daemon
        self.sock = sock
        self.recs = recs
        self.server_closes = server_closes
        self.released: dict[int, threading.Event] = {
            r.index: threading.Event()
            for r in recs
            if r.dir == "s2c" and r.unit not in HANDSHAKE_UNITS
        }
        self.done = threading.Event()

    def release(self, index: int) -> None:
        self.released[index].set()

    def _read_exact(self, n: int) -> bytes:
        buf = b""
        while len(buf) < n:
            chunk = self.sock.recv(n - len(buf))
            if not chunk:
                break
            buf += chunk
        return buf

    def run(self) -> None:
        self.sock.settimeout(STEP_TIMEOUT)
        try:
            for r in self.recs:
                if r.dir == "c2s":
                    got = self._read_exact(len(r.data))
                    if r.unit in HANDSHAKE_UNITS:
                        same = got == r.data
                    else:
                        same = normalize_slots(got) == normalize_slots(r.data)
                    if not same:
                        self.owner.fail(
                            f"conn {r.conn} record {r.index} ({r.unit}): expected "
                            f"{r.data.hex()} got {got.hex()}"
                        )
                        return
                else:
                    ev = self.released.get(r.index)
                    if ev is not None and not ev.wait(STEP_TIMEOUT):
                        self.owner.fail(f"record {r.index} never released")
                        return
                    self.sock.sendall(r.data)
            if not self.server_closes:
                # The client ends the connection; anything more it sends is wrong.
                extra = self._read_exact(1 << 20)
                if extra:
                    self.owner.fail(
                        f"conn {self.recs[0].conn}: unexpected bytes {extra[:96].hex()}"
                    )
        except OSError as e:
            self.owner.fail(f"conn {self.recs[0].conn}: {e!r}")
        finally:
            self.done.set()
            try:
                self.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            self.sock.close()


class ScriptedDaemon:
    """Accepts connections in order and gives the n-th one the n-th script."""

    def __init__(
        self, scripts: list[list[Record]], unix: bool = False, server_closes: set[int] = frozenset()
    ):
        self.scripts = scripts
        self.server_closes = server_closes
        self.errors: list[str] = []
        self.conns: dict[int, FakeConnection] = {}
        self.unix = unix
        self.port = free_port()
        if unix:
            self.path = f"/tmp/{self.port}"
            self.listener = socket.socket(socket.AF_UNIX)
            self.listener.bind(self.path)
            self.address = str(self.port)
        else:
            self.listener = socket.socket()
            self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            self.listener.bind(("127.0.0.1", self.port))
            self.address = f"{self.port}@127.0.0.1"
        self.listener.listen(16)
        self.listener.settimeout(STEP_TIMEOUT)
        self._next = 0
        self._lock = threading.Lock()

    def fail(self, message: str) -> None:
        with self._lock:
            self.errors.append(message)

    def accept_next(self) -> FakeConnection:
        """Accepts the next connection and starts its script."""
        sock, _ = self.listener.accept()
        recs = self.scripts[self._next]
        conn_id = recs[0].conn
        self._next += 1
        fc = FakeConnection(self, sock, recs, conn_id in self.server_closes)
        self.conns[conn_id] = fc
        fc.start()
        return fc

    def close(self) -> None:
        self.listener.close()
        if self.unix:
            try:
                os.unlink(self.path)
            except FileNotFoundError:
                pass
        for c in self.conns.values():
            c.join(STEP_TIMEOUT)


class AcceptInBackground(threading.Thread):
    """Accepts one connection while the client's connect call blocks."""

    def __init__(self, daemon: ScriptedDaemon):
        super().__init__(daemon=True)
        self.fd = daemon
        self.conn: FakeConnection | None = None
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self.conn = self.fd.accept_next()
        except BaseException as e:  # reported by the driver
            self.error = e


def synthetic_handshake(private_name: str = "alice") -> list[Record]:
    """A generic accepted handshake for the synthetic vectors (which have none)."""
    group = f"#{private_name}#localhost".encode()
    req = bytes([4, 0, 0, 1, len(private_name)]) + private_name.encode()
    return [
        Record(-5, "c2s", 1, req, -5, "connect"),
        Record(-4, "s2c", 1, b"\x05NULL ", -4, "auth-list"),
        Record(-3, "c2s", 1, NULL_CHOICE, -3, "auth-choice"),
        Record(-2, "s2c", 1, bytes([1, 4, 0, 0, len(group)]) + group, -2, "accept"),
    ]
