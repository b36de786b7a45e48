"""The wire format of spread.flow: pure functions from values to bytes and
back, no state (DESIGN.md, "Frame format").

A flow frame is the payload of an ordinary Spread data message whose
``msg_type`` is ``FLOW_MSG_TYPE``. It starts with a 32-byte little-endian
header::

    offset size field
         0    2 magic b"\\xf5\\xc5"
         2    1 version (1)
         3    1 kind (DATA, BATCH, CHUNK, REPORT, HELLO, BYE)
         4    2 flags
         6    2 the application's msg_type (i16; DATA and CHUNK, else 0)
         8    8 stream id (u64)
        16    8 seq (u64): the frame's number in its stream (1, 2, ...);
                REPORT: the consumed position; BYE: the last seq sent
        24    8 offset (u64): the stream's bytes before this frame;
                REPORT: the consumed bytes

Bodies: DATA the payload; BATCH ``uvarint count`` then ``count`` x
(``uvarint length``, ``i16 msg_type``) then the payloads one after another;
CHUNK ``u64 total, u64 position`` then the piece; REPORT and BYE nothing;
HELLO the group's name, then (recovery) a NUL and ``count`` x ``(u64
stream, u64 last seq, u64 bytes sent)``: the sender's streams on the group;
with F_BASES each entry also carries ``(u64 base seq, u64 base bytes)``:
the position of the stream from which the addressee was a member before it
(or we) lost touch (equal to the last frame: nothing of it before).

Recovery (issue 17): NACK, to a sender's private group, asks frames seq..
offset of a stream again, its body the asker's consumed ``(u64 seq, u64
bytes)``; GAP, to the asker's private group, says the stream's frames
before seq are no longer retained. A resent frame is the original frame,
byte for byte, sent to the asker's private group.

Decoding never raises anything but ``FrameError``; every length is checked.
"""

from __future__ import annotations

import functools
import struct
from collections.abc import Sequence
from typing import NamedTuple

# sp.h's service bits (tests/test_flow_frame.py checks them against spread).
UNRELIABLE_MESS, RELIABLE_MESS, FIFO_MESS = 0x01, 0x02, 0x04
CAUSAL_MESS, AGREED_MESS, SAFE_MESS = 0x08, 0x10, 0x20
SELF_DISCARD = 0x40
ORDERED_SERVICES = (FIFO_MESS, CAUSAL_MESS, AGREED_MESS, SAFE_MESS)

#: The Spread msg_type that marks a flow frame (a 16-bit signed value).
FLOW_MSG_TYPE = -31415
MAGIC = b"\xf5\xc5"
VERSION = 1

DATA, BATCH, CHUNK, REPORT, HELLO, BYE, NACK, GAP = 1, 2, 3, 9, 8, 13, 10, 11
KIND_NAMES = {
    DATA: "DATA",
    BATCH: "BATCH",
    CHUNK: "CHUNK",
    REPORT: "REPORT",
    HELLO: "HELLO",
    BYE: "BYE",
    NACK: "NACK",
    GAP: "GAP",
}
KINDS = frozenset(KIND_NAMES)

# Flags.
F_REPORT = 0x0001  # DATA/BATCH/CHUNK: report once this frame is consumed
F_LAST = 0x0002  # CHUNK: the message's last piece
F_REPLY = 0x0004  # HELLO: an answer to a joiner's HELLO (never answered)
F_BASES = 0x0008  # HELLO: its entries carry the addressee's base (a member back)
F_REJOIN = 0x0010  # HELLO with bases: an answer to the addressee's own join
F_KEPT = 0x0020  # BYE: the closed stream still answers NACKs for a while
KNOWN_FLAGS = F_REPORT | F_LAST | F_REPLY | F_BASES | F_REJOIN | F_KEPT

_HEADER = HEADER_STRUCT = struct.Struct("<2sBBHhQQQ")
HEADER_SIZE = _HEADER.size  # 32
_CHUNK = struct.Struct("<QQ")
CHUNK_PREFIX = _CHUNK.size  # 16
_ITEM_TYPE = struct.Struct("<h")
_POSITION = struct.Struct("<QQ")  # NACK body: consumed (seq, bytes)
_STREAM_ENTRY = struct.Struct("<QQQ")  # HELLO: (stream, last seq, bytes sent)
_BASED_ENTRY = struct.Struct("<QQQQQ")  # F_BASES: ... and (base seq, base bytes)
MAX_HELLO_STREAMS = 1024

U64 = (1 << 64) - 1

# SPEC §3.5: a daemon kills a client whose data_len + 32 * groups passes
# 143952; the 4.0.0 daemon fails from 143600 on (data + 32·groups > 143551).
MAX_WIRE_DATA = 143_952 - 32  # one group
PORTABLE_WIRE_DATA = 143_551 - 32
DEFAULT_MAX_FRAME = 143_000  # a frame, header included, for one group


class FrameError(ValueError):
    """A payload with the flow msg_type that is not a well-formed frame."""


class Header(NamedTuple):
    kind: int
    flags: int
    msg_type: int
    stream: int
    seq: int
    offset: int


class Item(NamedTuple):
    """One logical message in a batch (data a memoryview into the frame)."""

    msg_type: int
    data: memoryview


def header(
    kind: int, stream: int, seq: int, offset: int = 0, flags: int = 0, msg_type: int = 0
) -> bytes:
    """The 32 header bytes (the caller appends the body)."""
    return _HEADER.pack(MAGIC, VERSION, kind, flags, msg_type, stream, seq, offset)


def is_frame(msg_type: int, data: bytes | bytearray | memoryview) -> bool:
    """Whether a message claims to be a flow frame: the reserved msg_type and
    the magic (a classic message with that msg_type by chance passes through)."""
    return msg_type == FLOW_MSG_TYPE and bytes(data[:2]) == MAGIC


def decode_header(data: bytes | bytearray | memoryview) -> Header:
    if len(data) < HEADER_SIZE:
        raise FrameError(f"frame of {len(data)} bytes is shorter than its header")
    magic, version, kind, flags, msg_type, stream, seq, offset = _HEADER.unpack_from(data)
    if magic != MAGIC:
        raise FrameError("bad magic")
    if version != VERSION:
        raise FrameError(f"unsupported version {version}")
    if kind not in KINDS:
        raise FrameError(f"unknown kind {kind}")
    if flags & ~KNOWN_FLAGS:
        raise FrameError(f"unknown flags {flags:#x}")
    return Header(kind, flags, msg_type, stream, seq, offset)


# ---- uvarints (batch tables) ----------------------------------------------


def put_uvarint(n: int, out: bytearray) -> None:
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)


def table_entry(length: int, msg_type: int, out: bytearray) -> None:
    """One batch table entry: uvarint length, i16 msg_type."""
    if length < 0x80:
        out.append(length)
    else:
        put_uvarint(length, out)
    out += _ITEM_TYPE.pack(msg_type)


def _read_uvarint(data: memoryview, pos: int) -> tuple[int, int]:
    n = shift = 0
    while True:
        if pos >= len(data):
            raise FrameError("truncated length table")
        b = data[pos]
        pos += 1
        n |= (b & 0x7F) << shift
        if not b & 0x80:
            return n, pos
        shift += 7
        if shift > 63:
            raise FrameError("length over 64 bits")


def uvarint_size(n: int) -> int:
    size = 1
    while n >= 0x80:
        n >>= 7
        size += 1
    return size


# ---- bodies -----------------------------------------------------------------


def batch_item_cost(data_len: int) -> int:
    """Bytes one item adds to a batch frame: its table entry and its payload."""
    return uvarint_size(data_len) + 2 + data_len


def batch_size(items: Sequence[tuple[bytes | bytearray | memoryview, int]]) -> int:
    """The framed size of a BATCH of items ((data, msg_type) pairs)."""
    return HEADER_SIZE + uvarint_size(len(items)) + sum(batch_item_cost(len(d)) for d, _ in items)


def encode_batch_body(items: Sequence[tuple[bytes | bytearray | memoryview, int]]) -> bytes:
    table = bytearray()
    put_uvarint(len(items), table)
    for data, msg_type in items:
        table_entry(len(data), msg_type, table)
    return bytes(table) + b"".join(bytes(d) for d, _ in items)


def decode_batch_body(body: bytes | bytearray | memoryview) -> list[Item]:
    """A BATCH body's items (data as memoryviews into it)."""
    data = bytes(body)
    pos, lengths, types = batch_table(data, 0)
    view = memoryview(data)
    items = []
    for i, n in enumerate(lengths):
        items.append(Item(types[i], view[pos : pos + n]))
        pos += n
    return items


@functools.lru_cache(maxsize=512)
def _small_table(count: int) -> struct.Struct:
    """A batch table of count entries with one-byte lengths, as one Struct."""
    return struct.Struct("<" + "Bh" * count)


@functools.lru_cache(maxsize=512)
def _two_byte_table(count: int) -> struct.Struct:
    """A batch table of count entries with two-byte lengths, as one Struct."""
    return struct.Struct("<" + "BBh" * count)


def batch_table(frame: bytes, start: int = HEADER_SIZE) -> tuple[int, list[int], list[int]]:
    """A BATCH frame's table (its body from start): (position of the first
    payload, lengths, msg_types), every length checked against the frame.
    One C call reads the table when every length takes one byte (under 128
    bytes: small messages, the case batching is for) or every one takes two
    (128 bytes to 16 KiB); otherwise entry by entry (_table_by_entry, which
    gives the same answer for those two kinds too)."""
    end = len(frame)
    pos = start
    if pos < end and frame[pos] < 0x80:
        count = frame[pos]
        pos += 1
    else:
        count, pos = _read_uvarint(memoryview(frame), pos)
    if count == 0 or count * 3 > end - pos:
        raise FrameError(f"batch of {count} items in {end - start} bytes")
    if count <= 4096:
        if frame[pos] < 0x80:
            flat = _small_table(count).unpack_from(frame, pos)
            lengths = list(flat[0::2])
            # Every length under 0x80: the table is exactly 3 x count bytes
            # and the payloads fill the rest.
            if max(lengths) < 0x80 and sum(lengths) == end - pos - 3 * count:
                return pos + 3 * count, lengths, list(flat[1::2])
        elif count * 4 <= end - pos:
            flat = _two_byte_table(count).unpack_from(frame, pos)
            low, high = flat[0::3], flat[1::3]
            # Every length in two bytes (a first byte with its high bit, a
            # second without): 4 x count bytes of table.
            if min(low) >= 0x80 and max(high) < 0x80:
                lengths = [(a & 0x7F) | b << 7 for a, b in zip(low, high)]
                if sum(lengths) == end - pos - 4 * count:
                    return pos + 4 * count, lengths, list(flat[2::3])
    return _table_by_entry(frame, pos, count)


def _table_by_entry(frame: bytes, pos: int, count: int) -> tuple[int, list[int], list[int]]:
    """batch_table's general case: count entries from pos, one at a time."""
    end = len(frame)
    unpack = _ITEM_TYPE.unpack_from
    lengths, types = [], []
    view = memoryview(frame)
    for _ in range(count):
        if pos < end and frame[pos] < 0x80:
            n = frame[pos]
            pos += 1
        elif pos + 1 < end and frame[pos + 1] < 0x80:
            n = (frame[pos] & 0x7F) | frame[pos + 1] << 7
            pos += 2
        else:
            n, pos = _read_uvarint(view, pos)
        if pos + 2 > end:
            raise FrameError("truncated length table")
        lengths.append(n)
        types.append(unpack(frame, pos)[0])
        pos += 2
    total = sum(lengths)
    if pos + total > end:
        raise FrameError("batch items longer than the frame")
    if pos + total != end:
        raise FrameError("bytes after the last batch item")
    return pos, lengths, types


def chunk_prefix(total: int, position: int) -> bytes:
    return _CHUNK.pack(total, position)


def decode_chunk_body(body: memoryview) -> tuple[int, int, memoryview]:
    """(total, position, piece) of a CHUNK body."""
    if len(body) < CHUNK_PREFIX:
        raise FrameError("chunk shorter than its prefix")
    total, position = _CHUNK.unpack_from(body)
    piece = body[CHUNK_PREFIX:]
    if position + len(piece) > total:
        raise FrameError("chunk runs past its message's length")
    return total, position, piece


def chunk_pieces(total: int, max_frame: int) -> int:
    """How many CHUNK frames a message of total bytes takes."""
    room = max_frame - HEADER_SIZE - CHUNK_PREFIX
    return max(1, -(-total // room))


# ---- recovery ------------------------------------------------------------------


def nack(stream: int, first: int, last: int, consumed: tuple[int, int]) -> bytes:
    """Ask frames first..last of stream again; consumed is the asker's position."""
    return header(NACK, stream, first, last) + _POSITION.pack(*consumed)


def decode_nack_body(body: bytes | bytearray | memoryview) -> tuple[int, int]:
    """The asker's consumed (seq, bytes) of a NACK."""
    if len(body) != _POSITION.size:
        raise FrameError(f"NACK body of {len(body)} bytes, not {_POSITION.size}")
    seq, nbytes = _POSITION.unpack_from(body)
    return seq, nbytes


def hello(group: str, streams: Sequence[tuple[int, ...]] = (), flags: int = 0) -> bytes:
    """A HELLO for group, naming our streams on it: (stream, last seq, bytes
    sent), or with F_BASES (stream, last seq, bytes sent, base seq, base bytes)."""
    data = header(HELLO, 0, 0, flags=flags) + group.encode()
    # (the NUL even for none: "no streams" ends the ones receivers hold of ours)
    if len(streams) > MAX_HELLO_STREAMS:
        raise ValueError(f"a HELLO names at most {MAX_HELLO_STREAMS} streams")
    entry = _BASED_ENTRY if flags & F_BASES else _STREAM_ENTRY
    return data + b"\0" + b"".join(entry.pack(*e) for e in streams)


def decode_hello_body(
    body: bytes | bytearray | memoryview, flags: int = 0
) -> tuple[str, list[tuple[int, ...]] | None]:
    """(group name, streams) of a HELLO body; streams is None when the
    HELLO names none (an older peer: nothing is known of its streams).
    Entries are (stream, last, bytes), with F_BASES (..., base seq, base bytes)."""
    raw = bytes(body)
    name, sep, table = raw.partition(b"\0")
    try:
        group = name.decode()
    except UnicodeDecodeError:
        raise FrameError("HELLO's group name is not UTF-8") from None
    if not sep:
        return group, None
    entry = _BASED_ENTRY if flags & F_BASES else _STREAM_ENTRY
    size = entry.size
    if len(table) % size or len(table) // size > MAX_HELLO_STREAMS:
        raise FrameError(f"HELLO stream table of {len(table)} bytes")
    return group, [entry.unpack_from(table, i) for i in range(0, len(table), size)]
